"""wqlab.genl's messages, without a kernel: pyroute2 encodes and decodes the family's
attributes with the wire types of the uapi header (the module's side is tested in
tests/vm/test_netlink.py)."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_ACK_TLVS, NLMSG_ERROR, nlmsgerr

from wqlab import genl, uapi
from wqlab.cli import format_event


def test_arguments_become_their_attributes() -> None:
    attrs = genl.encode_args({"wq": "ord", "id": 3, "block": True, "flags": "unbound,highpri"})
    assert attrs == [
        ("WQLAB_A_WQ", "ord"),
        ("WQLAB_A_ID", 3),
        ("WQLAB_A_BLOCK", 1),
        ("WQLAB_A_FLAGS", int(uapi.WqFlag.UNBOUND | uapi.WqFlag.HIGHPRI)),
    ]


def test_numbers_typed_as_text_become_numbers() -> None:
    assert genl.encode_args({"id": "2", "cpu": "-1", "delay_ms": "0x10", "wq": "7"}) == [
        ("WQLAB_A_ID", 2),
        ("WQLAB_A_CPU", -1),
        ("WQLAB_A_DELAY_MS", 16),
        ("WQLAB_A_WQ", "7"),
    ]


def test_unknown_argument_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="bogus"):
        genl.encode_args({"bogus": 1})


def _round_trip(attrs: list[tuple[str, object]]) -> dict[str, object]:
    msg = genl.wqlabmsg()
    msg["cmd"] = uapi.COMMAND_NRS["queue_work"]
    msg["version"] = uapi.GENL_VERSION
    msg["attrs"] = attrs
    msg.encode()
    back = genl.wqlabmsg(msg.data)
    back.decode()
    assert back["cmd"] == uapi.COMMAND_NRS["queue_work"]
    assert back["version"] == uapi.GENL_VERSION
    return genl._decode(back)


def test_message_round_trip_keeps_types() -> None:
    got = _round_trip(
        [("WQLAB_A_RET", -5), ("WQLAB_A_CPU", -1), ("WQLAB_A_SEQ", 1 << 40), ("WQLAB_A_WQ", "x")]
    )
    assert got == {"ret": -5, "cpu": -1, "seq": 1 << 40, "wq": "x"}


def test_attributes_have_the_header_sizes_on_the_wire() -> None:
    msg = genl.wqlabmsg()
    msg["cmd"] = 1
    msg["version"] = 1
    msg["attrs"] = [("WQLAB_A_ID", 7), ("WQLAB_A_RET", 1)]
    msg.encode()
    # nlmsghdr 16 + genlmsghdr 4, then nlattr len/type
    off = 20
    length, kind = struct.unpack_from("HH", msg.data, off)
    assert (length, kind) == (8, uapi.Attr.ID)  # u32
    off += 8
    length, kind = struct.unpack_from("HH", msg.data, off)
    assert (length, kind) == (12, uapi.Attr.RET)  # s64


def test_event_gets_its_name() -> None:
    assert genl.decode_event({"event": 1, "id": 2})["event"] == "start"
    assert genl.decode_event({"event": 99})["event"] == 99


def test_event_line_says_what_ran_where() -> None:
    ev = {"event": "end", "id": 2, "seq": 4, "cpu": 1, "pid": 17, "wq": "system", "time_ns": 2_500}
    assert format_event(ev, 500) == "    0.000002 end        id=2 seq=4 cpu=1 pid=17 wq=system"
    wq = {"event": "wq_create", "name": "ord", "how": "alloc_ordered_workqueue", "flags": 0}
    assert "name=ord how=alloc_ordered_workqueue" in format_event({**wq, "time_ns": 0}, 0)


def test_a_value_its_attribute_cannot_carry_is_einval_before_sending() -> None:
    for args in ({"id": 1 << 40}, {"id": "x"}, {"bogus": 1}, {"flags": "nosuch"}):
        with pytest.raises(OSError) as e:
            genl.Genl._encodable("schedule_work", args)
        assert e.value.errno == errno.EINVAL, args
    assert genl.Genl._encodable("q", {"cpu": -1}) == [("WQLAB_A_CPU", -1)]


def _event_bytes(attrs: list[tuple[str, object]], family: int = 30) -> bytes:
    msg = genl.wqlabmsg()
    msg["header"]["type"] = family
    msg["cmd"] = uapi.GENL_CMD_EVENT
    msg["version"] = uapi.GENL_VERSION
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


@pytest.mark.parametrize(
    "attrs",
    [
        [("WQLAB_A_EVENT", 1), ("WQLAB_A_EVENT_SEQ", 5), ("WQLAB_A_DROPS", 0),
         ("WQLAB_A_ID", 2), ("WQLAB_A_SEQ", 3), ("WQLAB_A_CPU", 1), ("WQLAB_A_PID", 17),
         ("WQLAB_A_TIME_NS", 123456789012), ("WQLAB_A_WQ", "system_unbound")],
        [("WQLAB_A_EVENT", 4), ("WQLAB_A_EVENT_SEQ", 1 << 40), ("WQLAB_A_DROPS", 7),
         ("WQLAB_A_NAME", "evq"), ("WQLAB_A_HOW", "alloc_ordered_workqueue"),
         ("WQLAB_A_FLAGS", 3), ("WQLAB_A_TIME_NS", 1), ("WQLAB_A_PAD", None)],
        [("WQLAB_A_EVENT", 9), ("WQLAB_A_CPU", -1), ("WQLAB_A_RET", -22)],
    ],
)  # fmt: skip
def test_fast_event_decoder_agrees_with_pyroute2(attrs: list[tuple[str, object]]) -> None:
    data = _event_bytes(attrs)
    msg = genl.wqlabmsg(data)
    msg.decode()
    want = genl.decode_event(genl._decode(msg))
    assert genl.decode_events(data, 30) == [want]
    # two messages in one buffer, one of another family, and a torn tail
    other = _event_bytes(attrs, family=31)
    assert genl.decode_events(data + other + data[:30], 30) == [want]


# a command's answers: read by Genl.answers() (the module's side: tests/vm/test_netlink.py)

FAMILY = 0x1C


class _Sock:
    """What Genl.answers() uses of pyroute2's socket: its marshal."""

    def __init__(self) -> None:
        from pyroute2.netlink.nlsocket import Marshal

        self.marshal = Marshal()
        self.marshal.msg_map[FAMILY] = genl.wqlabmsg


def _client() -> tuple[genl.Genl, socket.socket]:
    """A Genl whose command socket is one end of a datagram pair; the other end is the
    kernel."""
    nl = object.__new__(genl.Genl)
    nl.cmd_sock, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    nl.sock = _Sock()
    nl.family = FAMILY
    nl.seq = genl._SEQ_BASE
    nl.in_flight = lambda: 1  # the module: one command waits (no guest file read)
    nl.lost_poll_s = 0.05
    nl.overruns = 0
    return nl, kernel


def _reply(seq: int, **attrs: int) -> bytes:
    m = genl.wqlabmsg()
    m["header"]["type"] = FAMILY
    m["header"]["sequence_number"] = seq
    m["cmd"] = uapi.COMMAND_NRS["flush_work"]
    m["version"] = uapi.GENL_VERSION
    m["attrs"] = [(f"WQLAB_A_{k.upper()}", v) for k, v in attrs.items()]
    m.encode()
    return bytes(m.data)


def _ack(seq: int, error: int = 0, text: str = "") -> bytes:
    m = nlmsgerr()
    m["header"]["type"] = NLMSG_ERROR
    m["header"]["sequence_number"] = seq
    m["header"]["flags"] = NLM_F_ACK_TLVS if text else 0
    m["error"] = error
    m["attrs"] = [("NLMSGERR_ATTR_MSG", text)] if text else []
    m.encode()
    return bytes(m.data)


def test_a_deferred_command_is_read_up_to_its_last_message() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    for data in (_reply(seq, deferred=1), _ack(seq), _reply(seq - 5, ret=7), _reply(seq, ret=1)):
        kernel.send(data)  # an answer to an older request, given up on, is skipped
    replies = nl.answers(seq, timeout=5)
    assert [genl._decode(m) for m in replies] == [{"deferred": 1}, {"ret": 1}]
    assert genl._result("flush_work", replies[-1]) == {"ret": 1}


def test_an_immediate_answer_ends_at_the_ack() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    kernel.send(_reply(seq, ret=0))
    kernel.send(_ack(seq))
    kernel.send(_reply(seq, ret=9))  # nothing is read past the ack
    assert [genl._decode(m) for m in nl.answers(seq, timeout=5)] == [{"ret": 0}]


def test_deferred_without_its_last_message_times_out_and_last_false_stops_at_the_ack() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    kernel.send(_reply(seq, deferred=1) + _ack(seq))  # one datagram, two messages
    with pytest.raises(OSError) as e:
        nl.answers(seq, timeout=0.2)
    assert e.value.errno == errno.ETIMEDOUT
    kernel.send(_reply(seq, deferred=1) + _ack(seq))
    assert [genl._decode(m) for m in nl.answers(seq, 5, last=False)] == [{"deferred": 1}]


def test_an_errno_ack_raises_with_its_extack_text() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    kernel.send(_ack(seq, -errno.EAGAIN, "wqlab: too many netlink commands waiting"))
    with pytest.raises(OSError) as e:
        nl.answers(seq, timeout=5)
    assert e.value.errno == errno.EAGAIN and "too many" in str(e.value)


def test_a_last_message_with_errno_is_an_error() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    kernel.send(_reply(seq, deferred=1) + _ack(seq) + _reply(seq, errno=errno.ENOMEM))
    replies = nl.answers(seq, timeout=5)
    with pytest.raises(OSError) as e:
        genl._result("flush_work", replies[-1])
    assert e.value.errno == errno.ENOMEM and "after it was accepted" in str(e.value)


# a lost answer: no deadline of the caller's, the wait ends all the same


def _answers_within(nl: genl.Genl, seq: int, seconds: float = 10.0) -> Callable[[], Any]:
    """Run ``nl.answers(seq)`` (no timeout) in a thread; a wait still going after
    ``seconds`` fails the test instead of hanging it. Returns a call that gives the
    replies or raises what answers() raised."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["replies"] = nl.answers(seq)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"answers() without a timeout still waits after {seconds} s"

    def result() -> Any:
        if "error" in out:
            raise out["error"]  # type: ignore[misc]
        return out["replies"]

    return result


def test_a_dropped_result_is_enobufs_once_the_module_has_no_command_waiting() -> None:
    nl, kernel = _client()
    counts = iter([2, 1, 0])  # another command waits too; then neither does
    nl.in_flight = lambda: next(counts)
    seq = nl.seq + 1
    kernel.send(_reply(seq, deferred=1) + _ack(seq))  # the last message never comes
    with pytest.raises(OSError) as e:
        _answers_within(nl, seq)()
    assert e.value.errno == errno.ENOBUFS
    assert "nl_deferred=0" in str(e.value) and "nl_replies_lost" in str(e.value)


def test_a_result_queued_as_the_count_drops_is_read_not_called_lost() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1

    def answered() -> int:  # the worker queues the result, then drops the count
        kernel.send(_reply(seq, ret=1))
        return 0

    nl.in_flight = answered
    kernel.send(_reply(seq, deferred=1) + _ack(seq))
    replies = _answers_within(nl, seq)()
    assert [genl._decode(m) for m in replies] == [{"deferred": 1}, {"ret": 1}]


def test_a_long_wait_goes_on_while_the_module_says_a_command_waits() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    asked: list[int] = []

    def waiting() -> int:  # the result comes after the fourth look
        asked.append(1)
        if len(asked) == 4:
            kernel.send(_reply(seq, ret=1))
        return 1

    nl.in_flight = waiting
    kernel.send(_reply(seq, deferred=1) + _ack(seq))
    replies = _answers_within(nl, seq)()
    assert len(asked) == 4 and genl._result("flush_work", replies[-1]) == {"ret": 1}


def test_a_missing_ack_is_enobufs_without_a_timeout() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    kernel.send(_reply(seq, deferred=1))  # the doit queued the ack before send() returned
    with pytest.raises(OSError) as e:
        _answers_within(nl, seq)()
    assert e.value.errno == errno.ENOBUFS and "no ack" in str(e.value)


def test_without_the_stats_file_a_deferred_result_waits_block_max_ms_and_a_margin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nl, kernel = _client()
    nl.in_flight = lambda: genl.deferred_in_flight(str(tmp_path / "absent"))
    monkeypatch.setattr(genl, "block_max_s", lambda: 0.1)
    monkeypatch.setattr(genl, "LOST_MARGIN_S", 0.2)
    seq = nl.seq + 1
    kernel.send(_reply(seq, deferred=1) + _ack(seq))
    with pytest.raises(OSError) as e:
        _answers_within(nl, seq)()
    assert e.value.errno == errno.ETIMEDOUT and "block_max_ms" in str(e.value)


def test_the_stats_file_and_the_parameter_are_read(tmp_path: Path) -> None:
    stats = tmp_path / "stats"
    stats.write_text("cmds_ok=3\nnl_deferred=2\nnl_replies_lost=0\n")
    assert genl.deferred_in_flight(str(stats)) == 2
    assert genl.deferred_in_flight(str(tmp_path / "absent")) is None
    param = tmp_path / "block_max_ms"
    param.write_text("2500\n")
    assert genl.block_max_s(str(param)) == 2.5


def test_sockets_start_their_sequence_numbers_apart() -> None:
    # a socket that gets the port of one closed with a command waiting must not take that
    # command's last message for its own answer: not the same first number every time
    firsts = {genl.first_seq() for _ in range(8)}
    assert len(firsts) > 1
    assert all(genl._SEQ_BASE <= s < 0xFFFFFFFF - (1 << 20) for s in firsts)


# the fuzzer's raw sender (Genl.raw): its own encoder and answer parser, checked against
# pyroute2's on the same bytes

RAW_ATTRS = [
    [],
    [(2, b"q3\0"), (1, struct.pack("<I", 11)), (7, struct.pack("<I", 3))],
    [(1, b""), (4, b"\x01"), (5, b"abc"), (39, bytes(5)), (0, b"zz\0")],
    [(int(uapi.Attr.FLAGS), struct.pack("<I", 1 << 31)), (3, b"x" * 47 + b"\0")],
]


@pytest.mark.parametrize("attrs", RAW_ATTRS)
def test_raw_requests_are_the_bytes_pyroute2_sends(attrs: list[tuple[int, bytes]]) -> None:
    for cmd, version in ((uapi.COMMAND_NRS["queue_work"], uapi.GENL_VERSION), (0xEE, 0)):
        msg = genl.wqlabrawmsg()
        msg["cmd"] = cmd
        msg["version"] = version
        msg["attrs"] = [(genl.wqlabrawmsg.nla_map[t][0], data) for t, data in attrs]
        msg["header"]["type"] = FAMILY
        msg["header"]["flags"] = genl.NLM_F_REQUEST | genl.NLM_F_ACK
        msg["header"]["sequence_number"] = genl._SEQ_BASE + 7
        msg["header"]["pid"] = 0
        msg.encode()
        want = bytes(msg.data)
        assert genl.encode_raw(FAMILY, genl._SEQ_BASE + 7, cmd, version, attrs) == want


def _kernel_error(seq: int, error: int, request: bytes, text: str | None) -> bytes:
    """An error message as the kernel sends it to an extended-ack socket: nlmsgerr (the
    errno, then the request whole), then NLMSGERR_ATTR_MSG when there is a text."""
    body = struct.pack("<i", error) + request
    flags = 0
    if text is not None:
        raw = text.encode() + b"\0"
        body += struct.pack("<HH", 4 + len(raw), genl.NLMSGERR_ATTR_MSG) + raw
        body += bytes(-len(raw) % 4)
        flags = NLM_F_ACK_TLVS
    return struct.pack("<IHHII", 16 + len(body), NLMSG_ERROR, flags, seq, 1234) + body


def _pyroute2_view(data: bytes) -> list[tuple[int, int, Any, tuple[int, str] | None]]:
    from pyroute2.netlink.nlsocket import Marshal

    m = Marshal()
    m.msg_map[FAMILY] = genl.wqlabmsg
    return [_view(x) for x in m.parse(data)]


def _view(m: Any) -> tuple[int, int, Any, tuple[int, str] | None]:
    """What Genl.answers() and raw() read of a message."""
    err = m["header"].get("error")
    failed = genl._failed(err) if err is not None else None
    return (
        m["header"]["type"],
        m["header"]["sequence_number"],
        genl._decode(m) if m["header"]["type"] == FAMILY else None,
        (failed.errno, str(failed)) if failed is not None else None,
    )


def test_raw_answers_parse_as_pyroute2_parses_them() -> None:
    seq = genl._SEQ_BASE + 3
    request = genl.encode_raw(FAMILY, seq, 0x34, 0, RAW_ATTRS[1])
    reply = _reply(seq, ret=1, id=5, deferred=0)
    strings = genl.wqlabmsg()
    strings["header"]["type"] = FAMILY
    strings["header"]["sequence_number"] = seq
    strings["cmd"] = uapi.COMMAND_NRS["work_busy"]
    strings["attrs"] = [
        ("WQLAB_A_WQ", "system_unbound"),
        ("WQLAB_A_CPU", -1),
        ("WQLAB_A_PAD", None),
    ]
    strings.encode()
    datagrams = [
        reply + _kernel_error(seq, 0, request[:16], None),  # the ack: the request's header only
        _kernel_error(seq, -errno.EPROTO, request, None),  # the kernel's: no text
        _kernel_error(seq, -errno.EINVAL, request, "wqlab: unknown queue"),
        _kernel_error(seq, -errno.ERANGE, request, "integer out of range"),
        _kernel_error(seq - 1, -errno.ENOENT, request, ""),  # another request's, empty text
        bytes(strings.data) + _reply(seq + 1, errno=errno.ENOMEM),
    ]
    for data in datagrams:
        want = _pyroute2_view(data)
        assert [_view(m) for m in genl.parse_answers(data, FAMILY)] == want
        assert want  # every datagram has a message


def test_raw_sends_its_request_and_returns_the_answer() -> None:
    nl, kernel = _client()
    seq = nl.seq + 1
    kernel.send(_reply(seq, deferred=1) + _kernel_error(seq, 0, b"", None))
    kernel.send(_reply(seq, ret=1))  # the deferred command's last message
    assert nl.raw(0x34, RAW_ATTRS[1], 1) == {"ret": 1}
    assert kernel.recv(4096) == genl.encode_raw(FAMILY, seq, 0x34, 1, RAW_ATTRS[1])
    request = genl.encode_raw(FAMILY, seq + 1, 0x34, 0, RAW_ATTRS[1])
    kernel.send(_kernel_error(seq + 1, -errno.EPROTO, request, "wqlab: bad version"))
    with pytest.raises(OSError) as e:
        nl.raw(0x34, RAW_ATTRS[1], 0)
    assert e.value.errno == errno.EPROTO and e.value.strerror == "wqlab: bad version"
    with pytest.raises(IndexError):  # a type pyroute2's message has no name for
        nl.raw(0x34, [(40, b"")], 1)
