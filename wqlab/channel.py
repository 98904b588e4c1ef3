"""The host side of the guest agent (``wqlab/guest_agent.py``): JSON lines, many in flight.

One request costs about a millisecond plus the guest's work, not a Python start-up. The
channel works on any pair of byte streams, so the same agent serves a VM the harness
booted (virtio-serial ports behind ``vng --exec``) and a machine reached over SSH.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import IO, Any

from .errors import GuestCommandError, GuestTimeoutError, VmLostError

log = logging.getLogger(__name__)

REPLY_MARK = b"@@wqlab@@ "
_REPLY_ID = re.compile(rb'\{"id":(\d+),')
DEFAULT_TIMEOUT = 60.0


class AgentChannel:
    """Send requests to a running guest agent and wait for their replies.

    ``reader``/``writer`` are the agent's stdout/stdin as binary streams. Lines that are
    not replies go to ``on_other`` (console text, when both share a stream).
    """

    def __init__(
        self,
        reader: IO[bytes],
        writer: IO[bytes],
        on_other: Callable[[bytes], None] | None = None,
        name: str = "guest",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_other = on_other
        self._name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {0: Future()}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lost: str | None = None
        self._thread = threading.Thread(target=self._read_loop, name=f"{name}-agent", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> str | None:
        """Why the channel died, or None while it is alive."""
        return self._lost

    def wait_ready(self, deadline: float) -> None:
        """Block until the agent's ``ready`` line, or raise at ``deadline`` (monotonic)."""
        fut = self._pending[0]
        try:
            fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise GuestTimeoutError(
                f"{self._name}: the guest agent did not start in time"
            ) from None

    def submit(self, op: str, **kw: Any) -> Future[Any]:
        """Send one request; its reply completes the returned future."""
        if self._lost:
            raise VmLostError(f"{self._name} is gone ({self._lost}); start a new one")
        rid = next(self._ids)
        fut: Future[Any] = Future()
        with self._lock:
            self._pending[rid] = fut
        line = json.dumps({"id": rid, "op": op, **kw}, separators=(",", ":")).encode() + b"\n"
        try:
            with self._write_lock:
                self._writer.write(line)
                self._writer.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            self._fail_all(f"write failed: {e}")
            raise VmLostError(f"{self._name}: cannot reach the guest agent ({e})") from e
        return fut

    def request(self, op: str, timeout: float = DEFAULT_TIMEOUT, **kw: Any) -> Any:
        """Send one request and return its value; raise GuestCommandError on failure."""
        fut = self.submit(op, **kw)
        return self.result(fut, timeout, op)

    def result(self, fut: Future[Any], timeout: float = DEFAULT_TIMEOUT, what: str = "") -> Any:
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            raise GuestTimeoutError(
                f"{self._name}: request {what or '?'} got no answer in {timeout:.0f} s; the "
                "guest may be hung (console log has the details)"
            ) from None

    # convenience wrappers -------------------------------------------------------------
    def read(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return str(self.request("read", timeout, path=path))

    def write(self, path: str, data: str, timeout: float = DEFAULT_TIMEOUT) -> int:
        return int(self.request("write", timeout, path=path, data=data))

    def exists(self, path: str) -> bool:
        return bool(self.request("exists", path=path))

    def sh(
        self,
        cmd: str,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Run a shell command in the guest: ``{"rc", "stdout", "stderr"}``."""
        res: dict[str, Any] = self.request("sh", timeout + 5, cmd=cmd, limit=timeout, user=user)
        if check and res["rc"] != 0:
            raise GuestCommandError(
                f"guest command failed (rc={res['rc']}): {cmd}\n{res['stdout']}{res['stderr']}"
            )
        return res

    def py(
        self, script: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> dict[str, Any]:
        """Run a Python script in the guest, in a fork of the agent (what it has imported,
        the netlink client above all, comes with it): ``{"rc", "stdout", "stderr"}``."""
        res: dict[str, Any] = self.request("py", timeout + 5, script=script, limit=timeout)
        if check and res["rc"] != 0:
            raise GuestCommandError(
                f"guest Python script failed (rc={res['rc']}):\n{res['stdout']}{res['stderr']}"
            )
        return res

    def succeed(self, cmd: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Run ``cmd``, fail unless it exits 0, return its stdout (NixOS vocabulary)."""
        return str(self.sh(cmd, timeout)["stdout"])

    def ioctl(
        self,
        path: str,
        request: int,
        arg: bytes,
        timeout: float = DEFAULT_TIMEOUT,
        bad_pointer: bool = False,
    ) -> tuple[int, bytes]:
        res = self.request(
            "ioctl",
            timeout,
            path=path,
            request=request,
            arg=base64.b64encode(arg).decode(),
            bad_pointer=bad_pointer,
        )
        return int(res["rc"]), base64.b64decode(res["arg"])

    def close(self, timeout: float = 10.0) -> None:
        """Ask the agent to exit (the VM then powers off)."""
        if self._lost:
            return
        try:
            self.request("exit", timeout)
        except (VmLostError, GuestTimeoutError, GuestCommandError):
            pass

    # internals ------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            for raw in iter(self._reader.readline, b""):
                idx = raw.find(REPLY_MARK)
                if idx < 0:
                    if self._on_other:
                        self._on_other(raw)
                    continue
                if idx > 0 and self._on_other:
                    self._on_other(raw[:idx] + b"\n")
                # Normally one reply per line; a torn write would glue a reply's head to
                # the next reply: complete what parses, fail what does not (by its id).
                for part in raw[idx + len(REPLY_MARK) :].split(REPLY_MARK):
                    try:
                        msg = json.loads(part)
                    except json.JSONDecodeError:
                        self._torn(part)
                        continue
                    self._complete(msg)
        except (OSError, ValueError) as e:
            self._fail_all(f"read failed: {e}")
            return
        self._fail_all("the guest agent's stream ended")

    def _torn(self, part: bytes) -> None:
        if self._on_other:
            self._on_other(REPLY_MARK + part.rstrip(b"\n") + b"\n")
        m = _REPLY_ID.match(part)
        if m is None:
            return
        rid = int(m[1])
        with self._lock:
            fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(GuestCommandError(f"{self._name}: reply {rid} arrived torn"))

    def _complete(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        with self._lock:
            fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if fut is None:
            log.warning("%s: reply to an unknown request: %r", self._name, msg)
            return
        if msg.get("ok"):
            fut.set_result(msg.get("value"))
        else:
            fut.set_exception(GuestCommandError(str(msg.get("error")), msg.get("errno")))

    def _fail_all(self, why: str) -> None:
        self._lost = self._lost or why
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(VmLostError(f"{self._name}: {why}"))
