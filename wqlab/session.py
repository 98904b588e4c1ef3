"""One VM with the module loaded and a trace instance: what the CLI and benchmarks share.

The per-test steps (``begin_test``, ``load_module``/``unload_module``,
``arm_trace``/``disarm_trace``) are the pytest plugin's fixtures' own set-up and teardown,
so ``make bench`` times exactly what a test pays for."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from . import kernels
from .build import build_module
from .channel import AgentChannel
from .client import WqlabClient, ensure_debugfs, insmod, is_loaded, rmmod
from .errors import HarnessError
from .kmsg import dmesg_mark
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
    vm = Vm(cfg, console_log or Path.cwd() / "artifacts" / f"console-{kernel.version}.log")
    vm.start(boot_timeout=host_boot_deadline(cfg.kvm))
    ensure_debugfs(vm.agent())
    return vm


class Watch(NamedTuple):
    """Where a test began: the VM, its console line count and its kernel log's mark (the
    splat scans after the test read from there)."""

    vm: Vm
    console: int
    dmesg: int


def begin_test(vm: Vm) -> Watch:
    return Watch(vm, vm.console_mark(), dmesg_mark(vm.agent()))


def load_module(agent: AgentChannel, ko: str, params: dict[str, Any] | None = None) -> None:
    """Load ``ko`` for a test, unloading a copy a previous user left loaded."""
    if is_loaded(agent):
        rmmod(agent)
    insmod(agent, ko, **(params or {}))


def _private(vm: Vm) -> bool:
    """The harness booted this kernel for itself (not an SSH or serial target)."""
    return bool(getattr(vm, "private_kernel", False))


def unload_module(vm: Vm, name: str = "wqlab") -> None:
    """Unload after a test; an rmmod that hangs or fails taints the VM (the next test
    boots a fresh one) and raises. In the harness's own VM the unload's grace periods are
    expedited (``rmmod``'s ``expedite_rcu``): it empties every trace instance that had one
    of the module's events on, two grace periods for each of its two buffers."""
    if not vm.alive:
        return
    try:
        rmmod(vm.agent(), name, expedite_rcu=_private(vm))
    except HarnessError:
        vm.retire(f"rmmod {name} failed or hung", hung=True)
        raise


def start_trace(agent: AgentChannel, name: str) -> TraceInstance:
    return TraceInstance(agent, name).start()


def stop_trace(vm: Vm, inst: TraceInstance) -> None:
    """Remove a test's trace instance; a failure taints the VM and raises."""
    if vm.alive and not vm.tainted:
        try:
            inst.remove()
        except HarnessError:
            vm.retire("its trace instance could not be removed", hung=True)
            raise


# The tests' trace instance: one per VM, re-armed for each test (see wqlab/tracefs.py).
TEST_TRACE = "wqlab_test"
_TEST_TRACES: weakref.WeakKeyDictionary[Vm, TraceInstance] = weakref.WeakKeyDictionary()


def arm_trace(vm: Vm, fresh_module: bool = False) -> TraceInstance:
    """The VM's trace instance for a test, empty and recording only its own events: made
    for the VM's first test, re-armed (not made anew) for each later one. One round trip.

    ``fresh_module``: the module was loaded for this test just now (``load_module()``,
    none of its code running) and is unloaded (``unload_module()``) after
    ``disarm_trace()``, as the ``wqlab`` fixture does: its events are then enabled here
    without being pinned in the keepers (see wqlab/tracefs.py), which saves two instance
    resets at the unload. Otherwise (a module some earlier test left loaded, one loaded
    by hand) they are pinned first."""
    inst = _TEST_TRACES.get(vm)
    if inst is None:
        inst = _TEST_TRACES[vm] = TraceInstance(vm.agent(), TEST_TRACE)
        inst.pin_module_events = not fresh_module
        return inst.start(expedite_rcu=_private(vm))
    inst.pin_module_events = not fresh_module
    return inst.rearm(expedite_rcu=_private(vm))


def disarm_trace(vm: Vm, inst: TraceInstance) -> None:
    """After a test: tracing off, the buffer kept (a failure's artifacts read it) until
    the next ``arm_trace()`` empties it; a failure taints the VM and raises."""
    if vm.alive and not vm.tainted:
        try:
            inst.stop()
        except HarnessError:
            vm.retire("its trace instance did not stop", hung=True)
            raise


@contextmanager
def session(
    selector: str = "default", cpus: int = 2, plane: str = "debugfs", trace_name: str = "wqlab_cli"
) -> Iterator[Session]:
    """Build the module while the kernel boots, load it, open a trace instance; undo all
    on exit. (A build is make on this host, a boot mostly QEMU waiting on its guest: side
    by side they take the longer of the two, not the sum.)"""
    kernel = kernels.resolve(selector)
    log.info("building wqlab.ko for %s while it boots (%d vCPUs)", kernel.version, cpus)
    with ThreadPoolExecutor(1, thread_name_prefix="wqlab-build") as pool:
        built = pool.submit(build_module, kernel)
        vm = boot(kernel, cpus)  # a failed boot waits for the build, then raises
        try:
            ko = built.result()  # a build error is said as such
        except BaseException as e:
            try:
                vm.stop()
            except Exception as stop_error:  # the build error stays the one raised
                e.add_note(f"stopping the VM afterwards failed too: {stop_error}")
            raise
    try:
        agent = vm.agent()
        load_module(agent, str(ko))
        trace = start_trace(agent, trace_name)
        try:
            yield Session(kernel, vm, WqlabClient(agent, plane), trace)
        finally:
            if vm.alive:
                stop_trace(vm, trace)
                if is_loaded(agent):
                    unload_module(vm)
    finally:
        vm.stop()
