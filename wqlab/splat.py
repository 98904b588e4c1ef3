"""The one kernel splat detector: which console or dmesg lines are kernel reports that fail
the test in progress (pure; the VM's console watcher and the plugin's dmesg check share it).

A report is recognised by its *first* line, the way the kernel prints it: a timestamp
(``[   12.345678]``, optionally a ``[    T1]`` caller id), at most one subsystem prefix
that the kernel puts there itself (``watchdog: ``, ``rcu: ``, ``kmemleak: ``), then the
report's own words at the start of the message. A message that merely mentions
``BUG:`` or ``KASAN`` further along, a line from the guest's user space (no timestamp),
and the debug features' own start-up notices (``kmemleak: Kernel memory leak detector
initialized``, ``ODEBUG: selftest passed``) are not reports.

Kinds, in the order they are tried (the first that matches names the splat):

==================  =====================================================================
KASAN               ``BUG: KASAN: slab-use-after-free in ...``
KFENCE              ``BUG: KFENCE: use-after-free read in ...``
UBSAN               ``UBSAN: array-index-out-of-bounds in ...``
lockdep             ``WARNING: possible circular locking dependency detected`` and every
                    other lockdep ``WARNING:`` (inconsistent lock state, recursive
                    locking, bad unlock balance, suspicious RCU usage, ...)
atomic sleep        ``BUG: sleeping function called from invalid context at ...``
scheduling atomic   ``BUG: scheduling while atomic: ...``
workqueue lockup    ``BUG: workqueue lockup - pool cpus=0 ...``
soft lockup         ``watchdog: BUG: soft lockup - CPU#0 stuck for 22s!``
hard lockup         ``watchdog: Watchdog detected hard LOCKUP on cpu 1``
RCU stall           ``rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:``
hung task           ``INFO: task kworker/0:1:20 blocked for more than 120 seconds.``
ODEBUG              ``ODEBUG: free active (active state 0) object: ... object type: work_struct``
kmemleak            ``kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)``
                    and ``unreferenced object 0x...`` (kmemleak.verbose)
Oops                ``Oops: 0002 [#1] PREEMPT SMP``, ``general protection fault``,
                    ``Unable to handle kernel ...``
BUG                 ``BUG: kernel NULL pointer dereference``, ``kernel BUG at ...``, any
                    other ``BUG:``
WARNING             ``WARNING: CPU: 1 PID: 5 at kernel/workqueue.c:...`` (WARN_ON)
panic               ``Kernel panic - not syncing: ...``
==================  =====================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# timestamp, optional caller id (CONFIG_PRINTK_CALLER), optional subsystem prefix
_HEAD = r"^\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])?\s+(?:(?:watchdog|NMI watchdog|rcu|kmemleak): )?"

KINDS: tuple[tuple[str, str], ...] = (
    ("KASAN", r"BUG: KASAN: "),
    ("KFENCE", r"BUG: KFENCE: "),
    ("UBSAN", r"UBSAN: "),
    (
        "lockdep",
        r"(?:WARNING|INFO): (?:possible (?:circular|recursive|irq lock inversion)"
        r"|inconsistent lock state|bad unlock balance|suspicious RCU usage"
        r"|held lock freed|lock held when returning|nested lock was not taken"
        r"|\S+-safe -> \S+-unsafe lock order)",
    ),
    ("atomic sleep", r"BUG: sleeping function called from invalid context"),
    ("scheduling atomic", r"BUG: scheduling while atomic"),
    ("workqueue lockup", r"BUG: workqueue lockup"),
    ("soft lockup", r"BUG: soft lockup"),
    ("hard lockup", r"Watchdog detected hard LOCKUP"),
    ("RCU stall", r"INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stall"),
    ("hung task", r"INFO: task \S.* blocked for more than \d+ s"),
    ("ODEBUG", r"ODEBUG: \w+ .*object type: "),
    ("kmemleak", r"\d+ new suspected memory leaks|unreferenced object 0x"),
    ("Oops", r"Oops|general protection fault|Unable to handle kernel"),
    ("BUG", r"BUG: |kernel BUG at "),
    ("WARNING", r"WARNING: "),
    ("panic", r"Kernel panic - not syncing"),
)
_KIND_RES = tuple((kind, re.compile(_HEAD + "(?:" + pat + ")")) for kind, pat in KINDS)

# any of them (one search per console line)
SPLAT_RE = re.compile(_HEAD + "(?:" + "|".join(f"(?:{pat})" for _, pat in KINDS) + ")")
PANIC_RE = re.compile(r"Kernel panic - not syncing|reboot: Restarting system")


def splat_kind(line: str) -> str | None:
    """The kind of kernel report that ``line`` starts (see the table above), or ``None``."""
    if not SPLAT_RE.search(line):
        return None
    for kind, rx in _KIND_RES:
        if rx.search(line):
            return kind
    return None  # pragma: no cover - SPLAT_RE is the union of _KIND_RES


def is_splat(line: str) -> bool:
    return SPLAT_RE.search(line) is not None


@dataclass
class Splat:
    """A kernel report: its first line, where it was seen, its kind and the lines around it
    (the line before, for ``WARN(cond, fmt...)`` prints its message first, and the call
    trace after)."""

    line: str
    index: int
    text: list[str] = field(default_factory=list)
    kind: str = ""


def find_splats(lines: Iterable[str], context: int = 40) -> list[Splat]:
    """Every report in ``lines`` (dmesg output, a console log), each with the line before
    it and up to ``context`` lines from its first one."""
    lines = list(lines)
    found = []
    for i, line in enumerate(lines):
        kind = splat_kind(line)
        if kind is not None:
            before = [ln for ln in lines[max(0, i - 1) : i] if ln.startswith("[")]
            found.append(Splat(line, i, [*before, *lines[i : i + context]], kind))
    return found
