"""Render lifecycles as plain text: a table for assertion messages, a per-CPU timeline.

    print(format_lifecycles(lcs))
    print(format_timeline(lcs, width=72))

Plain text always works (CI logs, pytest assertion messages); :func:`print_lifecycles`
uses ``rich`` when it is importable, for the demo CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from wqlab.lifecycle import Lifecycle

__all__ = ["format_lifecycles", "format_timeline", "print_lifecycles"]

_COLUMNS = (
    "#",
    "work",
    "function",
    "workqueue",
    "qcpu",
    "xcpu",
    "worker",
    "queued ms",
    "start ms",
    "end ms",
    "q→s ms",
)


def _origin(lcs: Sequence[Lifecycle]) -> int:
    firsts = [t for t in (lc.first_ns for lc in lcs) if t is not None]
    return min(firsts) if firsts else 0


def _ms(t: int | None, origin: int = 0) -> str:
    return "-" if t is None else f"{(t - origin) / 1e6:.3f}"


def _opt(v: object) -> str:
    return "-" if v is None else str(v)


def _rows(lcs: Sequence[Lifecycle], origin: int | None = None) -> list[tuple[str, ...]]:
    t0 = _origin(lcs) if origin is None else origin
    rows: list[tuple[str, ...]] = []
    for lc in lcs:
        item = lc.item_id
        worker = "-" if lc.worker is None else f"{lc.worker}-{lc.worker_pid}"
        if lc.worker_kind is not None:
            worker += f" ({lc.worker_kind.value})"
        rows.append(
            (
                str(lc.index) if item is None else f"{lc.index} id={item}",
                lc.work[-8:],
                lc.function_name,
                _opt(lc.workqueue),
                _opt(lc.queue_cpu),
                _opt(lc.exec_cpu),
                worker,
                _ms(lc.queued_ns, t0),
                _ms(lc.started_ns, t0),
                _ms(lc.ended_ns, t0),
                _ms(lc.queue_latency_ns),
            )
        )
    return rows


def format_lifecycles(lcs: Sequence[Lifecycle], origin_ns: int | None = None) -> str:
    """A fixed-width table, one row per lifecycle; times in ms from the first event."""
    rows = [_COLUMNS, *_rows(lcs, origin_ns)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    right = {4, 5, 7, 8, 9, 10}
    out = []
    for n, r in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    if not lcs:
        out.append("(no lifecycles)")
    return "\n".join(out)


def format_timeline(lcs: Sequence[Lifecycle], width: int = 72, by: str = "cpu") -> str:
    """An ASCII picture of who executed when: one row per CPU (``by="cpu"``) or per
    worker (``by="worker"``); each item is drawn with its own letter, ``#`` where two
    share a cell. A legend maps letters to lifecycles."""
    ran = [lc for lc in lcs if lc.started_ns is not None]
    if not ran:
        return "(nothing executed)"
    t0 = min(lc.started_ns for lc in ran if lc.started_ns is not None)
    t1 = max(lc.ended_ns if lc.ended_ns is not None else lc.started_ns or 0 for lc in ran)
    span = max(t1 - t0, 1)

    def col(t: int) -> int:
        return min(width - 1, (t - t0) * width // span)

    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    rows: dict[str, list[str]] = {}
    legend = []
    for n, lc in enumerate(ran):
        key = f"cpu{lc.exec_cpu}" if by == "cpu" else f"{lc.worker}-{lc.worker_pid}"
        row = rows.setdefault(key, [" "] * width)
        ch = letters[n % len(letters)]
        start = col(lc.started_ns or t0)
        end = col(lc.ended_ns) if lc.ended_ns is not None else width - 1
        for c in range(start, end + 1):
            row[c] = ch if row[c] == " " else "#"
        legend.append(
            f"  {ch} = #{lc.index} {lc.function_name} on {_opt(lc.workqueue)}"
            f" ({lc.worker}, {_ms(lc.run_ns)} ms)"
        )
    label_w = max(len(k) for k in rows)
    out = [f"{'':{label_w}} |0 ms{'':{max(0, width - 4 - 10)}}{span / 1e6:>8.3f} ms|"]
    for key in sorted(rows, key=lambda k: (len(k), k)):
        out.append(f"{key:>{label_w}} |{''.join(rows[key])}|")
    out.extend(legend)
    return "\n".join(out)


def print_lifecycles(lcs: Sequence[Lifecycle], console: Any = None) -> None:
    """Print the table with ``rich`` (a terminal's colours and widths)."""
    table = Table(*_COLUMNS, title="workqueue lifecycles")
    for r in _rows(lcs):
        table.add_row(*r)
    (console or Console()).print(table)
