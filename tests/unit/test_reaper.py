# SPDX-License-Identifier: GPL-2.0
"""wqlab/reaper.py: a SIGKILLed harness leaves no VM process group behind, even one
whose processes are stopped (a hung guest cannot power itself off)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wqlab.reaper import group_members

REAPER = Path(__file__).resolve().parents[2] / "wqlab" / "reaper.py"

PARENT = """
import subprocess, sys, time
# the VM's console is a pipe to the harness: it breaks when the harness dies
p = subprocess.Popen([sys.executable, {reaper!r}, *sys.argv[1:]], start_new_session=True,
                     stderr=subprocess.PIPE)
print(p.pid, flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize(
    "command",
    [["sleep", "300"], ["sh", "-c", "sleep 300 & kill -STOP $$; wait"]],
    ids=["running", "stopped"],
)
def test_a_killed_parent_takes_the_group_down(command: list[str]) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(reaper=str(REAPER)), *command],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pgid = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while len(group_members(pgid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(pgid)) >= 2, "reaper and command run"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left after the parent's SIGKILL: {left}"


def test_the_command_status_is_the_reapers() -> None:
    r = subprocess.run([sys.executable, str(REAPER), "sh", "-c", "exit 3"], check=False)
    assert r.returncode == 3
    r = subprocess.run([sys.executable, str(REAPER), "/nonexistent/cmd"], check=False)
    assert r.returncode == 127
