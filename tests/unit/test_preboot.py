"""A worker's session VM booted ahead (``VmManager.preboot``): while the worker's first
tests (host tests) run, its VM boots in a thread; the first test that needs a VM takes
that one, or gets its boot's error; a VM booted ahead and never taken is stopped with the
session; meanwhile it is nobody's for the CPU counts and the ``whole_vm`` priorities. No
VM: ``_boot`` is a stand-in."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wqlab import pytest_plugin as plugin
from wqlab.errors import VmBootError
from wqlab.kernels import Kernel
from wqlab.pytest_plugin import VmManager


class FakeConfig:
    def __init__(self, tmp: Path, target: str = "vm", no_preboot: bool = False) -> None:
        self.rootpath = tmp
        self.opts = {
            "--wqlab-target": target,
            "--wqlab-artifacts": str(tmp / "artifacts"),
            "--wqlab-no-preboot": no_preboot,
            "--wqlab-kernel": "6.1.0-57-amd64",
        }
        self.stash = pytest.Stash()

    def getoption(self, name: str) -> Any:
        return self.opts[name]


class FakeVm:
    def __init__(self) -> None:
        self.background = False
        self.stopped = False
        self.alive = True
        self.tainted = False
        self.unresponsive = False
        self.cfg = SimpleNamespace(serial_socket=None)

    def stop(self, timeout: float = 0) -> None:
        self.stopped = True

    def agent(self) -> Any:  # get()'s health check of a VM it keeps
        return SimpleNamespace(request=lambda *a, **kw: "health")


def manager(tmp: Path, target: str = "vm") -> VmManager:
    kernel = Kernel(version="6.1.0-57-amd64", image=tmp / "vmlinuz", kdir=tmp)
    mgr = VmManager(FakeConfig(tmp, target), kernel)  # type: ignore[arg-type]
    mgr._scan_kmemleak = lambda vm: None  # type: ignore[method-assign]
    return mgr


def slow_boot(mgr: VmManager, booted: list[FakeVm], gate: threading.Event) -> None:
    def boot(background: bool = False) -> FakeVm:
        gate.wait(10)
        vm = FakeVm()
        vm.background = background
        booted.append(vm)
        return vm

    mgr._boot = boot  # type: ignore[method-assign,assignment]


def test_the_first_vm_test_takes_the_vm_booted_ahead(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    booted: list[FakeVm] = []
    gate = threading.Event()
    slow_boot(mgr, booted, gate)
    mgr.preboot()
    mgr.preboot()  # once
    time.sleep(0.05)
    assert booted == []  # still booting: get() waits for it
    threading.Timer(0.2, gate.set).start()
    vm = mgr.get()
    assert booted == [vm] and vm is mgr.vm
    assert vm.background is False  # this worker's VM from now on
    mgr.close()
    assert vm.stopped


def test_a_failed_boot_ahead_is_the_first_vm_test_s_error(tmp_path: Path) -> None:
    mgr = manager(tmp_path)

    def fail(background: bool = False) -> FakeVm:
        raise VmBootError("vm-6.1: no agent within 143 s")

    mgr._boot = fail  # type: ignore[method-assign,assignment]
    mgr.preboot()
    with pytest.raises(VmBootError, match="no agent"):
        mgr.get()
    # and the next test boots again, as after any failed boot
    booted: list[FakeVm] = []
    gate = threading.Event()
    gate.set()
    slow_boot(mgr, booted, gate)
    assert mgr.get() is booted[0]


def test_a_vm_booted_ahead_and_never_taken_is_stopped_with_the_session(tmp_path: Path) -> None:
    mgr = manager(tmp_path)
    booted: list[FakeVm] = []
    gate = threading.Event()
    gate.set()
    slow_boot(mgr, booted, gate)
    mgr.preboot()
    mgr.close()
    assert len(booted) == 1 and booted[0].stopped and mgr.vm is None


def test_a_target_machine_is_not_booted_ahead(tmp_path: Path) -> None:
    mgr = manager(tmp_path, "ssh://root@host")
    mgr._boot = lambda background=False: pytest.fail("booted")  # type: ignore[method-assign,assignment,misc]
    mgr.preboot()
    assert mgr._preboot is None


def test_a_vm_booting_ahead_counts_for_no_test_and_is_not_raised_for_a_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ahead = SimpleNamespace(background=True, proc=SimpleNamespace(pid=1), cpu_seconds=lambda: 5.0)
    mine = SimpleNamespace(background=False, proc=SimpleNamespace(pid=2), cpu_seconds=lambda: 7.0)
    monkeypatch.setattr(plugin, "live_vms", lambda: [ahead, mine])
    assert plugin._vm_cpu() == {id(mine): 7.0}
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(plugin, "may_renice", lambda: True)
    monkeypatch.setattr(plugin, "set_group_nice", lambda pid, n: raised.append((pid, n)) or True)
    with plugin._vms_first():
        assert raised == [(2, plugin.VM_GROUP_NICE)]
    assert raised[-1] == (2, 0)


@pytest.mark.parametrize(
    ("uses_vm", "no_preboot", "worker_first"),
    [(True, False, True), (False, False, False), (True, True, False)],
)
def test_a_worker_boots_ahead_once_and_only_when_its_session_uses_a_vm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uses_vm: bool,
    no_preboot: bool,
    worker_first: bool,
) -> None:
    config = FakeConfig(tmp_path, no_preboot=no_preboot)
    config.stash[plugin._USES_VM] = uses_vm
    kernel = Kernel(version="6.1.0-57-amd64", image=tmp_path / "vmlinuz", kdir=tmp_path)
    monkeypatch.setattr(plugin.kernels, "resolve", lambda name: kernel)
    started: list[VmManager] = []
    monkeypatch.setattr(VmManager, "preboot", lambda self: started.append(self))
    plugin._preboot(config)  # type: ignore[arg-type]
    plugin._preboot(config)  # type: ignore[arg-type]
    assert len(started) == int(worker_first)
    if worker_first:
        assert config.stash[plugin._PREBOOTED] is started[0]
