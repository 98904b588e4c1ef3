"""Loading and unloading the module (docs/commands.md, "Module"): metadata, the
``max_items`` parameter, rmmod refused while a plane is open, and rmmod with work in
flight in every state, once and 100 times in a row, without a kernel splat."""

from __future__ import annotations

import errno
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pytest

import wqlab
from wqlab.channel import AgentChannel
from wqlab.client import CONTROL, DEBUGFS, DEVICE, WqlabClient, insmod, is_loaded, rmmod
from wqlab.errors import GuestCommandError
from wqlab.kernels import Kernel
from wqlab.kmsg import dmesg_mark, dmesg_since
from wqlab.splat import is_splat

pytestmark = pytest.mark.vm


def _modinfo(ko: Path) -> dict[str, list[str]]:
    exe = shutil.which("modinfo") or "/sbin/modinfo"
    if not Path(exe).exists():
        pytest.skip("modinfo (kmod) is not installed on the host")
    out = subprocess.run([exe, str(ko)], capture_output=True, text=True, check=True).stdout
    info: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), []).append(value.strip())
    return info


def test_modinfo_shows_description_author_license_version_and_parameter(
    wqlab_ko: Path, wqlab_kernel: Kernel
) -> None:
    info = _modinfo(wqlab_ko)
    assert info["description"] == [
        "wqlab: drive the workqueue API on command (debugfs, ioctl, generic netlink)"
    ]
    assert info["author"] and all(a for a in info["author"])
    assert info["license"] == ["GPL"]
    assert info["version"] == [wqlab.__version__], info["version"]  # one version: the package's
    assert info["name"] == ["wqlab"]
    assert info["vermagic"][0].split()[0] == wqlab_kernel.version
    assert any(p.startswith("max_items:") and "(uint)" in p for p in info["parm"]), info["parm"]


def _unload(wqlab_guest: AgentChannel) -> None:
    if is_loaded(wqlab_guest):
        rmmod(wqlab_guest, timeout=120)


def test_max_items_parameter_is_checked_at_load(wqlab_guest: AgentChannel, wqlab_ko: Path) -> None:
    _unload(wqlab_guest)
    mark = dmesg_mark(wqlab_guest)
    for bad in (0, 1025):
        # finit_module() fails with the init's EINVAL (kmod words it "Invalid parameters")
        with pytest.raises(GuestCommandError) as e:
            insmod(wqlab_guest, str(wqlab_ko), max_items=bad)
        assert e.value.errno == errno.EINVAL, (bad, e.value)
        assert not is_loaded(wqlab_guest)
    log = dmesg_since(wqlab_guest, mark)
    assert log.count("wqlab: max_items must be 1..1024") == 2, log
    for good in (1, 1024):
        insmod(wqlab_guest, str(wqlab_ko), max_items=good)
        c = WqlabClient(wqlab_guest)
        assert c.features()["max_items"] == str(good)
        assert wqlab_guest.read("/sys/module/wqlab/parameters/max_items").strip() == str(good)
        ids = [int(c.cmd("work_new")["id"]) for _ in range(min(good, 3))]
        assert ids == list(range(2, 2 + min(good, 3)))
        rmmod(wqlab_guest)
    assert not is_loaded(wqlab_guest)


PLANES_OPEN = (CONTROL, DEVICE)


def test_rmmod_is_refused_while_a_control_plane_is_open(wqlab: WqlabClient) -> None:
    a = wqlab.agent
    # one shell for both planes: each rmmod in a subshell that holds the plane open
    res = a.sh("; ".join(f"(exec 3<>{p}; rmmod wqlab; echo {p} rc=$?)" for p in PLANES_OPEN))
    for path in PLANES_OPEN:
        out = res["stdout"]
        assert f"{path} rc=" in out and f"{path} rc=0" not in out, f"rmmod with {path} open: {res}"
    assert is_loaded(a) and all(a.exists(path) for path in PLANES_OPEN)
    assert wqlab.cmd("work_pending", id=0).ret == 0, "the module still works"


# Work in flight in every state, on system and custom queues; one command per echo.
_IN_FLIGHT = """\
alloc_workqueue name=unb flags=unbound max_active=2
alloc_ordered_workqueue name=ord
create_workqueue name=legacy
alloc_workqueue name=reclaim flags=mem_reclaim,highpri
work_new
work_new
work_new
work_new
work_new
work_new
work_new
work_new delayed=1
work_new delayed=1
work_new delayed=1
schedule_delayed_work id=1 delay_ms=60000
queue_work wq=unb id=2 block=1
queue_work wq=ord id=3 sleep_ms=30000
queue_work wq=ord id=4
queue_work wq=system id=5 sleep_ms=1 requeue=10000
queue_work wq=legacy id=6 spin_us=100 requeue=10000
schedule_work id=0 block=1 requeue=5
queue_work wq=reclaim id=7 block=1
queue_work wq=reclaim id=8 sleep_ms=20000
queue_delayed_work wq=unb id=9 delay_ms=60000
mod_delayed_work wq=legacy id=10 delay_ms=1 sleep_ms=1 requeue=10000
queue_delayed_work wq=system_long id=11 delay_ms=5 block=1
"""

# states that must be reached before the rmmod of a cycle (id, state)
_WAIT_FOR = ((2, "blocked"), (3, "running"), (0, "blocked"))
_WAIT_S = 30.0  # for each state, in each cycle


def _wait_state(agent: AgentChannel, cycle: int, item: int, state: str) -> None:
    """Read ``works`` until item ``item`` is in ``state``; fail, with its line, at the
    deadline."""
    want = re.compile(rf"^id={item} .* state={state} ", re.M)
    deadline = time.monotonic() + _WAIT_S
    while not want.search(works := agent.read(f"{DEBUGFS}/works")):
        if time.monotonic() > deadline:
            line = [ln for ln in works.splitlines() if ln.startswith(f"id={item} ")]
            raise AssertionError(f"cycle {cycle}: item {item} never {state}: {line}")
        time.sleep(0.02)


def _cycle(agent: AgentChannel, ko: Path, cycle: int) -> float:
    """One cycle: load, put work in flight in every state, unload. Returns how long the
    unload took (ms). All of it by the agent's system calls: no process is started."""
    insmod(agent, str(ko))
    # every command is written to the control file on its own (a rejected one fails its
    # write, and with it the batch), in one round trip
    lines = _IN_FLIGHT.strip().splitlines()
    steps = [{"op": "write", "path": CONTROL, "data": line + "\n"} for line in lines]
    try:
        agent.request("batch", steps=steps)
    except GuestCommandError as e:
        raise AssertionError(f"cycle {cycle}: a command was refused: {e}") from None
    for item, state in _WAIT_FOR:
        _wait_state(agent, cycle, item, state)
    t = time.perf_counter()
    rmmod(agent, timeout=300)
    took = (time.perf_counter() - t) * 1e3
    assert not is_loaded(agent), f"cycle {cycle}: still loaded after rmmod"
    return took


def _run_cycles(wqlab_guest: AgentChannel, ko: Path, cycles: int) -> list[float]:
    _unload(wqlab_guest)
    mark = dmesg_mark(wqlab_guest)
    t0 = time.monotonic()
    rmmod_ms = [_cycle(wqlab_guest, ko, i) for i in range(1, cycles + 1)]
    wall = time.monotonic() - t0
    print(
        f"{cycles} load/unload cycles in {wall:.1f} s ({wall / cycles:.2f} s each); "
        f"rmmod max {max(rmmod_ms):.0f} ms, median {statistics.median(rmmod_ms):.0f} ms"
    )
    log = dmesg_since(wqlab_guest, mark).splitlines()
    splats = [ln for ln in log if is_splat(ln)]
    assert not splats, "kernel splat during load/unload cycles:\n" + "\n".join(splats[:20])
    assert sum("wqlab: unloaded" in ln for ln in log) == cycles
    assert not is_loaded(wqlab_guest)
    return rmmod_ms


@pytest.mark.xdist_group("whole_vm")  # a CPU hog or timing-sensitive: the host to itself
def test_rmmod_with_work_in_flight_in_every_state_is_clean(
    wqlab_guest: AgentChannel, wqlab_ko: Path
) -> None:
    rmmod_ms = _run_cycles(wqlab_guest, wqlab_ko, 1)
    # blocked and sleeping runs are cut short: no 20-60 s wait for a sleep or a timer
    assert rmmod_ms[0] < 15000, rmmod_ms


# Not whole_vm: a CPU hog in its guest (requeue chains), but it bounds no latency (30 s a
# state, 300 s an rmmod): it shares the host, after the whole_vm tests (xdist_sched.py).
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_100_load_unload_cycles_with_work_in_flight_leave_no_splat(
    wqlab_guest: AgentChannel, wqlab_ko: Path
) -> None:
    _run_cycles(wqlab_guest, wqlab_ko, 100)
