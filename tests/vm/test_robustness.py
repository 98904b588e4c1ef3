"""Command sequences that used to corrupt the kernel (issue 12's review), each on both planes
where it applies: the module now refuses or makes safe what the workqueue API would turn into
a use-after-free, a WARN with an item pending for ever, or an unbounded wait. Every test here
failed on the module before the fix (a splat on the console fails a test too: the plugin
watches it), and the contract is in docs/commands.md."""

from __future__ import annotations

import errno
import time

import pytest
from wqtest import Observed, new_item, observe, poll, wait_blocked, wait_event

from wqlab import uapi
from wqlab.client import CONTROL, DEVICE, WqlabClient
from wqlab.trace import WqlabEvent
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm


def work(c: WqlabClient, item: int) -> dict[str, str]:
    return next(w for w in c.works() if int(w["id"]) == item)


def seqs(obs: Observed, name: str, item: int) -> list[str]:
    """Run sequence numbers of an item's ``wqlab_*`` events of one kind, in trace order."""
    return [
        str(ev.get("seq"))
        for ev in obs.events
        if isinstance(ev, WqlabEvent) and ev.name == name and ev.get("id") == str(item)
    ]


def stat(c: WqlabClient, key: str) -> int:
    return int(c.stats()[key])


# 1. a queue destroyed under an armed delayed item --------------------------------------


def test_destroy_fires_an_armed_timer_first_so_nothing_is_left_pending(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="armed")
    item = new_item(c, delayed=True)
    assert c.cmd("queue_delayed_work", wq="armed", id=item, delay_ms=1500).ret == 1
    assert c.cmd("destroy_workqueue", wq="armed").ret == 0
    # the timer no longer aims at a freed queue: it fired at once and the drain ran the item
    assert c.cmd("work_pending", id=item).ret == 0, work(c, item)
    w = work(c, item)
    assert (w["runs"], w["state"], w["wq"]) == ("1", "done", "-"), w
    time.sleep(1.8)  # past the old timer: nothing may fire into the freed queue
    assert c.cmd("work_pending", id=item).ret == 0
    assert work(c, item)["runs"] == "1"
    c.cmd("work_free", id=item)


def test_destroy_ends_a_self_requeueing_delayed_chain(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="chain")
    item = new_item(c, delayed=True)
    c.cmd("queue_delayed_work", wq="chain", id=item, delay_ms=300, requeue=5)
    wait_event(c, wqlab_trace, [item], "wqlab_work_done", item)  # the first run re-armed it
    assert c.cmd("destroy_workqueue", wq="chain").ret == 0
    assert c.cmd("work_pending", id=item).ret == 0, work(c, item)
    runs = int(work(c, item)["runs"])
    time.sleep(0.8)  # two periods of the chain: no run, no timer into the freed queue
    assert c.cmd("work_pending", id=item).ret == 0
    assert int(work(c, item)["runs"]) == runs
    c.cmd("work_free", id=item)


# 2. a timer that fires into a draining queue ---------------------------------------------


def test_drain_fires_armed_timers_before_it_drains(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="drt", max_active=4)
    busy = new_item(c)
    timed = new_item(c, delayed=True)
    c.cmd("queue_work", wq="drt", id=busy, sleep_ms=600)  # keeps the drain going...
    c.cmd("queue_delayed_work", wq="drt", id=timed, delay_ms=200)  # ...while this timer is due
    assert c.cmd("drain_workqueue", wq="drt").ret == 0
    for i in (busy, timed):
        assert c.cmd("work_pending", id=i).ret == 0, work(c, i)
        assert work(c, i)["runs"] == "1", work(c, i)
    obs = observe(c, wqlab_trace, [busy, timed])
    assert len(obs.ran(timed)) == 1, obs.explain("the armed item ran during the drain")
    # the queue is usable again, and its items can be freed
    assert c.cmd("queue_delayed_work", wq="drt", id=timed, delay_ms=1).ret == 1
    c.cmd("flush_delayed_work", id=timed)
    c.cmd("destroy_workqueue", wq="drt")
    for i in (busy, timed):
        c.cmd("work_free", id=i)


def test_a_delayed_chain_ends_at_a_drain_instead_of_arming_a_timer_into_it(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="drc", max_active=4)
    busy = new_item(c)
    chain = new_item(c, delayed=True)
    c.cmd("queue_delayed_work", wq="drc", id=chain, delay_ms=50, requeue=20)
    c.cmd("queue_work", wq="drc", id=busy, sleep_ms=800)
    assert c.cmd("drain_workqueue", wq="drc").ret == 0
    assert c.cmd("work_pending", id=chain).ret == 0, work(c, chain)
    w = work(c, chain)
    assert int(w["requeue_left"]) > 0, f"the chain ran to its end during the drain: {w}"
    runs = int(w["runs"])
    time.sleep(0.3)
    assert int(work(c, chain)["runs"]) == runs, "a timer fired after the drain"
    c.cmd("destroy_workqueue", wq="drc")
    for i in (busy, chain):
        c.cmd("work_free", id=i)


# 3. one item on two workqueues -----------------------------------------------------------


def test_an_item_running_on_one_queue_is_refused_on_another(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    item = new_item(c)
    assert c.cmd("queue_work", wq="system", id=item, sleep_ms=1500).ret == 1
    poll("the run to start", lambda: work(c, item)["state"] == "running")
    # a second, overlapping run on another pool is what made work_free a use-after-free
    c.expect_errno(errno.EBUSY, "queue_work", wq="system_highpri", id=item)
    c.expect_errno(errno.EBUSY, "work_free", id=item)
    c.expect_errno(errno.EBUSY, "reset", id=item)
    # the same queue is fine (the kernel keeps that one non-reentrant)
    assert c.cmd("queue_work", wq="system", id=item).ret == 1
    c.cmd("flush_work", id=item)
    c.cmd("flush_work", id=item)
    # idle again: another queue is allowed
    assert c.cmd("queue_work", wq="system_highpri", id=item).ret == 1
    c.cmd("flush_work", id=item)
    obs = observe(c, wqlab_trace, [item])
    assert obs.max_concurrency() <= 1, obs.explain("never two runs of one item at once")
    assert stat(c, "run_overlaps") == 0  # the module's own count of the same
    assert c.cmd("work_free", id=item).ret == 0


def test_schedule_commands_record_the_queue_the_kernels_schedule_uses(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    """Where schedule_*() queue on system_percpu_wq (6.17+, Debian 6.12.95+: a queue of its
    own, also named "events"), the module once recorded them as system_wq: a schedule_work_on
    run requeued itself onto system_wq, and a schedule_work_on of another CPU ran beside it
    (the fuzzer's run_overlaps on Debian 6.12)."""
    c = plane
    feats = c.features()
    sched = feats["schedule_wq"]
    assert sched in ("system", "system_percpu"), feats
    item = new_item(c)
    # a chain: the second run is the first one's requeue, onto the item's recorded queue
    assert c.cmd("schedule_work_on", cpu=0, id=item, sleep_ms=1000, requeue=1).ret == 1
    poll("the requeued run", lambda: work(c, item)["runs"] == "2", timeout=30)
    w = work(c, item)
    assert (w["wq"], w["state"], w["active_runs"]) == (sched, "running", "1"), w
    assert c.cmd("schedule_work_on", cpu=1, id=item).ret == 1
    if feats["system_percpu_wq"] == "1":  # both queues exist: the other one is refused
        other = "system" if sched == "system_percpu" else "system_percpu"
        c.expect_errno(errno.EBUSY, "queue_work", wq=other, id=item)
    c.cmd("flush_work", id=item)
    c.cmd("flush_work", id=item)
    obs = observe(c, wqlab_trace, [item])
    assert obs.max_concurrency() <= 1, obs.explain("never two runs of one item at once")
    assert stat(c, "run_overlaps") == 0
    assert work(c, item)["runs"] == "3"
    assert c.cmd("work_free", id=item).ret == 0


def test_a_blocked_item_is_not_freed_or_moved_while_it_runs(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    item = new_item(c)
    c.cmd("schedule_work", id=item, block=1)
    obs = wait_blocked(c, wqlab_trace, [], item)
    # works names the run that blocked (only its end may clear blocked=1) and counts the
    # runs in flight: what a lost release's hang report needs to tell two runs from one
    w = work(c, item)
    assert (w["blocked"], w["active_runs"]) == ("1", "1"), w
    assert w["blocked_seq"] == seqs(obs, "wqlab_work_block", item)[0] == w["seq"], w
    c.expect_errno(errno.EBUSY, "queue_work", wq="system_long", id=item)
    c.expect_errno(errno.EBUSY, "work_free", id=item)
    seq0 = int(w["release_seq"])
    assert int(w["block_release_seq"]) == seq0, w  # the release count the run waits on
    assert c.cmd("release", id=item).ret == 1
    c.cmd("flush_work", id=item)
    w = work(c, item)
    assert (w["blocked"], w["blocked_seq"], w["block_release_seq"]) == ("0", "0", "0"), w
    assert w["active_runs"] == "0", w
    assert int(w["release_seq"]) == seq0 + 1, w
    assert stat(c, "run_overlaps") == 0
    assert c.cmd("work_free", id=item).ret == 0


@pytest.mark.wqlab_feature("wq_bh")
def test_an_item_changes_between_bh_and_thread_queues_only_when_idle(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    """One lockdep class per INIT_WORK site: an item that ran in a worker and then in softirq
    is lockdep's "inconsistent lock state" on the debug line (found there by
    test_system_queues_listed_in_features_accept_work). The item takes the class of its
    queue's kind, and changes kind only while idle."""
    c = plane
    item = new_item(c, delayed=True)
    assert c.cmd("queue_delayed_work", wq="system", id=item, delay_ms=5000).ret == 1
    # pending on a thread queue: neither queued nor moved onto a BH queue
    c.expect_errno(errno.EBUSY, "queue_delayed_work", wq="system_bh", id=item, delay_ms=0)
    c.expect_errno(errno.EBUSY, "mod_delayed_work", wq="system_bh", id=item, delay_ms=0)
    assert work(c, item)["state"] == "queued"
    # another thread queue too while it is pending (one queue at a time): cancel it first
    c.expect_errno(errno.EBUSY, "mod_delayed_work", wq="system_highpri", id=item, delay_ms=0)
    assert c.cmd("cancel_delayed_work", id=item).ret == 1
    assert c.cmd("mod_delayed_work", wq="system_highpri", id=item, delay_ms=0).ret == 0
    c.cmd("flush_delayed_work", id=item)
    # idle: it may go to a BH queue, and back to a thread queue once idle again
    assert c.cmd("queue_delayed_work", wq="system_bh", id=item, delay_ms=0).ret == 1
    c.cmd("flush_delayed_work", id=item)
    assert c.cmd("queue_delayed_work", wq="system", id=item, delay_ms=0).ret == 1
    c.cmd("flush_delayed_work", id=item)
    obs = observe(c, wqlab_trace, [item])
    queues = [lc.workqueue for lc in obs.ran(item)]
    assert queues == ["events_highpri", "events_bh", "events"], obs.explain(
        "three runs: system_highpri, system_bh, system, in that order"
    )
    assert c.cmd("work_free", id=item).ret == 0


# 4. a release followed at once by a queueing is not lost ---------------------------------


def test_a_release_followed_at_once_by_a_queueing_ends_the_blocked_run(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    item = new_item(c)
    c.cmd("schedule_work", id=item, block=1)
    obs = wait_blocked(c, wqlab_trace, [], item)
    first = seqs(obs, "wqlab_work_block", item)[0]
    # both commands in one guest shell, microseconds apart: the queueing clears the
    # release latch before the woken run looks at it
    c.agent.sh(
        f"exec 3<>{CONTROL}; echo 'release id={item}' >&3; "
        f"echo 'schedule_work id={item} block=1' >&3"
    )
    obs = wait_event(c, wqlab_trace, [item], "wqlab_work_done", item, timeout=10)
    assert first in seqs(obs, "wqlab_work_done", item), obs.explain("the released run finished")
    # the second run (queued with block=1 after the release) blocks until its own release
    wait_blocked(c, wqlab_trace, [item], item, n=2)
    assert c.cmd("release", id=item).ret == 1
    c.cmd("flush_work", id=item)
    c.cmd("work_free", id=item)


@pytest.mark.xdist_group("whole_vm")  # a CPU hog or timing-sensitive: the host to itself
@pytest.mark.wqlab_module_params(block_max_ms=1000)
def test_a_forgotten_release_costs_block_max_ms_not_a_hang(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = wqlab
    assert c.features()["block_max_ms"] == "1000"
    item = new_item(c)
    c.cmd("schedule_work", id=item, block=1)
    wait_blocked(c, wqlab_trace, [], item)
    t0 = time.monotonic()
    c.cmd("flush_work", id=item, timeout=30)  # returns once the block times out
    assert time.monotonic() - t0 < 20
    assert stat(c, "block_timeouts") == 1
    assert work(c, item)["state"] == "done"
    assert "no release within 1000 ms" in c.agent.sh("dmesg | tail -5")["stdout"]
    c.cmd("work_free", id=item)


# 5. smaller contract breaks --------------------------------------------------------------


def test_numbers_are_decimal_with_leading_zeros_or_0x_hex(wqlab: WqlabClient) -> None:
    c = wqlab
    c.cmd("alloc_workqueue", name="n010", max_active="010")
    c.cmd("alloc_workqueue", name="n09", max_active="09")
    c.cmd("alloc_workqueue", name="n0x10", max_active="0x10")
    got = {w["name"]: w["max_active"] for w in c.workqueues()}
    assert (got["n010"], got["n09"], got["n0x10"]) == ("10", "9", "16"), got
    for bad in ("+5", "0x", "1_0", "0o7", " 5"):
        c.expect_errno(errno.EINVAL, "alloc_workqueue", name="bad", max_active=bad)
    c.expect_errno(errno.EINVAL, "schedule_work_on", id=0, cpu="-0x1")
    for name in ("n010", "n09", "n0x10"):
        c.cmd("destroy_workqueue", wq=name)


def test_queue_names_fit_the_kernels_name_length(plane: WqlabClient) -> None:
    c = plane
    feats = c.features()
    nmax = int(feats["wq_name_max"])
    kernel_len = 32 if tuple(map(int, feats["kernel"].split(".")[:2])) >= (6, 8) else 24
    assert nmax == min(kernel_len - 1 - len("wqlab_"), uapi.NAME_MAX), feats
    long_a, long_b = "a" * (nmax - 1) + "x", "a" * (nmax - 1) + "y"
    c.expect_errno(errno.EINVAL, "alloc_workqueue", name=long_a + "z", flags="sysfs")
    # two names that differ in their last character only: both fit, both in sysfs
    c.cmd("alloc_workqueue", name=long_a, flags="sysfs")
    c.cmd("alloc_workqueue", name=long_b, flags="sysfs")
    for w in c.workqueues():
        if w["name"] in (long_a, long_b):
            assert w["kname"] == f"wqlab_{w['name']}"
            c.agent.sh(f"test -d /sys/devices/virtual/workqueue/{w['kname']}")
    for n in (long_a, long_b):
        c.cmd("destroy_workqueue", wq=n)


_PY_FD_AS_NOBODY = (
    "python3 -c 'import os\n"
    'fd=os.open("{path}",os.O_RDWR)\n'
    "os.setgid(65534); os.setuid(65534)\n"
    'try: os.write(fd,b"work_new\\n"); print(0)\n'
    "except OSError as e: print(e.errno)\n'"
)


def test_an_inherited_control_fd_is_refused_without_cap_sys_admin(wqlab: WqlabClient) -> None:
    a = wqlab.agent
    before = wqlab.read("works"), int(wqlab.stats()["cmds_ok"])
    res = a.sh(_PY_FD_AS_NOBODY.format(path=CONTROL), timeout=120)
    assert res["stdout"].split() == [str(errno.EPERM)], res
    assert (wqlab.read("works"), int(wqlab.stats()["cmds_ok"])) == before


_PY_RO_IOCTL = (
    "python3 -c 'import ctypes,mmap,os\n"
    'fd=os.open("{dev}",os.O_RDWR)\n'
    "m=mmap.mmap(-1,4096); m.write(bytes({size})); m.close()\n"
    "libc=ctypes.CDLL(None,use_errno=True)\n"
    "libc.mmap.restype=ctypes.c_void_p\n"
    "p=libc.mmap(None,4096,1,0x22,-1,0)\n"  # PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS: zeros
    "rc=libc.ioctl(fd,ctypes.c_ulong({req}),ctypes.c_void_p(p))\n"
    "print(rc, ctypes.get_errno())\n'"
)


def test_an_ioctl_whose_result_cannot_be_copied_out_does_not_run(wqlab: WqlabClient) -> None:
    before = wqlab.read("works"), int(wqlab.stats()["cmds_ok"]), int(wqlab.stats()["items"])
    script = _PY_RO_IOCTL.format(dev=DEVICE, size=uapi.CMD_SIZE, req=uapi.IOCTLS["work_new"])
    res = wqlab.agent.sh(script, timeout=120)
    assert res["stdout"].split() == ["-1", str(errno.EFAULT)], res
    after = wqlab.read("works"), int(wqlab.stats()["cmds_ok"]), int(wqlab.stats()["items"])
    assert after == before, "work_new ran (and leaked an id) although its result was lost"


def test_works_lines_are_one_token_per_value(wqlab: WqlabClient) -> None:
    c = wqlab
    item = new_item(c)
    c.cmd("schedule_work", id=item)
    c.cmd("flush_work", id=item)
    for line in c.read("works").splitlines():
        toks = line.split(" ")
        assert all("=" in t and t.index("=") > 0 for t in toks), line
    w = work(c, item)
    assert (w["fn"], w["fn_module"]) == ("wqlab_work_fn", "wqlab"), w
    assert w["comm"].startswith("kworker/"), w
    c.cmd("work_free", id=item)


_PY_SHARED_FD = (
    "python3 -c 'import os,threading\n"
    'fd=os.open("{path}",os.O_RDWR)\n'
    "bad=[]\n"
    'ok=("ret=0\\n","ret=0 busy=none\\n","ret=1\\n")\n'
    "def run(line):\n"
    " for _ in range(300):\n"
    "  os.write(fd,line)\n"
    '  out=b""\n'
    "  while True:\n"
    "   ch=os.read(fd,4096)\n"
    "   if not ch: break\n"
    "   out+=ch\n"
    "  s=out.decode()\n"
    '  if s and (any(x+"\\n" not in ok for x in s.splitlines()) or s[-1]!="\\n"):\n'
    "   bad.append(s)\n"
    "ts=[threading.Thread(target=run,args=(l,)) for l in "
    '(b"work_busy id=0\\n",b"work_pending id=0\\n",b"work_pending id=1\\n")]\n'
    "[t.start() for t in ts]; [t.join() for t in ts]\n"
    "print(len(bad), repr(bad[:5]))\n'"
)


def test_threads_sharing_one_control_fd_read_whole_result_lines(wqlab: WqlabClient) -> None:
    """Another thread's result (or none, if it took ours) is what one shared descriptor
    allows; half of one result glued to half of another is not."""
    res = wqlab.agent.sh(_PY_SHARED_FD.format(path=CONTROL), timeout=300)
    assert res["stdout"].startswith("0 "), res


@pytest.mark.wqlab_module_params(block_max_ms=100000)  # the item stays blocked through the loop
def test_disable_count_never_overflows_with_sync_cancels_in_flight(
    plane: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = plane
    if c.features().get("disable_work") != "1":
        pytest.skip(f"this kernel has no disable_work ({c.features()['kernel']})")
    item = new_item(c)
    c.cmd("schedule_work", id=item, block=1)
    wait_blocked(c, wqlab_trace, [], item)

    # 65534 disables from a guest shell loop (one command each: 10-30 s under TCG), while
    # the run stays blocked (block_max_ms=100 s): a first part tells whether it can
    def disables(n: int) -> float:
        t0 = time.monotonic()
        c.agent.sh(
            f"exec 3<>{CONTROL}; i=0; while [ $i -lt {n} ]; do "
            f"echo 'disable_work id={item}' >&3 || exit 1; i=$((i+1)); done",
            timeout=600,
        )
        return time.monotonic() - t0

    first = 4000
    projected = disables(first) * 65534 / first
    if projected > 80:
        pytest.skip(
            f"65534 commands would take about {projected:.0f} s on this kernel, longer than "
            "a run can stay blocked (block_max_ms <= 100 s)"
        )
    disables(65534 - first)
    assert stat(c, "block_timeouts") == 0, "the loop outlasted block_max_ms: no run to wait on"
    # one sync cancel waits on the blocked run and holds the last unit of the 16-bit count...
    fut = c.submit("cancel_work_sync", id=item)
    poll("the cancel to be in flight", lambda: work(c, item)["users"] == "1")
    # ...so neither another one nor a disable may take it (the kernel would WARN)
    c.expect_errno(errno.EBUSY, "cancel_work_sync", id=item)
    c.expect_errno(errno.EBUSY, "disable_work", id=item)
    c.expect_errno(errno.EBUSY, "disable_work_sync", id=item)
    assert c.cmd("release", id=item).ret == 1
    c.result(fut, timeout=60)
    assert c.cmd("disable_work", id=item).ret == 0  # the unit is free again: 65535
    c.expect_errno(errno.EBUSY, "disable_work", id=item)
    # freeing an item whose count is full must not take a unit (no cancel_*_sync)
    assert c.cmd("work_free", id=item).ret == 0
    assert "overflow" not in c.agent.sh("dmesg | tail -20")["stdout"]
    # and rmmod (the fixture's teardown) stops a disabled item without a cancel either
    left = new_item(c)
    c.cmd("disable_work", id=left)


# 6. a killed command gets its wait ended -------------------------------------------------


def _wait_in_background(c: WqlabClient, line: str) -> int:
    """Start a shell that writes ``line`` to the control file (it waits in the kernel)."""
    out = c.agent.sh(f"sh -c 'exec 3<>{CONTROL}; echo {line} >&3' >/dev/null 2>&1 & echo $!")
    pid = int(out["stdout"].split()[-1])

    def waiting() -> bool:
        stat = c.agent.sh(f"cat /proc/{pid}/stat 2>/dev/null", check=False)["stdout"]
        return stat.rsplit(")", 1)[-1].split()[:1] == ["D"]

    poll(f"{line!r} to wait in the kernel (D state)", waiting)
    return pid


def _kill_and_time(c: WqlabClient, pid: int) -> float:
    t0 = time.monotonic()
    c.agent.sh(f"kill -9 {pid}")
    poll("the killed command to be gone", lambda: not c.agent.exists(f"/proc/{pid}"), 20)
    return time.monotonic() - t0


def test_killing_a_flush_of_a_blocked_item_ends_its_wait_at_once(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    c = wqlab
    item = new_item(c)
    c.cmd("schedule_work", id=item, block=1)
    wait_blocked(c, wqlab_trace, [], item)
    pid = _wait_in_background(c, f"flush_work id={item}")
    took = _kill_and_time(c, pid)
    assert took < 10, f"the killed flush took {took:.1f} s (block_max_ms is 30 s)"
    assert stat(c, "aborts") == 1
    assert work(c, item)["state"] == "done"
    assert stat(c, "block_timeouts") == 0
    # the module is fully usable again: a new block waits for its release
    c.cmd("schedule_work", id=item, block=1)
    wait_blocked(c, wqlab_trace, [item], item, n=2)
    assert c.cmd("release", id=item).ret == 1
    c.cmd("flush_work", id=item)
    c.cmd("work_free", id=item)


def test_killing_a_drain_of_a_long_chain_ends_the_chain(wqlab: WqlabClient) -> None:
    c = wqlab
    c.cmd("alloc_workqueue", name="long")
    item = new_item(c)
    c.cmd("queue_work", wq="long", id=item, sleep_ms=50, requeue=10000)  # ~10 min of chain
    pid = _wait_in_background(c, "drain_workqueue wq=long")
    took = _kill_and_time(c, pid)
    assert took < 10, f"the killed drain took {took:.1f} s"
    w = work(c, item)
    assert int(w["requeue_left"]) > 0 and w["pending"] == "0", w
    assert stat(c, "aborts") == 1
    c.cmd("destroy_workqueue", wq="long")
    c.cmd("work_free", id=item)
