"""The teaching labs grade themselves (labs/, wqlab/grade.py): on the session's kernel,
every lab's reference solution gets full marks and its untouched skeleton gets zero with
a hint on every check; a class folder with a good, a broken and a crashing submission is
graded to the end. One VM for all of it, but for the fresh one a kernel report asks for
(the crashing student; the bug lab, whose reports are the point)."""

from __future__ import annotations

import csv
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from wqlab.grade import (
    Grade,
    Grader,
    build_store,
    format_grade,
    junit,
    ktap,
    lab_names,
    load_lab,
    write_csv,
)
from wqlab.kernels import Kernel
from wqlab.pytest_plugin import VmManager

pytestmark = pytest.mark.vm

# Under pytest-xdist a whole_vm test has the host to itself (wqlab/pytest_plugin.py), the
# others share it. Only timing makes a test whole_vm here: a kernel report (the crashing
# student, the bug lab) spoils the VM of its own worker only. A skeleton's zero does not
# hang on timing (it spins nothing, its checks find nothing); labs 01 (the batch too), 03,
# 04 and 06 bound no latency and spin nothing: their overlaps are of items that sleep
# 30-40 ms, their orders the kernel's own rules.
WHOLE_VM = pytest.mark.xdist_group("whole_vm")
TIMED = {  # the solutions whose full marks depend on the host's timing
    "02-delayed-work",  # an upper bound: its timer queues the item <= 150 ms past delay_ms
    # CPU hogs: two 4 ms spinners must take turns on CPU 0, and the first of two hogs
    # spins (up to 250 ms) until the second has started beside it
    "05-pools",
}

BUG_LAB = "07-bug-patterns"
ALL = lab_names()
PLAIN = [n for n in ALL if n != BUG_LAB]


@pytest.fixture(scope="module")
def grader(
    wqlab_kernel: Kernel, wqlab_vm_manager: VmManager, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Grader]:
    out = tmp_path_factory.mktemp("grade")
    # the store: the workers' graders (and earlier runs) build each lab's tree once
    store = build_store(wqlab_kernel)
    with Grader(wqlab_kernel, out=out, vms=wqlab_vm_manager.get, store=store) as g:
        yield g


def _grade(grader: Grader, name: str, which: str) -> Grade:
    lab, folder = load_lab(name)
    return grader.grade(lab, folder / which, which)


@pytest.mark.parametrize("name", ALL)
def test_skeleton_scores_zero_with_a_hint_on_every_check(grader: Grader, name: str) -> None:
    g = _grade(grader, name, "skeleton")
    table = format_grade(g)
    assert g.status == "graded", table
    assert g.score == 0, table
    graded = [c for c in g.checks if c.status != "skip"]
    assert graded, f"every check was skipped on this kernel:\n{table}"
    assert all(c.status == "fail" and len(c.hint) > 20 for c in graded), table


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=WHOLE_VM) if n in TIMED else n for n in PLAIN]
)
def test_solution_gets_full_marks(grader: Grader, name: str) -> None:
    g = _grade(grader, name, "solution")
    table = format_grade(g)
    assert g.status == "graded", table
    assert g.max_points > 0, table
    assert g.score == g.max_points, table


@WHOLE_VM  # lab 05's CPU hogs: the first spins its whole 250 ms, and the spinners' check
def test_pools_lab_without_cpu_intensive_loses_only_the_overlap_check(
    grader: Grader, tmp_path: Path
) -> None:
    """Lab 05's common mistake: pool_lab_cpu allocated without WQ_CPU_INTENSIVE. Its first
    hog spins, waiting for the second, until its deadline: the pool never starts the
    second beside it (the lab raises the kernel's own 6.5+ hog threshold), so that check
    fails with its hint, and every other check passes."""
    lab, folder = load_lab("05")
    src = tmp_path / "no-flag"
    shutil.copytree(folder / "solution", src)
    c = src / "pool_lab.c"
    text = c.read_text()
    assert 'alloc_workqueue("pool_lab_cpu", WQ_CPU_INTENSIVE, 0)' in text
    c.write_text(text.replace('"pool_lab_cpu", WQ_CPU_INTENSIVE, 0', '"pool_lab_cpu", 0, 0'))
    knob = "/sys/module/workqueue/parameters/cpu_intensive_thresh_us"  # 6.5+
    agent = grader.get_vm().agent()
    before = agent.read(knob) if agent.exists(knob) else None
    g = grader.grade(lab, src, "no-flag")
    table = format_grade(g)
    assert g.status == "graded", table
    if before is not None:  # raised to 1 s for the load, put back after it
        assert g.runs[0].tunables == {knob: "1000000"}, table
        assert grader.get_vm().agent().read(knob) == before
    failed = [c for c in g.checks if c.status == "fail"]
    assert [c.name for c in failed] == ["two CPU hogs on a WQ_CPU_INTENSIVE queue overlapped"]
    assert "WQ_CPU_INTENSIVE" in failed[0].hint and "took turns" in failed[0].hint, table
    assert g.score == g.max_points - failed[0].max_points, table


def test_batch_grades_every_student_past_a_broken_and_a_crashing_one(
    grader: Grader, tmp_path: Path
) -> None:
    """alice: the solution; bob: a syntax error; carol: BUG() in her work function; dave:
    the solution again, graded after carol's Oops on a fresh VM."""
    lab, folder = load_lab("01")
    cls = tmp_path / "class"
    for who in ("alice", "bob", "carol", "dave"):
        shutil.copytree(folder / "solution", cls / who)
    src = cls / "bob" / "global_lab.c"
    src.write_text(src.read_text().replace("msleep(5);", "msleep(5)"))
    src = cls / "carol" / "global_lab.c"
    src.write_text(src.read_text().replace("\tmsleep(5);", "\tBUG();"))
    boots = grader.boots
    grades = [
        grader.grade(lab, path, who) for who, path in sorted((p.name, p) for p in cls.iterdir())
    ]
    tables = "\n\n".join(format_grade(g) for g in grades)
    by = {g.student: g for g in grades}
    assert [g.student for g in grades] == ["alice", "bob", "carol", "dave"], tables
    assert by["alice"].score == by["alice"].max_points == lab.max_points, tables
    assert by["bob"].status == "build-failed" and by["bob"].score == 0, tables
    assert "error" in by["bob"].report, tables  # the compiler's message is shown
    assert by["carol"].status in ("kernel-report", "vm-lost"), tables
    assert by["carol"].score == 0, tables
    assert "global_lab_fn" in by["carol"].report, tables  # the report names her function
    assert by["dave"].score == by["dave"].max_points, tables
    assert grader.boots == boots  # the plugin's manager booted dave's VM, not the grader

    out = tmp_path / "out"
    write_csv(out / "class.csv", grades)
    rows = list(csv.DictReader((out / "class.csv").open()))
    assert [(r["student"], r["score"], r["status"]) for r in rows] == [
        ("alice", str(lab.max_points), "graded"),
        ("bob", "0", "build-failed"),
        ("carol", "0", by["carol"].status),
        ("dave", str(lab.max_points), "graded"),
    ]
    suites = ET.fromstring(junit(grades)).findall("testsuite")
    assert [s.get("name") for s in suites] == [f"{w}.{lab.name}" for w in by]
    assert suites[0].get("failures") == "0" and suites[1].get("failures") == str(len(lab.checks))
    text = ktap(grades)
    assert text.startswith("KTAP version 1\n1..16\n"), text
    assert text.count("\nnot ok ") == 2 * len(lab.checks), text


# timed: the draining case's init sleeps 100 ms and counts on the drainer (a worker it
# woke) being inside drain_workqueue() by then; a starved vCPU makes that a race
@WHOLE_VM
@pytest.mark.skipif(BUG_LAB not in ALL, reason="no bug lab")
def test_bug_lab_solution_provokes_every_report_this_kernel_can_give(grader: Grader) -> None:
    g = _grade(grader, BUG_LAB, "solution")
    table = format_grade(g)
    assert g.status == "graded", table
    assert g.max_points > 0, table
    assert g.score == g.max_points, table
