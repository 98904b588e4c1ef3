"""pytest plugin: a VM per session, the module per test, a trace instance per VM re-armed
for each test.

Installed as the ``wqlab`` pytest11 entry point, so any project that ``pip install``s
wqlab can use the fixtures for its own module (see README, "Testing your own module").

Fixtures
    wqlab_kernel    session   the selected Kernel (``--wqlab-kernel``)
    wqlab_vm        function  the session's running Vm (a fresh one after a splat)
    wqlab_guest     function  its AgentChannel (run commands, read files)
    wqlab_ko        session   path of wqlab.ko built for the kernel
    wqlab           function  WqlabClient, debugfs plane, module loaded for the test
    wqlab_ioctl     function  the same module, ioctl plane
    wqlab_netlink   function  the same module, generic netlink plane (pyroute2 in the guest;
                              ``.events()`` subscribes to the module's event stream)
    wqlab_trace     function  the VM's TraceInstance, emptied and re-armed for the test,
                              with the workqueue + wqlab events
    wqlab_ssh       function  the session VM reached over SSH through fabric
    wqlab_serial    function  the session VM reached over its serial console (ttyS1) with pexpect

Options carry the ``--wqlab-`` prefix (``--wqlab-kernel``, ``--wqlab-cpus``,
``--wqlab-memory``, ``--wqlab-no-fast-boot``, ``--wqlab-artifacts``, ``--wqlab-ktap``,
``--wqlab-require-vm``); markers: ``wqlab_feature(name)``, ``wqlab_module_params(**p)``.

Every failing test gets ``artifacts/<test>/``: console slice, dmesg delta, raw trace,
module state. A kernel splat (wqlab/splat.py: Oops, BUG, WARNING, KASAN, KFENCE,
UBSAN, lockdep, ODEBUG, kmemleak, lockups, hung task, RCU stall) during a test fails it,
with the splat in the report, and the next test boots a fresh VM. On a kernel with
kmemleak (the debug line), every VM is scanned before it stops; a leak whose backtrace
points into wqlab fails the session (an error in the teardown of its last test).

A test marked ``wqlab_cmdline("preempt=full")`` runs in a VM booted with those extra
kernel arguments: a second VM of the session (its files end in ``-preempt=full``), booted
on first use and stopped with the session; on a ``--wqlab-target`` machine the mark is
ignored (we do not boot it).

Under pytest-xdist (``-n N``) each worker is a session of its own: one VM per worker,
with its own console log, session record and kmemleak file (``-gw0`` in the name), and
its own splat/fresh-VM state. The controller writes the one JUnit (xdist) and the one
KTAP file (this plugin) with every test. A test marked ``xdist_group("whole_vm")`` (one
whose result depends on the host's timing: a latency bound, an overlap or order that a
starved vCPU changes) has the host to itself while its body runs: it holds a lock in the
artifacts directory exclusively while every other test holds it shared, so the other
workers' VMs sit idle meanwhile (its set-up and teardown, a boot or a module load, share
the host). A test that only loads the host (a fuzz run, VMs of its own) shares it. The
``whole_vm`` tests run first, on one worker, the ``slow`` ones after them side by side,
the rest around them (:mod:`wqlab.xdist_sched`). (xdist's ``--dist loadgroup`` would also
send them all to one worker, but with pytest 9.2 it cannot rename the items and groups
nothing.) A test marked ``wqlab_host`` (one that boots and uses no VM: a unit test) takes
no lock: it runs beside a ``whole_vm`` test's body, on the core its single-threaded VM
leaves, and the VM wins a core they share: the host test runs at nice +10, and the
``whole_vm`` test's VMs at autogroup nice -10 while its body runs (QEMU runs in a session
of its own, and with ``kernel.sched_autogroup_enabled`` a thread's nice ranks it only
within its session: the session's group nice ranks the sessions). Only where both can be
undone (CAP_SYS_NICE: a container's root often lacks it) and not for a worker's last test
(its teardown stops the VMs); otherwise it shares the lock like any test.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import resource
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from . import kernels, kmemleak, xdist_sched
from .build import build_module
from .channel import AgentChannel
from .client import WqlabClient, ensure_debugfs, is_loaded
from .errors import GuestTimeoutError, HarnessError, SetupError, VmLostError
from .kmsg import dmesg_since
from .session import Watch, arm_trace, begin_test, disarm_trace, load_module, unload_module
from .splat import Splat, find_splats
from .targets import TargetHost, parse_target
from .tracefs import TraceInstance, kallsyms
from .vm import (
    Vm,
    VmConfig,
    default_vng,
    free_port,
    host_boot_deadline,
    is_cmdline_word,
    kvm_works,
    live_vms,
)

log = logging.getLogger("wqlab")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("wqlab", "wqlab: workqueue tests in a virtme-ng VM")
    g.addoption(
        "--wqlab-kernel",
        default=os.environ.get("WQLAB_KERNEL", "default"),
        help="kernel line (default, 6.1, 6.12, latest, rt, debug), version or vmlinuz path",
    )
    g.addoption(
        "--wqlab-cpus",
        type=int,
        default=int(os.environ.get("WQLAB_CPUS", "2")),
        help="guest vCPUs (default 2)",
    )
    g.addoption("--wqlab-memory", default="1G", help="guest memory (default 1G)")
    g.addoption(
        "--wqlab-no-fast-boot",
        action="store_true",
        help="plain vng boot (the bzImage, virtme-ng-init with udev and tmpfiles) "
        "instead of the fast one (PVH vmlinux, the guest agent as init)",
    )
    g.addoption(
        "--wqlab-artifacts",
        default=None,
        help="where console logs and failure artifacts go (default: artifacts/ in the "
        "pytest rootdir)",
    )
    g.addoption("--wqlab-ktap", default=None, help="write KTAP results to this file")
    g.addoption(
        "--wqlab-target",
        default=os.environ.get("WQLAB_TARGET", "vm"),
        help="where the tests run: vm (boot --wqlab-kernel in QEMU, the default), "
        "ssh://user@host:port (key: $WQLAB_SSH_KEY) or serial:/dev/ttyUSB0|/dev/pts/N|"
        "unix:/path|tcp:host:port (login: $WQLAB_SERIAL_USER, $WQLAB_SERIAL_PASSWORD); "
        "a target wqlab did not boot must run --wqlab-kernel",
    )
    g.addoption(
        "--wqlab-require-vm",
        action="store_true",
        default=os.environ.get("CI") == "true",
        help="a missing VM tool is an error, not a skip (default on when CI=true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "wqlab_feature(name): needs this module `features` entry")
    config.addinivalue_line(
        "markers", "wqlab_module_params(**params): insmod parameters for the wqlab fixtures"
    )
    config.addinivalue_line(
        "markers",
        "wqlab_cmdline(*args): the test's VM boots with these extra kernel arguments "
        "(a VM of its own, kept for the session beside the default one)",
    )
    config.addinivalue_line(
        "markers",
        "wqlab_host: boots and uses no VM (a unit test): under xdist it runs beside a "
        "whole_vm test's body, below its VM's priority (where CAP_SYS_NICE allows)",
    )
    config.addinivalue_line(
        "markers",
        "wqlab_long: runs for minutes (a fuzz run) or long enough to end a run late when "
        "last: under xdist it starts once the whole_vm tests are done, beside the other long "
        "ones (as `slow` tests do)",
    )
    # pytest-xdist registers it too; without xdist the mark must still be known
    config.addinivalue_line(
        "markers", "xdist_group(name): run on one xdist worker (--dist loadgroup)"
    )
    config.stash[_KTAP] = []
    try:
        parse_target(config.getoption("--wqlab-target"))
    except SetupError as e:
        raise pytest.UsageError(str(e)) from None


def artifacts_dir(config: pytest.Config) -> Path:
    """``--wqlab-artifacts``, else ``artifacts/`` in the pytest rootdir (the user's
    project, never the directory wqlab is installed in)."""
    opt = config.getoption("--wqlab-artifacts")
    return Path(opt) if opt else config.rootpath / "artifacts"


def worker_suffix(config: pytest.Config) -> str:
    """``-gw0``, ``-gw1``... in a pytest-xdist worker, ``""`` otherwise: the part of a
    per-session file name that keeps two workers from writing the same file."""
    workerinput = getattr(config, "workerinput", None)
    return f"-{workerinput['workerid']}" if workerinput else ""


_KTAP = pytest.StashKey[list[tuple[str, str, str]]]()
# what a test's fixtures leave on its item for the report hooks (item.stash)
_WATCH = pytest.StashKey[Watch]()  # where the test began: VM, console and dmesg marks
_CLIENT = pytest.StashKey[WqlabClient]()  # the module's client: its state in artifacts
_TRACE = pytest.StashKey[TraceInstance]()  # the test's trace: its text in artifacts
_DMESG = pytest.StashKey[str]()  # the kernel log since the test began, read once
_SPLATS_REPORTED = pytest.StashKey[int]()  # splats already put in a report


class VmManager:
    """Keeps one VM per session; replaces it after a splat or when it was lost."""

    def __init__(
        self, config: pytest.Config, kernel: kernels.Kernel, append: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.kernel = kernel
        self.append = append  # extra kernel arguments of this manager's VMs
        self.variants: dict[tuple[str, ...], VmManager] = {}  # wqlab_cmdline's managers
        self.vm: Vm | None = None
        self.boots = 0
        self.boot_seconds: list[float] = []
        self.ssh_ready = False
        self.serial_ready = False  # a getty on the VM's ttyS1 (wqlab_serial)
        self.serial_password = secrets.token_hex(8)
        self.artifacts = artifacts_dir(config)
        # per xdist worker (and per set of extra kernel arguments): its own files
        self.suffix = worker_suffix(config) + _cmdline_tag(append)
        self.leaks: list[kmemleak.Leak] = []  # kmemleak reports pointing into wqlab
        self.target = parse_target(config.getoption("--wqlab-target"))

    def variant(self, append: tuple[str, ...]) -> VmManager:
        """The manager of the VMs booted with ``append`` on their kernel command line
        (``wqlab_cmdline``): made on first use, its VM kept beside this one's for the
        session. A machine of ``--wqlab-target`` is not booted by us: its own manager."""
        if append == self.append or self.target.kind != "vm":
            return self
        if append not in self.variants:
            self.variants[append] = VmManager(self.config, self.kernel, append)
        return self.variants[append]

    def get(self) -> Vm:
        vm = self.vm
        if vm is not None and vm.alive and not vm.tainted:
            try:  # a guest that stopped answering is replaced, not reused
                vm.agent().request("echo", timeout=60, data="health")
                return vm
            except HarnessError as e:
                vm.retire(f"it does not answer: {e}", hung=True)
        if vm is not None:
            self._scan_kmemleak(vm)
            vm.stop(timeout=20)
            _remove_serial_socket(vm)
        self.vm = self._boot()
        return self.vm

    def _boot(self) -> Vm:
        if self.target.kind != "vm":
            return self._connect()
        if shutil.which(default_vng()) is None or shutil.which("qemu-system-x86_64") is None:
            raise SetupError("vng or qemu-system-x86_64 missing: run `make setup`")
        kvm = kvm_works(self.kernel.image)
        cfg = VmConfig(
            image=self.kernel.image,
            cpus=self.config.getoption("--wqlab-cpus"),
            memory=self.config.getoption("--wqlab-memory"),
            kvm=kvm,
            fast=not self.config.getoption("--wqlab-no-fast-boot"),
            ssh_port=free_port(),  # loopback-only forward, used by the wqlab_ssh fixture
            # the guest's ttyS1 on a unix socket, used by the wqlab_serial fixture
            serial_socket=Path(tempfile.mkdtemp(prefix="wqlab-serial-")) / "ttyS1.sock",
            append=self.append,
        )
        self.ssh_ready = self.serial_ready = False
        self.boots += 1
        console = self.artifacts / f"console-{self.kernel.version}{self.suffix}.log"
        last: Exception | None = None
        for attempt in (1, 2):  # one retry of a hung boot
            vm = Vm(cfg, console, name=f"vm-{self.kernel.version}{self.suffix}")
            try:
                deadline = host_boot_deadline(
                    kvm, self.boot_seconds[-1] if self.boot_seconds else None
                )
                log.info("boot deadline %.0f s (attempt %d)", deadline, attempt)
                vm.start(boot_timeout=deadline)
                self.boot_seconds.append(vm.boot_seconds or 0.0)
                ensure_debugfs(vm.agent())
                kmemleak.manual(vm.agent())  # scanned once, before the VM stops
                return vm
            except HarnessError as e:
                last = e
                log.warning("boot attempt %d failed: %s", attempt, e)
        assert last is not None
        raise last

    def _connect(self) -> Vm:
        """The machine of ``--wqlab-target`` (ssh, serial) in a VM's place."""
        self.boots += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.target.label)
        host = TargetHost(self.target, self.artifacts / f"console-{safe}{self.suffix}.log")
        host.start(boot_timeout=host_boot_deadline(False))
        self.boot_seconds.append(host.boot_seconds or 0.0)
        running = host.agent().succeed("uname -r").strip()
        if running != self.kernel.version:
            host.stop()
            raise SetupError(
                f"{self.target.label} runs {running}, but the module would be built against "
                f"{self.kernel.version}: pass --wqlab-kernel={running} (its headers installed "
                "here)"
            )
        ensure_debugfs(host.agent())
        kmemleak.manual(host.agent())
        return host

    def _scan_kmemleak(self, vm: Vm) -> None:
        """Before a VM goes: on a kernel with kmemleak, scan and keep wqlab's leaks."""
        if not vm.alive or vm.unresponsive:
            return
        try:
            agent = vm.agent()
            if not kmemleak.available(agent):
                return
            t0 = time.monotonic()
            leaks = kmemleak.scan(agent)
        except HarnessError as e:
            log.warning("%s: kmemleak scan failed: %s", vm.name, e)
            return
        mine = kmemleak.module_leaks(leaks, "wqlab")
        log.info(
            "%s: kmemleak scan in %.0f s: %d suspected leaks, %d of them wqlab's",
            vm.name,
            time.monotonic() - t0,
            len(leaks),
            len(mine),
        )
        if leaks:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            out = self.artifacts / f"kmemleak-{self.kernel.version}{self.suffix}.txt"
            with out.open("a") as f:
                f.write(kmemleak.format_leaks(leaks) + "\n\n")
        self.leaks += mine

    def close(self) -> None:
        try:
            self._close_own()
        finally:  # the other VMs go too, whatever happened to this one
            variants, self.variants = list(self.variants.values()), {}
            for other in variants:
                try:
                    other.close()
                finally:
                    self.leaks += other.leaks

    def _close_own(self) -> None:
        if self.vm is not None:
            self._scan_kmemleak(self.vm)
            self.vm.stop()
            _remove_serial_socket(self.vm)
            self.vm = None
        if self.boot_seconds:
            info = {
                "kernel": self.kernel.version,
                "boots": self.boots,
                "boot_seconds": self.boot_seconds,
                "append": list(self.append),  # extra kernel arguments (wqlab_cmdline)
            }
            self.artifacts.mkdir(parents=True, exist_ok=True)
            (self.artifacts / f"session-{self.kernel.version}{self.suffix}.json").write_text(
                json.dumps(info, indent=1)
            )


def _cmdline_tag(append: tuple[str, ...]) -> str:
    """``-preempt=full`` for ``("preempt=full",)``: a file-name part; ``""`` for none.
    A long one, or one with a character a file name should not have, ends in a short hash
    of the arguments, so that two sets of arguments never share files."""
    if not append:
        return ""
    parts = [re.sub(r"[^A-Za-z0-9_.=,+]", "_", a) for a in append]
    tag = "-" + "-".join(parts)
    if len(tag) > 40 or parts != list(append):
        digest = hashlib.sha256("\0".join(append).encode()).hexdigest()[:8]
        tag = f"{tag[:32]}-{digest}"
    return tag


def _manager(request: pytest.FixtureRequest, mgr: VmManager) -> VmManager:
    """The manager of this test's VM: the session's, or the one of its ``wqlab_cmdline``."""
    marker = request.node.get_closest_marker("wqlab_cmdline")
    if marker is None:
        return mgr
    args = tuple(marker.args)
    for a in args:
        if not isinstance(a, str) or not is_cmdline_word(a):
            raise pytest.UsageError(f"wqlab_cmdline: {a!r} is not one kernel argument")
    return mgr.variant(args)


def _remove_serial_socket(vm: Vm) -> None:
    """The stopped VM's ttyS1 socket and its temporary directory go with it."""
    if vm.cfg.serial_socket is not None:
        shutil.rmtree(vm.cfg.serial_socket.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def wqlab_kernel(request: pytest.FixtureRequest) -> kernels.Kernel:
    try:
        return kernels.resolve(request.config.getoption("--wqlab-kernel"))
    except HarnessError as e:
        _missing(request.config, str(e))
        raise


def _missing(config: pytest.Config, why: str) -> None:
    if config.getoption("--wqlab-require-vm"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def wqlab_vm_manager(
    request: pytest.FixtureRequest, wqlab_kernel: kernels.Kernel
) -> Iterator[VmManager]:
    mgr = VmManager(request.config, wqlab_kernel)
    yield mgr
    mgr.close()
    if mgr.leaks:
        pytest.fail(
            f"kmemleak: {len(mgr.leaks)} leaks point into wqlab (or a module unloaded "
            f"since):\n{kmemleak.format_leaks(mgr.leaks)}",
            pytrace=False,
        )


@pytest.fixture
def wqlab_vm(request: pytest.FixtureRequest, wqlab_vm_manager: VmManager) -> Iterator[Vm]:
    try:
        vm = _manager(request, wqlab_vm_manager).get()
    except SetupError as e:
        _missing(request.config, str(e))
        raise
    request.node.stash[_WATCH] = begin_test(vm)
    yield vm


@pytest.fixture
def wqlab_guest(wqlab_vm: Vm) -> AgentChannel:
    return wqlab_vm.agent()


def guest_ssh(mgr: VmManager, vm: Vm) -> tuple[int, Path]:
    """The session VM's sshd (started on first use): its host port and the key."""
    from .ssh import make_key, start_guest_sshd

    if vm.cfg.ssh_port is None:
        pytest.skip("the session VM's sshd: needs --wqlab-target=vm")
    key = make_key(mgr.artifacts / f"ssh{mgr.suffix}")
    if not mgr.ssh_ready:
        start_guest_sshd(vm.agent(), Path(str(key) + ".pub").read_text())
        mgr.ssh_ready = True
    return vm.cfg.ssh_port, key


def guest_serial(mgr: VmManager, vm: Vm) -> tuple[str, str, str]:
    """The session VM's ttyS1 with a getty and a login on it (started on first use):
    ``(line, user, password)``, the line a unix socket on this host."""
    from .serial_target import start_guest_getty

    if vm.cfg.serial_socket is None:
        pytest.skip("the session VM's serial console: needs --wqlab-target=vm")
    user, password = "wqlab", mgr.serial_password
    if not mgr.serial_ready:
        start_guest_getty(vm.agent(), user, password)
        mgr.serial_ready = True
    return f"unix:{vm.cfg.serial_socket}", user, password


@pytest.fixture
def wqlab_ssh(
    request: pytest.FixtureRequest, wqlab_vm_manager: VmManager, wqlab_vm: Vm
) -> Iterator[Any]:
    """The session VM reached over SSH through fabric (sshd started in it on first use)."""
    from .ssh import GUEST_SSH_USER, SshTarget

    port, key = guest_ssh(_manager(request, wqlab_vm_manager), wqlab_vm)
    target = SshTarget("127.0.0.1", port=port, user=GUEST_SSH_USER, key_filename=str(key))
    # the agent's start over ssh is a Python start in the guest: as slow as the boot's
    # (more than the default 60 s on the debug line at load 4), so the same deadline
    target.start(ready_timeout=host_boot_deadline(wqlab_vm.cfg.kvm))
    yield target
    target.stop()


@pytest.fixture
def wqlab_serial(
    request: pytest.FixtureRequest, wqlab_vm_manager: VmManager, wqlab_vm: Vm
) -> Iterator[Any]:
    """The session VM reached over its second serial port (ttyS1, a unix socket on the
    host) with pexpect: a getty and a login are started in it on first use; the target
    logs in at the prompt and runs the guest agent on the line."""
    from .serial_target import SerialTarget

    line, user, password = guest_serial(_manager(request, wqlab_vm_manager), wqlab_vm)
    target = SerialTarget(line, user=user, password=password)
    target.start(ready_timeout=host_boot_deadline(wqlab_vm.cfg.kvm))
    yield target
    target.stop()


@pytest.fixture(scope="session")
def wqlab_ko(wqlab_kernel: kernels.Kernel) -> Path:
    return build_module(wqlab_kernel)


def _load(request: pytest.FixtureRequest, vm: Vm, ko: Path, plane: str) -> Iterator[WqlabClient]:
    agent = vm.agent()
    params = getattr(request, "param", None) or {}
    marker = request.node.get_closest_marker("wqlab_module_params")
    if marker:
        params = {**params, **marker.kwargs}
    load_module(agent, vm.guest_path(ko), params)
    client = WqlabClient(agent, plane)
    needed = [name for m in request.node.iter_markers("wqlab_feature") for name in m.args]
    feats = client.features() if needed else {}  # read once per load
    for name in needed:
        if feats.get(name) not in ("1", "y", "yes", "true"):
            pytest.skip(f"this kernel has no {name} ({feats.get('kernel')})")
    request.node.stash[_CLIENT] = client
    yield client
    unload_module(vm)  # a hung or failed rmmod taints the VM: the next test boots afresh


@pytest.fixture
def wqlab(request: pytest.FixtureRequest, wqlab_vm: Vm, wqlab_ko: Path) -> Iterator[WqlabClient]:
    yield from _load(request, wqlab_vm, wqlab_ko, "debugfs")


@pytest.fixture
def wqlab_ioctl(
    request: pytest.FixtureRequest, wqlab_vm: Vm, wqlab_ko: Path
) -> Iterator[WqlabClient]:
    yield from _load(request, wqlab_vm, wqlab_ko, "ioctl")


@pytest.fixture
def wqlab_netlink(
    request: pytest.FixtureRequest, wqlab_vm: Vm, wqlab_ko: Path
) -> Iterator[WqlabClient]:
    yield from _load(request, wqlab_vm, wqlab_ko, "netlink")


@pytest.fixture
def wqlab_trace(request: pytest.FixtureRequest, wqlab_vm: Vm) -> Iterator[TraceInstance]:
    """The VM's trace instance, emptied and re-armed for this test: only this test's
    events are in it (every event off, filters cleared, then its events on and the
    buffer emptied, with tracing off). Request it after ``wqlab`` to get ``wqlab:*`` too
    (that module, loaded for this test and unloaded after it, has its events unpinned:
    ``arm_trace``'s ``fresh_module``)."""
    inst = arm_trace(wqlab_vm, fresh_module=_CLIENT in request.node.stash)
    request.node.stash[_TRACE] = inst
    yield inst
    disarm_trace(wqlab_vm, inst)


# parallel VMs --------------------------------------------------------------------------
WHOLE_VM = "whole_vm"
_IN_USE = pytest.StashKey[bool]()  # some collected test uses wqlab (a fixture, whole_vm)


def _is_whole_vm(item: pytest.Item) -> bool:
    return any(m.args[:1] == (WHOLE_VM,) for m in item.iter_markers("xdist_group"))


def _xdist_kind(item: pytest.Item) -> str:
    if _is_whole_vm(item):
        return xdist_sched.WHOLE_VM
    long = item.get_closest_marker("slow") or item.get_closest_marker("wqlab_long")
    return xdist_sched.SLOW if long else xdist_sched.REST


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note whether wqlab is used at all. If it is, an xdist worker writes the plan that
    the controller schedules by (``whole_vm`` tests first on one worker, ``slow`` ones
    after them side by side, the rest around them: :mod:`wqlab.xdist_sched`)."""
    config.stash[_IN_USE] = any(
        any(f.startswith("wqlab") for f in getattr(item, "fixturenames", ())) or _is_whole_vm(item)
        for item in items
    )
    # only for the scheduler that reads it (``--dist load``, what -n gives; a worker's own
    # dist option is always "no": the controller says, pytest_configure_node): under another
    # --dist nothing would take the file away
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get(_PLAN) and config.stash[_IN_USE]:
        kinds = {item.nodeid: _xdist_kind(item) for item in items}
        xdist_sched.write_plan(artifacts_dir(config), workerinput["testrunuid"], kinds)


_PLAN = "wqlab_plan"  # in a worker's workerinput: write the plan (the controller reads it)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, controller) Tell each worker whether the scheduler reads a plan."""
    node.workerinput[_PLAN] = node.config.getvalue("dist") == "load"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, by kind of test when the workers wrote a plan."""
    if config.getvalue("dist") != "load":
        return None
    return xdist_sched.phased_scheduling(config, log, artifacts_dir(config))


_LOCKS = pytest.StashKey[tuple[IO[str], IO[str]]]()  # a whole_vm test's turnstile, lock


def _lock(turn: IO[str], lk: IO[str], how: int) -> None:
    """Take the whole_vm lock ``how`` (shared, exclusive) through the turnstile. Never
    called with the lock held: a worker that waits holds nothing another one waits for."""
    fcntl.flock(turn, fcntl.LOCK_EX)
    fcntl.flock(lk, how)
    fcntl.flock(turn, fcntl.LOCK_UN)


HOST_NICE = 10  # a wqlab_host test beside a whole_vm body
VM_GROUP_NICE = -10  # a whole_vm test's VMs' sessions meanwhile (weight 9548 against 1024)
CAP_SYS_NICE = 23


@functools.cache  # asked before every unit test: the capability is the process's for life
def may_renice() -> bool:
    """May this process lower a nice value again (its own after a host test, its VMs'
    sessions' below 0)? CAP_SYS_NICE, not merely uid 0: Docker's default capability set
    and a rootless container's root lack it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    except (OSError, ValueError):
        pass
    return False


def _host_only(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    """A ``wqlab_host`` test that may run without the lock: not ``whole_vm`` itself, not
    the worker's last test (its teardown stops the session's VMs), and where the
    priorities that keep it behind a ``whole_vm`` body's VM can be set and undone."""
    return (
        item.get_closest_marker("wqlab_host") is not None
        and not _is_whole_vm(item)
        and nextitem is not None
        and may_renice()
    )


@contextlib.contextmanager
def _niced(inc: int) -> Iterator[None]:
    """This thread (and what it starts meanwhile: Linux keeps a nice value per thread)
    at its nice value + ``inc``."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, min(before + inc, 19))
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def set_group_nice(pid: int, nice: int, tries: int = 3) -> bool:
    """The autogroup nice of ``pid``'s session (``/proc/<pid>/autogroup``: every process
    of the session, a VM's QEMU with its vng); False if the kernel has no autogroups or
    refused (no CAP_SYS_NICE). Without CAP_SYS_ADMIN the kernel takes one change in a
    tenth of a second (EAGAIN otherwise): tried again after that."""
    for _ in range(tries):
        try:
            Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
            return True
        except OSError as e:
            if e.errno != errno.EAGAIN:
                return False
            time.sleep(0.11)
    return False


@contextlib.contextmanager
def _vms_first() -> Iterator[None]:
    """This worker's VMs ahead of the host's other sessions (the unit tests beside a
    whole_vm body) while the body runs; back to nice 0 after."""
    pids = [vm.proc.pid for vm in live_vms() if vm.proc is not None]
    raised = [pid for pid in pids if may_renice() and set_group_nice(pid, VM_GROUP_NICE)]
    try:
        yield
    finally:
        for pid in raised:
            set_group_nice(pid, 0)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """In an xdist worker: a ``whole_vm`` test runs alone on the host (an exclusive lock),
    every other test beside the others (the same lock, shared). A turnstile lock in front
    keeps a waiting ``whole_vm`` test from being starved by the others' shared locks.
    Outermost (tryfirst), so that the wait is not part of a test's timeout (nor are the
    waits of ``_relock``, which stop the timer). A ``whole_vm`` test holds the lock
    exclusively only while its body runs (``pytest_runtest_call``): its set-up and
    teardown (a boot, a module load) share the host like any test, so the other workers
    go on meanwhile. A session none of whose tests uses a wqlab fixture or is
    ``whole_vm`` (a project that does not use wqlab) takes no lock and writes nothing."""
    if not hasattr(item.config, "workerinput") or not item.config.stash.get(_IN_USE, False):
        yield
        return
    if _host_only(item, nextitem):
        with _niced(HOST_NICE):
            yield
        return
    root = artifacts_dir(item.config)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".whole_vm.turn").open("a") as turn, (root / ".whole_vm.lock").open("a") as lk:
        _lock(turn, lk, fcntl.LOCK_SH)
        if _is_whole_vm(item):
            item.stash[_LOCKS] = (turn, lk)
        try:
            yield  # the lock goes when the file closes
        finally:
            if _LOCKS in item.stash:
                del item.stash[_LOCKS]


_TIMEOUT = pytest.StashKey[Any]()  # pytest-timeout's settings for the test, when it has it


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout arms a test's timer: keep its settings, to arm it again after a
    wait for the lock (it goes on to arm the timer: this returns None)."""
    item.stash[_TIMEOUT] = settings


def _relock(item: pytest.Item, turn: IO[str], lk: IO[str], how: int) -> None:
    """Let the lock go and take it ``how``, the test's timer (pytest-timeout, which
    arms it inside this plugin's protocol wrapper) stopped meanwhile: waiting for
    another worker's test is not this test's time, and a timeout must not fire inside
    ``flock`` with the turnstile held. The timer starts again afterwards, from zero."""
    settings = item.stash.get(_TIMEOUT, None)
    if getattr(settings, "func_only", False):
        settings = None  # timed around the body only: no timer runs while we wait here
    if settings is not None:
        item.config.hook.pytest_timeout_cancel_timer(item=item)
    fcntl.flock(lk, fcntl.LOCK_UN)
    _lock(turn, lk, how)
    if settings is not None:
        item.config.hook.pytest_timeout_set_timer(item=item, settings=settings)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A ``whole_vm`` test's body: the shared lock its set-up held is let go and the lock
    taken exclusively (through the turnstile), then shared again for its teardown."""
    locks = item.stash.get(_LOCKS, None)
    if locks is None:
        yield
        return
    turn, lk = locks
    _relock(item, turn, lk, fcntl.LOCK_EX)
    try:
        with _vms_first():
            yield
    finally:
        _relock(item, turn, lk, fcntl.LOCK_SH)


# CPU a test cost the host -------------------------------------------------------------
# Two numbers per test, as JUnit properties (``guest_cpu_s``, ``host_cpu_s``) and summed up
# at the end of the session: the CPU time of this worker's VMs (QEMU and its helpers) and
# of the pytest process itself with the processes it started and reaped (builds, pip,
# inner sessions with their VMs) while the test's set-up, call and teardown ran. On a
# host without spare cores, CPU time, not sleeping, is what a test costs the suite.
_CPU0 = pytest.StashKey[tuple[dict[int, float], float]]()
GUEST_CPU, HOST_CPU = "guest_cpu_s", "host_cpu_s"


def _vm_cpu() -> dict[int, float]:
    out = {}
    for vm in live_vms():
        t = vm.cpu_seconds()
        if t is not None:
            out[id(vm)] = t
    return out


def _own_cpu() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if item.config.stash.get(_IN_USE, False):
        item.stash[_CPU0] = (_vm_cpu(), _own_cpu())
    yield


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield
    start = item.stash.get(_CPU0, None)
    if start is None:
        return
    vms0, own0 = start
    vms = _vm_cpu()
    # A VM booted during the test counts from 0. One stopped during it (a session's last
    # test, a fresh VM after a splat) was reaped: its whole life's CPU came into
    # RUSAGE_CHILDREN, of which only what it spent during the test (counted as host) is
    # this test's.
    guest = sum(t - vms0.get(key, 0.0) for key, t in vms.items())
    host = _own_cpu() - own0 - sum(t for key, t in vms0.items() if key not in vms)
    item.user_properties += [
        (GUEST_CPU, round(max(guest, 0.0), 2)),
        (HOST_CPU, round(max(host, 0.0), 2)),
    ]


# reports ------------------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome: Any = yield
    rep: pytest.TestReport = outcome.get_result()
    watch = item.stash.get(_WATCH, None)
    if watch is None or rep.when not in ("call", "teardown"):
        if rep.failed and rep.when == "setup":
            _save_artifacts(item, rep)
        return
    vm, mark, _ = watch
    if call.excinfo is not None and call.excinfo.errisinstance((GuestTimeoutError, VmLostError)):
        vm.retire(f"{item.nodeid}: the guest stopped answering", hung=True)
    splats = vm.splats_since(mark)
    reported = item.stash.get(_SPLATS_REPORTED, 0)
    if rep.when == "call":
        splats += _dmesg_splats(item)
    if len(splats) > reported:
        item.stash[_SPLATS_REPORTED] = len(splats)
        vm.retire(f"a kernel splat during {item.nodeid}")  # the next test: a fresh VM
        text = "\n\n".join("\n".join(getattr(s, "text", [str(s)])) for s in splats[reported:])
        rep.outcome = "failed"
        rep.longrepr = f"kernel splat during {item.nodeid}:\n{text}\n\n{rep.longrepr or ''}"
    if rep.failed:
        _save_artifacts(item, rep)


def _dmesg_splats(item: pytest.Item) -> list[Splat]:
    vm, mark, dmesg_mark = item.stash[_WATCH]
    if not vm.alive or vm.unresponsive:
        return []
    try:
        out = dmesg_since(vm.agent(), dmesg_mark)
    except HarnessError:
        return []
    item.stash[_DMESG] = out
    found = find_splats(out.splitlines(), context=40)
    # the console watcher may have seen the same splat: count each splat once
    seen = {s.line.split("] ", 1)[-1] for s in vm.splats_since(mark)}
    return [s for s in found if s.line.split("] ", 1)[-1] not in seen]


def _save_artifacts(item: pytest.Item, rep: pytest.TestReport) -> None:
    root = artifacts_dir(item.config)
    d = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"report-{rep.when}.txt").write_text(str(rep.longrepr))
    watch = item.stash.get(_WATCH, None)
    if watch is None:
        return
    vm, mark, dmesg_mark = watch
    (d / "console.txt").write_text(vm.console_since(mark))
    if not vm.alive or vm.unresponsive:
        return
    agent = vm.agent()
    try:
        dmesg = item.stash.get(_DMESG, None) or dmesg_since(agent, dmesg_mark)
        (d / "dmesg.txt").write_text(dmesg)
        inst = item.stash.get(_TRACE, None)
        if inst is not None:
            (d / "trace.txt").write_text(inst.read())
        client = item.stash.get(_CLIENT, None)
        if client is not None and is_loaded(agent):
            state = [
                f"## {n}\n{client.read(n)}" for n in ("works", "workqueues", "stats", "features")
            ]
            (d / "module-state.txt").write_text("\n".join(state))
            (d / "kallsyms.txt").write_text(kallsyms(agent, "wqlab"))
    except HarnessError as e:
        (d / "artifact-error.txt").write_text(str(e))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cfg = _CONFIG.get("config")
    if cfg is None:
        return
    results = cfg.stash[_KTAP]
    if report.when == "call" or (report.when == "setup" and not report.passed):
        status = "skip" if report.skipped else ("ok" if report.passed else "not ok")
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2])
        results.append((report.nodeid, status, reason))
    elif report.when == "teardown" and report.failed:
        results.append((report.nodeid + " (teardown)", "not ok", ""))
    if report.when == "teardown":
        props: dict[str, Any] = dict(report.user_properties)
        if GUEST_CPU in props:
            cfg.stash.setdefault(_CPU, []).append(
                (float(props[GUEST_CPU]), float(props[HOST_CPU]), report.nodeid)
            )


_CPU = pytest.StashKey[list[tuple[float, float, str]]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """What the tests cost in CPU (see ``GUEST_CPU``), and the tests that cost the most."""
    rows = config.stash.get(_CPU, [])
    if not rows or hasattr(config, "workerinput"):
        return
    guest, host = sum(r[0] for r in rows), sum(r[1] for r in rows)
    tr = terminalreporter
    tr.write_sep("-", "wqlab: CPU time the tests cost the host")
    tr.write_line(f"{len(rows)} tests: VMs {guest:.0f} s, pytest and its children {host:.0f} s")
    for g, h, nodeid in sorted(rows, key=lambda r: -(r[0] + r[1]))[:10]:
        tr.write_line(f"{g + h:7.1f} s (VM {g:.1f}, host {h:.1f})  {nodeid}")


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--wqlab-ktap")
    if not path or hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller gets every report and writes the file
    results = session.config.stash[_KTAP]
    lines = ["KTAP version 1", f"1..{len(results)}"]
    for i, (name, status, reason) in enumerate(results, 1):
        if status == "skip":
            lines.append(f"ok {i} {name} # SKIP {reason}")
        else:
            lines.append(f"{status} {i} {name}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
