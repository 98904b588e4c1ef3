"""Where the tests run: ``--wqlab-target vm|ssh://user@host:port|serial:<line>``.

``vm`` (the default) boots the kernel in QEMU (:class:`wqlab.vm.Vm`). The others reach a
machine wqlab did not boot and run the same guest agent there; :class:`TargetHost` stands
in the Vm's place, so every fixture (``wqlab_guest``, ``wqlab``, ``wqlab_trace``...) works
unchanged:

* ``ssh://[user@]host[:port]`` through fabric (``pip install 'wqlab[ssh]'``); the key is
  ``$WQLAB_SSH_KEY``, else the user's own keys.
* ``serial:/dev/ttyUSB0`` (a board, at ``$WQLAB_SERIAL_BAUD``, 115200), ``serial:/dev/pts/N``
  (a QEMU ``-serial pty``), ``serial:unix:/path`` or ``serial:tcp:host:port`` (a QEMU
  socket, a console server), driven with pexpect (``pip install 'wqlab[serial]'``); the
  login is ``$WQLAB_SERIAL_USER`` (root) with ``$WQLAB_SERIAL_PASSWORD``. Kernel lines
  the console prints are watched for splats like a VM's console.

The module is built on this host against ``--wqlab-kernel``'s headers, which must be the
target's running kernel (checked: ``uname -r``), and copied to the target
(:meth:`TargetHost.guest_path`); with no console (SSH) the plugin's dmesg scan alone
catches splats.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SetupError, VmLostError
from .serial_target import upload_b64
from .vm import Vm, VmConfig, open_console_log

log = logging.getLogger(__name__)

UPLOAD_DIR = "/tmp/wqlab-upload"
UPLOAD_CHUNK = 48 * 1024  # base64 characters a request: well under a command line's limit


@dataclass(frozen=True)
class TargetSpec:
    """A parsed ``--wqlab-target`` (pure)."""

    kind: str  # "vm", "ssh" or "serial"
    host: str = ""
    port: int = 22
    user: str = "root"
    line: str = ""  # serial: /dev/ttyUSB0, unix:/path, tcp:host:port

    @property
    def label(self) -> str:
        if self.kind == "ssh":
            return f"ssh:{self.user}@{self.host}:{self.port}"
        return f"serial:{self.line}" if self.kind == "serial" else "vm"


_SSH = re.compile(
    r"^ssh://(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]]+\]|[^:/@]+)(?::(?P<port>\d+))?/?$"
)


def parse_target(text: str) -> TargetSpec:
    """``vm``, ``ssh://[user@]host[:port]`` or ``serial:<line>`` (pure)."""
    text = text.strip()
    if text in ("", "vm"):
        return TargetSpec("vm")
    if text.startswith("ssh://"):
        m = _SSH.match(text)
        if m is None:
            raise SetupError(f"--wqlab-target {text!r}: write ssh://user@host:port")
        host = m["host"].strip("[]")
        return TargetSpec("ssh", host=host, port=int(m["port"] or 22), user=m["user"] or "root")
    if text.startswith("serial:"):
        line = text[len("serial:") :]
        if line.startswith("tcp:"):
            if not re.fullmatch(r"tcp:[^:]*:\d+", line):
                raise SetupError(f"--wqlab-target {text!r}: write serial:tcp:host:port")
        elif line.startswith("unix:"):
            if len(line) <= len("unix:"):
                raise SetupError(f"--wqlab-target {text!r}: write serial:unix:/path/to/socket")
        elif not line.startswith("/"):
            raise SetupError(
                f"--wqlab-target {text!r}: write serial:/dev/ttyUSB0, serial:/dev/pts/N, "
                "serial:unix:/path or serial:tcp:host:port"
            )
        return TargetSpec("serial", line=line)
    raise SetupError(
        f"--wqlab-target {text!r}: one of vm, ssh://user@host:port, serial:/dev/... "
        "(serial:unix:/path, serial:tcp:host:port)"
    )


def make_target(spec: TargetSpec, env: dict[str, str] | None = None) -> Any:
    """The SshTarget or SerialTarget of ``spec``, not started; settings from ``env``."""
    env = dict(os.environ if env is None else env)
    if spec.kind == "ssh":
        from .ssh import SshTarget

        return SshTarget(
            spec.host, port=spec.port, user=spec.user, key_filename=env.get("WQLAB_SSH_KEY")
        )
    if spec.kind == "serial":
        from .serial_target import SerialTarget

        return SerialTarget(
            spec.line,
            user=env.get("WQLAB_SERIAL_USER", "root"),
            password=env.get("WQLAB_SERIAL_PASSWORD"),
            baud=int(env.get("WQLAB_SERIAL_BAUD", "115200")),
        )
    raise SetupError(f"{spec.label}: not a remote target")


class TargetHost(Vm):
    """A machine wqlab did not boot, in a :class:`Vm`'s place: the agent through an SSH or
    serial target, the serial console's kernel lines watched for splats like a VM's."""

    private_kernel = False  # somebody's machine: no kernel knob is touched

    def __init__(self, spec: TargetSpec, console_log: Path) -> None:
        super().__init__(VmConfig(image=Path(os.devnull)), console_log, name=spec.label)
        self.spec = spec
        self.target: Any = None
        self._uploads: dict[str, str] = {}  # sha256 of a local file -> its path there

    def start(self, boot_timeout: float = 240.0) -> TargetHost:
        t0 = time.monotonic()
        self.console_log, self._log = open_console_log(self.console_log)
        self._log.write(f"### {time.strftime('%F %T')} {self.spec.label}\n")
        self.target = make_target(self.spec)
        if self.spec.kind == "serial":
            self.target.console.on_line = self._add_console_line
        try:
            self.target.start(ready_timeout=boot_timeout)
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - t0
        log.info("%s: agent ready in %.1f s", self.name, self.boot_seconds)
        return self

    @property
    def alive(self) -> bool:
        ch = None if self.target is None else self.target.channel
        return ch is not None and ch.lost is None and not self.panicked

    def agent(self) -> Any:
        if not self.alive:
            raise VmLostError(f"{self.name}: the target's agent is gone; reconnect")
        return self.target.agent()

    def stop(self, timeout: float = 30.0) -> None:
        if self.target is not None:
            self.target.stop()
        if self._log and not self._log.closed:
            self._log.close()

    def kill(self) -> None:
        self.stop()

    def guest_path(self, local: Path) -> str:
        """Copy ``local`` to the target (once per content) and return its path there. A
        kernel module goes without its debug information (``objcopy --strip-debug``:
        the symbols stay), a tenth of the bytes over a serial line, and gzipped if the
        target has ``gzip`` (a quarter of those)."""
        data = local.read_bytes()
        if local.suffix == ".ko" and shutil.which("objcopy"):
            with tempfile.TemporaryDirectory() as d:
                out = Path(d) / local.name
                p = subprocess.run(
                    ["objcopy", "--strip-debug", str(local), str(out)], capture_output=True
                )
                if p.returncode == 0:
                    data = out.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha in self._uploads:
            return self._uploads[sha]
        remote = f"{UPLOAD_DIR}/{sha[:12]}/{local.name}"
        agent = self.agent()
        parent = shlex.quote(str(Path(remote).parent))
        got, sent = upload_b64(
            agent.succeed, data, remote, UPLOAD_CHUNK, lambda: 300, first=f"mkdir -p {parent} && "
        )
        if got != sha:
            raise SetupError(f"{self.name}: {local.name} arrived damaged at {remote}")
        log.info(
            "%s: copied %s (%d bytes, %d base64 characters sent) to %s",
            self.name,
            local.name,
            len(data),
            sent,
            remote,
        )
        self._uploads[sha] = remote
        return remote
