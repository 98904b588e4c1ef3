#!/usr/bin/env python3
"""Boot and round-trip benchmark: numbers, not a test.

Measured side by side in one run on the same kernel:
  * plain ``vng --run <kernel> --disable-kvm --exec true`` (wall time, the baseline)
  * the harness's boot-to-ready (fast init, agent answering)      goal ratio <= 0.5
  * the agent's request round trip, median of N echo requests     goal <= 10 ms
  * a module command round trip on each plane: debugfs write+read, ioctl, generic netlink
    (pyroute2 in the guest; its first use, the import, is shown apart), median
  * the netlink event stream: the rate a listener in the guest (a 256 KiB receive
    buffer) takes in without a drop, for chains of 5000 runs throttled by spin_us, and the
    listener's own pace on a buffered burst                       goal >= 10 000 events/s
  * the fixed cost of a test: the pytest plugin's own per-test set-up and teardown
    (``wqlab.session``: console and kernel-log marks, module load, the VM's trace
    instance re-armed; the kernel-log read of the splat scan, tracing off, module
    unload) around N empty tests, median                            goal <= 0.25 s
  * a module load + unload cycle, median                            goal <= 0.5 s

Usage: bench/bench_boot.py [--kernel K] [--repeat N] [--requests N] [--tests N] [--cycles N]
                           [--event-runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wqlab import kernels  # noqa: E402
from wqlab.build import build_module  # noqa: E402
from wqlab.client import WqlabClient, ensure_debugfs  # noqa: E402
from wqlab.kmsg import dmesg_since  # noqa: E402
from wqlab.session import (  # noqa: E402
    arm_trace,
    begin_test,
    disarm_trace,
    load_module,
    unload_module,
)
from wqlab.vm import Vm, VmConfig, default_vng, kvm_works, vng_env  # noqa: E402


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


def fixed_cost(vm: Vm, ko: Path, n: int) -> tuple[list[float], list[float]]:
    """Set-up and teardown times of ``n`` empty tests, in the plugin's order: the
    ``wqlab_vm``, ``wqlab`` and ``wqlab_trace`` fixtures' set-up (the VM's one trace
    instance re-armed; made for the first); the call report's kernel-log read (its splat
    regexes over a few lines cost microseconds); the ``wqlab_trace`` and ``wqlab``
    fixtures' teardown."""
    agent = vm.agent()
    setup: list[float] = []
    teardown: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        watch = begin_test(vm)
        load_module(agent, str(ko))
        inst = arm_trace(vm, fresh_module=True)  # as under the ``wqlab`` fixture
        t1 = time.perf_counter()
        vm.splats_since(watch.console)
        dmesg_since(agent, watch.dmesg)
        disarm_trace(vm, inst)
        unload_module(vm)
        t2 = time.perf_counter()
        setup.append(t1 - t0)
        teardown.append(t2 - t1)
    return setup, teardown


def load_cycles(vm: Vm, ko: Path, n: int) -> list[float]:
    """``n`` module load + unload cycles (the ``wqlab`` fixture's two halves)."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        load_module(vm.agent(), str(ko))
        unload_module(vm)
        out.append(time.perf_counter() - t)
    return out


def round_trips(c: WqlabClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        c.cmd("work_pending", id=0)
        out.append(time.perf_counter() - t)
    return out


EVENT_SPINS_US = (0, 50, 100, 200, 500, 1000)


def event_rates(c: WqlabClient, runs: int, rcvbuf: int) -> list[tuple[int, float, int, int]]:
    """For each spin_us of EVENT_SPINS_US: a chain of ``runs`` runs of one item on
    system_unbound (2 events a run), read by a listener in the guest while it runs. Its
    receive buffer (``rcvbuf``) holds a small part of a chain, so a chain without loss
    means the listener kept up with it. (spin_us, events/s the kernel produced: the chain's
    events over its first start to its last end, events taken in, lost)."""
    out = []
    item = int(c.cmd("work_new")["id"])
    for spin in EVENT_SPINS_US:
        with c.events(rcvbuf=rcvbuf) as stream:
            c.cmd("queue_work", wq="system_unbound", id=item, requeue=runs - 1, spin_us=spin)
            taken, first_ns = 0, 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                got = stream.count(0.5)
                taken += got["events"]
                first_ns = first_ns or got["first_ns"]
                if not got["events"] and c.cmd("work_busy", id=item).ret == 0:
                    taken += stream.count(0.5)["events"]  # the last ones
                    break
        c.cmd("flush_work", id=item)
        last_ns = int(c.work(item)["finished_ns"])
        span = (last_ns - first_ns) / 1e9 if first_ns else float("nan")
        out.append((spin, 2 * runs / span, taken, 2 * runs - taken))
    return out


def listener_drain(c: WqlabClient, runs: int) -> tuple[int, float]:
    """The listener's own pace, the producer out of its way: a chain of ``runs`` runs
    fills a large receive buffer while nobody reads, then the listener takes it all in.
    (events taken in, seconds; the round trips to the guest included)."""
    item = int(c.cmd("work_new")["id"])
    with c.events(rcvbuf=64 << 20) as stream:
        c.cmd("queue_work", wq="system_unbound", id=item, requeue=runs - 1)
        c.cmd("flush_work", id=item)
        deadline = time.monotonic() + 120
        while c.cmd("work_busy", id=item).ret and time.monotonic() < deadline:
            time.sleep(0.1)
        taken, t0 = 0, time.perf_counter()
        while got := stream.count(0.0)["events"]:
            taken += got
        return taken, time.perf_counter() - t0


def positive(text: str) -> int:
    """An argument that counts something: 1 or more (0 runs made a chain of -1 requeues)."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: give 1 or more")
    return n


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kernel", default="default")
    ap.add_argument("--repeat", type=positive, default=2, help="boots of each kind (default 2)")
    ap.add_argument("--requests", type=positive, default=200)
    ap.add_argument("--tests", type=positive, default=30, help="empty tests timed (default 30)")
    ap.add_argument("--cycles", type=positive, default=10, help="load+unload cycles (default 10)")
    ap.add_argument(
        "--event-runs", type=positive, default=5000, help="runs per event-rate chain (default 5000)"
    )
    ap.add_argument(
        "--event-rcvbuf",
        type=positive,
        default=256 << 10,
        help="the listener's receive buffer, bytes (default 256 KiB: a few hundred events)",
    )
    args = ap.parse_args()
    k = kernels.resolve(args.kernel)
    kvm = kvm_works(k.image)
    ko = build_module(k)
    print(f"kernel {k.version}, {'KVM' if kvm else 'TCG'}, {args.repeat} boots of each kind")
    plain: list[float] = []
    ours: list[float] = []
    echo: list[float] = []
    command: list[float] = []
    ioctl: list[float] = []
    netlink: list[float] = []
    nl_first = 0.0
    rates: list[tuple[int, float, int, int]] = []
    drained = (0, float("nan"))
    setup: list[float] = []
    teardown: list[float] = []
    cycles: list[float] = []
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
                load_module(agent, str(ko))
                c = WqlabClient(agent)
                command = round_trips(c, args.requests)
                ioctl = round_trips(WqlabClient(agent, "ioctl"), args.requests)
                t = time.perf_counter()
                nl = WqlabClient(agent, "netlink")  # imports pyroute2's netlink core there
                nl_first = time.perf_counter() - t
                netlink = round_trips(nl, args.requests)
                rates = event_rates(nl, args.event_runs, args.event_rcvbuf)
                drained = listener_drain(nl, 2000)
                unload_module(vm)
                setup, teardown = fixed_cost(vm, ko, args.tests)
                cycles = load_cycles(vm, ko, args.cycles)
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
    print(f"  the same over ioctl      median {statistics.median(ioctl) * 1e3:6.2f} ms")
    print(
        f"  the same over netlink    median {statistics.median(netlink) * 1e3:6.2f} ms "
        f"(first use, pyroute2's netlink core imported in the guest: {nl_first:.1f} s)"
    )
    best = max((r for r in rates if r[3] == 0), key=lambda r: r[1], default=None)
    for spin, rate, got, lost in rates:
        print(
            f"netlink events, spin_us={spin:<4} {rate:8.0f} events/s produced, "
            f"{got} taken in, {lost} lost"
        )
    print(
        f"listener intake alone      {drained[0] / drained[1]:8.0f} events/s "
        f"({drained[0]} buffered events taken in, in {drained[1]:.2f} s)"
    )
    print(
        "event rate without drops   "
        + (f"{best[1]:8.0f} events/s (goal >= 10 000)" if best else "none: every chain lost some")
    )
    fixed = [a + b for a, b in zip(setup, teardown, strict=True)]
    print(
        f"per-test fixed cost        median {statistics.median(fixed):6.3f} s (goal <= 0.25 s): "
        f"set-up {statistics.median(setup):.3f} s + teardown {statistics.median(teardown):.3f} s, "
        f"max {max(fixed):.3f} s, n={len(fixed)}"
    )
    print(
        f"module load+unload cycle   median {statistics.median(cycles):6.3f} s (goal <= 0.5 s), "
        f"max {max(cycles):.3f} s, n={len(cycles)}"
    )
    print(f"load while measuring (host /proc/loadavg): {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
