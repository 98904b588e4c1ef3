"""Pure-Python mirror of the wqlab ABI, ``module/include/uapi/wqlab.h``: the ioctl
structs and numbers, and the generic netlink family's constants.

Layer: bottom (imports nothing from the harness). ``tests/unit/test_uapi.py`` compiles a C
program against the real header and checks every size, offset and ioctl number here.

>>> data = pack_cmd("queue_work", wq="system", id=0, sleep_ms=5)
>>> unpack_cmd(data).wq
'system'
>>> hex(IOCTLS["queue_work"])
'0xc080b730'
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from types import MappingProxyType
from typing import Final

ABI_VERSION: Final = 2

NAME_LEN: Final = 48
"""Size of the ``wq`` and ``name`` fields (NUL included)."""
NAME_MAX: Final = 23
"""Longest workqueue name: ``[a-z0-9_]{1,23}``; the kernel name is ``wqlab_<name>``."""
LINE_MAX: Final = 256
"""A text-plane line of this many bytes or more is ``E2BIG``."""

DELAY_MS_MAX: Final = 60000
SLEEP_MS_MAX: Final = 60000
SPIN_US_MAX: Final = 1000000
REQUEUE_MAX: Final = 10000
MAX_ACTIVE_MAX: Final = 512

ID_STATIC_WORK: Final = 0
ID_STATIC_DWORK: Final = 1

IOC_MAGIC: Final = 0xB7

# <asm-generic/ioctl.h> (x86, arm64, riscv): nr 8 bits, type 8, size 14, dir 2.
_IOC_NRSHIFT: Final = 0
_IOC_TYPESHIFT: Final = 8
_IOC_SIZESHIFT: Final = 16
_IOC_DIRSHIFT: Final = 30
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _ioc(direction: int, type_: int, nr: int, size: int) -> int:
    return (
        (direction << _IOC_DIRSHIFT)
        | (type_ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _ior(type_: int, nr: int, size: int) -> int:
    return _ioc(_IOC_READ, type_, nr, size)


def _iowr(type_: int, nr: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, type_, nr, size)


class Arg(IntFlag):
    """``WQLAB_ARG_*``: which (in) fields of ``struct wqlab_cmd`` are set."""

    ID = 1 << 0
    WQ = 1 << 1
    NAME = 1 << 2
    CPU = 1 << 3
    FLAGS = 1 << 4
    MAX_ACTIVE = 1 << 5
    DELAY_MS = 1 << 6
    SLEEP_MS = 1 << 7
    SPIN_US = 1 << 8
    REQUEUE = 1 << 9
    BLOCK = 1 << 10
    DELAYED = 1 << 11


ARG_ALL: Final = (1 << 12) - 1

ARG_KEYS: Final[Mapping[str, Arg]] = MappingProxyType(
    {k.lower(): v for k, v in Arg.__members__.items()}
)
"""Text-plane key → ``WQLAB_ARG_*`` bit."""


class WqFlag(IntFlag):
    """``WQLAB_WQ_*``: workqueue flags (the module maps them to the kernel's ``WQ_*``)."""

    UNBOUND = 1 << 0
    HIGHPRI = 1 << 1
    CPU_INTENSIVE = 1 << 2
    FREEZABLE = 1 << 3
    MEM_RECLAIM = 1 << 4
    SYSFS = 1 << 5
    BH = 1 << 6
    PERCPU = 1 << 7
    POWER_EFFICIENT = 1 << 8


WQ_ALL: Final = (1 << 9) - 1

FLAG_NAMES: Final[Mapping[str, WqFlag]] = MappingProxyType(
    {k.lower(): v for k, v in WqFlag.__members__.items()}
)
"""Text-plane flag name → ``WQLAB_WQ_*`` bit."""


class Busy(IntFlag):
    """``WQLAB_BUSY_*``: the ``ret`` of ``work_busy``."""

    PENDING = 1 << 0
    RUNNING = 1 << 1


# struct wqlab_cmd: little-endian, no padding (the header is laid out so that native
# alignment adds none; the unit test checks every offset against the C compiler).
CMD_FORMAT: Final = f"<qIIiIIIIIIII3I{NAME_LEN}s{NAME_LEN}s"
CMD_SIZE: Final = struct.calcsize(CMD_FORMAT)

CMD_FIELDS: Final[tuple[tuple[str, int, int], ...]] = (
    ("ret", 0, 8),
    ("args", 8, 4),
    ("id", 12, 4),
    ("cpu", 16, 4),
    ("flags", 20, 4),
    ("max_active", 24, 4),
    ("delay_ms", 28, 4),
    ("sleep_ms", 32, 4),
    ("spin_us", 36, 4),
    ("requeue", 40, 4),
    ("block", 44, 4),
    ("delayed", 48, 4),
    ("reserved", 52, 12),
    ("wq", 64, NAME_LEN),
    ("name", 112, NAME_LEN),
)
"""``(field, offset, size)`` of every member of ``struct wqlab_cmd``, in order."""

VERSION_FORMAT: Final = "<II"
VERSION_SIZE: Final = struct.calcsize(VERSION_FORMAT)
VERSION_FIELDS: Final[tuple[tuple[str, int, int], ...]] = (
    ("abi_version", 0, 4),
    ("cmd_size", 4, 4),
)

COMMAND_NRS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "work_new": 0x01,
        "work_free": 0x02,
        "reset": 0x03,
        "release": 0x04,
        "schedule_work": 0x10,
        "schedule_work_on": 0x11,
        "schedule_delayed_work": 0x12,
        "schedule_delayed_work_on": 0x13,
        "flush_work": 0x14,
        "flush_delayed_work": 0x15,
        "flush_scheduled_work": 0x16,
        "create_workqueue": 0x20,
        "create_singlethread_workqueue": 0x21,
        "alloc_workqueue": 0x22,
        "alloc_ordered_workqueue": 0x23,
        "workqueue_set_max_active": 0x24,
        "destroy_workqueue": 0x25,
        "queue_work": 0x30,
        "queue_work_on": 0x31,
        "queue_delayed_work": 0x32,
        "queue_delayed_work_on": 0x33,
        "mod_delayed_work": 0x34,
        "mod_delayed_work_on": 0x35,
        "flush_workqueue": 0x36,
        "drain_workqueue": 0x37,
        "cancel_work": 0x40,
        "cancel_work_sync": 0x41,
        "cancel_delayed_work": 0x42,
        "cancel_delayed_work_sync": 0x43,
        "work_pending": 0x44,
        "delayed_work_pending": 0x45,
        "work_busy": 0x46,
        "disable_work": 0x50,
        "disable_work_sync": 0x51,
        "enable_work": 0x52,
        "disable_delayed_work": 0x53,
        "disable_delayed_work_sync": 0x54,
        "enable_delayed_work": 0x55,
        "enable_and_queue_work": 0x56,
    }
)
"""Command name (text plane) → ``WQLAB_NR_*``."""

IOCTLS: Final[Mapping[str, int]] = MappingProxyType(
    {name: _iowr(IOC_MAGIC, nr, CMD_SIZE) for name, nr in COMMAND_NRS.items()}
)
"""Command name → ``WQLAB_IOC_*`` request number."""

IOC_VERSION: Final = _ior(IOC_MAGIC, 0x00, VERSION_SIZE)

ERRNOS: Final[Mapping[int, str]] = MappingProxyType(
    {
        errno.ENOTTY: "unknown ioctl type or number",
        errno.EFAULT: "the argument could not be copied in or out",
        errno.EPERM: "the ioctl caller lacks CAP_SYS_ADMIN",
        errno.ENOENT: "unknown command (text plane), workqueue, or work item id; or a system "
        "queue this kernel does not have",
        errno.EINVAL: "malformed line, unknown/repeated/not-taken/missing argument, non-zero "
        "reserved field or field without its args bit, bad name, bad cpu, delayed command on a "
        "plain item (or the reverse), invalid flag combination, sleeping behaviour on a BH "
        "queue, set_max_active on an ordered/BH/system queue, drain of a system queue",
        errno.E2BIG: "text line of LINE_MAX bytes or more, or a number above its maximum",
        errno.EEXIST: "a workqueue of that name exists",
        errno.ENOSPC: "no free work item or workqueue slot",
        errno.EBUSY: "item pending/running/in use (work_free, reset); queue holds a blocked item "
        "or is flushed/drained (destroy_workqueue); queueing onto a queue being drained",
        errno.EOPNOTSUPP: "API or flag absent on this kernel (see the features file)",
        errno.ESHUTDOWN: "the module is being removed",
    }
)
"""errno → what it means from wqlab (the ``DOC: errors`` block of the header)."""


# generic netlink (the header's "DOC: generic netlink") ----------------------------------
GENL_NAME: Final = "wqlab"
GENL_VERSION: Final = 1
GENL_MCGRP_EVENTS: Final = "events"

GENL_CMD_WORKS: Final = 0x60
"""Dump: one message per work item."""
GENL_CMD_WORKQUEUES: Final = 0x61
"""Dump: one message per custom workqueue."""
GENL_CMD_EVENT: Final = 0x62
"""Multicast: one event."""
GENL_DEFERRED_MAX: Final = 16
"""Commands that wait for work (the table's ``WQLAB_CMD_WAITS``, ``client.may_block``) in
flight at once on netlink; one more is ``EAGAIN``."""


class Attr(IntEnum):
    """``WQLAB_A_*``: netlink attributes; the argument of ``WQLAB_ARG_*`` bit n is n + 1."""

    ID = 1
    WQ = 2
    NAME = 3
    CPU = 4
    FLAGS = 5
    MAX_ACTIVE = 6
    DELAY_MS = 7
    SLEEP_MS = 8
    SPIN_US = 9
    REQUEUE = 10
    BLOCK = 11
    DELAYED = 12
    RET = 13
    SEQ = 14
    PID = 15
    COMM = 16
    TIME_NS = 17
    EVENT = 18
    EVENT_SEQ = 19
    DROPS = 20
    STATE = 21
    RUNS = 22
    QUEUED_NS = 23
    STARTED_NS = 24
    FINISHED_NS = 25
    HOW = 26
    ORDERED = 27
    BH = 28
    PAD = 29
    DEFERRED = 30
    ERRNO = 31


ATTR_MAX: Final = 31

ATTR_TYPES: Final[Mapping[Attr, str]] = MappingProxyType(
    {
        Attr.ID: "u32",
        Attr.WQ: "string",
        Attr.NAME: "string",
        Attr.CPU: "s32",
        Attr.FLAGS: "u32",
        Attr.MAX_ACTIVE: "u32",
        Attr.DELAY_MS: "u32",
        Attr.SLEEP_MS: "u32",
        Attr.SPIN_US: "u32",
        Attr.REQUEUE: "u32",
        Attr.BLOCK: "u32",
        Attr.DELAYED: "u32",
        Attr.RET: "s64",
        Attr.SEQ: "u64",
        Attr.PID: "u32",
        Attr.COMM: "string",
        Attr.TIME_NS: "u64",
        Attr.EVENT: "u32",
        Attr.EVENT_SEQ: "u64",
        Attr.DROPS: "u64",
        Attr.STATE: "string",
        Attr.RUNS: "u64",
        Attr.QUEUED_NS: "u64",
        Attr.STARTED_NS: "u64",
        Attr.FINISHED_NS: "u64",
        Attr.HOW: "string",
        Attr.ORDERED: "u32",
        Attr.BH: "u32",
        Attr.PAD: "pad",
        Attr.DEFERRED: "u32",
        Attr.ERRNO: "u32",
    }
)
"""Wire type of every attribute (the header's comments)."""


def arg_attr(key: str) -> Attr:
    """The attribute of a command argument (``"sleep_ms"`` → ``Attr.SLEEP_MS``)."""
    return Attr(ARG_KEYS[key].bit_length())


class Event(IntEnum):
    """``WQLAB_EV_*``: what an event of the ``events`` group reports."""

    START = 1
    END = 2
    BLOCK = 3
    WQ_CREATE = 4
    WQ_DESTROY = 5


GENL_ERRNOS: Final[Mapping[int, str]] = MappingProxyType(
    {
        errno.EPROTO: "the genetlink header's version is not GENL_VERSION",
        errno.EINVAL: "an attribute the command does not take, an unknown attribute type, a "
        "missing required attribute, a wrong length, a string without its NUL within NAME_LEN "
        "bytes (too long), a flag bit outside WQ_ALL (policy)",
        errno.ERANGE: "a number outside its range (debugfs and ioctl: E2BIG for a maximum, "
        "EINVAL for cpu, block, delayed) (policy)",
        errno.EPERM: "the sender lacks CAP_NET_ADMIN or CAP_SYS_ADMIN",
        errno.EAGAIN: "GENL_DEFERRED_MAX commands that wait for work are in flight",
    }
)
"""Errors the netlink plane adds (the header's ``DOC: generic netlink``)."""


def parse_flags(flags: int | str | Iterable[str]) -> WqFlag:
    """Flags as an int, ``"unbound,highpri"`` or ``["unbound", "highpri"]``."""
    if isinstance(flags, int):
        if flags & ~WQ_ALL:
            raise ValueError(f"unknown flag bits {flags & ~WQ_ALL:#x}")
        return WqFlag(flags)
    names = [n for n in flags.split(",") if n] if isinstance(flags, str) else list(flags)
    result = WqFlag(0)
    for name in names:
        try:
            result |= FLAG_NAMES[name]
        except KeyError:
            raise ValueError(f"unknown workqueue flag {name!r}") from None
    return result


def format_flags(flags: int) -> str:
    """``WQLAB_WQ_*`` bits as the module's comma list (``"-"`` for none)."""
    names = [name for name, bit in FLAG_NAMES.items() if flags & bit]
    return ",".join(names) if names else "-"


@dataclass(frozen=True)
class Cmd:
    """``struct wqlab_cmd``, one field per member."""

    ret: int = 0
    args: int = 0
    id: int = 0
    cpu: int = 0
    flags: int = 0
    max_active: int = 0
    delay_ms: int = 0
    sleep_ms: int = 0
    spin_us: int = 0
    requeue: int = 0
    block: int = 0
    delayed: int = 0
    reserved: tuple[int, int, int] = field(default=(0, 0, 0))
    wq: str = ""
    name: str = ""

    def pack(self) -> bytes:
        return struct.pack(
            CMD_FORMAT,
            self.ret,
            self.args,
            self.id,
            self.cpu,
            self.flags,
            self.max_active,
            self.delay_ms,
            self.sleep_ms,
            self.spin_us,
            self.requeue,
            self.block,
            self.delayed,
            *self.reserved,
            _encode_name(self.wq),
            _encode_name(self.name),
        )


@dataclass(frozen=True)
class Version:
    """``struct wqlab_version``."""

    abi_version: int
    cmd_size: int


def _encode_name(name: str) -> bytes:
    raw = name.encode("ascii")
    if len(raw) >= NAME_LEN:
        raise ValueError(f"name {name!r} longer than {NAME_LEN - 1} bytes")
    return raw


def _decode_name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def pack_cmd(
    command: str | None = None,
    *,
    id: int | None = None,
    wq: str | None = None,
    name: str | None = None,
    cpu: int | None = None,
    flags: int | str | Iterable[str] | None = None,
    max_active: int | None = None,
    delay_ms: int | None = None,
    sleep_ms: int | None = None,
    spin_us: int | None = None,
    requeue: int | None = None,
    block: bool | int | None = None,
    delayed: bool | int | None = None,
) -> bytes:
    """Build the 160-byte ``struct wqlab_cmd`` for one command.

    Every argument given (not None) sets its ``WQLAB_ARG_*`` bit; the others stay zero, as
    the module requires. ``command`` is only checked to be known (pass it to catch typos).
    """
    if command is not None and command not in COMMAND_NRS:
        raise ValueError(f"unknown wqlab command {command!r}")
    ints: dict[str, int | None] = {
        "id": id,
        "cpu": cpu,
        "max_active": max_active,
        "delay_ms": delay_ms,
        "sleep_ms": sleep_ms,
        "spin_us": spin_us,
        "requeue": requeue,
        "block": None if block is None else int(block),
        "delayed": None if delayed is None else int(delayed),
    }
    args = 0
    for key, value in ints.items():
        if value is not None:
            args |= ARG_KEYS[key]
    if wq is not None:
        args |= Arg.WQ
    if name is not None:
        args |= Arg.NAME
    if flags is not None:
        args |= Arg.FLAGS

    def num(key: str) -> int:
        value = ints[key]
        return 0 if value is None else value

    return Cmd(
        args=args,
        id=num("id"),
        cpu=num("cpu"),
        flags=0 if flags is None else int(parse_flags(flags)),
        max_active=num("max_active"),
        delay_ms=num("delay_ms"),
        sleep_ms=num("sleep_ms"),
        spin_us=num("spin_us"),
        requeue=num("requeue"),
        block=num("block"),
        delayed=num("delayed"),
        wq=wq or "",
        name=name or "",
    ).pack()


def unpack_cmd(data: bytes) -> Cmd:
    """Decode a ``struct wqlab_cmd`` (as returned by the ioctl)."""
    if len(data) != CMD_SIZE:
        raise ValueError(f"struct wqlab_cmd is {CMD_SIZE} bytes, got {len(data)}")
    v = struct.unpack(CMD_FORMAT, data)
    return Cmd(
        ret=v[0],
        args=v[1],
        id=v[2],
        cpu=v[3],
        flags=v[4],
        max_active=v[5],
        delay_ms=v[6],
        sleep_ms=v[7],
        spin_us=v[8],
        requeue=v[9],
        block=v[10],
        delayed=v[11],
        reserved=(v[12], v[13], v[14]),
        wq=_decode_name(v[15]),
        name=_decode_name(v[16]),
    )


def unpack_version(data: bytes) -> Version:
    """Decode the answer of ``IOC_VERSION``."""
    abi_version, cmd_size = struct.unpack(VERSION_FORMAT, data)
    return Version(abi_version=abi_version, cmd_size=cmd_size)
