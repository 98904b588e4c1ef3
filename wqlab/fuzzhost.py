"""Run the wqlab fuzzer in a VM: build the module, boot, load it, run ``wqlab.fuzz`` in
the guest, watch the console, unload, and say what went wrong.

    python -m wqlab.fuzzhost --kernel default --seed 7 -n 20000 --threads 4
    python -m wqlab.fuzzhost --commit 0cb714f ...   # fuzz the module of an older commit

``make fuzz SEED=... N=... THREADS=... KERNEL=...`` runs this. The run fails when the guest
reports a violation (printed with the seed and the command), when the console shows a
kernel splat, when the guest hangs, or when ``rmmod`` fails or takes longer than its
deadline. The same seed gives every thread the same command stream (see
``wqlab.fuzzgen``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import (
    CONTROL,
    DEBUGFS,
    GENL_IMPORT_TIMEOUT,
    guest_import_paths,
    insmod,
    is_loaded,
    rmmod,
)
from .errors import GuestCommandError, HarnessError
from .fuzz import NETLINK_SHARE, add_run_options, parse_args, save_plan
from .resources import build_dir, module_sources, package_parent
from .vm import Vm

log = logging.getLogger(__name__)

GUEST_DIR = "/tmp/wqlab-fuzz"
PROFILE_DIR = f"{GUEST_DIR}/profile"
GUEST_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class FuzzParams:
    seed: int
    n: int = 20000
    threads: int = 4
    max_items: int = 16
    storm: bool = False
    hang_s: float = 20.0
    rmmod_deadline: float = 120.0
    netlink_share: float = NETLINK_SHARE
    trace: bool = False
    profile: str | None = None  # a host file: the guest's cProfile report (--profile)
    extra: tuple[str, ...] = ()


SUMMARY_TRACE_LINES = 60


@dataclass
class FuzzOutcome:
    """What a run found: the guest's result plus what only the host can see."""

    params: FuzzParams
    result: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # host-side: splats, rmmod, hangs
    splats: list[str] = field(default_factory=list)
    rmmod_seconds: float | None = None
    seconds: float = 0.0
    hung: bool = False
    overlap_trace: list[str] = field(default_factory=list)  # --trace: the item's history
    overlap_context: list[str] = field(default_factory=list)  # --trace: every event before it

    @property
    def violations(self) -> list[dict[str, Any]]:
        return list(self.result.get("violations", []))

    @property
    def ok(self) -> bool:
        return not self.violations and not self.problems and not self.splats

    def summary(self) -> str:
        r = self.result
        lines = [
            f"wqlab fuzz seed={self.params.seed}: {r.get('commands', '?')} commands in "
            f"{r.get('seconds', '?')} s in the guest ({r.get('rate', '?')}/s), "
            f"{self.seconds:.0f} s in all; rmmod "
            + (f"{self.rmmod_seconds:.1f} s" if self.rmmod_seconds is not None else "not done"),
            "planes: " + " ".join(f"{k}={v}" for k, v in sorted(r.get("planes", {}).items())),
            "errnos: " + " ".join(f"{k}={v}" for k, v in sorted(r.get("errnos", {}).items())),
        ]
        cpu = r.get("cpu")
        if cpu:
            threads = " ".join(f"{k}={v}" for k, v in cpu.get("threads", {}).items())
            lines.append(
                f"guest CPU: the fuzzer {cpu.get('user')} s user, {cpu.get('system')} s system "
                f"({threads}); every vCPU busy {cpu.get('guest_busy', '?')} s "
                f"(kernel {cpu.get('guest_system', '?')} s), idle {cpu.get('guest_idle', '?')} s"
            )
        if self.overlap_trace:
            lines.append(
                "the first overlap's item in the trace (workqueue:* and wqlab:* events; "
                "--json keeps them all, and every event before it):"
            )
            lines += ["    " + t for t in self.overlap_trace[-SUMMARY_TRACE_LINES:]]
        for v in self.violations:
            lines.append(f"VIOLATION seed={v.get('seed')} {v.get('thread')}: {v.get('what')}")
            if v.get("op"):
                lines.append(f"    command: {v['op']}")
        lines += [f"SPLAT seed={self.params.seed}: {s}" for s in self.splats]
        lines += [f"PROBLEM seed={self.params.seed}: {p}" for p in self.problems]
        lines.append("verdict: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def guest_args(p: FuzzParams, plan: str | None = None) -> list[str]:
    """``wqlab.fuzz``'s arguments for ``p`` (pure); ``plan``: the guest's path of the plan
    the host made (``--plan``)."""
    argv = ["--seed", str(p.seed), "-n", str(p.n), "--threads", str(p.threads)]
    argv += ["--hang-s", str(p.hang_s), "--log", f"{GUEST_DIR}/log", "--result"]
    argv += [f"{GUEST_DIR}/result.json"]
    if p.storm:
        argv.append("--storm")
    argv += ["--netlink-share", str(p.netlink_share)]
    if p.netlink_share:
        argv += [f"--genl-path={path}" for path in guest_import_paths()]
    if p.profile:
        argv += ["--profile", PROFILE_DIR]
    if plan:
        argv += ["--plan", plan]
    return argv + list(p.extra)


def guest_command(
    p: FuzzParams, root: Path | None = None, python: str = GUEST_PYTHON, plan: str | None = None
) -> str:
    """The shell command that runs the fuzzer in the guest (pure).

    ``-E -s -S``: no environment, no site: the guest's system Python with ``root`` (cwd:
    the directory that holds the wqlab package, a checkout or site-packages, read-only in
    the guest) as the only extra import path; with the netlink plane, pyroute2 and wqlab
    from the host's paths too (``--genl-path``, imported the guest agent's way)."""
    argv = [python, "-E", "-s", "-S", "-u", "-m", "wqlab.fuzz", *guest_args(p, plan)]
    root = root or package_parent()
    return f"cd {shlex.quote(str(root))} && exec {shlex.join(argv)}"


PLAN_KEEP_S = 7 * 86400  # a plan left behind by a host that died (killed, crashed): removed after


def prune_plans(dest: Path, now: float | None = None, keep_s: float = PLAN_KEEP_S) -> list[Path]:
    """Remove the plans in ``dest`` older than ``keep_s`` (a run's own is removed when it
    ends; one left by a host that died is not: 150 bytes a command, 150 MB for -n 1000000)."""
    now = time.time() if now is None else now
    removed = []
    for f in dest.glob("fuzz-plan-*.pickle"):
        try:
            if now - f.stat().st_mtime > keep_s:
                f.unlink()
                removed.append(f)
        except OSError:  # gone already (another run's prune), or not ours
            continue
    return removed


def host_plan(agent: Any, p: FuzzParams, dest: Path) -> Path:
    """Make the run's plan (:data:`wqlab.fuzz.Round`) here, for the module loaded in the guest
    (its command listing and ``features``, read through ``agent``), with the options the
    guest will parse (the same arguments); save it in the directory ``dest`` (one the
    guest sees) and return the file, an absolute path (the guest's command changes
    directory first: :func:`guest_command`). Nothing is left behind if making it fails."""
    cfg = parse_args(guest_args(p))
    listing = agent.read(CONTROL)  # a fresh descriptor lists the commands
    features = agent.read(f"{DEBUGFS}/features")
    dest = dest.absolute()  # WQLAB_CACHE may be relative: the guest runs from package_parent()
    dest.mkdir(parents=True, exist_ok=True)
    prune_plans(dest)
    fd, name = tempfile.mkstemp(prefix=f"fuzz-plan-{p.seed}-", suffix=".pickle", dir=dest)
    os.close(fd)
    try:
        n = save_plan(cfg, listing, features, name)
    except BaseException:  # an interrupt in a long plan's making: no partial file left
        Path(name).unlink(missing_ok=True)
        raise
    log.info("the fuzz plan: %d commands in %s", n, name)
    return Path(name)


TRACE_INSTANCE = "/sys/kernel/tracing/instances/wqlab-fuzz"
TRACE_BUFFER_KB = 65536  # a CPU's share: about the last 10 s of a fuzz run's events


def trace_setup_command(instance: str = TRACE_INSTANCE, kb: int = TRACE_BUFFER_KB) -> str:
    """Shell: a trace instance with the workqueue and wqlab events that stops at the first
    run overlap (the ``traceoff`` trigger), so the buffer ends with what led to it."""
    t = shlex.quote(instance)
    return (
        f"mkdir -p {t} && echo {kb} > {t}/buffer_size_kb && "
        f"echo 1 > {t}/events/workqueue/enable && echo 1 > {t}/events/wqlab/enable && "
        f"echo traceoff > {t}/events/wqlab/wqlab_work_overlap/trigger && echo 1 > {t}/tracing_on"
    )


def trace_overlap_command(instance: str = TRACE_INSTANCE, keep: int = 400) -> str:
    """Shell: the instance's events about the first overlapping item (its work pointer
    and its commands), the last ``keep`` of them; nothing if no overlap was traced."""
    t = shlex.quote(instance)
    return (
        f"line=$(grep -m1 'wqlab_work_overlap:' {t}/trace) || exit 0; "
        "w=$(echo \"$line\" | sed -n 's/.* work=\\([0-9a-fx]*\\) .*/\\1/p'); "
        "id=$(echo \"$line\" | sed -n 's/.* id=\\([0-9]*\\) .*/\\1/p'); "
        f'grep -E "$w|wqlab_cmd: .* id=$id " {t}/trace | tail -n {keep}; '
        f"echo {CONTEXT_MARK}; grep -B {keep} -m1 'wqlab_work_overlap:' {t}/trace"
    )


CONTEXT_MARK = "=== every event before it ==="


def parse_overlap_trace(text: str) -> tuple[list[str], list[str]]:
    """The overlapping item's events and every event before the overlap, as printed,
    without the buffer's comment header (pure)."""
    item, _, context = text.partition(CONTEXT_MARK)

    def lines(t: str) -> list[str]:
        return [ln.rstrip() for ln in t.splitlines() if ln.strip() and not ln.startswith("#")]

    return lines(item), lines(context)


def guest_time_limit(p: FuzzParams) -> float:
    """Seconds the guest run may take: 20 ms a command (TCG runs at 1-3 ms), plus
    the set-up, the hang detector and the settle waits (and the netlink client's import)."""
    return 300.0 + p.n * 0.02 + 4 * p.hang_s + (GENL_IMPORT_TIMEOUT if p.netlink_share else 0)


@contextlib.contextmanager
def plan_file(agent: Any, p: FuzzParams, dest: Path, say: Callable[[str], None]) -> Iterator[Path]:
    """The run's plan (:func:`host_plan`) while the run lasts; removed after."""
    t = time.monotonic()
    plan = host_plan(agent, p, dest)
    say(f"the ops made here in {time.monotonic() - t:.1f} s (the guest loads them): {plan}")
    try:
        yield plan
    finally:
        plan.unlink(missing_ok=True)


def run_fuzz(vm: Vm, ko: Path, p: FuzzParams, say: Callable[[str], None] = print) -> FuzzOutcome:
    """Load ``ko`` in ``vm``, run the fuzzer, unload; the VM is left tainted after a
    splat or a hang (do not reuse it)."""
    t0 = time.monotonic()
    out = FuzzOutcome(p)
    agent = vm.agent()
    if is_loaded(agent):
        rmmod(agent)
    mark = vm.console_mark()
    insmod(agent, str(ko), max_items=p.max_items)
    agent.succeed(f"rm -rf {GUEST_DIR} && mkdir -p {GUEST_DIR}")
    if p.trace:
        agent.succeed(f"rmdir {TRACE_INSTANCE} 2>/dev/null; " + trace_setup_command())
    with plan_file(agent, p, build_dir() / "fuzz-plans", say) as plan:
        cmd = guest_command(p, plan=vm.guest_path(plan))
        say(f"$ {cmd}")
        limit = guest_time_limit(p)
        fut = agent.submit("sh", cmd=cmd, limit=limit)
        deadline = time.monotonic() + limit + 30
        offset = 0

        def tail() -> None:
            nonlocal offset
            try:
                text = str(agent.request("read", 30, path=f"{GUEST_DIR}/log", offset=offset))
            except (GuestCommandError, HarnessError):
                return
            offset += len(text.encode())
            for line in text.splitlines():
                say(line)

        hung_since: float | None = None
        while not fut.done():
            time.sleep(2.0)
            if not vm.alive:
                out.problems.append("the VM died during the run (see the console log)")
                break
            tail()
            if hung_since is None and agent.exists(f"{GUEST_DIR}/result.json"):
                hung_since = time.monotonic()  # the result is written: the process must end
            if hung_since is not None and time.monotonic() - hung_since > 30:
                out.hung = True
                out.problems.append("the guest fuzzer wrote its result but did not exit (hung)")
                break
            if time.monotonic() > deadline:
                out.hung = True
                out.problems.append(f"the guest fuzzer did not finish within {limit:.0f} s")
                break
        if fut.done() and vm.alive:
            tail()
            try:
                res = fut.result()
                if res["rc"] not in (0, 1):
                    out.problems.append(
                        f"the guest fuzzer exited {res['rc']}:\n{res['stdout'][-2000:]}"
                        f"{res['stderr'][-3000:]}"
                    )
            except (GuestCommandError, HarnessError) as e:
                out.problems.append(f"the guest fuzzer failed: {e}")
    # the guest has read its plan: what follows does not need it
    if vm.alive:
        try:
            out.result = json.loads(agent.read(f"{GUEST_DIR}/result.json"))
        except (GuestCommandError, HarnessError, ValueError) as e:
            out.problems.append(f"no result from the guest fuzzer: {e}")
        out.hung = out.hung or bool(out.result.get("hung"))
    if p.profile and vm.alive and not out.hung:
        try:
            Path(p.profile).write_text(agent.read(f"{PROFILE_DIR}/report.txt"))
            say(f"the guest's profile: {p.profile}")
        except (GuestCommandError, HarnessError) as e:
            out.problems.append(f"no profile from the guest fuzzer: {e}")
    if p.trace and vm.alive and not out.hung:
        try:
            r = agent.sh(trace_overlap_command(), timeout=120, check=False)
            out.overlap_trace, out.overlap_context = parse_overlap_trace(r["stdout"])
            agent.sh(f"echo 0 > {TRACE_INSTANCE}/tracing_on; rmdir {TRACE_INSTANCE}", check=False)
        except HarnessError as e:
            out.problems.append(f"could not read the trace instance: {e}")
    if vm.alive and not out.hung:
        t = time.monotonic()
        try:
            r = agent.sh("rmmod wqlab", timeout=p.rmmod_deadline, check=False)
            out.rmmod_seconds = time.monotonic() - t
            if r["rc"] != 0:
                out.problems.append(f"rmmod failed (rc={r['rc']}): {r['stderr'].strip()}")
        except HarnessError as e:
            out.problems.append(f"rmmod did not return within {p.rmmod_deadline:.0f} s: {e}")
            out.hung = True
    elif out.hung:
        out.problems.append("rmmod not tried: the guest is hung")
    time.sleep(0.5)  # the console is asynchronous: let the last lines arrive
    out.splats = [s.line for s in vm.splats_since(mark)]
    if out.splats or out.hung:
        vm.retire("the fuzz run " + ("hung it" if out.hung else "made the kernel report"), out.hung)
    out.seconds = time.monotonic() - t0
    return out


def export_commit(rev: str, dest: Path) -> Path:
    """The module sources (``Kbuild``, ``module/``) of commit ``rev``, in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", rev, "Kbuild", "module"],  # the checkout of the cwd
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    from . import kernels  # the CLI's own stack
    from .build import build_module
    from .session import boot

    ap = argparse.ArgumentParser(prog="python -m wqlab.fuzzhost", description=__doc__)
    ap.add_argument("--kernel", default="default")
    add_run_options(ap)
    ap.add_argument("--cpus", type=int, default=2, help="guest vCPUs")
    ap.add_argument("--max-items", type=int, default=16, help="insmod max_items= (default 16)")
    ap.add_argument("--commit", default=None, help="fuzz the module of this git commit")
    ap.add_argument(
        "--trace",
        action="store_true",
        help="record workqueue:* and wqlab:* events in a trace instance that stops at the "
        "first run overlap, and print that item's events",
    )
    ap.add_argument(
        "--profile",
        default=None,
        metavar="FILE",
        help="run the guest fuzzer under cProfile (every thread; several times slower) and "
        "write its report (functions by own and cumulative time) here",
    )
    ap.add_argument("--json", default=None, help="write the outcome here")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000_007
    p = FuzzParams(
        seed=seed,
        n=args.n,
        threads=args.threads,
        max_items=args.max_items,
        storm=args.storm,
        hang_s=args.hang_s,
        netlink_share=args.netlink_share,
        trace=args.trace,
        profile=args.profile,
        extra=tuple(f"--skip={s}" for s in args.skip),
    )
    print(f"wqlab fuzz: seed={seed} n={p.n} threads={p.threads} kernel={args.kernel}", flush=True)
    try:
        kernel = kernels.resolve(args.kernel)
        src = module_sources()
        tag = "worktree"
        if args.commit:
            rev = subprocess.run(
                ["git", "rev-parse", "--short", args.commit],  # a checkout: the cwd
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            src = export_commit(rev, Path(tempfile.mkdtemp(prefix=f"wqlab-{rev}-")))
            tag = rev
        print(f"building the module ({tag}) for {kernel.version}", flush=True)
        ko = build_module(kernel, src=src, out_root=build_dir() / f"fuzz-{tag}")
        vm = boot(kernel, args.cpus)
        try:
            out = run_fuzz(vm, ko, p, say=lambda s: print(s, flush=True))
        finally:
            vm.stop()
    except HarnessError as e:
        print(f"wqlab fuzz: {e}", file=sys.stderr)
        return 2
    print(out.summary(), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seed": seed,
                    "module": tag,
                    "kernel": kernel.version,
                    "ok": out.ok,
                    "result": out.result,
                    "problems": out.problems,
                    "splats": out.splats,
                    "rmmod_seconds": out.rmmod_seconds,
                    "overlap_trace": out.overlap_trace,
                    "overlap_context": out.overlap_context,
                    "seconds": out.seconds,
                },
                indent=1,
            )
        )
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
