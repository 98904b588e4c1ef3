#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Reproducer: switching a PREEMPT_DYNAMIC kernel's preemption mode at run time hangs a
QEMU TCG guest now and then (README, CI).

Boots a VM of ``--kernel``, keeps both vCPUs busy in the kernel (``cat /proc/kallsyms`` in
a loop on each), then writes ``full`` and ``voluntary`` to /sys/kernel/debug/sched/preempt
``--toggles`` times; each write re-patches every ``cond_resched()``/``preempt_schedule()``
call site through int3. ``--control`` writes a sysctl instead, at the same pace, as the
baseline. Prints how far it got; exit 1 when the guest hung or reported a splat.

    .venv/bin/python vm/tcg_text_patch_repro.py --kernel 6.1 --toggles 200
    .venv/bin/python vm/tcg_text_patch_repro.py --kernel 6.1 --toggles 200 --control

Session 9 on the 2-core TCG machine (6.1.0-57, QEMU 7.2): the toggles hung the guest
within 200 toggles (after 40 in the run that counted), three runs out of three; the
control ran 162 s clean.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wqlab import kernels
from wqlab.errors import HarnessError
from wqlab.session import boot

PREEMPT = "/sys/kernel/debug/sched/preempt"
LOAD = (
    "mount -t debugfs none /sys/kernel/debug 2>/dev/null; for c in 0 1; do setsid taskset -c $c "
    "sh -c 'while :; do cat /proc/kallsyms >/dev/null; done' </dev/null >/dev/null 2>&1 & "
    "done; echo started"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="default", help="kernel line (default: default)")
    ap.add_argument("--toggles", type=int, default=200, help="full/voluntary pairs")
    ap.add_argument("--control", action="store_true", help="a sysctl write instead")
    args = ap.parse_args()
    vm = boot(kernels.resolve(args.kernel), 2)
    done, t0 = 0, time.monotonic()
    try:
        a = vm.agent()
        a.sh(LOAD, timeout=30)
        for done in range(1, args.toggles + 1):
            if args.control:
                for _ in range(2):
                    a.write("/proc/sys/kernel/printk_ratelimit", "5", timeout=120)
                    time.sleep(0.4)
            else:
                for mode in ("full", "voluntary"):
                    a.write(PREEMPT, mode, timeout=120)
            splats = list(vm.splats_since(0))
            if splats:
                print(
                    f"splat after {done} toggles ({time.monotonic() - t0:.0f} s): {splats[0].line}"
                )
                return 1
            if done % 20 == 0:
                print(f"{done} toggles, {time.monotonic() - t0:.0f} s, no splat", flush=True)
    except HarnessError as e:
        print(f"the guest hung after {done - 1} toggles ({time.monotonic() - t0:.0f} s): {e}")
        return 1
    finally:
        vm.stop()
    print(f"{args.toggles} toggles in {time.monotonic() - t0:.0f} s: no hang, no splat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
