"""Boot a Debian kernel with virtme-ng and keep it for a whole test session.

``build_vng_argv`` is pure (a unit test compares the exact list); ``Vm`` runs it. The
guest runs ``wqlab/guest_agent.py`` as vng's ``--exec`` command: requests and replies use
virtio-serial ports (vng's stdin/stdout), and the kernel console (vng's stderr, with
``--verbose``) is kept in a log file and watched for splats.

Fast boot (the default), measured by ``make bench`` against plain ``vng --exec true``:
  * QEMU loads the uncompressed ``vmlinux`` (PVH entry, see ``bootimage``) instead of the
    bzImage: no decompression under TCG (about 5 s for a 6.1 kernel);
  * vng's kernel command line is replaced (a later QEMU ``-append`` wins) by one whose init
    is the guest agent itself, PID 1 right after virtme-ng's initramfs: no virtme-ng-init,
    systemd-tmpfiles or udev (about 10 s); see ``wqlab/guest_agent.py --init``.
Set ``fast=False`` for plain vng (its own init, the bzImage).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from .bootimage import cache_dir, pvh_vmlinux
from .channel import AgentChannel
from .errors import SetupError, VmBootError, VmLostError
from .reaper import cpu_seconds, group_members, kill_family
from .resources import guest_agent, guest_init
from .splat import PANIC_RE, Splat, splat_kind
from .wait import wait_for

log = logging.getLogger(__name__)
USR_TAG = "wqlab_usr"  # the /usr share's 9p mount tag: guest_agent.USR_TAG, which mounts it
# its mount options, guest_agent.USR_OPTS: the fast boot's init (guest_init.sh) mounts it
USR_OPTS = "trans=virtio,version=9p2000.L,cache=loose,access=any,msize=524288"

REAPER = Path(__file__).resolve().with_name("reaper.py")  # run as a script: the host side
KVM_DEV = "/dev/kvm"
KVM_PROBE_FILE = "kvm-probe.json"  # in cache_dir(): the probe's verdicts on this machine
FAMILY_VAR = "WQLAB_FAMILY"  # in the environment of every VM and probe: see new_family()
BLACKLIST = ("kvm", "kvm_amd", "kvm_intel", "ahci", "sr_mod", "i6300esb", "powernow_k8")

# Kernel splats (wqlab/splat.py) fail the test in progress: see Vm._add_console_line.


@dataclass(frozen=True)
class VmConfig:
    """Everything that decides how the VM boots."""

    image: Path
    cpus: int = 2
    memory: str = "1G"
    kvm: bool = False
    fast: bool = True
    pvh: bool = True  # fast boots load the uncompressed vmlinux when the kernel allows it
    boot_image: Path | None = None  # that vmlinux (set by Vm.start); None: boot ``image``
    loglevel: int = 5
    cwd: Path = field(default_factory=Path.cwd)  # the guest's working directory
    python: str = "/usr/bin/python3"
    agent: Path = field(default_factory=guest_agent)  # package data, seen through 9p
    init_script: Path = field(default_factory=guest_init)  # the fast boot's PID 1, with usr_cache
    blacklist: tuple[str, ...] = BLACKLIST
    append: tuple[str, ...] = ()
    ssh_port: int | None = None  # host 127.0.0.1:<port> forwards to the guest's port 22
    serial_socket: Path | None = None  # the guest's ttyS1 on this unix socket (a server)
    # fast boot: /usr again as a share the guest caches (USR_TAG); WQLAB_USR_CACHE=0: not
    usr_cache: bool = field(default_factory=lambda: os.environ.get("WQLAB_USR_CACHE") != "0")
    # without KVM: QEMU's TCG runs every vCPU in one host thread ("single") or one thread
    # each ("multi"): see tcg_thread_mode()
    tcg_thread: str = field(default_factory=lambda: tcg_thread_mode())
    vng: str = field(default_factory=lambda: default_vng())

    @property
    def exec_command(self) -> str:
        # -I -S: no site, no user site, no PYTHON* variables: the agent needs only the
        # standard library, and skipping site's scan of dist-packages over 9p saves
        # seconds of guest start-up under TCG
        return f"exec {self.python} -I -S -u {self.agent}"


def tcg_thread_mode() -> str:
    """How QEMU's TCG runs a VM's vCPUs: ``WQLAB_TCG_THREAD`` (single or multi); else one
    host thread for all of them ("single") when several VMs run at once (a pytest-xdist
    worker of several: ``PYTEST_XDIST_WORKER_COUNT``, and the VMs its tests boot), one
    thread each ("multi") for a VM alone (the demo, the shell, ``make bench``, JOBS=1).

    With more vCPUs than free host cores, multi-threaded TCG loses host time to the
    guest's own waiting: a vCPU spins on a lock, or waits for an IPI's answer, held by a
    vCPU whose host thread is not running. One thread for all vCPUs interleaves them
    instead. Measured on 2 host cores (README, Measured): the same tests took 25 % less
    CPU, and three single-threaded VMs ran them a third faster than two multi-threaded
    ones; but a VM alone on the host is quicker with a thread per vCPU (``make bench``: a
    test's fixed cost 0.15 s against 0.33 s, a module load+unload 0.09 s against 0.26 s)."""
    mode = os.environ.get("WQLAB_TCG_THREAD")
    if mode is None:
        workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
        return "single" if workers.isdigit() and int(workers) > 1 else "multi"
    if mode not in ("single", "multi"):
        raise SetupError(f"WQLAB_TCG_THREAD={mode!r}: use single or multi")
    return mode


def default_vng() -> str:
    """``vng`` next to this Python (the project's .venv), else whatever PATH has."""
    here = Path(sys.executable).parent / "vng"
    return str(here) if here.exists() else "vng"


def vng_env(vng: str) -> dict[str, str]:
    """vng runs ``virtme-run`` from PATH: put vng's own directory first."""
    env = dict(os.environ)
    bindir = os.path.dirname(shutil.which(vng) or vng)
    if bindir:
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def boot_deadline(
    kvm: bool,
    load: float,
    ncpu: int,
    last_boot: float | None = None,
    override: str | None = None,
) -> float:
    """Seconds a boot may take before it counts as hung (pure).

    ``override`` (``WQLAB_BOOT_TIMEOUT``) wins. Otherwise a base (60 s with KVM, 120 s
    under TCG: an idle 2-core machine boots in about 25 s) scaled by how busy the host is
    (1-minute load per CPU: other VMs share the cores), and never less than four times
    this session's last boot; at most 900 s.
    """
    if override:
        return float(override)
    base = 60.0 if kvm else 120.0
    busy = max(1.0, 1.0 + load / max(1, ncpu))
    t = base * busy
    if last_boot:
        t = max(t, 4.0 * last_boot)
    return min(900.0, t)


def host_boot_deadline(kvm: bool, last_boot: float | None = None) -> float:
    """:func:`boot_deadline` for this host now (its load, its CPUs, WQLAB_BOOT_TIMEOUT)."""
    return boot_deadline(
        kvm,
        os.getloadavg()[0],
        os.cpu_count() or 1,
        last_boot,
        os.environ.get("WQLAB_BOOT_TIMEOUT"),
    )


def open_console_log(path: Path) -> tuple[Path, IO[str]]:
    """Open ``path`` to append, locked; if another live VM (another pytest session, the
    CLI) holds it, use ``<stem>.2<suffix>``, ``.3``... so that no two consoles interleave.
    The lock goes with the file when the VM stops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        p = path if n == 1 else path.with_name(f"{path.stem}.{n}{path.suffix}")
        f = open(p, "a", encoding="utf-8", errors="replace")  # kept open
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        return p, f
    raise AssertionError("unreachable")


def is_cmdline_word(word: str) -> bool:
    """Can ``word`` go on a kernel command line as one argument (no space, no quote)?"""
    return bool(word) and not any(c.isspace() or c == '"' for c in word)


def build_cmdline(cfg: VmConfig) -> str:
    """The kernel command line of a fast boot: the guest agent is init (pure).

    virtme-ng's initramfs mounts the host's root and execs ``init=`` with the arguments
    after ``--``; nothing else here is for virtme-ng-init, which does not run.
    """
    parts = [
        "console=ttyS0",
        "panic=-1",
        f"loglevel={cfg.loglevel}",
        # no CPU vulnerability mitigations (page-table isolation, retpolines...) in a
        # throw-away test VM: faster syscalls and boot under TCG, same workqueue code
        "mitigations=off",
        # no self-tests of the crypto algorithms the kernel registers at boot (hmac, kdf,
        # sha...): 1.4 s of a single-threaded TCG boot's 12.9 s of CPU (three boots each
        # way, back to back), nothing a workqueue test uses
        "cryptomgr.notests",
    ]
    if cfg.blacklist:
        parts.append("modprobe.blacklist=" + ",".join(cfg.blacklist))
    parts += list(cfg.append)
    init = [f"init={cfg.python}", "--"]
    if cfg.usr_cache:
        # busybox (static) mounts the cached /usr share first, then execs Python from it:
        # boot to a ready agent 11.1-12.3 s -> 8.7-9.7 s, 12.4-13.2 -> 9.9-10.8 s of CPU
        # (three boots each way, alternated): wqlab/guest_init.sh
        init = ["init=/bin/busybox", "--", "sh", str(cfg.init_script), USR_TAG, USR_OPTS]
        init.append(cfg.python)
    init += ["-I", "-S", "-u", str(cfg.agent), "--init", "--chdir", str(cfg.cwd)]
    for p in init:
        if not is_cmdline_word(p):
            raise SetupError(f"fast boot: {p!r} cannot go on a kernel command line; move it")
    return " ".join(parts + init)


def build_vng_argv(cfg: VmConfig) -> list[str]:
    """The ``vng`` command line that boots ``cfg`` (pure)."""
    argv = [cfg.vng, "--run", str(cfg.image), "--cpus", str(cfg.cpus), "--memory", cfg.memory]
    argv += ["--force-9p", "--verbose", "--cwd", str(cfg.cwd)]
    if not cfg.kvm:
        argv.append("--disable-kvm")
        argv += ["--qemu-opts=-accel", f"--qemu-opts=tcg,thread={cfg.tcg_thread}"]
    # the fast boot's init ignores the command but needs the stdin/stdout ports it brings
    argv += ["--exec", cfg.exec_command]
    if cfg.ssh_port:
        # a user-mode NIC whose only way in is 127.0.0.1:<ssh_port> on the host
        argv += [
            "--qemu-opts=-netdev",
            f"--qemu-opts=user,id=wqnet,hostfwd=tcp:127.0.0.1:{cfg.ssh_port}-:22",
            "--qemu-opts=-device",
            "--qemu-opts=virtio-net-pci,netdev=wqnet",
        ]
    if cfg.serial_socket:
        # a second UART (ttyS1) on a unix socket that QEMU serves: the serial-console
        # target's line (wqlab.serial_target); ttyS0 stays vng's console
        sock = f"unix:{cfg.serial_socket},server=on,wait=off"
        argv += ["--qemu-opts=-serial", "--qemu-opts=" + shlex.quote(sock)]
    if cfg.fast:
        # the fast boot's init= runs once virtme-ng's initramfs has mounted the root; vng
        # makes an initramfs only when it has modules to put in it, so a kernel with 9p and
        # virtio built in (the debug line) would get none and no root: always ask for one
        argv.append("--force-initramfs")
    if cfg.fast and cfg.usr_cache:
        # the host's /usr a second time, read-only, as a 9p share that the agent (init)
        # mounts over /usr with cache=loose: see guest_agent.USR_TAG
        argv += [
            "--qemu-opts=-fsdev",
            f"--qemu-opts=local,id={USR_TAG},path=/usr,security_model=none,readonly=on,"
            "multidevs=remap",
            "--qemu-opts=-device",
            f"--qemu-opts=virtio-9p-pci,fsdev={USR_TAG},mount_tag={USR_TAG}",
        ]
    if cfg.fast and cfg.boot_image:
        # a later -kernel wins: vng still reads the bzImage (version, modules)
        argv += ["--qemu-opts=-kernel", "--qemu-opts=" + shlex.quote(str(cfg.boot_image))]
    if cfg.fast:
        # vng hands --qemu-opts to a shell: quote the command line once for it.
        argv += ["--qemu-opts=-append", "--qemu-opts=" + shlex.quote(build_cmdline(cfg))]
    else:
        extra = []
        if cfg.blacklist:
            extra.append("modprobe.blacklist=" + ",".join(cfg.blacklist))
        extra += list(cfg.append)
        for a in extra:
            argv += ["--append", a]
    return argv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for the guest's SSH forward)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_family(env: dict[str, str]) -> str:
    """Mark ``env`` (a command's environment) with a fresh ``WQLAB_FAMILY=<id>``; return
    that marker for :func:`wqlab.reaper.kill_family`, which finds by it every process
    the command starts, even one that left its process group."""
    marker = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    env[FAMILY_VAR] = marker
    return f"{FAMILY_VAR}={marker}"


def probe_kvm(
    image: Path, vng: str | None = None, timeout: float = 60.0, dev: str = KVM_DEV
) -> bool:
    """True only if a real KVM boot of ``image`` succeeds (a /dev/kvm may exist and fail).

    A probe that has not finished within ``timeout`` seconds counts as a hang. Whatever
    the outcome, nothing the probe started is left running: vng, its ``sh -c
    virtme-run``, QEMU and anything that moved to a session of its own
    (:func:`wqlab.reaper.kill_family`; a hung KVM QEMU would spin for ever).
    """
    if not os.access(dev, os.R_OK | os.W_OK):
        return False
    argv = [vng or default_vng(), "--run", str(image), "--force-9p", "--exec", "true"]
    log.info("$ %s   # KVM probe", shlex.join(argv))
    env = vng_env(argv[0])
    marker = new_family(env)
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: no reader to block
        try:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # one group and session: kill_family's leader
                env=env,
            )
        except OSError as e:
            log.info("KVM probe: cannot run %s (%s); using TCG", argv[0], e)
            return False
        rc: int | None = None
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.info("KVM probe hung for %.0f s; killing it, using TCG", timeout)
        finally:  # also on KeyboardInterrupt: the probe dies with us
            left = kill_family(p.pid if p.returncode is None else None, marker)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)  # reaped, unless stuck in the kernel (logged below)
            if left:
                log.warning("KVM probe: processes %s survived SIGKILL", left)
        if rc != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
            log.debug("KVM probe stderr:\n%s", "\n".join(tail))
    ok = rc == 0
    if rc is not None:
        log.info("KVM probe %s", "succeeded" if ok else f"failed ({rc}); using TCG")
    return ok


def _stat_id(path: str | Path | None, dev: bool = False) -> str:
    """Size and mtime of a file, or a device node's number, mtime and ctime (ns)."""
    if path is None:
        return "none"
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}@missing"
    if dev:
        rdev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        return f"{path}@{rdev},m{st.st_mtime_ns},c{st.st_ctime_ns}"
    return f"{path}@{st.st_size},m{st.st_mtime_ns}"


def kvm_probe_key(image: Path, dev: str = KVM_DEV, qemu: str | None = None) -> str:
    """What decides the KVM probe's verdict, as one line: this machine (host name, host
    kernel release), its ``dev`` (/dev/kvm: device number, mtime, ctime: recreated at
    each host boot, its ctime changes with its permissions), QEMU (``qemu`` or
    ``qemu-system-x86_64`` from PATH: size and mtime, no process run) and the kernel
    image the probe boots (path, size, mtime)."""
    qemu = qemu or shutil.which("qemu-system-x86_64")
    u = os.uname()
    return " ".join(
        [
            f"host={u.nodename}",
            f"release={u.release}",
            f"kvm={_stat_id(dev, dev=True)}",
            f"qemu={_stat_id(os.path.realpath(qemu) if qemu else None)}",
            f"image={_stat_id(image)}",
        ]
    )


def cached_kvm_verdict(path: Path, key: str) -> bool | None:
    """The verdict remembered in ``path`` for ``key``, or ``None`` (never probed)."""
    try:
        verdict = json.loads(path.read_text())[key]["kvm"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return verdict if isinstance(verdict, bool) else None


def remember_kvm_verdict(path: Path, key: str, kvm: bool, keep: int = 16) -> None:
    """Add ``key``'s verdict to ``path`` (the newest ``keep`` stay), atomically: a
    concurrent session reads the old file or the new one, never half of one."""
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known.pop(key, None)
    known[key] = {"kvm": kvm, "probed": time.strftime("%F %T")}
    known = dict(list(known.items())[-keep:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = tempfile.NamedTemporaryFile(  # renamed below
            "w", dir=path.parent, delete=False, prefix=".tmp-"
        )
        try:
            with f:
                json.dump(known, f, indent=1)
            os.chmod(f.name, 0o644)
            os.replace(f.name, path)
        except BaseException:
            os.unlink(f.name)
            raise
    except OSError as e:
        log.warning("cannot remember the KVM probe's verdict in %s (%s)", path, e)


def kvm_works(
    image: Path, vng: str | None = None, dev: str = KVM_DEV, cache: Path | None = None
) -> bool:
    """Whether to boot with KVM: ``WQLAB_KVM=0|1`` if set, else the probe's verdict for
    this machine, probed once and kept in ``<cache_dir()>/kvm-probe.json`` under
    :func:`kvm_probe_key` (delete the file to probe again)."""
    forced = os.environ.get("WQLAB_KVM")
    if forced in ("0", "1"):
        return forced == "1"
    if not os.access(dev, os.R_OK | os.W_OK):
        return False
    vng = vng or default_vng()
    if shutil.which(vng) is None:  # not a verdict on KVM: do not remember it
        return False
    path = (cache or cache_dir()) / KVM_PROBE_FILE
    key = kvm_probe_key(image, dev)
    known = cached_kvm_verdict(path, key)
    if known is not None:
        log.info(
            "KVM %s on this machine (probed before: %s; delete it or set WQLAB_KVM to probe again)",
            "works" if known else "hangs or fails: using TCG",
            path,
        )
        return known
    ok = probe_kvm(image, vng, dev=dev)
    remember_kvm_verdict(path, key, ok)
    return ok


_LIVE: weakref.WeakSet[Vm] = weakref.WeakSet()


def live_vms() -> list[Vm]:
    """The VMs this process started and has not killed yet."""
    return list(_LIVE)


def _kill_all_live() -> None:
    for vm in list(_LIVE):
        vm.kill()


atexit.register(_kill_all_live)


class Vm:
    """One running VM with its guest agent. Use as a context manager."""

    # a kernel booted for the harness alone: its own housekeeping may tune it while it
    # runs (wqlab.session: expedited grace periods for its tracefs and unload steps)
    private_kernel = True

    def __init__(self, cfg: VmConfig, console_log: Path, name: str = "vm") -> None:
        self.cfg = cfg
        self.name = name
        self.console_log = console_log
        self.proc: subprocess.Popen[bytes] | None = None
        self._cpu_pids: list[int] = []  # its process group, for cpu_seconds()
        self.channel: AgentChannel | None = None
        self.console: list[str] = []
        self.splats: list[Splat] = []
        self.boot_seconds: float | None = None
        self.panicked = False
        self.tainted = False  # retire(): callers should not reuse this VM
        self.unresponsive = False  # retire(hung=True): the guest stopped answering
        self._console_lock = threading.Lock()
        self._log: IO[str] | None = None
        self._family: str | None = None  # WQLAB_FAMILY=... of the processes it started
        self._threads: list[threading.Thread] = []

    # lifecycle ------------------------------------------------------------------------
    def start(self, boot_timeout: float = 240.0) -> Vm:
        if shutil.which(self.cfg.vng) is None:
            raise SetupError(f"{self.cfg.vng} not found: run `make setup` (installs virtme-ng)")
        t0 = time.monotonic()  # a first PVH boot of a kernel counts its extraction
        if self.cfg.fast and self.cfg.pvh and self.cfg.boot_image is None:
            self.cfg = replace(self.cfg, boot_image=pvh_vmlinux(self.cfg.image))
        argv = build_vng_argv(self.cfg)
        log.info("$ %s", shlex.join(argv))
        env = vng_env(self.cfg.vng)
        self._family = new_family(env)
        self.console_log, self._log = open_console_log(self.console_log)
        self._log.write(f"### {time.strftime('%F %T')} $ {shlex.join(argv)}\n")
        self._cpu_pids = []
        self.proc = subprocess.Popen(
            [sys.executable, str(REAPER), *argv],  # takes the group down if we die
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # one process group: kill() takes vng, QEMU, virtiofsd
            cwd=self.cfg.cwd,
            env=env,
        )
        _LIVE.add(self)
        assert self.proc.stdout and self.proc.stdin and self.proc.stderr
        t = threading.Thread(
            target=self._console_loop,
            args=(self.proc.stderr,),
            name=f"{self.name}-console",
            daemon=True,
        )
        t.start()
        self._threads.append(t)
        self.channel = AgentChannel(
            self.proc.stdout, self.proc.stdin, on_other=self._on_console_bytes, name=self.name
        )
        try:
            self.channel.wait_ready(t0 + boot_timeout)
        except Exception as e:
            self.kill()
            tail = "\n".join(self.console[-30:])
            raise VmBootError(
                f"{self.name}: the guest agent was not ready within {boot_timeout:.0f} s "
                f"({e}); console log: {self.console_log}\n{tail}"
            ) from e
        self.boot_seconds = time.monotonic() - t0
        log.info("%s: ready in %.1f s", self.name, self.boot_seconds)
        return self

    def __enter__(self) -> Vm:
        return self if self.proc else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return (
            self.proc is not None
            and self.proc.poll() is None
            and self.channel is not None
            and self.channel.lost is None
            and not self.panicked
        )

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) so far of the VM's live processes (QEMU, vng, the
        reaper): what this guest has cost the host. None once it has stopped. Its group
        is looked up once, after the boot (a scan of /proc: 5 ms), then only read."""
        p = self.proc
        if p is None or p.poll() is not None:
            return None
        if not self._cpu_pids:
            self._cpu_pids = group_members(p.pid)
        return cpu_seconds(self._cpu_pids)

    def agent(self) -> AgentChannel:
        if self.channel is None or not self.alive:
            why = self.channel.lost if self.channel else "not started"
            raise VmLostError(f"{self.name} is not running ({why}); start a new VM")
        return self.channel

    def stop(self, timeout: float = 30.0) -> None:
        """Power off cleanly (agent exit), then make sure no process is left. A retired
        VM is killed without a power-off: nothing in it is wanted any more (the host holds
        its console; the root is the host's, read-only), and a kernel that killed a worker
        in an Oops never gets through one (a grading's crashing student: 20 s of waiting,
        then the kill all the same)."""
        if self.proc is None:
            return
        if not self.tainted:
            if self.channel and self.alive:
                self.channel.close(timeout=10)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not power off in %.0f s; killing it", self.name, timeout)
        self.kill()

    def kill(self) -> None:
        """Kill vng, QEMU and any helper they started (the whole process group, and
        whatever left it: :func:`wqlab.reaper.kill_family`)."""
        p = self.proc
        if p is None:
            return
        # a reaped leader no longer names its group: then the marker alone finds the rest
        left = kill_family(p.pid if p.poll() is None else None, self._family, grace=5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)  # reaped, unless stuck in the kernel (logged below)
        if left:
            log.warning("%s: processes %s survived SIGKILL", self.name, left)
        for t in self._threads:
            t.join(timeout=2)
        if self._log and not self._log.closed:
            self._log.flush()
            self._log.close()
        _LIVE.discard(self)

    def retire(self, why: str, hung: bool = False) -> None:
        """Mark this VM not to be reused (a splat, a failed unload): whoever keeps VMs
        boots a fresh one next. ``hung``: the guest stopped answering, so nothing more
        is asked of it (no kmemleak scan, no artifacts read from it)."""
        if not self.tainted:
            log.warning("%s: not reused (%s)", self.name, why)
        self.tainted = True
        self.unresponsive = self.unresponsive or hung

    def guest_path(self, local: Path) -> str:
        """Where the guest sees the host's file ``local`` (a module to insmod): the same
        path, through the 9p root (a :class:`wqlab.targets.TargetHost` copies it)."""
        return str(local)

    # console --------------------------------------------------------------------------
    def console_mark(self) -> int:
        """An index into the console; pair with ``console_since`` and ``splats_since``."""
        with self._console_lock:
            return len(self.console)

    def console_since(self, mark: int) -> str:
        with self._console_lock:
            return "\n".join(self.console[mark:])

    def splats_since(self, mark: int) -> list[Splat]:
        with self._console_lock:
            return [s for s in self.splats if s.index >= mark]

    def wait_console(self, pattern: str, timeout: float, since: int = 0) -> str:
        """Wait until a console line after ``since`` matches ``pattern``; return it."""
        rx = re.compile(pattern)

        def seen() -> str | None:
            with self._console_lock:
                line = next((ln for ln in self.console[since:] if rx.search(ln)), None)
            if line is None and self.proc is not None and self.proc.poll() is not None:
                raise VmLostError(f"{self.name} exited before a console line matched {pattern!r}")
            return line

        return wait_for(f"a console line matching {pattern!r}", seen, timeout)

    def _on_console_bytes(self, raw: bytes) -> None:
        self._add_console_line(raw.decode(errors="replace").rstrip("\r\n"))

    def _console_loop(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._on_console_bytes(raw)

    def _add_console_line(self, line: str) -> None:
        with self._console_lock:
            idx = len(self.console)
            self.console.append(line)
            if self._log and not self._log.closed:
                self._log.write(line + "\n")
                self._log.flush()
            # lines that follow a splat belong to it (call trace)
            for s in self.splats[-3:]:
                if idx - s.index < 60:
                    s.text.append(line)
            kind = splat_kind(line)
            if kind is not None:
                # WARN(cond, fmt...) prints its message on the line before "WARNING:"
                before = [ln for ln in self.console[max(0, idx - 2) : idx] if ln.startswith("[")]
                self.splats.append(Splat(line, idx, [*before, line], kind))
                log.error("%s: kernel splat (%s): %s", self.name, kind, line)
            if PANIC_RE.search(line):
                self.panicked = True
