"""An SSH target (fabric): the same guest agent, reached over SSH on a machine the
harness did not boot (a lab box, a ``vng --ssh`` VM), or on a harness VM with
``--ssh`` port forwarding.

    with SshTarget("127.0.0.1", port=2222, key_filename="id_ed25519") as t:
        t.agent().request("ping")             # same AgentChannel as a booted VM

The agent script is uploaded to ``/tmp`` and started with the target's ``python3``.
There is no console to watch on such a machine: the pytest plugin's dmesg scan still
catches splats.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path
from typing import Any

from .channel import AgentChannel
from .errors import SetupError, VmBootError
from .resources import guest_agent

log = logging.getLogger(__name__)

REMOTE_AGENT = "/tmp/wqlab_guest_agent.py"


class SshTarget:
    """A guest agent over SSH. ``agent()`` returns the channel, like ``Vm.agent()``."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str = "root",
        key_filename: str | None = None,
        python: str = "/usr/bin/python3",
        connect_timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.user = host, port, user
        self.key_filename = key_filename
        self.python = python
        self.connect_timeout = connect_timeout
        self.conn: Any = None
        self.chan: Any = None
        self.channel: AgentChannel | None = None
        self.files: tuple[Any, ...] = ()  # the channel's stdin and stdout files

    def start(self, ready_timeout: float = 60.0) -> SshTarget:
        import time

        try:  # an extra: only SSH users need fabric
            from fabric import Connection
        except ImportError as e:
            raise SetupError("the SSH target needs fabric: pip install 'wqlab[ssh]'") from e

        kw: dict[str, Any] = {
            "look_for_keys": self.key_filename is None,
            "allow_agent": False,
            "banner_timeout": self.connect_timeout,
        }
        if self.key_filename:
            kw["key_filename"] = self.key_filename
        self.conn = Connection(
            self.host,
            user=self.user,
            port=self.port,
            connect_timeout=self.connect_timeout,
            connect_kwargs=kw,
        )
        log.info("$ ssh -p %d %s@%s", self.port, self.user, self.host)
        deadline = time.monotonic() + ready_timeout
        while True:  # a fresh sshd under TCG may reset the first connections
            try:
                self.conn.open()
                break
            except Exception as e:  # paramiko raises many kinds
                if type(e).__name__ == "AuthenticationException" or time.monotonic() > deadline:
                    raise VmBootError(
                        f"cannot ssh to {self.user}@{self.host}:{self.port}: {e}"
                    ) from e
                log.info("ssh not ready yet (%s); retrying", e)
                self.conn.close()
                time.sleep(1)
        self.conn.put(str(guest_agent()), REMOTE_AGENT)
        transport = self.conn.client.get_transport()
        self.chan = transport.open_session()
        self.chan.set_combine_stderr(True)  # the agent's errors show up in the log
        # -I -S as at the boot and on the serial line: no site, no PYTHON* variables
        cmd = f"exec {shlex.quote(self.python)} -I -S -u {REMOTE_AGENT}"
        log.info("$ %s   # over ssh", cmd)
        self.chan.exec_command(cmd)
        reader = self.chan.makefile("rb")
        writer = self.chan.makefile_stdin("wb")
        self.files = (writer, reader)  # closed by stop(), not left to the garbage collector
        self.output: list[str] = []
        self.channel = AgentChannel(
            reader, writer, on_other=self._other, name=f"ssh:{self.host}:{self.port}"
        )
        try:
            self.channel.wait_ready(time.monotonic() + ready_timeout)
        except Exception as e:
            self.stop()
            raise VmBootError(
                f"the agent did not start over ssh on {self.host}: {e}\n"
                + "".join(self.output[-20:])
            ) from e
        return self

    def _other(self, raw: bytes) -> None:
        line = raw.decode(errors="replace")
        self.output.append(line)
        log.info("%s: %s", self.host, line.rstrip())

    def agent(self) -> AgentChannel:
        if self.channel is None:
            raise SetupError("SshTarget not started")
        return self.channel

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        # paramiko's files flush on close: closed here, before their channel, so that a
        # later garbage collection does not flush into a closed one (an "I/O operation on
        # closed file" warning in whatever test runs then)
        for f in self.files:
            try:
                f.close()
            except (OSError, ValueError, EOFError):
                pass
        if self.chan is not None:
            self.chan.close()
        if self.conn is not None:
            self.conn.close()

    def __enter__(self) -> SshTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_key(directory: Path) -> Path:
    """An ed25519 key pair for the test (``ssh-keygen``); returns the private key path."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


GUEST_SSH_USER = "wqlabssh"  # the login start_guest_sshd makes in a harness VM

GUEST_SSHD = r"""
set -e
modprobe virtio_net 2>/dev/null || true
ip link set lo up
dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
[ -n "$dev" ] || { echo "no network device in the guest"; exit 1; }
ip addr add 10.0.2.15/24 dev "$dev" 2>/dev/null || true
ip link set "$dev" up
d=/tmp/wqlab-sshd
mkdir -p $d /run/sshd
[ -f $d/host_key ] || ssh-keygen -q -t ed25519 -N '' -f $d/host_key
cat > $d/authorized_keys <<'KEY'
{pubkey}
KEY
chmod 600 $d/authorized_keys
# The guest's /etc/shadow (the host's under a guest-only overlay, or virtme-ng's own copy
# in a plain boot) may lock root ('!'), and sshd without PAM refuses locked accounts: mark
# root "no password" instead (password logins stay off). This writes the guest's
# throw-away copy, never the host's file.
sed 's/^root:[^:]*:/root:*:/' /etc/shadow > $d/shadow && cat $d/shadow > /etc/shadow
# The harness's own login (GUEST_SSH_USER): uid 0 with the plain /bin/sh and a home of its
# own, so that a command over SSH does not run root's bash and the host's ~/.bashrc first
# (pyenv's init there: about 12 s a login under TCG). Guest-only, as above.
if ! grep -q '^{user}:' /etc/passwd; then
  echo '{user}:x:0:0:wqlab ssh target:/tmp/wqlab-sshd:/bin/sh' >> /etc/passwd
  echo '{user}:*:19000:0:99999:7:::' >> /etc/shadow
fi
/usr/sbin/sshd -f /dev/null -p 22 -o HostKey=$d/host_key -o AuthorizedKeysFile=$d/authorized_keys \
  -o PermitRootLogin=prohibit-password -o UsePAM=no -o StrictModes=no -o PidFile=$d/pid \
  -o PasswordAuthentication=no -o "Subsystem=sftp internal-sftp" -o LogLevel=DEBUG1 \
  -E $d/sshd.log
echo sshd started on $dev
"""


def start_guest_sshd(agent: AgentChannel, pubkey: str) -> None:
    """Start sshd (the host's openssh-server, seen through the shared root) in a harness
    VM booted with ``ssh_port``: its user NIC gets 10.0.2.15, QEMU forwards the port."""
    if not Path("/usr/sbin/sshd").exists():
        raise SetupError("/usr/sbin/sshd missing: run `make setup` (installs openssh-server)")
    script = GUEST_SSHD.replace("{pubkey}", pubkey.strip()).replace("{user}", GUEST_SSH_USER)
    agent.succeed(script, timeout=120)
