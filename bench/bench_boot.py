#!/usr/bin/env python3
"""Boot and round-trip benchmark: numbers, not a test.

Measured side by side in one run on the same kernel:
  * plain ``vng --run <kernel> --disable-kvm --exec true`` (wall time, the baseline)
  * the harness's boot-to-ready (fast init, agent answering)      goal ratio <= 0.5
  * the agent's request round trip, median of N echo requests     goal <= 10 ms
  * a module command round trip (debugfs write+read), median

Usage: bench/bench_boot.py [--kernel K] [--repeat N] [--requests N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import kernels  # noqa: E402
from harness.build import ROOT, build_module  # noqa: E402
from harness.client import WqlabClient, ensure_debugfs, insmod, rmmod  # noqa: E402
from harness.vm import Vm, VmConfig, default_vng, kvm_works, vng_env  # noqa: E402


def plain_vng(image: Path, kvm: bool) -> float:
    argv = [default_vng(), "--run", str(image), "--exec", "true"]
    if not kvm:
        argv.append("--disable-kvm")
    t0 = time.monotonic()
    subprocess.run(
        argv,
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=vng_env(argv[0]),
        timeout=600,
    )
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kernel", default="default")
    ap.add_argument("--repeat", type=int, default=2, help="boots of each kind (default 2)")
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    k = kernels.resolve(args.kernel)
    kvm = kvm_works(k.image)
    ko = build_module(k)
    print(f"kernel {k.version}, {'KVM' if kvm else 'TCG'}, {args.repeat} boots of each kind")
    plain: list[float] = []
    ours: list[float] = []
    echo: list[float] = []
    command: list[float] = []
    for i in range(args.repeat):
        plain.append(plain_vng(k.image, kvm))
        print(f"  plain vng --exec true #{i + 1}: {plain[-1]:.1f} s", flush=True)
        cfg = VmConfig(image=k.image, kvm=kvm)
        t0 = time.monotonic()
        with Vm(cfg, ROOT / "artifacts" / "bench-console.log") as vm:
            ours.append(time.monotonic() - t0)
            print(f"  harness boot-to-ready #{i + 1}: {ours[-1]:.1f} s", flush=True)
            agent = vm.agent()
            if i == 0:
                for _ in range(args.requests):
                    t = time.perf_counter()
                    agent.request("echo", data="x")
                    echo.append(time.perf_counter() - t)
                ensure_debugfs(agent)
                insmod(agent, str(ko))
                c = WqlabClient(agent)
                for _ in range(args.requests):
                    t = time.perf_counter()
                    c.cmd("work_pending", id=0)
                    command.append(time.perf_counter() - t)
                rmmod(agent)
    p, o = statistics.median(plain), statistics.median(ours)
    e_ms, c_ms = statistics.median(echo) * 1e3, statistics.median(command) * 1e3
    print()
    print(f"plain vng --exec true      median {p:6.1f} s")
    print(f"harness boot-to-ready      median {o:6.1f} s   ratio {o / p:.2f} (goal <= 0.50)")
    print(
        f"agent echo round trip      median {e_ms:6.2f} ms (goal <= 10 ms), "
        f"p90 {sorted(echo)[int(len(echo) * 0.9)] * 1e3:.2f} ms, n={len(echo)}"
    )
    print(
        f"module command round trip  median {c_ms:6.2f} ms (debugfs write+read), n={len(command)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
