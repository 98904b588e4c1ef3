"""``--wqlab-target``: the pure parser and the targets it makes (no machine reached)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wqlab.errors import SetupError
from wqlab.serial_target import SerialTarget
from wqlab.ssh import SshTarget
from wqlab.targets import TargetSpec, make_target, parse_target


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("vm", TargetSpec("vm")),
        ("", TargetSpec("vm")),
        ("ssh://lab1", TargetSpec("ssh", host="lab1")),
        ("ssh://tester@lab1:2222", TargetSpec("ssh", host="lab1", port=2222, user="tester")),
        ("ssh://root@[::1]:22/", TargetSpec("ssh", host="::1")),
        ("serial:/dev/ttyUSB0", TargetSpec("serial", line="/dev/ttyUSB0")),
        ("serial:/dev/pts/7", TargetSpec("serial", line="/dev/pts/7")),
        ("serial:unix:/tmp/vm/ttyS1.sock", TargetSpec("serial", line="unix:/tmp/vm/ttyS1.sock")),
        ("serial:tcp:board1:7001", TargetSpec("serial", line="tcp:board1:7001")),
    ],
)
def test_the_target_option_parses(text: str, spec: TargetSpec) -> None:
    assert parse_target(text) == spec


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("qemu", "one of vm, ssh://user@host:port, serial:/dev/"),
        ("ssh://", "write ssh://user@host:port"),
        ("ssh://h:port", "write ssh://user@host:port"),
        ("serial:ttyUSB0", "write serial:/dev/ttyUSB0"),
        ("serial:tcp:board1", "write serial:tcp:host:port"),
        ("serial:unix:", "write serial:unix:/path"),
    ],
)
def test_a_bad_target_says_how_to_write_one(text: str, hint: str) -> None:
    with pytest.raises(SetupError, match=hint.replace("/", ".").replace(":", ".")):
        parse_target(text)


def test_targets_take_their_settings_from_the_environment() -> None:
    ssh = make_target(parse_target("ssh://tester@lab1:2222"), {"WQLAB_SSH_KEY": "/k/id"})
    assert isinstance(ssh, SshTarget)
    assert (ssh.host, ssh.port, ssh.user, ssh.key_filename) == ("lab1", 2222, "tester", "/k/id")
    env = {"WQLAB_SERIAL_USER": "op", "WQLAB_SERIAL_PASSWORD": "pw", "WQLAB_SERIAL_BAUD": "9600"}
    ser = make_target(parse_target("serial:/dev/ttyUSB0"), env)
    assert isinstance(ser, SerialTarget)
    c = ser.console
    assert (c.spec, c.user, c.password, c.baud) == ("/dev/ttyUSB0", "op", "pw", 9600)


def test_a_bad_target_option_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--wqlab-target=qemu"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == pytest.ExitCode.USAGE_ERROR, p.stdout + p.stderr
    assert "--wqlab-target 'qemu': one of vm, ssh://" in p.stderr
