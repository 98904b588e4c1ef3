"""Parallel VMs (pytest-xdist, ``make test JOBS=N``): per-worker file names, one KTAP file
with every test written by the controller, the ``xdist_group`` mark known without xdist, and
each worker's order: ``whole_vm`` tests, then ``slow`` ones, then the rest.
"""

import re
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wqlab.pytest_plugin import worker_suffix

pytest_plugins = ["pytester"]

INNER = textwrap.dedent(
    """
    import os, time
    import pytest

    def _span(kind):  # when each test ran, for the whole_vm check
        t0 = time.monotonic()
        time.sleep(0.3)
        with open("spans.txt", "a") as f:
            f.write(f"{kind} {t0} {time.monotonic()}\\n")

    @pytest.mark.parametrize("n", range(4))
    def test_passes(n):
        _span("other")

    def test_skips():
        pytest.skip("no such feature")

    def test_fails():
        assert 0

    @pytest.mark.xdist_group("whole_vm")
    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_whole_vm(n):
        _span("whole")
    """
)


def test_worker_suffix_names_the_xdist_worker_and_nothing_otherwise() -> None:
    worker: Any = SimpleNamespace(workerinput={"workerid": "gw1"})
    assert worker_suffix(worker) == "-gw1"
    assert worker_suffix(SimpleNamespace()) == ""  # type: ignore[arg-type]


def _ktap_names(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    assert lines[:2] == ["KTAP version 1", f"1..{len(lines) - 2}"], lines
    for i, line in enumerate(lines[2:], 1):
        assert re.fullmatch(rf"(ok|not ok) {i} \S+( # SKIP .*)?", line), line
    return sorted(
        line.split()[2] if line.startswith("ok") else line.split()[3] for line in lines[2:]
    )


WANT = sorted(
    ["test_inner.py::test_skips", "test_inner.py::test_fails"]
    + [f"test_inner.py::test_passes[{n}]" for n in range(4)]
    + [f"test_inner.py::test_whole_vm[{n}]" for n in (1, 2, 3)]
)


def test_two_workers_give_one_ktap_file_with_every_test(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_inner=INNER)
    ktap = pytester.path / "out" / "results.ktap"
    res = pytester.runpytest_subprocess(
        "--strict-markers",
        "-n",
        "2",
        f"--wqlab-ktap={ktap}",
        f"--wqlab-artifacts={pytester.path / 'art'}",
        "-v",
    )
    res.assert_outcomes(passed=7, failed=1, skipped=1)
    assert _ktap_names(ktap) == WANT
    assert "# SKIP Skipped: no such feature" in ktap.read_text()
    assert sorted(p.name for p in ktap.parent.iterdir()) == ["results.ktap"]
    # a whole_vm test had the host to itself: no other test ran during it
    spans = [ln.split() for ln in (pytester.path / "spans.txt").read_text().splitlines()]
    whole = [(float(a), float(b)) for k, a, b in spans if k == "whole"]
    other = [(float(a), float(b)) for k, a, b in spans if k == "other"]
    assert len(whole) == 3 and len(other) == 4
    overlaps = [(w, o) for w in whole for o in other if o[0] < w[1] and w[0] < o[1]]
    assert not overlaps, overlaps


def test_without_xdist_the_group_mark_is_known_and_ktap_is_the_same(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_inner=INNER)
    ktap = pytester.path / "results.ktap"
    res = pytester.runpytest_subprocess(
        "--strict-markers", "-p", "no:xdist", f"--wqlab-ktap={ktap}"
    )
    res.assert_outcomes(passed=7, failed=1, skipped=1)
    assert _ktap_names(ktap) == WANT


ORDER = textwrap.dedent(
    """
    import os
    import pytest

    def _log(kind):
        with open(f"order-{os.environ['PYTEST_XDIST_WORKER']}.txt", "a") as f:
            f.write(kind + "\\n")

    @pytest.mark.parametrize("n", range(40))  # enough for xdist to hand out blocks
    def test_other(n):
        _log("other")

    @pytest.mark.slow
    def test_slow():
        _log("slow")

    @pytest.mark.xdist_group("whole_vm")
    @pytest.mark.parametrize("n", range(3))
    def test_whole(n):
        _log("whole")

    @pytest.mark.slow
    def test_slow_too():
        _log("slow")
    """
)


def test_each_worker_runs_whole_vm_then_slow_then_the_rest(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_order=ORDER)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    res = pytester.runpytest_subprocess(
        "--strict-markers", "-n", "2", f"--wqlab-artifacts={pytester.path / 'art'}"
    )
    res.assert_outcomes(passed=45)
    rank = {"whole": 0, "slow": 1, "other": 2}
    runs = {p.name: p.read_text().split() for p in pytester.path.glob("order-gw*.txt")}
    assert sorted(k for ks in runs.values() for k in ks) == sorted(
        ["whole"] * 3 + ["slow"] * 2 + ["other"] * 40
    ), runs
    for name, kinds in runs.items():
        assert kinds == sorted(kinds, key=rank.__getitem__), (name, runs)


TIMED = textwrap.dedent(
    """
    import time
    import pytest

    @pytest.fixture
    def slow_setup():
        time.sleep(1.5)  # set-up shares the host: it runs beside test_long

    def test_long():
        time.sleep(6)

    @pytest.mark.timeout(3)
    @pytest.mark.xdist_group("whole_vm")
    def test_whole(slow_setup):
        time.sleep(0.1)
    """
)


@pytest.mark.parametrize("func_only", ["false", "true"])
def test_a_whole_vm_test_s_wait_for_the_host_is_not_part_of_its_timeout(
    pytester: pytest.Pytester, func_only: str
) -> None:
    """The whole_vm body waits for test_long (6 s) to end; its timer (3 s) is stopped
    meanwhile, so it passes; the lock was taken after the shared set-up."""
    pytest.importorskip("xdist")
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(test_timed=TIMED)
    res = pytester.runpytest_subprocess(
        "--strict-markers",
        "-n",
        "2",
        "-p",
        "timeout",
        "-o",
        f"timeout_func_only={func_only}",
        f"--wqlab-artifacts={pytester.path / 'art'}",
    )
    res.assert_outcomes(passed=2)
