# SPDX-License-Identifier: GPL-2.0
"""The agent channel's framing: whole replies, torn replies, console text between them."""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import time

import pytest
from agentmod import load_agent

from wqlab.channel import REPLY_MARK, AgentChannel
from wqlab.errors import GuestCommandError


def channel() -> tuple[AgentChannel, int, list[bytes]]:
    r, w = os.pipe()
    other: list[bytes] = []
    ch = AgentChannel(os.fdopen(r, "rb"), io.BytesIO(), on_other=other.append, name="t")
    return ch, w, other


def test_replies_complete_their_requests_and_console_text_goes_aside() -> None:
    ch, w, other = channel()
    a, b = ch.submit("echo", data="a"), ch.submit("echo", data="b")
    os.write(w, b"[  1.0] some console line\n")
    os.write(w, b"noise " + REPLY_MARK + b'{"id":2,"ok":true,"value":"b"}\n')
    os.write(w, REPLY_MARK + b'{"id":1,"ok":true,"value":"a"}\n')
    assert (a.result(5), b.result(5)) == ("a", "b")
    assert other == [b"[  1.0] some console line\n", b"noise \n"]
    os.close(w)


def test_a_torn_reply_fails_its_request_and_the_next_reply_still_lands() -> None:
    ch, w, other = channel()
    big, small = ch.submit("read", path="/x"), ch.submit("write", path="/y", data="0")
    # what a partial write() of reply 1 followed by reply 2 looks like on the stream
    os.write(w, REPLY_MARK + b'{"id":1,"ok":true,"value":"# tracer: nop\\n  kwor')
    os.write(w, REPLY_MARK + b'{"id":2,"ok":true,"value":1}\n')
    assert small.result(5) == 1
    with pytest.raises(GuestCommandError, match="reply 1 arrived torn"):
        big.result(5)
    assert any(b"kwor" in o for o in other), other
    os.close(w)


def test_guest_agent_writes_a_reply_whole_even_when_write_takes_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = load_agent()
    out: list[bytes] = []
    calls = {"n": 0}

    def short_write(fd: int, data: bytes) -> int:
        assert fd == 1
        calls["n"] += 1
        if calls["n"] == 2:
            raise BlockingIOError  # a full port: the agent waits and tries again
        chunk = bytes(data[:1000])
        out.append(chunk)
        return len(chunk)

    monkeypatch.setattr(agent.os, "write", short_write)
    monkeypatch.setattr(agent.select, "select", lambda *a: ([], [1], []))
    value = "x" * 30_000
    agent._reply({"id": 7, "ok": True, "value": value})
    line = b"".join(out)
    assert line.startswith(REPLY_MARK) and line.endswith(b"\n")
    assert json.loads(line[len(REPLY_MARK) :]) == {"id": 7, "ok": True, "value": value}


def test_guest_agent_sh_past_its_limit_replies_etimedout(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = load_agent()
    replies: list[dict] = []
    monkeypatch.setattr(agent, "_reply", replies.append)
    agent._handle({"id": 3, "op": "sh", "cmd": "sleep 5", "limit": 0.2})
    assert len(replies) == 1
    r = replies[0]
    assert (r["id"], r["ok"], r["errno"]) == (3, False, errno.ETIMEDOUT)
    assert "timed out after 0.2 seconds" in r["error"]


class _Guest:
    """Answers read("/proc/mounts") and records shell commands."""

    def __init__(self, mounts: str) -> None:
        self.mounts, self.ran = mounts, []

    def read(self, path: str) -> str:
        assert path == "/proc/mounts"
        return self.mounts

    def succeed(self, cmd: str) -> str:
        self.ran.append(cmd)
        return ""


@pytest.mark.parametrize(
    ("mounts", "ran"),
    [
        ("proc /proc proc rw 0 0\ndebugfs /sys/kernel/debug debugfs rw,relatime 0 0\n", []),
        ("proc /proc proc rw 0 0\nnone /sys/kernel/debugx tmpfs rw 0 0\n", ["mount -t debugfs"]),
        ("", ["mount -t debugfs"]),
    ],
)
def test_ensure_debugfs_mounts_only_when_missing(mounts: str, ran: list[str]) -> None:
    from wqlab.client import ensure_debugfs

    g = _Guest(mounts)
    ensure_debugfs(g)  # type: ignore[arg-type]
    assert [c[:16] for c in g.ran] == ran


def test_guest_agent_py_runs_a_script_in_a_fork_with_what_the_agent_imported() -> None:
    agent = load_agent()
    import types

    sys.modules["wqlab_test_marker"] = types.ModuleType("wqlab_test_marker")  # the "import"
    try:
        script = (
            "import sys, os\n"
            "print('out', 'wqlab_test_marker' in sys.modules, os.getpid() != PARENT)\n"
            "print('err', file=sys.stderr)\n"
            "sys.exit(3)\n"
        ).replace("PARENT", str(os.getpid()))
        r = agent.op_py({"script": script})
        assert r == {"rc": 3, "stdout": "out True True\n", "stderr": "err\n"}
    finally:
        del sys.modules["wqlab_test_marker"]
    assert agent.op_py({"script": "pass"}) == {"rc": 0, "stdout": "", "stderr": ""}
    assert agent.op_py({"script": "import sys; sys.exit('why')"})["stderr"] == "why\n"
    r = agent.op_py({"script": "import os\nos.read(0, 1)\nraise ValueError('boom')"})
    assert r["rc"] == 1 and "ValueError: boom" in r["stderr"], r  # stdin: /dev/null, at EOF
    big = agent.op_py({"script": "import sys\nsys.stdout.write('x' * 300000)"})
    assert big["stdout"] == "x" * 300000  # more than a pipe holds: read while it runs


def test_guest_agent_py_past_its_limit_kills_the_script_and_replies_etimedout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = load_agent()
    replies: list[dict] = []
    monkeypatch.setattr(agent, "_reply", replies.append)
    t0 = time.monotonic()
    agent._handle({"id": 4, "op": "py", "script": "import time\ntime.sleep(30)", "limit": 0.3})
    assert time.monotonic() - t0 < 10
    (r,) = replies
    assert (r["id"], r["ok"], r["errno"]) == (4, False, errno.ETIMEDOUT), r
    assert "0.3 s" in r["error"]


class _ClosesItsFd:
    """Garbage with a finalizer that closes a descriptor, as an asyncio loop of pyroute2's
    left for the collector in the agent is."""

    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it
        self.fd = os.open(os.devnull, os.O_RDONLY)

    def __del__(self) -> None:
        os.close(self.fd)


def test_guest_agent_py_does_not_run_the_agents_finalizers_on_the_scripts_descriptors() -> None:
    import gc

    agent = load_agent()
    gc.disable()  # the garbage is still there at the fork
    try:
        _ClosesItsFd()
        script = (
            "import gc, os\n"
            "fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(200)]\n"
            "gc.collect()\n"
            "print(sum(1 for fd in fds if os.path.exists(f'/proc/self/fd/{fd}')))\n"
        )
        assert agent.op_py({"script": script}) == {"rc": 0, "stdout": "200\n", "stderr": ""}
    finally:
        gc.enable()
        gc.collect()
