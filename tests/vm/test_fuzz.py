"""A bounded fuzz run (``wqlab.fuzz`` in the guest, driven by ``wqlab.fuzzhost``): the three
control planes (debugfs, ioctl, and generic netlink for a share of the commands) from
several threads, well-formed, mutated and random input, race scenarios
(destroy/drain/free/cancel/flush against queueing, armed timers, blocked items with a
releaser), then rmmod. Every answer must be one the docs allow, ``stats`` must add up, no
command may hang, no splat may appear, and rmmod must succeed in time.

``WQLAB_FUZZ_SEED`` and ``WQLAB_FUZZ_N`` override the seed and the length; a failure prints
the seed, so ``make fuzz SEED=<seed> N=<n>`` replays the same command streams.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from wqlab.fuzzhost import FuzzParams, run_fuzz
from wqlab.vm import Vm

# wqlab_long, not slow: `.ci/run`'s second kernel line runs -m 'not slow' and keeps it
pytestmark = [pytest.mark.vm, pytest.mark.wqlab_long]

log = logging.getLogger(__name__)

SEED = int(os.environ.get("WQLAB_FUZZ_SEED", "20260"))
N = int(os.environ.get("WQLAB_FUZZ_N", "20000"))
RMMOD_DEADLINE_S = 60.0


# Not whole_vm: a CPU hog, but its result does not depend on the host's timing (a command
# hangs only after hang_s, 20 s, rmmod after 60 s); it starts once the whole_vm tests are
# done (wqlab/xdist_sched.py), so none of them waits for it.
def test_fuzz_run_has_no_violation_and_rmmod_succeeds(wqlab_vm: Vm, wqlab_ko: Path) -> None:
    p = FuzzParams(seed=SEED, n=N, threads=4, rmmod_deadline=RMMOD_DEADLINE_S)
    out = run_fuzz(wqlab_vm, wqlab_ko, p, say=log.info)
    log.info("%s", out.summary())
    assert out.ok, out.summary()
    assert out.result["commands"] >= N, out.summary()
    planes = out.result["planes"]
    assert min(planes.get(p, 0) for p in ("text", "ioctl", "netlink")) > N // 50, planes
    assert out.rmmod_seconds is not None and out.rmmod_seconds < RMMOD_DEADLINE_S
