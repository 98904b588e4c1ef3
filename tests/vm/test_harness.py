"""The harness itself, in a real VM: the agent's speed, a splat failing the running test
with the splat in the report, a hung request timing out with a clear error, and no QEMU
left behind after a session, nor after a SIGKILL of the harness process. The splat ones
run an inner pytest session (one more boot), because they are about what a whole session
does."""

from __future__ import annotations

import errno
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from wqtest import new_item, wait_runs

from wqlab.bootimage import cache_dir
from wqlab.build import build_module
from wqlab.channel import AgentChannel
from wqlab.client import WqlabClient, insmod, is_loaded, rmmod
from wqlab.errors import GuestCommandError, GuestTimeoutError
from wqlab.kernels import Kernel
from wqlab.kmsg import dmesg_mark, dmesg_since
from wqlab.reaper import group_members
from wqlab.session import arm_trace, disarm_trace, load_module, unload_module
from wqlab.tracefs import PIN_INSTANCES, TRACEFS, WQ_EVENTS, TraceInstance, pin_events
from wqlab.vm import Vm

pytestmark = pytest.mark.vm
pytest_plugins = ["pytester"]

CACHE = cache_dir()  # before pytester moves HOME
ROOT = Path(__file__).resolve().parent.parent.parent


def test_agent_round_trip_is_milliseconds(wqlab_guest: AgentChannel) -> None:
    lat = []
    for _ in range(100):
        t = time.perf_counter()
        assert wqlab_guest.request("echo", data="x") == "x"
        lat.append(time.perf_counter() - t)
    median_ms = statistics.median(lat) * 1e3
    print(f"agent echo round trip: median {median_ms:.2f} ms over {len(lat)} requests")
    # a Python start-up in the guest costs ~4.6 s; a round trip must be far below that
    assert median_ms < 100, f"median round trip {median_ms:.1f} ms"


def test_hung_request_times_out_with_a_clear_error(wqlab_guest: AgentChannel) -> None:
    t0 = time.monotonic()
    with pytest.raises(GuestTimeoutError, match="got no answer in 2 s"):
        wqlab_guest.request("sleep", timeout=2, seconds=30)
    assert time.monotonic() - t0 < 10
    # the channel is still usable afterwards
    assert wqlab_guest.request("echo", data="still here") == "still here"


def test_fast_boot_runs_the_agent_as_init(wqlab_guest: AgentChannel, wqlab_vm: Vm) -> None:
    """The fast boot's init is the agent (no virtme-ng-init, udev, tmpfiles): it mounts
    what tests use, keeps the host's files untouched, and reaps orphans as PID 1 must."""
    if not wqlab_vm.cfg.fast:
        pytest.skip("--wqlab-no-fast-boot: virtme-ng-init is PID 1 in this session")
    init = wqlab_guest.read("/proc/1/cmdline").split("\0")
    assert init[0] == wqlab_vm.cfg.python and "--init" in init, init
    status = wqlab_guest.read(f"/proc/{wqlab_guest.request('ping')['pid']}/status")
    assert "\nPPid:\t1\n" in status  # the agent is PID 1's child
    mounts = {
        line.split()[1]: line.split()[2] for line in wqlab_guest.read("/proc/mounts").splitlines()
    }
    for path, fstype in (
        ("/sys/kernel/tracing", "tracefs"),
        ("/sys/kernel/debug", "debugfs"),
        ("/dev", "devtmpfs"),
        ("/run", "tmpfs"),
        ("/etc", "overlay"),
        ("/tmp", "overlay"),
    ):
        assert mounts.get(path) == fstype, (path, mounts.get(path))
    # the overlays make the shared, read-only host root writable in the guest only
    marker = f"/etc/wqlab-init-test-{os.getpid()}"
    wqlab_guest.write(marker, "guest only\n")
    assert wqlab_guest.read(marker) == "guest only\n" and not Path(marker).exists()
    # an orphan (a shell's background child) is reparented to PID 1 and reaped there
    out = wqlab_guest.succeed("sleep 0.3 & echo $!")
    orphan = int(out.split()[-1])
    deadline = time.monotonic() + 30
    while wqlab_guest.exists(f"/proc/{orphan}") and time.monotonic() < deadline:
        wqlab_guest.request("sleep", seconds=0.2)
    assert not wqlab_guest.exists(f"/proc/{orphan}"), wqlab_guest.read(f"/proc/{orphan}/status")
    if wqlab_vm.cfg.pvh:
        # Debian kernels carry a PVH note: QEMU loaded the uncompressed vmlinux
        assert wqlab_vm.cfg.boot_image is not None and wqlab_vm.cfg.boot_image.exists()


def test_a_removed_trace_instance_leaves_its_tracepoints_pinned(
    wqlab_guest: AgentChannel, wqlab_ko: Path
) -> None:
    """Test instances come and go; the keepers hold every tracepoint they used, so that
    going goes without live text patching (see wqlab/tracefs.py), and the module still
    unloads with its events pinned."""
    if is_loaded(wqlab_guest):
        rmmod(wqlab_guest)
    insmod(wqlab_guest, str(wqlab_ko))
    inst = TraceInstance(wqlab_guest, "t_pin_check").start()
    inst.remove()
    assert not wqlab_guest.exists(inst.path)
    for pin in PIN_INSTANCES:
        d = f"{TRACEFS}/instances/{pin}"
        assert wqlab_guest.read(f"{d}/tracing_on").strip() == "0"
        for ev in (*WQ_EVENTS, "wqlab"):
            assert wqlab_guest.read(f"{d}/events/{ev}/enable").strip() == "1", (pin, ev)
    rmmod(wqlab_guest)
    assert not is_loaded(wqlab_guest)
    assert not wqlab_guest.exists(f"{TRACEFS}/instances/{PIN_INSTANCES[0]}/events/wqlab")


def test_the_module_s_events_are_pinned_unless_armed_right_after_its_load(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, wqlab_vm: Vm, wqlab_ko: Path
) -> None:
    """Under the ``wqlab`` fixture (the module loaded for this test, unloaded after it)
    the plugin's instance enables the module's events without pinning them: they are on
    from before any of the module's code runs until the kernel turns them off itself at
    the unload, after the module's exit function (a trace instance holds no reference on
    the module). Pinned, they would guard no text patch and make the unload empty the two
    keepers too. Any other arming (a module left loaded, or loaded by hand) pins them
    first, as every removable instance does; the core events are pinned either way."""
    agent = wqlab_vm.agent()
    keepers = [f"{TRACEFS}/instances/{pin}" for pin in PIN_INSTANCES]

    def enabled(instance: str, ev: str) -> str:
        return agent.read(f"{instance}/events/{ev}/enable").strip()

    assert enabled(wqlab_trace.path, "wqlab") == "1"
    for d in keepers:
        assert enabled(d, "wqlab") == "0", d
        assert [enabled(d, ev) for ev in WQ_EVENTS] == ["1"] * len(WQ_EVENTS), d
    item = new_item(wqlab)
    wqlab.cmd("queue_work", wq="system", id=item)
    text = wait_runs(wqlab, wqlab_trace, {item: 1}).text
    assert "wqlab_work_run:" in text, text[-3000:]  # the module's events are recorded
    # the fixture's teardown: tracing off leaves them on; only the unload turns them off
    disarm_trace(wqlab_vm, wqlab_trace)
    assert enabled(wqlab_trace.path, "wqlab") == "1"
    unload_module(wqlab_vm)
    assert not agent.exists(f"{wqlab_trace.path}/events/wqlab")
    # a module this arming did not just load: pinned in both keepers before it is enabled
    insmod(agent, str(wqlab_ko))
    again = arm_trace(wqlab_vm)
    assert again is wqlab_trace and enabled(again.path, "wqlab") == "1"
    assert [enabled(d, "wqlab") for d in keepers] == ["1", "1"]
    # the fixture's teardown unloads this copy


def test_the_trace_instance_rearmed_for_a_test_holds_nothing_from_the_test_before(
    wqlab_vm: Vm, wqlab_ko: Path
) -> None:
    """The plugin keeps one trace instance per VM and re-arms it for each test (the
    ``wqlab_trace`` fixture's set-up and teardown are ``arm_trace``/``disarm_trace``, run
    here for two tests in a row): what the test before recorded, marked, enabled or
    filtered, and what was recorded between the two tests, is not in the next one's
    buffer, and the next one records its own events."""
    agent = wqlab_vm.agent()
    ko = str(wqlab_ko)
    before, between = f"wqlab-before-{os.getpid()}", f"wqlab-between-{os.getpid()}"
    # the test before: its events, one more event, a filter that drops queue_work, a mark
    load_module(agent, ko)
    inst = arm_trace(wqlab_vm)
    pin_events(agent, ("module/module_load",))  # enabled in the instance without patching
    agent.write(f"{inst.path}/events/module/module_load/enable", "1")
    inst.set_filter("workqueue/workqueue_queue_work", 'workqueue == "no such queue"')
    rmmod(agent)
    insmod(agent, ko)  # a module_load event
    c = WqlabClient(agent)
    item = new_item(c)
    c.cmd("queue_work", wq="system", id=item)
    inst.mark(before)
    text = wait_runs(c, inst, {item: 1}).text
    # what the next test must not see is there now: the checks below can fail
    assert before in text and "module_load: wqlab" in text, text[-3000:]
    assert "workqueue_queue_work" not in text and "workqueue_execute_end" in text, text[-3000:]
    disarm_trace(wqlab_vm, inst)
    unload_module(wqlab_vm)
    # between the two tests: tracing on by hand, a mark, a module load and unload (that
    # unload does not empty the buffer: none of that module's events was enabled in it)
    agent.write(f"{inst.path}/tracing_on", "1")
    inst.mark(between)
    insmod(agent, ko)
    rmmod(agent)
    assert between in inst.read(), "the mark between the tests is in the buffer"
    # the next test
    load_module(agent, ko)
    again = arm_trace(wqlab_vm)
    assert again is inst and agent.exists(inst.path), "the same instance, re-armed"
    on = agent.read(f"{inst.path}/set_event").split()
    assert set(on) >= {ev.replace("/", ":") for ev in WQ_EVENTS}, on
    assert all(ev.startswith(("workqueue:", "wqlab:")) for ev in on), on  # nothing else
    assert any(ev.startswith("wqlab:") for ev in on), on
    c = WqlabClient(agent)
    item = new_item(c)
    c.cmd("queue_work", wq="system", id=item)
    text = wait_runs(c, inst, {item: 1}).text
    assert before not in text and between not in text, text[-3000:]
    assert "module_load" not in text, text[-3000:]
    assert "workqueue_queue_work" in text, "the filter of the test before is cleared"
    # (an unload of wqlab empties the buffer itself: its events were on) the extra event
    # of the test before stays off: a load records nothing
    rmmod(agent)
    insmod(agent, ko)
    c = WqlabClient(agent)
    item = new_item(c)
    c.cmd("queue_work", wq="system", id=item)
    text = wait_runs(c, inst, {item: 1}).text
    assert "module_load" not in text, text[-3000:]
    disarm_trace(wqlab_vm, inst)
    assert agent.read(f"{inst.path}/tracing_on").strip() == "0"
    unload_module(wqlab_vm)


def test_the_kernel_log_reads_as_dmesg_prints_it(wqlab_guest: AgentChannel) -> None:
    """The splat scan after each test reads /dev/kmsg in the agent (no dmesg process): the
    same text as dmesg, and from a mark exactly the records after it."""
    theirs = wqlab_guest.succeed("dmesg")
    ours = dmesg_since(wqlab_guest, 0)
    assert theirs and ours.startswith(theirs), (theirs[-500:], ours[-500:])
    mark = dmesg_mark(wqlab_guest)
    wqlab_guest.write("/dev/kmsg", "<6>wqlab: kmsg mark check \\ \u00e9\n")
    after = dmesg_since(wqlab_guest, mark).splitlines()
    assert after and after[0].endswith("] wqlab: kmsg mark check \\ \u00e9"), after  # first


def test_module_load_and_unload_failures_name_their_errno(
    wqlab_guest: AgentChannel, wqlab_ko: Path
) -> None:
    """insmod and rmmod are system calls in the agent: their failures come back as a
    GuestCommandError carrying the errno, in words."""
    if is_loaded(wqlab_guest):
        rmmod(wqlab_guest)
    with pytest.raises(GuestCommandError, match="EINVAL: invalid parameters") as e:
        insmod(wqlab_guest, str(wqlab_ko), max_items=0)  # the module's init refuses it
    assert e.value.errno == errno.EINVAL and not is_loaded(wqlab_guest)
    insmod(wqlab_guest, str(wqlab_ko), max_items=5)
    assert wqlab_guest.read("/sys/module/wqlab/parameters/max_items").strip() == "5"
    with pytest.raises(GuestCommandError, match="EEXIST: the module is already loaded") as e:
        insmod(wqlab_guest, str(wqlab_ko))
    assert e.value.errno == errno.EEXIST
    rmmod(wqlab_guest)
    with pytest.raises(GuestCommandError, match="rmmod wqlab failed: ENOENT") as e:
        rmmod(wqlab_guest)
    assert e.value.errno == errno.ENOENT and not is_loaded(wqlab_guest)


INNER = """
import json, os, pytest
from pathlib import Path
from wqlab.build import build_module

SPLAT = Path({splat!r})

def test_a_splat_fails_this_test(wqlab_kernel, wqlab_guest, wqlab_vm):
    ko = build_module(wqlab_kernel, src=SPLAT, name="splatmod", subdir=".",
                      out_root=Path({out!r}))
    wqlab_guest.succeed(f"insmod {{ko}}")
    wqlab_vm.wait_console("splatmod", timeout=30)
    # nothing here fails: only the plugin's splat watch can turn this test red

def test_after_a_splat_the_vm_is_fresh(wqlab_guest, wqlab_vm, wqlab_vm_manager):
    assert wqlab_vm_manager.boots == 2
    assert not wqlab_guest.exists("/sys/module/splatmod")
    Path({pids!r}).write_text(json.dumps({{"pgid": wqlab_vm.proc.pid}}))
"""


@pytest.mark.slow  # VMs of its own; no latency bound: it shares the host (not whole_vm)
def test_splat_fails_test_fresh_vm_follows_and_no_qemu_is_left(
    pytester: pytest.Pytester, wqlab_kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytester gives the inner session a HOME of its own (set before this body runs): it
    # keeps this session's cache, read at import (the debug line's kernel is built there)
    monkeypatch.setenv("WQLAB_CACHE", str(CACHE))
    pids = tmp_path / "pids.json"
    splat, out_root = ROOT / "tests" / "splatmod", tmp_path / "build"
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            INNER.format(splat=str(splat), out=str(out_root), pids=str(pids))
        )
    )
    # The inner test builds splatmod once its VM is up: it is built here while that VM
    # boots, and the inner build (the same tree: a lock per tree) finds it done.
    with ThreadPoolExecutor(1) as pool:
        built = pool.submit(
            build_module, wqlab_kernel, src=splat, name="splatmod", subdir=".", out_root=out_root
        )
        res = pytester.runpytest_subprocess(
            f"--wqlab-kernel={wqlab_kernel.version}",
            f"--wqlab-artifacts={tmp_path / 'art'}",
            "-p",
            "no:cacheprovider",
            "-v",
            timeout=900,
        )
    built.result()  # a build error is said as such
    out = res.stdout.str()
    res.assert_outcomes(passed=1, failed=1)
    assert "test_a_splat_fails_this_test FAILED" in out, out
    assert "kernel splat during" in out and "splatmod: a deliberate warning" in out, out
    pgid = json.loads(pids.read_text())["pgid"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # vng, QEMU and helpers of the inner session are all gone
    # the failing test's artifacts are kept
    art = tmp_path / "art"
    dirs = [d for d in art.iterdir() if d.is_dir() and "splat_fails" in d.name]
    assert dirs and (dirs[0] / "console.txt").exists(), list(art.iterdir())


KILLED = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from wqlab import kernels
from wqlab.vm import Vm, VmConfig
k = kernels.resolve({kernel!r})
vm = Vm(VmConfig(image=k.image), Path({log!r}))
vm.start()
print("READY", vm.proc.pid, flush=True)
time.sleep(3600)
"""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.slow  # VMs of its own; no latency bound: it shares the host (not whole_vm)
@pytest.mark.parametrize("state", ["alive", "hung"])
def test_a_killed_harness_process_leaves_no_qemu(
    wqlab_kernel: Kernel, tmp_path: Path, state: str
) -> None:
    """SIGKILL gives the harness no chance to clean up (a killed pytest-xdist worker, an
    OOM kill). A live guest agent reads EOF on its port and powers the VM off; a hung
    guest (QEMU stopped here) cannot, and wqlab/reaper.py kills the process group."""
    script = tmp_path / "killed.py"
    script.write_text(
        KILLED.format(root=str(ROOT), kernel=wqlab_kernel.version, log=str(tmp_path / "c.log"))
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the VM is ready (or the script died)
    assert line.startswith("READY"), f"the inner VM did not start: {line!r}"
    vng_pgid = int(line.split()[1])  # the reaper leads the group (vng and QEMU are in it)
    assert group_members(vng_pgid), "QEMU runs before the kill"
    if state == "hung":
        qemu = [p for p in group_members(vng_pgid) if _comm(p).startswith("qemu-system")]
        assert qemu, "QEMU is in the VM's process group"
        for pid in qemu:
            os.kill(pid, signal.SIGSTOP)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 90
    while (left := group_members(vng_pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the reaper acts at once (a pidfd of its parent): look often
    for pid in left:  # do not leave them to the next test, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not left, f"QEMU/vng processes left 90 s after SIGKILL of the harness: {left}"
