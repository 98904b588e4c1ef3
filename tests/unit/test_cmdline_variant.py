"""``wqlab_cmdline``: a test whose VM needs other kernel arguments gets a VM of its own
(its own manager, console and session files), booted with them; the session's VM is
untouched; a machine of ``--wqlab-target`` (not booted by us) keeps its one manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wqlab.kernels import Kernel
from wqlab.pytest_plugin import VmManager


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
    assert full.suffix == "-preempt_full" and mgr.suffix == ""
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
