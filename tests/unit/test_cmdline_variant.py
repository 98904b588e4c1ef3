"""``wqlab_cmdline``: a test whose VM needs other kernel arguments gets a VM of its own
(its own manager, console and session files), booted with them; the session's VM is
untouched; a machine of ``--wqlab-target`` (not booted by us) keeps its one manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wqlab.kernels import Kernel
from wqlab.pytest_plugin import VmManager, _cmdline_tag, _manager


class FakeConfig:
    def __init__(self, tmp: Path, target: str = "vm") -> None:
        self.rootpath = tmp
        self.opts = {"--wqlab-target": target, "--wqlab-artifacts": str(tmp / "artifacts")}

    def getoption(self, name: str) -> Any:
        return self.opts[name]


def manager(tmp: Path, target: str = "vm") -> VmManager:
    kernel = Kernel(version="6.1.0-57-amd64", image=tmp / "vmlinuz", kdir=tmp)
    return VmManager(FakeConfig(tmp, target), kernel)  # type: ignore[arg-type]


def test_other_kernel_arguments_get_a_manager_of_their_own(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    full = mgr.variant(("preempt=full",))
    assert full is not mgr
    assert full.append == ("preempt=full",) and mgr.append == ()
    assert full.suffix == "-preempt=full" and mgr.suffix == ""
    assert mgr.variant(("preempt=full",)) is full  # one per set of arguments, kept
    assert mgr.variant(()) is mgr
    assert full.variant(("preempt=full",)) is full


def test_a_variant_is_closed_with_the_session_and_its_leaks_are_counted(
    tmp_path: Path,
) -> None:
    mgr = manager(tmp_path)
    full = mgr.variant(("preempt=full",))
    full.leaks.append("a leak")  # type: ignore[arg-type]
    mgr.close()
    assert mgr.leaks == ["a leak"]


@pytest.mark.parametrize("target", ["ssh://root@host", "serial:/dev/ttyUSB0"])
def test_a_target_machine_keeps_one_manager(tmp_path: Path, target: str) -> None:
    mgr = manager(tmp_path, target)
    assert mgr.variant(("preempt=full",)) is mgr


class FakeVm:
    def __init__(self) -> None:
        self.stopped = False
        self.alive = True
        self.unresponsive = False
        self.cfg = type("Cfg", (), {"serial_socket": None})()

    def stop(self, timeout: float = 0) -> None:
        self.stopped = True


def test_closing_the_session_stops_the_variants_vm_even_if_its_own_close_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr = manager(tmp_path)
    full = mgr.variant(("preempt=full",))
    full.vm = FakeVm()  # type: ignore[assignment]
    vm = full.vm

    def broken() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mgr, "_close_own", broken)
    monkeypatch.setattr(full, "_scan_kmemleak", lambda vm: None)
    with pytest.raises(KeyboardInterrupt):
        mgr.close()
    assert vm.stopped and full.vm is None  # type: ignore[attr-defined]
    assert mgr.variants == {}


class FakeNode:
    def __init__(self, *args: object) -> None:
        self.args = args

    def get_closest_marker(self, name: str) -> Any:
        if name != "wqlab_cmdline" or not self.args:
            return None
        return pytest.mark.wqlab_cmdline(*self.args).mark


class FakeRequest:
    def __init__(self, *args: object) -> None:
        self.node = FakeNode(*args)


def test_the_marker_picks_the_vm_of_its_arguments(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    assert _manager(FakeRequest(), mgr) is mgr  # type: ignore[arg-type]
    full = _manager(FakeRequest("preempt=full"), mgr)  # type: ignore[arg-type]
    assert full is mgr.variant(("preempt=full",)) and full.append == ("preempt=full",)


@pytest.mark.parametrize("bad", ["two words", 'a="b"', "", 3])
def test_a_marker_argument_that_is_not_one_kernel_argument_is_a_usage_error(
    tmp_path: Path, bad: object
) -> None:
    with pytest.raises(pytest.UsageError, match="not one kernel argument"):
        _manager(FakeRequest(bad), manager(tmp_path))  # type: ignore[arg-type]


def test_file_names_of_argument_sets_differ(tmp_path: Path) -> None:
    sets = [("a=b",), ("a_b",), ("a b",), ("a", "b"), ("a-b",), ("x=" + "y" * 300,)]
    sets.append(("x=" + "y" * 301,))
    tags = {_cmdline_tag(a) for a in sets}
    assert len(tags) == len(sets) and all(len(t) <= 41 for t in tags), tags
    assert _cmdline_tag(("preempt=full",)) == "-preempt=full"
