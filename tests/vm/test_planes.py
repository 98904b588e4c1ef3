"""The three control planes (debugfs text, ioctl, generic netlink) drive the same handlers:
the same scenario gives the same lifecycles, and bad input gets the same errno (the netlink
policy's ERANGE for a number out of range) and changes nothing."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from wqtest import counted_refusals, new_items, online_cpus, range_errno, wait_blocked, wait_runs

from wqlab import uapi
from wqlab.client import CONTROL, DEVICE, WqlabClient, WqlabCommandError
from wqlab.errors import GuestCommandError
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm

PLANES = ["wqlab", "wqlab_ioctl", "wqlab_netlink"]


def _client(request: pytest.FixtureRequest, plane: str) -> tuple[WqlabClient, TraceInstance]:
    c = request.getfixturevalue(plane)
    t = request.getfixturevalue("wqlab_trace")  # after the module: wqlab:* events enabled
    return c, t


def scenario(c: WqlabClient, wqlab_trace: TraceInstance, p: str) -> dict[str, Any]:
    """Ordered queue with three items (one queued twice), a per-CPU item, an unbound one
    and a delayed one; return what the trace showed, with names made plane-neutral."""
    cpu = online_cpus(c)[-1]
    c.cmd("alloc_ordered_workqueue", name=f"{p}ord")
    a, b, d, e, g = new_items(c, 5)
    (dl,) = new_items(c, 1, delayed=True)
    # a blocks at the front of the ordered queue, so b and d are surely still pending
    rets = [c.cmd("queue_work", wq=f"{p}ord", id=a, block=1).ret]
    wait_blocked(c, wqlab_trace, [], a)
    rets += [
        c.cmd("queue_work", wq=f"{p}ord", id=b, sleep_ms=5).ret,
        c.cmd("queue_work", wq=f"{p}ord", id=d, sleep_ms=5).ret,
        c.cmd("queue_work", wq=f"{p}ord", id=d).ret,  # pending: 0
        c.cmd("schedule_work_on", id=e, cpu=cpu).ret,
        c.cmd("queue_work", wq="system_unbound", id=g).ret,
        c.cmd("schedule_delayed_work", id=dl, delay_ms=20).ret,
    ]
    c.cmd("release", id=a)
    names = {a: "a", b: "b", d: "d", e: "e", g: "g", dl: "dl"}
    obs = wait_runs(c, wqlab_trace, {i: 1 for i in names})
    items = {}
    for i, label in names.items():
        lcs = obs.ran(i)
        items[label] = [
            (
                (lc.workqueue or "").replace(f"wqlab_{p}", "wqlab_"),
                lc.worker_kind.value if lc.worker_kind else None,
                # a delayed item's pool CPU is whichever CPU its timer fired on
                None if label == "dl" else lc.queue_cpu,
                lc.exec_cpu if label == "e" else None,
                lc.queued_in_softirq,
            )
            for lc in lcs
        ]
    ordered = sorted(obs.ran(a, b, d), key=lambda lc: lc.started_ns or 0)
    return {
        "rets": rets,
        "items": items,
        "ordered_runs": [names[obs.by_ptr[lc.work]] for lc in ordered],
        "ordered_max_concurrency": obs.max_concurrency(a, b, d),
        "table": obs.explain("the same lifecycles on both planes"),
    }


def _expected(cpu: int) -> dict[str, Any]:
    return {
        "rets": [1, 1, 1, 0, 1, 1, 1],
        "items": {
            "a": [("wqlab_ord", "unbound", -1, None, False)],
            "b": [("wqlab_ord", "unbound", -1, None, False)],
            "d": [("wqlab_ord", "unbound", -1, None, False)],
            "e": [("events", "bound", cpu, cpu, False)],
            "g": [("events_unbound", "unbound", -1, None, False)],
            "dl": [("events", "bound", None, None, True)],
        },
        "ordered_runs": ["a", "b", "d"],
        "ordered_max_concurrency": 1,
    }


def _cmp(got: dict[str, Any], cpu: int) -> None:
    want = _expected(cpu)
    got = dict(got)
    table = got.pop("table")
    assert got == want, f"\nexpected: {want}\nobserved: {got}\n{table}"


@pytest.mark.parametrize("plane", PLANES)
def test_scenario_gives_the_expected_lifecycles_on_each_plane(
    request: pytest.FixtureRequest, plane: str
) -> None:
    c, t = _client(request, plane)
    _cmp(scenario(c, t, "s"), online_cpus(c)[-1])


def test_all_three_planes_give_identical_lifecycles_in_one_module_load(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    ioctl = WqlabClient(wqlab.agent, "ioctl")
    netlink = WqlabClient(wqlab.agent, "netlink")
    text = scenario(wqlab, wqlab_trace, "t")
    binary = scenario(ioctl, wqlab_trace, "i")
    typed = scenario(netlink, wqlab_trace, "n")
    tables = [r.pop("table") for r in (text, binary, typed)]
    assert text == binary == typed, (
        f"\ndebugfs: {text}\nioctl:   {binary}\nnetlink: {typed}\n" + "\n".join(tables)
    )


# errnos -------------------------------------------------------------------------------


def _state(c: WqlabClient) -> tuple[str, str]:
    return c.read("works"), c.read("workqueues")


@pytest.mark.parametrize("plane", PLANES)
def test_bad_input_gets_its_errno_and_changes_nothing(
    request: pytest.FixtureRequest, plane: str
) -> None:
    c = request.getfixturevalue(plane)
    nr_cpu_ids = int(c.features()["nr_cpu_ids"])
    c.cmd("alloc_workqueue", name="dup")
    (item,) = new_items(c, 1)
    before = _state(c)
    failed0 = int(c.stats()["cmds_failed"])
    bad: list[tuple[int, str, dict[str, Any]]] = [
        (errno.ENOENT, "queue_work", {"wq": "nosuch", "id": item}),
        (errno.ENOENT, "schedule_work", {"id": 60}),  # never allocated
        (errno.EEXIST, "alloc_workqueue", {"name": "dup"}),
        (errno.EEXIST, "create_singlethread_workqueue", {"name": "dup"}),
        (range_errno(c, errno.EINVAL), "schedule_work_on", {"id": item, "cpu": nr_cpu_ids}),
        (range_errno(c, errno.EINVAL), "schedule_work_on", {"id": item, "cpu": -1}),
        (errno.EINVAL, "alloc_workqueue", {"name": "Bad-Name"}),
        (errno.EINVAL, "alloc_workqueue", {"name": "system_x"}),
        (errno.EINVAL, "schedule_delayed_work", {"id": item}),  # plain item
        (errno.EINVAL, "drain_workqueue", {"wq": "system"}),
        (range_errno(c, errno.E2BIG), "schedule_work", {"id": item, "sleep_ms": 60001}),
        (range_errno(c, errno.E2BIG), "alloc_workqueue", {"name": "big", "max_active": 513}),
    ]
    errors = [c.expect_errno(err, name, **args) for err, name, args in bad]
    assert _state(c) == before, "a rejected command changed works/workqueues"
    assert int(c.stats()["cmds_failed"]) == failed0 + counted_refusals(c, errors)
    assert c.cmd("work_busy", id=item).ret == 0


def test_malformed_text_line_is_einval_and_changes_nothing(wqlab: WqlabClient) -> None:
    before = _state(wqlab)
    for line in (
        "queue_work wq",
        "queue_work =3",
        "schedule_work id=0 id=0",
        "schedule_work id=0 bogus=1",
        "schedule_work id=zero",
        "   ",
    ):
        try:
            wqlab.agent.request("command", path=CONTROL, data=line + "\n")
        except GuestCommandError as e:
            assert e.errno == errno.EINVAL, f"{line!r}: {e}"
        else:
            raise AssertionError(f"{line!r} accepted")
    try:
        wqlab.agent.request("command", path=CONTROL, data="no_such_command id=0\n")
    except GuestCommandError as e:
        assert e.errno == errno.ENOENT, e
    else:
        raise AssertionError("unknown command accepted")
    assert _state(wqlab) == before


_PERL_IOCTL = (
    'perl -e \'open(my $f, "+<", "{dev}") or do {{ print "open ", $!+0; exit 0 }};'
    ' my $b = pack("H*", "{hex}"); my $r = ioctl($f, {req}, $b);'
    ' print defined $r ? "ok" : "ioctl " . ($!+0)\''
)
_PERL_WRITE = (
    'perl -e \'open(my $f, ">", "{path}") or do {{ print "open ", $!+0; exit 0 }};'
    ' my $r = syswrite($f, "{line}\\n"); print defined $r ? "ok" : "write " . ($!+0)\''
)


def _perl_ioctl(c: WqlabClient, prefix: str, user: str | None = None) -> str:
    cmd = _PERL_IOCTL.format(
        dev=DEVICE, hex=uapi.pack_cmd("schedule_work", id=0).hex(), req=uapi.IOCTLS["schedule_work"]
    )
    return str(c.agent.sh(f"{prefix}{cmd}", user=user, check=False)["stdout"]).strip()


def test_non_root_is_refused_on_both_planes_with_eacces(wqlab: WqlabClient) -> None:
    if not wqlab.agent.sh("command -v perl", check=False)["rc"] == 0:
        pytest.skip("perl missing in the guest")
    before = _state(wqlab)
    out = _perl_ioctl(wqlab, "", user="nobody")
    assert out == f"open {errno.EACCES}", f"/dev/wqlab as nobody: {out}"
    line = "alloc_workqueue name=nobody"
    out = str(
        wqlab.agent.sh(_PERL_WRITE.format(path=CONTROL, line=line), user="nobody", check=False)[
            "stdout"
        ]
    ).strip()
    assert out == f"open {errno.EACCES}", f"debugfs control as nobody: {out}"
    assert _state(wqlab) == before


def test_unknown_command_has_no_ioctl(wqlab_ioctl: WqlabClient) -> None:
    with pytest.raises(WqlabCommandError) as e:
        wqlab_ioctl.cmd("no_such_command")
    assert e.value.errno == errno.ENOTTY
    # a real ioctl number the module does not know
    bad = uapi._iowr(uapi.IOC_MAGIC, 0x7F, uapi.CMD_SIZE)
    with pytest.raises(GuestCommandError) as e2:
        wqlab_ioctl.agent.ioctl(DEVICE, bad, uapi.pack_cmd(id=0))
    assert e2.value.errno == errno.ENOTTY
