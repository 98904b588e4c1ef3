"""pin_events(): the keeper-instance script, run by a real sh against a fake tracefs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.tracefs import PIN_INSTANCES, WQ_EVENTS, pin_events


class ShAgent:
    """Runs ``succeed()`` with the host's /bin/sh, as the guest agent would; ``bindir``
    may hold a fake ``mkdir`` that acts like tracefs's."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.calls = 0
        self.env = dict(os.environ)
        if bindir:
            self.env["PATH"] = f"{bindir}:{self.env['PATH']}"

    def succeed(self, cmd: str) -> str:
        self.calls += 1
        res = subprocess.run(
            ["sh", "-c", cmd], capture_output=True, text=True, check=False, env=self.env
        )
        if res.returncode:
            raise RuntimeError(f"exit {res.returncode}: {res.stderr}")
        return res.stdout


def fake_tracefs(root: Path, events: tuple[str, ...]) -> Path:
    """A tracefs-like tree and a ``mkdir`` that, as in tracefs, fills a new instance
    with an events tree whose enable files read 0. Returns the bin dir."""
    (root / "instances").mkdir(parents=True)
    bindir = root / "bin"
    bindir.mkdir()
    mkdir = bindir / "mkdir"
    evs = " ".join(events)
    mkdir.write_text(
        '#!/bin/sh\n/bin/mkdir "$@" || exit\n'
        f'for ev in {evs}; do /bin/mkdir -p "$1/events/$ev"; '
        'echo 0 > "$1/events/$ev/enable"; done\n'
    )
    mkdir.chmod(0o755)
    return bindir


def make_instance_events(inst: Path, events: tuple[str, ...]) -> None:
    for ev in events:
        d = inst / "events" / ev
        d.mkdir(parents=True, exist_ok=True)
        (d / "enable").write_text("0\n")


def enabled(root: Path, inst: str, ev: str) -> str:
    return (root / "instances" / inst / "events" / ev / "enable").read_text().strip()


def test_pins_create_keepers_off_and_enable_every_existing_event(tmp_path: Path) -> None:
    agent = ShAgent(fake_tracefs(tmp_path, WQ_EVENTS))
    pin_events(agent, (*WQ_EVENTS, "wqlab"), root=str(tmp_path))  # wqlab: not loaded
    for inst in PIN_INSTANCES:
        d = tmp_path / "instances" / inst
        assert (d / "tracing_on").read_text().strip() == "0"
        assert (d / "buffer_size_kb").read_text().strip() == "4"
        assert all(enabled(tmp_path, inst, ev) == "1" for ev in WQ_EVENTS)
        assert not (d / "events" / "wqlab").exists()
    assert agent.calls == 1


def test_pins_are_idempotent_and_pick_up_module_events_later(tmp_path: Path) -> None:
    agent = ShAgent(fake_tracefs(tmp_path, WQ_EVENTS))
    pin_events(agent, WQ_EVENTS, root=str(tmp_path))
    for inst in PIN_INSTANCES:  # insmod: the module's system appears, disabled
        make_instance_events(tmp_path / "instances" / inst, ("wqlab",))
        (tmp_path / "instances" / inst / "tracing_on").write_text("sentinel\n")
    pin_events(agent, (*WQ_EVENTS, "wqlab"), root=str(tmp_path))
    for inst in PIN_INSTANCES:
        assert enabled(tmp_path, inst, "wqlab") == "1"
        # an existing keeper is not set up again
        assert (tmp_path / "instances" / inst / "tracing_on").read_text() == "sentinel\n"


def test_pin_fails_loudly_when_the_keeper_cannot_be_made(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exit 1"):
        pin_events(ShAgent(), WQ_EVENTS, root=str(tmp_path / "no-tracefs"))


@pytest.mark.parametrize("bad", ["workqueue/*", "a b", "x;reboot", "../x", ""])
def test_pin_refuses_event_names_that_are_not_names(bad: str) -> None:
    with pytest.raises(ValueError, match="bad event name"):
        pin_events(ShAgent(), (bad,))
