"""``wqlab shell`` end to end: spawn the real CLI on a pty with pexpect (it builds the
module, boots its own VM and loads it), type as a student would, expect what it prints.

One boot for the whole conversation: Tab completion of a command, an argument name and a
queue name read from the module; a refused command in words beside its errno (unknown
command, unknown queue, wrong argument) and the session going on; help; ``trace`` and
``timeline`` after a real run; ``png``; Ctrl-C out of a blocked flush; history kept in the
file on quit."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from wqlab import kernels

pytestmark = [
    pytest.mark.vm,
    # It boots its own VM beside the session's; not whole_vm: each step's answer may take
    # STEP seconds, room for a loaded host (slow tests run after the whole_vm ones:
    # wqlab/xdist_sched.py).
    pytest.mark.slow,
]

PROMPT = "wqlab> "
STEP = 60  # seconds for one command's answer on a loaded 2-core host (TCG)


def _boot_deadline() -> float:
    return float(os.environ.get("WQLAB_BOOT_TIMEOUT", "300")) + 300  # + the module build


@pytest.fixture
def shell(wqlab_kernel: kernels.Kernel, tmp_path: Path) -> Iterator[pexpect.spawn]:
    env = dict(os.environ, WQLAB_HISTORY=str(tmp_path / "history"), TERM="xterm", COLUMNS="200")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wqlab.cli", "shell", "--kernel", wqlab_kernel.version],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=STEP,
        dimensions=(50, 200),
    )
    child.logfile_read = open(tmp_path / "shell.log", "w")  # closed below
    try:
        child.expect_exact(PROMPT, timeout=_boot_deadline())
        yield child
    finally:
        if child.isalive():  # the test failed mid-line: clear the line, then leave
            child.sendcontrol("u")
            child.sendline("quit")
            try:
                child.expect(pexpect.EOF, timeout=120)
            except pexpect.TIMEOUT:
                child.terminate(force=True)
        child.close()
        child.logfile_read.close()


def _run(child: pexpect.spawn, line: str) -> str:
    """Type a line, wait for the next prompt, return what was printed in between."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return str(child.before)


def test_a_student_session(shell: pexpect.spawn, tmp_path: Path) -> None:
    c = shell
    # Tab: a unique command completes with a space; an argument name; a queue from the module
    c.send("flush_workq\t")
    c.expect_exact("flush_workqueue ")
    c.send("wq=system_unb\t")
    c.expect_exact("wq=system_unbound ")
    c.send("\r")
    c.expect_exact("ret=0")
    c.expect_exact(PROMPT)
    c.send("schedule_work i\t")
    c.expect_exact("schedule_work id=")
    out = _run(c, "0")
    assert "ret=1" in out, out

    # refusals in words, beside the errno; the session goes on after each
    out = _run(c, "frobnicate x=1")
    assert "ENOENT: unknown command 'frobnicate'." in out, out
    out = _run(c, "queue_work wq=nope id=0")
    assert "ENOENT: unknown queue 'nope'." in out and "system_unbound" in out, out
    out = _run(c, "queue_work wq=system ids=0")
    assert "EINVAL: unknown argument 'ids' for queue_work. Did you mean 'id'?" in out, out
    out = _run(c, "schedule_work_on id=0 cpu=9")
    assert "EINVAL: cpu 9 does not exist here" in out, out
    out = _run(c, "queue_delayed_work wq=system id=0")
    assert "item 0 is a plain work item" in out, out

    # help for one command, from the module's listing
    out = _run(c, "help queue_work_on")
    assert "queue_work_on wq cpu id [sleep_ms] [spin_us] [requeue] [block]" in out, out

    # something to see: an item on a queue of the student's own, then trace and timeline
    assert "ret=0" in _run(c, "alloc_workqueue name=ord flags=unbound max_active=1")
    assert "ret=1" in _run(c, "queue_work wq=ord id=0 sleep_ms=5")
    _run(c, "flush_workqueue wq=ord")
    out = _run(c, "trace")
    assert "wqlab_ord" in out and "wqlab_work_fn" in out, out
    out = _run(c, "timeline")
    assert "on wqlab_ord" in out, out
    png = tmp_path / "shell.png"
    out = _run(c, f"png {png}")
    assert f"wrote {png}" in out and png.read_bytes()[:4] == b"\x89PNG", out
    _run(c, "destroy_workqueue wq=ord")

    # a command that blocks: Ctrl-C gives the prompt back, a release ends the run
    assert "ret=1" in _run(c, "schedule_work id=0 block=1")
    c.sendline("flush_work id=0")
    c.expect_exact("waiting for flush_work")  # sent, and waiting in the VM
    c.sendintr()
    c.expect_exact("interrupted")
    c.expect_exact(PROMPT)
    out = _run(c, "release id=0")
    assert "ret=1" in out, out
    assert "ret=" in _run(c, "flush_work id=0")

    out = _run(c, "history")
    assert "frobnicate x=1" in out and "help queue_work_on" in out, out
    c.sendline("quit")
    c.expect(pexpect.EOF, timeout=120)
    c.close()
    assert c.exitstatus == 0
    hist = (tmp_path / "history").read_text()
    assert "queue_work wq=nope id=0" in hist and "schedule_work id=0" in hist
