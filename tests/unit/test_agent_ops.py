"""The guest agent's module and kernel-log ops and their host side, without a VM: the
parameter string, the errno words, the ``/dev/kmsg`` record parser and dmesg format, the
system call arguments, and file batches."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from pathlib import Path
from typing import Any

import pytest
from test_tracefs import load_agent

from wqlab.client import insmod, module_params, rmmod
from wqlab.errors import GuestCommandError
from wqlab.kmsg import KmsgRecord, format_dmesg, parse_record


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({}, ""),
        ({"max_items": 3}, "max_items=3"),
        ({"a": 1, "b": "x,y"}, "a=1 b=x,y"),
        ({"flag": True, "off": False}, "flag=1 off=0"),
        ({"msg": "two words"}, 'msg="two words"'),
        ({"empty": ""}, "empty="),
    ],
)
def test_module_params_are_words_as_insmod_passes_them(params: dict[str, Any], text: str) -> None:
    assert module_params(params) == text


@pytest.mark.parametrize("params", [{"a b": 1}, {"x;y": 1}, {"q": 'say "hi"'}, {"n": "a\nb"}])
def test_module_params_refuse_what_the_kernel_would_misread(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        module_params(params)


class ErrAgent:
    """Fails every request with ``err``, as the channel raises an agent's OSError reply."""

    def __init__(self, err: int | None) -> None:
        self.err = err
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def request(self, op: str, timeout: float = 60.0, **kw: Any) -> Any:
        self.requests.append((op, kw))
        raise GuestCommandError("[Errno x] from the guest", self.err)


def test_insmod_errors_say_what_the_errno_means() -> None:
    agent = ErrAgent(errno.EEXIST)
    with pytest.raises(GuestCommandError, match=r"insmod /m/wqlab.ko max_items=2 failed: EEXIST"):
        insmod(agent, "/m/wqlab.ko", max_items=2)
    assert agent.requests == [("insmod", {"path": "/m/wqlab.ko", "params": "max_items=2"})]
    with pytest.raises(GuestCommandError, match="invalid module format") as e:
        insmod(ErrAgent(errno.ENOEXEC), "/m/wqlab.ko")
    assert e.value.errno == errno.ENOEXEC


def test_rmmod_errors_say_what_the_errno_means() -> None:
    with pytest.raises(GuestCommandError, match="rmmod wqlab failed: ENOENT: .*not loaded"):
        rmmod(ErrAgent(errno.ENOENT))
    with pytest.raises(GuestCommandError, match="EWOULDBLOCK|EAGAIN") as e:
        rmmod(ErrAgent(errno.EWOULDBLOCK), "othermod")
    assert e.value.errno == errno.EWOULDBLOCK and "in use" in str(e.value)
    with pytest.raises(GuestCommandError, match="from the guest"):  # not an errno: as is
        rmmod(ErrAgent(None))


RECORDS = [
    "6,1234,8685572,-;wqlab: loaded",
    "4,1235,12345678,-;WARNING: CPU: 1 PID: 5 at kernel/workqueue.c:1400 x\n"
    " SUBSYSTEM=cpu\n DEVICE=+cpu:1",
    "12,1236,100000000,-,caller=T7;a\\x5cb tab\\x09 \\xc3\\xa9\\x0asecond line",
    "6,1237,5,c;cont",
]


def test_kmsg_records_parse_into_their_fields() -> None:
    r = [parse_record(x) for x in RECORDS]
    assert r[0] == KmsgRecord(6, 1234, 8685572, "-", "wqlab: loaded")
    assert (r[0].level, r[0].facility) == (6, 0)
    assert r[1].message.startswith("WARNING: CPU: 1") and "SUBSYSTEM" not in r[1].message
    # escaped bytes: a backslash, a tab, UTF-8, a newline; fields past the flags ignored
    assert r[2].message == "a\\b tab\t \u00e9\nsecond line"
    assert (r[2].facility, r[2].level, r[2].flags) == (1, 4, "-")
    assert r[3].flags == "c"


@pytest.mark.parametrize("bad", ["no header", "6,1;short", ""])
def test_kmsg_parser_refuses_what_is_not_a_record(bad: str) -> None:
    with pytest.raises(ValueError, match="not a /dev/kmsg record"):
        parse_record(bad)


def test_kmsg_records_print_as_dmesg_does() -> None:
    text = format_dmesg(parse_record(x) for x in RECORDS)
    assert text.splitlines() == [
        "[    8.685572] wqlab: loaded",
        "[   12.345678] WARNING: CPU: 1 PID: 5 at kernel/workqueue.c:1400 x",
        "[  100.000000] a\\b tab\t \u00e9",
        "               second line",
        "[    0.000005] cont",
    ]
    assert format_dmesg([]) == ""


def test_agent_module_ops_pass_the_system_call_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = load_agent()
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(agent, "_module_syscall", lambda *a: calls.append(a))
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"\x7fELF")
    fds = len(os.listdir("/proc/self/fd"))
    assert agent.op_insmod({"path": str(ko), "params": "max_items=3"}) is None
    assert agent.op_rmmod({"name": "wqlab"}) is None
    assert calls[0][0] == 0 and calls[0][2:] == (b"max_items=3", 0)
    assert calls[1] == (1, b"wqlab", os.O_NONBLOCK)
    # the module file's fd and the one passed are closed; the in-memory copy stays, once
    assert len(os.listdir("/proc/self/fd")) == fds + 1
    for _ in range(3):
        agent.op_insmod({"path": str(ko), "params": ""})
    assert len(os.listdir("/proc/self/fd")) == fds + 1
    with pytest.raises(FileNotFoundError):
        agent.op_insmod({"path": str(tmp_path / "missing.ko")})


def test_agent_insmod_reads_a_module_file_once_while_it_stays_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel gets a read-only, sealed copy of the file's bytes (a file open for
    writing anywhere is refused by finit_module()); a changed file is read again; what
    is not a regular file goes to the kernel as it is."""
    agent = load_agent()
    passed: list[tuple[bytes, int, int, int]] = []

    def syscall(index: int, fd: int, *args: Any) -> None:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        data = os.pread(fd, 64, 0) if st.st_mode & 0o170000 == 0o100000 else b""
        passed.append((data, st.st_ino, flags, st.st_mode))

    monkeypatch.setattr(agent, "_module_syscall", syscall)
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"first build")
    agent.op_insmod({"path": str(ko)})
    agent.op_insmod({"path": str(ko)})
    (first, ino1, ro1, _), (again, ino2, _, _) = passed
    assert first == again == b"first build" and ino1 == ino2  # one copy, reused
    assert ro1 == os.O_RDONLY
    fd = agent._module_fd(str(ko))
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
    finally:
        os.close(fd)
    ko.write_bytes(b"a rebuild of another size")
    agent.op_insmod({"path": str(ko)})
    assert passed[-1][0] == b"a rebuild of another size" and passed[-1][1] != ino1
    agent.op_insmod({"path": str(tmp_path)})  # a directory: the kernel's EINVAL, as before
    assert passed[-1][3] & 0o170000 == 0o040000


class FailingLibc:
    """A libc whose syscall() fails with ``err``, as the C library reports it."""

    def __init__(self, err: int) -> None:
        self.err = err
        self.args: tuple[Any, ...] = ()

    def syscall(self, *args: Any) -> int:
        self.args = args
        ctypes.set_errno(self.err)
        return -1


def test_agent_module_syscall_failure_is_an_oserror_with_its_errno(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = load_agent()
    libc = FailingLibc(errno.EBUSY)
    monkeypatch.setattr(agent, "_libc", lambda: libc)
    if os.uname().machine not in agent.SYSCALLS:
        pytest.skip(f"no system call numbers for {os.uname().machine}")
    with pytest.raises(OSError) as e:
        agent.op_rmmod({"name": "wqlab"})
    assert e.value.errno == errno.EBUSY
    nr = libc.args[0].value
    assert nr == agent.SYSCALLS[os.uname().machine][1]  # delete_module
    assert agent.SYSCALLS["x86_64"] == (313, 176)  # finit_module, delete_module


def test_agent_batch_runs_file_steps_in_order_and_names_the_failing_one(tmp_path: Path) -> None:
    agent = load_agent()
    d = tmp_path / "inst"
    steps = [
        {
            "op": "mkdir",
            "path": str(d),
            "exist_ok": True,
            "then": [{"op": "write", "path": str(d / "setup"), "data": "0"}],
        },
        {
            "op": "mkdir",
            "path": str(d),
            "exist_ok": True,
            "then": [{"op": "write", "path": str(d / "again"), "data": "0"}],
        },
        {"op": "write", "path": str(d / "absent" / "enable"), "data": "1", "missing_ok": True},
        {"op": "write", "path": str(d / "f"), "data": "x"},
        {"op": "read", "path": str(d / "f")},
        {"op": "listdir", "path": str(d)},
        {"op": "exists", "path": str(d / "again")},
    ]
    assert agent.op_batch({"steps": steps}) == [True, False, None, 1, "x", ["f", "setup"], False]
    with pytest.raises(OSError, match=r"batch: rmdir .*inst: .*") as e:
        agent.op_batch({"steps": [{"op": "rmdir", "path": str(d)}]})
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(ValueError, match="cannot run in a batch"):
        agent.op_batch({"steps": [{"op": "sh", "cmd": "true"}]})
    with pytest.raises(FileExistsError):
        agent.op_mkdir({"path": str(d)})


def test_agent_reads_the_kernel_log_from_a_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the host's own /dev/kmsg (root only): a mark reads nothing, a read from 0 gives
    records in sequence order, a read from a mark only the newer ones."""
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
    except OSError as e:
        pytest.skip(f"/dev/kmsg not readable here: {e}")
    agent = load_agent()
    mark = agent.op_kmsg({"since": None})
    assert mark["records"] == [] and mark["next"] > 0
    after = agent.op_kmsg({"since": mark["next"]})
    assert all(parse_record(r).seq >= mark["next"] for r in after["records"])
    again = agent.op_kmsg({"since": 0})  # behind the descriptor: read from the oldest
    seqs = [parse_record(r).seq for r in again["records"]]
    assert seqs == sorted(seqs) and seqs and seqs[-1] + 1 == again["next"]


def test_kmsg_messages_read_as_dmesg_prints_them() -> None:
    """dmesg writes text, newlines and tabs as they are and every other byte that does not
    print as ``\\xNN`` (6.12's boot log has ``!= \\x7fELF`` lines, and tabs)."""
    raw = r"6,1,2,-;magic != \x7fELF\x09tab \x5c \xc3\xa9 \xff\x0anext"
    assert parse_record(raw).message == "magic != \\x7fELF\ttab \\ \u00e9 \\xff\nnext"


def test_agent_expedites_rcu_only_for_the_request_that_asks_and_puts_the_knob_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = load_agent()
    knob = tmp_path / "rcu_expedited"
    knob.write_text("0\n")
    monkeypatch.setattr(agent, "RCU_EXPEDITED", str(knob))
    seen: list[str] = []
    monkeypatch.setattr(agent, "_module_syscall", lambda *a: seen.append(knob.read_text()))
    agent.op_rmmod({"name": "wqlab"})
    agent.op_rmmod({"name": "wqlab", "expedite_rcu": True})
    assert seen == ["0\n", "1"] and knob.read_text() == "0"
    # nested or concurrent users: the knob goes back after the last one, even on failure
    with agent._ExpeditedRcu(True):
        with pytest.raises(OSError, match="batch: read"):
            agent.op_batch(
                {"steps": [{"op": "read", "path": str(tmp_path / "no")}], "expedite_rcu": True}
            )
        assert knob.read_text() == "1"
    assert knob.read_text() == "0"
    knob.write_text("1")  # expedited already (a boot parameter): left as it is
    agent.op_rmmod({"name": "wqlab", "expedite_rcu": True})
    assert knob.read_text() == "1"
    monkeypatch.setattr(agent, "RCU_EXPEDITED", str(tmp_path / "none"))  # no knob: no error
    agent.op_rmmod({"name": "wqlab", "expedite_rcu": True})
