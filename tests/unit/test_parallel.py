"""Parallel VMs (pytest-xdist, ``make test JOBS=N``): per-worker file names, one KTAP file
with every test written by the controller, the ``xdist_group`` mark known without xdist, and
the order: ``whole_vm`` tests first on one worker, then ``slow`` ones side by side.
"""

import os
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
    import time
    import pytest

    def _log(kind, t0):
        with open(f"order-{os.environ['PYTEST_XDIST_WORKER']}.txt", "a") as f:
            f.write(f"{kind} {t0} {time.time()}\\n")

    @pytest.mark.parametrize("n", range(40))  # enough for xdist to hand out blocks
    def test_other(n):
        t0 = time.time()
        time.sleep(0.05)
        _log("other", t0)

    @pytest.mark.slow
    def test_slow():
        t0 = time.time()
        time.sleep(1.0)
        _log("slow", t0)

    @pytest.mark.xdist_group("whole_vm")
    @pytest.mark.parametrize("n", range(3))
    def test_whole(n):
        t0 = time.time()
        time.sleep(0.3)
        _log("whole", t0)

    @pytest.mark.wqlab_long
    def test_slow_too():
        t0 = time.time()
        time.sleep(1.0)
        _log("slow", t0)
    """
)


def test_whole_vm_tests_run_on_one_worker_first_then_the_long_ones_side_by_side(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_order=ORDER)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    res = pytester.runpytest_subprocess(
        "--strict-markers", "-n", "3", f"--wqlab-artifacts={pytester.path / 'art'}"
    )
    res.assert_outcomes(passed=45)
    runs = {
        p.name: [
            (k, float(t0), float(t1)) for k, t0, t1 in map(str.split, p.read_text().splitlines())
        ]
        for p in pytester.path.glob("order-gw*.txt")
    }
    kinds = sorted(k for rs in runs.values() for k, _, _ in rs)
    assert kinds == sorted(["whole"] * 3 + ["slow"] * 2 + ["other"] * 40), runs
    whole = [(w, r) for w, rs in runs.items() for r in rs if r[0] == "whole"]
    slow = [(w, r) for w, rs in runs.items() for r in rs if r[0] == "slow"]
    assert len({w for w, _ in whole}) == 1, runs  # one worker, one after the other
    assert min(r[1] for _, r in slow) >= max(r[2] for _, r in whole), runs  # then the long
    (w1, s1), (w2, s2) = slow
    assert w1 != w2 and s1[1] < s2[2] and s2[1] < s1[2], runs  # side by side
    assert not list((pytester.path / "art").glob(".xdist-plan-*")), "the plan file is left"


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


HOST = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path
    import pytest

    def _log(kind, t0, nice=0):
        with open(f"{kind}.txt", "w") as f:
            f.write(f"{t0} {time.time()} {nice} {os.getpriority(os.PRIO_PROCESS, 0)}\\n")

    @pytest.mark.xdist_group("whole_vm")  # two: the first worker queues both
    @pytest.mark.parametrize("n", range(2))
    def test_whole(n):
        t0 = time.time()
        Path("whole-started").touch()
        time.sleep(2)
        _log(f"whole{n}", t0)

    @pytest.mark.wqlab_host
    def test_host():
        deadline = time.time() + 20
        while not Path("whole-started").exists() and time.time() < deadline:
            time.sleep(0.05)
        t0 = time.time()
        time.sleep(0.5)
        _log("host", t0, os.getpriority(os.PRIO_PROCESS, 0))

    @pytest.mark.parametrize("n", range(6))
    def test_plain(n):
        t0 = time.time()
        time.sleep(0.2)
        _log(f"plain{n}", t0)
    """
)


def test_a_host_only_test_runs_beside_a_whole_vm_body_niced_and_the_others_do_not(
    pytester: pytest.Pytester,
) -> None:
    """A ``wqlab_host`` test takes no lock: it runs while a whole_vm body holds the host,
    at nice +10, and its worker's priority is back afterwards; a test without the mark
    never overlaps the body."""
    pytest.importorskip("xdist")
    from wqlab.pytest_plugin import may_renice

    if not may_renice():
        pytest.skip("no CAP_SYS_NICE: a priority cannot be taken back, the lock is kept")
    pytester.makepyfile(test_host=HOST)
    outer = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, 5)  # a base below 19: the +10 and its undoing show
    try:
        res = pytester.runpytest_subprocess(
            "--strict-markers", "-n", "2", f"--wqlab-artifacts={pytester.path / 'art'}"
        )
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, outer)
    res.assert_outcomes(passed=9)
    t = {
        p.stem: [float(x) for x in p.read_text().split()]
        for p in pytester.path.glob("*.txt")
        if p.stem.startswith(("whole", "host", "plain"))
    }
    wholes = [v[:2] for k, v in t.items() if k.startswith("whole")]
    h0, h1, nice_in, nice_after = t["host"]
    base = 5
    assert len(wholes) == 2 and any(w0 <= h0 and h1 <= w1 for w0, w1 in wholes), t  # inside
    assert nice_in == min(base + 10, 19) and nice_after == nice_in, t  # the test's own
    plains = [v for k, v in t.items() if k.startswith("plain")]
    assert len(plains) == 6, t  # none overlaps a whole_vm body
    assert all(p1 <= w0 or p0 >= w1 for p0, p1, _, _ in plains for w0, w1 in wholes), t
    assert all(p[3] == base for p in plains), t  # its worker's priority taken back


class _Worker:
    """An xdist worker as the controller sees it: it runs the first test it was sent
    only once it has a second one, or was told to shut down (xdist/remote.py)."""

    def __init__(self, name: str) -> None:
        self.name, self.queue, self.down = name, [], False
        self.workerinput = {"testrunuid": "run1"}
        self.gateway = SimpleNamespace(id=name)

    @property
    def shutting_down(self) -> bool:
        return self.down

    def shutdown(self) -> None:
        self.down = True

    def send_runtest_some(self, indices: list[int]) -> None:
        self.queue.extend(indices)

    def can_run(self) -> bool:
        return len(self.queue) >= 2 or (self.down and bool(self.queue))

    def __repr__(self) -> str:
        return self.name


def test_the_scheduler_never_leaves_a_worker_waiting_for_a_second_test(tmp_path: Path) -> None:
    """A worker that replaces a crashed one and gets the one test left is told to shut down
    (it runs it), rather than wait until the others have finished theirs."""
    pytest.importorskip("xdist")
    from wqlab import xdist_sched

    ids = [f"t{i}" for i in range(5)]
    xdist_sched.write_plan(tmp_path, "run1", dict.fromkeys(ids, xdist_sched.REST))
    config = SimpleNamespace(
        getvalue=lambda name: ["popen", "popen"] if name == "tx" else None,
        getoption=lambda name: None,
    )
    sched = xdist_sched.phased_scheduling(config, None, tmp_path)
    gw0, gw1 = _Worker("gw0"), _Worker("gw1")
    for w in (gw0, gw1):
        sched.add_node(w)
        sched.add_node_collection(w, ids)
    sched.schedule()
    assert (gw0.queue, gw1.queue, sched.pending) == ([0, 1], [2, 3], [4])
    assert sched.remove_node(gw0) == "t0"  # gw0 crashed running t0: t1 back to pending
    gw1.queue.pop(0)
    sched.mark_test_complete(gw1, 2)  # gw1 ran t2, takes one more
    assert len(gw1.queue) == 2 and len(sched.pending) == 1
    gw2 = _Worker("gw2")  # xdist's replacement for gw0
    sched.add_node(gw2)
    sched.add_node_collection(gw2, ids)
    sched.schedule()
    assert len(gw2.queue) == 1 and not sched.pending
    assert gw2.can_run(), "gw2 waits with one test until gw1 ends both of its own"


def test_under_another_dist_no_plan_is_written(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_one='import pytest\n\n@pytest.mark.xdist_group("whole_vm")\ndef test_w():\n    pass\n'
    )
    art = pytester.path / "art"
    res = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", f"--wqlab-artifacts={art}")
    res.assert_outcomes(passed=1)
    assert not list(art.glob(".xdist-plan-*")), "a plan no scheduler reads, left behind"


def test_a_vm_s_session_goes_ahead_while_a_whole_vm_body_runs_and_back_after() -> None:
    """The VM side of the wqlab_host lane: a process in a session of its own (as QEMU
    with its vng) gets autogroup nice -10 for the body, 0 after."""
    import subprocess
    import sys
    from unittest import mock

    from wqlab import pytest_plugin as plugin

    if not Path("/proc/self/autogroup").exists() or not plugin.may_renice():
        pytest.skip("no autogroup scheduling or no CAP_SYS_NICE here")
    p = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
    )
    group = Path(f"/proc/{p.pid}/autogroup")
    try:
        vm = SimpleNamespace(proc=p)
        with mock.patch.object(plugin, "live_vms", return_value=[vm]):
            with plugin._vms_first():
                assert group.read_text().split()[-1] == "-10", group.read_text()
        assert group.read_text().split()[-1] == "0", group.read_text()
    finally:
        p.kill()
        p.wait()


def test_a_group_nice_refused_for_its_rate_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CAP_SYS_ADMIN the kernel takes one autogroup nice change a tenth of a second
    (EAGAIN): the VM's session must still get its nice back after a body."""
    import errno

    from wqlab import pytest_plugin as plugin

    calls: list[str] = []

    def write_text(self: Path, data: str) -> int:
        calls.append(data)
        if len(calls) == 1:
            raise OSError(errno.EAGAIN, "rate")
        return len(data)

    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(plugin.time, "sleep", lambda s: None)
    assert plugin.set_group_nice(123, 0) and calls == ["0\n", "0\n"]
    calls.clear()
    monkeypatch.setattr(
        Path, "write_text", lambda self, data: (_ for _ in ()).throw(PermissionError())
    )
    assert not plugin.set_group_nice(123, -10)  # refused: not tried again
