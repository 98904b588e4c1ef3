"""The wqlab generic netlink family, spoken with pyroute2 (runs where the module is: in
the guest, imported by the guest agent; see ``module/wqlab_netlink.c`` and the header's
``DOC: generic netlink``).

Layer: bottom, beside ``uapi`` (imports only ``uapi``, the standard library and pyroute2),
so that the guest agent, which runs on the guest's system Python, can import it from the
host's tree with pyroute2 beside it.

    with Genl() as nl:
        nl.command("work_new")                    # {"ret": 0, "id": 2}
        nl.command("flush_work", {"id": 2})       # waits for the deferred answer: {"ret": 1}
        nl.dump("works")                          # [{"id": 0, "state": "idle", ...}, ...]
    with Listener() as ev:
        ev.read(timeout=1.0)                      # [{"event": "start", "id": 2, ...}, ...]
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    genlmsg,
)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

from . import uapi

SOL_NETLINK = 270
NLMSGERR_ATTR_MSG = 1
NETLINK_BROADCAST_ERROR = 4

_NLA_TYPES = {
    "u32": "uint32",
    "s32": "int32",
    "u64": "uint64",
    "s64": "int64",
    "string": "asciiz",
    "pad": "none",
}


class wqlabmsg(genlmsg):  # type: ignore[misc]  # pyroute2 naming
    """A message of the family: every ``WQLAB_A_*`` with its wire type."""

    prefix = "WQLAB_A_"
    nla_map = (("WQLAB_A_UNSPEC", "none"),) + tuple(
        (f"WQLAB_A_{a.name}", _NLA_TYPES[uapi.ATTR_TYPES[a]]) for a in uapi.Attr
    )


class wqlabrawmsg(genlmsg):  # type: ignore[misc]
    """The same attributes as raw bytes: to send what the policy must refuse (a wrong
    length, a string without its NUL, an attribute type the family does not have)."""

    prefix = "WQLAB_A_"
    nla_map = (
        (("WQLAB_A_UNSPEC", "cdata"),)
        + tuple((f"WQLAB_A_{a.name}", "cdata") for a in uapi.Attr)
        + tuple((f"WQLAB_A_UNKNOWN{n}", "cdata") for n in range(uapi.ATTR_MAX + 1, 40))
    )


def _decode(msg: Any) -> dict[str, Any]:
    """The attributes of a message as ``{"id": 2, "wq": "system", ...}`` (pad dropped)."""
    out: dict[str, Any] = {}
    for name, value in msg["attrs"]:
        key = name.removeprefix("WQLAB_A_").lower()
        if key in ("pad", "unspec"):
            continue
        out[key] = value
    return out


def encode_args(args: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Command arguments as attributes (pure): flags may be names, booleans become 0/1,
    numbers may be text (a command line's), None is left out."""
    attrs: list[tuple[str, Any]] = []
    for key, value in args.items():
        if value is None:
            continue
        if key not in uapi.ARG_KEYS:
            raise ValueError(f"unknown argument {key!r}: one of {sorted(uapi.ARG_KEYS)}")
        if key == "flags":
            value = int(uapi.parse_flags(value))
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, str) and key not in ("wq", "name"):
            value = int(value, 0)  # typed on a command line: "2", "0x10"
        attrs.append((f"WQLAB_A_{uapi.arg_attr(key).name}", value))
    return attrs


def _oserror(e: NetlinkError) -> OSError:
    code = abs(e.code)
    text = e.args[1] if len(e.args) > 1 and e.args[1] else os.strerror(code)
    return OSError(code, str(text))


def _failed(e: object) -> OSError:
    """A message pyroute2 parsed as an error (an errno ack, ENOBUFS, a decode failure)."""
    if isinstance(e, NetlinkError):
        return _oserror(e)
    if isinstance(e, OSError):
        return e
    return OSError(errno.EPROTO, f"undecodable netlink message: {e}")


# Commands go out with sequence numbers of their own, above pyroute2's (its dumps' pool),
# from a random start: the module sends a waiting command's last message to the sender's
# port, and a socket opened after that sender closed may have the same port (the kernel
# gives a process's first socket its pid): it must not take that message, under the same
# sequence number, for the answer to a request of its own.
_SEQ_BASE = 1 << 30


def first_seq() -> int:
    """Where a socket's sequence numbers start: above ``_SEQ_BASE``, at random."""
    return _SEQ_BASE + random.randrange(1 << 29)


# A command's answers can be lost: the kernel drops a message its receiver's buffer has no
# room for. Whatever answers in the doit (every reply, the ack) is queued before send()
# returns; the last message of a command that waits comes when it returns, and the
# module's nl_deferred (its stats file) counts the commands not yet answered, decremented
# only after the last message was queued. A wait with no deadline of its own asks that
# count each LOST_POLL_S without news; with no stats file to read, it gives up
# block_max_ms (a blocked run's longest wait) plus LOST_MARGIN_S after the ack.
STATS_PATH = "/sys/kernel/debug/wqlab/stats"
BLOCK_MAX_MS_PATH = "/sys/module/wqlab/parameters/block_max_ms"
LOST_POLL_S = 1.0
LOST_MARGIN_S = 30.0


def deferred_in_flight(path: str = STATS_PATH) -> int | None:
    """The module's ``nl_deferred`` (commands of this plane not yet answered); None if
    the stats file cannot be read (no debugfs, no module, an older module)."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "nl_deferred":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def block_max_s(path: str = BLOCK_MAX_MS_PATH) -> float:
    """The module's block_max_ms in seconds (its default, 30 s, if unreadable)."""
    try:
        with open(path) as f:
            return int(f.read()) / 1000
    except (OSError, ValueError):
        return 30.0


class Genl:
    """One generic netlink socket bound to the family (one per thread: pyroute2 sockets
    are not shared between threads)."""

    def __init__(self) -> None:
        self.sock = GenericNetlinkSocket(ext_ack=True)
        try:
            self.sock.bind(uapi.GENL_NAME, wqlabmsg)
        except NetlinkError as e:
            self.sock.close()
            if abs(e.code) == errno.ENOENT:
                raise OSError(
                    errno.ENOENT, "generic netlink family 'wqlab' not found: load the module"
                ) from None
            raise _oserror(e) from None
        self.family = self.sock.prid
        # Commands are sent and read here, not through pyroute2's request loop: a command
        # that waits is answered twice under one sequence number (the reply that says
        # "deferred", the ack, then the result), and pyroute2 forgets a sequence number
        # at its first answer. pyroute2 still resolves the family, encodes, parses (extack
        # included) and runs the dumps. The descriptor is non-blocking (asyncio's).
        self.cmd_sock = socket.socket(fileno=os.dup(self.sock.fileno()))
        self.seq = first_seq()
        self.in_flight = deferred_in_flight  # see LOST_POLL_S
        self.lost_poll_s = LOST_POLL_S
        self.overruns = 0  # ENOBUFS seen: the kernel dropped a message to this socket

    def __enter__(self) -> Genl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.cmd_sock.close()
        self.sock.close()

    def _request(self, msg: Any, flags: int) -> list[Any]:
        try:
            return list(self.sock.nlm_request(msg, msg_type=self.family, msg_flags=flags))
        except NetlinkError as e:
            raise _oserror(e) from None

    def _recv(self, deadline: float | None, poll: float | None = None) -> bytes | None:
        """The next datagram; None once ``poll`` seconds (if given) passed without one;
        OSError(ETIMEDOUT) past ``deadline``. An overrun (ENOBUFS: the kernel dropped a
        message to this socket) is counted and reading goes on: the caller tells whether
        the message was one it waits for."""
        until = None if poll is None else time.monotonic() + poll
        while True:
            now = time.monotonic()
            left = None if deadline is None else deadline - now
            if left is not None and left <= 0:
                raise OSError(errno.ETIMEDOUT, "no answer from the wqlab module in time")
            if until is not None:
                left = until - now if left is None else min(left, until - now)
            if not select.select(
                [self.cmd_sock], [], [], max(left, 0) if left is not None else None
            )[0]:
                if until is not None and time.monotonic() >= until:
                    return None
                continue
            try:
                return self.cmd_sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1

    def _lost(self, seq: int, what: str) -> OSError:
        overrun = (
            f"this socket's receive buffer overflowed {self.overruns} time(s) (ENOBUFS)"
            if self.overruns
            else "no overflow was reported to this socket"
        )
        return OSError(
            errno.ENOBUFS,
            f"request {seq}: {what}, so it was dropped ({overrun}; the module's stats "
            "nl_replies_lost counts a dropped last message): read answers sooner or "
            "raise the socket's SO_RCVBUF",
        )

    def _next_seq(self) -> int:
        self.seq = self.seq + 1 if self.seq < 0xFFFFFFFF else _SEQ_BASE
        return self.seq

    def send(self, msg: Any) -> int:
        """Send one request of the family with NLM_F_ACK; its sequence number."""
        self._next_seq()
        msg["header"]["type"] = self.family
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
        msg["header"]["sequence_number"] = self.seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.cmd_sock.send(msg.data)  # the kernel runs the doit in this call
        return self.seq

    def answers(
        self,
        seq: int,
        timeout: float | None = None,
        last: bool = True,
        parse: Callable[[bytes], Iterable[Any]] | None = None,
    ) -> list[Any]:
        """The answers to request ``seq`` up to its ack; if the reply says ``deferred`` (a
        command that waits for work, run on by the module after the ack) and ``last``,
        also the last message, which carries the result. The family's messages, the
        result last; an errno ack raises OSError(errno, extack text). Messages of other
        requests are dropped. ``timeout``: the whole wait's bound (then ETIMEDOUT); None
        waits as long as the command does, but not for an answer the kernel dropped:
        ENOBUFS once it is sure (see LOST_POLL_S). ``parse``: how a datagram becomes
        messages (pyroute2's parser unless given; :func:`parse_answers` for :meth:`raw`)."""
        parse = parse or self.sock.marshal.parse
        deadline = None if timeout is None else time.monotonic() + timeout
        poll: float | None = None  # a caller's deadline: one wait up to it
        replies: list[Any] = []
        acked_at: float | None = None
        final_look = False  # nl_deferred read 0: what is not queued now never comes
        while acked_at is None or (last and replies and replies[-1].get_attr("WQLAB_A_DEFERRED")):
            if timeout is None:
                poll = 0.0 if final_look else self.lost_poll_s
            data = self._recv(deadline, poll)
            if data is None:
                if acked_at is None:
                    raise self._lost(seq, "no ack came (the doit queues it before send() returns)")
                if final_look:
                    raise self._lost(
                        seq,
                        "the module answered 'deferred' and no longer has a command waiting "
                        "(stats nl_deferred=0), but the result never came",
                    )
                final_look = self._result_gone(seq, acked_at)
                continue
            for m in parse(data):
                if m["header"]["sequence_number"] != seq:
                    continue  # an answer to a request given up on
                if m["header"].get("error") is not None:
                    raise _failed(m["header"]["error"])
                if m["header"]["type"] == NLMSG_ERROR:
                    acked_at = time.monotonic()
                elif m["header"]["type"] == self.family:
                    replies.append(m)
        return replies

    def _result_gone(self, seq: int, acked_at: float) -> bool:
        """Whether no command of this plane waits in the module any more (then the result,
        if it was sent, is already queued here). Without the stats file: ETIMEDOUT once
        block_max_ms plus LOST_MARGIN_S passed since the ack."""
        n = self.in_flight()
        if n is not None:
            return n == 0
        bound = block_max_s() + LOST_MARGIN_S
        if time.monotonic() - acked_at > bound:
            raise OSError(
                errno.ETIMEDOUT,
                f"request {seq}: no result {bound:.0f} s (block_max_ms + {LOST_MARGIN_S:.0f} s) "
                f"after the module answered 'deferred', and its stats file ({STATS_PATH}) "
                "cannot say whether the command still waits: give a timeout",
            )
        return False

    def exchange(self, msg: Any, timeout: float | None = None) -> list[Any]:
        """``send`` then ``answers``: the family's messages of one request, result last."""
        return self.answers(self.send(msg), timeout)

    def command(
        self, name: str, args: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run one command; ``{"ret": ..., "id": ...}`` or OSError(errno, extack text). A
        command that waits for work is answered once it returns (``timeout``: None waits
        as long as it does)."""
        if name not in uapi.COMMAND_NRS:
            raise OSError(errno.EOPNOTSUPP, f"unknown wqlab command {name!r}")
        msg = wqlabmsg()
        msg["cmd"] = uapi.COMMAND_NRS[name]
        msg["version"] = uapi.GENL_VERSION
        msg["attrs"] = self._encodable(name, args or {})
        replies = self.exchange(msg, timeout)
        if not replies:
            raise OSError(errno.EPROTO, f"{name}: acked without an answer")
        return _result(name, replies[-1])

    @staticmethod
    def _encodable(name: str, args: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """The attributes, once a throwaway message proved they encode (a value its
        attribute cannot carry is EINVAL, not sent; a message encodes only once)."""
        try:
            probe = wqlabmsg()
            probe["attrs"] = encode_args(args)  # pyroute2 takes the list over
            probe.encode()
        except (ValueError, TypeError, struct.error) as e:
            raise OSError(errno.EINVAL, f"{name}: not sent, cannot encode {args}: {e}") from None
        return encode_args(args)

    def raw(self, cmd: int, attrs: list[tuple[int, bytes]], version: int) -> dict[str, Any]:
        """Send ``attrs`` as (type, payload bytes) under any ``cmd`` and ``version``: the
        malformed messages the policy and the version check must refuse.

        The fuzzer's netlink plane: the request is built by :func:`encode_raw` and the
        answers read by :func:`parse_answers`, not by pyroute2 (whose generic codec took
        about 8 ms a command in a TCG guest, 20-40 debugfs commands' worth);
        tests/unit/test_genl.py checks both against pyroute2 on the same bytes."""
        for t, _ in attrs:
            wqlabrawmsg.nla_map[t]  # an IndexError, as from pyroute2, for a type it has no name for
        seq = self._next_seq()
        self.cmd_sock.send(encode_raw(self.family, seq, cmd, version, attrs))
        replies = self.answers(seq, parse=lambda data: parse_answers(data, self.family))
        return _result(f"command {cmd:#x}", replies[-1]) if replies else {}

    def dump(self, what: str) -> list[dict[str, Any]]:
        """``works`` or ``workqueues``: one dict per item or queue."""
        cmd = {"works": uapi.GENL_CMD_WORKS, "workqueues": uapi.GENL_CMD_WORKQUEUES}[what]
        msg = wqlabmsg()
        msg["cmd"] = cmd
        msg["version"] = uapi.GENL_VERSION
        return [_decode(m) for m in self._request(msg, NLM_F_REQUEST | NLM_F_DUMP)]


def _result(what: str, msg: Any) -> dict[str, Any]:
    """The attributes of a command's last answer; OSError if it carries ``errno`` (a
    deferred command that failed after it was accepted)."""
    out = _decode(msg)
    if "errno" in out:
        code = int(out["errno"])
        raise OSError(code, f"wqlab: {what} failed after it was accepted: {os.strerror(code)}")
    out.pop("deferred", None)
    return out


def encode_raw(
    family: int, seq: int, cmd: int, version: int, attrs: Iterable[tuple[int, bytes]]
) -> bytes:
    """A request as :meth:`Genl.send` sends a ``wqlabrawmsg`` (pure): nlmsghdr with
    NLM_F_REQUEST | NLM_F_ACK and port 0, genlmsghdr, then each attribute as it is
    (header length 4 + payload, padded to 4 bytes)."""
    body = b"".join(
        struct.pack("<HH", 4 + len(data), t) + data + bytes(-len(data) % 4) for t, data in attrs
    )
    head = struct.pack(
        "<IHHIIBBH", 20 + len(body), family, NLM_F_REQUEST | NLM_F_ACK, seq, 0, cmd, version, 0
    )
    return head + body


class Answer:
    """One message of a datagram as :func:`parse_answers` gives it: the part of
    pyroute2's message that :meth:`Genl.answers` and :func:`_decode` read (``["header"]``
    with ``type``, ``flags``, ``sequence_number`` and ``error``; ``["attrs"]`` as (name,
    value); ``get_attr``)."""

    __slots__ = ("header", "attrs")

    def __init__(self, header: dict[str, Any], attrs: list[tuple[str, Any]]) -> None:
        self.header = header
        self.attrs = attrs

    def __getitem__(self, key: str) -> Any:
        return {"header": self.header, "attrs": self.attrs}[key]

    def get_attr(self, name: str) -> Any:
        for n, v in self.attrs:
            if n == name:
                return v
        return None


_ATOMS = {"uint32": "<I", "int32": "<i", "uint64": "<Q", "int64": "<q"}
_ATTRS = {i: (name, _ATOMS.get(kind, kind)) for i, (name, kind) in enumerate(wqlabmsg.nla_map)}


def _answer_attrs(data: bytes, pos: int, end: int) -> list[tuple[str, Any]]:
    """The attributes of a family message, decoded as pyroute2 decodes ``wqlabmsg``'s."""
    out: list[tuple[str, Any]] = []
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("<HH", data, pos)
        alen = min(max(alen, 4), end - pos)
        name, kind = _ATTRS.get(atype & _NLA_TYPE_MASK, ("UNKNOWN", "cdata"))
        value: Any
        if kind == "none":
            value = None
        elif kind in ("asciiz", "cdata"):
            value = data[pos + 4 : pos + alen]
            if kind == "asciiz":
                value = value.strip(b"\0")
                try:
                    value = value.decode()
                except UnicodeDecodeError:
                    pass
        else:
            try:
                value = struct.unpack_from(kind, data, pos + 4)[0]
            except struct.error:
                break
        out.append((name, value))
        pos += (alen + 3) & ~3
    return out


def _extack_text(data: bytes, off: int, length: int, flags: int) -> str | None:
    """NLMSGERR_ATTR_MSG of an error message at ``off`` (None without one): its TLVs
    follow the request it answers (whole, or its header only with NLM_F_CAPPED)."""
    if not flags & NLM_F_ACK_TLVS or length < 36:
        return None
    pos, end = off + 20, off + length
    orig = 16 if flags & NLM_F_CAPPED else struct.unpack_from("<I", data, pos)[0]
    pos += (orig + 3) & ~3
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("<HH", data, pos)
        if alen < 4 or pos + alen > end:
            break
        if atype & _NLA_TYPE_MASK == NLMSGERR_ATTR_MSG:
            text = data[pos + 4 : pos + alen].strip(b"\0")
            return text.decode(errors="replace")
        pos += (alen + 3) & ~3
    return None


def parse_answers(data: bytes, family: int) -> list[Answer]:
    """The messages of one datagram, as :meth:`Genl.answers` reads pyroute2's parse of it
    (pure): an error message (NLMSG_ERROR, or NLMSG_DONE with NLM_F_ACK_TLVS) with a
    nonzero errno carries ``OSError(errno, extack text)`` in ``header["error"]``, as
    :func:`_failed` makes of pyroute2's NetlinkError; the family's messages carry their
    attributes; the others only their header."""
    out: list[Answer] = []
    off, end = 0, len(data)
    while off + 16 <= end:
        length, kind, flags, seq = struct.unpack_from("<IHHI", data, off)
        if length < 16 or off + length > end:
            break
        header: dict[str, Any] = {
            "length": length,
            "type": kind,
            "flags": flags,
            "sequence_number": seq,
            "error": None,
        }
        attrs: list[tuple[str, Any]] = []
        if kind == NLMSG_ERROR or (kind == NLMSG_DONE and flags & NLM_F_ACK_TLVS):
            err = struct.unpack_from("<i", data, off + 16)[0] if length >= 20 else 0
            if err:
                code = abs(err)
                text = _extack_text(data, off, length, flags)
                header["error"] = OSError(
                    code, text if code == errno.ENOBUFS else text or os.strerror(code)
                )
        elif kind == family and length >= 20:
            attrs = _answer_attrs(data, off + 20, off + length)
        out.append(Answer(header, attrs))
        off += (length + 3) & ~3
    return out


_FORMATS = {"u32": "<I", "s32": "<i", "u64": "<Q", "s64": "<q"}
_FIELDS = {int(a): (a.name.lower(), _FORMATS.get(uapi.ATTR_TYPES[a])) for a in uapi.Attr}
_EVENTS = {int(e): e.name.lower() for e in uapi.Event}
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


def decode_events(data: bytes, family: int) -> list[dict[str, Any]]:
    """The events in one datagram, as ``decode_event(_decode(msg))`` gives them (pure).

    The listener's hot path: pyroute2's generic parser takes about 500 us a message here
    (70x this), which caps a listener in a TCG guest at a few hundred events a second.
    The event's attributes are all fixed-size numbers or strings (``uapi.ATTR_TYPES``);
    tests/unit/test_genl.py checks this against pyroute2's decoding of the same bytes."""
    out = []
    off, end_all = 0, len(data)
    while off + 20 <= end_all:  # nlmsghdr (16) + genlmsghdr (4)
        length, kind = struct.unpack_from("<IH", data, off)
        if length < 20 or off + length > end_all:
            break
        if kind == family:
            ev: dict[str, Any] = {}
            pos, end = off + 20, off + length
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("<HH", data, pos)
                if alen < 4 or pos + alen > end:
                    break
                name, fmt = _FIELDS.get(atype & _NLA_TYPE_MASK, ("pad", None))
                if name != "pad":
                    if fmt:
                        ev[name] = struct.unpack_from(fmt, data, pos + 4)[0]
                    else:
                        ev[name] = data[pos + 4 : pos + alen].split(b"\0", 1)[0].decode()
                pos += (alen + 3) & ~3
            ev["event"] = _EVENTS.get(ev.get("event", 0), ev.get("event"))
            out.append(ev)
        off += (length + 3) & ~3
    return out


def decode_event(fields: dict[str, Any]) -> dict[str, Any]:
    """An event's attributes with ``event`` as a name (``start``, ``wq_create``...)."""
    out = dict(fields)
    try:
        out["event"] = uapi.Event(fields["event"]).name.lower()
    except (KeyError, ValueError):
        pass
    return out


class Listener:
    """A socket subscribed to the ``events`` group. ``read()`` returns what came in; a
    listener that could not keep up sees ``overruns`` (ENOBUFS from the kernel) and gaps in
    ``event_seq``, and the module counts every lost event in ``drops``."""

    def __init__(self, rcvbuf: int = 4 << 20) -> None:
        self.nl = Genl()
        groups = self.nl.sock.mcast_groups
        if uapi.GENL_MCGRP_EVENTS not in groups:
            self.nl.close()
            raise OSError(errno.ENOENT, f"no multicast group 'events' in {sorted(groups)}")
        self.sock = socket.socket(fileno=os.dup(self.nl.sock.fileno()))
        try:  # root may exceed rmem_max
            self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        # an event this socket cannot take makes the module's send fail (ENOBUFS), so the
        # module counts it in ``drops``; without it, the kernel drops it silently there
        self.sock.setsockopt(SOL_NETLINK, NETLINK_BROADCAST_ERROR, 1)
        try:
            self.nl.sock.add_membership(uapi.GENL_MCGRP_EVENTS)
        except OSError:
            self.close()
            raise
        self.sock.setblocking(False)
        self.overruns = 0
        self.last_seq = 0
        self.gaps = 0

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
        self.nl.close()

    def count(self, timeout: float = 0.0) -> dict[str, int]:
        """Take in (decode) what came so far, as ``read()`` does, but keep only a summary:
        ``events``, ``ends``, ``first_ns``/``last_ns`` (kernel times), ``drops`` (the
        module's counter in the last event). For benchmarks: nothing crosses to the host."""
        out = {"events": 0, "ends": 0, "first_ns": 0, "last_ns": 0, "drops": 0}
        for ev in self.read(timeout):
            out["events"] += 1
            out["ends"] += ev.get("event") == "end"
            t = ev.get("time_ns", 0)
            out["first_ns"] = out["first_ns"] or t
            out["last_ns"] = max(out["last_ns"], t)
            out["drops"] = max(out["drops"], ev.get("drops", 0))
        return out

    def read(self, timeout: float = 0.0, limit: int = 100000) -> list[dict[str, Any]]:
        """Events received so far, waiting up to ``timeout`` for the first one."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(events) < limit:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if events or left <= 0:
                    break
                select.select([self.sock], [], [], left)
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            for ev in decode_events(data, self.nl.family):
                seq = ev.get("event_seq", 0)
                if self.last_seq and seq > self.last_seq + 1:
                    self.gaps += seq - self.last_seq - 1
                self.last_seq = max(self.last_seq, seq)
                events.append(ev)
        return events
