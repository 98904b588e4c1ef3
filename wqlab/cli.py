"""``wqlab``: play with the workqueue API in a VM and see what ran where and when.

wqlab demo [--kernel K]         every API once, then the lifecycles and a timeline
                                (--png FILE, --perfetto FILE: pictures of the run)
wqlab run [--kernel K] CMD...   run module commands, print results and lifecycles
wqlab shell [--kernel K]        type module commands at a prompt (teaching);
                                --plane debugfs|ioctl|netlink (run, too)
wqlab events [--kernel K] [CMD...]  the module's netlink event stream, live
wqlab plot TRACE                pictures of a saved trace: --png FILE, --perfetto FILE
wqlab grade LAB [--src DIR]     grade a student's lab module (--batch DIR: a class, CSV)
wqlab kernels                   installed kernels usable with --kernel
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from . import kernels
from .client import PLANES, WqlabClient, WqlabCommandError, format_command
from .errors import HarnessError
from .lifecycle import Lifecycle, build_lifecycles
from .report import format_lifecycles, format_timeline
from .session import Session, session
from .trace import QueueWork, TraceEvent, parse

_console = Console(highlight=False)


def say(text: str, style: str = "") -> None:
    _console.print(text, style=style or None, markup=False, soft_wrap=True)


def heading(text: str) -> None:
    say(f"\n== {text} ==", "bold")


# The demo: each step is (what it shows, commands). Items: 0 = DECLARE_WORK,
# 1 = DECLARE_DELAYED_WORK, the rest come from work_new.
def demo_steps(cpus: int) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    last = cpus - 1
    return [
        (
            "DECLARE_WORK + schedule_work: the global queue `events`",
            [("schedule_work", {"id": 0}), ("flush_work", {"id": 0})],
        ),
        (
            "schedule_work_on: pick the CPU",
            [("schedule_work_on", {"id": 0, "cpu": last}), ("flush_work", {"id": 0})],
        ),
        (
            "DECLARE_DELAYED_WORK + schedule_delayed_work (20 ms), flush_delayed_work",
            [
                ("schedule_delayed_work", {"id": 1, "delay_ms": 20}),
                ("flush_delayed_work", {"id": 1}),
            ],
        ),
        (
            "create_workqueue (per-CPU, mem_reclaim) + queue_work_on",
            [
                ("create_workqueue", {"name": "legacy"}),
                ("queue_work_on", {"wq": "legacy", "cpu": 0, "id": 2, "sleep_ms": 5}),
                ("flush_workqueue", {"wq": "legacy"}),
            ],
        ),
        (
            "create_singlethread_workqueue: one at a time, in order",
            [
                ("create_singlethread_workqueue", {"name": "single"}),
                ("queue_work", {"wq": "single", "id": 3, "sleep_ms": 5}),
                ("queue_work", {"wq": "single", "id": 4, "sleep_ms": 5}),
                ("flush_workqueue", {"wq": "single"}),
            ],
        ),
        (
            "alloc_workqueue(WQ_UNBOUND, max_active=2): at most two at once, unbound workers",
            [
                ("alloc_workqueue", {"name": "unb", "flags": "unbound", "max_active": 2}),
                ("queue_work", {"wq": "unb", "id": 2, "sleep_ms": 10}),
                ("queue_work", {"wq": "unb", "id": 3, "sleep_ms": 10}),
                ("queue_work", {"wq": "unb", "id": 4, "sleep_ms": 10}),
                ("flush_workqueue", {"wq": "unb"}),
            ],
        ),
        (
            "alloc_workqueue(WQ_HIGHPRI): highpri kworkers (kworker/N:MH)",
            [
                ("alloc_workqueue", {"name": "hi", "flags": "highpri"}),
                ("queue_work", {"wq": "hi", "id": 2, "spin_us": 500}),
                ("flush_workqueue", {"wq": "hi"}),
            ],
        ),
        (
            "alloc_ordered_workqueue + queue_delayed_work + mod_delayed_work",
            [
                ("alloc_ordered_workqueue", {"name": "ord"}),
                ("queue_delayed_work", {"wq": "ord", "id": 5, "delay_ms": 200}),
                ("mod_delayed_work", {"wq": "ord", "id": 5, "delay_ms": 10}),
                ("flush_delayed_work", {"id": 5}),
            ],
        ),
        (
            "cancel_delayed_work before expiry: it never runs",
            [
                ("queue_delayed_work", {"wq": "ord", "id": 5, "delay_ms": 1000}),
                ("cancel_delayed_work_sync", {"id": 5}),
            ],
        ),
        (
            "a self-requeueing item and drain_workqueue",
            [
                ("queue_work", {"wq": "single", "id": 3, "requeue": 3}),
                ("drain_workqueue", {"wq": "single"}),
            ],
        ),
        (
            "destroy_workqueue",
            [
                ("destroy_workqueue", {"wq": "legacy"}),
                ("destroy_workqueue", {"wq": "single"}),
                ("destroy_workqueue", {"wq": "unb"}),
                ("destroy_workqueue", {"wq": "hi"}),
                ("destroy_workqueue", {"wq": "ord"}),
            ],
        ),
    ]


def run_commands(client: WqlabClient, cmds: Sequence[tuple[str, dict[str, Any]]]) -> bool:
    ok = True
    for name, args in cmds:
        line = format_command(name, args)
        try:
            r = client.cmd(name, **args)
            extra = " ".join(f"{k}={v}" for k, v in r.fields.items())
            say(f"  $ {line:<58} ret={r.ret} {extra}".rstrip())
        except WqlabCommandError as e:
            say(f"  $ {line:<58} {e}", "red")
            ok = False
    return ok


def show(
    s: Session, title: str = "lifecycles", events: list[TraceEvent] | None = None
) -> list[Lifecycle]:
    """The lifecycles and timeline of the trace's wqlab items (``events``: parsed from a
    read of the trace the caller made already)."""
    if events is None:
        events = parse(s.trace.read())
    lcs = [
        lc
        for lc in build_lifecycles(events)
        if lc.function is not None and lc.function.module == "wqlab"
    ]
    heading(f"{title}: {len(lcs)} work executions of wqlab items (ms from first event)")
    say(format_lifecycles(lcs))
    heading("timeline: which CPU ran which item when")
    say(format_timeline(lcs, by="cpu"))
    return lcs


def write_pictures(
    lcs: Sequence[Lifecycle], png: str | None, perfetto: str | None, title: str
) -> None:
    """The PNG timeline and/or the Perfetto trace of these lifecycles (wqlab[plot])."""
    if png:
        from .plot import save_png, timeline_model

        model = timeline_model(lcs, title)
        save_png(model, png)
        say(f"wrote {png}: {len(model.lanes)} lanes, {len(model.bars)} executions")
    if perfetto:
        from .pftrace import perfetto_trace, read_back

        data = perfetto_trace(lcs)
        Path(perfetto).write_bytes(data)
        say(f"wrote {perfetto} (open it in ui.perfetto.dev): {read_back(data).summary()}")


def cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    if args.png or args.perfetto:  # a missing extra is said before the boot, not after
        from .plot import require

        if args.png:
            require("matplotlib", "--png")
        if args.perfetto:
            require("perfetto.trace_builder.proto_builder", "--perfetto")
    say(f"wqlab demo: building, booting {args.kernel} under QEMU (about 20 s without KVM)")
    with session(args.kernel, args.cpus) as s:
        say(
            f"kernel {s.kernel.version} ready in {s.vm.boot_seconds:.1f} s; "
            f"features: {s.client.features()}"
        )
        items = [int(s.client.cmd("work_new").fields["id"]) for _ in range(3)]
        items.append(int(s.client.cmd("work_new", delayed=1).fields["id"]))
        say(f"dynamic items (INIT_WORK / INIT_DELAYED_WORK): {items}")
        ok = True
        for title, cmds in demo_steps(args.cpus):
            heading(title)
            ok &= run_commands(s.client, cmds)
        # the walking skeleton's proof: the four events of the first schedule_work
        text = s.trace.read()
        events = parse(text)
        ptr = s.client.work(0)["ptr"]
        heading(f"the first schedule_work (item 0, work struct {ptr}): its four events")
        first_q = next((e for e in events if isinstance(e, QueueWork) and e.work == ptr), None)
        shown = 0
        for e in events:
            if first_q is not None and e.ts_ns >= first_q.ts_ns and getattr(e, "work", "") == ptr:
                say(f"  {e.ts:14.6f}  cpu={e.cpu}  {e.task}-{e.pid:<6} {e.name}: {e.body}")
                shown += 1
                if e.name == "workqueue_execute_end":
                    break
        lcs = show(s, events=events)
        if args.save_trace:
            Path(args.save_trace).write_text(text)
            say(f"wrote {args.save_trace} (the raw trace: wqlab plot reads it)")
        write_pictures(lcs, args.png, args.perfetto, f"wqlab demo on {s.kernel.version}")
        stats = s.trace.stats()
        say(
            f"\ntrace buffer: {stats.entries} entries, {stats.lost} lost; "
            f"whole demo {time.monotonic() - t0:.0f} s"
        )
        return 0 if ok and shown == 4 else 1


def cmd_run(args: argparse.Namespace) -> int:
    cmds: list[tuple[str, dict[str, Any]]] = []
    for text in args.commands:
        name, *kv = text.split()
        cmds.append((name, dict(p.split("=", 1) for p in kv)))
    with session(args.kernel, args.cpus, plane=args.plane) as s:
        ok = run_commands(s.client, cmds)
        if args.wait:
            time.sleep(args.wait)  # a CLI convenience, not a test: let queued work run
        show(s)
    return 0 if ok else 1


def cmd_shell(args: argparse.Namespace) -> int:
    from .shell import Shell

    say(f"wqlab shell: building, booting {args.kernel} under QEMU (about 20 s without KVM)")
    with session(args.kernel, args.cpus, plane=args.plane) as s:
        say(f"kernel {s.kernel.version} ready in {s.vm.boot_seconds:.1f} s, {args.cpus} CPUs")
        return Shell(s, lambda text, style: say(text, style)).run()


def format_event(ev: dict[str, Any], t0: int) -> str:
    """One line per event of the netlink stream (pure): time since ``t0`` (ns), kind, then
    the item's run or the queue."""
    when = (int(ev.get("time_ns", t0)) - t0) / 1e9
    if "id" in ev:
        what = f"id={ev['id']} seq={ev.get('seq')} cpu={ev.get('cpu')} pid={ev.get('pid')}"
        what += f" wq={ev['wq']}" if "wq" in ev else ""
    else:
        what = f"name={ev.get('name')} how={ev.get('how')} flags={ev.get('flags')}"
    return f"{when:12.6f} {ev.get('event', '?'):<10} {what}"


def cmd_events(args: argparse.Namespace) -> int:
    cmds = [
        (name, dict(p.split("=", 1) for p in kv)) for name, *kv in map(str.split, args.commands)
    ]
    with session(args.kernel, args.cpus, plane="netlink") as s, s.client.events() as stream:
        say("events of the wqlab module (netlink group 'events'); Ctrl-C stops", "bold")
        ok = run_commands(s.client, cmds)
        t0: int | None = None
        end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
        try:
            while time.monotonic() < end:
                for ev in stream.read(timeout=min(0.5, max(0.0, end - time.monotonic()))):
                    t0 = int(ev.get("time_ns", 0)) if t0 is None else t0
                    say(format_event(ev, t0))
        except KeyboardInterrupt:
            pass
        if stream.gaps or stream.overruns:
            say(f"lost: {stream.gaps} events (receive buffer overruns: {stream.overruns})", "red")
    return 0 if ok else 1


def cmd_plot(args: argparse.Namespace) -> int:
    from .lifecycle import select

    path = Path(args.trace)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise HarnessError(f"cannot read the trace {path}: {e.strerror}") from None
    lcs = build_lifecycles(parse(text))
    if args.workqueue:
        lcs = select(lcs, workqueue=args.workqueue)
    if args.module:
        lcs = [lc for lc in lcs if lc.function is not None and lc.function.module == args.module]
    if not any(lc.queued_ns is not None or lc.started_ns is not None for lc in lcs):
        raise HarnessError(
            f"{path}: no workqueue_queue_work or workqueue_execute_start events"
            + (" (after --workqueue/--module)" if args.workqueue or args.module else "")
            + "; is it the text of a tracefs 'trace' file with the workqueue events enabled?"
        )
    png = args.png
    if png is None and args.perfetto is None:
        png = f"{path.stem}.png"
    say(f"{path}: {len(lcs)} lifecycles")
    write_pictures(lcs, png, args.perfetto, args.title or path.name)
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .grade import grade_cli

    return grade_cli(
        args.lab, args.src, args.batch, args.kernel, args.cpus, args.out, lambda t: say(t)
    )


def cmd_kernels(args: argparse.Namespace) -> int:
    for k in kernels.installed():
        say(f"{k.version:<28} line {k.line:<6} {k.image}  headers: {k.kdir or 'missing'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="wqlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--kernel",
            default="default",
            help="default, 6.1, 6.12, latest, rt (PREEMPT_RT), debug (KASAN, lockdep...), a "
            "version or a vmlinuz path",
        )
        p.add_argument("--cpus", type=int, default=2, help="guest vCPUs (default 2)")

    p = sub.add_parser("demo", help="run every workqueue API once and show the lifecycles")
    common(p)
    p.add_argument("--png", metavar="FILE", help="write a PNG timeline of the run (wqlab[plot])")
    p.add_argument(
        "--perfetto", metavar="FILE", help="write a Perfetto trace of the run (ui.perfetto.dev)"
    )
    p.add_argument("--save-trace", metavar="FILE", help="write the raw trace text (for wqlab plot)")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("run", help="run module commands, e.g. 'schedule_work id=0'")
    common(p)
    p.add_argument("--plane", choices=PLANES, default="debugfs")
    p.add_argument("--wait", type=float, default=0.2, help="seconds to let work run")
    p.add_argument("commands", nargs="+", help="one quoted command each")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("shell", help="an interactive prompt to the module in a VM")
    common(p)
    p.add_argument("--plane", choices=PLANES, default="debugfs")
    p.set_defaults(fn=cmd_shell)
    p = sub.add_parser(
        "events", help="print the module's netlink event stream live (runs, blocks, queues)"
    )
    common(p)
    p.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="seconds to listen after the commands ran (default 5; 0: until Ctrl-C)",
    )
    p.add_argument("commands", nargs="*", help="commands to run first, e.g. 'schedule_work id=0'")
    p.set_defaults(fn=cmd_events)
    p = sub.add_parser(
        "plot", help="pictures of a saved trace (the text of a tracefs trace file); no VM"
    )
    p.add_argument("trace", help="raw trace text, e.g. from wqlab demo --save-trace")
    p.add_argument(
        "--png", metavar="FILE", help="PNG timeline (default: TRACE's base name + .png, here)"
    )
    p.add_argument("--perfetto", metavar="FILE", help="Perfetto trace (ui.perfetto.dev)")
    p.add_argument("--workqueue", help="only this workqueue's items")
    p.add_argument("--module", help="only work functions of this module (e.g. wqlab)")
    p.add_argument("--title", help="the picture's title (default: the file's name)")
    p.set_defaults(fn=cmd_plot)
    p = sub.add_parser("grade", help="build, load and grade a lab module (labs/README.md)")
    common(p)
    p.add_argument("lab", help="the lab: its folder name in labs/ or a prefix (01, 07...)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--src", type=Path, help="the student's module folder (default: the lab's skeleton)"
    )
    where.add_argument("--batch", type=Path, help="a class: one module folder per student")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts/grade"),
        help="KTAP, JUnit, CSV, console log and builds go here (default artifacts/grade)",
    )
    p.set_defaults(fn=cmd_grade)
    p = sub.add_parser("kernels", help="list installed kernels")
    p.set_defaults(fn=cmd_kernels)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        return int(args.fn(args))
    except HarnessError as e:
        say(f"wqlab: {e}", "red")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
