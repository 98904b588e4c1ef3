"""The serial-console target's pexpect driver against consoles made here (no VM): a
unix socket served by a fake getty that hands the line to a real ``sh``, a console that
never answers. The VM case (a getty on a booted guest's ttyS1) is
tests/vm/test_targets.py."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wqlab.errors import GuestCommandError
from wqlab.serial_target import SerialConsole, SerialTimeoutError


class FakeBoard:
    """A console on a unix socket: ``login:`` and ``Password:`` prompts (when ``user`` is
    set), then a ``sh`` on the line, as a getty and login would leave it."""

    def __init__(self, path: Path, user: str | None = None, password: str = "pw") -> None:
        self.path, self.user, self.password = path, user, password
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(1)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _readline(self, conn: socket.socket) -> str:
        buf = b""
        while not buf.endswith((b"\r", b"\n")):
            chunk = conn.recv(1)
            if not chunk:
                return ""
            buf += chunk
        return buf.decode().strip()

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        try:
            self._session(conn)
        except OSError:  # the client went away (a test of a failed login)
            conn.close()

    def _session(self, conn: socket.socket) -> None:
        if self.user is not None:
            while True:
                conn.sendall(b"\r\nbox login: ")
                name = self._readline(conn)
                if not name:
                    continue  # the newline that wakes the line
                conn.sendall(b"Password: ")
                if name == self.user and self._readline(conn) == self.password:
                    break
                conn.sendall(b"\r\nLogin incorrect\r\n")
        conn.sendall(b"Linux box 6.1.0 #1 SMP\r\n# ")
        self.procs.append(subprocess.Popen(["sh"], stdin=conn, stdout=conn, stderr=conn))
        conn.close()

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.srv.close()


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "console.sock"


def test_login_at_the_prompt_then_framed_commands_with_exit_status(sock: Path) -> None:
    board = FakeBoard(sock, user="wqlab", password="s3cret")
    con = SerialConsole(f"unix:{sock}", user="wqlab", password="s3cret").open(5)
    try:
        con.login(timeout=20)
        assert con.run("echo hello; echo two") == (0, "hello\ntwo\n")
        assert con.run("echo oops >&2; exit_code() { return 3; }; exit_code") == (3, "oops\n")
        with pytest.raises(GuestCommandError, match="rc=1"):
            con.succeed("false")
        # what the line prints outside a frame (a kernel message) is kept and watched
        con.run("(sleep 0.3; echo '[   12.500000] BUG: kernel NULL pointer dereference') &")
        time.sleep(1.0)
        assert con.run("echo after") == (0, "after\n")
        assert [s.kind for s in con.splats] == ["BUG"], con.lines
    finally:
        con.close()
        board.close()


def test_put_copies_a_binary_file_checked_by_sha256(sock: Path, tmp_path: Path) -> None:
    board = FakeBoard(sock)
    con = SerialConsole(f"unix:{sock}").open(5)
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(10000) + bytes(range(256)))
    dst = tmp_path / "copy.bin"
    try:
        con.login(timeout=20)
        con.put(src, str(dst))
        assert (
            hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
        )
    finally:
        con.close()
        board.close()


@pytest.mark.parametrize("has_gzip", [True, False])
def test_put_sends_gzip_when_the_target_can_unpack_it_else_the_bytes(
    sock: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, has_gzip: bool
) -> None:
    """A file that compresses (a module, the agent) crosses the line gzipped when the
    target has ``gzip``, as it is otherwise; either way it arrives exact."""
    board = FakeBoard(sock)
    con = SerialConsole(f"unix:{sock}").open(5)
    src = tmp_path / "text.py"
    src.write_bytes(b"".join(b"line %d of a compressible file\n" % i for i in range(2000)))
    dst = tmp_path / "copy.py"
    bin_dir = tmp_path / "bin"  # the target's tools: with gzip or without
    bin_dir.mkdir()
    for tool in ("base64", "sha256sum", "rm") + (("gzip",) if has_gzip else ()):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    try:
        con.login(timeout=20)
        con.succeed(f"PATH={bin_dir}; export PATH")
        with caplog.at_level(logging.INFO, logger="wqlab.serial_target"):
            con.put(src, str(dst))
        assert dst.read_bytes() == src.read_bytes()
        sent = len(base64.b64encode(src.read_bytes()))
        (msg,) = [r.getMessage() for r in caplog.records if "base64 characters" in r.getMessage()]
        n = int(msg.split(" bytes, ")[1].split()[0])
        assert (n < sent // 10) if has_gzip else (n == sent), msg
    finally:
        con.close()
        board.close()


def test_a_wrong_password_is_a_clear_error(sock: Path) -> None:
    board = FakeBoard(sock, user="wqlab", password="right")
    con = SerialConsole(f"unix:{sock}", user="wqlab", password="wrong").open(5)
    try:
        with pytest.raises(GuestCommandError, match="login incorrect for wqlab"):
            con.login(timeout=20)
    finally:
        con.close()
        board.close()


def test_a_console_that_does_not_answer_is_a_clear_error_at_the_deadline(sock: Path) -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock))
    srv.listen(1)  # accepts, never says a word
    con = SerialConsole(f"unix:{sock}").open(5)
    t0 = time.monotonic()
    try:
        with pytest.raises(SerialTimeoutError, match="the console does not answer"):
            con.login(timeout=3)
        assert time.monotonic() - t0 < 15
    finally:
        con.close()
        srv.close()


def test_a_hung_command_times_out(sock: Path) -> None:
    board = FakeBoard(sock)
    con = SerialConsole(f"unix:{sock}").open(5)
    try:
        con.login(timeout=20)
        with pytest.raises(SerialTimeoutError, match="no answer to 'sleep 30'"):
            con.run("sleep 30", timeout=1)
    finally:
        con.close()
        board.close()
