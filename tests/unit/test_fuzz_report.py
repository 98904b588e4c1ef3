"""The fuzzer's evidence for a lost release (debug line, seed 1202: a blocked run waited
block_max_ms): ``check_stats`` flags two runs of one item at once (stats ``run_overlaps``),
and a hang report shows every item with a run in flight or blocked, whatever ``state`` says,
with the run that blocked, the release count it waits on and when the releaser last
released it. No guest: ``read_file`` and the main thread's ``Conn.read`` are replaced by
canned debugfs text."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from wqlab import fuzz, fuzzhost

STATS = """cmds_ok=0
cmds_failed=0
runs=12
requeues=0
blocks=1
releases=0
block_timeouts=0
aborts=0
run_overlaps={overlaps}
items=1
workqueues=0
"""

# a sync cancel took the pending instance (state=canceled) while run 7 waits for release 3
WORK = (
    "id=4 kind=work fn=wqlab_work_fn fn_module=wqlab ptr=00000000e541df31 state=canceled "
    "pending=0 running=1 users=4 wq=system req_cpu=8192 delay_jiffies=0 sleep_ms=0 spin_us=0 "
    "requeue=0 block=0 requeue_left=0 released=0 blocked=1 blocked_seq=7 block_release_seq=3 "
    "release_seq=3 active_runs=1 runs=6 seq=7 cpu=1 pid=46 comm=kworker/1:1 queued_ns=1 "
    "started_ns=2 finished_ns=0\n"
)


def fuzzer(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> fuzz.Fuzzer:
    monkeypatch.setattr(fuzz, "read_file", lambda name: files[name])
    main = fuzz.Conn.__new__(fuzz.Conn)  # no descriptors: read() is the canned text
    monkeypatch.setattr(main, "read", lambda name: files[name])
    monkeypatch.setattr(fuzz, "kmsg_lines", lambda needle: [f"item 4: run 9 {needle} 7"])
    f = fuzz.Fuzzer.__new__(fuzz.Fuzzer)  # no guest: only what these two methods use
    f.cfg = fuzz.Config(seed=1202)
    f.t0 = time.monotonic()
    f.overlaps_seen = 0
    f.out_lock = threading.Lock()
    f.logf = None
    f.violations = []
    f.stats = []
    f.base_ok = f.base_failed = 0
    f.block_timeouts = f.run_overlaps = 0
    f.release_polls = (time.monotonic() - 1.0, time.monotonic() - 0.5)
    f.released_at = {}
    f.main = main
    return f


def test_check_stats_reports_two_runs_of_one_item_at_once_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = {"stats": STATS.format(overlaps=0), "works": WORK, "workqueues": ""}
    f = fuzzer(monkeypatch, files)
    f.check_stats("round 0")
    assert f.violations == []
    files["stats"] = STATS.format(overlaps=1)
    f.check_stats("round 1")
    assert [v["what"].split(":")[1].strip() for v in f.violations] == ["stats run_overlaps=1"]
    assert f.violations[0]["what"].endswith("dmesg:\n    item 4: run 9 started while run 7")
    f.check_stats("round 2")  # the same count again: already reported
    assert len(f.violations) == 1
    assert f.overlaps_seen == 1


def test_hang_report_shows_a_blocked_run_under_any_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    idle = WORK.replace("id=4", "id=5").replace("running=1", "running=0")
    idle = idle.replace("blocked=1", "blocked=0")
    f = fuzzer(monkeypatch, {"works": WORK + idle, "workqueues": "name=q2 kname=wqlab_q2\n"})
    f.released_at["4"] = time.monotonic() - 12.0
    st = fuzz.ThreadStats("t0")
    st.tid = 1
    report = f.hang_report(st)
    items = [ln.strip() for ln in report.splitlines() if ln.strip().startswith("id=")]
    assert len(items) == 1, report  # item 5 (canceled, nothing in flight) is left out
    fields = dict(kv.split("=", 1) for kv in items[0].split())
    assert fields["state"] == "canceled" and fields["blocked"] == "1", items[0]
    assert (fields["blocked_seq"], fields["block_release_seq"]) == ("7", "3"), items[0]
    assert (fields["release_seq"], fields["active_runs"]) == ("3", "1"), items[0]
    assert fields["releaser_last_release"].endswith("s_ago"), items[0]
    assert float(fields["releaser_last_release"][: -len("s_ago")]) >= 12.0
    assert "name=q2" in report


# the tail of a real trace instance (Debian 6.12.117, seed 1202, before the fix): it stopped
# at the first wqlab_work_overlap (the traceoff trigger)
TRACE = (Path(__file__).parent / "data" / "fuzz" / "overlap-trace-6.12.txt").read_text()
WORK_PTR = "00000000a78695d3"  # item 0's work_struct


def test_trace_overlap_command_keeps_the_overlapping_items_events_and_commands(
    tmp_path: Path,
) -> None:
    # the guest's shell pipeline, run here on a trace file of the kernel's format
    (tmp_path / "trace").write_text(TRACE)
    cmd = fuzzhost.trace_overlap_command(str(tmp_path))
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    lines, context = fuzzhost.parse_overlap_trace(out)
    body = [ln for ln in TRACE.splitlines() if not ln.startswith("#")]
    assert context == [ln.rstrip() for ln in body]  # everything up to the overlap
    want = [ln for ln in body if WORK_PTR in ln or "wqlab_cmd: " in ln and " id=0 " in ln]
    assert lines == want and len(want) >= 10
    assert "wqlab_work_overlap: id=0" in lines[-1]
    assert any("wqlab_cmd: nr=0x11 id=0 " in ln for ln in lines)  # the schedule_work_on
    assert not any(" id=7 " in ln for ln in lines)  # another item's events stay out
    # no overlap traced: nothing, and success
    (tmp_path / "trace").write_text(TRACE.replace("wqlab_work_overlap", "wqlab_work_done"))
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    assert r.returncode == 0 and fuzzhost.parse_overlap_trace(r.stdout) == ([], [])


def test_trace_setup_command_stops_the_instance_at_the_first_overlap() -> None:
    cmd = fuzzhost.trace_setup_command("/t/i", kb=1024)
    assert "echo traceoff > /t/i/events/wqlab/wqlab_work_overlap/trigger" in cmd
    assert "echo 1 > /t/i/events/workqueue/enable" in cmd and "buffer_size_kb" in cmd


def test_the_releasers_line_filter_keeps_every_blocked_run() -> None:
    # the releaser parses only the lines maybe_blocked() keeps: it must keep every line
    # blocked_run() says is blocked, under every combination of the fields it reads
    import itertools

    fields = ("blocked", "running", "block", "released")
    for state in ("idle", "queued", "running", "blocked", "canceled", "done"):
        for values in itertools.product("01", repeat=len(fields)):
            line = WORK.strip().replace("state=canceled", f"state={state}")
            for k, v in zip(fields, values, strict=True):
                line = line.replace(f" {k}=0 ", f" {k}={v} ").replace(f" {k}=1 ", f" {k}={v} ")
            w = fuzz.parse_kv(line)
            assert tuple(w[k] for k in fields) == values, line
            if fuzz.blocked_run(w):
                assert fuzz.maybe_blocked(line), line
