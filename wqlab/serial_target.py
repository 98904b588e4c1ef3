"""A serial-console target driven with pexpect: a board's ``/dev/ttyUSB0``, or any QEMU's
``-serial`` pty or socket, with nothing but a getty or a shell on it.

    with SerialTarget("unix:/tmp/vm/ttyS1.sock", password="...") as t:
        t.console.run("uname -r")           # framed command: (exit status, output)
        t.agent().request("ping")           # the same guest agent as on a booted VM

Where (``spec``, the part after ``serial:`` in ``--wqlab-target``):
``/dev/ttyUSB0`` or a pty path (opened raw at ``baud``), ``unix:/path`` (a QEMU
``-serial unix:/path,server=on``), ``tcp:host:port`` (``-serial tcp::port,server=on``, a
ser2net or a console server).

How:
  * login: a newline wakes the line; a ``login:`` prompt gets the user name, ``Password:``
    the password, a shell prompt (``# ``/``$ ``) or a framed probe that answers means a
    shell is there already. ``Login incorrect`` and a console that shows nothing within
    the deadline are errors that say what to check.
  * framed commands: echo off, empty prompts, then each command between two markers that
    its echo cannot contain (``printf '%s%s' @@WQB tag``), the end marker carrying ``$?``:
    the output between them and the exit status. What the line prints outside a frame
    (kernel messages on a board's console) is kept apart and watched for splats; a
    message printed while a command runs lands in that command's output.
  * the guest agent: uploaded in base64 chunks (a canonical tty takes at most 4095
    bytes a line), gzipped first if the target has ``gzip``, checked by sha256, run
    with the line raw and silent (``stty raw -echo``); its JSON lines then share the
    line with whatever the kernel prints there, which the
    :class:`~wqlab.channel.AgentChannel` hands to the console watcher (splats).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import os
import re
import shlex
import socket
import termios
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .channel import REPLY_MARK, AgentChannel
from .errors import GuestCommandError, GuestTimeoutError, HarnessError, SetupError, VmBootError
from .resources import guest_agent
from .splat import Splat, splat_kind

log = logging.getLogger(__name__)

REMOTE_AGENT = "/tmp/wqlab_guest_agent.py"
LOGIN_RE = r"(?i)\blogin: ?$"
PASSWORD_RE = r"(?i)password: ?$"
INCORRECT_RE = r"(?i)login incorrect"
PROMPT_RE = r"[#$] $"  # "root@box:~# ": the space keeps "#1 SMP" in a banner out
AGENT_RE = re.escape(REPLY_MARK.decode())  # an agent a previous client left running
CHUNK = 3000  # base64 characters a line: below a canonical tty's 4095
BAUDS = {
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
    460800: termios.B460800,
    921600: termios.B921600,
}


class SerialTimeoutError(GuestTimeoutError):
    """The serial console did not answer in time."""


def _pexpect() -> Any:
    try:  # an extra: only serial-console users need pexpect
        import pexpect
        import pexpect.fdpexpect
    except ImportError as e:
        raise SetupError("the serial target needs pexpect: pip install 'wqlab[serial]'") from e
    return pexpect


def open_line(spec: str, baud: int = 115200, connect_timeout: float = 30.0) -> int:
    """A file descriptor on the console ``spec`` (``unix:``, ``tcp:`` or a tty path)."""
    deadline = time.monotonic() + connect_timeout
    if spec.startswith(("unix:", "tcp:")):
        kind, _, where = spec.partition(":")
        while True:
            try:
                if kind == "unix":
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(where)
                else:
                    host, _, port = where.rpartition(":")
                    s = socket.create_connection((host or "127.0.0.1", int(port)), timeout=5)
                    s.settimeout(None)
                return s.detach()
            except (OSError, ValueError) as e:
                if time.monotonic() > deadline:
                    raise VmBootError(f"cannot connect to the serial console {spec}: {e}") from e
                time.sleep(0.2)
    if baud not in BAUDS:
        raise SetupError(f"serial baud rate {baud} not supported: one of {sorted(BAUDS)}")
    try:
        fd = os.open(spec, os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        raise VmBootError(
            f"cannot open the serial console {spec}: {e.strerror} (is it the right device, "
            "and may this user open it: group dialout?)"
        ) from e
    if os.isatty(fd):
        attr = termios.tcgetattr(fd)
        # raw: no echo, no line editing, no CR/NL translation, 8N1, no modem control
        attr[0] = 0  # iflag
        attr[1] = 0  # oflag
        attr[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # cflag
        attr[3] = 0  # lflag
        attr[4] = attr[5] = BAUDS[baud]
        attr[6][termios.VMIN] = 1
        attr[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
    return fd


class SerialConsole:
    """A shell on a serial line, driven with pexpect: login, framed commands, upload."""

    def __init__(
        self,
        spec: str,
        user: str = "root",
        password: str | None = None,
        baud: int = 115200,
        name: str | None = None,
    ) -> None:
        self.spec, self.user, self.password, self.baud = spec, user, password, baud
        self.name = name or f"serial:{spec}"
        self.fd: int | None = None
        self.child: Any = None
        self.lines: list[str] = []  # what the line showed outside the frames
        self.splats: list[Splat] = []
        # who else watches those lines (a TargetHost's console): then it finds the splats
        self.on_line: Callable[[str], None] | None = None

    # connection ---------------------------------------------------------------------------
    def open(self, connect_timeout: float = 30.0) -> SerialConsole:
        pexpect = _pexpect()
        self.fd = open_line(self.spec, self.baud, connect_timeout)
        self.child = pexpect.fdpexpect.fdspawn(
            self.fd, timeout=30, encoding="utf-8", codec_errors="replace"
        )
        log.info("%s: connected", self.name)
        return self

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        self.child = None

    def _tail(self) -> str:
        before = (self.child.before or "") if self.child is not None else ""
        return before[-800:] if isinstance(before, str) else ""

    def login(self, timeout: float = 60.0) -> None:
        """Reach a shell: log in at a ``login:`` prompt, or find one logged in already.
        Then echo off and empty prompts, so that framed commands read cleanly."""
        pexpect = _pexpect()
        deadline = time.monotonic() + timeout
        sent_user = sent_password = False
        pattern = [LOGIN_RE, PASSWORD_RE, INCORRECT_RE, PROMPT_RE, AGENT_RE, pexpect.TIMEOUT]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SerialTimeoutError(
                    f"{self.name}: the console does not answer (no login prompt, no shell "
                    f"within {timeout:.0f} s): is a getty or a shell running on it, at "
                    f"{self.baud} baud? It showed: {self._tail()!r}"
                )
            self.child.send("\r")
            i = self.child.expect(pattern, timeout=min(5.0, left))
            if i == 0:  # login:
                log.info("%s: login prompt; logging in as %s", self.name, self.user)
                self.child.sendline(self.user)
                sent_user, sent_password = True, False
                j = self.child.expect(
                    [PASSWORD_RE, PROMPT_RE, INCORRECT_RE, pexpect.TIMEOUT],
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                if j == 0:
                    i = 1
                elif j == 1:
                    break
                elif j == 2:
                    i = 2
                else:
                    continue
            if i == 1:  # Password:
                if self.password is None:
                    raise SetupError(
                        f"{self.name}: the console asks for a password for {self.user}: give "
                        "one (ssh-style target: serial:... with --wqlab-serial-password or "
                        "WQLAB_SERIAL_PASSWORD)"
                    )
                if sent_password:
                    raise GuestCommandError(f"{self.name}: login as {self.user} failed twice")
                self.child.sendline(self.password)
                sent_password = True
                k = self.child.expect(
                    [PROMPT_RE, INCORRECT_RE, LOGIN_RE, pexpect.TIMEOUT],
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                if k == 0:
                    break
                if k in (1, 2):
                    i = 2
                else:
                    continue
            if i == 2:  # Login incorrect
                raise GuestCommandError(
                    f"{self.name}: login incorrect for {self.user} (user "
                    f"{'sent' if sent_user else 'not sent'}): check the user and password"
                )
            if i == 3:  # a shell prompt
                break
            if i == 4:  # a guest agent left running by a client that went away: end it
                log.info("%s: an agent is running on the console; asking it to exit", self.name)
                self.child.send('\n{"id":1,"op":"exit"}\n')
                time.sleep(1.0)
                continue
            if self._probe(timeout=min(5.0, max(1.0, deadline - time.monotonic()))):
                break  # a shell without a prompt we know (PS1 empty)
        self._setup_shell()

    def _probe(self, timeout: float) -> bool:
        # a newline first ends the line our wake-up "\r" began where nothing turns CR
        # into NL (a shell on a pty's master or a socket): "\rprintf" is no command
        self.child.send("\n")
        try:
            self.run("true", timeout=timeout, check=False, raw_errors=True)
            return True
        except SerialTimeoutError:
            return False

    def _setup_shell(self, timeout: float = 120.0) -> None:
        """Echo off, no prompts; done when a framed command answers (a login shell may
        take a while to read its profile under TCG: the probe is sent again)."""
        self.child.sendline("\nstty -echo -onlcr 2>/dev/null; PS1=; PS2=; export PS1 PS2")
        deadline = time.monotonic() + timeout
        while True:
            try:
                rc, _ = self.run("stty -echo -onlcr", timeout=10)
                break
            except SerialTimeoutError:
                if time.monotonic() > deadline:
                    raise
        if rc != 0:  # a shell on a line that is no tty (a socket): nothing to turn off
            log.info("%s: stty failed (rc=%d): not a tty line?", self.name, rc)
        log.info("%s: shell ready", self.name)

    # framed commands ----------------------------------------------------------------------
    def run(
        self, cmd: str, timeout: float = 60.0, check: bool = False, raw_errors: bool = False
    ) -> tuple[int, str]:
        """Run ``cmd`` in the console's shell; return ``(exit status, output)``.

        The output is what the command printed between the two markers, exactly (``\\r``
        removed): ``"hello\\n"`` for ``echo hello``. ``check``: a non-zero status raises
        :class:`GuestCommandError`."""
        pexpect = _pexpect()
        if any(len(line) > 3900 for line in cmd.splitlines()):
            raise SetupError(f"{self.name}: a command line longer than a tty takes (3900)")
        tag = uuid.uuid4().hex[:12]
        begin, end = f"@@WQB{tag}", f"@@WQE{tag}"
        line = f"printf '\\n%s%s\\n' @@WQB {tag}; {cmd}\nprintf '\\n%s%s:%s\\n' @@WQE {tag} $?"
        self.child.sendline(line)
        try:
            self.child.expect_exact(begin, timeout=timeout)
            self._keep(self.child.before)
            self.child.expect(re.escape(end) + r":(\d+)", timeout=timeout)
        except pexpect.TIMEOUT:
            raise SerialTimeoutError(
                f"{self.name}: no answer to {cmd!r} within {timeout:.0f} s (the console "
                f"showed {self._tail()!r}); a hung command or a console that stopped"
            ) from None
        except pexpect.EOF:
            raise VmBootError(f"{self.name}: the console closed during {cmd!r}") from None
        rc = int(self.child.match.group(1))
        out = self.child.before.replace("\r", "")
        out = out[1:] if out.startswith("\n") else out
        out = out[:-1] if out.endswith("\n") else out
        if check and rc != 0:
            raise GuestCommandError(f"{self.name}: command failed (rc={rc}): {cmd}\n{out}")
        return rc, out

    def succeed(self, cmd: str, timeout: float = 60.0) -> str:
        return self.run(cmd, timeout, check=True)[1]

    def _keep(self, text: str | None) -> None:
        """Lines the console printed outside the frames (kernel messages): kept, and
        watched for splats."""
        for ln in (text or "").replace("\r", "").splitlines():
            self.add_line(ln)

    def add_line(self, line: str) -> None:
        if not line.strip():
            return
        idx = len(self.lines)
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)
            return
        kind = splat_kind(line)
        if kind is not None:
            self.splats.append(Splat(line, idx, [line], kind))
            log.error("%s: kernel splat (%s): %s", self.name, kind, line)

    def put(self, local: Path, remote: str, timeout: float = 600.0) -> None:
        """Copy ``local`` to ``remote`` over the console (base64 lines), checked by sha256.
        Gzipped when the target has ``gzip`` (the agent: a third of the bytes, a
        module: a quarter): every byte crosses an emulated or real UART."""
        data = local.read_bytes()
        deadline = time.monotonic() + timeout
        got, sent = upload_b64(
            self.succeed, data, remote, CHUNK, lambda: max(5.0, deadline - time.monotonic())
        )
        if got != hashlib.sha256(data).hexdigest():
            raise GuestCommandError(f"{self.name}: {remote} arrived damaged ({got!r})")
        log.info(
            "%s: put %s (%d bytes, %d base64 characters sent) at %s",
            self.name,
            local.name,
            len(data),
            sent,
            remote,
        )


# a shell test that prints whether the target can unpack gzip (uploads: fewer bytes): a
# round trip, since a busybox may have the applet without -d
HAS_GZIP = (
    '{ [ "$(echo x | gzip -c 2>/dev/null | gzip -dc 2>/dev/null)" = x ] '
    "&& echo gzip || echo plain; }"
)


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzipped for an upload (no time stamp: the same bytes each time)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def upload_b64(
    succeed: Callable[..., str],
    data: bytes,
    remote: str,
    chunk: int,
    chunk_timeout: Callable[[], float],
    first: str = "",
) -> tuple[str, int]:
    """Write ``data`` to ``remote`` through shell commands only (``succeed(cmd,
    timeout=...)``: a serial console, a target's agent): base64 in ``printf`` lines of
    ``chunk`` characters, gzipped first when the target can unpack it. ``first``: a
    command to run before (``mkdir -p ... && ``). Returns the sha256 the target computed
    of what arrived (the caller compares it) and the base64 characters sent."""
    tmp, q = shlex.quote(remote + ".b64"), shlex.quote(remote)
    gz = succeed(f"{first}: > {tmp} && {HAS_GZIP}").strip() == "gzip"
    b64 = base64.b64encode(gzip_bytes(data) if gz else data).decode()
    for i in range(0, len(b64), chunk):
        succeed(f"printf %s {b64[i : i + chunk]} >> {tmp}", timeout=chunk_timeout())
    unpack = f"base64 -d {tmp} | gzip -dc > {q}" if gz else f"base64 -d {tmp} > {q}"
    got = succeed(f"{unpack} && rm -f {tmp} && sha256sum {q}").split()
    return (got[0] if got else ""), len(b64)


class SerialTarget:
    """The guest agent over a serial console. ``agent()`` returns the channel, like
    ``Vm.agent()``; ``console`` runs framed shell commands before the agent starts."""

    def __init__(
        self,
        spec: str,
        user: str = "root",
        password: str | None = None,
        baud: int = 115200,
        python: str = "/usr/bin/python3",
    ) -> None:
        self.spec = spec
        self.console = SerialConsole(spec, user, password, baud)
        self.python = python
        self.channel: AgentChannel | None = None
        self._files: list[IO[bytes]] = []

    @property
    def name(self) -> str:
        return self.console.name

    def start(self, ready_timeout: float = 120.0) -> SerialTarget:
        t0 = time.monotonic()
        self.console.open()
        try:
            self.console.login(timeout=ready_timeout)
            self.console.put(guest_agent(), REMOTE_AGENT)
            # no exec: when the agent exits the shell is back (stty sane), and stop()
            # logs out so that the getty prompts again for the next client
            # -I -S: the standard library only, no site scan (seconds under TCG)
            py = shlex.quote(self.python)
            cmd = f"stty raw -echo; {py} -I -S -u {REMOTE_AGENT}; stty sane"
            log.info("$ %s   # over %s", cmd, self.name)
            assert self.console.fd is not None
            # pexpect has read nothing past the last frame: from here the agent's
            # replies are read from the descriptor directly
            self.console.child.sendline(cmd)
            reader = os.fdopen(os.dup(self.console.fd), "rb")
            writer = os.fdopen(os.dup(self.console.fd), "wb")
            self._files = [reader, writer]
            self.channel = AgentChannel(reader, writer, on_other=self._other, name=self.name)
            left = ready_timeout - (time.monotonic() - t0)
            self.channel.wait_ready(time.monotonic() + max(60.0, left))
        except HarnessError:
            self.stop()
            raise
        except Exception as e:  # pexpect and the OS raise many kinds
            self.stop()
            raise VmBootError(f"{self.name}: the agent did not start: {e}") from e
        log.info("%s: agent ready in %.1f s", self.name, time.monotonic() - t0)
        return self

    def _other(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r\n")
        self.console.add_line(line)
        log.info("%s: %s", self.name, line)

    def agent(self) -> AgentChannel:
        if self.channel is None:
            raise SetupError(f"{self.name}: SerialTarget not started")
        return self.channel

    def stop(self) -> None:
        """Stop the agent, log out (the getty prompts again), close the line.

        The channel's reader thread ends with the line on a socket (shut down: it reads
        EOF); on a tty nothing wakes a blocked read, so that thread (a daemon) and its
        descriptor stay until the process exits."""
        if self.channel is not None:
            self.channel.close(timeout=10)
            try:  # back at the shell (stty sane): log out
                self._files[1].write(b"\nexit\n")
                self._files[1].flush()
            except (OSError, ValueError):
                pass
            self.channel = None
        if self.console.fd is not None and self.spec.startswith(("unix:", "tcp:")):
            try:
                with socket.socket(fileno=os.dup(self.console.fd)) as s:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._files:  # the reader: its thread reads EOF (socket) and lets it go
            self._files[1].close()
        self._files = []
        self.console.close()

    def __enter__(self) -> SerialTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


GUEST_GETTY = r"""
set -e
[ -c /dev/{tty} ] || {{ echo "no /dev/{tty} in the guest"; exit 1; }}
# a login for the serial target in the guest's throw-away /etc (an overlay): uid 0, the
# plain /bin/sh (a login bash reads the host's profile: a minute under TCG), home /tmp
if ! grep -q '^{user}:' /etc/passwd; then
  echo '{user}:x:0:0:wqlab serial target:/tmp:/bin/sh' >> /etc/passwd
  echo "{user}:$(openssl passwd -6 '{password}'):19000:0:99999:7:::" >> /etc/shadow
fi
# a getty on the line, started again after each logout (once: a mark in /run)
if [ ! -e /run/wqlab-getty-{tty} ]; then
  setsid -f sh -c 'while :; do setsid -w /sbin/agetty -L 115200 {tty} vt100; done' \
    </dev/null >/dev/null 2>&1
  touch /run/wqlab-getty-{tty}
fi
echo getty on {tty}
"""


def start_guest_getty(agent: AgentChannel, user: str, password: str, tty: str = "ttyS1") -> None:
    """A getty with a login ``user``/``password`` on the guest's ``tty`` (a harness VM
    booted with ``serial_socket``): the serial target's way in, as on a board."""
    agent.succeed(GUEST_GETTY.format(tty=tty, user=user, password=password), timeout=120)
