"""Grade a student's lab module (``labs/<lab>/``) from what the kernel did.

``wqlab grade LAB --src DIR`` builds the module in ``DIR`` for the kernel, boots one VM for
the whole session, loads the module with the lab's parameters, waits for the exercise to
run (not at all for a module that can start nothing once its init has returned:
:func:`inert_module`), unloads it, and scores the lab's checks (``labs/<lab>/check.py``),
which are written on the lifecycles of the trace (:mod:`wqlab.lifecycle`). ``--batch
DIR`` grades one folder per student into a CSV. Every outcome is a row with a reason,
never an exception:

==================  ===========================================================  ======
what happened       reason shown                                                 score
==================  ===========================================================  ======
does not build      the compiler's errors                                        0
does not load       insmod's errno in words and the kernel log                   0
kernel report       the report (Oops, WARNING, BUG, lockdep...), from the console 0
hangs               which step got no answer in time                             0
cannot be unloaded  rmmod's errno in words                                       0
ran                 each check: points, and a hint for what it saw               sum
==================  ===========================================================  ======

A report, a hang or a module left loaded means a fresh VM for the next student. The bug
lab (``07-bug-patterns``) *expects* given reports: a scenario's ``expect`` patterns
(matched on :mod:`wqlab.splat`'s reports) turn those into points, and any other report
still zeroes the student.

A lab is a folder: ``README.md``, ``skeleton/`` and ``solution/`` (a Kbuild tree each, the
module named ``Lab.module``) and ``check.py`` defining ``LAB`` (a :class:`Lab`).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import kernels
from .build import build_module, sources_hash
from .channel import AgentChannel
from .client import INSMOD_ERRORS, RMMOD_ERRORS, is_loaded, module_error, module_params
from .errors import BuildError, GuestCommandError, HarnessError
from .kmsg import dmesg_mark, dmesg_since
from .lifecycle import Lifecycle, build_lifecycles
from .report import format_lifecycles
from .session import boot
from .splat import Splat, find_splats
from .symbols import SymbolMap
from .trace import TraceEvent, UnknownEvent, parse
from .tracefs import TraceInstance, kallsyms
from .vm import Vm

log = logging.getLogger(__name__)

# the labs of a checkout (next to the package); an installed wqlab has none: --labs DIR
LABS = Path(__file__).resolve().parent.parent / "labs"
TRACE_NAME = "wqlab_grade"
MARK_LOAD = "wqlab-grade: insmod"
MARK_LOADED = "wqlab-grade: loaded"
MARK_UNLOAD = "wqlab-grade: rmmod"
MARK_UNLOADED = "wqlab-grade: unloaded"


# --------------------------------------------------------------------------- lab model


@dataclass(frozen=True)
class Expect:
    """A kernel report a bug-lab scenario must provoke: the :mod:`wqlab.splat` kind of its
    first line and a regular expression searched in its text (first line, the line
    before it, the call trace)."""

    kind: str
    pattern: str

    def matches(self, splat: Splat) -> bool:
        return (
            splat.kind == self.kind and re.search(self.pattern, "\n".join(splat.text)) is not None
        )


@dataclass(frozen=True)
class Scenario:
    """One load of the student's module: parameters, when the exercise is over, what
    kernel reports it must provoke, whether to unload it afterwards."""

    name: str = "main"
    params: dict[str, Any] = field(default_factory=dict)
    done: Callable[[Run], bool] | None = None  # polled on the trace; None: wait `timeout`
    # seconds to wait for `done` after the load (not waited for an inert module: see
    # `inert_module`)
    timeout: float = 10.0
    after_unload: float = 0.0  # seconds to keep tracing after rmmod (teardown checks)
    expect: tuple[Expect, ...] = ()
    unload: bool = True  # False: the scenario wedges the module on purpose (VM replaced)
    skip: Callable[[KernelInfo], str | None] | None = None  # a reason to skip on this kernel
    # kernel tunables (guest paths, e.g. /sys/module/workqueue/parameters/...) written
    # before the load and restored after it; one this kernel lacks is left out
    tunables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """A graded property. ``fn`` returns ``None`` when it holds, else the hint for what it
    saw (the mistake it points at and what to do)."""

    name: str
    points: int
    fn: Callable[[Run], str | None]
    scenario: str = "main"


@dataclass(frozen=True)
class Lab:
    name: str  # the folder name, e.g. "01-global-queue"
    module: str  # the .ko the student builds (without .ko)
    title: str
    scenarios: tuple[Scenario, ...]
    checks: tuple[Check, ...]
    folder: Path | None = None  # set by load_lab: its solution's Kbuild builds the students'

    @property
    def max_points(self) -> int:
        return sum(c.points for c in self.checks)


@dataclass(frozen=True)
class KernelInfo:
    version: str
    line: tuple[int, int]
    debug: bool
    cpus: int
    config: frozenset[str]  # CONFIG_...=y options, when /proc/config.gz exists


@dataclass
class Run:
    """What one scenario's load of the student's module did: the checks' input."""

    lab: Lab
    scenario: Scenario
    kernel: KernelInfo
    events: list[TraceEvent] = field(default_factory=list)
    all_lcs: list[Lifecycle] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # /sys/module/<m>/parameters
    marks: dict[str, int] = field(default_factory=dict)  # trace_marker text -> ns
    reports: list[Splat] = field(default_factory=list)
    loaded: bool = False
    unloaded: bool = False
    skipped: str | None = None
    text: str = ""  # the raw trace, as last read while the module was loaded
    tunables: dict[str, str] = field(default_factory=dict)  # those in effect (read back)

    @property
    def lcs(self) -> list[Lifecycle]:
        """Executions of the student's module's functions, in trace order."""
        return [
            lc
            for lc in self.all_lcs
            if lc.function is not None and lc.function.module == self.lab.module
        ]

    def fn(self, name: str) -> list[Lifecycle]:
        """Lifecycles of work function ``name`` (the lab's predictable names)."""
        return [lc for lc in self.lcs if lc.function is not None and lc.function.name == name]

    def ran(self, name: str) -> list[Lifecycle]:
        """Completed executions of ``name``."""
        return [lc for lc in self.fn(name) if lc.started_ns is not None and lc.ended_ns is not None]

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    def table(self, lcs: Sequence[Lifecycle] | None = None) -> str:
        return format_lifecycles(self.lcs if lcs is None else lcs)


def ms(ns: int | float | None) -> str:
    return "?" if ns is None else f"{ns / 1e6:.1f} ms"


def own_text(splats: Sequence[Splat]) -> list[Splat]:
    """The reports with their text cut where the next report begins (the console watcher
    and :func:`wqlab.splat.find_splats` give each report the lines after it, which can
    hold the next one): an expectation must match a report's own words."""
    firsts = {s.line for s in splats}
    out = []
    for s in splats:
        text = list(s.text)
        start = text.index(s.line) if s.line in text else 0
        for i in range(start + 1, len(text)):
            if text[i] in firsts:
                # the next report's WARN message sits on the line before its first line
                text = text[: i - 1 if i - 1 > start and "cut here" in text[i - 1] else i]
                break
        out.append(Splat(s.line, s.index, text, s.kind))
    return out


# --------------------------------------------------------------------------- inert modules

# Kernel symbols through which a module can neither queue, arm nor start anything: with
# no other import, none of its code can run once its init has returned (no work item,
# timer, thread or callback of its own), so no event of its functions can come after the
# load. The untouched skeletons of labs 01-05 import only these. Anything else (any
# queueing, alloc_workqueue, a timer, a kthread) keeps the wait for `done` or `timeout`.
INERT_SYMBOLS = frozenset(
    {
        "__fentry__",
        "__x86_return_thunk",
        "__stack_chk_fail",
        "_printk",
        "msleep",
        "ktime_get",
        "cpu_number",
        "nr_cpu_ids",
        "__cpu_online_mask",
        "__cpu_possible_mask",
        "__SCT__cond_resched",
        "__msecs_to_jiffies",
        "strcmp",
        "strstr",
        # these wait for an item to be idle and queue nothing when it is not pending
        # (an item can only become pending through a queueing function, not listed here)
        "flush_work",
        "cancel_work_sync",
        "cancel_delayed_work_sync",
    }
)
INERT_PREFIXES = ("param_ops_",)  # a module parameter's kernel get/set


def module_imports(ko: Path) -> frozenset[str] | None:
    """The kernel symbols a ``.ko`` imports (its undefined symbols, by binutils' ``nm``);
    ``None`` when they cannot be read."""
    try:
        p = subprocess.run(
            ["nm", "--undefined-only", "--format=posix", str(ko)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except OSError:
        return None
    if p.returncode != 0:
        return None
    return frozenset(ln.split()[0] for ln in p.stdout.splitlines() if ln.split())


def inert_module(ko: Path) -> bool:
    """Can nothing of the module run after its init returned (its imports are all in
    :data:`INERT_SYMBOLS`)? Then a scenario is over at the load: what the trace holds when
    insmod returns is all its functions will ever do, and the grader does not wait out the
    scenario's ``timeout`` (an untouched skeleton: 6 s a lab)."""
    imports = module_imports(ko)
    return imports is not None and all(
        s in INERT_SYMBOLS or s.startswith(INERT_PREFIXES) for s in imports
    )


# --------------------------------------------------------------------------- results


@dataclass
class CheckResult:
    name: str
    points: int
    max_points: int
    status: str  # "pass", "fail", "skip"
    hint: str = ""


@dataclass
class Grade:
    student: str
    lab: str
    kernel: str
    status: str = "graded"  # graded, build-failed, load-failed, kernel-report, hang,
    # unload-failed, vm-lost, error
    reason: str = ""
    report: str = ""  # the kernel report / compiler output shown with the reason
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    runs: list[Run] = field(default_factory=list, repr=False)  # what each load did

    @property
    def max_points(self) -> int:
        return sum(c.max_points for c in self.checks if c.status != "skip")

    @property
    def score(self) -> int:
        if self.status != "graded":
            return 0
        return sum(c.points for c in self.checks)


# --------------------------------------------------------------------------- labs


def lab_names(labs_dir: Path = LABS) -> list[str]:
    return sorted(p.name for p in labs_dir.iterdir() if (p / "check.py").is_file())


def load_lab(name: str, labs_dir: Path = LABS) -> tuple[Lab, Path]:
    """The lab ``name`` (its folder, or a unique prefix: ``01``) and its folder."""
    names = lab_names(labs_dir) if labs_dir.is_dir() else []
    match = [n for n in names if n == name] or [n for n in names if n.startswith(name)]
    if len(match) != 1:
        raise HarnessError(
            f"no lab {name!r} in {labs_dir} (labs: {', '.join(names) or 'none'}); "
            "give a folder name or a unique prefix such as 01"
        )
    folder = labs_dir / match[0]
    spec = importlib.util.spec_from_file_location(
        f"wqlab_lab_{match[0].replace('-', '_')}", folder / "check.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lab = getattr(mod, "LAB", None)
    if not isinstance(lab, Lab):
        raise HarnessError(f"{folder / 'check.py'} defines no LAB = Lab(...)")
    return replace(lab, folder=folder), folder


SOURCE_SUFFIXES = (".c", ".h")


def stage_sources(lab: Lab, src: Path, dest: Path) -> list[str]:
    """Copy a submission's C sources (``*.c``, ``*.h`` at its top) into ``dest`` with the
    lab's own ``Kbuild``: a student's Kbuild or Makefile is code that make would run on
    the grading host, and the lab never asks for one. Returns the files copied."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    kbuild = lab.folder / "solution" / "Kbuild" if lab.folder else None
    if kbuild is not None and kbuild.is_file():
        shutil.copy2(kbuild, dest / "Kbuild")
    elif (src / "Kbuild").is_file():  # a lab without a folder (tests): the submission's
        shutil.copy2(src / "Kbuild", dest / "Kbuild")
    copied = []
    for f in sorted(src.iterdir()):
        if f.is_file() and f.suffix in SOURCE_SUFFIXES:
            shutil.copy2(f, dest / f.name)
            copied.append(f.name)
    return copied


# --------------------------------------------------------------------------- the VM

# the kernel's CONFIG_...=y lines (none without /proc/config.gz), for the agent's ``py`` op
_CONFIG_Y = """
import gzip, sys
try:
    with gzip.open("/proc/config.gz", "rt") as f:
        lines = f.read().splitlines()
except OSError:
    lines = []
sys.stdout.write("".join(ln + "\\n" for ln in lines if ln.endswith("=y")))
"""


_BUILT_AT = "\0built-at\0"  # a cached build's warnings: where its student's tree was
STORE_DAYS = 30  # a stored build unused this long is removed


def build_store(kernel: kernels.Kernel) -> Path:
    """Where graders keep their builds for ``kernel`` between runs (the wqlab cache)."""
    from .bootimage import cache_dir

    return cache_dir() / "grade" / kernel.version


# what kbuild reads from the environment that changes a module's objects or warnings
_KBUILD_ENV = (
    "ARCH",
    "CC",
    "CROSS_COMPILE",
    "LLVM",
    "KCFLAGS",
    "KCPPFLAGS",
    "KBUILD_EXTRA_SYMBOLS",
)


def _kbuild_cc(kdir: Path | None) -> str:
    """The compiler the headers were made with, which kbuild runs (Debian's
    ``.kernelvariables`` names ``x86_64-linux-gnu-gcc-12``, not ``gcc``): the first word
    of ``CONFIG_CC_VERSION_TEXT``; ``gcc`` without it."""
    try:
        text = (kdir / ".config").read_text() if kdir is not None else ""
    except OSError:
        text = ""
    m = re.search(r'^CONFIG_CC_VERSION_TEXT="(\S+)', text, re.M)
    return m.group(1) if m else "gcc"


def toolchain_stamp(kernel: kernels.Kernel) -> str:
    """What besides the sources decides a build's .ko and its warnings: the headers
    (their tree, its ``.config``, ``Module.symvers`` and Debian's ``.kernelvariables``),
    the compiler kbuild runs (the one the ``.config`` names), each by path, size and
    time; wqlab's build recipe (``wqlab/build.py``: the make command, the W level, which
    lines are warnings) and what kbuild takes from the environment. A new headers package,
    compiler or recipe: new keys."""
    from . import build as _build

    recipe = hashlib.sha256(Path(_build.__file__).read_bytes()).hexdigest()[:12]
    parts = [str(kernel.kdir), f"recipe={recipe}"]
    parts += [f"{k}={os.environ[k]}" for k in _KBUILD_ENV if k in os.environ]
    cc = shutil.which(_kbuild_cc(kernel.kdir)) or shutil.which("gcc")
    paths = [Path(cc).resolve()] if cc else []
    if kernel.kdir is not None:
        paths += [kernel.kdir / n for n in (".config", "Module.symvers", ".kernelvariables")]
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{p}:-")
    return " ".join(parts)


def prune_store(store: Path, days: float = STORE_DAYS) -> None:
    """Remove the builds in ``store`` unused for ``days`` (best effort)."""
    if not store.is_dir():
        return
    old = time.time() - days * 86400
    for d in store.iterdir():
        try:
            if d.is_dir() and d.stat().st_mtime < old:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


class Grader:
    """One grading session: one kernel, one VM reused across students until a report, a
    hang or a module left loaded spoils it (then the next student gets a fresh one)."""

    def __init__(
        self,
        kernel: kernels.Kernel,
        cpus: int = 2,
        out: Path | None = None,
        vms: Callable[[], Vm] | None = None,
        store: Path | None = None,
    ) -> None:
        """``vms``: where VMs come from when not booted here (the pytest plugin's VM
        manager: it replaces a VM the grader marked tainted); the grader stops only the
        VMs it booted itself. ``store``: a directory of earlier builds that outlives the
        grader (:func:`build_store`), shared by graders (a class graded again, the test
        suite's workers); None: only this grader's own builds are reused."""
        self.kernel = kernel
        self.cpus = cpus
        self.out = out or Path.cwd() / "artifacts" / "grade"
        self.vms = vms
        self.store = store
        self._toolchain: str | None = None  # toolchain_stamp(kernel), at the first build
        if store is not None:
            prune_store(store)
        self.vm: Vm | None = None
        self.boots = 0
        # sources already built (hash of the staged tree) -> the .ko's copy, its warnings
        self._built: dict[str, tuple[Path, str]] = {}
        self._info: dict[int, KernelInfo] = {}
        self._spoiled = False  # an expected report: a fresh VM after this student

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.vm is not None and self.vms is None:
            self.vm.stop()
        self.vm = None

    def get_vm(self) -> Vm:
        vm = self.vm
        if self.vms is not None:
            vm = self.vms()
        elif vm is None or not vm.alive or vm.tainted or not self._answers(vm):
            if vm is not None:
                vm.stop(timeout=20)
            self.out.mkdir(parents=True, exist_ok=True)
            console = self.out / f"console-{self.kernel.version}.log"
            vm = boot(self.kernel, self.cpus, console_log=console)
            self.boots += 1
        self.vm = vm
        if id(vm) not in self._info:
            self._info = {id(vm): self._kernel_info(vm)}
        return vm

    @property
    def info(self) -> KernelInfo:
        assert self.vm is not None
        return self._info[id(self.vm)]

    @staticmethod
    def _answers(vm: Vm) -> bool:
        try:
            vm.agent().request("echo", timeout=30, data="health")
            return True
        except HarnessError as e:
            log.warning("the grading VM does not answer (%s); booting a fresh one", e)
            return False

    def _kernel_info(self, vm: Vm) -> KernelInfo:
        agent = vm.agent()
        res = agent.py(_CONFIG_Y, check=False)  # zcat | grep over sh: 2 s under TCG
        config = frozenset(
            ln.split("=", 1)[0]
            for ln in str(res["stdout"]).splitlines()
            if ln.startswith("CONFIG_")
        )
        return KernelInfo(
            self.kernel.version,
            self.kernel.version_tuple,
            self.kernel.debug,
            self.cpus,
            config,
        )

    def build(self, lab: Lab, src: Path, student: str) -> tuple[Path, str]:
        """Build the student's tree; return the .ko and the warnings (a W=1 warning does
        not stop the grading: it is shown). Sources this grader has built already (the
        same staged files byte for byte, for the same kernel) are not built again: their
        .ko is the same (a class's copies of one solution, the tests' repeated labs)."""
        out_root = self.out / "build" / re.sub(r"[^\w.-]+", "_", student)
        if (out_root / self.kernel.version).exists():
            shutil.rmtree(out_root / self.kernel.version)  # no object of an earlier build
        staged = out_root / "src"
        if f"{lab.module}.c" not in stage_sources(lab, src, staged):
            raise BuildError(f"{src} has no {lab.module}.c (copy the lab's skeleton/ folder)")
        files = {f.name: f for f in staged.iterdir()}
        if self._toolchain is None:  # once per grader: the headers and compiler it builds with
            self._toolchain = toolchain_stamp(self.kernel)
        key = sources_hash(files, extra=f"{self.kernel.version} {self._toolchain}")
        with self._key_lock(key):  # another grader building the same sources: wait, reuse
            return self._build(lab, key, staged, out_root)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """With a store: its key's lock held, so that graders that share it (the suite's
        workers, a grade beside a test run) build the same sources once."""
        if self.store is None:
            yield
            return
        d = self.store / key
        d.mkdir(parents=True, exist_ok=True)
        with (d / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            os.utime(d)  # in use: not for prune_store
            yield

    def _build(self, lab: Lab, key: str, staged: Path, out_root: Path) -> tuple[Path, str]:
        hit = self._built.get(key) or self._stored(key, lab.module)
        here = str(out_root)
        if hit is not None and hit[0].is_file():
            # the warnings name the files where they were built: this student's paths
            return hit[0], hit[1].replace(_BUILT_AT, here)
        try:
            warnings = ""
            ko = build_module(
                self.kernel, src=staged, name=lab.module, subdir=".", out_root=out_root
            )
        except BuildError as e:
            built = sorted((out_root / self.kernel.version).glob(f"*/{lab.module}.ko"))
            if "has warnings" not in str(e) or not built:
                raise
            ko, warnings = built[0], str(e)
        # a copy: a later build of the same student's folder empties the tree it is in
        root = self.store if self.store is not None else self.out / "build" / ".built"
        cached = root / key / ko.name
        cached.parent.mkdir(parents=True, exist_ok=True)
        stored = warnings.replace(here, _BUILT_AT)
        # temporary names of this process's own (``part.with_suffix`` would drop the pid)
        part = cached.with_name(f".{cached.name}.{os.getpid()}")
        wpart = cached.with_name(f".{cached.stem}.warnings.{os.getpid()}")
        wpart.write_text(stored)
        os.replace(wpart, cached.with_suffix(".warnings"))
        shutil.copy2(ko, part)
        os.replace(part, cached)  # whole or absent for another grader (the .ko comes last)
        self._built[key] = (cached, stored)
        return cached, warnings

    def _stored(self, key: str, module: str) -> tuple[Path, str] | None:
        """A build of the same sources in the store (called under ``_key_lock``, which
        marked the entry used)."""
        if self.store is None:
            return None
        ko = self.store / key / f"{module}.ko"
        try:
            warnings = ko.with_suffix(".warnings").read_text()
        except OSError:
            return None
        if not ko.is_file():
            return None
        self._built[key] = (ko, warnings)
        return ko, warnings

    # one student --------------------------------------------------------------------
    def grade(self, lab: Lab, src: Path, student: str = "student") -> Grade:
        t0 = time.monotonic()
        g = Grade(student, lab.name, self.kernel.version)
        try:
            self._grade(lab, src, g)
        except HarnessError as e:  # a lost VM, a hung guest: the student's fault or not,
            g.status = g.status if g.status != "graded" else "vm-lost"  # no verdict
            g.reason = g.reason or f"the VM stopped answering: {e}"
            self._spoil()
        except Exception as e:  # one student never stops the batch
            log.exception("grading %s failed", student)
            g.status, g.reason = "error", f"grader error: {type(e).__name__}: {e}"
            self._spoil()
        if self._spoiled:
            self._spoil()
            self._spoiled = False
        g.seconds = time.monotonic() - t0
        return g

    def _spoil(self) -> None:
        if self.vm is not None:
            self.vm.retire("a grading run spoiled it")

    def _grade(self, lab: Lab, src: Path, g: Grade) -> None:
        if not src.is_dir():
            g.status, g.reason = "build-failed", f"{src} is not a folder"
            g.checks = [CheckResult(c.name, 0, c.points, "fail") for c in lab.checks]
            return
        try:
            ko, warnings = self.build(lab, src, g.student)
        except BuildError as e:
            g.status, g.reason, g.report = "build-failed", "the module does not build", str(e)
            g.checks = [
                CheckResult(c.name, 0, c.points, "fail", "fix the build first") for c in lab.checks
            ]
            return
        if warnings:
            g.report = warnings
        inert = inert_module(ko)
        runs: dict[str, Run] = {}
        try:
            for sc in lab.scenarios:
                vm = self.get_vm()
                run = Run(lab, sc, self.info)
                runs[sc.name] = run
                why = sc.skip(self.info) if sc.skip else None
                if why:
                    run.skipped = why
                    continue
                if not self._scenario(vm, run, ko, g, inert):
                    break
        finally:  # the table shows every check, even when the VM went away mid-way
            g.checks = [self._score(c, runs) for c in lab.checks]
            g.runs = list(runs.values())

    def _scenario(self, vm: Vm, run: Run, ko: Path, g: Grade, inert: bool = False) -> bool:
        """Load, wait, unload, observe. False when the student's grade is settled (0).
        ``inert``: nothing of the module can run after its init (:func:`inert_module`):
        the wait ends at the load."""
        lab, sc = run.lab, run.scenario
        agent = vm.agent()
        if is_loaded(agent, lab.module):  # left by an earlier scenario that wedged it
            vm.retire(f"{lab.module} is still loaded")
            vm = self.get_vm()
            agent = vm.agent()
        console0, dmesg0 = vm.console_mark(), dmesg_mark(agent)
        saved = self._set_tunables(agent, run)
        trace = TraceInstance(agent, TRACE_NAME, module_events=False).start()
        syms = ""
        try:
            trace.mark(MARK_LOAD)
            fut = agent.submit("insmod", path=str(ko), params=module_params(sc.params))
            how = self._wait(vm, fut, console0, 60.0, run)
            if how == "timeout":
                g.status, g.reason = "hang", "insmod did not return in 60 s (the init hangs)"
                vm.retire(f"insmod {lab.module} hangs")
                self._reports(vm, run, console0, None, g)
                return False
            if how == "report":
                return self._reports(vm, run, console0, dmesg0, g) and False
            if isinstance(how, GuestCommandError):
                g.status = "load-failed"
                g.reason = str(module_error(f"insmod {ko.name}", how.errno, INSMOD_ERRORS))
                g.report = dmesg_since(agent, dmesg0)
                return False
            run.loaded = True
            trace.mark(MARK_LOADED)
            deadline = time.monotonic() + sc.timeout
            while True:
                self._observe(run, trace.read(), None)
                if sc.done is not None and sc.done(run):
                    break
                if inert:  # the trace read after insmod returned is all there will be
                    break
                if time.monotonic() >= deadline or not vm.alive:
                    break
                if self._unexpected(vm, run, console0):
                    break  # it crashed: the report settles it
                time.sleep(0.25)
            run.params = self._params(vm, lab.module)
            syms = kallsyms(agent, lab.module)
            if sc.unload:
                trace.mark(MARK_UNLOAD)
                fut = agent.submit("rmmod", name=lab.module)
                how = self._wait(vm, fut, console0, 60.0, run)
                if how == "timeout":
                    g.status = "hang"
                    g.reason = "rmmod did not return in 60 s (the exit function hangs)"
                    vm.retire(f"rmmod {lab.module} hangs")
                    self._reports(vm, run, console0, None, g)
                    return False
                if how == "report":
                    return self._reports(vm, run, console0, dmesg0, g) and False
                if isinstance(how, GuestCommandError):
                    g.status = "unload-failed"
                    why = module_error(f"rmmod {lab.module}", how.errno, RMMOD_ERRORS)
                    g.reason = f"the module cannot be unloaded: {why}"
                    vm.retire(f"{lab.module} cannot be unloaded")
                    return False
                run.unloaded = True
                trace.mark(MARK_UNLOADED)
                if sc.after_unload:
                    time.sleep(sc.after_unload)
            else:
                vm.retire(f"a scenario of {lab.module} wedges it")  # a fresh VM next
            self._observe(run, trace.read(), SymbolMap.from_kallsyms(syms))
        finally:
            # a retired VM is never reused: nothing to tidy there, and after an Oops in a
            # worker its tracefs can wait for ever (the batch's crashing student: 60 s)
            if vm.alive and not vm.tainted:
                trace.remove()
                for path, old in saved.items():
                    agent.write(path, old)
        return self._reports(vm, run, console0, dmesg0, g)

    @staticmethod
    def _set_tunables(agent: AgentChannel, run: Run) -> dict[str, str]:
        """Write the scenario's tunables that this kernel has; return their old values
        (to restore) and note in ``run.tunables`` the values in effect."""
        saved = {}
        for path, value in run.scenario.tunables.items():
            if not agent.exists(path):
                continue
            saved[path] = agent.read(path).strip()
            agent.write(path, value)
            run.tunables[path] = agent.read(path).strip()
        return saved

    @staticmethod
    def _unexpected(vm: Vm, run: Run, console0: int) -> bool:
        return any(
            not any(e.matches(s) for e in run.scenario.expect) for s in vm.splats_since(console0)
        )

    def _wait(
        self, vm: Vm, fut: Future[Any], console0: int, timeout: float, run: Run
    ) -> str | GuestCommandError:
        """Wait for an insmod or rmmod request: ``"ok"``, its error, ``"timeout"``, or
        ``"report"`` as soon as the console shows a kernel report (a crashed init or
        exit never answers: no point in waiting out the deadline)."""
        deadline = time.monotonic() + timeout
        seen: float | None = None
        kinds = {e.kind for e in run.scenario.expect}
        while time.monotonic() < deadline:
            try:
                fut.result(timeout=0.25)
                return "ok"
            except FutureTimeout:
                pass
            except GuestCommandError as e:
                return e
            if not vm.alive:
                return "report"
            if splats := vm.splats_since(console0):
                if any(s.kind not in kinds for s in splats):
                    return "report"  # of a kind no expectation has: settled at once
                # expected reports (the bug lab) come while the call is still running:
                # give it a moment to return, then settle on the report
                seen = seen or time.monotonic()
                if time.monotonic() - seen > 3.0:
                    return "report"
        return "timeout"

    def _observe(self, run: Run, text: str, syms: SymbolMap | None) -> None:
        if syms is None:  # read while loaded: the module's functions have their names
            run.text = text
        events = parse(text, symbols=syms) if syms is not None and syms.usable else parse(text)
        run.events = events
        run.all_lcs = build_lifecycles(events)
        run.marks = {
            m.group(1): ev.ts_ns
            for ev in events
            if isinstance(ev, UnknownEvent)
            and (m := re.search(r"(wqlab-grade: \w+)", ev.body)) is not None
        }

    def _params(self, vm: Vm, module: str) -> dict[str, str]:
        d = f"/sys/module/{module}/parameters"
        agent = vm.agent()
        if not agent.exists(d):
            return {}
        names = agent.request("listdir", path=d)
        out = {}
        for n in names:
            try:
                out[str(n)] = agent.read(f"{d}/{n}").strip()
            except GuestCommandError:
                pass
        return out

    @staticmethod
    def _unmatched(run: Run, splats: Sequence[Splat]) -> bool:
        """Is one of ``splats`` of a kind the scenario expects but matched by none yet?"""
        kinds = {e.kind for e in run.scenario.expect}
        return any(
            s.kind in kinds and not any(e.matches(s) for e in run.scenario.expect) for s in splats
        )

    def _reports(self, vm: Vm, run: Run, console0: int, dmesg0: int | None, g: Grade) -> bool:
        """Collect the kernel reports of the scenario; expected ones go to the checks, any
        other zeroes the student. False when it did."""
        found = list(vm.splats_since(console0))
        if found:  # a report takes a while to print under TCG: let its call trace come
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and vm.alive:
                tail = vm.console_since(found[0].index)
                ended = "---[ end trace" in tail or "Kernel panic" in tail
                # a report of an expected kind that matches no expectation yet: its line may
                # print after the trace's end (6.1's "has the following busy pwq" follows
                # its WARNING's end marker), so wait for it too, within the deadline
                if ended and not self._unmatched(run, own_text(found)):
                    break
                time.sleep(0.2)
                found = list(vm.splats_since(console0))
            found = list(vm.splats_since(console0))
        if dmesg0 is not None and vm.alive:
            try:
                lines = dmesg_since(vm.agent(), dmesg0).splitlines()
            except HarnessError:
                lines = []
            seen = {s.line.split("] ", 1)[-1] for s in found}
            found += [
                s for s in find_splats(lines, context=80) if s.line.split("] ", 1)[-1] not in seen
            ]
        if not found:
            return True
        found = own_text(found)
        expected = [s for s in found if any(e.matches(s) for e in run.scenario.expect)]
        run.reports = expected
        other = [s for s in found if s not in expected]
        if not other:
            # the bug lab's next scenario may use this VM (each report has its own
            # WARN_ONCE site); the next student gets a fresh one
            self._spoiled = True
            return True
        vm.retire(f"a kernel report not expected: {other[0].kind}")  # a fresh VM next
        g.status = "kernel-report"
        first = other[0]
        more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        g.reason = f"kernel report ({first.kind}){more}: {first.line.split('] ', 1)[-1]}"
        g.report = "\n".join(first.text)
        if first.index < len(vm.console) and vm.console[first.index] == first.line:
            # from the console: the whole report up to its end (a BUG() and the Oops that
            # follows it are one report; so are a WARNING and its call trace)
            lines = vm.console_since(max(0, first.index - 2)).splitlines()[:90]
            end = next((i for i, ln in enumerate(lines) if "---[ end trace" in ln), None)
            g.report = "\n".join(lines[: end + 1] if end is not None else lines)
        return False

    def _score(self, c: Check, runs: dict[str, Run]) -> CheckResult:
        run = runs.get(c.scenario)
        if run is None:
            return CheckResult(c.name, 0, c.points, "fail", "not run (an earlier step failed)")
        if run.skipped:
            return CheckResult(c.name, 0, c.points, "skip", run.skipped)
        if not run.loaded:
            return CheckResult(c.name, 0, c.points, "fail", "the load did not complete (see above)")
        try:
            hint = c.fn(run)
        except Exception as e:  # a check that trips on odd data fails
            hint = f"could not be checked ({type(e).__name__}: {e})"
        if hint is None:
            return CheckResult(c.name, c.points, c.points, "pass")
        return CheckResult(c.name, 0, c.points, "fail", hint)


# --------------------------------------------------------------------------- outputs


def ktap(grades: Sequence[Grade]) -> str:
    """One KTAP line per check (a failed build or a report fails every check of it)."""
    rows = [(f"{g.student}:{g.lab}:{c.name}", c, g) for g in grades for c in g.checks]
    out = ["KTAP version 1", f"1..{len(rows)}"]
    for i, (name, c, g) in enumerate(rows, 1):
        name = re.sub(r"[#\n]", "_", name)
        if c.status == "skip":
            out.append(f"ok {i} {name} # SKIP {c.hint.splitlines()[0] if c.hint else ''}")
        elif g.status == "graded" and c.status == "pass":
            out.append(f"ok {i} {name}")
        else:
            out.append(f"not ok {i} {name}")
            why = g.reason if g.status != "graded" else c.hint
            out += [f"# {ln}" for ln in (why or "").splitlines()[:3]]
    return "\n".join(out) + "\n"


def junit(grades: Sequence[Grade]) -> str:
    """JUnit XML: a test suite per student and lab, a test case per check."""
    root = ET.Element("testsuites", name="wqlab grade")
    for g in grades:
        fails = sum(1 for c in g.checks if c.status == "fail" or g.status != "graded")
        skips = sum(1 for c in g.checks if c.status == "skip")
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{g.student}.{g.lab}",
            tests=str(len(g.checks)),
            failures=str(fails),
            skipped=str(skips),
            time=f"{g.seconds:.1f}",
        )
        props = ET.SubElement(suite, "properties")
        for k, v in (
            ("kernel", g.kernel),
            ("status", g.status),
            ("score", f"{g.score}/{g.max_points}"),
        ):
            ET.SubElement(props, "property", name=k, value=v)
        for c in g.checks:
            tc = ET.SubElement(suite, "testcase", classname=f"{g.student}.{g.lab}", name=c.name)
            if c.status == "skip":
                ET.SubElement(tc, "skipped", message=c.hint)
            elif g.status != "graded":
                f = ET.SubElement(tc, "failure", message=f"{g.status}: {g.reason}")
                f.text = g.report[-8000:]
            elif c.status == "fail":
                ET.SubElement(tc, "failure", message=c.hint)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


CSV_FIELDS = ("student", "lab", "kernel", "score", "max", "status", "reason", "failed_checks")


def write_csv(path: Path, grades: Sequence[Grade]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for g in grades:
            w.writerow(
                {
                    "student": g.student,
                    "lab": g.lab,
                    "kernel": g.kernel,
                    "score": g.score,
                    "max": g.max_points,
                    "status": g.status,
                    "reason": g.reason.splitlines()[0] if g.reason else "",
                    "failed_checks": "; ".join(c.name for c in g.checks if c.status == "fail"),
                }
            )


def students(batch: Path) -> Iterator[tuple[str, Path]]:
    """The student folders of a class folder, by name."""
    for d in sorted(batch.iterdir()):
        if d.is_dir() and not d.name.startswith("."):
            yield d.name, d


# --------------------------------------------------------------------------- the CLI


def format_grade(g: Grade) -> str:
    """The score table of one student's lab, with a hint under each failed check."""
    head = f"{g.student}  {g.lab}  on {g.kernel}: {g.score}/{g.max_points}"
    if g.status != "graded":
        head += f"  [{g.status}] {g.reason}"
    width = max([len(c.name) for c in g.checks] + [20])
    lines = [head, f"  {'check':<{width}}  points  result"]
    for c in g.checks:
        pts = f"{c.points}/{c.max_points}" if c.status != "skip" else "-"
        res = c.status if g.status == "graded" or c.status == "skip" else "0 (see above)"
        lines.append(f"  {c.name:<{width}}  {pts:>6}  {res}")
        if c.hint and (c.status != "pass"):
            for i, ln in enumerate(c.hint.splitlines()):
                lines.append(f"  {'':<{width}}          {'hint: ' if i == 0 else '      '}{ln}")
    if g.report:
        lines.append(
            "  --- " + ("kernel report" if g.status == "kernel-report" else "output") + " ---"
        )
        lines += ["  " + ln for ln in g.report.splitlines()[-60:]]
    return "\n".join(lines)


def format_runs(g: Grade, out: Path) -> str:
    """What each load of the module ran (its lifecycles, ms from the insmod), and where
    its raw trace went (``wqlab plot`` draws it): the predict-then-observe answers."""
    parts = []
    for run in g.runs:
        if not run.loaded or not run.text:
            continue
        out.mkdir(parents=True, exist_ok=True)
        who = re.sub(r"[^\w.-]+", "_", g.student)
        trace = out / f"{g.lab}-{who}-{run.scenario.name}.trace"
        trace.write_text(run.text)
        parts.append(
            f"what ran ({run.scenario.name}; ms from the insmod; the trace until the rmmod: "
            f"{trace}):\n" + format_lifecycles(run.lcs, run.marks.get(MARK_LOAD))
        )
    return "\n\n".join(parts)


def grade_cli(
    lab_name: str,
    src: Path | None,
    batch: Path | None,
    selector: str,
    cpus: int,
    out: Path,
    say: Callable[[str], None],
    labs_dir: Path = LABS,
) -> int:
    """``wqlab grade``: 0 when every student got full marks, 1 otherwise."""
    lab, folder = load_lab(lab_name, labs_dir)
    kernel = kernels.resolve(selector)
    out = out.resolve()
    if batch is not None:
        todo = list(students(batch))
        if not todo:
            raise HarnessError(f"{batch} holds no student folders")
    else:
        todo = [((src or folder / "skeleton").name, src or folder / "skeleton")]
    say(f"wqlab grade {lab.name} ({lab.title}): {len(todo)} submission(s) on {kernel.version}")
    grades: list[Grade] = []
    t0 = time.monotonic()
    with Grader(kernel, cpus, out, store=build_store(kernel)) as gr:
        for student, path in todo:
            g = gr.grade(lab, path.resolve(), student)
            grades.append(g)
            say(format_grade(g) + f"\n  ({g.seconds:.0f} s)\n")
            if batch is None:
                say(format_runs(g, out))
        boots = gr.boots
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{lab.name}-{kernel.version}"
    (out / f"{stem}.ktap").write_text(ktap(grades))
    (out / f"{stem}.junit.xml").write_text(junit(grades))
    written = [out / f"{stem}.ktap", out / f"{stem}.junit.xml"]
    if batch is not None:
        write_csv(out / f"{stem}.csv", grades)
        written.append(out / f"{stem}.csv")
        say("student              score   status")
        for g in grades:
            why = g.reason.splitlines()[0] if g.reason else ""
            say(f"{g.student:<20} {g.score:>3}/{g.max_points:<3} {g.status} {why}")
    say(
        f"{len(grades)} graded in {time.monotonic() - t0:.0f} s with {boots} VM boot(s); "
        f"wrote {', '.join(str(p) for p in written)}"
    )
    return 0 if all(g.status == "graded" and g.score == g.max_points for g in grades) else 1
