"""The wqlab fuzzer's guest side: runs in the VM, drives the three control planes from
several threads at once, and checks every answer against docs/commands.md.

    cd <repo> && python3 -E -s -S -u -m wqlab.fuzz --seed 7 -n 20000 --threads 4

(the guest sees the host's file system read-only, so it imports this from the repository;
``wqlab.fuzzhost`` starts it through the guest agent and reads ``--log``/``--result``).
Standard library, ``wqlab.uapi``, ``wqlab.fuzzgen`` and ``wqlab.client``'s parsers
only: it runs on the guest's system Python. The netlink plane (``--netlink-share``, a share
of the commands, sent by ``wqlab.genl.Genl.raw``: its own encoder and answer parser, a few
text or ioctl commands' worth under TCG, where pyroute2's codec cost 20-40) needs
``wqlab.genl`` and pyroute2, imported the guest agent's way from the host's copies
(``--genl-path``, given by ``wqlab.fuzzhost``).

Cost: the run reports the CPU it took (``cpu`` in ``--result``: the process, each thread,
the whole guest); ``--profile DIR`` runs every thread under cProfile (``make fuzz
FUZZ_ARGS=--profile=FILE`` brings the report to the host). Per command, the oracle's state
reads are what they must be; what only a report needs (the last commands' descriptions)
is formatted when a report is made, and the releaser parses only the lines of
``works`` that can be a blocked run (:func:`maybe_blocked`).

A run is rounds of two phases:

* concurrent: ``--threads`` workers, each with its own text descriptor, ``/dev/wqlab``
  descriptor and netlink socket and its own seeded stream (``fuzzgen.Generator``, stream
  ``t<i>``; each round's ops are made before it runs, or by the host: :data:`Round`,
  ``--plan``), plus a releaser thread that releases every blocked item every few
  milliseconds. Every answer must be success or an errno the docs allow for that command;
  malformed input rejected before the module looks at any state must get exactly its
  documented errno.
* single-threaded, at a quiescent point (every item idle, the state normalised): mutated
  and random input one at a time; each must get exactly its documented errno, the same on
  the text and the ioctl plane and on the netlink plane but for its documented exceptions
  (a number out of range is ERANGE there), and change nothing (``works`` and
  ``workqueues`` equal before and after, ``cmds_failed`` one up, or unchanged for a
  refusal of the kernel's netlink policy or core, which the module never sees: the docs
  say so, and the extack text tells them apart, ``wqlab: `` for the module's own).

At each quiescent point ``stats`` must add up exactly: ``cmds_ok + cmds_failed`` is what
this process sent (the ioctls the dispatcher turns away with ENOTTY are not counted by the
module, nor here, nor netlink messages the kernel refused before the module saw them),
``items`` the lines of ``works``, ``workqueues`` the lines of
``workqueues``. A command that does not return within ``--hang-s``, an item still pending
``--settle-s`` after the last command and a kernel splat in ``/dev/kmsg`` are violations
too. Every violation is printed with the seed and the command.
"""

from __future__ import annotations

import argparse
import errno as errno_mod
import fcntl
import hashlib
import json
import os
import pickle
import random
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import fuzzgen as fg
from . import uapi
from .client import CONTROL, DEBUGFS, DEVICE, parse_kv, parse_table

Fd = int
STATE_READ = 1 << 16  # bytes asked of a state file at first (:meth:`Conn.read`)


def errname(err: int | None) -> str:
    return "ok" if err is None else errno_mod.errorcode.get(err, str(err))


@dataclass
class Answer:
    """What the module answered: an errno, or ret (and id for work_new)."""

    err: int | None
    ret: int = 0
    id: int | None = None
    text: str = ""  # netlink: the extack text of a refusal


def load_genl(paths: tuple[str, ...]) -> Any:
    """``wqlab.genl`` with pyroute2's netlink core, imported as the guest agent does (from
    the host's copies in ``paths``, appended after the standard library, without
    pyroute2's ``__init__``)."""
    import importlib

    # by name: the agent is a stand-alone script mypy does not check (pyproject.toml)
    agent = importlib.import_module("wqlab.guest_agent")
    return agent._genl({"paths": list(paths)})


class Conn:
    """One thread's descriptors: the control file (write then read on one descriptor),
    ``/dev/wqlab``, the state files it reads (:meth:`read`) and, when ``genl`` is given, a
    netlink socket (opened at first use: pyroute2's sockets are not shared between
    threads). An open debugfs file holds the module: :meth:`close` before rmmod."""

    def __init__(self, genl: Any = None) -> None:
        self.text_fd: Fd = os.open(CONTROL, os.O_RDWR)
        self.dev_fd: Fd = os.open(DEVICE, os.O_RDWR)
        self.state_fds: dict[str, Fd] = {}
        self.genl = genl
        self.nl: Any = None

    def read(self, name: str) -> str:
        """The debugfs file ``name`` (``works``, ``workqueues``, ``stats``) whole, now: a
        read from offset 0 makes a seq_file print its text anew, so one ``pread`` on a
        descriptor kept open does what open, read, read and close did (the main thread
        reads three after each rejected command, the releaser ``works`` every
        ``release_ms``)."""
        fd = self.state_fds.get(name)
        if fd is None:
            fd = self.state_fds[name] = os.open(f"{DEBUGFS}/{name}", os.O_RDONLY)
        size = STATE_READ
        while True:
            data = os.pread(fd, size, 0)
            if len(data) < size:  # all of it: single_open's text comes in one read
                return data.decode(errors="replace")
            size *= 4

    def close(self) -> None:
        for fd in (self.text_fd, self.dev_fd, *self.state_fds.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.nl is not None:
            self.nl.close()
            self.nl = None

    def netlink(self, msg: fg.NlMessage) -> Answer:
        if self.genl is None:
            raise RuntimeError("a netlink command, but the netlink plane is off")
        if self.nl is None:
            self.nl = self.genl.Genl()
        cmd, version, attrs = msg
        try:
            got = self.nl.raw(cmd, list(attrs), version)
        except OSError as e:
            return Answer(e.errno, text=str(e.strerror or ""))
        return Answer(None, int(got.get("ret", -999)), got.get("id"))

    def text(self, data: bytes) -> Answer:
        try:
            os.write(self.text_fd, data)
        except OSError as e:
            return Answer(e.errno)
        kv = parse_kv(os.read(self.text_fd, 4096).decode(errors="replace"))
        return Answer(None, int(kv.get("ret", "-999")), int(kv["id"]) if "id" in kv else None)

    def ioctl(self, request: int, data: bytes) -> Answer:
        buf = bytearray(data)
        try:
            fcntl.ioctl(self.dev_fd, request, buf, True)
        except OSError as e:
            return Answer(e.errno)
        ret, _args, item = struct.unpack_from("<qII", buf)
        return Answer(None, ret, item)

    def send(self, op: fg.Op, data: Wire = None) -> Answer:
        """``op`` on its plane; ``data``: what goes on the wire, if already made (:func:`wire`)."""
        if data is None:
            data = wire(op)
        if op.plane == fg.TEXT:
            return self.text(data)
        if op.plane == fg.NETLINK:
            return self.netlink(data)
        return self.ioctl(*data)


Wire = Any  # text: the line's bytes; ioctl: (request, struct); netlink: fuzzgen.NlMessage


def wire(op: fg.Op) -> Wire:
    """What ``op`` puts on its plane's wire."""
    if op.plane == fg.TEXT:
        return op.text_bytes()
    if op.plane == fg.NETLINK:
        return op.netlink_message()
    return (op.ioctl_request(), op.ioctl_bytes())


Step = tuple[fg.Op, Wire]  # a pause's wire is None
Fault = tuple[fg.Op, list[Step]]  # a single-threaded fault and its sends, one per plane
Round = tuple[list[list[Step]], list[Fault]]
"""One round of a run's plan: each worker's ops (whole episodes, until the thread's quota
is met) and the single-threaded phase's faults (each with its sends: one per plane for a
fault every plane can take), with their wire bytes. The main thread's own commands
(normalising, releases, leftovers) are not in it.

Nothing the module answers changes a plan: :func:`plan_rounds` makes it from
:func:`plan_key`'s inputs alone. ``wqlab.fuzzhost`` makes it on the host, where Python
runs about twenty times faster than in a TCG guest (making and encoding 20 000 ops took
8.5 s of guest CPU, a third of the fuzzer's), and the guest loads it round by round
(``--plan``, :func:`load_plan`: one round in memory at a time, about 0.7 KB a command,
and 150 bytes a command in the file; a round is under 10 000 commands up to 250 000, a
fiftieth of the run beyond, or what ``--rounds`` makes it); without ``--plan`` the guest
makes each round before it runs it."""


def blocked_run(w: Mapping[str, str]) -> bool:
    """Is a run of this ``works`` item blocked (or about to block)? ``blocked=1`` (whatever
    ``state`` says after a later queueing or cancel); or a run in flight with ``block=1`` and
    no release since the queueing, which is about to block (docs: Behaviours)."""
    if w.get("blocked") == "1" or w.get("state") == "blocked":
        return True
    return w.get("running") == "1" and w.get("block") == "1" and w.get("released") == "0"


def maybe_blocked(line: str) -> bool:
    """Whether a line of ``works`` may be an item :func:`blocked_run` says is blocked: true
    for every such line (each of its conditions is a ``key=value`` of the line), so that
    only those lines need parsing (the releaser reads ``works`` every ``release_ms``)."""
    return (
        "blocked=1" in line
        or "state=blocked" in line
        or ("running=1" in line and "block=1" in line)
    )


def kmsg_records(fd: int) -> Iterator[str]:
    """The records a non-blocking ``/dev/kmsg`` descriptor has now, one per read."""
    while True:
        try:
            yield os.read(fd, 8192).decode(errors="replace")
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno_mod.EPIPE:  # records overwritten: go on
                continue
            return


def kmsg_lines(needle: str) -> list[str]:
    """The kernel log's messages (still in its buffer) that contain ``needle``."""
    out: list[str] = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return out
    try:
        for rec in kmsg_records(fd):
            msg = rec.partition(";")[2].splitlines()[:1]
            if msg and needle in msg[0]:
                out.append(msg[0])
    finally:
        os.close(fd)
    return out


def read_file(name: str) -> str:
    with open(f"{DEBUGFS}/{name}", "rb") as f:
        return f.read().decode(errors="replace")


@dataclass
class ThreadStats:
    """One thread's counts (merged at quiescent points; only its thread writes them)."""

    name: str
    sent: int = 0
    counted: int = 0
    ok: int = 0
    failed: int = 0
    errnos: Counter[str] = field(default_factory=Counter)
    planes: Counter[str] = field(default_factory=Counter)
    # (command, errno): formatted only for a report (recent())
    last: deque[tuple[fg.Op, int | None]] = field(default_factory=lambda: deque(maxlen=6))
    inflight: tuple[fg.Op, float] | None = None
    hang_reported: bool = False
    tid: int = 0  # the kernel's thread id, for /proc/self/task/<tid>/stack


@dataclass(frozen=True)
class Config:
    seed: int
    n: int = 20000
    threads: int = 4
    rounds: int = 0  # 0: about one per 5000 commands
    single_share: float = 0.1
    hang_s: float = 20.0
    wait_hung_s: float = 60.0  # then give up on a hung command (block_max_ms is 30 s)
    settle_s: float = 20.0
    progress_s: float = 5.0
    release_ms: int = 20
    storm: bool = False
    skip: tuple[str, ...] = ()  # scenarios left out (fuzzgen.SCENARIOS)
    netlink_share: float = 0.0  # of the well-formed commands (0: no netlink plane)
    genl_paths: tuple[str, ...] = ()  # where the host's pyroute2 and wqlab are
    leftovers: bool = True
    log: str | None = None
    result: str | None = None
    profile: str | None = None  # a directory: one cProfile per thread (--profile)
    plan: str | None = None  # a plan's file (save_plan), made by the host (--plan)


def round_sizes(cfg: Config) -> tuple[int, int, int]:
    """``(rounds, single-threaded commands a round, each worker's quota a round)``."""
    rounds = cfg.rounds or max(1, min(50, cfg.n // 5000))
    per_round = cfg.n / rounds
    single = int(per_round * cfg.single_share)
    return rounds, single, max(1, int((per_round - single) / cfg.threads))


def _code_digest() -> str:
    """The generator's code (this file, ``fuzzgen``, ``uapi``): a plan kept from another
    checkout is not this one's."""
    h = hashlib.sha256()
    for mod in (sys.modules[__name__], fg, uapi):
        with open(mod.__file__ or "", "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def plan_key(cfg: Config, listing: str, features: str) -> str:
    """What decides a plan (:data:`Round`): the options, the module's listing and features,
    the code that makes it."""
    digest = hashlib.sha256(f"{listing}\0{features}".encode()).hexdigest()[:16]
    opts = (cfg.seed, cfg.n, cfg.threads, round_sizes(cfg), cfg.storm, cfg.skip)
    # repr, not :g (6 digits): the generator compares the exact share with rng.random()
    return f"{opts!r} netlink={cfg.netlink_share!r} module={digest} code={_code_digest()}"


def plan_rounds(cfg: Config, listing: str, features: str) -> Iterator[Round]:
    """The run's rounds (pure: see :data:`Round`), as the guest side sends them."""
    table = fg.parse_listing(listing)
    uni = fg.Universe.from_features(parse_kv(features))
    share = cfg.netlink_share
    gens = [
        fg.Generator(table, uni, cfg.seed, f"t{i}", storm=cfg.storm, skip=cfg.skip, netlink_p=share)
        for i in range(cfg.threads)
    ]
    main_gen = fg.Generator(table, uni, cfg.seed, "main", netlink_p=share)
    rng = random.Random(f"wqlab-fuzz:{cfg.seed}:single")
    rounds, count, quota = round_sizes(cfg)
    for _ in range(rounds):
        per_thread: list[list[Step]] = []
        for gen in gens:
            steps: list[Step] = []
            n = 0
            while n < quota:
                for op in gen.episode():
                    steps.append((op, None if op.kind == "pause" else wire(op)))
                    n += op.kind != "pause"
            per_thread.append(steps)
        faults: list[Fault] = []
        n = 0
        while n < count:
            # a fault of every plane is built on the text plane, then sent on each (on
            # netlink with what the docs promise there: fuzzgen.on_netlink)
            base = main_gen.any_valid()._replace(plane=fg.TEXT)
            if rng.random() < 0.2:
                op = fg.random_input(rng, table, uni, bool(share))
            else:
                op = fg.mutate(rng, table, uni, base, main_gen.mutators) or base
                if op.kind == "valid":
                    continue
            sends = [op]
            if op.pair:
                sends = [op._replace(plane=fg.TEXT), op._replace(plane=fg.IOCTL)]
                if share:
                    sends.append(fg.on_netlink(op))
            faults.append((op, [(o, wire(o)) for o in sends]))
            n += len(sends)
        yield per_thread, faults


def round_size(r: Round) -> int:
    """The commands in a round (pauses left out)."""
    sent = sum(op.kind != "pause" for steps in r[0] for op, _ in steps)
    return sent + sum(len(sends) for _, sends in r[1])


def save_plan(cfg: Config, listing: str, features: str, path: str) -> int:
    """Write the run's plan to ``path`` (its key, then one pickle a round); return the
    commands in it."""
    total = 0
    with open(path, "wb") as f:
        pickle.dump(plan_key(cfg, listing, features), f, protocol=pickle.HIGHEST_PROTOCOL)
        for r in plan_rounds(cfg, listing, features):
            pickle.dump(r, f, protocol=pickle.HIGHEST_PROTOCOL)
            total += round_size(r)
    return total


def load_plan(path: str, key: str) -> Iterator[Round]:
    """The rounds of the plan in ``path`` (:func:`save_plan`), one at a time; ValueError
    (at once, not at the first round) unless it was made for ``key``: these options,
    this module."""
    f = open(path, "rb")  # closed by rounds(), or here on a refusal
    try:
        made = pickle.load(f)
    except Exception as e:  # unpickling raises whatever the bytes lead it to
        f.close()
        raise ValueError(f"{path} is not a plan: {type(e).__name__}: {e}") from None
    if made != key:
        f.close()
        raise ValueError(f"the plan {path} was made for {made}, this run is {key}")

    def rounds() -> Iterator[Round]:
        with f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    return

    return rounds()


def guest_cpu_ticks() -> list[int]:
    """The guest's ``cpu`` line of ``/proc/stat`` (user nice system idle iowait irq
    softirq steal, in clock ticks); empty if unreadable."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


class Profiles:
    """Each thread's CPU time (``time.thread_time``), summed by name, and with a
    directory (``--profile``) a cProfile of each name, dumped by :meth:`dump`."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.cpu: dict[str, float] = {}
        self.profiles: dict[str, Any] = {}
        self.lock = threading.Lock()

    def start(self, name: str) -> tuple[float, Any]:
        prof = None
        if self.path:
            import cProfile

            with self.lock:
                prof = self.profiles.setdefault(name, cProfile.Profile())
            prof.enable()
        return time.thread_time(), prof

    def stop(self, name: str, began: tuple[float, Any]) -> None:
        t, prof = began
        if prof is not None:
            prof.disable()
        with self.lock:
            self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - t

    def run(self, name: str, fn: Callable[..., object], *args: object) -> None:
        """``fn(*args)`` in this thread, accounted (and profiled) as ``name``."""
        began = self.start(name)
        try:
            fn(*args)
        finally:
            self.stop(name, began)

    def dump(self) -> None:
        """``<dir>/<name>.prof`` per thread name and ``<dir>/report.txt``: the functions
        of every thread together by own time, then by cumulative time."""
        if not self.path or not self.profiles:
            return
        import io
        import pstats

        os.makedirs(self.path, exist_ok=True)
        files = []
        for name, prof in sorted(self.profiles.items()):
            files.append(f"{self.path}/{name}.prof")
            prof.dump_stats(files[-1])
        buf = io.StringIO()
        buf.write(
            "thread CPU (s): " + " ".join(f"{k}={v:.2f}" for k, v in sorted(self.cpu.items()))
        )
        buf.write("\n")
        stats = pstats.Stats(*files, stream=buf)
        stats.sort_stats("tottime").print_stats(60)
        stats.sort_stats("cumulative").print_stats(60)
        with open(f"{self.path}/report.txt", "w") as f:
            f.write(buf.getvalue())


class Fuzzer:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.t0 = time.monotonic()
        self.times0 = os.times()
        self.ticks0 = guest_cpu_ticks()
        self.prof = Profiles(cfg.profile)
        self.main_began = self.prof.start("main")
        self.out_lock = threading.Lock()
        self.logf = open(cfg.log, "a", buffering=1) if cfg.log else None
        self.violations: list[dict[str, Any]] = []
        self.stuck = False  # a command never returned: the run stopped
        self.stats: list[ThreadStats] = []
        self.release_on = threading.Event()
        self.release_idle = threading.Event()
        self.release_polls = (0.0, 0.0)  # (last read of works started, ended): a hang report
        self.released_at: dict[str, float] = {}  # id -> when the releaser last released it
        self.done = threading.Event()
        self.plan_s = 0.0  # making or loading the rounds' ops
        with open(CONTROL, "rb") as f:  # a fresh descriptor lists the commands
            self.listing = f.read().decode()
        self.table = fg.parse_listing(self.listing)
        self.features_text = read_file("features")
        self.features = parse_kv(self.features_text)
        self.uni = fg.Universe.from_features(self.features)
        self.main_stats = self._new_stats("main")
        self.genl: Any = None
        self.genl_import_s = 0.0
        if cfg.netlink_share:
            t = time.monotonic()
            self.genl = load_genl(cfg.genl_paths)
            self.genl_import_s = time.monotonic() - t
        self.main = Conn(self.genl)
        self.queue_sig: dict[str, tuple[str, ...]] = {}
        self.errno_tables: dict[tuple[object, str | None, str], frozenset[int]] = {}
        base = parse_kv(read_file("stats"))
        self.base_ok = int(base["cmds_ok"])
        self.base_failed = int(base["cmds_failed"])
        self.block_timeouts = int(base.get("block_timeouts", "0"))
        self.run_overlaps = int(base.get("run_overlaps", "0"))
        self.overlaps_seen = 0
        self.kmsg = _KmsgWatch()
        for what in fg.table_mismatches(self.table):
            self.violation("main", what)

    # output -----------------------------------------------------------------------------
    def say(self, text: str) -> None:
        with self.out_lock:
            print(text, flush=True)
            if self.logf:
                self.logf.write(text + "\n")

    def violation(self, thread: str, what: str, op: fg.Op | None = None, **extra: Any) -> None:
        v = {"seed": self.cfg.seed, "thread": thread, "what": what, **extra}
        if op is not None:
            v["op"] = op.describe()
        with self.out_lock:
            self.violations.append(v)
        self.say(
            f"VIOLATION seed={self.cfg.seed} thread={thread}: {what}"
            + (f"\n    command: {op.describe()}" if op is not None else "")
        )

    def _new_stats(self, name: str) -> ThreadStats:
        st = ThreadStats(name)
        self.stats.append(st)
        return st

    # one command ------------------------------------------------------------------------
    def run_op(
        self, conn: Conn, op: fg.Op, st: ThreadStats, concurrent: bool, data: Wire = None
    ) -> Answer | None:
        st.tid = st.tid or threading.get_native_id()
        if op.kind == "pause":
            time.sleep(op.pause_ms / 1000)
            return None
        st.inflight = (op, time.monotonic())
        ans = conn.send(op, data)
        if st.hang_reported:
            took = time.monotonic() - st.inflight[1]
            self.say(
                f"  ({st.name}: the hung command returned {errname(ans.err)} after {took:.1f} s)"
            )
            st.hang_reported = False
        st.inflight = None
        st.sent += 1
        st.planes[op.plane] += 1
        if fg.counted(ans.err, op.plane, ans.text):
            st.counted += 1
            if ans.err is None:
                st.ok += 1
            else:
                st.failed += 1
        st.errnos[errname(ans.err)] += 1
        st.last.append((op, ans.err))
        self.check(op, ans, st.name, concurrent)
        return ans

    def check(self, op: fg.Op, ans: Answer, thread: str, concurrent: bool) -> None:
        """The errno oracle (see the module docstring)."""
        spec = self.table.get(op.cmd)
        err = ans.err
        if err is not None and not fg.documented(err, op.plane):
            self.violation(thread, f"errno {errname(err)} is not in docs/commands.md", op)
            return
        if op.plane == fg.NETLINK and err is not None and op.kind == "mutated":
            # who refused: the kernel's policy or core (not counted), or the module
            module = ans.text.startswith(fg.MODULE_EXTACK)
            if module == (op.stage == "policy"):
                who = "the module" if module else "the kernel"
                self.violation(
                    thread,
                    f"refused by {who} ({errname(err)}: {ans.text!r}), docs/commands.md says "
                    + ("the policy" if op.stage == "policy" else "the module"),
                    op,
                )
        if op.kind == "valid" and spec is not None:
            if err is None:
                if not fg.ret_ok(spec, ans.ret):
                    self.violation(thread, f"implausible ret={ans.ret}", op)
            elif err not in self.errnos(fg.valid_errnos, spec, op.plane):
                self.violation(thread, f"well-formed command got {errname(err)}", op)
            return
        allowed = self.errnos(fg.allowed_errnos, spec, op.plane)
        if op.kind == "mutated" and op.expect is not None:
            exact = not concurrent or op.stage in ("parse", "validate", "dispatch", "policy")
            state_free = op.mutation != "wrong_kind"  # the other kinds never become valid
            if exact or (err is None and state_free):
                if err not in op.expect:
                    want = "/".join(sorted(errname(e) for e in op.expect))
                    self.violation(thread, f"expected {want}, got {errname(err)}", op)
                return
            if err is not None and err not in allowed | op.expect:
                self.violation(thread, f"{errname(err)} not allowed for this command", op)
            return
        if err is not None and err not in allowed:
            self.violation(thread, f"{errname(err)} not allowed for this command", op)

    def errnos(
        self,
        table: Callable[[Any, str, fg.Universe], frozenset[int]],
        spec: fg.CommandSpec | None,
        plane: str,
    ) -> frozenset[int]:
        """``table(spec, plane, self.uni)`` (``fuzzgen.allowed_errnos`` or
        ``valid_errnos``: pure), computed once for each command and plane."""
        key = (table, spec.name if spec is not None else None, plane)
        got = self.errno_tables.get(key)
        if got is None:
            got = self.errno_tables[key] = table(spec, plane, self.uni)
        return got

    def cmd(self, name: str, /, plane: str = fg.TEXT, **args: object) -> Answer:
        """A well-formed command from the main thread (normalising, quiescing)."""
        op = fg.Op(name, tuple((k, str(v)) for k, v in args.items()), plane=plane)
        ans = self.run_op(self.main, op, self.main_stats, concurrent=False)
        assert ans is not None
        return ans

    # phases -----------------------------------------------------------------------------
    def concurrent(self, steps: list[list[Step]]) -> None:
        errors: list[BaseException] = []

        def worker(i: int, mine: list[Step], st: ThreadStats) -> None:
            conn = Conn(self.genl)
            try:
                for op, data in mine:
                    self.run_op(conn, op, st, concurrent=True, data=data)
            except BaseException as e:  # reported, the run goes on
                errors.append(e)
                self.violation(st.name, f"worker crashed: {type(e).__name__}: {e}")
            finally:
                conn.close()

        threads = [
            threading.Thread(
                target=self.prof.run,
                args=(f"t{i}", worker, i, steps[i], self.wstats[i]),
                daemon=True,
            )
            for i in range(self.cfg.threads)
        ]
        for t in threads:
            t.start()
        # a hung command is a violation; the run goes on if it ends (block_max_ms bounds
        # a lost release), else it stops after ``wait_hung_s`` more
        give_up: float | None = None
        for t in threads:
            while t.is_alive():
                t.join(1.0)
                if self.hung():
                    give_up = give_up or time.monotonic() + self.cfg.wait_hung_s
                    if time.monotonic() > give_up:
                        self.stuck = True
                        return

    def hung(self) -> bool:
        """A command has been in the kernel for more than ``hang_s`` (and still is)."""
        now = time.monotonic()
        return any(
            st.inflight is not None and now - st.inflight[1] > self.cfg.hang_s for st in self.stats
        )

    def releaser(self) -> None:
        """Release every blocked item every ``release_ms`` so that no wait lasts (idle
        while ``release_on`` is clear: the single-threaded phase)."""
        st = self._new_stats("releaser")
        conn = Conn()
        plane = 0
        try:
            while not self.done.is_set():
                if not self.release_on.is_set():
                    self.release_idle.set()
                    self.release_on.wait(0.1)
                    continue
                time.sleep(self.cfg.release_ms / 1000)
                began = time.monotonic()
                self.release_polls = (began, self.release_polls[1])
                text = conn.read("works")
                self.release_polls = (began, time.monotonic())
                for line in text.splitlines():
                    if not maybe_blocked(line):
                        continue
                    w = parse_kv(line)
                    if blocked_run(w) and self.release_on.is_set():
                        plane ^= 1
                        op = fg.Op("release", (("id", w["id"]),), plane=(fg.TEXT, fg.IOCTL)[plane])
                        self.run_op(conn, op, st, concurrent=True)
                        self.released_at[w["id"]] = time.monotonic()
        finally:
            conn.close()

    def pause_releaser(self) -> None:
        self.release_idle.clear()
        self.release_on.clear()
        if not self.release_idle.wait(60):
            self.violation("main", "the releaser did not pause within 60 s")

    def resume_releaser(self) -> None:
        self.release_on.set()

    def settle(self, release: bool) -> bool:
        """Wait until no item is pending or running; False (and a violation) if some
        still are after ``settle_s``. ``release``: release blocked items ourselves."""
        deadline = time.monotonic() + self.cfg.settle_s
        busy: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            works = parse_table(self.main.read("works"))
            busy = [w for w in works if w.get("pending") == "1" or w.get("running") == "1"]
            if not busy:
                return True
            if release:
                for w in busy:
                    if blocked_run(w):
                        self.cmd("release", id=w["id"])
            time.sleep(0.05)
        lines = "\n    ".join(
            " ".join(f"{k}={w.get(k)}" for k in ("id", "kind", "state", "pending", "running", "wq"))
            for w in busy
        )
        self.violation(
            "main",
            f"{len(busy)} item(s) still pending/running {self.cfg.settle_s:.0f} s after the "
            f"last command:\n    {lines}",
        )
        return False

    def normalise(self) -> None:
        """Every universe id live with its kind, every universe queue live with its
        flavor, nothing else; so that the single-threaded phase can predict exactly."""
        uni = self.uni
        if uni.has("disable_work"):
            for item in uni.ids:
                name = "enable_delayed_work" if uni.kind(item) == "delayed" else "enable_work"
                for _ in range(70000):
                    if self.cmd(name, plane=fg.IOCTL, id=item).err is not None:
                        break
        works = {int(w["id"]): w for w in parse_table(self.main.read("works"))}
        for item in uni.ids[2:]:
            w = works.get(item)
            kind = "delayed" if uni.kind(item) == "delayed" else "work"
            if w is not None and w.get("kind") == kind:
                continue
            if w is not None:
                a = self.cmd("work_free", id=item)
                if a.err is not None:
                    self.violation("main", f"normalise: work_free id={item}: {errname(a.err)}")
                    continue
            a = self.cmd("work_new", delayed=int(kind == "delayed"))
            if a.err is not None or a.id != item:
                self.violation(
                    "main",
                    f"normalise: work_new gave {errname(a.err)} id={a.id}, "
                    f"expected id={item} (the lowest free id)",
                )
        live = {w["name"]: w for w in parse_table(self.main.read("workqueues"))}
        for name, w in live.items():
            sig = (w.get("how", ""), w.get("flags", ""), w.get("ordered", ""), w.get("bh", ""))
            if name in uni.queues and self.queue_sig.get(name) == sig:
                continue
            a = self.cmd("destroy_workqueue", wq=name)
            if a.err is not None:
                self.violation("main", f"normalise: destroy_workqueue {name}: {errname(a.err)}")
        live = {w["name"]: w for w in parse_table(self.main.read("workqueues"))}
        for name in uni.queues:
            if name in live:
                continue
            flav = uni.flavor(name)
            a = self.cmd(flav.command, name=name, **dict(flav.args))
            if a.err is not None:
                self.violation("main", f"normalise: {flav.command} {name}: {errname(a.err)}")
        for w in parse_table(self.main.read("workqueues")):
            sig = (w.get("how", ""), w.get("flags", ""), w.get("ordered", ""), w.get("bh", ""))
            self.queue_sig.setdefault(w["name"], sig)

    def totals(self) -> tuple[int, int, int, int]:
        sent = sum(s.sent for s in self.stats)
        counted = sum(s.counted for s in self.stats)
        return sent, counted, sum(s.ok for s in self.stats), sum(s.failed for s in self.stats)

    def check_stats(self, where: str) -> None:
        """``stats`` adds up exactly (we are the module's only user, nothing runs)."""
        st = parse_kv(self.main.read("stats"))
        works = parse_table(self.main.read("works"))
        wqs = parse_table(self.main.read("workqueues"))
        _, counted, ok, failed = self.totals()
        got_ok = int(st["cmds_ok"]) - self.base_ok
        got_failed = int(st["cmds_failed"]) - self.base_failed
        if (got_ok, got_failed) != (ok, failed):
            self.violation(
                "main",
                f"{where}: stats cmds_ok={got_ok} cmds_failed={got_failed} (sum "
                f"{got_ok + got_failed}), but this run sent {ok} that succeeded and {failed} "
                f"that failed (sum {counted})",
            )
            self.base_ok += got_ok - ok  # report each difference once
            self.base_failed += got_failed - failed
        timeouts = int(st.get("block_timeouts", "0"))
        if timeouts > self.block_timeouts:
            self.violation(
                "main",
                f"{where}: stats block_timeouts={timeouts}: a blocked run waited block_max_ms "
                "although the releaser releases every blocked item every "
                f"{self.cfg.release_ms} ms (a lost release)",
            )
            self.block_timeouts = timeouts
        overlaps = int(st.get("run_overlaps", "0"))
        if overlaps > self.run_overlaps:
            said = kmsg_lines("started while run")[-(overlaps - self.run_overlaps) :]
            what = (
                f"{where}: stats run_overlaps={overlaps}: a run of an item started while another "
                "run of it was in flight (the one-queue rule or the kernel's non-reentrancy "
                "failed); dmesg:" + "".join(f"\n    {ln}" for ln in said or ["(nothing)"])
            )
            self.violation("main", what)
            self.overlaps_seen += overlaps - self.run_overlaps
            self.run_overlaps = overlaps
        if int(st["items"]) != len(works):
            self.violation("main", f"{where}: stats items={st['items']}, works has {len(works)}")
        if int(st["workqueues"]) != len(wqs):
            self.violation(
                "main", f"{where}: stats workqueues={st['workqueues']}, workqueues has {len(wqs)}"
            )

    def snapshot(self) -> tuple[str, str]:
        return self.main.read("works"), self.main.read("workqueues")

    def single(self, faults: list[Fault]) -> None:
        """Mutated and random input, one at a time, on a quiescent module."""
        before = self.snapshot()
        for op, sends in faults:
            got: list[int | None] = []
            for o, data in sends:
                failed0 = self.main_stats.failed
                ans = self.run_op(self.main, o, self.main_stats, concurrent=False, data=data)
                assert ans is not None
                got.append(ans.err)
                if ans.err is None:
                    # a random input that happened to be a command (or a violation that
                    # already said why): let it finish and start from its state
                    self.settle(release=True)
                    before = self.snapshot()
                    continue
                after = self.snapshot()
                if after != before:
                    what = "works" if after[0] != before[0] else "workqueues"
                    self.violation(
                        "main",
                        f"a rejected command ({errname(ans.err)}) changed {what}:\n"
                        + _diff(
                            before[0 if what == "works" else 1], after[0 if what == "works" else 1]
                        ),
                        o,
                    )
                    before = after
                st = parse_kv(self.main.read("stats"))
                want = self.base_failed + sum(s.failed for s in self.stats)
                if int(st["cmds_failed"]) != want:
                    self.violation(
                        "main",
                        f"stats cmds_failed={int(st['cmds_failed'])}, expected {want} "
                        f"(+{self.main_stats.failed - failed0} for this command)",
                        o,
                    )
                    self.base_failed += int(st["cmds_failed"]) - want
            if len(got) >= 2 and got[0] != got[1]:
                self.violation(
                    "main",
                    f"planes disagree on the same fault: text {errname(got[0])}, "
                    f"ioctl {errname(got[1])}",
                    op,
                )
            if len(got) == 3 and got[2] != fg.netlink_errno(got[0], op):
                self.violation(
                    "main",
                    f"netlink disagrees with the other planes on the same fault: text "
                    f"{errname(got[0])}, netlink {errname(got[2])} (docs/commands.md: "
                    f"{errname(fg.netlink_errno(got[0], op))})",
                    sends[2][0],
                )

    def quiesce(self, where: str) -> bool:
        """Releaser still running: let everything finish; then pause it and normalise."""
        ok = self.settle(release=False)
        self.pause_releaser()
        ok = self.settle(release=True) and ok
        self.normalise()
        ok = self.settle(release=True) and ok
        self.check_stats(where)
        return ok

    # the run ----------------------------------------------------------------------------
    def plan(self) -> Iterator[Round]:
        """This run's rounds: ``--plan``'s (ValueError if made for another run, OSError), or
        made here, each before it runs."""
        cfg = self.cfg
        if cfg.plan:
            return load_plan(cfg.plan, plan_key(cfg, self.listing, self.features_text))
        return plan_rounds(cfg, self.listing, self.features_text)

    def run(self, plan: Iterator[Round]) -> int:
        cfg = self.cfg
        self.say(
            f"wqlab fuzz: seed={cfg.seed} n={cfg.n} threads={cfg.threads} "
            f"kernel={self.features.get('kernel')} commands={len(self.table)} "
            f"max_items={self.uni.max_items} storm={int(cfg.storm)} "
            f"netlink={cfg.netlink_share:g}"
            + (f" (client imported in {self.genl_import_s:.1f} s)" if self.genl else "")
        )
        self.wstats = [self._new_stats(f"t{i}") for i in range(cfg.threads)]
        rel = threading.Thread(target=self.prof.run, args=("releaser", self.releaser), daemon=True)
        watch = threading.Thread(target=self.prof.run, args=("watch", self.watch), daemon=True)
        self.watch_thread = watch
        watch.start()
        self.normalise()
        self.check_stats("start")
        self.release_on.set()
        rel.start()
        for r in range(round_sizes(cfg)[0]):
            t = time.monotonic()
            try:
                got = next(plan, None)
            except Exception as e:  # a plan's file cut short or damaged
                self.violation("main", f"the plan {cfg.plan}, round {r}: {type(e).__name__}: {e}")
                break
            self.plan_s += time.monotonic() - t
            if got is None:
                self.violation("main", f"the plan {cfg.plan} ends after {r} round(s)")
                break
            steps, faults = got
            self.round = r
            self.concurrent(steps)
            if self.stuck:
                break
            self.quiesce(f"round {r} concurrent phase")
            self.single(faults)
            self.check_stats(f"round {r} single-threaded phase")
            self.resume_releaser()
            del got, steps, faults  # not in memory beside the next round while it loads
        self.done.set()
        self.resume_releaser()
        if not self.stuck:
            rel.join(10)
            if cfg.leftovers:
                self.leftovers()
            self.main.close()
        self.kmsg.poll(self)
        return self.finish()

    def leftovers(self) -> None:
        """State for the host's rmmod to clean up: an armed timer, a blocked run, a long
        sleep and a self-requeueing item, on custom and system queues."""
        plain = self.uni.ids_of("plain")
        delayed = self.uni.ids_of("delayed")
        self.cmd("queue_delayed_work", wq="q0", id=delayed[1], delay_ms=20000)
        self.cmd("queue_work", wq="q1", id=plain[1], block=1)
        self.cmd("queue_work", wq="system", id=plain[2], sleep_ms=3000)
        self.cmd("queue_work", wq="q2", id=plain[3], requeue=1000, sleep_ms=5)

    def progress(self) -> None:
        sent, _, ok, _ = self.totals()
        dt = time.monotonic() - self.t0
        errs: Counter[str] = Counter()
        for s in self.stats:
            errs.update(s.errnos)
        top = " ".join(f"{k}={v}" for k, v in errs.most_common() if k != "ok")
        self.say(
            f"[fuzz seed={self.cfg.seed} {dt:6.0f} s] {sent}/{self.cfg.n} cmds "
            f"{sent / max(dt, 1e-9):.0f}/s ok={errs['ok']} {top} "
            f"violations={len(self.violations)} round={getattr(self, 'round', 0)}"
        )

    def watch(self) -> None:
        """Progress, hung commands and kernel splats, every second."""
        last = time.monotonic()
        while not self.done.wait(1.0):
            now = time.monotonic()
            for st in list(self.stats):
                inf = st.inflight
                if inf and not st.hang_reported and now - inf[1] > self.cfg.hang_s:
                    st.hang_reported = True
                    self.violation(
                        st.name,
                        f"command did not return within {self.cfg.hang_s:.0f} s; last "
                        f"commands of every thread:\n{self.recent()}\n{self.hang_report(st)}",
                        inf[0],
                    )
            self.kmsg.poll(self)
            if now - last >= self.cfg.progress_s:
                last = now
                self.progress()

    def hang_report(self, st: ThreadStats) -> str:
        """The stuck thread's kernel stack and every busy item (read with a deadline: a
        listing may itself wait for the module's lock)."""
        began, ended = self.release_polls
        now = time.monotonic()
        out = [
            f"  releaser: last read of works began {now - began:.1f} s ago, "
            + (f"ended {now - ended:.1f} s ago" if ended >= began else "has not ended"),
            f"  kernel stack of {st.name} (tid {st.tid}):",
        ]
        try:
            with open(f"/proc/self/task/{st.tid}/stack") as f:
                out += [f"    {ln}" for ln in f.read().splitlines()]
        except OSError as e:
            out.append(f"    ({e})")
        box: list[str] = []

        def busy() -> None:
            for w in parse_table(read_file("works")):
                # a blocked run under state=canceled or a run still going under state=done
                flags = (w.get("pending"), w.get("running"), w.get("blocked"))
                if w.get("state") not in ("idle", "done", "canceled") or "1" in flags:
                    keys = (
                        "id",
                        "kind",
                        "state",
                        "pending",
                        "running",
                        "users",
                        "wq",
                        "block",
                        "released",
                        "blocked",
                        "blocked_seq",
                        "block_release_seq",
                        "release_seq",
                        "active_runs",
                        "requeue_left",
                        "runs",
                        "seq",
                        "cpu",
                        "pid",
                        "comm",
                        "started_ns",
                    )
                    rel = self.released_at.get(w.get("id", ""))
                    box.append(
                        "    "
                        + " ".join(f"{k}={w.get(k)}" for k in keys)
                        + " releaser_last_release="
                        + ("never" if rel is None else f"{now - rel:.1f}s_ago")
                    )
            box.extend("    " + ln for ln in read_file("workqueues").splitlines())

        t = threading.Thread(target=busy, daemon=True)
        t.start()
        t.join(5.0)
        out.append("  busy items and queues:" if not t.is_alive() else "  works: no answer in 5 s")
        return "\n".join(out + box)

    def recent(self) -> str:
        return "\n".join(
            f"    {s.name}: {op.describe()} -> {errname(err)}"
            for s in self.stats
            for op, err in list(s.last)
        )

    def cpu(self) -> dict[str, Any]:
        """CPU seconds since the start: this process (user, system), each thread (by
        name, summed over rounds), and the whole guest (every vCPU: busy, idle)."""
        t = os.times()
        out: dict[str, Any] = {
            "user": round(t.user - self.times0.user, 2),
            "system": round(t.system - self.times0.system, 2),
            "threads": {k: round(v, 2) for k, v in sorted(self.prof.cpu.items())},
        }
        ticks = guest_cpu_ticks()
        if ticks and len(ticks) == len(self.ticks0):
            d = [b - a for a, b in zip(self.ticks0, ticks, strict=True)]
            hz = os.sysconf("SC_CLK_TCK")
            idle = d[3] + d[4]
            out["guest_busy"] = round((sum(d) - idle) / hz, 2)
            out["guest_idle"] = round(idle / hz, 2)
            out["guest_system"] = round((d[2] + d[5] + d[6]) / hz, 2)
        return out

    def finish(self) -> int:
        self.progress()
        self.watch_thread.join(2.0)  # done is set: it ends within a second
        self.prof.stop("main", self.main_began)
        sent, counted, ok, failed = self.totals()
        dt = time.monotonic() - self.t0
        cpu = self.cpu()
        errs: Counter[str] = Counter()
        planes: Counter[str] = Counter()
        for s in self.stats:
            errs.update(s.errnos)
            planes.update(s.planes)
        res = {
            "seed": self.cfg.seed,
            "commands": sent,
            "counted": counted,
            "ok": ok,
            "failed": failed,
            "seconds": round(dt, 2),
            "rate": round(sent / max(dt, 1e-9), 1),
            "errnos": dict(errs),
            "planes": dict(planes),
            "genl_import_s": round(self.genl_import_s, 2),
            "plan_s": round(self.plan_s, 2),
            "per_thread": {s.name: s.sent for s in self.stats},
            "hung": self.stuck,
            "violations": self.violations,
            "run_overlaps": self.overlaps_seen,
            "kernel": self.features.get("kernel"),
            "cpu": cpu,
        }
        self.say(
            f"wqlab fuzz: seed={self.cfg.seed} {sent} commands in {dt:.1f} s "
            f"({res['rate']}/s), {len(self.violations)} violation(s), "
            f"{self.overlaps_seen} run overlap(s); the ops "
            + ("loaded from the host's plan" if self.cfg.plan else "made here")
            + f" in {self.plan_s:.1f} s"
        )
        self.say(
            f"wqlab fuzz: CPU {cpu['user']:.1f} s user, {cpu['system']:.1f} s system; "
            "threads "
            + " ".join(f"{k}={v:.1f}" for k, v in cpu["threads"].items())
            + (
                f"; the guest busy {cpu['guest_busy']:.1f} s (system {cpu['guest_system']:.1f}),"
                f" idle {cpu['guest_idle']:.1f} s"
                if "guest_busy" in cpu
                else ""
            )
        )
        self.prof.dump()
        if self.cfg.result:
            tmp = self.cfg.result + ".tmp"
            with open(tmp, "w") as f:
                json.dump(res, f, indent=1)
            os.rename(tmp, self.cfg.result)
        return 1 if self.violations else 0


def _diff(a: str, b: str) -> str:
    al, bl = a.splitlines(), b.splitlines()
    out = [f"    - {x}" for x in al if x not in bl] + [f"    + {x}" for x in bl if x not in al]
    return "\n".join(out[:8])


def _splat_search() -> Callable[[str], object]:
    """The harness's one splat detector (``wqlab.splat``; ``wqlab.vm`` before it)."""
    import importlib

    for mod in ("wqlab.splat", "wqlab.vm"):
        try:
            return importlib.import_module(mod).SPLAT_RE.search  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    raise ImportError("no SPLAT_RE in wqlab.splat or wqlab.vm")


class _KmsgWatch:
    """New kernel log records, matched with the harness's one splat detector."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.match: Callable[[str], object] | None = None
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
            self.match = _splat_search()
        except OSError:
            self.fd = None

    def poll(self, fz: Fuzzer) -> None:
        if self.fd is None or self.match is None:
            return
        for rec in kmsg_records(self.fd):
            head, _, msg = rec.partition(";")
            parts = head.split(",")
            ts = int(parts[2]) / 1e6 if len(parts) > 2 and parts[2].isdigit() else 0.0
            line = f"[{ts:12.6f}] {msg.splitlines()[0] if msg else ''}"
            if self.match(line):
                fz.violation(
                    "kernel",
                    f"kernel splat: {line}\n  last commands of every thread:\n" + fz.recent(),
                )


NETLINK_SHARE = 0.1


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """The options of a fuzz run that the guest side and ``wqlab.fuzzhost`` share."""
    ap.add_argument("--seed", type=int, default=None, help="default: from the clock (printed)")
    ap.add_argument("-n", type=int, default=20000, help="commands to send (default 20000)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--storm", action="store_true", help="add disable_work storms (6.10+)")
    ap.add_argument("--hang-s", type=float, default=20.0)
    ap.add_argument("--skip", action="append", default=[], help="leave out this scenario")
    ap.add_argument(
        "--netlink-share",
        type=float,
        default=NETLINK_SHARE,
        help=f"share of the commands sent over generic netlink (default {NETLINK_SHARE}; 0: "
        "debugfs and ioctl only)",
    )


def parse_args(argv: list[str] | None = None) -> Config:
    ap = argparse.ArgumentParser(prog="python3 -m wqlab.fuzz", description=__doc__.split("\n")[0])
    add_run_options(ap)
    ap.add_argument("--rounds", type=int, default=0, help="0: one per 5000 commands")
    ap.add_argument("--single-share", type=float, default=0.1)
    ap.add_argument("--settle-s", type=float, default=20.0)
    ap.add_argument("--progress-s", type=float, default=5.0)
    ap.add_argument("--no-leftovers", action="store_true", help="leave the module idle")
    ap.add_argument("--log", default=None)
    ap.add_argument("--result", default=None)
    ap.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="profile every thread (cProfile, several times slower): DIR/<thread>.prof "
        "and DIR/report.txt",
    )
    ap.add_argument(
        "--genl-path",
        action="append",
        default=[],
        help="where pyroute2 and wqlab are (the host's; wqlab.client.guest_import_paths)",
    )
    ap.add_argument(
        "--plan",
        default=None,
        metavar="FILE",
        help="send the ops of this plan (wqlab.fuzz.save_plan, made on the host for the same "
        "options and module: refused otherwise) instead of making them here",
    )
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else int(time.time() * 1000) % 1_000_000_007
    return Config(
        seed=seed,
        n=a.n,
        threads=a.threads,
        rounds=a.rounds,
        single_share=a.single_share,
        hang_s=a.hang_s,
        settle_s=a.settle_s,
        progress_s=a.progress_s,
        storm=a.storm,
        skip=tuple(a.skip),
        netlink_share=a.netlink_share,
        genl_paths=tuple(a.genl_path),
        leftovers=not a.no_leftovers,
        log=a.log,
        result=a.result,
        profile=a.profile,
        plan=a.plan,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        fz = Fuzzer(cfg)
    except OSError as e:
        print(f"wqlab fuzz: cannot start: {e}", file=sys.stderr)
        if cfg.netlink_share and e.errno == errno_mod.ENOPKG:
            print("wqlab fuzz: or leave the netlink plane out: --netlink-share 0", file=sys.stderr)
        return 2
    try:
        plan = fz.plan()
    except (OSError, ValueError) as e:  # load_plan turns any unpickling error into ValueError
        print(f"wqlab fuzz: no plan: {e}", file=sys.stderr)
        return 2
    code = fz.run(plan)
    if fz.stuck:
        sys.stdout.flush()
        os._exit(3)  # threads stuck in the kernel: do not wait for them
    return code


if __name__ == "__main__":
    sys.exit(main())
