"""The labs folder (labs/): complete, skeletons that are their solutions without the
answers, checks that fail with a hint when nothing ran, and the grader's KTAP, JUnit and
CSV outputs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from wqlab.errors import HarnessError
from wqlab.grade import (
    LABS,
    CheckResult,
    Grade,
    Grader,
    KernelInfo,
    Run,
    junit,
    ktap,
    lab_names,
    load_lab,
    write_csv,
)
from wqlab.lifecycle import Lifecycle
from wqlab.trace import Symbol

ALL = lab_names()
KERNEL = KernelInfo("6.1.0-57-amd64", (6, 1), False, 2, frozenset())


def test_there_are_at_least_six_labs_and_a_bug_lab() -> None:
    assert len([n for n in ALL if "bug" not in n]) >= 6, ALL
    assert any("bug" in n for n in ALL), ALL


@pytest.mark.parametrize("name", ALL)
def test_lab_folder_has_readme_skeleton_solution_and_checks(name: str) -> None:
    d = LABS / name
    lab, folder = load_lab(name)
    assert folder == d and lab.name == name
    readme = (d / "README.md").read_text()
    for part in ("## Goal", "## Background", "## Predict, then observe", "wqlab grade"):
        assert part in readme, f"{name}/README.md lacks {part!r}"
    for which in ("skeleton", "solution"):
        assert (d / which / "Kbuild").read_text().strip().endswith(f"{lab.module}.o")
        assert (d / which / f"{lab.module}.c").is_file()
    assert lab.max_points > 0
    assert len({c.name for c in lab.checks}) == len(lab.checks)
    assert {c.scenario for c in lab.checks} <= {s.name for s in lab.scenarios}


def test_skeletons_are_the_solutions_without_their_answers() -> None:
    dirs = [str(LABS / n) for n in ALL]
    p = subprocess.run(
        [sys.executable, str(LABS / "skeleton.py"), "--check", *dirs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("name", ALL)
def test_every_check_fails_with_a_hint_when_nothing_ran(name: str) -> None:
    lab, _ = load_lab(name)
    for c in lab.checks:
        sc = next(s for s in lab.scenarios if s.name == c.scenario)
        run = Run(lab, sc, KERNEL, loaded=True, unloaded=True)
        hint = c.fn(run)
        assert hint and len(hint) > 20, (name, c.name, hint)


def test_an_unknown_lab_names_the_labs_there_are() -> None:
    with pytest.raises(HarnessError, match="01-global-queue"):
        load_lab("99-nope")


def _grades() -> list[Grade]:
    ok = Grade("alice", "01-global-queue", "6.1", checks=[CheckResult("runs", 4, 4, "pass")])
    bad = Grade("bob", "01-global-queue", "6.1", status="build-failed", reason="no build")
    bad.checks = [CheckResult("runs", 0, 4, "fail", "fix the build first")]
    skip = Grade("carol", "07-bug-patterns", "6.1")
    skip.checks = [
        CheckResult("lockdep", 0, 3, "skip", "needs the debug line"),
        CheckResult("flush dependency", 0, 3, "fail", "flush a !WQ_MEM_RECLAIM queue"),
    ]
    return [ok, bad, skip]


def test_ktap_has_one_line_per_check_with_skips_and_reasons() -> None:
    text = ktap(_grades())
    assert text.splitlines()[:2] == ["KTAP version 1", "1..4"]
    assert "ok 1 alice:01-global-queue:runs" in text
    assert "not ok 2 bob:01-global-queue:runs\n# no build" in text
    assert "ok 3 carol:07-bug-patterns:lockdep # SKIP needs the debug line" in text
    assert "not ok 4 carol:07-bug-patterns:flush dependency" in text


def test_junit_has_a_suite_per_student_and_lab() -> None:
    root = ET.fromstring(junit(_grades()))
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("failures"), s.get("skipped")) for s in suites] == [
        ("alice.01-global-queue", "0", "0"),
        ("bob.01-global-queue", "1", "0"),
        ("carol.07-bug-patterns", "1", "1"),
    ]
    assert suites[1].find("testcase/failure").get("message") == "build-failed: no build"


def test_csv_has_a_row_per_student(tmp_path: Path) -> None:
    write_csv(tmp_path / "c.csv", _grades())
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert [(r["student"], r["score"], r["max"], r["status"]) for r in rows] == [
        ("alice", "4", "4", "graded"),
        ("bob", "0", "4", "build-failed"),
        ("carol", "0", "3", "graded"),
    ]


DATA = Path(__file__).parent / "data" / "labs"


def test_bug_lab_expectations_match_the_reports_6_1_gave() -> None:
    """The console of a real 6.1 grading of lab 07's solution (flush_dependency,
    queue_draining, destroy_busy): each expectation matches its own report, and only it."""
    from wqlab.grade import own_text
    from wqlab.splat import find_splats

    lab, _ = load_lab("07")
    lines = DATA.joinpath("bugs-6.1.txt").read_text().splitlines()
    splats = own_text(find_splats(lines, context=80))
    assert [s.kind for s in splats] == ["WARNING", "WARNING", "WARNING"]
    for i, name in enumerate(("flush_dependency", "queue_draining", "destroy_busy")):
        sc = next(s for s in lab.scenarios if s.name == name)
        hits = [j for j, s in enumerate(splats) if any(e.matches(s) for e in sc.expect)]
        assert hits == [i], (name, hits)


def test_bug_lab_expectations_match_the_reports_the_debug_line_gave() -> None:
    """The console of a real grading of lab 07's solution on 6.12.117-wqlab-debug: the
    flush dependency, the draining (both WARNINGs), ODEBUG's free active (its report and
    the WARNING it ends with) and lockdep's recursive locking, each matched by its own
    scenario's expectations and by no other scenario's."""
    from wqlab.grade import own_text
    from wqlab.splat import find_splats

    lab, _ = load_lab("07")
    lines = DATA.joinpath("bugs-debug.txt").read_text().splitlines()
    splats = own_text(find_splats(lines, context=80))
    assert [s.kind for s in splats] == ["WARNING", "WARNING", "ODEBUG", "WARNING", "lockdep"]
    owner = {
        "flush_dependency": [0],
        "queue_draining": [1],
        "free_active": [2, 3],
        "self_flush": [4],
        "destroy_busy": [],
    }
    for sc in lab.scenarios:
        hits = [j for j, s in enumerate(splats) if any(e.matches(s) for e in sc.expect)]
        assert hits == owner[sc.name], (sc.name, hits)


def test_a_submission_is_built_with_the_labs_kbuild_not_its_own(tmp_path: Path) -> None:
    """make runs a Kbuild or Makefile on the grading host: only the student's C sources are
    taken, with the lab's own Kbuild."""
    from wqlab.grade import stage_sources

    lab, folder = load_lab("01")
    sub = tmp_path / "mallory"
    sub.mkdir()
    (sub / "Kbuild").write_text("$(shell touch /tmp/pwned)\nobj-m += global_lab.o\n")
    (sub / "Makefile").write_text("all:\n\trm -rf ~\n")
    (sub / "global_lab.c").write_text("/* mine */\n")
    (sub / "util.h").write_text("/* mine too */\n")
    (sub / "notes.txt").write_text("hi\n")
    copied = stage_sources(lab, sub, tmp_path / "staged")
    assert copied == ["global_lab.c", "util.h"]
    staged = sorted(p.name for p in (tmp_path / "staged").iterdir())
    assert staged == ["Kbuild", "global_lab.c", "util.h"]
    assert (tmp_path / "staged" / "Kbuild").read_text() == (
        folder / "solution" / "Kbuild"
    ).read_text()


def _pools_run(
    kernel: KernelInfo, tunables: dict[str, str], hogs: list[tuple[int, int, int]]
) -> Run:
    """A lab 05 run whose two hogs ran (start ms, end ms, worker pid) on CPU 0."""
    lab, _ = load_lab("05")
    lcs = [
        Lifecycle(
            i,
            f"w{i}",
            Symbol("pool_lab_hog_fn", "pool_lab"),
            workqueue="pool_lab_cpu",
            queued_ns=start * 1_000_000,
            started_ns=start * 1_000_000,
            ended_ns=end * 1_000_000,
            exec_cpu=0,
            worker_pid=pid,
        )
        for i, (start, end, pid) in enumerate(hogs)
    ]
    run = Run(lab, lab.scenarios[0], kernel, all_lcs=lcs, loaded=True, unloaded=True)
    run.tunables = tunables
    return run


def test_pools_hog_check_wants_an_overlap_the_kernels_hog_rule_cannot_explain() -> None:
    lab, _ = load_lab("05")
    (check,) = [c for c in lab.checks if "WQ_CPU_INTENSIVE queue overlapped" in c.name]
    k612 = KernelInfo("6.12.117+deb12-amd64", (6, 12), False, 2, frozenset())
    thresh = "/sys/module/workqueue/parameters/cpu_intensive_thresh_us"
    raised = {thresh: "1000000"}
    # the solution: the second hog starts a few ms into the first one's wait
    assert check.fn(_pools_run(k612, raised, [(0, 9, 10), (5, 9, 11)])) is None
    assert check.fn(_pools_run(KERNEL, {}, [(0, 9, 10), (5, 9, 11)])) is None
    # no WQ_CPU_INTENSIVE: the first spins to its 250 ms deadline, then the second runs
    hint = check.fn(_pools_run(k612, raised, [(0, 250, 10), (250, 254, 10)]))
    assert hint and "took turns" in hint and "WQ_CPU_INTENSIVE" in hint
    # at the kernel's default 10 ms the kernel's own rule would have started the second
    hint = check.fn(_pools_run(k612, {thresh: "10000"}, [(0, 250, 10), (11, 15, 11)]))
    assert hint and "hog rule" in hint
    assert check.fn(_pools_run(k612, {}, [(0, 250, 10), (11, 15, 11)])) is not None  # default
    assert check.fn(_pools_run(KERNEL, {}, [(0, 250, 10), (11, 15, 11)])) is None  # 6.1


class _Sysfs:
    """The agent calls the grader's tunables use, on a dict of files."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def exists(self, path: str) -> bool:
        return path in self.files

    def read(self, path: str) -> str:
        return self.files[path] + "\n"

    def write(self, path: str, data: str) -> int:
        self.files[path] = data
        return len(data)


def test_scenario_tunables_are_set_where_the_kernel_has_them_and_their_old_values_kept() -> None:
    lab, _ = load_lab("05")
    (sc,) = lab.scenarios
    thresh = "/sys/module/workqueue/parameters/cpu_intensive_thresh_us"
    assert sc.tunables == {thresh: "1000000"}
    for files, saved, in_effect in (
        ({thresh: "10000"}, {thresh: "10000"}, {thresh: "1000000"}),  # 6.5+
        ({}, {}, {}),  # 6.1: no such knob, nothing written
    ):
        agent = _Sysfs(dict(files))
        run = Run(lab, sc, KERNEL)
        assert Grader._set_tunables(agent, run) == saved  # type: ignore[arg-type]
        assert run.tunables == in_effect
        assert agent.files == in_effect


def test_a_module_is_inert_only_when_it_imports_nothing_that_queues_arms_or_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An inert module's scenario ends at its load (no timeout waited out): only when
    every import is known to start nothing; a queueing function, alloc_workqueue, a timer,
    or imports that cannot be read keep the wait."""
    from wqlab import grade

    skeleton_01 = {"__fentry__", "__x86_return_thunk", "param_ops_uint"}
    skeleton_05 = {"__SCT__cond_resched", "__cpu_online_mask", "__fentry__", "flush_work"}
    cases: list[tuple[set[str] | None, bool]] = [
        (skeleton_01, True),
        (skeleton_05 | {"ktime_get", "msleep", "nr_cpu_ids", "param_ops_uint"}, True),
        (skeleton_01 | {"queue_work_on"}, False),  # schedule_work() is inline
        (skeleton_01 | {"queue_delayed_work_on", "delayed_work_timer_fn"}, False),
        (skeleton_01 | {"alloc_workqueue"}, False),
        (skeleton_01 | {"add_timer"}, False),
        (skeleton_01 | {"kthread_create_on_node"}, False),
        (None, False),  # nm failed: wait as before
    ]
    for imports, inert in cases:
        fs = None if imports is None else frozenset(imports)
        monkeypatch.setattr(grade, "module_imports", lambda ko, fs=fs: fs)
        assert grade.inert_module(tmp_path / "x.ko") is inert, imports


def test_module_imports_are_the_objects_undefined_symbols(tmp_path: Path) -> None:
    import shutil

    from wqlab.grade import module_imports

    if shutil.which("gcc") is None or shutil.which("nm") is None:
        pytest.skip("no gcc or nm")
    (tmp_path / "m.c").write_text(
        "extern int queue_work_on(int, void *, void *);\nstatic int x;\n"
        "int init(void) { return queue_work_on(0, &x, &x); }\n"
    )
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / "m.o"), str(tmp_path / "m.c")], check=True)
    assert module_imports(tmp_path / "m.o") == {"queue_work_on"}
    assert module_imports(tmp_path / "missing.ko") is None


def test_the_same_sources_are_built_once_per_grader(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A class's copies of one solution share a build; any other byte is a build of its
    own; the .ko handed out outlives a later build of the same student's folder."""
    from wqlab import grade
    from wqlab.kernels import Kernel

    builds: list[str] = []

    def fake_build(kernel: object, src: Path, name: str, subdir: str, out_root: Path) -> Path:
        ko = out_root / "6.1.0-57-amd64" / "tree" / f"{name}.ko"
        ko.parent.mkdir(parents=True)
        ko.write_text((src / f"{name}.c").read_text())
        builds.append((src / f"{name}.c").read_text())
        return ko

    monkeypatch.setattr(grade, "build_module", fake_build)
    kernel = Kernel("6.1.0-57-amd64", tmp_path / "vmlinuz", tmp_path / "headers")
    lab, _ = load_lab("01")
    subs = {}
    for who, text in (("alice", "good"), ("dave", "good"), ("bob", "bad"), ("alice2", "good")):
        (tmp_path / who).mkdir()
        (tmp_path / who / "global_lab.c").write_text(text)
        subs[who] = tmp_path / who
    g = Grader(kernel, out=tmp_path / "out", vms=lambda: None)  # type: ignore[arg-type,return-value]
    alice, _ = g.build(lab, subs["alice"], "alice")
    dave, _ = g.build(lab, subs["dave"], "dave")
    bob, _ = g.build(lab, subs["bob"], "bob")
    assert builds == ["good", "bad"] and alice == dave != bob
    (subs["alice2"] / "global_lab.c").write_text("good, edited")
    again, _ = g.build(lab, subs["alice2"], "alice")  # the same student, other sources
    assert builds == ["good", "bad", "good, edited"] and again != alice
    assert alice.read_text() == "good" and again.read_text() == "good, edited"


def test_a_shared_build_s_warnings_name_each_student_s_own_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from wqlab import grade
    from wqlab.errors import BuildError
    from wqlab.kernels import Kernel

    def fake_build(kernel: object, src: Path, name: str, subdir: str, out_root: Path) -> Path:
        ko = out_root / "6.1.0-57-amd64" / "tree" / f"{name}.ko"
        ko.parent.mkdir(parents=True)
        ko.write_text("ko")
        raise BuildError(f"{name} has warnings:\n{out_root}/src/{name}.c:3: warning: unused")

    monkeypatch.setattr(grade, "build_module", fake_build)
    kernel = Kernel("6.1.0-57-amd64", tmp_path / "vmlinuz", tmp_path / "headers")
    lab, _ = load_lab("01")
    for who in ("alice", "dave"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "global_lab.c").write_text("same")
    g = Grader(kernel, out=tmp_path / "out", vms=lambda: None)  # type: ignore[arg-type,return-value]
    ka, wa = g.build(lab, tmp_path / "alice", "alice")
    kd, wd = g.build(lab, tmp_path / "dave", "dave")
    assert ka == kd
    assert f"{tmp_path}/out/build/alice/src/global_lab.c:3" in wa and "dave" not in wa
    assert f"{tmp_path}/out/build/dave/src/global_lab.c:3" in wd and "alice" not in wd


def test_a_store_shares_builds_between_graders_until_the_headers_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Graders with one store (the suite's workers, a class graded again) build the same
    sources once, warnings and all, each student's warnings naming their own files; new
    headers (their .config) or a build that failed are built again."""
    from wqlab import grade
    from wqlab.errors import BuildError
    from wqlab.kernels import Kernel

    builds: list[str] = []

    def fake_build(kernel: object, src: Path, name: str, subdir: str, out_root: Path) -> Path:
        text = (src / f"{name}.c").read_text()
        builds.append(text)
        if text == "bad":
            raise BuildError("global_lab.c:1: error: expected ';'")
        ko = out_root / "6.1.0-57-amd64" / "tree" / f"{name}.ko"
        ko.parent.mkdir(parents=True)
        ko.write_text(text)
        raise BuildError(f"{name} has warnings:\n{out_root}/src/{name}.c:3: warning: unused")

    monkeypatch.setattr(grade, "build_module", fake_build)
    kdir = tmp_path / "headers"
    kdir.mkdir()
    (kdir / ".config").write_text("CONFIG_A=y\n")
    kernel = Kernel("6.1.0-57-amd64", tmp_path / "vmlinuz", kdir)
    lab, _ = load_lab("01")
    for who, text in (("alice", "good"), ("dave", "good"), ("bob", "bad")):
        (tmp_path / who).mkdir()
        (tmp_path / who / "global_lab.c").write_text(text)
    store = tmp_path / "store"

    def grader(n: int) -> grade.Grader:
        return grade.Grader(kernel, out=tmp_path / f"out{n}", vms=lambda: None, store=store)  # type: ignore[arg-type,return-value]

    ka, wa = grader(1).build(lab, tmp_path / "alice", "alice")
    kd, wd = grader(2).build(lab, tmp_path / "dave", "dave")  # another grader: from the store
    assert builds == ["good"] and ka == kd and ka.is_relative_to(store) and ka.read_text() == "good"
    assert f"{tmp_path}/out1/build/alice/src/global_lab.c:3" in wa and "dave" not in wa
    assert f"{tmp_path}/out2/build/dave/src/global_lab.c:3" in wd and "alice" not in wd
    for n in (3, 4):  # a failed build is not stored: the compiler's message every time
        with pytest.raises(BuildError, match="expected"):
            grader(n).build(lab, tmp_path / "bob", "bob")
    assert builds == ["good", "bad", "bad"]
    (kdir / ".config").write_text("CONFIG_A=y\nCONFIG_B=y\n")  # new headers: built again
    grader(5).build(lab, tmp_path / "dave", "dave")
    assert builds == ["good", "bad", "bad", "good"]
    old = time.time() - 31 * 86400
    for d in store.iterdir():
        os.utime(d, (old, old))
    grade.prune_store(store)
    assert not list(store.iterdir())  # unused for 30 days: gone


def test_kallsyms_keeps_the_lines_of_the_module_and_no_other(tmp_path: Path) -> None:
    """tracefs.kallsyms filters /proc/kallsyms in a fork of the agent (its ``py`` op) as
    ``grep '\\[module\\]'`` did."""
    import contextlib
    import io

    from wqlab import tracefs

    text = (
        "ffffffff81000000 T _stext\n"
        "ffffffffc0a1b000 t ref_fn\t[refmod]\n"
        "ffffffffc0a1c000 t other_fn\t[refmod2]\n"
        "ffffffffc0a1b100 t ref_exit\t[refmod]"  # the last line has no newline
    )
    (tmp_path / "kallsyms").write_text(text)

    class Agent:
        def py(self, script: str, check: bool = True) -> dict[str, object]:
            script = script.replace("/proc/kallsyms", str(tmp_path / "kallsyms"))
            out = io.TextIOWrapper(io.BytesIO(), write_through=True)
            with contextlib.redirect_stdout(out):
                exec(script, {"__name__": "__main__"})
            return {"rc": 0, "stdout": out.buffer.getvalue().decode(), "stderr": ""}  # type: ignore[attr-defined]

    got = tracefs.kallsyms(Agent(), "refmod")  # type: ignore[arg-type]
    assert got == "ffffffffc0a1b000 t ref_fn\t[refmod]\nffffffffc0a1b100 t ref_exit\t[refmod]\n"
    assert tracefs.kallsyms(Agent(), "nomod") == ""  # type: ignore[arg-type]
