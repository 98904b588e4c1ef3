"""One VM with the module loaded and a trace instance: what the CLI and benchmarks share
(the pytest plugin builds the same from fixtures)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import kernels
from .build import ROOT, build_module
from .client import WqlabClient, ensure_debugfs, insmod, is_loaded, rmmod
from .tracefs import TraceInstance
from .vm import Vm, VmConfig, host_boot_deadline, kvm_works

log = logging.getLogger(__name__)


@dataclass
class Session:
    kernel: kernels.Kernel
    vm: Vm
    client: WqlabClient
    trace: TraceInstance


def boot(
    kernel: kernels.Kernel, cpus: int = 2, fast: bool = True, console_log: Path | None = None
) -> Vm:
    cfg = VmConfig(
        image=kernel.image,
        cpus=cpus,
        kvm=kvm_works(kernel.image),
        fast=fast,
    )
    vm = Vm(cfg, console_log or ROOT / "artifacts" / f"console-{kernel.version}.log")
    vm.start(boot_timeout=host_boot_deadline(cfg.kvm))
    ensure_debugfs(vm.agent())
    return vm


@contextmanager
def session(
    selector: str = "default", cpus: int = 2, plane: str = "debugfs", trace_name: str = "wqlab_cli"
) -> Iterator[Session]:
    """Build the module, boot, load it, open a trace instance; undo all on exit."""
    kernel = kernels.resolve(selector)
    log.info("building wqlab.ko for %s", kernel.version)
    ko = build_module(kernel)
    log.info("booting %s (%d vCPUs)", kernel.version, cpus)
    vm = boot(kernel, cpus)
    try:
        agent = vm.agent()
        insmod(agent, str(ko))
        trace = TraceInstance(agent, trace_name).start()
        try:
            yield Session(kernel, vm, WqlabClient(agent, plane), trace)
        finally:
            if vm.alive:
                trace.remove()
                if is_loaded(agent):
                    rmmod(agent)
    finally:
        vm.stop()
