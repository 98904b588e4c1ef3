"""The module's command contract (docs/commands.md, "Commands"), command by command,
through both control planes: what each command returns (``ret``, ``id=``, ``busy=``) on
idle, pending, running and blocked items, on custom and system queues, and that commands
a kernel lacks answer EOPNOTSUPP. Workqueue semantics proven from traces live in the
other test files; here only the module's answers and its own records are checked."""

from __future__ import annotations

import errno
import time
from concurrent.futures import Future
from typing import Any

import pytest
from wqtest import new_item, poll

from wqlab import uapi
from wqlab.client import DEVICE, WqlabClient, WqlabCommandError, format_command

pytestmark = pytest.mark.vm

LONG_MS = 60000  # a delayed item stays pending for the whole test


def state(c: WqlabClient, item: int) -> str:
    return c.work(item)["state"]


def wait_state(c: WqlabClient, item: int, want: str) -> dict[str, str]:
    return poll(f"item {item} in state {want}", lambda: (w := c.work(item))["state"] == want and w)


def busy(c: WqlabClient, item: int) -> int:
    """work_busy's ret; on the text plane, also check that busy= names the same bits."""
    r = c.cmd("work_busy", id=item)
    if c.plane == "debugfs":
        names = {0: "none", 1: "pending", 2: "running", 3: "pending,running"}
        assert r["busy"] == names[r.ret], r
    return r.ret


def has(c: WqlabClient, feature: str) -> bool:
    return c.features().get(feature) == "1"


# listing ------------------------------------------------------------------------------


def test_control_listing_names_every_command_of_the_abi(wqlab: WqlabClient) -> None:
    lines = [ln for ln in wqlab.commands().splitlines() if ln.strip()]
    names = [ln.split()[0] for ln in lines]
    assert sorted(names) == sorted(uapi.COMMAND_NRS), (
        f"listed but not in the ABI: {set(names) - set(uapi.COMMAND_NRS)}; "
        f"in the ABI but not listed: {set(uapi.COMMAND_NRS) - set(names)}"
    )
    assert len(names) == len(set(names)), "a command is listed twice"
    by_name = {ln.split()[0]: ln for ln in lines}
    for ln in lines:
        head, sep, desc = ln.partition(" # ")
        assert sep and desc.strip(), f"no '# description' on {ln!r}"
        for arg in head.split()[1:]:
            assert arg.strip("[]") in uapi.ARG_KEYS, f"unknown argument {arg!r} in {ln!r}"
    # required bare, optional bracketed (spot checks against docs/commands.md)
    assert by_name["queue_work_on"].split(" # ")[0].split()[1:] == [
        "wq",
        "cpu",
        "id",
        "[sleep_ms]",
        "[spin_us]",
        "[requeue]",
        "[block]",
    ]
    assert by_name["work_new"].split(" # ")[0].split()[1:] == ["[delayed]"]
    assert by_name["flush_scheduled_work"].split(" # ")[0].split() == ["flush_scheduled_work"]
    assert by_name["alloc_workqueue"].split(" # ")[0].split()[1:] == [
        "name",
        "[flags]",
        "[max_active]",
    ]


def test_each_open_lists_commands_until_a_command_is_written(wqlab: WqlabClient) -> None:
    out = wqlab.agent.sh(
        "exec 3<>/sys/kernel/debug/wqlab/control; head -c 20 <&3; echo; "
        "echo work_new >&3; cat <&3; echo work_pending id=0 >&3; cat <&3; "
        "echo bogus_cmd >&3 2>/dev/null; cat <&3; "
        "exec 4<>/sys/kernel/debug/wqlab/control; head -1 <&4"
    )["stdout"].splitlines()
    assert out[0] == "work_new [delayed] #", out
    assert out[1] == "ret=0 id=2", out
    assert out[2] == "ret=0", out
    assert out[3] == f"err=-{errno.ENOENT}", out
    assert out[4].startswith("work_new [delayed] # "), "a new descriptor lists again"


def test_version_ioctl_returns_abi_1_and_the_struct_size(wqlab: WqlabClient) -> None:
    rc, data = wqlab.agent.ioctl(DEVICE, uapi.IOC_VERSION, bytes(uapi.VERSION_SIZE))
    assert rc == 0
    v = uapi.unpack_version(data)
    assert (v.abi_version, v.cmd_size) == (uapi.ABI_VERSION, uapi.CMD_SIZE) == (2, 160)
    assert wqlab.features()["abi_version"] == "2"


# items ----------------------------------------------------------------------------------


def test_work_new_takes_the_lowest_free_id_and_work_free_releases_it(
    plane: WqlabClient,
) -> None:
    c = plane
    assert [w["id"] for w in c.works()] == ["0", "1"], "only the static items at load"
    a, b, d = new_item(c), new_item(c), new_item(c, delayed=True)
    assert (a, b, d) == (2, 3, 4)
    kinds = {w["id"]: w["kind"] for w in c.works()}
    assert kinds == {"0": "work", "1": "delayed", "2": "work", "3": "work", "4": "delayed"}
    assert c.cmd("work_free", id=a).ret == 0
    assert [w["id"] for w in c.works()] == ["0", "1", "3", "4"]
    c.expect_errno(errno.ENOENT, "work_pending", id=a)
    assert new_item(c, delayed=True) == a, "the lowest free id is reused"
    assert c.work(a)["kind"] == "delayed"
    c.expect_errno(errno.EINVAL, "work_free", id=0)
    c.expect_errno(errno.EINVAL, "work_free", id=1)


def test_reset_clears_an_idle_items_record(plane: WqlabClient) -> None:
    c = plane
    item = new_item(c)
    assert c.cmd("queue_work", wq="system", id=item, sleep_ms=1).ret == 1
    assert c.cmd("flush_work", id=item).ret in (0, 1)
    w = wait_state(c, item, "done")
    assert (w["runs"], w["wq"], w["sleep_ms"]) == ("1", "system", "1")
    assert c.cmd("reset", id=item).ret == 0
    w = c.work(item)
    assert (w["state"], w["runs"], w["wq"], w["cpu"], w["sleep_ms"]) == (
        "idle",
        "0",
        "-",
        "-1",
        "0",
    ), w
    assert c.cmd("reset", id=0).ret == 0, "static items can be reset"


def test_idle_item_queries_and_cancels_return_zero(plane: WqlabClient) -> None:
    c = plane
    item, ditem = new_item(c), new_item(c, delayed=True)
    for i in (0, 1, item, ditem):
        assert c.cmd("work_pending", id=i).ret == 0
        assert busy(c, i) == 0
        assert c.cmd("flush_work", id=i).ret == 0, "nothing to wait for"
        assert c.cmd("release", id=i).ret == 0, "nothing blocked"
    for i in (1, ditem):
        assert c.cmd("delayed_work_pending", id=i).ret == 0
        assert c.cmd("flush_delayed_work", id=i).ret == 0
        assert c.cmd("cancel_delayed_work", id=i).ret == 0
        assert c.cmd("cancel_delayed_work_sync", id=i).ret == 0
    for i in (0, item):
        assert c.cmd("cancel_work_sync", id=i).ret == 0
        if has(c, "cancel_work"):
            assert c.cmd("cancel_work", id=i).ret == 0
    assert c.cmd("flush_scheduled_work").ret == 0
    assert {w["state"] for w in c.works()} == {"idle"}, "nothing was canceled"


def test_delayed_item_pending_on_its_timer(plane: WqlabClient) -> None:
    c = plane
    d = new_item(c, delayed=True)
    sched = c.features()["schedule_wq"]  # where schedule_*() queue: system or system_percpu
    assert c.cmd("schedule_delayed_work", id=d, delay_ms=LONG_MS).ret == 1
    w = c.work(d)
    assert (w["state"], w["pending"], w["running"], w["wq"]) == ("queued", "1", "0", sched)
    assert int(w["delay_jiffies"]) > 0
    # every queueing call on a pending item returns 0 and leaves its behaviour alone
    cpu = int(c.features()["nr_cpu_ids"]) - 1
    assert c.cmd("schedule_delayed_work", id=d, delay_ms=1, sleep_ms=7).ret == 0
    assert c.cmd("schedule_delayed_work_on", id=d, cpu=cpu, delay_ms=1).ret == 0
    # another queue: refused while it is pending (one queue at a time, docs/commands.md)
    c.expect_errno(errno.EBUSY, "queue_delayed_work", wq="system_long", id=d, delay_ms=1)
    if sched == "system":
        assert c.cmd("queue_delayed_work_on", wq="system", cpu=cpu, id=d).ret == 0
    else:
        c.expect_errno(errno.EBUSY, "queue_delayed_work_on", wq="system", cpu=cpu, id=d)
    assert c.work(d)["sleep_ms"] == "0" and c.work(d)["wq"] == sched
    assert c.cmd("work_pending", id=d).ret == 1
    assert c.cmd("delayed_work_pending", id=d).ret == 1
    assert busy(c, d) == 1
    c.expect_errno(errno.EBUSY, "work_free", id=d)
    c.expect_errno(errno.EBUSY, "reset", id=d)
    # mod_delayed_work always queues: ret=1 (was pending), behaviour recorded; onto its own
    # queue only while it is pending (another one: EBUSY, as for every queueing)
    c.expect_errno(errno.EBUSY, "mod_delayed_work", wq="system_unbound", id=d, delay_ms=1)
    r = c.cmd("mod_delayed_work", wq=sched, id=d, delay_ms=LONG_MS, sleep_ms=3)
    assert r.ret == 1
    assert (c.work(d)["wq"], c.work(d)["sleep_ms"]) == (sched, "3")
    r = c.cmd("mod_delayed_work_on", wq=sched, cpu=cpu, id=d, delay_ms=LONG_MS)
    assert r.ret == 1 and c.work(d)["req_cpu"] == str(cpu)
    assert c.cmd("cancel_delayed_work", id=d).ret == 1
    assert c.cmd("cancel_delayed_work", id=d).ret == 0
    w = c.work(d)
    assert (w["state"], w["pending"], w["runs"]) == ("canceled", "0", "0")
    assert busy(c, d) == 0
    # mod_delayed_work on an idle item queues it (ret=0: it was not pending)
    assert c.cmd("mod_delayed_work", wq="system", id=d, delay_ms=LONG_MS).ret == 0
    assert c.cmd("cancel_delayed_work_sync", id=d).ret == 1
    assert c.cmd("work_free", id=d).ret == 0


def test_blocked_item_is_running_until_released(plane: WqlabClient) -> None:
    c = plane
    item = new_item(c)
    assert c.cmd("queue_work", wq="system_unbound", id=item, block=1).ret == 1
    w = wait_state(c, item, "blocked")
    assert (w["pending"], w["running"], w["block"]) == ("0", "1", "1")
    assert busy(c, item) == 2
    assert c.cmd("work_pending", id=item).ret == 0
    c.expect_errno(errno.EBUSY, "work_free", id=item)
    c.expect_errno(errno.EBUSY, "reset", id=item)
    # a running item is not pending: queueing it again succeeds
    assert c.cmd("queue_work", wq="system_unbound", id=item).ret == 1
    assert busy(c, item) == 3
    assert c.cmd("queue_work", wq="system_unbound", id=item).ret == 0
    assert c.cmd("release", id=item).ret == 1
    assert c.cmd("flush_work", id=item).ret in (0, 1)
    w = poll("two runs", lambda: (w := c.work(item))["runs"] == "2" and w)
    assert w["state"] == "done" and busy(c, item) == 0
    assert c.cmd("release", id=item).ret == 0, "nothing blocked any more"
    assert c.cmd("work_free", id=item).ret == 0


def test_release_is_latched_and_a_requeueing_item_blocks_once(plane: WqlabClient) -> None:
    c = plane
    item = new_item(c)
    assert c.cmd("schedule_work", id=item, block=1, requeue=2).ret == 1
    wait_state(c, item, "blocked")
    assert c.cmd("release", id=item).ret == 1
    w = poll("3 runs", lambda: (w := c.work(item))["runs"] == "3" and w)
    assert (w["state"], w["requeue_left"]) == ("done", "0"), w
    # a release before the queueing is forgotten: the next run blocks again
    assert c.cmd("release", id=item).ret == 0
    assert c.cmd("schedule_work", id=item, block=1).ret == 1
    wait_state(c, item, "blocked")
    assert c.cmd("release", id=item).ret == 1
    poll("4 runs", lambda: c.work(item)["runs"] == "4")


def test_queueing_a_pending_plain_item_returns_zero_on_its_queue_ebusy_elsewhere(
    plane: WqlabClient,
) -> None:
    """A plain item stays pending behind a blocked one on an ordered queue."""
    c = plane
    cpu = int(c.features()["nr_cpu_ids"]) - 1
    assert c.cmd("alloc_ordered_workqueue", name="ord").ret == 0
    blocker, item = new_item(c), new_item(c)
    assert c.cmd("queue_work", wq="ord", id=blocker, block=1).ret == 1
    wait_state(c, blocker, "blocked")
    assert c.cmd("queue_work", wq="ord", id=item, sleep_ms=2).ret == 1
    assert c.cmd("queue_work", wq="ord", id=item).ret == 0
    # another queue while it is pending: EBUSY (one queue at a time, docs/commands.md)
    c.expect_errno(errno.EBUSY, "queue_work_on", wq="system", cpu=cpu, id=item)
    c.expect_errno(errno.EBUSY, "schedule_work", id=item)
    c.expect_errno(errno.EBUSY, "schedule_work_on", id=item, cpu=cpu, sleep_ms=9)
    if has(c, "enable_and_queue_work"):
        # not disabled: enable_work() would underflow the count and WARN, so refused
        c.expect_errno(errno.EINVAL, "enable_and_queue_work", wq="ord", id=item)
    w = c.work(item)
    assert (w["state"], w["wq"], w["sleep_ms"], w["pending"]) == ("queued", "ord", "2", "1")
    assert c.cmd("work_pending", id=item).ret == 1 and busy(c, item) == 1
    c.expect_errno(errno.EBUSY, "work_free", id=item)
    assert c.cmd("cancel_work_sync", id=item).ret == 1
    assert state(c, item) == "canceled" and c.cmd("work_pending", id=item).ret == 0
    if has(c, "cancel_work"):
        assert c.cmd("queue_work", wq="ord", id=item).ret == 1
        assert c.cmd("cancel_work", id=item).ret == 1
        assert c.cmd("cancel_work", id=item).ret == 0
    assert c.cmd("release", id=blocker).ret == 1
    assert c.cmd("flush_workqueue", wq="ord").ret == 0
    assert busy(c, blocker) == 0 and c.work(item)["runs"] == "0"


def test_schedule_and_queue_on_a_cpu_record_the_cpu(plane: WqlabClient) -> None:
    c = plane
    cpu = int(c.features()["nr_cpu_ids"]) - 1
    a, b = new_item(c), new_item(c)
    d1, d2 = new_item(c, delayed=True), new_item(c, delayed=True)
    assert c.cmd("schedule_work_on", id=a, cpu=cpu).ret == 1
    assert c.cmd("queue_work_on", wq="system_highpri", cpu=cpu, id=b).ret == 1
    assert c.cmd("schedule_delayed_work_on", id=d1, cpu=cpu, delay_ms=LONG_MS).ret == 1
    assert c.cmd("queue_delayed_work_on", wq="system", cpu=cpu, id=d2, delay_ms=1).ret == 1
    for i in (a, b, d2):
        w = poll(f"item {i} ran", lambda i=i: (w := c.work(i))["runs"] == "1" and w)
        assert (w["req_cpu"], w["cpu"]) == (str(cpu), str(cpu)), w
    assert c.work(d1)["req_cpu"] == str(cpu) and c.work(d1)["pending"] == "1"
    # flush fires the timer at once and waits; ret=0 if the run ended before it looked
    assert c.cmd("flush_delayed_work", id=d1).ret in (0, 1)
    assert c.work(d1)["runs"] == "1" and c.work(d1)["cpu"] == str(cpu)
    unbound = c.features()["work_cpu_unbound"]
    assert c.cmd("schedule_work", id=a).ret == 1
    assert c.work(a)["req_cpu"] == unbound


# queues -------------------------------------------------------------------------------


def test_workqueue_commands_create_tune_flush_drain_and_destroy(plane: WqlabClient) -> None:
    c = plane
    assert c.cmd("create_workqueue", name="cw").ret == 0
    assert c.cmd("create_singlethread_workqueue", name="st").ret == 0
    assert c.cmd("alloc_workqueue", name="aw", flags="unbound,highpri", max_active=4).ret == 0
    assert c.cmd("alloc_ordered_workqueue", name="ao", flags="mem_reclaim").ret == 0
    assert c.cmd("alloc_workqueue", name="plain").ret == 0
    qs = {q["name"]: q for q in c.workqueues()}
    assert set(qs) == {"cw", "st", "aw", "ao", "plain"}
    assert {n: q["kname"] for n, q in qs.items()} == {n: f"wqlab_{n}" for n in qs}
    assert {n: q["how"] for n, q in qs.items()} == {
        "cw": "create_workqueue",
        "st": "create_singlethread_workqueue",
        "aw": "alloc_workqueue",
        "ao": "alloc_ordered_workqueue",
        "plain": "alloc_workqueue",
    }
    assert (qs["aw"]["flags"], qs["aw"]["max_active"], qs["aw"]["ordered"]) == (
        "unbound,highpri",
        "4",
        "0",
    )
    assert (qs["ao"]["flags"], qs["ao"]["ordered"]) == ("mem_reclaim", "1")
    assert qs["st"]["ordered"] == "1"
    assert all(
        q["users"] == "0" and q["draining"] == "0" and q["dying"] == "0" for q in qs.values()
    )

    assert c.cmd("workqueue_set_max_active", wq="aw", max_active=8).ret == 0
    assert c.cmd("workqueue_set_max_active", wq="cw", max_active=512).ret == 0
    qs = {q["name"]: q for q in c.workqueues()}
    assert (qs["aw"]["max_active"], qs["cw"]["max_active"]) == ("8", "512")
    for q in ("st", "ao", "system", "system_unbound"):
        c.expect_errno(errno.EINVAL, "workqueue_set_max_active", wq=q, max_active=2)

    items = [new_item(c) for _ in range(3)]
    for q in ("cw", "st", "aw", "ao", "plain"):
        for i in items:
            c.cmd("queue_work", wq=q, id=i, sleep_ms=1)
        assert c.cmd("flush_workqueue", wq=q).ret == 0
        for i in items:
            assert c.cmd("queue_work", wq=q, id=i, requeue=3).ret == 1
        assert c.cmd("drain_workqueue", wq=q).ret == 0
        assert all(busy(c, i) == 0 for i in items), f"drain_workqueue {q} left work behind"
        assert all(c.work(i)["requeue_left"] == "0" for i in items)
    for q in ("system", "system_highpri", "system_long", "system_unbound"):
        assert c.cmd("flush_workqueue", wq=q).ret == 0

    for q in ("cw", "st", "aw", "ao", "plain"):
        assert c.cmd("queue_work", wq=q, id=items[0], sleep_ms=20).ret == 1
        assert c.cmd("destroy_workqueue", wq=q).ret == 0, "destroy drains"
        assert busy(c, items[0]) == 0
        c.expect_errno(errno.ENOENT, "queue_work", wq=q, id=items[0])
    assert c.workqueues() == []
    assert c.cmd("alloc_workqueue", name="cw").ret == 0, "the name is free again"
    assert c.cmd("destroy_workqueue", wq="cw").ret == 0


def test_system_queues_listed_in_features_accept_work(plane: WqlabClient) -> None:
    c = plane
    feats = c.features()
    names = feats["system_queues"].split(",")
    assert {
        "system",
        "system_highpri",
        "system_long",
        "system_unbound",
        "system_freezable",
        "system_power_efficient",
        "system_freezable_power_efficient",
    } <= set(names)
    assert ("system_bh" in names) == (feats["wq_bh"] == "1")
    item = new_item(c)
    # every name, system_freezable_power_efficient (32 characters) included: ABI 1's
    # 32-byte wq field could not hold that one with its NUL
    for q in names:
        assert c.cmd("queue_work", wq=q, id=item).ret == 1, q
        assert c.cmd("flush_work", id=item).ret in (0, 1)
        poll(f"run on {q}", lambda: c.work(item)["state"] == "done")
        assert c.work(item)["wq"] == q
    for q in ("system_bh", "system_bh_highpri", "system_percpu", "system_dfl"):
        if q not in names:
            c.expect_errno(errno.ENOENT, "queue_work", wq=q, id=item)


# APIs some kernels lack ---------------------------------------------------------------

OPTIONAL: list[tuple[str, str, dict[str, Any], bool]] = [
    # command, feature, args (item filled in), delayed item
    ("cancel_work", "cancel_work", {}, False),
    ("disable_work", "disable_work", {}, False),
    ("disable_work_sync", "disable_work", {}, False),
    ("enable_work", "disable_work", {}, False),
    ("disable_delayed_work", "disable_work", {}, True),
    ("disable_delayed_work_sync", "disable_work", {}, True),
    ("enable_delayed_work", "disable_work", {}, True),
    ("enable_and_queue_work", "enable_and_queue_work", {"wq": "system"}, False),
]


def test_apis_and_flags_absent_from_the_kernel_are_eopnotsupp(plane: WqlabClient) -> None:
    c = plane
    feats = c.features()
    absent = [o for o in OPTIONAL if feats[o[1]] != "1"]
    flags = [f for f in ("bh", "percpu") if feats[f"wq_{f}"] != "1"]
    if not absent and not flags:
        pytest.skip(f"{feats['kernel']} has every optional API: see the feature tests")
    item, ditem = new_item(c), new_item(c, delayed=True)
    before = c.works()
    failed = int(c.stats()["cmds_failed"])
    for name, _, args, delayed in absent:
        c.expect_errno(errno.EOPNOTSUPP, name, id=ditem if delayed else item, **args)
    for f in flags:
        c.expect_errno(errno.EOPNOTSUPP, "alloc_workqueue", name="x", flags=f)
        c.expect_errno(errno.EOPNOTSUPP, "alloc_workqueue", name="x", flags=f"highpri,{f}")
    assert c.works() == before and c.workqueues() == []
    assert int(c.stats()["cmds_failed"]) == failed + len(absent) + 2 * len(flags)


@pytest.mark.wqlab_feature("cancel_work")
def test_cancel_work_returns_whether_it_was_pending(plane: WqlabClient) -> None:
    c = plane
    item = new_item(c)
    c.cmd("alloc_ordered_workqueue", name="o")
    blocker = new_item(c)
    c.cmd("queue_work", wq="o", id=blocker, block=1)
    wait_state(c, blocker, "blocked")
    assert c.cmd("queue_work", wq="o", id=item).ret == 1
    assert c.cmd("cancel_work", id=item).ret == 1
    assert c.cmd("cancel_work", id=item).ret == 0
    assert c.cmd("cancel_work", id=blocker).ret == 0, "running, not pending"
    c.cmd("release", id=blocker)


@pytest.mark.wqlab_feature("disable_work")
def test_disable_and_enable_count_and_block_queueing(plane: WqlabClient) -> None:
    c = plane
    item, d = new_item(c), new_item(c, delayed=True)
    # enabling what is not disabled would underflow the kernel's count (WARN): refused
    c.expect_errno(errno.EINVAL, "enable_work", id=item)
    c.expect_errno(errno.EINVAL, "enable_delayed_work", id=d)
    assert c.cmd("disable_work", id=item).ret == 0, "was not pending"
    assert c.cmd("disable_work", id=item).ret == 0
    assert c.cmd("queue_work", wq="system", id=item).ret == 0, "disabled: not queued"
    assert c.cmd("enable_work", id=item).ret == 0, "count 2 -> 1"
    assert c.cmd("enable_work", id=item).ret == 1, "count 1 -> 0"
    assert c.cmd("queue_work", wq="system", id=item, block=1).ret == 1
    wait_state(c, item, "blocked")
    fut = c.submit("disable_work_sync", id=item)
    poll("disable_work_sync waiting", lambda: c.work(item)["users"] == "1")
    assert not fut.done()
    c.cmd("release", id=item)
    assert c.result(fut).ret == 0, "it was running, not pending"
    assert c.cmd("enable_work", id=item).ret == 1

    assert c.cmd("schedule_delayed_work", id=d, delay_ms=LONG_MS).ret == 1
    assert c.cmd("disable_delayed_work", id=d).ret == 1, "was pending"
    assert c.work(d)["state"] == "canceled"
    assert c.cmd("queue_delayed_work", wq="system", id=d).ret == 0
    assert c.cmd("enable_delayed_work", id=d).ret == 1
    assert c.cmd("schedule_delayed_work", id=d, delay_ms=LONG_MS).ret == 1
    assert c.cmd("disable_delayed_work_sync", id=d).ret == 1
    assert c.cmd("delayed_work_pending", id=d).ret == 0
    assert c.cmd("enable_delayed_work", id=d).ret == 1
    c.expect_errno(errno.EINVAL, "enable_delayed_work", id=d)
    c.expect_errno(errno.EINVAL, "enable_work", id=item)


@pytest.mark.wqlab_feature("disable_work", "enable_and_queue_work")
def test_enable_and_queue_work_enables_then_queues(plane: WqlabClient) -> None:
    c = plane
    item = new_item(c)
    assert c.cmd("disable_work", id=item).ret == 0
    assert c.cmd("enable_and_queue_work", wq="system", id=item, sleep_ms=1).ret == 1
    poll("the run", lambda: c.work(item)["runs"] == "1")
    assert c.cmd("disable_work", id=item).ret == 0
    assert c.cmd("disable_work", id=item).ret == 0
    assert c.cmd("enable_and_queue_work", wq="system", id=item).ret == 0, "still disabled"
    assert c.cmd("enable_work", id=item).ret == 1
    c.expect_errno(errno.EINVAL, "enable_and_queue_work", wq="system", id=item)


def test_flush_scheduled_work_waits_for_items_on_the_system_queue(
    plane: WqlabClient,
) -> None:
    c = plane
    feats = c.features()
    impl = feats["flush_scheduled_work_impl"]
    assert impl == ("system_wq" if feats["flush_scheduled_work"] == "1" else "wqlab_items")
    item = new_item(c)
    assert c.cmd("schedule_work", id=item, block=1).ret == 1
    wait_state(c, item, "blocked")
    fut = c.submit("flush_scheduled_work")
    time.sleep(0.5)  # negative check: it must still be waiting for the release
    assert not fut.done(), "flush_scheduled_work returned while the item was blocked"
    c.cmd("release", id=item)
    assert c.result(fut).ret == 0
    assert c.work(item)["state"] == "done"


# many threads -------------------------------------------------------------------------


def test_concurrent_commands_from_many_threads_are_safe(wqlab: WqlabClient) -> None:
    """Commands from 8+ agent threads and both planes on the same items and queue."""
    c, io = wqlab, WqlabClient(wqlab.agent, "ioctl")
    c.cmd("alloc_workqueue", name="hammer", max_active=2)
    items = [new_item(c) for _ in range(6)]
    ditems = [new_item(c, delayed=True) for _ in range(2)]
    stats0 = c.stats()
    futs: list[tuple[WqlabClient, Future[Any]]] = []

    def fire(client: WqlabClient, name: str, **args: Any) -> None:
        if client.plane == "debugfs" and not name.startswith(("flush", "cancel")):
            # force a pool thread in the agent (quick commands run inline by default)
            fut = client.agent.submit(
                "command",
                path="/sys/kernel/debug/wqlab/control",
                data=_line(name, args),
                inline=False,
            )
            fut.wqlab_command = (name, args)  # type: ignore[attr-defined]
        else:
            fut = client.submit(name, **args)
        futs.append((client, fut))

    for rnd in range(12):
        for k, i in enumerate(items):
            cl = c if (rnd + k) % 2 else io
            fire(
                cl,
                "queue_work",
                wq="hammer" if k % 2 else "system",
                id=i,
                spin_us=200,
                requeue=rnd % 3,
            )
            fire(cl, "cancel_work_sync" if k % 3 == 0 else "flush_work", id=i)
            fire(cl, "work_busy", id=i)
        for d in ditems:
            fire(io, "mod_delayed_work", wq="hammer", id=d, delay_ms=rnd % 4)
            fire(c, "cancel_delayed_work_sync" if rnd % 2 else "flush_delayed_work", id=d)
        fire(c, "flush_workqueue", wq="hammer")
    errors: list[str] = []
    for cl, fut in futs:
        try:
            cl.result(fut, timeout=120)
        except WqlabCommandError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors[:10])
    stats = c.stats()
    assert int(stats["cmds_ok"]) - int(stats0["cmds_ok"]) == len(futs), (stats0, stats)
    assert stats["cmds_failed"] == stats0["cmds_failed"]
    assert c.cmd("drain_workqueue", wq="hammer").ret == 0
    for d in ditems:
        c.cmd("cancel_delayed_work_sync", id=d)
    for i in items + ditems:
        c.cmd("flush_work", id=i)
        assert busy(c, i) == 0
        assert c.work(i)["users"] == "0"
    assert c.cmd("destroy_workqueue", wq="hammer").ret == 0


def _line(name: str, args: dict[str, Any]) -> str:
    return format_command(name, args) + "\n"


def test_results_are_per_descriptor(wqlab: WqlabClient) -> None:
    """Two descriptors interleaved: each reads back its own last result."""
    out = wqlab.agent.sh(
        "C=/sys/kernel/debug/wqlab/control; exec 3<>$C 4<>$C; "
        "echo work_new >&3; echo work_new delayed=1 >&4; echo work_busy id=0 >&3 ; "
        "cat <&4; cat <&3; cat <&4"
    )["stdout"].splitlines()
    # the second read of fd 4 is at end of file: a result is read once per write
    assert out == ["ret=0 id=3", "ret=0 busy=none"], out
