"""The fuzzer's pure parts (wqlab/fuzzgen.py): the command table read from a recorded
listing, seeded generators, the mutators' promised errnos and the oracle's errno tables.

``data/fuzz/`` holds the control file's listing and the ``features`` file read from the
module on 6.1.0-57-amd64.
"""

from __future__ import annotations

import errno
import random
import re
import struct
from pathlib import Path

import pytest

from wqlab import fuzz, uapi
from wqlab import fuzzgen as fg
from wqlab.client import parse_kv
from wqlab.fuzzhost import FuzzParams, guest_args, guest_command

DATA = Path(__file__).parent / "data" / "fuzz"
DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


@pytest.fixture(scope="module")
def table() -> dict[str, fg.CommandSpec]:
    return fg.parse_listing((DATA / "listing-6.1.txt").read_text())


@pytest.fixture(scope="module")
def uni() -> fg.Universe:
    return fg.Universe.from_features(
        parse_kv((DATA / "features-6.1.txt").read_text()), max_items=16
    )


def stream(table: dict[str, fg.CommandSpec], uni: fg.Universe, seed: int, name: str) -> list[str]:
    gen = fg.Generator(table, uni, seed, name)
    out: list[str] = []
    while len(out) < 2000:
        out += [op.describe() for op in gen.episode()]
    return out


# the command table --------------------------------------------------------------------------


def test_listing_gives_every_command_with_its_arguments(table: dict[str, fg.CommandSpec]) -> None:
    assert fg.table_mismatches(table) == []
    assert table["queue_work"].required == ("wq", "id")
    assert table["queue_work"].optional == ("sleep_ms", "spin_us", "requeue", "block")
    assert table["work_new"].required == () and table["work_new"].optional == ("delayed",)
    assert table["flush_scheduled_work"].args == ()
    assert table["alloc_workqueue"].help.startswith("alloc_workqueue(")


def test_listing_keys_cover_the_abi(table: dict[str, fg.CommandSpec]) -> None:
    used = {k for spec in table.values() for k in spec.args}
    assert used == set(uapi.ARG_KEYS) == set(fg.ARG_TYPES)


def test_listing_with_a_key_the_abi_lacks_is_rejected() -> None:
    with pytest.raises(ValueError, match="bogus"):
        fg.parse_listing("queue_work wq id [bogus] # x\n")


def test_item_kinds_follow_the_docs(table: dict[str, fg.CommandSpec]) -> None:
    kinds = {n: s.item_kind for n, s in table.items()}
    assert kinds["queue_delayed_work"] == kinds["cancel_delayed_work_sync"] == "delayed"
    assert kinds["schedule_work_on"] == kinds["enable_and_queue_work"] == "plain"
    assert kinds["flush_work"] == kinds["work_free"] == kinds["work_busy"] == "either"
    assert kinds["drain_workqueue"] == kinds["work_new"] == "none"


# generators ---------------------------------------------------------------------------------


def test_same_seed_same_stream_per_thread(
    table: dict[str, fg.CommandSpec], uni: fg.Universe
) -> None:
    a = stream(table, uni, 42, "t0")
    assert a == stream(table, uni, 42, "t0")
    assert a != stream(table, uni, 42, "t1")
    assert a != stream(table, uni, 43, "t0")


def test_well_formed_input_is_in_range(table: dict[str, fg.CommandSpec], uni: fg.Universe) -> None:
    gen = fg.Generator(table, uni, 7, "t0")
    seen: set[str] = set()
    for _ in range(3000):
        for op in gen.episode():
            if op.kind != "valid":
                continue
            spec = table[op.cmd]
            seen.add(op.cmd)
            args = op.argd
            assert set(spec.required) <= set(args) <= set(spec.args), op.describe()
            assert int(args.get("sleep_ms", 0)) <= 20 and int(args.get("requeue", 0)) <= 4
            assert int(args.get("delay_ms", 0)) <= 30 and args.get("block", "0") in "01"
            if "cpu" in args:
                assert 0 <= int(args["cpu"]) < uni.cpus
            if "id" in args and spec.item_kind in ("plain", "delayed"):
                assert uni.kind(int(args["id"])) == spec.item_kind, op.describe()
            if op.cmd in ("drain_workqueue", "destroy_workqueue"):
                assert args["wq"] in uni.queues
            assert op.line().split()[0] == op.cmd
            assert len(op.ioctl_bytes()) == uapi.CMD_SIZE
    unsupported = {n for n, s in table.items() if not uni.supported(s)}
    assert seen == set(table) - unsupported  # every command the kernel has is drawn
    assert "disable_work" in unsupported  # 6.1


def test_blocking_items_are_a_small_share(
    table: dict[str, fg.CommandSpec], uni: fg.Universe
) -> None:
    gen = fg.Generator(table, uni, 3, "t0")
    ops = [op for _ in range(3000) for op in gen.episode() if op.kind == "valid"]
    queued = [op for op in ops if table[op.cmd].queues]
    blocking = [op for op in queued if op.argd.get("block") == "1"]
    assert 0 < len(blocking) < 0.15 * len(queued)


def test_valid_op_packs_like_the_uapi_mirror() -> None:
    op = fg.Op("queue_work_on", (("wq", "q1"), ("cpu", "1"), ("id", "2"), ("sleep_ms", "5")))
    assert op.ioctl_bytes() == uapi.pack_cmd("queue_work_on", wq="q1", cpu=1, id=2, sleep_ms=5)
    assert op.text_bytes() == b"queue_work_on wq=q1 cpu=1 id=2 sleep_ms=5\n"
    assert op.ioctl_request() == uapi.IOCTLS["queue_work_on"]
    neg = fg.pack_args((("cpu", "-1"),))
    assert struct.unpack_from("<i", neg, 16)[0] == -1


# mutators -----------------------------------------------------------------------------------


def mutations(
    table: dict[str, fg.CommandSpec], uni: fg.Universe, mutator: fg.Mutator, n: int = 400
) -> list[fg.Op]:
    r = random.Random(5)
    gen = fg.Generator(table, uni, 5, "m")
    out = []
    for _ in range(n):
        base = gen.any_valid()
        op = mutator(r, table[base.cmd], base, uni)
        if op is not None:
            out.append(op)
    return out


@pytest.mark.parametrize("mutator", fg.ALL_MUTATORS, ids=lambda m: m.__name__)
def test_every_mutator_promises_a_documented_errno(
    table: dict[str, fg.CommandSpec], uni: fg.Universe, mutator: fg.Mutator
) -> None:
    ops = mutations(table, uni, mutator)
    assert ops, f"{mutator.__name__} never applies"
    for op in ops:
        assert op.kind == "mutated" and op.expect, op.describe()
        assert op.expect <= (fg.NETLINK_ERRNOS if op.plane == fg.NETLINK else fg.GLOBAL_ERRNOS)
        assert op.stage in ("parse", "validate", "handler", "dispatch", "policy")
        if mutator in fg.NETLINK_ONLY:
            assert op.plane == fg.NETLINK and op.nl is not None and not op.pair
            assert op.netlink_message() != fg.Op(op.cmd, op.args).netlink_message()
        if mutator in fg.TEXT_ONLY:
            assert op.plane == fg.TEXT and op.raw is not None and not op.pair
        if mutator in fg.IOCTL_ONLY:
            assert op.plane == fg.IOCTL and op.raw is not None and len(op.raw) == uapi.CMD_SIZE
        if mutator in fg.BOTH_PLANES:  # the same fault is expressible on both planes
            assert op.pair and op.raw is None
            assert len(op.ioctl_bytes()) == uapi.CMD_SIZE and op.text_bytes().endswith(b"\n")


def test_mutators_change_one_thing(table: dict[str, fg.CommandSpec], uni: fg.Universe) -> None:
    for op in mutations(table, uni, fg.m_over_max):
        key = next(k for k, v in op.args if fg.ARG_TYPES[k].max and int(v) > fg.ARG_TYPES[k].max)
        assert op.expect == {errno.E2BIG}, key
    for op in mutations(table, uni, fg.m_missing):
        assert not set(table[op.cmd].required) <= set(op.argd)
    for op in mutations(table, uni, fg.m_extra):
        assert not set(op.argd) <= set(table[op.cmd].args)
    for op in mutations(table, uni, fg.m_long_line):
        assert len(op.text_bytes()) >= uapi.LINE_MAX and op.expect == {errno.E2BIG}
    for op in mutations(table, uni, fg.m_repeated_key):
        keys = [t.split("=")[0] for t in op.line().split()[1:]]
        assert len(keys) == len(set(keys)) + 1
    for op in mutations(table, uni, fg.m_unknown_command):
        assert op.line().split()[0] not in table and op.expect == {errno.ENOENT}
    for op in mutations(table, uni, fg.m_bad_request):
        assert op.ioctl_request() not in uapi.IOCTLS.values() and op.expect == {errno.ENOTTY}


def test_mutate_is_seeded(table: dict[str, fg.CommandSpec], uni: fg.Universe) -> None:
    def run(seed: int) -> list[str]:
        r = random.Random(seed)
        gen = fg.Generator(table, uni, seed, "m")
        return [
            (fg.mutate(r, table, uni, gen.any_valid()) or fg.Op("none")).describe()
            for _ in range(300)
        ]

    assert run(1) == run(1) != run(2)


def test_random_input_is_seeded_and_bounded(
    table: dict[str, fg.CommandSpec], uni: fg.Universe
) -> None:
    a = [fg.random_input(random.Random(9), table, uni).describe() for _ in range(3)]
    b = [fg.random_input(random.Random(9), table, uni).describe() for _ in range(3)]
    assert a == b
    r = random.Random(1)
    for _ in range(500):
        op = fg.random_input(r, table, uni)
        assert op.kind == "random"
        data = op.text_bytes() if op.plane == fg.TEXT else op.ioctl_bytes()
        assert data and (op.plane == fg.TEXT or len(data) == uapi.CMD_SIZE)


# the oracle's errno tables ------------------------------------------------------------------


def doc_errnos() -> set[int]:
    errors = DOC.read_text().split("| errno | when |", 1)[1]
    return {getattr(errno, m) for m in re.findall(r"^\| `(E[A-Z0-9]+)` \(\d+\)", errors, re.M)}


def test_global_errnos_are_the_docs(table: dict[str, fg.CommandSpec]) -> None:
    assert fg.GLOBAL_ERRNOS == doc_errnos()


def test_errno_tables_per_command(table: dict[str, fg.CommandSpec], uni: fg.Universe) -> None:
    def valid(name: str) -> set[int]:
        return set(fg.valid_errnos(table[name], fg.TEXT, uni))

    assert valid("work_new") == {errno.ENOSPC, errno.ENOMEM}
    assert valid("flush_scheduled_work") == {errno.ENOMEM}
    assert errno.EEXIST in valid("alloc_workqueue") and errno.E2BIG not in valid("alloc_workqueue")
    assert errno.EBUSY in valid("queue_work") and errno.EBUSY in valid("schedule_work")
    assert errno.EBUSY in valid("destroy_workqueue") and errno.EBUSY not in valid("flush_work")
    assert errno.EOPNOTSUPP in valid("disable_work")  # 6.1 has no disable_work()
    assert errno.EOPNOTSUPP not in valid("cancel_work")  # but has cancel_work()
    for name, spec in table.items():
        for plane in (fg.TEXT, fg.IOCTL):
            allowed = fg.allowed_errnos(spec, plane, uni)
            assert fg.valid_errnos(spec, plane, uni) <= allowed <= fg.GLOBAL_ERRNOS, name
            assert (errno.ENOTTY in allowed) == (plane == fg.IOCTL)
    assert errno.ENOENT in fg.allowed_errnos(None, fg.TEXT, uni)  # unknown command


def test_stats_count_what_the_dispatcher_sees() -> None:
    assert fg.counted(None, fg.IOCTL) and fg.counted(errno.EINVAL, fg.TEXT)
    assert fg.counted(errno.E2BIG, fg.TEXT)  # a long line is counted before parsing
    assert not fg.counted(errno.ENOTTY, fg.IOCTL) and not fg.counted(errno.EPERM, fg.IOCTL)
    # netlink: the module's refusals (its extack text) are counted, the policy's are not
    assert fg.counted(None, fg.NETLINK)
    assert fg.counted(errno.ENOENT, fg.NETLINK, "wqlab: no such work item")
    assert fg.counted(errno.EPROTO, fg.NETLINK, "wqlab: unsupported family version (...)")
    assert not fg.counted(errno.ERANGE, fg.NETLINK, "integer out of range")
    assert not fg.counted(errno.EOPNOTSUPP, fg.NETLINK, "Operation not supported")


# the netlink plane ----------------------------------------------------------------------------


def doc_netlink_errnos() -> set[int]:
    part = DOC.read_text().split("## Generic netlink", 1)[1].split("| errno | when |", 1)[1]
    table = part.split("\n\n", 1)[0]
    return {getattr(errno, m) for m in re.findall(r"^\| `(E[A-Z0-9]+)` \|", table, re.M)}


def test_netlink_errnos_are_the_docs() -> None:
    assert {errno.EPROTO, errno.ERANGE, errno.EOPNOTSUPP} <= doc_netlink_errnos()
    assert fg.NETLINK_ERRNOS == fg.GLOBAL_ERRNOS | doc_netlink_errnos()


@pytest.mark.parametrize(
    "args",
    [
        (("wq", "q1"), ("cpu", "1"), ("id", "2"), ("sleep_ms", "5"), ("block", "1")),
        (("name", "q0"), ("flags", "unbound,sysfs"), ("max_active", "4")),
        (("cpu", "-1"), ("id", "4294967295"), ("name", "x" * 24)),
    ],
)
def test_netlink_attributes_encode_as_pyroute2_does(args: tuple[tuple[str, str], ...]) -> None:
    genl = pytest.importorskip("wqlab.genl")
    typed = genl.wqlabmsg()
    typed["cmd"], typed["version"] = 1, 1
    typed["attrs"] = genl.encode_args(dict(args))
    typed.encode()
    raw = genl.wqlabrawmsg()
    raw["cmd"], raw["version"] = 1, 1
    raw["attrs"] = [(genl.wqlabrawmsg.nla_map[t][0], d) for t, d in fg.nl_attrs(args)]
    raw.encode()
    assert raw.data == typed.data


def test_a_fault_on_netlink_gets_the_documented_exception(
    table: dict[str, fg.CommandSpec], uni: fg.Universe
) -> None:
    """docs/commands.md, Generic netlink: out of range is ERANGE from the policy, an
    argument not taken EINVAL from the policy; the rest as on the other planes."""
    seen = set()
    for mutator in fg.BOTH_PLANES:
        for op in mutations(table, uni, mutator, 100):
            nl = fg.on_netlink(op)
            assert nl.plane == fg.NETLINK and nl.netlink_message()[2] == fg.nl_attrs(op.args)
            seen.add(op.mutation.split("_")[0])
            if op.mutation in ("over_max", "bool_over", "bad_cpu"):
                assert nl.expect == {errno.ERANGE} and nl.stage == "policy"
                for e in op.expect or ():
                    assert fg.netlink_errno(e, op) == errno.ERANGE
            elif op.mutation.startswith("extra_"):
                assert nl.expect == {errno.EINVAL} and nl.stage == "policy"
            else:
                assert nl.expect == op.expect and nl.stage == op.stage != "policy"
                assert all(fg.netlink_errno(e, op) == e for e in op.expect or ())
    assert {"over", "bool", "bad", "extra", "missing", "unknown"} <= seen


def test_netlink_mutators_break_what_the_policy_checks(
    table: dict[str, fg.CommandSpec], uni: fg.Universe
) -> None:
    for op in mutations(table, uni, fg.m_nl_version):
        assert op.nl is not None and op.nl[1] != uapi.GENL_VERSION and op.stage == "validate"
    for op in mutations(table, uni, fg.m_nl_length):
        assert op.nl is not None
        # every argument's number is 32 bits wide (u32, s32): one is not
        assert any(uapi.ATTR_TYPES[uapi.Attr(t)] != "string" and len(d) != 4 for t, d in op.nl[2])
    for op in mutations(table, uni, fg.m_nl_unterminated):
        assert op.nl is not None and any(
            uapi.ATTR_TYPES[uapi.Attr(t)] == "string" and b"\0" not in d for t, d in op.nl[2]
        )
    for op in mutations(table, uni, fg.m_nl_unknown_attr):
        assert op.nl is not None and op.nl[2][-1][0] > uapi.ATTR_MAX
    for op in mutations(table, uni, fg.m_nl_flag_bits):
        assert op.nl is not None
        (flags,) = [struct.unpack("<I", d)[0] for t, d in op.nl[2] if t == uapi.Attr.FLAGS]
        assert flags & ~uapi.WQ_ALL
    for op in mutations(table, uni, fg.m_nl_unknown_op):
        assert op.nl is not None and op.nl[0] not in uapi.COMMAND_NRS.values()
        assert op.expect == {errno.EOPNOTSUPP}


def test_netlink_share_of_the_stream(table: dict[str, fg.CommandSpec], uni: fg.Universe) -> None:
    # off by default: the streams of the other planes are unchanged
    assert stream(table, uni, 3, "t0") == stream(table, uni, 3, "t0")
    assert not any(d.startswith("netlink") for d in stream(table, uni, 3, "t0"))
    gen = fg.Generator(table, uni, 3, "t0", netlink_p=0.1)
    ops: list[fg.Op] = []
    while len(ops) < 5000:
        ops += [o for o in gen.episode() if o.kind != "pause"]
    planes = [o.plane for o in ops]
    share = planes.count(fg.NETLINK) / len(planes)
    assert 0.05 < share < 0.15, share
    kinds = {o.kind for o in ops if o.plane == fg.NETLINK}
    assert {"valid", "mutated"} <= kinds
    for o in ops:
        if o.plane == fg.NETLINK and o.kind == "valid":
            cmd, version, attrs = o.netlink_message()
            assert (cmd, version) == (uapi.COMMAND_NRS[o.cmd], uapi.GENL_VERSION)
            assert {t for t, _ in attrs} <= {uapi.arg_attr(k) for k in table[o.cmd].args}


def test_random_netlink_is_seeded_and_sendable(table: dict[str, fg.CommandSpec]) -> None:
    genl = pytest.importorskip("wqlab.genl")
    a = [fg.random_netlink(random.Random(4), table).describe() for _ in range(3)]
    assert a == [fg.random_netlink(random.Random(4), table).describe() for _ in range(3)]
    r = random.Random(2)
    for _ in range(300):
        op = fg.random_netlink(r, table)
        assert op.kind == "random" and op.plane == fg.NETLINK and op.nl is not None
        cmd, version, attrs = op.nl
        assert 0 <= cmd < 256 and 0 <= version < 256
        msg = genl.wqlabrawmsg()  # what Genl.raw sends: every type has a name there
        msg["cmd"], msg["version"] = cmd, version
        msg["attrs"] = [(genl.wqlabrawmsg.nla_map[t][0], d) for t, d in attrs]
        msg.encode()


def test_netlink_errno_tables(table: dict[str, fg.CommandSpec], uni: fg.Universe) -> None:
    for name, spec in table.items():
        allowed = fg.allowed_errnos(spec, fg.NETLINK, uni)
        assert fg.valid_errnos(spec, fg.NETLINK, uni) <= allowed <= fg.NETLINK_ERRNOS, name
        assert {errno.ERANGE, errno.EPROTO, errno.EOPNOTSUPP} <= allowed
        assert errno.ENOTTY not in allowed
    assert not fg.documented(errno.ERANGE, fg.TEXT) and fg.documented(errno.ERANGE, fg.NETLINK)


def test_ret_plausibility(table: dict[str, fg.CommandSpec]) -> None:
    assert fg.ret_ok(table["work_busy"], 3) and not fg.ret_ok(table["work_busy"], 4)
    assert fg.ret_ok(table["queue_work"], 1) and not fg.ret_ok(table["queue_work"], -1)


def test_guest_command_runs_the_repo_module() -> None:
    cmd = guest_command(FuzzParams(seed=5, n=100, threads=2), root=Path("/r"))
    assert cmd.startswith("cd /r && exec /usr/bin/python3 -E -s -S -u -m wqlab.fuzz ")
    assert "--seed 5 -n 100 --threads 2" in cmd and "--result" in cmd
    assert "--netlink-share 0.1 --genl-path=" in cmd  # the host's pyroute2 and wqlab
    off = guest_command(FuzzParams(seed=5, n=100, threads=2, netlink_share=0.0), root=Path("/r"))
    assert "--netlink-share 0.0" in off and "--genl-path" not in off


def test_guest_command_passes_the_host_plan() -> None:
    p = FuzzParams(seed=5, n=100, threads=2, extra=("--rounds", "3"))
    cmd = guest_command(p, root=Path("/r"), plan="/c/plan.pickle")
    assert "--plan /c/plan.pickle --rounds 3" in cmd
    # the host parses the guest's own arguments: the same Config, so the same plan key
    cfg = fuzz.parse_args(guest_args(p, "/c/plan.pickle"))
    assert (cfg.seed, cfg.n, cfg.threads, cfg.rounds, cfg.plan) == (5, 100, 2, 3, "/c/plan.pickle")


LISTING = (DATA / "listing-6.1.txt").read_text()
FEATURES = (DATA / "features-6.1.txt").read_text()


def _cfg(seed: int, **kw: object) -> fuzz.Config:
    return fuzz.Config(seed=seed, n=3000, threads=3, netlink_share=0.1, **kw)  # type: ignore[arg-type]


def _plan(seed: int, **kw: object) -> list[fuzz.Round]:
    return list(fuzz.plan_rounds(_cfg(seed, **kw), LISTING, FEATURES))


def test_plan_is_the_seed_s_streams_round_by_round_with_their_wire_bytes() -> None:
    plan = _plan(7, rounds=2)
    assert plan == _plan(7, rounds=2) and plan != _plan(8, rounds=2)
    assert fuzz.round_sizes(_cfg(7, rounds=2)) == (2, 150, 450)
    assert len(plan) == 2
    table = fg.parse_listing(LISTING)
    uni = fg.Universe.from_features(parse_kv(FEATURES))
    gen = fg.Generator(table, uni, 7, "t1", netlink_p=0.1)
    for workers, faults in plan:
        steps = workers[1]
        # whole episodes of stream t1, until its quota is met: what the guest made itself
        assert sum(op.kind != "pause" for op, _ in steps) >= 450
        want: list[fg.Op] = []
        while len(want) < len(steps):
            want += gen.episode()
        assert [op for op, _ in steps] == want
        for op, data in steps:
            assert data == (None if op.kind == "pause" else fuzz.wire(op))
        assert sum(len(sends) for _, sends in faults) >= 150
        for op, sends in faults:
            assert op.kind != "valid"
            if op.pair:  # the same fault on every plane
                assert [o.plane for o, _ in sends] == [fg.TEXT, fg.IOCTL, fg.NETLINK]
            else:  # a fault of one plane (a struct field, a raw message...)
                assert [o for o, _ in sends] == [op]
            for o, data in sends:
                assert data == fuzz.wire(o)


def test_a_saved_plan_loads_round_by_round_and_only_for_its_own_run(tmp_path: Path) -> None:
    path = str(tmp_path / "plan.pickle")
    total = fuzz.save_plan(_cfg(7), LISTING, FEATURES, path)
    plan = _plan(7)
    assert total == sum(fuzz.round_size(r) for r in plan) >= 3000
    key = fuzz.plan_key(_cfg(7), LISTING, FEATURES)
    assert list(fuzz.load_plan(path, key)) == plan
    other_seed = fuzz.plan_key(_cfg(8), LISTING, FEATURES)
    other_kernel = fuzz.plan_key(_cfg(7), LISTING, FEATURES.replace("6.1.0-57", "6.12.117"))
    for other in (other_seed, other_kernel):
        with pytest.raises(ValueError, match="was made for .* this run is "):
            fuzz.load_plan(path, other)
    (tmp_path / "junk").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="is not a plan"):
        fuzz.load_plan(str(tmp_path / "junk"), key)


def test_unknown_queue_names_cannot_be_created(
    table: dict[str, fg.CommandSpec], uni: fg.Universe
) -> None:
    # a 1M-command run on 6.12 created "nx" with a random netlink message, and then
    # expected ENOENT for wq=nx: the unknown name must be one that no command can create
    spec = table["flush_workqueue"]
    base = fg.Op("flush_workqueue", (("wq", "q0"),))
    names = set()
    for seed in range(300):
        op = fg.m_unknown_queue(random.Random(seed), spec, base, uni)
        assert op is not None
        names.add(dict(op.args)["wq"])
    assert len(names) > 10
    assert all(n.startswith("system") and n not in uni.system_queues for n in names), names


def test_plans_left_behind_by_a_dead_host_are_pruned_after_a_week(tmp_path: Path) -> None:
    import os
    import time

    from wqlab.fuzzhost import PLAN_KEEP_S, prune_plans

    old, new, other = (tmp_path / n for n in ("fuzz-plan-1-a.pickle", "fuzz-plan-2-b.pickle", "x"))
    for f in (old, new, other):
        f.write_bytes(b"x")
    week_ago = time.time() - PLAN_KEEP_S - 60
    os.utime(old, (week_ago, week_ago))
    os.utime(other, (week_ago, week_ago))
    assert prune_plans(tmp_path) == [old]
    assert not old.exists() and new.exists() and other.exists()  # only plans, only old ones
