"""The PNG timeline and the Perfetto trace, checked for their content on recorded traces:
the refmod traces of 6.1 and 6.12 and a real ``wqlab demo`` run on 6.1
(``data/demo/trace-demo-6.1.txt``, written by ``wqlab demo --save-trace``). The timeline
is checked on the model it draws from and on the matplotlib artists it made; the Perfetto
file is decoded with the perfetto package's own protos (its TraceProcessor needs a binary
downloaded from outside the package registries, which this machine cannot reach)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import matplotlib.colors
import pytest
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent
from perfetto.trace_builder.proto_builder import TraceProtoBuilder

from wqlab.cli import main
from wqlab.lifecycle import Lifecycle, build_lifecycles, max_concurrency
from wqlab.pftrace import perfetto_trace, read_back
from wqlab.plot import NEVER_RAN, MissingDependency, draw, save_png, timeline_model
from wqlab.trace import ExecuteStart, QueueWork, parse

DATA = Path(__file__).parent / "data"
TRACES = {
    "6.1": DATA / "6.1" / "trace-refmod.txt",
    "6.12": DATA / "6.12" / "trace-refmod.txt",
    "demo-6.1": DATA / "demo" / "trace-demo-6.1.txt",
}


def lcs_of(name: str) -> list[Lifecycle]:
    return build_lifecycles(parse(TRACES[name].read_text()))


def _events(name: str) -> tuple[list[QueueWork], list[ExecuteStart]]:
    evs = parse(TRACES[name].read_text())
    return (
        [e for e in evs if isinstance(e, QueueWork)],
        [e for e in evs if isinstance(e, ExecuteStart)],
    )


# --------------------------------------------------------------------------- the model


def test_refmod_612_lanes_bars_and_marks() -> None:
    m = timeline_model(lcs_of("6.12"))
    assert [la.label for la in m.lanes] == [
        "cpu0 kworker/0:0-9",
        "cpu0 kworker/0:2-219",
        "cpu0 kworker/u8:1-31",
        "cpu0 kworker/u8:5-187",
        "cpu1 kworker/1:1-46",
        "cpu1 kworker/u8:8-199",
    ]
    assert m.workqueues == ("events", "mm_percpu_wq", "ref_ordered", "ref_unbound")
    # the ordered queue's three items ran one after the other on one unbound worker
    ordered = [b for b in m.bars if b.workqueue == "ref_ordered"]
    assert len(ordered) == 3
    assert {b.lane for b in ordered} == {m.lane("cpu0 kworker/u8:5-187").y}
    ordered.sort(key=lambda b: b.start_ms)
    assert all(a.end_ms <= b.start_ms for a, b in zip(ordered, ordered[1:], strict=False))
    # refmod's static item ran on cpu1's bound worker, as ref_fn
    static = [b for b in m.bars_on("cpu1 kworker/1:1-46") if b.function == "ref_fn [refmod]"]
    assert [b.workqueue for b in static] == ["events"]
    assert NEVER_RAN not in [la.label for la in m.lanes]
    assert m.latencies_us.keys() == {"bound", "unbound"}


@pytest.mark.parametrize("name", TRACES)
def test_every_queueing_is_a_mark_and_every_start_a_bar(name: str) -> None:
    queued, started = _events(name)
    m = timeline_model(lcs_of(name))
    assert len(m.marks) == len(queued)
    assert len(m.bars) == len(started)
    assert sorted(round(mk.queued_ms, 6) for mk in m.marks) == sorted(
        round((q.ts_ns - m.origin_ns) / 1e6, 6) for q in queued
    )
    assert sorted(round(b.start_ms, 6) for b in m.bars) == sorted(
        round((s.ts_ns - m.origin_ns) / 1e6, 6) for s in started
    )
    # a bar sits on the lane of the CPU and worker that executed it
    lanes = {la.y: la for la in m.lanes}
    by_start = {(s.ts_ns - m.origin_ns) / 1e6: s for s in started}
    for b in m.bars:
        s = by_start[b.start_ms]
        assert (lanes[b.lane].cpu, lanes[b.lane].worker) == (s.cpu, f"{s.task}-{s.pid}")
    # latencies: one per queueing that started, grouped by pool kind
    n_lat = sum(len(v) for v in m.latencies_us.values())
    assert n_lat == sum(1 for mk in m.marks if mk.latency_ms is not None)


def test_mark_latency_is_queue_to_start_of_the_same_item() -> None:
    lcs = lcs_of("6.1")
    m = timeline_model(lcs)
    for mk in m.marks:
        lc = next(lc for lc in lcs if lc.index == mk.index)
        assert lc.queued_ns is not None and lc.started_ns is not None
        assert mk.latency_ms == pytest.approx((lc.started_ns - lc.queued_ns) / 1e6)
        bar = next(b for b in m.bars if b.index == mk.index)
        assert mk.lane == bar.lane and mk.queued_ms <= bar.start_ms


def test_demo_run_shows_each_pool_kind_and_the_ordered_queues() -> None:
    lcs = [lc for lc in lcs_of("demo-6.1") if lc.function and lc.function.module == "wqlab"]
    m = timeline_model(lcs)
    assert m.latencies_us.keys() == {"bound", "bound-highpri", "unbound"}
    hi = [b for b in m.bars if b.workqueue == "wqlab_hi"]
    assert len(hi) == 1 and m.lanes[hi[0].lane].worker.startswith("kworker/1:1H-")
    assert {
        "events",
        "wqlab_hi",
        "wqlab_legacy",
        "wqlab_ord",
        "wqlab_single",
        "wqlab_unb",
    } == set(m.workqueues)
    # the module's own events name the items: the self-requeueing item 3 ran 4 times
    assert sum(1 for b in m.bars if b.item == 3 and b.workqueue == "wqlab_single") >= 4
    single = [lc for lc in lcs if lc.workqueue == "wqlab_single"]
    assert max_concurrency(single) == 1


def test_a_trace_cut_mid_run_has_a_never_ran_lane_and_an_open_bar() -> None:
    text = TRACES["6.12"].read_text().splitlines(keepends=True)
    # cut right after the third ref_ordered queueing: two items queued, not started yet,
    # and the first ref_ordered run started but not ended
    cut = next(i for i, line in enumerate(text) if "8.992727: workqueue_execute_start" in line)
    lcs = build_lifecycles(parse("".join(text[: cut + 1])))
    m = timeline_model(lcs)
    assert m.lanes[-1].label == NEVER_RAN
    never = [mk for mk in m.marks if mk.lane == m.lanes[-1].y]
    assert len(never) >= 2 and all(mk.latency_ms is None for mk in never)
    open_bars = [b for b in m.bars if not b.ended]
    assert [b.workqueue for b in open_bars] == ["ref_ordered"]
    assert open_bars[0].end_ms == pytest.approx(m.span_ms)
    d = draw(m)
    hatched = [r for r in d.bars if r.get_hatch()]
    assert len(hatched) == 1
    (open_coll,) = [c for c in d.collections if c.get_hatch()]
    assert open_coll.get_gid() == "bars-ref_ordered-open" and len(open_coll.get_paths()) == 1
    assert "no end in trace" in [t.get_text() for t in d.legend.get_texts()]


# --------------------------------------------------------------------------- the drawing


@pytest.mark.parametrize("name", TRACES)
def test_drawing_has_a_rectangle_per_bar_in_its_lane_and_colour(name: str) -> None:
    m = timeline_model(lcs_of(name))
    d = draw(m)
    assert len(d.bars) == len(m.bars)
    for rect, bar in zip(d.bars, m.bars, strict=True):
        assert rect.get_y() + rect.get_height() / 2 == pytest.approx(bar.lane)
        assert rect.get_x() == pytest.approx(bar.start_ms)
        assert rect.get_width() >= bar.end_ms - bar.start_ms - 1e-9
        assert matplotlib.colors.same_color(rect.get_facecolor(), d.colours[bar.workqueue])
    # what is on the axes: the bars' collections hold every bar, one colour each
    on_axes = [c for c in d.timeline_ax.collections if str(c.get_gid()).startswith("bars-")]
    assert on_axes == d.collections
    assert sum(len(c.get_paths()) for c in on_axes) == len(m.bars)
    for c in on_axes:
        wq = c.get_gid().removeprefix("bars-").removesuffix("-open")
        assert all(matplotlib.colors.same_color(f, d.colours[wq]) for f in c.get_facecolors())
    # a latency line per queueing that started
    assert sum(len(lc.get_segments()) for lc in d.latency_lines) == sum(
        1 for mk in m.marks if mk.latency_ms is not None
    )
    labels = [t.get_text() for t in d.timeline_ax.get_yticklabels()]
    assert labels == [la.label for la in m.lanes]
    legend = [t.get_text() for t in d.legend.get_texts()]
    assert legend[: len(m.workqueues)] == list(m.workqueues)
    # marks: one point per queueing, in its workqueue's colour
    assert sum(len(line.get_xdata()) for line in d.marks) == len(m.marks)
    for line in d.marks:
        wq = line.get_gid().removeprefix("marks-")
        assert matplotlib.colors.same_color(line.get_color(), d.colours[wq])
    # a histogram per pool kind, holding every latency of that kind
    assert list(d.histogram_axes) == list(m.latencies_us)
    for kind, ax in d.histogram_axes.items():
        assert sum(p.get_height() for p in ax.patches) == len(m.latencies_us[kind])


def test_png_is_written_at_the_figures_size(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "t.png"
    d = save_png(lcs_of("6.1"), out, title="refmod 6.1")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    w_in, h_in = d.figure.get_size_inches()
    assert (width, height) == (round(w_in * d.figure.dpi), round(h_in * d.figure.dpi))
    assert d.timeline_ax.get_title(loc="left") == "refmod 6.1"


def test_without_matplotlib_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependency, match=r"pip install 'wqlab\[plot\]'"):
        draw(timeline_model(lcs_of("6.1")))


# --------------------------------------------------------------------------- Perfetto


@pytest.mark.parametrize("name", TRACES)
def test_perfetto_tracks_slices_and_flows(name: str) -> None:
    lcs = lcs_of(name)
    rb = read_back(perfetto_trace(lcs))
    assert rb.problems == []
    m = timeline_model(lcs)
    cpus = {f"CPU {la.cpu}" for la in m.lanes}
    assert cpus <= set(rb.tracks.values())
    # a track per CPU and worker: the timeline's lanes, under their CPU
    workers = {p for p in rb.tracks.values() if "/kworker" in p}
    want = set()
    for la in m.lanes:
        comm, _, pid = la.worker.rpartition("-")
        want.add(f"CPU {la.cpu}/{comm} pid {pid}")
    assert workers == want
    # a slice per execution, on its worker's track, at the trace's times
    started = [lc for lc in lcs if lc.started_ns is not None]
    assert len(rb.slices) == len(started)
    got = {(s.track, s.start_ns, s.end_ns, s.name) for s in rb.slices}
    assert got == {
        (
            f"CPU {lc.exec_cpu}/{lc.worker} pid {lc.worker_pid}",
            lc.started_ns,
            lc.ended_ns,
            lc.function_name,
        )
        for lc in started
    }
    # a flow from each queueing (on the queueing CPU's queue_work track) to its start
    joined = [(s, d) for s, d in rb.flows.values() if d is not None]
    with_q = [lc for lc in started if lc.queued_ns is not None]
    assert len(joined) == len(with_q)
    want_flows = {(f"CPU {lc.queuer_cpu}/queue_work", lc.queued_ns, lc.started_ns) for lc in with_q}
    assert {(s.track, s.start_ns, d.start_ns) for s, d in joined} == want_flows


def test_perfetto_file_decodes_with_the_package_protos_alone() -> None:
    """Independent of read_back: the raw packets, as ui.perfetto.dev would get them."""
    lcs = lcs_of("demo-6.1")
    trace = Trace()
    trace.ParseFromString(perfetto_trace(lcs))
    evs = [p.track_event for p in trace.packet if p.HasField("track_event")]
    descs = [p.track_descriptor for p in trace.packet if p.HasField("track_descriptor")]
    declared = {d.uuid for d in descs}
    assert all(e.track_uuid in declared for e in evs)
    begins = [e for e in evs if e.type == TrackEvent.TYPE_SLICE_BEGIN]
    ends = [e for e in evs if e.type == TrackEvent.TYPE_SLICE_END]
    assert len(begins) == len(ends) == sum(1 for lc in lcs if lc.started_ns is not None)
    flow_out = {f for e in evs for f in e.flow_ids}
    flow_in = {f for e in begins for f in e.terminating_flow_ids}
    assert flow_out == flow_in and flow_out
    assert all(p.trusted_packet_sequence_id == 1 for p in trace.packet)
    ts = [p.timestamp for p in trace.packet if p.HasField("track_event")]
    assert ts == sorted(ts)


def test_read_back_reports_a_broken_trace() -> None:
    b = TraceProtoBuilder()
    p = b.add_packet()
    p.trusted_packet_sequence_id = 1
    p.track_descriptor.uuid = 5
    p.track_descriptor.name = "w"
    p = b.add_packet()
    p.timestamp = 10
    p.trusted_packet_sequence_id = 1
    p.track_event.type = TrackEvent.TYPE_SLICE_BEGIN
    p.track_event.track_uuid = 5
    p.track_event.terminating_flow_ids.append(7)
    rb = read_back(b.serialize())
    assert any("never ends" in x for x in rb.problems)


# --------------------------------------------------------------------------- the CLI


def test_wqlab_plot_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, pf = tmp_path / "t.png", tmp_path / "t.pftrace"
    rc = main(["plot", str(TRACES["demo-6.1"]), "--module", "wqlab", "--png", str(png),
               "--perfetto", str(pf)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "19 executions" in out and "19 flows" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert read_back(pf.read_bytes()).problems == []


def test_wqlab_plot_of_a_file_without_work_events_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    assert main(["plot", str(f)]) == 2
    assert "no workqueue_queue_work or workqueue_execute_start events" in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the trace" in capsys.readouterr().out


def test_demo_says_a_missing_extra_before_it_boots(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import wqlab.cli

    def no_boot(*a: object, **k: object) -> None:
        raise AssertionError("the demo booted")

    monkeypatch.setattr(wqlab.cli, "session", no_boot)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["demo", "--png", "x.png"]) == 2
    out = capsys.readouterr().out
    assert "--png needs the Python package 'matplotlib'" in out
    assert "pip install 'wqlab[plot]'" in out
