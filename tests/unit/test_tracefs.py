"""pin_events() and a trace instance's start and removal: the guest agent's own batch of
file steps (wqlab/guest_agent.py, run here on the host) against a fake tracefs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from agentmod import load_agent

from wqlab import session
from wqlab.errors import GuestCommandError
from wqlab.tracefs import PIN_INSTANCES, WQ_EVENTS, TraceInstance, pin_events


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

    def write(self, path: str, data: str) -> Any:
        return self.request("write", path=path, data=data)


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


def test_an_instance_armed_on_a_fresh_load_leaves_the_module_s_events_unpinned(
    tmp_path: Path,
) -> None:
    agent = fake_tracefs(tmp_path, (*WQ_EVENTS, "wqlab"))
    inst = TraceInstance(agent, "t6", root=str(tmp_path), pin_module_events=False).start()
    assert enabled(tmp_path, "t6", "wqlab") == "1"
    for pin in PIN_INSTANCES:
        assert enabled(tmp_path, pin, "wqlab") == "0", pin  # never written
        assert all(enabled(tmp_path, pin, ev) == "1" for ev in WQ_EVENTS), pin
    inst.pin_module_events = True
    inst.rearm()
    assert all(enabled(tmp_path, pin, "wqlab") == "1" for pin in PIN_INSTANCES)


def test_an_instance_left_by_an_earlier_run_is_reused(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
    TraceInstance(agent, "t3", root=str(tmp_path)).start()
    (tmp_path / "instances" / "t3" / "trace").write_text("old events\n")
    TraceInstance(agent, "t3", root=str(tmp_path)).start()
    assert (tmp_path / "instances" / "t3" / "trace").read_text() == ""  # cleared


def test_an_instance_is_rearmed_in_one_round_trip_without_what_its_last_user_left(
    tmp_path: Path,
) -> None:
    agent = fake_tracefs(tmp_path, (*WQ_EVENTS, "wqlab"))
    inst = TraceInstance(agent, "t4", buffer_kb=64, root=str(tmp_path)).start()
    d = Path(inst.path)
    # its last user: a filter, a smaller buffer by hand, events recorded, tracing off
    inst.set_filter(WQ_EVENTS[0], 'workqueue == "x"')
    (d / "buffer_size_kb").write_text("sentinel")
    (d / "trace").write_text("old events\n")
    inst.stop()
    calls = agent.calls
    assert inst.rearm() is inst
    assert agent.calls == calls + 1
    assert (d / "trace").read_text() == "" and (d / "tracing_on").read_text() == "1"
    assert (d / "events" / WQ_EVENTS[0] / "filter").read_text() == "0"  # cleared
    assert (d / "buffer_size_kb").read_text() == "sentinel"  # not resized
    assert all(enabled(tmp_path, "t4", ev) == "1" for ev in (*WQ_EVENTS, "wqlab"))
    assert inst.filtered == set()
    # every event off first, then its own on; the buffer emptied with tracing off, last
    own = inst.path + "/"
    steps = inst.start_steps(resize=False)
    paths = [s["path"][len(own) :] for s in steps if s["path"].startswith(own)]
    assert paths[:2] == ["tracing_on", "events/enable"]
    assert paths[-2:] == ["trace", "tracing_on"]
    assert [s["data"] for s in steps if s.get("path", "").endswith("/tracing_on")][-2:] == [
        "0",
        "1",
    ]


def test_a_rearm_clears_only_the_filters_it_set_and_they_once(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, (*WQ_EVENTS, "wqlab/wqlab_work_block"))
    inst = TraceInstance(agent, "t5", root=str(tmp_path)).start()
    inst.set_filter("wqlab/wqlab_work_block", "id == 2")
    shutil.rmtree(Path(inst.path) / "events" / "wqlab")  # the module went, its events too
    filters = [s["path"] for s in inst.start_steps(resize=False) if s["path"].endswith("/filter")]
    assert filters == [f"{inst.path}/events/wqlab/wqlab_work_block/filter"]
    inst.rearm()  # a filter file that went with the module is no error
    assert not [s for s in inst.start_steps(resize=False) if s["path"].endswith("/filter")]


def test_a_rearm_makes_a_removed_instance_again_with_its_buffer(tmp_path: Path) -> None:
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
    inst = TraceInstance(agent, "t6", buffer_kb=128, root=str(tmp_path)).start()
    inst.remove()
    assert not Path(inst.path).exists()
    inst.rearm()
    d = Path(inst.path)
    assert (d / "buffer_size_kb").read_text() == "128" and (d / "tracing_on").read_text() == "1"
    assert all(enabled(tmp_path, "t6", ev) == "1" for ev in WQ_EVENTS)


class _FakeVm:
    """What ``arm_trace``/``disarm_trace`` use of a Vm: its agent and its state."""

    def __init__(self, agent: LocalAgent) -> None:
        self._agent = agent
        self.alive, self.tainted, self.unresponsive = True, False, False

    def agent(self) -> LocalAgent:
        return self._agent


def test_the_plugin_arms_one_instance_per_vm_and_a_fresh_vm_gets_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[TraceInstance] = []

    def instance(agent: LocalAgent, name: str) -> TraceInstance:
        made.append(TraceInstance(agent, name, root=str(tmp_path)))
        return made[-1]

    monkeypatch.setattr(session, "TraceInstance", instance)
    agent = fake_tracefs(tmp_path, WQ_EVENTS)
    vm = _FakeVm(agent)
    first = session.arm_trace(vm)  # type: ignore[arg-type]
    d = Path(first.path)
    (d / "trace").write_text("the first test's events\n")
    session.disarm_trace(vm, first)  # type: ignore[arg-type]
    assert (d / "tracing_on").read_text() == "0"
    (d / "buffer_size_kb").write_text("sentinel")
    calls = agent.calls
    assert session.arm_trace(vm) is first  # type: ignore[arg-type]
    assert agent.calls == calls + 1 and len(made) == 1
    assert (d / "trace").read_text() == "" and (d / "tracing_on").read_text() == "1"
    assert (d / "buffer_size_kb").read_text() == "sentinel"  # re-armed, not made anew
    fresh = _FakeVm(agent)  # after a splat: a new VM, a new instance
    assert session.arm_trace(fresh) is not first and len(made) == 2  # type: ignore[arg-type]


def test_more_events_for_one_test_are_pinned_first_in_one_round_trip(tmp_path: Path) -> None:
    timer = ("timer/timer_start", "timer/timer_expire_entry")
    agent = fake_tracefs(tmp_path, (*WQ_EVENTS, *timer))
    inst = TraceInstance(agent, "t7", root=str(tmp_path)).start()
    calls = agent.calls
    inst.enable_events(*timer)
    assert agent.calls == calls + 1
    assert all(enabled(tmp_path, "t7", ev) == "1" for ev in timer)
    # pinned: the instance's next arm turns them off without patching the kernel's text
    assert all(enabled(tmp_path, p, ev) == "1" for p in PIN_INSTANCES for ev in timer)
    inst.rearm()
    assert all(enabled(tmp_path, p, ev) == "1" for p in PIN_INSTANCES for ev in timer)
    with pytest.raises(ValueError, match="bad event name"):
        inst.enable_events("timer/*")
