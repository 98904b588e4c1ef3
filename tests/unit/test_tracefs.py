"""pin_events() and a trace instance's start and removal: the guest agent's own batch of
file steps (wqlab/guest_agent.py, run here on the host) against a fake tracefs."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from wqlab.errors import GuestCommandError
from wqlab.tracefs import PIN_INSTANCES, WQ_EVENTS, TraceInstance, pin_events

ROOT = Path(__file__).resolve().parents[2]


def load_agent() -> ModuleType:
    """wqlab/guest_agent.py as a module (a script in the guest, not a package member)."""
    spec = importlib.util.spec_from_file_location("guest_agent", ROOT / "wqlab" / "guest_agent.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class LocalAgent:
    """Runs requests with the guest agent's own ops, here; with ``events``, its mkdir
    acts like tracefs's (a new instance comes with an events tree whose enable files read
    0) and its rmdir removes a populated instance."""

    def __init__(self, events: tuple[str, ...] = ()) -> None:
        self.calls = 0
        self.mod = load_agent()
        mkdir = self.mod.OPS["mkdir"]

        def tracefs_mkdir(req: dict[str, Any]) -> object:
            made = mkdir({**req, "then": []})
            if made:
                make_instance_events(Path(req["path"]), events)
                self.mod._run_steps(req.get("then", []))
            return made

        def tracefs_rmdir(req: dict[str, Any]) -> object:
            shutil.rmtree(req["path"])
            return None

        if events:
            self.mod.OPS["mkdir"] = tracefs_mkdir
            self.mod.OPS["rmdir"] = tracefs_rmdir

    def request(self, op: str, timeout: float = 60.0, **kw: Any) -> Any:
        self.calls += 1
        try:
            return self.mod.OPS[op]({"op": op, **kw})
        except OSError as e:  # as the channel raises an agent's error reply
            raise GuestCommandError(str(e), e.errno) from None


def fake_tracefs(root: Path, events: tuple[str, ...]) -> LocalAgent:
    """A tracefs-like tree, and an agent whose mkdir fills new instances."""
    (root / "instances").mkdir(parents=True)
    return LocalAgent(events)


def make_instance_events(inst: Path, events: tuple[str, ...]) -> None:
    for ev in events:
        d = inst / "events" / ev
        d.mkdir(parents=True, exist_ok=True)
        (d / "enable").write_text("0\n")


def enabled(root: Path, inst: str, ev: str) -> str:
    return (root / "instances" / inst / "events" / ev / "enable").read_text().strip()


def test_pins_create_keepers_off_and_enable_every_existing_event(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
    pin_events(agent, (*WQ_EVENTS, "wqlab"), root=str(tmp_path))  # wqlab: not loaded
    for inst in PIN_INSTANCES:
        d = tmp_path / "instances" / inst
        assert (d / "tracing_on").read_text().strip() == "0"
        assert (d / "buffer_size_kb").read_text().strip() == "4"
        assert all(enabled(tmp_path, inst, ev) == "1" for ev in WQ_EVENTS)
        assert not (d / "events" / "wqlab").exists()
    assert agent.calls == 1


def test_pins_are_idempotent_and_pick_up_module_events_later(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
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
    with pytest.raises(GuestCommandError, match="mkdir .*wqlab_pin0") as e:
        pin_events(LocalAgent(), WQ_EVENTS, root=str(tmp_path / "no-tracefs"))
    assert e.value.errno == 2  # ENOENT


@pytest.mark.parametrize("bad", ["workqueue/*", "a b", "x;reboot", "../x", ""])
def test_pin_refuses_event_names_that_are_not_names(bad: str) -> None:
    agent = LocalAgent()
    with pytest.raises(ValueError, match="bad event name"):
        pin_events(agent, (bad,))
    assert agent.calls == 0


def test_an_instance_starts_in_one_round_trip_pinned_first(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
    inst = TraceInstance(agent, "t1", buffer_kb=64, root=str(tmp_path))
    inst.start()
    assert agent.calls == 1
    d = Path(inst.path)
    assert (d / "tracing_on").read_text() == "1" and (d / "buffer_size_kb").read_text() == "64"
    assert all(enabled(tmp_path, "t1", ev) == "1" for ev in WQ_EVENTS)
    assert not (d / "events" / "wqlab").exists()  # the module is not loaded: left out
    for inst_name in PIN_INSTANCES:
        assert all(enabled(tmp_path, inst_name, ev) == "1" for ev in WQ_EVENTS)
    # every tracepoint is pinned in the keepers before the test instance enables it
    paths = [s.get("path", "") for s in inst.start_steps()]
    first_own = next(i for i, p in enumerate(paths) if p.startswith(inst.path + "/events/"))
    last_pin = max(i for i, p in enumerate(paths) if "/wqlab_pin" in p)
    assert last_pin < first_own


def test_an_instance_with_the_module_loaded_enables_its_events(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, (*WQ_EVENTS, "wqlab"))
    inst = TraceInstance(agent, "t2", root=str(tmp_path)).start()
    assert enabled(tmp_path, "t2", "wqlab") == "1"
    assert all(enabled(tmp_path, p, "wqlab") == "1" for p in PIN_INSTANCES)
    inst.remove()
    assert agent.calls == 2 and not Path(inst.path).exists()


def test_an_instance_left_by_an_earlier_run_is_reused(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
    TraceInstance(agent, "t3", root=str(tmp_path)).start()
    (tmp_path / "instances" / "t3" / "trace").write_text("old events\n")
    TraceInstance(agent, "t3", root=str(tmp_path)).start()
    assert (tmp_path / "instances" / "t3" / "trace").read_text() == ""  # cleared
