"""Every bad-input class of docs/commands.md "Errors" gets its errno, on both planes where
it applies, and a rejected command changes nothing: ``works``, ``workqueues`` stay the
same and ``stats`` counts one failure. Also: access control (0600 files, CAP_SYS_ADMIN),
ioctl numbers, faulting pointers, full pools and busy items."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest
from wqtest import counted_refusals, new_item, poll, range_errno

from wqlab import uapi
from wqlab.client import CONTROL, DEBUGFS, DEVICE, WqlabClient
from wqlab.errors import GuestCommandError

pytestmark = pytest.mark.vm


Snapshot = tuple[str, str, int, int]


def snapshot(c: WqlabClient) -> Snapshot:
    st = c.stats()
    return c.read("works"), c.read("workqueues"), int(st["cmds_ok"]), int(st["cmds_failed"])


def assert_rejected_cleanly(
    c: WqlabClient, before: Snapshot, n: int, what: str, counted: bool = True
) -> None:
    """``n`` rejected commands since ``before``: no state change, ``n`` failures counted."""
    works, wqs, ok, failed = snapshot(c)
    assert works == before[0], f"{what}: works changed\n{before[0]}\n---\n{works}"
    assert wqs == before[1], f"{what}: workqueues changed\n{before[1]}\n---\n{wqs}"
    assert ok == before[2], f"{what}: a rejected command counted as ok"
    assert failed == before[3] + (n if counted else 0), (
        f"{what}: cmds_failed {before[3]} -> {failed}, expected +{n if counted else 0}"
    )


def text_errno(c: WqlabClient, line: str) -> int | None:
    """Write one raw line to the control file; the errno of the write, None if accepted."""
    try:
        c.agent.request("command", path=CONTROL, data=line)
    except GuestCommandError as e:
        return e.errno
    return None


def ioctl_errno(c: WqlabClient, request: int, arg: bytes, bad_pointer: bool = False) -> int | None:
    try:
        c.agent.ioctl(DEVICE, request, arg, bad_pointer=bad_pointer)
    except GuestCommandError as e:
        return e.errno
    return None


# text plane: malformed lines ------------------------------------------------------------

MALFORMED = [
    ("\n", errno.EINVAL, "empty line"),
    ("   \t \n", errno.EINVAL, "blank line"),
    ("schedule_work id\n", errno.EINVAL, "token without '='"),
    ("schedule_work =0\n", errno.EINVAL, "empty key"),
    ("schedule_work id=0 bogus=1\n", errno.EINVAL, "unknown key"),
    ("schedule_work id=0 id=0\n", errno.EINVAL, "repeated key"),
    ("schedule_work id=zero\n", errno.EINVAL, "unparsable number"),
    ("schedule_work id=1x\n", errno.EINVAL, "trailing garbage"),
    ("schedule_work id=\n", errno.EINVAL, "empty value"),
    ("schedule_work id=-1\n", errno.EINVAL, "negative u32"),
    ("schedule_work_on id=0 cpu=2147483648\n", errno.EINVAL, "s32 out of range"),
    ("schedule_work id=4294967296\n", errno.E2BIG, "u32 beyond 32 bits"),
    ("schedule_work id=0 sleep_ms=0x100000000\n", errno.E2BIG, "hex beyond 32 bits"),
    ("alloc_workqueue name=" + "a" * uapi.NAME_LEN + "\n", errno.EINVAL, "name beyond the field"),
    ("queue_work id=0 wq=" + "s" * uapi.NAME_LEN + "\n", errno.EINVAL, "wq beyond the field"),
    ("alloc_workqueue name=q flags=unbound,bogus\n", errno.EINVAL, "unknown flag"),
    ("alloc_workqueue name=q flags=unbound,unbound\n", errno.EINVAL, "repeated flag"),
    ("no_such_command id=0\n", errno.ENOENT, "unknown command"),
    ("SCHEDULE_WORK id=0\n", errno.ENOENT, "command names are case-sensitive"),
]


def test_each_malformed_text_line_gets_its_errno_and_changes_nothing(
    wqlab: WqlabClient,
) -> None:
    wrong = []
    for line, err, what in MALFORMED:
        before = snapshot(wqlab)
        got = text_errno(wqlab, line)
        if got != err:
            wrong.append(f"{what}: {line!r}: expected {err}, got {got}")
            continue
        try:
            assert_rejected_cleanly(wqlab, before, 1, what)
        except AssertionError as e:
            wrong.append(str(e))
    assert not wrong, f"{len(wrong)} of {len(MALFORMED)} malformed lines:\n" + "\n".join(wrong)


def test_rejected_write_reads_back_err_and_a_good_one_ret(wqlab: WqlabClient) -> None:
    out = wqlab.agent.sh(
        f"exec 3<>{CONTROL}; "
        "echo 'schedule_work id=0 bogus=1' >&3 2>/dev/null; echo rc=$?; cat <&3; "
        f"printf '%0300d\\n' 0 >&3 2>/dev/null; echo rc=$?; cat <&3; "
        "echo 'work_pending id=0' >&3; echo rc=$?; cat <&3"
    )["stdout"].splitlines()
    assert out == [
        "rc=1",
        f"err=-{errno.EINVAL}",
        "rc=1",
        f"err=-{errno.E2BIG}",
        "rc=0",
        "ret=0",
    ], out


def test_text_line_of_256_bytes_or_more_is_e2big(wqlab: WqlabClient) -> None:
    cmd = "work_pending id=0"
    fits = cmd + " " * (uapi.LINE_MAX - 2 - len(cmd)) + "\n"  # 255 bytes: the longest
    assert len(fits) == uapi.LINE_MAX - 1
    assert text_errno(wqlab, fits) is None
    before = snapshot(wqlab)
    for n in (uapi.LINE_MAX, uapi.LINE_MAX + 1, 4096):
        line = cmd + " " * (n - 1 - len(cmd)) + "\n"
        assert len(line) == n
        assert text_errno(wqlab, line) == errno.E2BIG, f"{n}-byte line"
    assert_rejected_cleanly(wqlab, before, 3, "over-long lines")


# both planes: bad arguments -------------------------------------------------------------


def bad_arguments(c: WqlabClient, item: int, ditem: int) -> list[tuple[int, str, dict[str, Any]]]:
    f = c.features()
    nr = int(f["nr_cpu_ids"])
    sysq = f["system_queues"].split(",")

    def rng(err: int) -> int:  # out of range: the netlink policy's ERANGE
        return range_errno(c, err)

    cases: list[tuple[int, str, dict[str, Any]]] = [
        # ENOENT: unknown names and ids
        (errno.ENOENT, "queue_work", {"wq": "nosuch", "id": item}),
        (errno.ENOENT, "flush_workqueue", {"wq": "nosuch"}),
        (errno.ENOENT, "destroy_workqueue", {"wq": "nosuch"}),
        (errno.ENOENT, "workqueue_set_max_active", {"wq": "nosuch", "max_active": 1}),
        (errno.ENOENT, "schedule_work", {"id": 60}),
        (errno.ENOENT, "work_free", {"id": 999}),
        (errno.ENOENT, "release", {"id": 0xFFFFFFFF}),
        (errno.ENOENT, "work_busy", {"id": 63}),
        # EEXIST
        (errno.EEXIST, "alloc_workqueue", {"name": "dup"}),
        (errno.EEXIST, "create_workqueue", {"name": "dup"}),
        (errno.EEXIST, "create_singlethread_workqueue", {"name": "dup"}),
        (errno.EEXIST, "alloc_ordered_workqueue", {"name": "dup"}),
        # EINVAL: cpu
        (rng(errno.EINVAL), "schedule_work_on", {"id": item, "cpu": nr}),
        (rng(errno.EINVAL), "schedule_work_on", {"id": item, "cpu": 4096}),
        (rng(errno.EINVAL), "queue_work_on", {"wq": "system", "id": item, "cpu": -1}),
        (rng(errno.EINVAL), "queue_delayed_work_on", {"wq": "system", "id": ditem, "cpu": -7}),
        # EINVAL: names
        (errno.EINVAL, "alloc_workqueue", {"name": "Upper"}),
        (errno.EINVAL, "alloc_workqueue", {"name": "with-dash"}),
        (errno.EINVAL, "alloc_workqueue", {"name": "a" * (uapi.NAME_MAX + 1)}),
        (errno.EINVAL, "create_workqueue", {"name": "system"}),
        (errno.EINVAL, "alloc_ordered_workqueue", {"name": "system_mine"}),
        # EINVAL: arguments
        (errno.EINVAL, "schedule_work", {"id": item, "wq": "system"}),  # not taken
        (errno.EINVAL, "work_new", {"id": 5}),
        (errno.EINVAL, "queue_work", {"id": item}),  # missing wq
        (errno.EINVAL, "queue_work", {"wq": "system"}),  # missing id
        (errno.EINVAL, "schedule_work_on", {"id": item}),  # missing cpu
        (errno.EINVAL, "alloc_workqueue", {}),
        (errno.EINVAL, "workqueue_set_max_active", {"wq": "dup"}),
        (rng(errno.EINVAL), "schedule_work", {"id": item, "block": 2}),
        (rng(errno.EINVAL), "work_new", {"delayed": 2}),
        # EINVAL: item kind
        (errno.EINVAL, "schedule_delayed_work", {"id": item}),
        (errno.EINVAL, "queue_work", {"wq": "system", "id": ditem}),
        (errno.EINVAL, "cancel_delayed_work", {"id": 0}),
        (errno.EINVAL, "cancel_work_sync", {"id": 1}),
        (errno.EINVAL, "flush_delayed_work", {"id": item}),
        (errno.EINVAL, "delayed_work_pending", {"id": item}),
        (errno.EINVAL, "mod_delayed_work", {"wq": "system", "id": item}),
        # EINVAL: queues and flags
        (errno.EINVAL, "workqueue_set_max_active", {"wq": "dup", "max_active": 0}),
        (errno.EINVAL, "workqueue_set_max_active", {"wq": "ord", "max_active": 2}),
        (errno.EINVAL, "workqueue_set_max_active", {"wq": "system", "max_active": 2}),
        (errno.EINVAL, "drain_workqueue", {"wq": "system"}),
        (errno.EINVAL, "drain_workqueue", {"wq": "system_unbound"}),
        (errno.EINVAL, "destroy_workqueue", {"wq": "system"}),
        (errno.EINVAL, "work_free", {"id": 0}),
        (errno.EINVAL, "work_free", {"id": 1}),
        (errno.EINVAL, "alloc_ordered_workqueue", {"name": "q", "flags": "sysfs"}),
        # E2BIG: absurd numbers
        (
            rng(errno.E2BIG),
            "schedule_delayed_work",
            {"id": ditem, "delay_ms": uapi.DELAY_MS_MAX + 1},
        ),
        (rng(errno.E2BIG), "schedule_work", {"id": item, "sleep_ms": uapi.SLEEP_MS_MAX + 1}),
        (rng(errno.E2BIG), "schedule_work", {"id": item, "spin_us": uapi.SPIN_US_MAX + 1}),
        (rng(errno.E2BIG), "schedule_work", {"id": item, "requeue": uapi.REQUEUE_MAX + 1}),
        (rng(errno.E2BIG), "schedule_work", {"id": item, "requeue": 0xFFFFFFFF}),
        (rng(errno.E2BIG), "alloc_workqueue", {"name": "q", "max_active": uapi.MAX_ACTIVE_MAX + 1}),
        (rng(errno.E2BIG), "workqueue_set_max_active", {"wq": "dup", "max_active": 100000}),
    ]
    for q in ("system_bh", "system_bh_highpri", "system_percpu", "system_dfl"):
        if q not in sysq:
            cases.append((errno.ENOENT, "queue_work", {"wq": q, "id": item}))
    if f["wq_percpu"] == "1":
        cases.append((errno.EINVAL, "alloc_workqueue", {"name": "q", "flags": "unbound,percpu"}))
        cases.append((errno.EINVAL, "alloc_ordered_workqueue", {"name": "q", "flags": "percpu"}))
    if f["wq_bh"] == "1":
        cases += [
            (errno.EINVAL, "alloc_workqueue", {"name": "q", "flags": "bh,unbound"}),
            (errno.EINVAL, "alloc_workqueue", {"name": "q", "flags": "bh", "max_active": 1}),
            (errno.EINVAL, "alloc_ordered_workqueue", {"name": "q", "flags": "bh"}),
            (errno.EINVAL, "queue_work", {"wq": "system_bh", "id": item, "sleep_ms": 1}),
            (errno.EINVAL, "queue_work", {"wq": "system_bh", "id": item, "block": 1}),
            (errno.EINVAL, "queue_work", {"wq": "system_bh", "id": item, "spin_us": 10001}),
            (errno.EINVAL, "workqueue_set_max_active", {"wq": "bhq", "max_active": 2}),
        ]
    return cases


def test_each_bad_argument_gets_its_errno_and_changes_nothing(plane: WqlabClient) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="dup")
    c.cmd("alloc_ordered_workqueue", name="ord")
    if c.features()["wq_bh"] == "1":
        c.cmd("alloc_workqueue", name="bhq", flags="bh")
    item, ditem = new_item(c), new_item(c, delayed=True)
    cases = bad_arguments(c, item, ditem)
    before = snapshot(c)
    wrong = []
    errors = []
    for err, name, args in cases:
        try:
            errors.append(c.expect_errno(err, name, **args))
        except AssertionError as e:
            wrong.append(str(e))
    assert not wrong, f"{len(wrong)} of {len(cases)} cases:\n" + "\n".join(wrong)
    assert_rejected_cleanly(c, before, counted_refusals(c, errors), "bad arguments")


def test_offline_cpu_is_einval(plane: WqlabClient) -> None:
    c = plane
    path = "/sys/devices/system/cpu/cpu1/online"
    if not c.agent.exists(path):
        pytest.skip("no hot-pluggable cpu1 in this VM (run with --wqlab-cpus=2 or more)")
    item, ditem = new_item(c), new_item(c, delayed=True)
    c.agent.sh(f"echo 0 > {path}")
    try:
        before = snapshot(c)
        c.expect_errno(errno.EINVAL, "schedule_work_on", id=item, cpu=1)
        c.expect_errno(errno.EINVAL, "queue_work_on", wq="system", id=item, cpu=1)
        c.expect_errno(errno.EINVAL, "mod_delayed_work_on", wq="system", id=ditem, cpu=1)
        assert_rejected_cleanly(c, before, 3, "offline cpu")
    finally:
        c.agent.sh(f"echo 1 > {path}")
    assert c.cmd("schedule_work_on", id=item, cpu=1).ret == 1, "online again"


# ioctl plane: the struct and the request number ----------------------------------------


def raw_cmd(**kw: Any) -> bytes:
    """``struct wqlab_cmd`` with any field, bypassing pack_cmd's checks."""
    v = {name: 0 for name, _, _ in uapi.CMD_FIELDS}
    v.update(reserved=(0, 0, 0), wq=b"", name=b"")
    v.update(kw)
    return struct.pack(
        uapi.CMD_FORMAT,
        v["ret"],
        v["args"],
        v["id"],
        v["cpu"],
        v["flags"],
        v["max_active"],
        v["delay_ms"],
        v["sleep_ms"],
        v["spin_us"],
        v["requeue"],
        v["block"],
        v["delayed"],
        *v["reserved"],
        v["wq"],
        v["name"],
    )


def test_malformed_ioctl_struct_is_einval_and_changes_nothing(wqlab_ioctl: WqlabClient) -> None:
    c = wqlab_ioctl
    A = uapi.Arg
    sched, alloc = uapi.IOCTLS["schedule_work"], uapi.IOCTLS["alloc_workqueue"]
    cases = {
        "reserved[0] set": (sched, raw_cmd(args=A.ID, reserved=(1, 0, 0))),
        "reserved[2] set": (sched, raw_cmd(args=A.ID, reserved=(0, 0, 0x80000000))),
        "unknown args bit": (sched, raw_cmd(args=A.ID | (1 << 12))),
        "top args bit": (sched, raw_cmd(args=A.ID | (1 << 31))),
        "sleep_ms without its bit": (sched, raw_cmd(args=A.ID, sleep_ms=5)),
        "cpu without its bit": (sched, raw_cmd(args=A.ID, cpu=1)),
        "id without its bit": (uapi.IOCTLS["flush_scheduled_work"], raw_cmd(id=3)),
        "wq without its bit": (sched, raw_cmd(args=A.ID, wq=b"system")),
        "name without its bit": (sched, raw_cmd(args=A.ID, name=b"q")),
        "unterminated name": (alloc, raw_cmd(args=A.NAME, name=b"a" * uapi.NAME_LEN)),
        "unterminated wq": (
            uapi.IOCTLS["queue_work"],
            raw_cmd(args=A.ID | A.WQ, wq=b"s" * uapi.NAME_LEN),
        ),
        "unknown flag bit": (alloc, raw_cmd(args=A.NAME | A.FLAGS, name=b"q", flags=1 << 9)),
        "block=2": (sched, raw_cmd(args=A.ID | A.BLOCK, block=2)),
        "negative cpu": (uapi.IOCTLS["schedule_work_on"], raw_cmd(args=A.ID | A.CPU, cpu=-1)),
        "ret set on input is ignored, not an error": (sched, raw_cmd(args=A.ID, ret=-5)),
    }
    before = snapshot(c)
    wrong = []
    for what, (req, arg) in cases.items():
        want = None if what.startswith("ret set") else errno.EINVAL
        got = ioctl_errno(c, req, arg)
        if got != want:
            wrong.append(f"{what}: expected {want}, got {got}")
    assert not wrong, "\n".join(wrong)
    # the one accepted case queued the static item: it ran or is queued
    works, wqs, ok, failed = snapshot(c)
    assert wqs == before[1] and ok == before[2] + 1 and failed == before[3] + len(cases) - 1
    assert c.work(0)["wq"] == c.features()["schedule_wq"]  # schedule_work's queue


def test_unknown_ioctl_request_is_enotty(wqlab_ioctl: WqlabClient) -> None:
    c = wqlab_ioctl
    size, nr = uapi.CMD_SIZE, uapi.COMMAND_NRS["schedule_work"]
    arg = uapi.pack_cmd("schedule_work", id=0)
    requests = {
        "unknown number 0x7f": uapi._iowr(uapi.IOC_MAGIC, 0x7F, size),
        "unused number 0x05": uapi._iowr(uapi.IOC_MAGIC, 0x05, size),
        "other type": uapi._iowr(uapi.IOC_MAGIC + 1, nr, size),
        "type 0 (TCGETS-like)": 0x5401,
        "smaller size": uapi._iowr(uapi.IOC_MAGIC, nr, size - 8),
        "larger size": uapi._iowr(uapi.IOC_MAGIC, nr, size + 8),
        "write-only direction": uapi._ioc(uapi._IOC_WRITE, uapi.IOC_MAGIC, nr, size),
        "read-only direction": uapi._ior(uapi.IOC_MAGIC, nr, size),
        "no direction": uapi._ioc(0, uapi.IOC_MAGIC, nr, 0),
        "version number with a command's shape": uapi._iowr(uapi.IOC_MAGIC, 0, size),
    }
    before = snapshot(c)
    got = {what: ioctl_errno(c, req, arg + bytes(16)) for what, req in requests.items()}
    assert got == dict.fromkeys(requests, errno.ENOTTY), got
    # never reached a command: nothing ran, nothing counted
    assert_rejected_cleanly(c, before, len(requests), "unknown ioctls", counted=False)
    assert c.work(0)["runs"] == "0"


def test_unreadable_ioctl_argument_is_efault(wqlab_ioctl: WqlabClient) -> None:
    c = wqlab_ioctl
    before = snapshot(c)
    for name in ("schedule_work", "work_new", "alloc_workqueue"):
        assert ioctl_errno(c, uapi.IOCTLS[name], b"", bad_pointer=True) == errno.EFAULT, name
    assert_rejected_cleanly(c, before, 3, "bad pointers")
    before = snapshot(c)
    assert ioctl_errno(c, uapi.IOC_VERSION, b"", bad_pointer=True) == errno.EFAULT
    assert_rejected_cleanly(c, before, 1, "VERSION is not a command", counted=False)


# ENOSPC -------------------------------------------------------------------------------


@pytest.mark.parametrize("wqlab", [{"max_items": 4}], indirect=True, ids=["max_items=4"])
def test_full_item_pool_is_enospc_on_both_planes(wqlab: WqlabClient) -> None:
    io = WqlabClient(wqlab.agent, "ioctl")
    assert wqlab.features()["max_items"] == "4"
    ids = [new_item(wqlab), new_item(io, delayed=True), new_item(wqlab), new_item(io)]
    assert ids == [2, 3, 4, 5]
    before = snapshot(wqlab)
    for c in (wqlab, io):
        c.expect_errno(errno.ENOSPC, "work_new")
        c.expect_errno(errno.ENOSPC, "work_new", delayed=1)
    c.expect_errno(errno.ENOENT, "work_busy", id=6)
    assert_rejected_cleanly(wqlab, before, 5, "full pool")
    assert io.cmd("work_free", id=3).ret == 0
    assert new_item(wqlab) == 3, "a freed slot is reused"
    wqlab.expect_errno(errno.ENOSPC, "work_new")


def test_full_workqueue_table_is_enospc(plane: WqlabClient) -> None:
    c = plane
    limit = int(c.features()["max_workqueues"])
    assert limit == 32
    for i in range(limit):
        assert c.cmd("alloc_workqueue", name=f"q{i}").ret == 0
    before = snapshot(c)
    c.expect_errno(errno.ENOSPC, "alloc_workqueue", name="one_more")
    c.expect_errno(errno.ENOSPC, "create_singlethread_workqueue", name="one_more")
    c.expect_errno(errno.EEXIST, "alloc_workqueue", name="q7")
    assert_rejected_cleanly(c, before, 3, "full workqueue table")
    assert c.cmd("destroy_workqueue", wq="q7").ret == 0
    assert c.cmd("create_workqueue", name="one_more").ret == 0


# EBUSY --------------------------------------------------------------------------------


def test_busy_items_and_queues_are_ebusy(plane: WqlabClient) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="bq")
    blocked, pending, other = new_item(c), new_item(c, delayed=True), new_item(c)
    assert c.cmd("queue_work", wq="bq", id=blocked, block=1).ret == 1
    assert c.cmd("queue_delayed_work", wq="bq", id=pending, delay_ms=60000).ret == 1
    poll("blocked", lambda: c.work(blocked)["state"] == "blocked")
    before = snapshot(c)
    c.expect_errno(errno.EBUSY, "work_free", id=blocked)  # running
    c.expect_errno(errno.EBUSY, "reset", id=blocked)
    c.expect_errno(errno.EBUSY, "work_free", id=pending)  # pending
    c.expect_errno(errno.EBUSY, "reset", id=pending)
    c.expect_errno(errno.EBUSY, "destroy_workqueue", wq="bq")  # a blocked item on it
    assert_rejected_cleanly(c, before, 5, "busy")

    # in use by a blocking command: flush_work waits for the blocked run
    flush = c.submit("flush_work", id=blocked)
    poll("flush_work waiting", lambda: c.work(blocked)["users"] == "1")
    c.expect_errno(errno.EBUSY, "work_free", id=blocked)
    c.expect_errno(errno.EBUSY, "reset", id=blocked)
    # drain_workqueue in progress: queueing onto the queue and destroying it are EBUSY
    assert c.cmd("cancel_delayed_work", id=pending).ret == 1
    drain = c.submit("drain_workqueue", wq="bq")
    poll("draining", lambda: c.workqueues()[0]["draining"] == "1")
    before = snapshot(c)
    c.expect_errno(errno.EBUSY, "queue_work", wq="bq", id=other)
    c.expect_errno(errno.EBUSY, "queue_delayed_work", wq="bq", id=pending)
    c.expect_errno(errno.EBUSY, "destroy_workqueue", wq="bq")
    assert_rejected_cleanly(c, before, 3, "draining")
    assert c.cmd("queue_work", wq="system", id=other).ret == 1, "other queues are fine"
    assert not flush.done() and not drain.done()
    assert c.cmd("release", id=blocked).ret == 1
    assert c.result(flush).ret == 1 and c.result(drain).ret == 0
    assert c.workqueues()[0]["draining"] == "0"
    c.cmd("flush_work", id=other)
    for i in (blocked, pending, other):
        assert c.cmd("work_free", id=i).ret == 0
    assert c.cmd("destroy_workqueue", wq="bq").ret == 0


def test_destroy_of_a_queue_whose_blocked_run_was_queued_again_is_ebusy(
    plane: WqlabClient,
) -> None:
    """The run still blocks though the item's recorded behaviour is now block=0."""
    c = plane
    c.cmd("alloc_workqueue", name="rq")
    item = new_item(c)
    c.cmd("queue_work", wq="rq", id=item, block=1)
    poll("blocked", lambda: c.work(item)["state"] == "blocked")
    assert c.cmd("queue_work", wq="rq", id=item).ret == 1
    before = snapshot(c)
    c.expect_errno(errno.EBUSY, "destroy_workqueue", wq="rq")
    assert_rejected_cleanly(c, before, 1, "destroy with a blocked run")
    assert c.cmd("release", id=item).ret == 1, "a run was blocked"
    assert c.cmd("flush_workqueue", wq="rq").ret == 0
    assert c.work(item)["runs"] == "2"
    assert c.cmd("destroy_workqueue", wq="rq").ret == 0


def test_destroy_while_flush_workqueue_waits_is_ebusy(plane: WqlabClient) -> None:
    c = plane
    c.cmd("alloc_workqueue", name="fq")
    item = new_item(c)
    c.cmd("queue_work", wq="fq", id=item, sleep_ms=4000)  # sleeping, not blocked
    poll("running", lambda: c.work(item)["state"] == "running")
    fut = c.submit("flush_workqueue", wq="fq")
    poll("flushing", lambda: c.workqueues()[0]["users"] == "1")
    before = snapshot(c)
    c.expect_errno(errno.EBUSY, "destroy_workqueue", wq="fq")
    assert_rejected_cleanly(c, before, 1, "destroy while flushed")
    assert c.result(fut).ret == 0
    assert c.work(item)["state"] == "done"
    assert c.cmd("destroy_workqueue", wq="fq").ret == 0


# access -------------------------------------------------------------------------------

FILES = ("control", "works", "workqueues", "stats", "features")


def test_debugfs_files_are_0600_and_refused_to_nobody(wqlab: WqlabClient) -> None:
    a = wqlab.agent
    modes = a.sh(f"stat -c '%n %a %U' {DEBUGFS}/* {DEVICE}")["stdout"].split("\n")
    got = {ln.split()[0].rsplit("/", 1)[-1]: tuple(ln.split()[1:]) for ln in modes if ln}
    assert got == {n: ("600", "root") for n in (*FILES, "wqlab")}, got
    if a.sh("id nobody", check=False)["rc"] != 0:
        pytest.skip("no user nobody in the guest")
    before = snapshot(wqlab)
    script = "; ".join(
        [f"cat {DEBUGFS}/{f} >/dev/null 2>&1 && echo read:{f}" for f in FILES]
        + [
            f"echo alloc_workqueue name=nobody >{CONTROL} 2>/dev/null && echo wrote",
            f"(exec 3<>{DEVICE}) 2>/dev/null && echo opened",
            "true",
        ]
    )
    res = a.sh(script, user="nobody")
    assert res["stdout"] == "", f"nobody got through: {res['stdout']}"
    res = a.sh(f"cat {DEBUGFS}/stats", user="nobody", check=False)
    assert res["rc"] != 0 and "Permission denied" in res["stderr"], res
    assert_rejected_cleanly(wqlab, before, 0, "nobody")


_PY_IOCTL = (
    "python3 -c 'import fcntl,os,sys\n"
    'fd=os.open("{dev}",os.O_RDWR)\n'
    "for r in ({reqs}):\n"
    " b=bytearray({size})\n"
    " try: fcntl.ioctl(fd,r,b,True); print(0)\n"
    " except OSError as e: print(e.errno)\n'"
)


def test_ioctl_without_cap_sys_admin_is_eperm(wqlab: WqlabClient) -> None:
    a = wqlab.agent
    if a.sh("id nobody && command -v python3", check=False)["rc"] != 0:
        pytest.skip("no user nobody or python3 in the guest")
    before = snapshot(wqlab)
    reqs = [uapi.IOCTLS["work_new"], uapi.IOCTLS["flush_scheduled_work"], uapi.IOC_VERSION]
    script = _PY_IOCTL.format(dev=DEVICE, reqs=",".join(map(str, reqs)) + ",", size=uapi.CMD_SIZE)
    # 0600 keeps nobody out at open() (test above); open it up to reach the CAP check
    a.sh(f"chmod 0666 {DEVICE}")
    try:
        res = a.sh(script, user="nobody", timeout=120)  # one python start-up: ~5 s in TCG
    finally:
        a.sh(f"chmod 0600 {DEVICE}")
    assert res["stdout"].split() == [str(errno.EPERM)] * 3, res
    assert_rejected_cleanly(wqlab, before, 0, "EPERM")
