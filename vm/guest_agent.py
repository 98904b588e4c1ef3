#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""wqlab guest agent: runs once inside the VM and executes host requests.

Started by the harness as the virtme-ng ``--exec`` command. It reads one JSON request
per line on stdin (a virtio-serial port) and writes one JSON reply per line on stdout,
prefixed with ``REPLY_MARK`` so that nothing else on the stream is taken for a reply.
Requests run on a pool of threads, so a blocking request (``flush_work`` of a blocked
item) can be released by a later one; quick ones run inline (see ``INLINE_OPS``). Standard library only: it runs on the guest's
system Python.

Request: ``{"id": 7, "op": "read", "path": "/sys/kernel/debug/wqlab/works"}``
Reply:   ``{"id": 7, "ok": true, "value": "..."}`` or
         ``{"id": 7, "ok": false, "errno": 22, "error": "Invalid argument"}``
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time

REPLY_MARK = "@@wqlab@@ "
_out_lock = threading.Lock()


def _reply(obj: dict) -> None:
    line = REPLY_MARK + json.dumps(obj, separators=(",", ":")) + "\n"
    data = memoryview(line.encode())
    with _out_lock:
        # os.write() on the virtio-serial port may take only part of a large reply (seen
        # on 6.12 with a 30 kB trace): write the rest, or the host gets a torn line
        while data:
            try:
                n = os.write(1, data)
            except BlockingIOError:
                select.select([], [1], [], 1.0)
                continue
            data = data[n:]


def op_ping(req: dict) -> object:
    return {"pid": os.getpid(), "uptime": float(open("/proc/uptime").read().split()[0])}


def op_echo(req: dict) -> object:
    return req.get("data")


def op_read(req: dict) -> object:
    with open(req["path"], "rb") as f:
        if "offset" in req:
            f.seek(req["offset"])
        data = f.read(req["size"]) if "size" in req else f.read()
    return data.decode(errors="replace")


def op_write(req: dict) -> object:
    with open(req["path"], "wb", buffering=0) as f:
        return f.write(req["data"].encode())


def op_command(req: dict) -> object:
    """Write one command to a control file and read its result on the same descriptor."""
    fd = os.open(req["path"], os.O_RDWR)
    try:
        os.write(fd, req["data"].encode())
        chunks = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(fd)


def op_ioctl(req: dict) -> object:
    buf = bytearray(base64.b64decode(req["arg"]))
    fd = os.open(req["path"], os.O_RDWR)
    try:
        if req.get("bad_pointer"):
            # Hand the kernel an address no process maps, to prove -EFAULT.
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            rc = libc.ioctl(fd, ctypes.c_ulong(req["request"]), ctypes.c_void_p(0x10))
            if rc < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return {"rc": rc, "arg": ""}
        rc = fcntl.ioctl(fd, req["request"], buf, True)
        return {"rc": rc, "arg": base64.b64encode(bytes(buf)).decode()}
    finally:
        os.close(fd)


def op_sh(req: dict) -> object:
    p = subprocess.run(
        req["cmd"],
        shell=True,
        capture_output=True,
        timeout=req.get("limit", 60),
        user=req.get("user"),
    )
    return {
        "rc": p.returncode,
        "stdout": p.stdout.decode(errors="replace"),
        "stderr": p.stderr.decode(errors="replace"),
    }


def op_exists(req: dict) -> object:
    return os.path.exists(req["path"])


def op_sleep(req: dict) -> object:
    time.sleep(req["seconds"])
    return None


OPS = {
    "ping": op_ping,
    "echo": op_echo,
    "read": op_read,
    "write": op_write,
    "command": op_command,
    "ioctl": op_ioctl,
    "sh": op_sh,
    "exists": op_exists,
    "sleep": op_sleep,
}

# Requests that never block run on the reading thread; the host marks others "inline"
# when it knows they return at once (module commands that do not flush or cancel_sync).
INLINE_OPS = {"ping", "echo", "exists"}


def _handle(req: dict) -> None:
    rid = req.get("id")
    try:
        fn = OPS[req["op"]]
        value = fn(req)
        _reply({"id": rid, "ok": True, "value": value})
    except OSError as e:
        _reply({"id": rid, "ok": False, "errno": e.errno, "error": str(e)})
    except subprocess.TimeoutExpired as e:
        _reply({"id": rid, "ok": False, "errno": errno.ETIMEDOUT, "error": str(e)})
    except Exception as e:  # noqa: BLE001 - every failure goes back to the host
        _reply({"id": rid, "ok": False, "errno": None, "error": f"{type(e).__name__}: {e}"})


class _Pool:
    """Pre-started worker threads: a hand-off costs far less than a thread start under
    TCG. A new worker is added whenever none is idle, so blocked requests (a flush
    waiting for a release) never starve the ones that would unblock them."""

    def __init__(self, start: int = 4) -> None:
        self._q: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()
        for _ in range(start):
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            self._idle += 1
        threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while True:
            req = self._q.get()
            _handle(req)
            with self._lock:
                self._idle += 1

    def submit(self, req: dict) -> None:
        with self._lock:
            grow = self._idle == 0
            self._idle -= 1
        if grow:
            with self._lock:
                self._idle += 1
            self._spawn()
            with self._lock:
                self._idle -= 1
        self._q.put(req)


def main() -> None:
    pool = _Pool()
    _reply({"id": 0, "ok": True, "value": "ready"})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as e:
            _reply({"id": None, "ok": False, "errno": None, "error": f"bad request: {e}"})
            continue
        if req.get("op") == "exit":
            _reply({"id": req.get("id"), "ok": True, "value": None})
            break
        if req.get("inline") or req.get("op") in INLINE_OPS:
            _handle(req)  # quick requests: no thread hand-off (about 1 ms under TCG)
        else:
            pool.submit(req)
    os.sync()


if __name__ == "__main__":
    main()
