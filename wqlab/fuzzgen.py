"""The fuzzer's pure parts: the command table, generators, mutators and the errno oracle.

Layer: bottom (standard library and ``wqlab.uapi`` only), so the guest's system Python
can import it (``wqlab.fuzz`` runs in the VM). Nothing here does I/O; a unit test feeds it
a recorded listing and checks that a seed always gives the same stream.

Input comes from the module's own command table, not from a hand-written list: reading
``/sys/kernel/debug/wqlab/control`` on a fresh descriptor lists every command as
``NAME arg1 [arg2] ... # description``; :func:`parse_listing` turns that into
:class:`CommandSpec` s, and argument types and ranges come from ``wqlab.uapi``.

    table = parse_listing(listing_text)
    uni = Universe.from_features(parse_kv(features_text))
    gen = Generator(table, uni, seed=7, stream="t0")
    ops = gen.episode()            # a short scenario: a list of Op
"""

from __future__ import annotations

import errno
import random
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Final, NamedTuple

from . import uapi

# arguments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArgType:
    """One ``key=`` of the command table: its kind and its documented maximum."""

    kind: str  # "u32", "s32", "bool", "name", "flags"
    max: int | None = None  # above it: E2BIG (u32 with a documented maximum)


ARG_TYPES: Final[Mapping[str, ArgType]] = {
    "id": ArgType("u32"),
    "wq": ArgType("name"),
    "name": ArgType("name"),
    "cpu": ArgType("s32"),
    "flags": ArgType("flags"),
    "max_active": ArgType("u32", uapi.MAX_ACTIVE_MAX),
    "delay_ms": ArgType("u32", uapi.DELAY_MS_MAX),
    "sleep_ms": ArgType("u32", uapi.SLEEP_MS_MAX),
    "spin_us": ArgType("u32", uapi.SPIN_US_MAX),
    "requeue": ArgType("u32", uapi.REQUEUE_MAX),
    "block": ArgType("bool"),
    "delayed": ArgType("bool"),
}
"""Every key of ``wqlab.uapi.ARG_KEYS`` with its type (docs/commands.md, Arguments)."""

BEHAVIOUR: Final = ("sleep_ms", "spin_us", "requeue", "block")
U32_MAX: Final = 0xFFFFFFFF


# the command table ------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    """One line of the module's listing: ``NAME key [key] ... # help``."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    help: str = ""

    # cached: the generator asks these for every command it draws (cached_property writes
    # the instance's __dict__, which a frozen dataclass allows)
    @cached_property
    def args(self) -> tuple[str, ...]:
        return self.required + self.optional

    def takes(self, key: str) -> bool:
        return key in self.required or key in self.optional

    @cached_property
    def item_kind(self) -> str:
        """Which items it takes: ``plain``, ``delayed``, ``either`` or ``none`` (docs:
        names with ``delayed`` need a delayed item; the ``*_work`` families a plain one)."""
        if not self.takes("id"):
            return "none"
        if "delayed" in self.name:
            return "delayed"
        plain = ("schedule_work", "queue_work", "cancel_work", "disable_work", "enable_work")
        if self.name.startswith(plain) or self.name == "enable_and_queue_work":
            return "plain"
        return "either"

    @cached_property
    def creates_queue(self) -> bool:
        return self.takes("name")

    @cached_property
    def queues(self) -> bool:
        """Queues an item (takes behaviours)."""
        return self.takes("sleep_ms")

    @property
    def blocks(self) -> bool:
        """May wait for a work item (the module drops its lock while it waits)."""
        n = self.name
        return n.startswith(("flush", "drain", "destroy")) or n.endswith("_sync")


_LISTING_RE = re.compile(r"^([a-z_][a-z0-9_]*)((?:\s+\[?[a-z_]+\]?)*)\s*(?:#\s*(.*))?$")


def parse_listing(text: str) -> dict[str, CommandSpec]:
    """The module's command listing → ``{name: CommandSpec}`` in listing order (pure).

    Raises ValueError on a line that is not ``NAME key [key] ... # help`` or on a key
    that ``wqlab.uapi`` does not know: the listing and the ABI mirror must agree.
    """
    table: dict[str, CommandSpec] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LISTING_RE.match(line.strip())
        if m is None:
            raise ValueError(f"not a listing line: {line!r}")
        req: list[str] = []
        opt: list[str] = []
        for tok in m[2].split():
            key = tok.strip("[]")
            if key not in uapi.ARG_KEYS:
                raise ValueError(f"{m[1]}: key {key!r} is not in wqlab.uapi.ARG_KEYS")
            (opt if tok.startswith("[") else req).append(key)
        table[m[1]] = CommandSpec(m[1], tuple(req), tuple(opt), (m[3] or "").strip())
    return table


def table_mismatches(table: Mapping[str, CommandSpec]) -> list[str]:
    """Where the listing and ``wqlab.uapi.COMMAND_NRS`` disagree (an empty list: none)."""
    out = [f"listed command {n!r} has no ioctl number" for n in table if n not in uapi.IOCTLS]
    out += [f"ioctl command {n!r} is not listed" for n in uapi.COMMAND_NRS if n not in table]
    return out


# the universe: which ids and queue names the fuzzer uses -----------------------------------


@dataclass(frozen=True)
class Flavor:
    """How a fuzzer queue name is created (well-formed input always uses this)."""

    command: str
    args: tuple[tuple[str, str], ...] = ()

    @property
    def ordered(self) -> bool:
        return self.command in ("alloc_ordered_workqueue", "create_singlethread_workqueue")


FLAVORS: Final[tuple[Flavor, ...]] = (
    Flavor("alloc_workqueue", (("flags", "unbound"),)),
    Flavor("alloc_ordered_workqueue"),
    Flavor("create_workqueue"),
    Flavor("create_singlethread_workqueue"),
    Flavor("alloc_workqueue", (("flags", "highpri"), ("max_active", "2"))),
    Flavor("alloc_workqueue", (("flags", "unbound,mem_reclaim"), ("max_active", "1"))),
    Flavor("alloc_ordered_workqueue", (("flags", "freezable"),)),
    Flavor("alloc_workqueue", (("flags", "cpu_intensive"),)),
)


@dataclass(frozen=True)
class Universe:
    """The fixed set of item ids and queue names every stream draws from.

    Ids are ``0 .. max_items + 1`` (0 and 1 static); a dynamic id's kind is fixed by
    parity (even: plain, odd: delayed), and queue ``qN`` always has ``FLAVORS[N]``; so the
    stream a seed gives does not depend on what the module answered. Random and mutated
    input uses the names ``z*`` and ``nx*``, which well-formed input never touches.
    """

    max_items: int
    cpus: int
    system_queues: tuple[str, ...]
    features: Mapping[str, str] = field(default_factory=dict)
    queues: tuple[str, ...] = tuple(f"q{i}" for i in range(len(FLAVORS)))

    @classmethod
    def from_features(cls, feats: Mapping[str, str], max_items: int | None = None) -> Universe:
        sysq = tuple(
            q
            for q in feats.get("system_queues", "system").split(",")
            if q and not q.startswith("system_bh")  # BH queues refuse sleeping behaviours
        )
        return cls(
            max_items=max_items or int(feats.get("max_items", "64")),
            cpus=int(feats.get("nr_cpu_ids", "1")),
            system_queues=sysq or ("system",),
            features=dict(feats),
        )

    @cached_property
    def ids(self) -> tuple[int, ...]:
        return tuple(range(self.max_items + 2))

    def kind(self, item: int) -> str:
        return "plain" if item % 2 == 0 else "delayed"

    @cached_property
    def _ids_by_kind(self) -> dict[str, tuple[int, ...]]:
        out = {k: tuple(i for i in self.ids if self.kind(i) == k) for k in ("plain", "delayed")}
        return {**out, "either": self.ids, "none": self.ids}

    def ids_of(self, kind: str) -> tuple[int, ...]:
        got = self._ids_by_kind.get(kind)
        return got if got is not None else tuple(i for i in self.ids if self.kind(i) == kind)

    def flavor(self, name: str) -> Flavor:
        return FLAVORS[int(name[1:]) % len(FLAVORS)]

    def has(self, feature: str) -> bool:
        return self.features.get(feature, "0") == "1"

    def supported(self, spec: CommandSpec) -> bool:
        """False where the module answers EOPNOTSUPP on this kernel (``features``)."""
        n = spec.name
        if n.startswith(("disable_", "enable_work", "enable_delayed")):
            return self.has("disable_work")
        if n == "enable_and_queue_work":
            return self.has("enable_and_queue_work")
        if n == "cancel_work":
            return self.has("cancel_work")
        return True


# ops ----------------------------------------------------------------------------------------

TEXT: Final = "text"
IOCTL: Final = "ioctl"
NETLINK: Final = "netlink"

NlMessage = tuple[int, int, tuple[tuple[int, bytes], ...]]
"""A generic netlink request as ``wqlab.genl.Genl.raw`` sends it: (command number,
version, attributes as (type, payload))."""


class Op(NamedTuple):
    """One input to the module (or a pause between two). A named tuple, not a dataclass:
    a guest makes or unpickles tens of thousands (``wqlab.fuzz.Round``), and under TCG a
    frozen dataclass's ``__init__`` (a ``setattr`` per field) or its unpickling (a dict per
    op) cost several times more.

    ``kind``: ``valid`` (well-formed), ``mutated`` (one field off), ``random`` or ``pause``.
    ``expect``: for mutated input, the errnos the docs promise (None: only the command's
    errno table applies). ``stage``: where the module rejects it: ``parse``, ``validate``
    (both before any state is looked at, so exact under concurrency too) or ``handler``
    (exact only when nothing else runs). ``raw``: the exact bytes (text) or struct
    (ioctl) when they cannot be built from ``cmd`` and ``args``; ``request`` overrides the
    ioctl number; ``nl``: the exact netlink message (:data:`NlMessage`). ``pair``: the same
    fault can be sent on every plane (see :func:`on_netlink` for what the docs promise on
    the netlink plane).
    """

    cmd: str
    args: tuple[tuple[str, str], ...] = ()
    plane: str = TEXT
    kind: str = "valid"
    mutation: str = ""
    expect: frozenset[int] | None = None
    stage: str = ""
    raw: bytes | None = None
    request: int | None = None
    pair: bool = False
    pause_ms: int = 0
    nl: NlMessage | None = None

    @property
    def argd(self) -> dict[str, str]:
        return dict(self.args)

    def line(self) -> str:
        """The text-plane line (without newline)."""
        if self.raw is not None and self.plane == TEXT:
            return self.raw.decode(errors="replace").rstrip("\n")
        return " ".join([self.cmd, *(f"{k}={v}" for k, v in self.args)])

    def text_bytes(self) -> bytes:
        if self.raw is not None and self.plane == TEXT:
            return self.raw
        return (self.line() + "\n").encode()

    def ioctl_request(self) -> int:
        if self.request is not None:
            return self.request
        return uapi.IOCTLS.get(self.cmd, uapi.IOCTLS["work_new"])

    def ioctl_bytes(self) -> bytes:
        if self.raw is not None and self.plane == IOCTL:
            return self.raw
        return pack_args(self.args)

    def netlink_message(self) -> NlMessage:
        if self.nl is not None:
            return self.nl
        return (uapi.COMMAND_NRS[self.cmd], uapi.GENL_VERSION, nl_attrs(self.args))

    def describe(self) -> str:
        what = self.line() if self.plane == TEXT or self.raw is None else self.cmd
        if self.plane == IOCTL and self.raw is not None:
            what = f"{self.cmd} <struct {self.raw[:64].hex()}...> req={self.ioctl_request():#x}"
        if self.plane == NETLINK and self.nl is not None:
            cmd, version, attrs = self.nl
            shown = " ".join(f"{t}:{d[:32].hex()}" for t, d in attrs)
            what = f"{self.cmd or '?'} <cmd {cmd:#x} version {version} attrs {shown or '-'}>"
        extra = f" [{self.kind}{':' + self.mutation if self.mutation else ''}]"
        return f"{self.plane}: {what}{extra}"


def pack_args(args: Iterable[tuple[str, str]]) -> bytes:
    """Text-plane ``key=value`` pairs → ``struct wqlab_cmd`` (every key sets its bit).

    Numbers are masked to their field (an s32 ``cpu`` of -1 stays -1)."""
    fields: dict[str, object] = {}
    bits = 0
    for key, value in args:
        bits |= uapi.ARG_KEYS[key]
        t = ARG_TYPES[key]
        if t.kind == "name":
            fields[key] = value
        elif t.kind == "flags":
            fields[key] = _flag_bits(value)
        else:
            n = int(value, 0)
            fields[key] = n if t.kind == "s32" else n & U32_MAX
    fields["args"] = bits
    return uapi.Cmd(**fields).pack()  # type: ignore[arg-type]


@lru_cache(maxsize=256)
def _flag_bits(value: str) -> int:
    """``uapi.parse_flags`` of a text-plane value, as an int (cached: a handful of
    values, and enum arithmetic is slow in a TCG guest); a ValueError is not cached."""
    return int(uapi.parse_flags(value))


_NLA_PACK: Final = {"u32": "<I", "s32": "<i", "u64": "<Q", "s64": "<q"}


def nl_value(key: str, value: str) -> bytes:
    """One argument as its attribute's payload (``uapi.ATTR_TYPES``): a string with its
    NUL, a number little-endian in its width (masked to it, as ``pack_args`` does)."""
    t = uapi.ATTR_TYPES[uapi.arg_attr(key)]
    if t == "string":
        return value.encode() + b"\0"
    n = int(uapi.parse_flags(value)) if key == "flags" else int(value, 0)
    bits = 64 if t in ("u64", "s64") else 32
    n &= (1 << bits) - 1
    if t.startswith("s") and n >= 1 << (bits - 1):
        n -= 1 << bits
    return struct.pack(_NLA_PACK[t], n)


def nl_attrs(args: Iterable[tuple[str, str]]) -> tuple[tuple[int, bytes], ...]:
    """Text-plane ``key=value`` pairs as netlink attributes (the attribute of ``WQLAB_ARG_*``
    bit *n* is *n* + 1; ``tests/unit/test_fuzzgen.py`` checks this against pyroute2)."""
    return tuple((int(uapi.arg_attr(k)), nl_value(k, v)) for k, v in args)


# the oracle's errno tables ----------------------------------------------------------------

GLOBAL_ERRNOS: Final[frozenset[int]] = frozenset(uapi.ERRNOS) | {errno.ENOMEM}
"""Every errno docs/commands.md lists (the ``DOC: errors`` block, and ENOMEM)."""

NETLINK_ERRNOS: Final[frozenset[int]] = GLOBAL_ERRNOS | frozenset(uapi.GENL_ERRNOS)
"""And on the netlink plane, "Generic netlink"'s own (EPROTO, ERANGE...)."""


def documented(err: int, plane: str) -> bool:
    return err in (NETLINK_ERRNOS if plane == NETLINK else GLOBAL_ERRNOS)


def busy_possible(spec: CommandSpec) -> bool:
    """EBUSY (docs/commands.md, Errors): work_free/reset of a busy item; destroy of a
    queue with a blocked item or a flush/drain; any queueing (onto a draining queue, or
    onto another queue than the one a run is in flight on); disable_* and the sync
    cancels/disables when the item's disable count is full."""
    n = spec.name
    return (
        n in ("work_free", "reset", "destroy_workqueue")
        or spec.queues
        or n.startswith("disable_")
        or (n.startswith("cancel_") and n.endswith("_sync"))
    )


def allowed_errnos(spec: CommandSpec | None, plane: str, uni: Universe) -> frozenset[int]:
    """The errnos a command may answer on a plane, whatever its input (docs/commands.md).

    ``spec`` None: an unknown command (text: ENOENT before anything else).
    """
    base = {errno.EINVAL, errno.E2BIG, errno.ENOMEM, errno.ESHUTDOWN}
    if plane == IOCTL:
        base |= {errno.ENOTTY, errno.EFAULT, errno.EPERM}
    elif plane == NETLINK:
        # the policy (a number out of range, an attribute the command does not take, a
        # wrong length), the version check, an operation the family lacks, permissions
        base |= {errno.ERANGE, errno.EPROTO, errno.EOPNOTSUPP, errno.EPERM}
    else:
        # unknown command name in the line; a writer without CAP_SYS_ADMIN
        base |= {errno.ENOENT, errno.EFAULT, errno.EPERM}
    if spec is None:
        return frozenset(base)
    n = spec.name
    if spec.takes("id") or spec.takes("wq"):
        base.add(errno.ENOENT)
    if spec.creates_queue:
        base |= {errno.EEXIST, errno.ENOSPC}
    if n == "work_new":
        base.add(errno.ENOSPC)
    if busy_possible(spec):
        base.add(errno.EBUSY)
    if not uni.supported(spec) or (spec.takes("flags")):
        base.add(errno.EOPNOTSUPP)
    return frozenset(base)


def valid_errnos(spec: CommandSpec, plane: str, uni: Universe) -> frozenset[int]:
    """The errnos a *well-formed* command may answer while others change the state: the
    ones that depend on state only (never E2BIG: every number is in range)."""
    out: set[int] = {errno.ENOMEM}
    if spec.takes("id") or spec.takes("wq"):
        # ENOENT: freed item or destroyed queue; EINVAL: an id re-created with the other
        # kind, enable_* of an item not disabled, a disable count at its limit
        out |= {errno.ENOENT, errno.EINVAL}
    if spec.creates_queue:
        out |= {errno.EEXIST, errno.ENOSPC}
    if spec.name == "work_new":
        out.add(errno.ENOSPC)
    if busy_possible(spec):
        out.add(errno.EBUSY)
    if not uni.supported(spec):
        out.add(errno.EOPNOTSUPP)
    return frozenset(out)


MODULE_EXTACK: Final = "wqlab: "
"""How the module's own netlink refusals start their extack text (docs/commands.md,
Generic netlink): the others are the kernel's (policy, unknown operation, permissions)."""


def counted(err: int | None, plane: str, text: str = "") -> bool:
    """Does the module count this answer in ``stats`` (cmds_ok + cmds_failed)? Every text
    write is; an ioctl the dispatcher turns away (ENOTTY, EPERM) before copying is not; a
    netlink refusal is when the module made it (``text``, its extack, starts with
    :data:`MODULE_EXTACK`), not when the kernel's policy or core did."""
    if plane == NETLINK:
        return err is None or text.startswith(MODULE_EXTACK)
    return not (plane == IOCTL and err in (errno.ENOTTY, errno.EPERM))


def ret_ok(spec: CommandSpec, ret: int) -> bool:
    """A plausible ``ret=`` for the command (bool 0/1, work_busy's bits, void 0)."""
    if spec.name == "work_busy":
        return 0 <= ret <= 3
    return ret in (0, 1)


# well-formed input --------------------------------------------------------------------------

WEIGHTS: Final[tuple[tuple[str, float], ...]] = (
    ("schedule_", 3.0),
    ("queue_", 4.0),
    ("mod_delayed", 3.0),
    ("flush_", 2.0),
    ("cancel_", 2.0),
    ("drain_", 1.5),
    ("destroy_", 1.5),
    ("create_", 1.0),
    ("alloc_", 1.0),
    ("release", 1.5),
    ("work_free", 1.0),
    ("work_new", 1.0),
    ("reset", 1.0),
    ("disable_", 1.0),
    ("enable_", 1.0),
)


def weight(name: str) -> float:
    """How often a command is drawn (1.0 for a command this table does not know)."""
    for prefix, w in WEIGHTS:
        if name.startswith(prefix):
            return w
    return 1.0


@dataclass(frozen=True)
class Limits:
    """Ranges of well-formed behaviours: small, so runs stay short."""

    sleep_ms: int = 20
    spin_us: int = 300
    requeue: int = 4
    delay_ms: int = 30
    block_p: float = 0.04


class Generator:
    """One deterministic stream of ops: ``seed`` and ``stream`` (e.g. the thread index)
    decide every choice; nothing the module answers does."""

    def __init__(
        self,
        table: Mapping[str, CommandSpec],
        uni: Universe,
        seed: int,
        stream: str = "0",
        limits: Limits | None = None,
        mutate_p: float = 0.08,
        random_p: float = 0.03,
        storm: bool = False,
        skip: tuple[str, ...] = (),
        netlink_p: float = 0.0,
    ) -> None:
        self.table = dict(table)
        self.uni = uni
        self.rng = random.Random(f"wqlab-fuzz:{seed}:{stream}")
        self.limits = limits or Limits()
        self.mutate_p = mutate_p
        self.random_p = random_p
        self.storm = storm
        self.netlink_p = netlink_p  # share of commands sent as netlink messages
        self.mutators = ALL_MUTATORS if netlink_p else MUTATORS
        self.scenarios = [(n, w) for n, w in SCENARIOS if n not in skip]
        if storm:
            self.scenarios.append(("disable_storm", 0.5))
        self.names = [n for n, s in self.table.items() if uni.supported(s)]
        self.weights = [weight(n) for n in self.names]
        # what valid() and pick_queue() draw from (the same lists each time: computed once)
        self.unordered = [q for q in uni.queues if not uni.flavor(q).ordered]
        self.fits: dict[str, list[str]] = {}
        for q in uni.queues:
            self.fits.setdefault(uni.flavor(q).command, []).append(q)

    # building blocks ----------------------------------------------------------------------
    def plane(self) -> str:
        if self.netlink_p and self.rng.random() < self.netlink_p:
            return NETLINK
        return self.rng.choice((TEXT, IOCTL))

    def pick_id(self, kind: str) -> int:
        ids = self.uni.ids_of(kind)
        # the statics and the low ids are hit more often: more collisions, more races
        if self.rng.random() < 0.5:
            ids = ids[: max(2, len(ids) // 3)]
        return self.rng.choice(ids)

    def pick_queue(self, spec: CommandSpec) -> str:
        n = spec.name
        custom = self.uni.queues
        if n in ("drain_workqueue", "destroy_workqueue"):
            return self.rng.choice(custom)
        if n == "workqueue_set_max_active":
            return self.rng.choice(self.unordered)
        if self.rng.random() < 0.25:
            return self.rng.choice(self.uni.system_queues)
        return self.rng.choice(custom)

    def behaviour(self) -> list[tuple[str, str]]:
        lim, r = self.limits, self.rng
        out: list[tuple[str, str]] = []
        if r.random() < 0.4:
            out.append(("sleep_ms", str(r.choice((0, 1, 2, 5, lim.sleep_ms)))))
        if r.random() < 0.2:
            out.append(("spin_us", str(r.randrange(lim.spin_us + 1))))
        if r.random() < 0.2:
            out.append(("requeue", str(r.randrange(lim.requeue + 1))))
        if r.random() < lim.block_p:
            out.append(("block", "1"))
        elif r.random() < 0.1:
            out.append(("block", "0"))
        r.shuffle(out)
        return out

    def valid(self, name: str, /, **fixed: object) -> Op:
        """A well-formed ``name`` command; ``fixed`` pins arguments (``id=3``; None: leave
        the key out; ``_plane``: the plane)."""
        spec = self.table[name]
        r = self.rng
        args: list[tuple[str, str]] = []
        queue = str(fixed["name"]) if "name" in fixed else None
        if spec.creates_queue and queue is None:
            queue = r.choice(self.fits.get(name) or self.uni.queues)
        for key in spec.args:
            if key in fixed:
                if fixed[key] is not None:
                    args.append((key, str(fixed[key])))
                continue
            required = key in spec.required
            if key == "id":
                args.append(("id", str(self.pick_id(spec.item_kind))))
            elif key == "wq":
                args.append(("wq", self.pick_queue(spec)))
            elif key == "name":
                args.append(("name", str(queue)))
            elif key in ("flags", "max_active") and spec.creates_queue:
                pass  # from the flavor below
            elif key == "max_active":
                args.append(("max_active", str(r.randint(1, 8))))
            elif key == "cpu":
                args.append(("cpu", str(r.randrange(self.uni.cpus))))
            elif key == "delay_ms" and (required or r.random() < 0.8):
                args.append(("delay_ms", str(r.randrange(self.limits.delay_ms + 1))))
            elif key == "delayed" and (required or r.random() < 0.6):
                args.append(("delayed", str(r.randrange(2))))
        if spec.creates_queue and queue is not None:
            flav = self.uni.flavor(queue)
            args += [(k, v) for k, v in flav.args if spec.takes(k)]
        if spec.queues:
            args += [(k, v) for k, v in self.behaviour() if k not in fixed]
        return Op(name, tuple(args), plane=str(fixed.get("_plane") or self.plane()))

    def any_valid(self) -> Op:
        name = self.rng.choices(self.names, self.weights)[0]
        return self.valid(name)

    def pause(self, lo: int = 1, hi: int = 8) -> Op:
        return Op("", kind="pause", pause_ms=self.rng.randint(lo, hi))

    # scenarios ----------------------------------------------------------------------------
    def episode(self) -> list[Op]:
        """A short scenario; most are random well-formed commands, the others aim at the
        races docs/commands.md promises to survive."""
        r = self.rng.random()
        if r < self.random_p:
            return [random_input(self.rng, self.table, self.uni, bool(self.netlink_p))]
        if r < self.random_p + self.mutate_p:
            base = self.any_valid()
            mut = mutate(self.rng, self.table, self.uni, base, self.mutators)
            return [mut or base]
        names = [s for s, _ in self.scenarios]
        w = [w for _, w in self.scenarios]
        which = self.rng.choices(names, w)[0]
        return list(getattr(self, "sc_" + which)())

    def sc_random(self) -> list[Op]:
        return [self.any_valid() for _ in range(self.rng.randint(1, 6))]

    def _custom_queue(self) -> str:
        return self.rng.choice(self.uni.queues)

    def _create(self, q: str) -> Op:
        return self.valid(self.uni.flavor(q).command, name=q)

    def sc_timer_destroy(self) -> list[Op]:
        """destroy_workqueue while a delayed item's timer is armed on it."""
        q = self._custom_queue()
        d = self.pick_id("delayed")
        qcmd = self.rng.choice(("queue_delayed_work", "mod_delayed_work", "queue_delayed_work_on"))
        ops = [self._create(q), self.valid(qcmd, wq=q, id=d, delay_ms=self.rng.randint(2, 30))]
        if self.rng.random() < 0.5:
            ops.append(self.pause(0, 5))
        ops.append(self.valid("destroy_workqueue", wq=q))
        if self.rng.random() < 0.5:
            ops.append(self.valid(self.rng.choice(("flush_delayed_work", "work_pending")), id=d))
        return ops

    def sc_two_queues_free(self) -> list[Op]:
        """One item queued on two queues, work_free while the first run still sleeps."""
        qa, qb = self.rng.sample(list(self.uni.queues) + list(self.uni.system_queues[:2]), 2)
        item = self.pick_id("plain")
        sleep = self.rng.randint(5, self.limits.sleep_ms)
        return [
            self.valid("queue_work", wq=qa, id=item, sleep_ms=sleep, block=None, requeue=None),
            self.pause(1, 6),
            self.valid("queue_work", wq=qb, id=item, sleep_ms=0, block=None, requeue=None),
            self.pause(0, 3),
            self.valid("work_free", id=item),
            self.valid("work_new", delayed=0),
            self.valid("flush_work", id=item),
        ]

    def sc_disable_cancel(self) -> list[Op]:
        """disable_work a few times around cancel_work_sync, then enable again."""
        item = self.pick_id("plain")
        k = self.rng.randint(1, 4)
        ops = [self.valid("queue_work", id=item)]
        ops += [self.valid("disable_work", id=item) for _ in range(k)]
        ops.append(self.valid(self.rng.choice(("cancel_work_sync", "disable_work_sync")), id=item))
        ops += [self.valid("enable_work", id=item) for _ in range(k + 1)]
        return [o for o in ops if o.cmd in self.names]

    def sc_disable_storm(self) -> list[Op]:
        """Many disables of one item (up to the kernel's 16-bit count) against cancels."""
        item = self.rng.choice(self.uni.ids_of("plain")[:3])
        ops: list[Op] = []
        for i in range(2000):
            ops.append(self.valid("disable_work", id=item, _plane=IOCTL))
            if i % 50 == 0:
                ops.append(self.valid("cancel_work_sync", id=item, _plane=IOCTL))
        return [o for o in ops if o.cmd in self.names]

    def sc_block_flush(self) -> list[Op]:
        """block=1 items and their flushes; the releaser lets them go. Also a release
        right before a re-queue (a release must not be lost)."""
        item = self.pick_id("either")
        fam = "queue_delayed_work" if self.uni.kind(item) == "delayed" else "queue_work"
        q = self._custom_queue()
        req = self.rng.randint(0, 2)
        ops = [self.valid(fam, wq=q, id=item, block=1, requeue=req, sleep_ms=None)]
        if self.rng.random() < 0.6:
            ops += [
                self.valid("release", id=item),
                self.valid(fam, wq=q, id=item, block=1, requeue=None, sleep_ms=None),
            ]
        flush = "flush_delayed_work" if fam == "queue_delayed_work" else "flush_work"
        ops.append(self.valid(self.rng.choice((flush, "flush_workqueue")), id=item, wq=q))
        return ops

    def sc_drain_vs_queue(self) -> list[Op]:
        """A self-requeueing item and drain_workqueue (queueing onto it: EBUSY)."""
        q = self._custom_queue()
        item = self.pick_id("plain")
        return [
            self._create(q),
            self.valid("queue_work", wq=q, id=item, requeue=self.rng.randint(1, 4), block=None),
            self.valid(self.rng.choice(("drain_workqueue", "flush_workqueue")), wq=q),
            self.valid("queue_work", wq=q, id=item),
        ]

    def sc_free_reset(self) -> list[Op]:
        """work_free / reset of items that others are queueing, then re-create."""
        item = self.rng.choice(self.uni.ids_of("either")[2:] or (2,))
        kind = self.uni.kind(item)
        fam = "queue_delayed_work" if kind == "delayed" else "queue_work"
        cancel = "cancel_delayed_work_sync" if kind == "delayed" else "cancel_work_sync"
        return [
            self.valid(fam, id=item),
            self.valid(self.rng.choice(("reset", "work_free", cancel)), id=item),
            self.valid("work_free", id=item),
            self.valid("work_new", delayed=int(kind == "delayed")),
        ]

    def sc_cancel_sync(self) -> list[Op]:
        """cancel_*_sync / flush_* against a self-requeueing, sleeping item."""
        item = self.pick_id("either")
        delayed = self.uni.kind(item) == "delayed"
        q = self.rng.choice(
            ("queue_delayed_work", "mod_delayed_work") if delayed else ("queue_work",)
        )
        end = ("cancel_delayed_work_sync", "flush_delayed_work", "cancel_delayed_work")
        if not delayed:
            end = ("cancel_work_sync", "flush_work", "cancel_work")
        return [
            self.valid(q, id=item, requeue=self.rng.randint(0, 4), block=None),
            self.valid(self.rng.choice(end), id=item),
        ]


SCENARIOS: Final[tuple[tuple[str, float], ...]] = (
    ("random", 6.0),
    ("timer_destroy", 1.0),
    ("two_queues_free", 1.0),
    ("disable_cancel", 0.5),
    ("block_flush", 0.6),
    ("drain_vs_queue", 0.7),
    ("free_reset", 0.8),
    ("cancel_sync", 1.0),
)
"""Scenario → weight (``disable_storm`` joins with ``storm=True``: long runs only)."""


# mutators: one field off ----------------------------------------------------------------------

Mutator = Callable[[random.Random, CommandSpec, Op, Universe], Op | None]
EINVAL: Final = frozenset({errno.EINVAL})
E2BIG: Final = frozenset({errno.E2BIG})
ENOENT: Final = frozenset({errno.ENOENT})
ENOTTY: Final = frozenset({errno.ENOTTY})


def _mut(base: Op, name: str, expect: frozenset[int], stage: str, **kw: Any) -> Op:
    return base._replace(kind="mutated", mutation=name, expect=expect, stage=stage, **kw)


def _set(args: tuple[tuple[str, str], ...], key: str, value: str) -> tuple[tuple[str, str], ...]:
    out = [(k, v) for k, v in args if k != key]
    out.append((key, value))
    return tuple(out)


def m_over_max(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    keys = [k for k in s.args if ARG_TYPES[k].max is not None]
    if not keys:
        return None
    k = r.choice(keys)
    mx = ARG_TYPES[k].max or 0
    v = r.choice((mx + 1, mx + r.randint(2, 1000), U32_MAX))
    return _mut(b, "over_max", E2BIG, "validate", args=_set(b.args, k, str(v)), pair=True)


def m_bool_over(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    keys = [k for k in s.args if ARG_TYPES[k].kind == "bool"]
    if not keys:
        return None
    v = r.choice((2, 3, 255, U32_MAX))
    return _mut(
        b, "bool_over", EINVAL, "validate", args=_set(b.args, r.choice(keys), str(v)), pair=True
    )


def m_bad_cpu(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("cpu"):
        return None
    v = r.choice((-1, -(2**31), u.cpus, u.cpus + 7, 4096, 2**31 - 1))
    return _mut(b, "bad_cpu", EINVAL, "validate", args=_set(b.args, "cpu", str(v)), pair=True)


def m_missing(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.required:
        return None
    k = r.choice(s.required)
    args = tuple((kk, v) for kk, v in b.args if kk != k)
    return _mut(b, "missing_" + k, EINVAL, "validate", args=args, pair=True)


_EXTRA_VALUES: Final = {
    "id": "0",
    "wq": "system",
    "name": "q0",
    "cpu": "0",
    "flags": "unbound",
    "max_active": "1",
    "delay_ms": "1",
    "sleep_ms": "0",
    "spin_us": "0",
    "requeue": "0",
    "block": "0",
    "delayed": "0",
}


def m_extra(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    keys = [k for k in ARG_TYPES if not s.takes(k)]
    if not keys:
        return None
    k = r.choice(keys)
    return _mut(
        b, "extra_" + k, EINVAL, "validate", args=(*b.args, (k, _EXTRA_VALUES[k])), pair=True
    )


def m_unknown_queue(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("wq"):
        return None
    # a name no command can create (the module refuses names starting with "system"), and
    # not a system queue: random netlink messages do create queues such as "nx" or "z0",
    # so an unknown plain name is unknown only until one of them gets through
    name = r.choice(("systemx", "system_", "system_nx", f"system_q{r.randint(0, 99)}"))
    assert name not in u.system_queues
    return _mut(b, "unknown_queue", ENOENT, "handler", args=_set(b.args, "wq", name), pair=True)


def m_system_queue(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if s.name not in ("drain_workqueue", "destroy_workqueue", "workqueue_set_max_active"):
        return None
    args = _set(b.args, "wq", r.choice(u.system_queues))
    return _mut(b, "system_queue", EINVAL, "handler", args=args, pair=True)


def m_wrong_kind(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if s.item_kind not in ("plain", "delayed"):
        return None
    other = "delayed" if s.item_kind == "plain" else "plain"
    args = _set(b.args, "id", str(r.choice(u.ids_of(other))))
    return _mut(b, "wrong_kind", EINVAL, "handler", args=args, pair=True)


def m_unknown_id(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("id"):
        return None
    v = r.choice((u.max_items + 2, u.max_items + 100, 1024, U32_MAX))
    return _mut(b, "unknown_id", ENOENT, "handler", args=_set(b.args, "id", str(v)), pair=True)


def m_bad_name(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.creates_queue:
        return None
    name = r.choice(("Bad", "a-b", "system", "systemq", "system_x", "x" * 24, "q.0", "UPPER"))
    return _mut(b, "bad_name", EINVAL, "handler", args=_set(b.args, "name", name), pair=True)


def m_bad_flags(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("flags"):
        return None
    if s.name == "alloc_ordered_workqueue":
        flags = r.choice(("sysfs", "unbound,sysfs", "percpu", "bh"))
    else:
        flags = r.choice(("unbound,percpu", "bh,unbound", "bh,cpu_intensive"))
    # a name that does not exist: EEXIST must not mask the flag check
    args = _set(_set(b.args, "name", "z9"), "flags", flags)
    expect = frozenset({errno.EINVAL, errno.EOPNOTSUPP})
    return _mut(b, "bad_flags", expect, "handler", args=args, pair=True)


def m_max_active_zero(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if s.name != "workqueue_set_max_active":
        return None
    return _mut(
        b, "max_active_zero", EINVAL, "handler", args=_set(b.args, "max_active", "0"), pair=True
    )


# text plane only


def _text(b: Op, name: str, expect: frozenset[int], stage: str, line: str) -> Op:
    return _mut(b, name, expect, stage, plane=TEXT, raw=line.encode())


def m_repeated_key(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not b.args:
        return None
    k, v = r.choice(b.args)
    return _text(b, "repeated_key", EINVAL, "parse", f"{b.line()} {k}={v}\n")


def m_unknown_key(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    key = r.choice(("bogus", "ID", "wq_", "sleep", "x" * 30))
    return _text(b, "unknown_key", EINVAL, "parse", f"{b.line()} {key}=1\n")


def m_bad_number(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    keys = [k for k, _ in b.args if ARG_TYPES[k].kind in ("u32", "bool")]
    keys += [k for k, _ in b.args if k == "cpu"]
    if not keys:
        return None
    k = r.choice(keys)
    bad = r.choice(("", "x", "1x", "0x", "1.5", "0xg", "--1", "1 2x", "12abc", "0b1"))
    if ARG_TYPES[k].kind != "s32":
        bad = r.choice((bad, "-1", "-0x10"))
    args = " ".join(f"{kk}={bad if kk == k else v}" for kk, v in b.args)
    return _text(b, "bad_number", EINVAL, "parse", f"{b.cmd} {args}\n")


def m_beyond_32(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    keys = [k for k, _ in b.args if ARG_TYPES[k].kind in ("u32", "bool", "s32")]
    if not keys:
        return None
    k = r.choice(keys)
    if ARG_TYPES[k].kind == "s32":
        v, expect = r.choice((2**31, 2**32, 2**40, -(2**31) - 1)), EINVAL
    else:
        v, expect = r.choice((2**32, 2**32 + 5, 2**63, 2**64 + 1)), E2BIG
    text = hex(v) if v >= 0 and r.random() < 0.3 else str(v)
    args = " ".join(f"{kk}={text if kk == k else vv}" for kk, vv in b.args)
    return _text(b, "beyond_32bit", expect, "parse", f"{b.cmd} {args}\n")


def m_syntax(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    tok = r.choice(("id", "=3", "=", "wq", "sleep_ms"))
    return _text(b, "no_equals", EINVAL, "parse", f"{b.line()} {tok}\n")


def m_long_line(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    line = b.line()
    pad = r.randint(uapi.LINE_MAX - len(line) - 1, uapi.LINE_MAX + 200)
    pad = max(pad, uapi.LINE_MAX - len(line) - 1)
    text = line + " " * pad + "\n" if r.random() < 0.5 else f"{line} wq={'a' * pad}\n"
    return _text(b, "long_line", E2BIG, "parse", text)


def m_unknown_command(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    name = r.choice((b.cmd + "x", b.cmd.upper(), b.cmd.replace("_", "-"), "x" + b.cmd, "help"))
    if name in uapi.COMMAND_NRS:
        name = b.cmd + "x"
    rest = " ".join(f"{k}={v}" for k, v in b.args)
    return _text(b, "unknown_command", ENOENT, "parse", f"{name} {rest}".strip() + "\n")


def m_empty(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    return _text(b, "empty_line", EINVAL, "parse", r.choice(("\n", " \t \n", "   ")))


def m_name_field(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    key = "name" if s.creates_queue else "wq" if s.takes("wq") else None
    if key is None:
        return None
    args = " ".join(f"{k}={'n' * uapi.NAME_LEN if k == key else v}" for k, v in b.args)
    return _text(b, "name_too_long", EINVAL, "parse", f"{b.cmd} {args}\n")


def m_flag_names(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("flags"):
        return None
    flags = r.choice(("unbound,bogus", "unbound,unbound", "UNBOUND", "highpri,,x"))
    args = _set(b.args, "flags", flags)
    return _text(
        b, "flag_names", EINVAL, "parse", " ".join([b.cmd, *(f"{k}={v}" for k, v in args)]) + "\n"
    )


# ioctl plane only


def _ioctl(b: Op, name: str, expect: frozenset[int], raw: bytes, request: int | None = None) -> Op:
    stage = "dispatch" if expect == ENOTTY else "validate"
    return _mut(b, name, expect, stage, plane=IOCTL, raw=raw, request=request)


def _poke(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    import struct  # only here

    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


_OFFSETS: Final = {name: off for name, off, _ in uapi.CMD_FIELDS}


def m_reserved(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    raw = _poke(
        pack_args(b.args), _OFFSETS["reserved"] + 4 * r.randrange(3), "<I", r.randint(1, U32_MAX)
    )
    return _ioctl(b, "reserved", EINVAL, raw)


def m_args_bits(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    data = pack_args(b.args)
    import struct

    args = struct.unpack_from("<I", data, _OFFSETS["args"])[0]
    raw = _poke(data, _OFFSETS["args"], "<I", args | (1 << r.randint(12, 31)))
    return _ioctl(b, "args_unknown_bit", EINVAL, raw)


def m_field_without_bit(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    unset = [
        k
        for k in (
            "id",
            "cpu",
            "flags",
            "max_active",
            "delay_ms",
            "sleep_ms",
            "spin_us",
            "requeue",
            "block",
            "delayed",
        )
        if k not in b.argd
    ]
    if not unset:
        return None
    k = r.choice(unset)
    raw = _poke(pack_args(b.args), _OFFSETS[k], "<I", r.randint(1, 5))
    return _ioctl(b, "field_without_bit_" + k, EINVAL, raw)


def m_unterminated(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    key = r.choice(("wq", "name"))
    buf = bytearray(pack_args(b.args))
    off = _OFFSETS[key]
    buf[off : off + uapi.NAME_LEN] = b"u" * uapi.NAME_LEN
    return _ioctl(b, "unterminated_" + key, EINVAL, bytes(buf))


def m_flag_bits(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("flags"):
        return None
    args = _set(b.args, "flags", "unbound")
    raw = _poke(pack_args(args), _OFFSETS["flags"], "<I", 1 | (1 << r.randint(9, 31)))
    return _ioctl(b, "flag_bits", EINVAL, raw)


def m_bad_request(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    nr = uapi.COMMAND_NRS.get(b.cmd, 1)
    used = set(uapi.COMMAND_NRS.values()) | {0}
    how = r.choice(("nr", "size", "dir", "type"))
    size, d, t = uapi.CMD_SIZE, uapi._IOC_READ | uapi._IOC_WRITE, uapi.IOC_MAGIC
    if how == "nr":
        nr = r.choice([n for n in range(256) if n not in used])
    elif how == "size":
        size = r.choice((0, 8, uapi.CMD_SIZE - 1, uapi.CMD_SIZE + 1, 128))
    elif how == "dir":
        d = r.choice((0, uapi._IOC_READ, uapi._IOC_WRITE))
    else:
        t = r.choice((0xB6, 0xB8))
    request = uapi._ioc(d, t, nr, size)
    return _ioctl(b, "bad_request_" + how, ENOTTY, pack_args(b.args), request)


# netlink plane only: what the kernel's policy, the version check or the core refuse

ERANGE: Final = frozenset({errno.ERANGE})
_NL_RANGE_MUTATIONS: Final = ("over_max", "bool_over", "bad_cpu")


def on_netlink(op: Op) -> Op:
    """A fault of ``BOTH_PLANES`` as a netlink message, with what docs/commands.md promises
    there (Generic netlink, Errors): a number out of range is ERANGE from the policy (the
    other planes: E2BIG, or EINVAL for cpu, block, delayed), an argument the command does
    not take EINVAL from the policy (neither counted by the module: ``stage`` "policy");
    the rest the same errno from the module."""
    out = op._replace(plane=NETLINK)
    if op.kind != "mutated" or op.expect is None:
        return out
    if op.mutation in _NL_RANGE_MUTATIONS:
        return out._replace(expect=ERANGE, stage="policy")
    if op.mutation.startswith("extra_"):
        return out._replace(stage="policy")
    return out


def netlink_errno(err: int | None, op: Op) -> int | None:
    """What the netlink plane must answer where debugfs and ioctl answered ``err`` for the
    same fault ``op`` (pure; :func:`on_netlink`'s rule)."""
    if op.mutation in _NL_RANGE_MUTATIONS and err in (errno.E2BIG, errno.EINVAL):
        return errno.ERANGE
    return err


def _nl(b: Op, name: str, expect: frozenset[int], stage: str, msg: NlMessage) -> Op:
    return _mut(b, name, expect, stage, plane=NETLINK, nl=msg, pair=False)


def m_nl_version(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    cmd, _, attrs = b.netlink_message()
    version = r.choice((0, uapi.GENL_VERSION + 1, 255))
    return _nl(b, "nl_version", frozenset({errno.EPROTO}), "validate", (cmd, version, attrs))


def m_nl_length(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    cmd, version, attrs = b.netlink_message()
    nums = [i for i, (t, _) in enumerate(attrs) if uapi.ATTR_TYPES[uapi.Attr(t)] != "string"]
    if not nums:
        return None
    i = r.choice(nums)
    t, data = attrs[i]
    bad = r.choice((data[:2], data[:1], data + bytes(4), b""))
    msg = (cmd, version, (*attrs[:i], (t, bad), *attrs[i + 1 :]))
    return _nl(b, "nl_length", EINVAL, "policy", msg)


def m_nl_unterminated(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    cmd, version, attrs = b.netlink_message()
    strs = [i for i, (t, _) in enumerate(attrs) if uapi.ATTR_TYPES[uapi.Attr(t)] == "string"]
    if not strs:
        return None
    i = r.choice(strs)
    t, data = attrs[i]
    bad = r.choice((data.rstrip(b"\0"), b"x" * uapi.NAME_LEN))
    msg = (cmd, version, (*attrs[:i], (t, bad), *attrs[i + 1 :]))
    return _nl(b, "nl_unterminated", EINVAL, "policy", msg)


def m_nl_unknown_attr(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    cmd, version, attrs = b.netlink_message()
    extra = (r.randint(uapi.ATTR_MAX + 1, 39), r.choice((b"", bytes(4), b"zz\0")))
    return _nl(b, "nl_unknown_attr", EINVAL, "policy", (cmd, version, (*attrs, extra)))


def m_nl_output_attr(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    """An attribute only answers carry (``RET`` .. ``BH``): no command takes it."""
    cmd, version, attrs = b.netlink_message()
    taken = {int(uapi.arg_attr(k)) for k in ARG_TYPES}
    outs = [a for a in uapi.Attr if int(a) not in taken and a != uapi.Attr.PAD]
    a = r.choice(outs)
    width = {"u32": 4, "s32": 4, "u64": 8, "s64": 8}.get(uapi.ATTR_TYPES[a])
    extra = (int(a), bytes(width) if width else b"x\0")
    return _nl(b, "nl_output_attr", EINVAL, "policy", (cmd, version, (*attrs, extra)))


def m_nl_flag_bits(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    if not s.takes("flags"):
        return None
    cmd, version, attrs = b.netlink_message()
    fa = int(uapi.Attr.FLAGS)
    outside = U32_MAX & ~uapi.WQ_ALL
    bit = r.choice([1 << i for i in range(32) if outside >> i & 1])
    kept = tuple(a for a in attrs if a[0] != fa)
    msg = (cmd, version, (*kept, (fa, struct.pack("<I", bit))))
    return _nl(b, "nl_flag_bits", EINVAL, "policy", msg)


def m_nl_unknown_op(r: random.Random, s: CommandSpec, b: Op, u: Universe) -> Op | None:
    """A command number the family has no operation for (the event's among them)."""
    have = set(uapi.COMMAND_NRS.values()) | {uapi.GENL_CMD_WORKS, uapi.GENL_CMD_WORKQUEUES}
    cmd = r.choice([n for n in range(256) if n not in have])
    _, version, attrs = b.netlink_message()
    return _nl(b, "nl_unknown_op", frozenset({errno.EOPNOTSUPP}), "policy", (cmd, version, attrs))


NETLINK_ONLY: Final[tuple[Mutator, ...]] = (
    m_nl_version,
    m_nl_length,
    m_nl_unterminated,
    m_nl_unknown_attr,
    m_nl_output_attr,
    m_nl_flag_bits,
    m_nl_unknown_op,
)


BOTH_PLANES: Final[tuple[Mutator, ...]] = (
    m_over_max,
    m_bool_over,
    m_bad_cpu,
    m_missing,
    m_extra,
    m_unknown_queue,
    m_system_queue,
    m_wrong_kind,
    m_unknown_id,
    m_bad_name,
    m_bad_flags,
    m_max_active_zero,
)
TEXT_ONLY: Final[tuple[Mutator, ...]] = (
    m_repeated_key,
    m_unknown_key,
    m_bad_number,
    m_beyond_32,
    m_syntax,
    m_long_line,
    m_unknown_command,
    m_empty,
    m_name_field,
    m_flag_names,
)
IOCTL_ONLY: Final[tuple[Mutator, ...]] = (
    m_reserved,
    m_args_bits,
    m_field_without_bit,
    m_unterminated,
    m_flag_bits,
    m_bad_request,
)
MUTATORS: Final = BOTH_PLANES + TEXT_ONLY + IOCTL_ONLY
ALL_MUTATORS: Final = MUTATORS + NETLINK_ONLY


def mutate(
    r: random.Random,
    table: Mapping[str, CommandSpec],
    uni: Universe,
    base: Op,
    mutators: tuple[Mutator, ...] = MUTATORS,
) -> Op | None:
    """``base`` with one field off, or None if no mutator applies (pure, seeded)."""
    spec = table[base.cmd]
    order = list(mutators)
    r.shuffle(order)
    for m in order[:6]:
        op = m(r, spec, base, uni)
        if op is not None:
            return on_netlink(op) if op.plane == NETLINK and op.pair else op
    return None


# random input ---------------------------------------------------------------------------------

_ODD_VALUES: Final = (
    "0",
    "1",
    "2",
    "3",
    "5",
    "20",
    "-1",
    "x",
    "",
    "0x10",
    "4294967296",
    "q0",
    "z1",
    "system",
    "unbound",
    "60001",
)


def random_netlink(r: random.Random, table: Mapping[str, CommandSpec]) -> Op:
    """A message of random attributes (any type up to 39, payloads of odd lengths or the
    right width with odd values) under a command of the table (or any number), mostly
    with the right version."""
    names = list(table)
    name = r.choice(names) if r.random() < 0.9 else ""
    cmd = uapi.COMMAND_NRS[name] if name else r.randrange(256)
    version = uapi.GENL_VERSION if r.random() < 0.9 else r.randrange(256)
    attrs: list[tuple[int, bytes]] = []
    for _ in range(r.randint(0, 5)):
        t = r.randint(0, 39)
        how = r.random()
        if how < 0.3:
            data = bytes(r.randrange(256) for _ in range(r.choice((0, 1, 2, 3, 5, 8, 16))))
        elif how < 0.6:
            data = r.choice(("z0", "q1", "system", "", "nx", "x" * 47, "x" * 60)).encode() + b"\0"
        else:
            v = r.choice((0, 1, 2, 3, 20, 60001, U32_MAX, 2**31, r.randrange(2**32)))
            data = struct.pack("<I", v)
        attrs.append((t, data))
    nl = (cmd, version, tuple(attrs))
    return Op(name, kind="random", mutation="netlink", plane=NETLINK, nl=nl)


def random_input(
    r: random.Random, table: Mapping[str, CommandSpec], uni: Universe, netlink: bool = False
) -> Op:
    """Random bytes, a random line of table tokens, or a random ioctl struct (or, with
    ``netlink``, a random netlink message a quarter of the time)."""
    if netlink and r.random() < 0.25:
        return random_netlink(r, table)
    how = r.random()
    if how < 0.35:
        n = r.choice((r.randint(1, 40), r.randint(1, 300)))
        data = bytes(r.randrange(256) for _ in range(n))
        return Op("", kind="random", mutation="bytes", raw=data, plane=TEXT, expect=None)
    names = list(table)
    if how < 0.75:
        toks = [r.choice(names) if r.random() < 0.9 else r.choice(("", "x", "=", "help"))]
        for _ in range(r.randint(0, 5)):
            key = r.choice(list(ARG_TYPES) + ["bogus", ""])
            toks.append(f"{key}={r.choice(_ODD_VALUES)}")
        line = " ".join(toks) + "\n"
        return Op(toks[0], kind="random", mutation="line", raw=line.encode(), plane=TEXT)
    name = r.choice(names)
    buf = bytearray(uapi.CMD_SIZE)
    for key in r.sample(list(ARG_TYPES), r.randint(0, 4)):
        t = ARG_TYPES[key]
        if t.kind == "name":
            val = r.choice(("z0", "q1", "system", "", "nx")).encode()
            off = _OFFSETS[key]
            buf[off : off + len(val)] = val
        elif key != "flags" or r.random() < 0.5:
            v = r.choice((0, 1, 2, 3, 20, 60001, U32_MAX, r.randrange(2**32)))
            buf[_OFFSETS[key] : _OFFSETS[key] + 4] = (v & U32_MAX).to_bytes(4, "little")
    args = r.choice((r.randrange(2**12), r.randrange(2**32), 0))
    buf[8:12] = args.to_bytes(4, "little")
    if r.random() < 0.5:
        buf[_OFFSETS["reserved"]] = r.randint(1, 255)
    return Op(name, kind="random", mutation="struct", raw=bytes(buf), plane=IOCTL)
