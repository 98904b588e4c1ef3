"""Talk to the wqlab module: the same calls over the debugfs text plane, the ioctl plane
and the generic netlink plane (``docs/commands.md`` is the contract; ``wqlab.uapi``
mirrors the ABI; ``wqlab.genl`` speaks the family with pyroute2 inside the guest).

    c = WqlabClient(agent, plane="debugfs")
    c.cmd("alloc_workqueue", name="ord", flags="unbound", max_active=1)
    r = c.cmd("queue_work", wq="ord", id=2, sleep_ms=5)   # r.ret == 1: it was queued
    with c.events() as ev:                                 # the netlink events group
        ev.read(timeout=1.0)                               # [{"event": "start", ...}]
"""

from __future__ import annotations

import errno as errno_mod
import importlib.util
import os
import re
import shlex
import weakref
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from . import uapi
from .channel import AgentChannel
from .errors import GuestCommandError

DEBUGFS = "/sys/kernel/debug/wqlab"
CONTROL = f"{DEBUGFS}/control"
DEVICE = "/dev/wqlab"
PLANES = ("debugfs", "ioctl", "netlink")


@dataclass(frozen=True)
class Result:
    """What a command returned: the API call's value and any extra outputs."""

    ret: int
    fields: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.fields[key]


class WqlabCommandError(GuestCommandError):
    """The module rejected a command with ``errno``."""

    def __init__(self, command: str, errno: int | None, message: str = "") -> None:
        name = errno_mod.errorcode.get(errno or 0, str(errno))
        super().__init__(
            f"{command!r} failed: {name} ({message or os.strerror(errno or 0)})", errno
        )
        self.command = command


def may_block(name: str) -> bool:
    """Commands that can wait for a work item (they must not run inline in the agent)."""
    return name.startswith(("flush", "drain", "destroy")) or name.endswith("_sync")


def format_command(name: str, args: Mapping[str, Any]) -> str:
    """``queue_work wq=x id=2`` (pure); booleans become 0/1, lists comma-joined."""
    parts = [name]
    for k, v in args.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, (list, tuple, set, frozenset)):
            v = ",".join(str(x) for x in v)
        parts.append(f"{k}={v}")
    return " ".join(parts)


def parse_kv(text: str) -> dict[str, str]:
    """``ret=1 id=3`` → ``{"ret": "1", "id": "3"}`` (pure)."""
    return dict(re.findall(r"(\w+)=(\S*)", text))


def parse_table(text: str) -> list[dict[str, str]]:
    """One dict per non-empty line of ``key=value`` pairs (``works``, ``workqueues``)."""
    return [parse_kv(line) for line in text.splitlines() if "=" in line]


class WqlabClient:
    """Module commands and state over one control plane."""

    def __init__(self, agent: AgentChannel, plane: str = "debugfs") -> None:
        if plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, not {plane!r}")
        self.agent = agent
        self.plane = plane
        if plane == "netlink":
            netlink_ready(agent)

    # commands -------------------------------------------------------------------------
    def cmd(self, name: str, /, timeout: float = 60.0, **args: Any) -> Result:
        """Run one command and wait for its result; raise WqlabCommandError on errno."""
        return self.result(self.submit(name, **args), timeout)

    def submit(self, name: str, /, **args: Any) -> Future[Any]:
        """Start a command without waiting (for ones that block until a release)."""
        inline = not may_block(name)
        if self.plane == "debugfs":
            line = format_command(name, args)
            fut = self.agent.submit("command", path=CONTROL, data=line + "\n", inline=inline)
        elif self.plane == "netlink":
            fut = self.agent.submit(
                "genl", name=name, args=_jsonable(args), paths=guest_import_paths(), inline=inline
            )
        else:
            if name not in uapi.IOCTLS:
                raise WqlabCommandError(name, errno_mod.ENOTTY, "no ioctl for this command")
            arg = uapi.pack_cmd(name, **args)
            fut = self.agent.submit(
                "ioctl", path=DEVICE, request=uapi.IOCTLS[name], arg=_b64(arg), inline=inline
            )
        fut.wqlab_command = (name, args)  # type: ignore[attr-defined]
        return fut

    def result(self, fut: Future[Any], timeout: float = 60.0) -> Result:
        name, args = getattr(fut, "wqlab_command", ("?", {}))
        try:
            value = self.agent.result(fut, timeout, name)
        except GuestCommandError as e:
            if e.errno is None:
                raise
            raise WqlabCommandError(format_command(name, args), e.errno, str(e)) from None
        if self.plane == "debugfs":
            kv = parse_kv(str(value))
            if "ret" not in kv:
                raise GuestCommandError(f"{name}: no ret= in the module's answer {value!r}")
            return Result(int(kv.pop("ret")), kv)
        if self.plane == "netlink":
            if "ret" not in value:
                raise GuestCommandError(f"{name}: no WQLAB_A_RET in the module's answer {value!r}")
            return Result(int(value["ret"]), {"id": str(value["id"])} if "id" in value else {})
        out = uapi.unpack_cmd(_unb64(value["arg"]))
        fields = {} if "id" in args else {"id": str(out.id)}  # an id the module chose
        return Result(out.ret, fields)

    def expect_errno(self, err: int, name: str, /, **args: Any) -> WqlabCommandError:
        """Assert that a command fails with ``err`` (e.g. ``errno.EINVAL``); the error (its
        text holds the netlink plane's extack message)."""
        try:
            r = self.cmd(name, **args)
        except WqlabCommandError as e:
            if e.errno != err:
                raise AssertionError(
                    f"{format_command(name, args)}: expected {errno_mod.errorcode[err]}, got "
                    f"{errno_mod.errorcode.get(e.errno or 0, e.errno)} ({e})"
                ) from e
            return e
        raise AssertionError(
            f"{format_command(name, args)}: expected {errno_mod.errorcode[err]}, got ret={r.ret}"
        )

    # state ----------------------------------------------------------------------------
    def read(self, name: str) -> str:
        return self.agent.read(f"{DEBUGFS}/{name}")

    def features(self) -> dict[str, str]:
        return parse_kv(self.read("features"))

    def works(self) -> list[dict[str, str]]:
        return parse_table(self.read("works"))

    def work(self, item: int) -> dict[str, str]:
        for w in self.works():
            if w.get("id") == str(item):
                return w
        raise KeyError(f"no work item {item} in {DEBUGFS}/works")

    def workqueues(self) -> list[dict[str, str]]:
        return parse_table(self.read("workqueues"))

    def stats(self) -> dict[str, str]:
        return parse_kv(self.read("stats"))

    def commands(self) -> str:
        """The command listing (reading ``control`` without writing)."""
        return self.read("control")

    # generic netlink ------------------------------------------------------------------
    def dump(self, what: str) -> list[dict[str, Any]]:
        """The family's dump of ``works`` or ``workqueues`` (any plane: it asks netlink)."""
        value = self.agent.request("genl_dump", what=what, paths=guest_import_paths())
        return list(value)

    def raw(
        self, cmd: int, attrs: list[tuple[int, bytes]], version: int = uapi.GENL_VERSION
    ) -> Any:
        """Send a hand-made message of the family (malformed on purpose): attributes as
        (type, payload). Raises WqlabCommandError with the kernel's errno and extack text."""
        raw = [(t, _b64(data)) for t, data in attrs]
        try:
            return self.agent.request(
                "genl", cmd=cmd, raw=raw, version=version, paths=guest_import_paths()
            )
        except GuestCommandError as e:
            if e.errno is None:
                raise
            raise WqlabCommandError(f"raw cmd={cmd:#x} {attrs}", e.errno, str(e)) from None

    def events(self, rcvbuf: int = 4 << 20) -> EventStream:
        """Subscribe to the module's ``events`` group (in the guest); close it when done."""
        handle = self.agent.request(
            "genl_events", action="open", rcvbuf=rcvbuf, paths=guest_import_paths()
        )
        return EventStream(self.agent, int(handle))


class EventStream:
    """A listener of the ``events`` group in the guest: ``read()`` gives what came in since
    the last read (dicts: ``event`` start/end/block/wq_create/wq_destroy, ``id``, ``seq``,
    ``cpu``, ``pid``, ``wq``, ``time_ns``, ``event_seq``, ``drops``...)."""

    def __init__(self, agent: AgentChannel, handle: int) -> None:
        self.agent = agent
        self.handle = handle
        self.overruns = 0
        self.gaps = 0

    def read(self, timeout: float = 0.0, limit: int = 100000) -> list[dict[str, Any]]:
        """Events so far, waiting up to ``timeout`` seconds for the first one."""
        value = self.agent.request(
            "genl_events",
            timeout + 30.0,
            action="read",
            handle=self.handle,
            wait=timeout,
            limit=limit,
        )
        self.overruns, self.gaps = value["overruns"], value["gaps"]
        return list(value["events"])

    def count(self, timeout: float = 0.0) -> dict[str, int]:
        """Take in what came so far in the guest and return only a summary (``events``,
        ``ends``, ``first_ns``, ``last_ns``, ``drops``, ``gaps``, ``overruns``)."""
        value = self.agent.request(
            "genl_events", timeout + 30.0, action="count", handle=self.handle, wait=timeout
        )
        self.overruns, self.gaps = value["overruns"], value["gaps"]
        return dict(value)

    def read_until(
        self, done: Any, timeout: float = 30.0, poll: float = 0.5
    ) -> list[dict[str, Any]]:
        """Read until ``done(events so far)`` is true; the deadline raises TimeoutError."""
        import time

        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not done(events):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"events: condition not met within {timeout} s: {events[-5:]}")
            events += self.read(min(poll, left))
        return events

    def close(self) -> None:
        self.agent.request("genl_events", action="close", handle=self.handle)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


GENL_IMPORT_TIMEOUT = 300.0
_GENL_READY: weakref.WeakSet[AgentChannel] = weakref.WeakSet()


def netlink_ready(agent: AgentChannel) -> float:
    """Have the guest import the netlink client (pyroute2's netlink core) once per agent,
    with a deadline for a slow machine: 10-35 s under TCG on a loaded host. Return the
    seconds it took (0.0 when it was done already)."""
    if agent in _GENL_READY:
        return 0.0
    took = float(agent.request("genl_import", GENL_IMPORT_TIMEOUT, paths=guest_import_paths()))
    _GENL_READY.add(agent)
    return took


@cache
def guest_import_paths() -> tuple[str, ...]:
    """Where the guest's Python finds pyroute2 and ``wqlab.genl``: the host's own copies
    (the guest sees the host's root read-only). The guest agent appends them to its path
    for the netlink plane only."""
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.origin is None:
        raise GuestCommandError(
            "the netlink plane needs pyroute2 on the host: pip install pyroute2 (or make setup)"
        )
    pyroute2_parent = Path(spec.origin).resolve().parent.parent
    wqlab_parent = Path(__file__).resolve().parent.parent
    return tuple(dict.fromkeys([str(pyroute2_parent), str(wqlab_parent)]))


def _jsonable(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as JSON can carry them (flag sets become lists)."""
    return {
        k: sorted(v) if isinstance(v, (set, frozenset)) else list(v) if isinstance(v, tuple) else v
        for k, v in args.items()
    }


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def ensure_debugfs(agent: AgentChannel) -> None:
    """Mount debugfs in the guest unless it is (the fast boot's init mounts it: then this
    is one file read, no shell)."""
    mounts = agent.read("/proc/mounts").split("\n")
    if not any(m.split()[1:3] == ["/sys/kernel/debug", "debugfs"] for m in mounts if m):
        agent.succeed("mount -t debugfs none /sys/kernel/debug")


def module_params(params: Mapping[str, Any]) -> str:
    """The parameter string of ``finit_module()`` (pure): ``key=value`` words, a value
    with blanks in double quotes (as insmod does); booleans become 1/0."""
    words = []
    for k, v in params.items():
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", k):
            raise ValueError(f"bad module parameter name {k!r}")
        text = str(int(v)) if isinstance(v, bool) else str(v)
        if '"' in text or "\n" in text:
            raise ValueError(f"module parameter {k}: a value holds no quote or newline")
        words.append(f'{k}="{text}"' if re.search(r"\s", text) else f"{k}={text}")
    return " ".join(words)


# what the module system calls' errnos mean (kmod's words where it has them)
INSMOD_ERRORS = {
    errno_mod.EEXIST: "the module is already loaded (rmmod it first)",
    errno_mod.ENOEXEC: "invalid module format: built for another kernel? (dmesg says why)",
    errno_mod.ENOENT: "unknown symbol or parameter in module (dmesg says which)",
    errno_mod.EINVAL: "invalid parameters, or the module's init refused them (dmesg says why)",
    errno_mod.EPERM: "not permitted (root, a module signature, lockdown)",
    errno_mod.EKEYREJECTED: "the module's signature was rejected",
    errno_mod.EBUSY: "the module's init is still running in another load",
}
RMMOD_ERRORS = {
    errno_mod.ENOENT: "the module is not loaded",
    errno_mod.EWOULDBLOCK: "the module is in use (an open file or a module using it)",
    errno_mod.EBUSY: "the module cannot be unloaded now (in use, or still loading)",
    errno_mod.EPERM: "not permitted (root)",
}


def module_error(what: str, err: int | None, table: Mapping[int, str]) -> GuestCommandError:
    """A module system call's failure as a GuestCommandError that says what it means."""
    name = errno_mod.errorcode.get(err or 0, str(err))
    why = table.get(err or 0) or (os.strerror(err) if err else "no errno")
    return GuestCommandError(f"{what} failed: {name}: {why}", err)


INSMOD_TIMEOUT = 60.0


def insmod(agent: AgentChannel, ko: str, **params: Any) -> None:
    """Load a module file in the guest with ``finit_module()`` (``params`` become
    ``key=value``); no process is started. A compressed module is left to insmod."""
    args = module_params(params)
    if not ko.endswith(".ko"):
        words = [ko, args] if args else [ko]  # kmod joins its arguments with blanks
        agent.succeed("insmod " + shlex.join(words), INSMOD_TIMEOUT)
        return
    try:
        agent.request("insmod", INSMOD_TIMEOUT, path=ko, params=args)
    except GuestCommandError as e:
        if e.errno is None:
            raise
        raise module_error(f"insmod {ko} {args}".strip(), e.errno, INSMOD_ERRORS) from None


def rmmod(
    agent: AgentChannel, name: str = "wqlab", timeout: float = 120.0, expedite_rcu: bool = False
) -> None:
    """Unload a module with ``delete_module()``; no answer within ``timeout`` raises
    GuestTimeoutError (a hung exit function: the caller taints the VM). ``expedite_rcu``:
    the kernel's grace-period waits expedited for the unload (the guest agent's
    ``_ExpeditedRcu``)."""
    try:
        extra = {"expedite_rcu": True} if expedite_rcu else {}
        agent.request("rmmod", timeout, name=name, **extra)
    except GuestCommandError as e:
        if e.errno is None:
            raise
        raise module_error(f"rmmod {name}", e.errno, RMMOD_ERRORS) from None


def is_loaded(agent: AgentChannel, name: str = "wqlab") -> bool:
    return agent.exists(f"/sys/module/{name}")
