"""A Perfetto trace of a run (open it in ui.perfetto.dev), written with the ``perfetto``
package's trace builder (``perfetto.trace_builder.proto_builder.TraceProtoBuilder``).

Layout: a track per CPU (``CPU 1``), under it a track per worker that executed there
(``kworker/1:1 pid 46``) holding one slice per execution, named for the work function,
and a ``queue_work`` track holding an instant per queueing made on that CPU. A flow joins
each queueing to the start of the execution it led to, so the UI draws an arrow from
``queue_work`` to the slice. Executions whose ``execute_end`` is not in the trace end at
the next start on the same worker or at the trace's end (annotated ``ended: no``).

:func:`read_back` decodes a written file with the same package's protos (tracks, slices,
instants, flows): the tests use it, and the CLI prints its summary after writing, since
perfetto's TraceProcessor needs a binary that it downloads from outside the package
registries.

    data = perfetto_trace(build_lifecycles(events))
    Path("run.pftrace").write_bytes(data)
    print(read_back(data).summary())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .lifecycle import Lifecycle
from .plot import require

__all__ = ["Readback", "SliceRec", "perfetto_trace", "read_back"]

SEQUENCE_ID = 1
CPU_UUID = 1_000
QUEUE_UUID = 2_000
WORKER_UUID = 10_000


def _builder() -> Any:
    mod = require("perfetto.trace_builder.proto_builder", "writing a Perfetto trace")
    return mod.TraceProtoBuilder()


def _annotate(ev: Any, **values: object) -> None:
    for name, value in values.items():
        if value is None:
            continue
        a = ev.debug_annotations.add()
        a.name = name
        if isinstance(value, bool):
            a.bool_value = value
        elif isinstance(value, int):
            a.int_value = value
        elif isinstance(value, float):
            a.double_value = value
        else:
            a.string_value = str(value)


def perfetto_trace(lcs: Iterable[Lifecycle]) -> bytes:
    """The Perfetto protobuf trace of these lifecycles (see the module's docstring)."""
    lcs = [lc for lc in lcs if lc.queued_ns is not None or lc.started_ns is not None]
    builder = _builder()
    te = require("perfetto.protos.perfetto.trace.perfetto_trace_pb2", "writing a Perfetto trace")
    TrackEvent, TrackDescriptor = te.TrackEvent, te.TrackDescriptor
    first = True

    def packet(ts: int | None = None) -> Any:
        nonlocal first
        p = builder.add_packet()
        p.trusted_packet_sequence_id = SEQUENCE_ID
        if first:
            p.sequence_flags = te.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
            first = False
        if ts is not None:
            p.timestamp = ts
        return p

    times = [t for lc in lcs for t in (lc.queued_ns, lc.started_ns, lc.ended_ns) if t is not None]
    last = max(times) if times else 0

    # tracks: CPU n, its workers, its queue_work track
    cpus = sorted(
        {lc.exec_cpu for lc in lcs if lc.started_ns is not None and lc.exec_cpu is not None}
        | {lc.queuer_cpu for lc in lcs if lc.queued_ns is not None and lc.queuer_cpu is not None}
    )
    workers = sorted(
        {
            (lc.exec_cpu if lc.exec_cpu is not None else -1, lc.worker or "?", lc.worker_pid or 0)
            for lc in lcs
            if lc.started_ns is not None
        }
    )
    if any(cpu == -1 for cpu, _, _ in workers):
        cpus = [-1, *cpus]
    for rank, cpu in enumerate(cpus):
        d = packet().track_descriptor
        d.uuid = CPU_UUID + cpu + 1
        d.name = f"CPU {cpu}" if cpu >= 0 else "CPU ?"
        d.child_ordering = TrackDescriptor.EXPLICIT
        d.sibling_order_rank = rank
    worker_uuid: dict[tuple[int, str, int], int] = {}
    for n, (cpu, comm, pid) in enumerate(workers):
        uuid = WORKER_UUID + n
        worker_uuid[(cpu, comm, pid)] = uuid
        d = packet().track_descriptor
        d.uuid = uuid
        d.parent_uuid = CPU_UUID + cpu + 1
        d.name = f"{comm} pid {pid}"
        d.sibling_order_rank = n
    for cpu in cpus:
        if any(lc.queuer_cpu == cpu and lc.queued_ns is not None for lc in lcs):
            d = packet().track_descriptor
            d.uuid = QUEUE_UUID + cpu + 1
            d.parent_uuid = CPU_UUID + cpu + 1
            d.name = "queue_work"
            d.sibling_order_rank = -1  # first under its CPU

    # events, in time order: (ts, order at equal ts: ends first, emit)
    events: list[tuple[int, int, int, Any]] = []
    by_worker: dict[int, list[Lifecycle]] = {}
    for lc in lcs:
        if lc.started_ns is not None:
            key = (
                lc.exec_cpu if lc.exec_cpu is not None else -1,
                lc.worker or "?",
                lc.worker_pid or 0,
            )
            by_worker.setdefault(worker_uuid[key], []).append(lc)
    for uuid, runs in by_worker.items():
        runs.sort(key=lambda lc: (lc.started_ns or 0, lc.index))
        for k, lc in enumerate(runs):
            start = lc.started_ns or 0
            if lc.ended_ns is not None:
                end = lc.ended_ns
            else:
                nxt = runs[k + 1].started_ns if k + 1 < len(runs) else None
                end = nxt if nxt is not None else max(last, start)

            def begin(p: Any, lc: Lifecycle = lc, uuid: int = uuid) -> None:
                ev = p.track_event
                ev.type = TrackEvent.TYPE_SLICE_BEGIN
                ev.track_uuid = uuid
                ev.name = lc.function_name
                ev.categories.append("workqueue")
                if lc.queued_ns is not None:
                    ev.terminating_flow_ids.append(lc.index + 1)
                lat = lc.queue_latency_ns
                _annotate(
                    ev,
                    workqueue=lc.workqueue,
                    work=lc.work,
                    item=lc.item_id,
                    worker_kind=None if lc.worker_kind is None else lc.worker_kind.value,
                    queued_on_cpu=lc.queuer_cpu,
                    queue_to_start_us=None if lat is None else lat / 1e3,
                    ended=lc.ended_ns is not None,
                )

            def end_(p: Any, uuid: int = uuid) -> None:
                p.track_event.type = TrackEvent.TYPE_SLICE_END
                p.track_event.track_uuid = uuid

            events.append((start, 1, lc.index, begin))
            events.append((end, 0, lc.index, end_))
    for lc in lcs:
        if lc.queued_ns is None:
            continue

        def instant(p: Any, lc: Lifecycle = lc) -> None:
            ev = p.track_event
            ev.type = TrackEvent.TYPE_INSTANT
            ev.track_uuid = QUEUE_UUID + (lc.queuer_cpu if lc.queuer_cpu is not None else -1) + 1
            ev.name = f"queue_work {lc.function_name}"
            ev.categories.append("workqueue")
            if lc.started_ns is not None:
                ev.flow_ids.append(lc.index + 1)
            lat = lc.queue_latency_ns
            _annotate(
                ev,
                workqueue=lc.workqueue,
                work=lc.work,
                queuer=lc.queuer,
                req_cpu=lc.req_cpu,
                pool_cpu=lc.queue_cpu,
                queue_to_start_us=None if lat is None else lat / 1e3,
                started=lc.started_ns is not None,
            )

        events.append((lc.queued_ns, 2, lc.index, instant))
    for ts, _, _, emit in sorted(events, key=lambda e: e[:3]):
        emit(packet(ts))
    data: bytes = builder.serialize()
    return data


# --------------------------------------------------------------------------- read back


@dataclass(frozen=True)
class SliceRec:
    track: str  # "CPU 1/kworker/1:1 pid 46"
    name: str
    start_ns: int
    end_ns: int
    annotations: dict[str, object] = field(compare=False)


@dataclass
class Readback:
    """What a Perfetto trace holds, decoded with the package's own protos."""

    tracks: dict[int, str]  # uuid → path ("CPU 1", "CPU 1/kworker/1:1 pid 46")
    slices: list[SliceRec]
    instants: list[SliceRec]  # start_ns == end_ns
    flows: dict[int, tuple[SliceRec, SliceRec | None]]  # id → (queueing, execution)
    problems: list[str]  # unbalanced or crossing slices, flows without both ends

    def summary(self) -> str:
        joined = sum(1 for _, dst in self.flows.values() if dst is not None)
        return (
            f"{len(self.tracks)} tracks, {len(self.slices)} execution slices, "
            f"{len(self.instants)} queueings, {joined} flows queue→start"
            + (f"; PROBLEMS: {'; '.join(self.problems)}" if self.problems else "")
        )


def _annotations(ev: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for a in ev.debug_annotations:
        kind = a.WhichOneof("value")
        out[a.name] = getattr(a, kind) if kind else None
    return out


def read_back(data: bytes) -> Readback:
    """Decode a trace written by :func:`perfetto_trace` and check its structure: every
    begin has its end on the same track, slices on a track do not cross, every flow
    starts at a queueing and ends at a slice's start."""
    te = require("perfetto.protos.perfetto.trace.perfetto_trace_pb2", "reading a Perfetto trace")
    trace = te.Trace()
    trace.ParseFromString(data)
    TrackEvent = te.TrackEvent
    names: dict[int, str] = {}
    parents: dict[int, int] = {}
    problems: list[str] = []
    open_: dict[int, list[tuple[int, Any]]] = {}
    slices: list[SliceRec] = []
    instants: list[SliceRec] = []
    src: dict[int, SliceRec] = {}
    dst: dict[int, SliceRec] = {}

    def path(uuid: int) -> str:
        parts = []
        while uuid in names:
            parts.append(names[uuid])
            uuid = parents.get(uuid, 0)
        return "/".join(reversed(parts))

    for p in trace.packet:
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            names[d.uuid] = d.name
            if d.HasField("parent_uuid"):
                parents[d.uuid] = d.parent_uuid
            continue
        if not p.HasField("track_event"):
            continue
        ev = p.track_event
        if ev.track_uuid not in names:
            problems.append(f"event at {p.timestamp} on undeclared track {ev.track_uuid}")
        if ev.type == TrackEvent.TYPE_SLICE_BEGIN:
            stack = open_.setdefault(ev.track_uuid, [])
            if stack:
                problems.append(f"{path(ev.track_uuid)}: slice at {p.timestamp} nests in another")
            stack.append((p.timestamp, ev))
        elif ev.type == TrackEvent.TYPE_SLICE_END:
            stack = open_.get(ev.track_uuid) or []
            if not stack:
                problems.append(f"{path(ev.track_uuid)}: end at {p.timestamp} without a begin")
                continue
            t0, begin = stack.pop()
            rec = SliceRec(path(ev.track_uuid), begin.name, t0, p.timestamp, _annotations(begin))
            slices.append(rec)
            for fid in begin.terminating_flow_ids:
                dst[fid] = rec
        elif ev.type == TrackEvent.TYPE_INSTANT:
            rec = SliceRec(path(ev.track_uuid), ev.name, p.timestamp, p.timestamp, _annotations(ev))
            instants.append(rec)
            for fid in ev.flow_ids:
                src[fid] = rec
    for uuid, stack in open_.items():
        for t0, _ in stack:
            problems.append(f"{path(uuid)}: slice at {t0} never ends")
    for fid in dst.keys() - src.keys():
        problems.append(
            f"flow {fid} ends at {dst[fid].track} {dst[fid].start_ns} but starts nowhere"
        )
    flows = {fid: (s, dst.get(fid)) for fid, s in src.items()}
    for fid, (s, d) in flows.items():
        if d is None:
            problems.append(f"flow {fid} from {s.track} {s.start_ns} ends nowhere")
        elif d.start_ns < s.start_ns:
            problems.append(f"flow {fid} goes back in time")
    return Readback(
        tracks={u: path(u) for u in names},
        slices=slices,
        instants=instants,
        flows=flows,
        problems=problems,
    )


def flows_by_slice(rb: Readback) -> dict[tuple[str, int], SliceRec]:
    """Execution slice (track, start) → the queueing that led to it."""
    return {(d.track, d.start_ns): s for s, d in rb.flows.values() if d is not None}
