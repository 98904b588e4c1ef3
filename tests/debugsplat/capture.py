"""Record real debug-kernel reports for the splat detector's unit tests.

    WQLAB_KVM=0 .venv/bin/python tests/debugsplat/capture.py [--kernel=debug] [CASE...]

Boots the debug line (``make kernel KERNEL=debug``), loads ``debugsplat.ko`` once per
case and writes the kernel log lines (dmesg) each case produced to
``tests/unit/data/splats/debug-<case>.txt``; the ``leak`` case also writes what
``/sys/kernel/debug/kmemleak`` said after a scan, with the module loaded
(``tests/unit/data/kmemleak-debug.txt``). Cases that turn lockdep off or lower the
lockup thresholds get a VM of their own. Prints each case's splat kinds as the harness
sees them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from wqlab import kernels, kmemleak  # noqa: E402
from wqlab.build import build_module  # noqa: E402
from wqlab.client import ensure_debugfs  # noqa: E402
from wqlab.splat import find_splats  # noqa: E402
from wqlab.vm import Vm, VmConfig, host_boot_deadline, kvm_works  # noqa: E402

DATA = ROOT / "tests" / "unit" / "data"
OUT = DATA  # --out moves it (a dry run on another kernel)

# one VM per group: lockdep reports once per boot, the lockup case lowers thresholds
GROUPS: list[tuple[list[str], list[str]]] = [
    (
        ["kasan", "kfence", "atomic_sleep", "leak", "circular", "hung", "odebug"],
        ["echo 5 > /proc/sys/kernel/hung_task_timeout_secs"],
    ),
    (
        ["inconsistent", "sched_atomic", "lockup"],
        [
            "echo 2 > /proc/sys/kernel/watchdog_thresh",
            "echo 3 > /sys/module/workqueue/parameters/watchdog_thresh",
            "echo 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout",
        ],
    ),
    (["recursive"], []),
]
SLOW = {"hung": 15, "lockup": 15}


def run_case(vm: Vm, ko: Path, case: str) -> None:
    agent = vm.agent()
    mark = int(agent.sh("dmesg | wc -l")["stdout"].strip())
    secs = SLOW.get(case, 0)
    cmd = f"insmod {ko} what={case}" + (f" seconds={secs}" if secs else "")
    print(f"$ {cmd}", flush=True)
    t0 = time.monotonic()
    agent.sh(cmd, timeout=120 + 4 * secs, check=False)
    if case == "leak" and kmemleak.available(agent):
        leaks = kmemleak.scan(agent)
        text = agent.sh(f"cat {kmemleak.KMEMLEAK}")["stdout"]
        (OUT / "kmemleak-debug.txt").write_text(text)
        mine = kmemleak.module_leaks(leaks, "debugsplat", unloaded=False)
        print(f"  kmemleak: {len(leaks)} leaks, {len(mine)} in debugsplat")
    agent.sh("rmmod debugsplat", timeout=60, check=False)
    time.sleep(3)  # reports printed after the case (lockup watchdogs, ODEBUG fixups)
    # dmesg, not the console: the console shows loglevel < 5 only, a report's
    # pr_info lines would be missing
    lines = agent.sh(f"dmesg | tail -n +{mark + 1}")["stdout"].splitlines()
    kinds = [s.kind for s in find_splats(lines)]
    print(f"  {case}: {time.monotonic() - t0:.0f} s, splats {kinds}", flush=True)
    if not kinds:  # nothing to learn from, and the unit test would fail on it
        print(f"  {case}: the kernel reported nothing; not written")
        return
    (OUT / "splats").mkdir(parents=True, exist_ok=True)
    (OUT / "splats" / f"debug-{case}.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kernel", default="debug")
    ap.add_argument("--out", type=Path, default=DATA, help="instead of tests/unit/data")
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    global OUT
    OUT = args.out
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    k = kernels.resolve(args.kernel)
    ko = build_module(k, src=ROOT / "tests" / "debugsplat", name="debugsplat", subdir=".")
    kvm = kvm_works(k.image)
    for cases, setup in GROUPS:
        todo = [c for c in cases if not args.cases or c in args.cases]
        if not todo:
            continue
        cfg = VmConfig(image=k.image, kvm=kvm)
        log = ROOT / "artifacts" / f"console-debugsplat-{k.version}.log"
        with Vm(cfg, log, name="debugsplat").start(boot_timeout=host_boot_deadline(kvm)) as vm:
            print(f"booted {k.version} in {vm.boot_seconds:.1f} s", flush=True)
            ensure_debugfs(vm.agent())
            for cmd in setup:
                print(f"$ {cmd}")
                vm.agent().sh(cmd, check=False)
            for case in todo:
                run_case(vm, ko, case)
    print("wrote", shlex.quote(str(OUT / "splats")), "debug-*.txt")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WQLAB_KVM", "0")
    raise SystemExit(main())
