"""The guest's kernel log, as the per-test splat scan reads it: a mark before the test,
the lines since that mark after it, in ``dmesg``'s format (``[    8.685572] message``).

The guest agent reads ``/dev/kmsg`` itself (no ``dmesg`` process): each record is
``prio,seq,ts_us,flags[,...];message`` and then `` KEY=value`` dictionary lines; the
message escapes bytes below 0x20, from 0x7f, and ``\\`` as ``\\xNN``. A mark is the
sequence number of the next record, so a scan reads exactly the records after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .channel import AgentChannel

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True, slots=True)
class KmsgRecord:
    """One ``/dev/kmsg`` record."""

    prio: int  # facility << 3 | level
    seq: int
    ts_us: int  # microseconds since boot
    flags: str  # "-", or "c" for a continuation
    message: str  # unescaped; may hold newlines

    @property
    def level(self) -> int:
        return self.prio & 7

    @property
    def facility(self) -> int:
        return self.prio >> 3

    def dmesg(self) -> str:
        """As ``dmesg`` prints it: the timestamp, then the message; a message's further
        lines are indented under its first."""
        head = f"[{self.ts_us // 1_000_000:5d}.{self.ts_us % 1_000_000:06d}] "
        return head + self.message.replace("\n", "\n" + " " * len(head))


def _printable(raw: bytes) -> str:
    """The message as ``dmesg`` writes it: UTF-8 text, newlines and tabs as they are, every
    other byte that does not print (controls, DEL, invalid UTF-8) as ``\\xNN``."""
    out = []
    for ch in raw.decode(errors="surrogateescape"):
        if ch in "\n\t" or ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append("".join(f"\\x{b:02x}" for b in ch.encode()))
    return "".join(out)


def parse_record(raw: str) -> KmsgRecord:
    """``"6,1234,8685572,-;wqlab: loaded\\n SUBSYSTEM=..."`` → a KmsgRecord (pure)."""
    head, sep, body = raw.partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 3:
        raise ValueError(f"not a /dev/kmsg record: {raw[:80]!r}")
    text = body.split("\n", 1)[0]  # the rest: " KEY=value" dictionary lines
    message = _printable(_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), text.encode()))
    flags = fields[3] if len(fields) > 3 else "-"
    return KmsgRecord(int(fields[0]), int(fields[1]), int(fields[2]), flags, message)


def format_dmesg(records: Iterable[KmsgRecord]) -> str:
    """Records as ``dmesg`` prints them, one line each (pure)."""
    return "".join(r.dmesg() + "\n" for r in records)


def dmesg_mark(agent: AgentChannel) -> int:
    """Where the kernel log ends now (the scan after a test starts here): the sequence
    number of the next record."""
    return int(agent.request("kmsg", since=None)["next"])


def read_since(agent: AgentChannel, mark: int) -> list[KmsgRecord]:
    """The kernel log's records from ``mark`` on (those still in the ring buffer)."""
    return [parse_record(r) for r in agent.request("kmsg", since=mark)["records"]]


def dmesg_since(agent: AgentChannel, mark: int) -> str:
    """The kernel log's lines from ``mark`` on, as ``dmesg`` prints them."""
    return format_dmesg(read_since(agent, mark))
