"""The clean-room check of the wheel (vm/wheel_check.py, ``make wheel-check``) as a test:
the wheel installed in a new venv in a temporary directory tests examples/myproject's own
module there; the project's plain test boots nothing. It boots a VM of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wqlab.kernels import Kernel

# Not whole_vm: its bounds (the plain test in under 60 s) have room for a loaded host; its
# pip install and its VMs share the host (slow tests run after the whole_vm ones:
# wqlab/xdist_sched.py).
pytestmark = [pytest.mark.vm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_works_outside_the_checkout(wqlab_kernel: Kernel, tmp_path: Path) -> None:
    times = tmp_path / "times.json"
    argv = [sys.executable, str(ROOT / "vm" / "wheel_check.py"), f"--kernel={wqlab_kernel.version}"]
    argv += [f"--json={times}"]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    p = subprocess.run(argv, capture_output=True, text=True, timeout=1500, env=env)
    print(p.stdout[-4000:])
    assert p.returncode == 0 and "wheel check passed" in p.stdout, (p.stdout + p.stderr)[-8000:]
    t = json.loads(times.read_text())
    print(f"wheel check: {t}")
    assert t["plain_s"] < 60, f"the plain test took {t['plain_s']:.0f} s: did it boot?"
