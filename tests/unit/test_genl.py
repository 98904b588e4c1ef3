"""wqlab.genl's messages, without a kernel: pyroute2 encodes and decodes the family's
attributes with the wire types of the uapi header (the module's side is tested in
tests/vm/test_netlink.py)."""

from __future__ import annotations

import errno
import struct

import pytest

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
