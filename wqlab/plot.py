"""Pictures of a run: a PNG timeline (matplotlib) of what ran where and when.

Two steps, so that a test can check the picture's content without looking at pixels:

1. :func:`timeline_model` (pure, no matplotlib): lifecycles in, a :class:`Timeline` out:
   one lane per CPU and worker, a :class:`Bar` per execution, a :class:`Mark` per
   queueing with its queue→start latency, a colour per workqueue, the latencies grouped
   by pool kind (bound, bound-highpri, unbound, BH, ...).
2. :func:`draw` renders a model with matplotlib's Agg backend (no display) and returns the
   figure and the artists it made (:class:`Drawing`); :func:`save_png` writes the file.

    lcs = build_lifecycles(parse(text))
    drawing = save_png(lcs, "run.png", title="wqlab demo on 6.1")

matplotlib is an optional dependency (``pip install 'wqlab[plot]'``): this module imports
it only in :func:`draw`, and :func:`require` raises a :class:`MissingDependency` that
says what to install.
"""

from __future__ import annotations

import importlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import HarnessError
from .lifecycle import Lifecycle

__all__ = [
    "Bar",
    "Drawing",
    "Lane",
    "Mark",
    "MissingDependency",
    "Timeline",
    "draw",
    "require",
    "save_png",
    "timeline_model",
]

NEVER_RAN = "never ran"
"""Label of the lane that holds the marks of queueings that never started in the trace."""


class MissingDependency(HarnessError):
    """An optional dependency of the pictures is not installed."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (an extra of ``wqlab[plot]``) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        raise MissingDependency(
            f"{what} needs the Python package {top!r}, which is not installed: "
            f"pip install 'wqlab[plot]' (or pip install {top}); "
            f"the repository's venv has it (vm/setup.sh --venv)"
        ) from e


@dataclass(frozen=True)
class Lane:
    """One row of the timeline: a worker on a CPU (``cpu`` None: the never-ran lane)."""

    y: int
    cpu: int | None
    worker: str  # "kworker/1:1-46"; NEVER_RAN for the lane of queueings that never ran

    @property
    def label(self) -> str:
        return self.worker if self.cpu is None else f"cpu{self.cpu} {self.worker}"


@dataclass(frozen=True)
class Bar:
    """One execution (``execute_start`` → ``execute_end``), times in ms from the origin."""

    lane: int  # Lane.y
    start_ms: float
    end_ms: float
    ended: bool  # False: no execute_end in the trace; the bar runs to the trace's end
    workqueue: str
    function: str
    index: int  # Lifecycle.index
    item: int | None  # the wqlab item id, when the module's own event said it


@dataclass(frozen=True)
class Mark:
    """One queueing (``queue_work``), drawn on the lane of the execution it led to."""

    lane: int
    queued_ms: float
    latency_ms: float | None  # queue_work → execute_start; None: it never started
    workqueue: str
    index: int


@dataclass(frozen=True)
class Timeline:
    """What the PNG shows, computed before anything is drawn (see :func:`timeline_model`)."""

    lanes: tuple[Lane, ...]
    bars: tuple[Bar, ...]
    marks: tuple[Mark, ...]
    workqueues: tuple[str, ...]  # in the legend's order
    latencies_us: dict[str, tuple[float, ...]]  # pool kind → queue→start latencies, µs
    origin_ns: int
    span_ms: float
    title: str = ""

    def lane(self, label: str) -> Lane:
        for lane in self.lanes:
            if lane.label == label:
                return lane
        raise KeyError(f"no lane {label!r}; lanes: {[la.label for la in self.lanes]}")

    def bars_on(self, label: str) -> list[Bar]:
        y = self.lane(label).y
        return [b for b in self.bars if b.lane == y]


def _natural(text: str) -> list[object]:
    """Sort key: ``kworker/u8:10`` after ``kworker/u8:9``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _kind(lc: Lifecycle) -> str:
    if lc.worker_kind is not None:
        return lc.worker_kind.value
    return "unbound" if lc.unbound else "bound"


def timeline_model(lcs: Iterable[Lifecycle], title: str = "") -> Timeline:
    """The timeline of these lifecycles (pure). Lifecycles with neither a queueing nor a
    start (the trace began while they ran) draw nothing; a queueing that never started
    goes on a last lane, ``never ran``."""
    lcs = [lc for lc in lcs if lc.queued_ns is not None or lc.started_ns is not None]
    times = [
        t
        for lc in lcs
        for t in (lc.queued_ns, lc.activated_ns, lc.started_ns, lc.ended_ns)
        if t is not None
    ]
    origin = min(times) if times else 0
    last = max(times) if times else 0

    def ms(t: int) -> float:
        return (t - origin) / 1e6

    keys = sorted(
        {(lc.exec_cpu, f"{lc.worker}-{lc.worker_pid}") for lc in lcs if lc.started_ns is not None},
        key=lambda k: (-1 if k[0] is None else k[0], _natural(k[1])),
    )
    lanes = [Lane(y, cpu, worker) for y, (cpu, worker) in enumerate(keys)]
    lane_of = {(la.cpu, la.worker): la.y for la in lanes}
    if any(lc.started_ns is None for lc in lcs):
        lanes.append(Lane(len(lanes), None, NEVER_RAN))
    never = len(lanes) - 1

    bars: list[Bar] = []
    marks: list[Mark] = []
    latencies: dict[str, list[float]] = {}
    workqueues: list[str] = []
    for lc in lcs:
        wq = lc.workqueue or "?"
        if wq not in workqueues:
            workqueues.append(wq)
        if lc.started_ns is not None:
            y = lane_of[(lc.exec_cpu, f"{lc.worker}-{lc.worker_pid}")]
            end = lc.ended_ns if lc.ended_ns is not None else last
            bars.append(
                Bar(
                    y,
                    ms(lc.started_ns),
                    ms(end),
                    lc.ended_ns is not None,
                    wq,
                    lc.function_name,
                    lc.index,
                    lc.item_id,
                )
            )
        else:
            y = never
        if lc.queued_ns is not None:
            lat = lc.queue_latency_ns
            marks.append(
                Mark(y, ms(lc.queued_ns), None if lat is None else lat / 1e6, wq, lc.index)
            )
            if lat is not None:
                latencies.setdefault(_kind(lc), []).append(lat / 1e3)
    return Timeline(
        lanes=tuple(lanes),
        bars=tuple(bars),
        marks=tuple(marks),
        workqueues=tuple(sorted(workqueues, key=_natural)),
        latencies_us={k: tuple(v) for k, v in sorted(latencies.items())},
        origin_ns=origin,
        span_ms=(last - origin) / 1e6,
        title=title,
    )


@dataclass
class Drawing:
    """The matplotlib objects :func:`draw` made (a test reads them back)."""

    figure: Any  # matplotlib.figure.Figure
    timeline_ax: Any  # matplotlib.axes.Axes
    histogram_axes: dict[str, Any]  # pool kind → Axes
    bars: list[Any] = field(default_factory=list)  # one Rectangle per Bar, in model order
    collections: list[Any] = field(default_factory=list)  # the PatchCollections drawing them
    latency_lines: list[Any] = field(default_factory=list)  # a LineCollection per workqueue
    marks: list[Any] = field(default_factory=list)  # one Line2D per workqueue with marks
    colours: dict[str, Any] = field(default_factory=dict)  # workqueue → RGBA
    legend: Any = None


MIN_BAR_FRACTION = 0.002
"""A bar is drawn at least this fraction of the time axis wide, so that a 5 µs run in a
3 s picture is still seen; the model (:class:`Bar`) keeps the true times."""


def draw(model: Timeline) -> Drawing:
    """Render the model: the timeline on top, a latency histogram per pool kind below."""
    require("matplotlib", "drawing a timeline")
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    kinds = list(model.latencies_us) or ["(no execution)"]
    n_lanes = max(1, len(model.lanes))
    fig = Figure(figsize=(12, 2.2 + 0.42 * n_lanes + 2.6), dpi=100, layout="constrained")
    grid = fig.add_gridspec(2, len(kinds), height_ratios=[1.0 + 0.42 * n_lanes, 2.6])
    ax = fig.add_subplot(grid[0, :])
    cmap = matplotlib.colormaps["tab10" if len(model.workqueues) <= 10 else "tab20"]
    colours = {wq: cmap(i % cmap.N) for i, wq in enumerate(model.workqueues)}
    drawing = Drawing(figure=fig, timeline_ax=ax, histogram_axes={}, colours=colours)

    span = max(model.span_ms, 1e-3)
    min_w = span * MIN_BAR_FRACTION
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    # one collection per (workqueue, ended): thousands of bars draw in a second
    groups: dict[tuple[str, bool], list[Any]] = {}
    for bar in model.bars:
        rect = Rectangle(
            (bar.start_ms, bar.lane - 0.3),
            max(bar.end_ms - bar.start_ms, min_w),
            0.6,
            facecolor=colours[bar.workqueue],
            edgecolor="black",
            linewidth=0.4,
            hatch=None if bar.ended else "//",
        )
        rect.set_gid(f"lifecycle-{bar.index}")
        drawing.bars.append(rect)
        groups.setdefault((bar.workqueue, bar.ended), []).append(rect)
    for (wq, ended), rects in groups.items():
        coll = PatchCollection(rects, match_original=True, zorder=2)
        if not ended:
            coll.set_hatch("//")
        coll.set_gid(f"bars-{wq}{'' if ended else '-open'}")
        ax.add_collection(coll)
        drawing.collections.append(coll)
    # queueings: a tick above the lane at the queue time, a thin line to the start
    for wq in model.workqueues:
        ms = [m for m in model.marks if m.workqueue == wq]
        if not ms:
            continue
        (line,) = ax.plot(
            [m.queued_ms for m in ms],
            [m.lane - 0.42 for m in ms],
            linestyle="none",
            marker="v",
            markersize=5,
            color=colours[wq],
            markeredgecolor="black",
            markeredgewidth=0.4,
            zorder=3,
        )
        line.set_gid(f"marks-{wq}")
        drawing.marks.append(line)
        segs = [
            [(m.queued_ms, m.lane - 0.36), (m.queued_ms + m.latency_ms, m.lane - 0.36)]
            for m in ms
            if m.latency_ms is not None
        ]
        if segs:
            lc = LineCollection(segs, colors=[colours[wq]], linewidths=0.8, zorder=3)
            lc.set_gid(f"latency-{wq}")
            ax.add_collection(lc)
            drawing.latency_lines.append(lc)
    _label_latencies(ax, model, span)
    ax.set_yticks([la.y for la in model.lanes], [la.label for la in model.lanes])
    ax.set_ylim(n_lanes - 0.4, -0.8)
    ax.set_xlim(-span * 0.01, span * 1.01)
    ax.set_xlabel("ms from the first event")
    ax.grid(axis="x", linewidth=0.3)
    ax.set_title(
        model.title or "workqueue executions",
        loc="left",
        fontsize=11,
    )
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(facecolor=colours[wq], edgecolor="black", label=wq) for wq in model.workqueues
    ]
    handles.append(
        Line2D(
            [], [], linestyle="none", marker="v", color="grey", label="queue_work (line: →start)"
        )
    )
    if any(not b.ended for b in model.bars):
        handles.append(
            Patch(facecolor="white", edgecolor="black", hatch="//", label="no end in trace")
        )
    drawing.legend = ax.legend(
        handles=handles,
        title="workqueue",
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=8,
        title_fontsize=8,
    )

    every = [max(v, 0.1) for vs in model.latencies_us.values() for v in vs]
    bins = _log_bins(min(every), max(every)) if every else []
    from matplotlib.ticker import LogFormatter, MaxNLocator, NullFormatter

    first = None
    for i, kind in enumerate(kinds):
        hax = fig.add_subplot(grid[1, i], sharex=first)
        first = first or hax
        drawing.histogram_axes[kind] = hax
        values = model.latencies_us.get(kind, ())
        if values:
            hax.hist([max(v, 0.1) for v in values], bins=bins, color="#4c72b0", edgecolor="black")
            hax.set_xscale("log")
            hax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
            hax.xaxis.set_minor_formatter(NullFormatter())
        hax.yaxis.set_major_locator(MaxNLocator(integer=True))
        hax.set_title(f"{kind}: {len(values)} queue→start", fontsize=9)
        hax.set_xlabel("latency, µs (log)", fontsize=8)
        hax.tick_params(labelsize=7)
        if i == 0:
            hax.set_ylabel("executions", fontsize=8)
    return drawing


def _log_bins(lo: float, hi: float, per_decade: int = 6) -> list[float]:
    """Bins of equal width on a log axis, at least a decade wide in all."""
    a = math.floor(math.log10(lo) * per_decade)
    b = max(math.ceil(math.log10(hi) * per_decade), a + per_decade)
    return [10 ** (k / per_decade) for k in range(a, max(b, a + 1) + 1)]


def _label_latencies(ax: Any, model: Timeline, span: float) -> None:
    """Write each queueing's latency next to its mark, skipping labels that would overlap
    the previous one on the same lane."""
    last_x: dict[int, float] = {}
    for m in sorted(model.marks, key=lambda m: (m.lane, m.queued_ms)):
        if m.latency_ms is None:
            text = "never ran"
        elif m.latency_ms >= 1:
            text = f"{m.latency_ms:.1f} ms"
        else:
            text = f"{m.latency_ms * 1000:.0f} µs"
        if m.queued_ms - last_x.get(m.lane, -math.inf) < span * 0.045:
            continue
        last_x[m.lane] = m.queued_ms
        ax.annotate(
            text,
            (m.queued_ms, m.lane - 0.42),
            xytext=(2, 3),
            textcoords="offset points",
            fontsize=6,
            color="#333333",
        )


def save_png(
    lcs: Sequence[Lifecycle] | Timeline, path: str | os.PathLike[str], title: str = ""
) -> Drawing:
    """Draw lifecycles (or a model) and write the PNG; return what was drawn."""
    model = lcs if isinstance(lcs, Timeline) else timeline_model(lcs, title)
    drawing = draw(model)
    out = Path(path)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    drawing.figure.savefig(out, format="png")
    return drawing
