#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""wqlab guest agent: runs once inside the VM and executes host requests.

It reads one JSON request per line on stdin (a virtio-serial port) and writes one JSON
reply per line on stdout, prefixed with ``REPLY_MARK`` so that nothing else on the stream
is taken for a reply. Requests run on a pool of threads, so a blocking request
(``flush_work`` of a blocked item) can be released by a later one; quick ones run inline
(see ``INLINE_OPS``). Standard library only: it runs on the guest's system Python.

How it starts:
  * fast boot (the default): the kernel runs it as init, PID 1, straight after virtme-ng's
    initramfs has mounted the host's root (``init=/usr/bin/python3 -- -I -S -u
    guest_agent.py --init --chdir DIR``; with the cached /usr share, busybox runs
    ``guest_init.sh`` first, which mounts it and execs that Python). ``--init`` mounts
    what the tests use (proc, sysfs, devtmpfs, debugfs, tracefs, tmpfs /run, overlays
    that make /etc, /var, /tmp... writable), finds virtme-ng's virtio-serial ports, then
    forks: the child is the agent, PID 1 reaps orphans and powers the VM off when the
    agent exits. This replaces virtme-ng-init, systemd-tmpfiles and udev, about 10 s of a
    16 s boot under TCG.
  * plain boot (``--no-fast-boot``): virtme-ng-init runs it as the ``--exec`` command.
  * over SSH (``wqlab.ssh``): started by hand on a machine the harness did not boot.

Request: ``{"id": 7, "op": "read", "path": "/sys/kernel/debug/wqlab/works"}``
Reply:   ``{"id": 7, "ok": true, "value": "..."}`` or
         ``{"id": 7, "ok": false, "errno": 22, "error": "Invalid argument"}``
"""

from __future__ import annotations

import base64
import errno
import fcntl
import gc
import json
import os
import queue
import select
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
    """Write ``data``; ``missing_ok``: a file that does not exist is no error (the value is
    then None) and none is created (a tracefs event of a module not loaded)."""
    if req.get("missing_ok"):
        try:
            fd = os.open(req["path"], os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return os.write(fd, req["data"].encode())
        finally:
            os.close(fd)
    with open(req["path"], "wb", buffering=0) as f:
        return f.write(req["data"].encode())


def op_mkdir(req: dict) -> object:
    """One directory (a tracefs instance); ``exist_ok``. The value: whether it was made.
    ``then``: batch steps run only when it was (setting a new instance up)."""
    try:
        os.mkdir(req["path"])
    except FileExistsError:
        if not req.get("exist_ok"):
            raise
        return False
    _run_steps(req.get("then", ()))
    return True


def op_rmdir(req: dict) -> object:
    os.rmdir(req["path"])
    return None


def op_listdir(req: dict) -> object:
    return sorted(os.listdir(req["path"]))


def op_batch(req: dict) -> object:
    """File steps (``read``, ``write``, ``mkdir``, ``rmdir``, ``exists``, ``listdir``) in
    one round trip, in order; their values as a list. The first failure ends the batch,
    and its error names the step. ``expedite_rcu``: see ``_ExpeditedRcu``."""
    with _ExpeditedRcu(req.get("expedite_rcu", False)):
        return _run_steps(req["steps"])


RCU_EXPEDITED = "/sys/kernel/rcu_expedited"
_rcu_lock = threading.Lock()
_rcu_users = [0, ""]  # requests inside _ExpeditedRcu, the knob's value before the first


class _ExpeditedRcu:
    """With ``on``: the kernel's grace-period waits (``synchronize_rcu()``) expedited for
    the request, ``RCU_EXPEDITED`` set to 1 and put back as it was after the last request
    using it. The harness asks it only for its own tracefs and unload steps, in a kernel
    it booted: emptying a trace buffer waits for two grace periods, a module unload for
    four per instance that had its events on, 20 ms each under TCG, under 5 ms expedited.
    The guarantees are the same. Without the knob (or write access) nothing changes."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        if not self.on:
            return
        with _rcu_lock:
            _rcu_users[0] += 1
            if _rcu_users[0] == 1:
                try:
                    with open(RCU_EXPEDITED) as f:
                        _rcu_users[1] = f.read().strip()
                    if _rcu_users[1] != "1":
                        with open(RCU_EXPEDITED, "w") as f:
                            f.write("1")
                except OSError:
                    _rcu_users[1] = ""

    def __exit__(self, *exc: object) -> None:
        if not self.on:
            return
        with _rcu_lock:
            _rcu_users[0] -= 1
            if _rcu_users[0] == 0 and _rcu_users[1] not in ("", "1"):
                try:
                    with open(RCU_EXPEDITED, "w") as f:
                        f.write(_rcu_users[1])
                except OSError:
                    pass


def _run_steps(steps: list) -> list:
    values = []
    for step in steps:
        if step.get("op") not in BATCH_OPS:
            raise ValueError(f"{step.get('op')!r} cannot run in a batch")
        try:
            values.append(OPS[step["op"]](step))
        except OSError as e:
            if e.strerror and e.strerror.startswith("batch: "):
                raise  # a step of a mkdir's ``then``: named already
            what = f"batch: {step['op']} {step.get('path', '')}: {e.strerror}"
            raise OSError(e.errno, what) from None
    return values


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
    import subprocess  # a second of start-up under TCG, only for sh

    try:
        p = subprocess.run(
            req["cmd"],
            shell=True,
            capture_output=True,
            timeout=req.get("limit", 60),
            user=req.get("user"),
        )
    except subprocess.TimeoutExpired as e:  # the host sees errno ETIMEDOUT
        raise TimeoutError(errno.ETIMEDOUT, str(e)) from None
    return {
        "rc": p.returncode,
        "stdout": p.stdout.decode(errors="replace"),
        "stderr": p.stderr.decode(errors="replace"),
    }


def op_py(req: dict) -> object:
    """Run a Python ``script`` as ``__main__`` in a fork of this agent, like ``python3 -c``:
    ``{"rc", "stdout", "stderr"}``. What the agent has imported comes with the fork (the
    netlink client's pyroute2 core and asyncio: 5-8 s of imports in a new guest Python
    under TCG). The child gets /dev/null for stdin and none of the agent's other files."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # only this thread lives on here: nothing of the agent's is used
        code = 1
        try:
            # The agent's objects are never collected here: a finalizer (an asyncio loop
            # of pyroute2's, a socket) would close a descriptor number that the script
            # has since reused, or unregister from an epoll instance the agent shares.
            gc.freeze()
            null = os.open(os.devnull, os.O_RDONLY)
            for fd, to in ((null, 0), (out_w, 1), (err_w, 2)):
                os.dup2(fd, to)
            os.closerange(3, 65536)
            sys.stdin, sys.stdout, sys.stderr = open(0), open(1, "w"), open(2, "w")
            code = _run_main(req["script"])
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    for fd in (out_w, err_w):
        os.close(fd)
    got: dict = {out_r: [], err_r: []}
    deadline = time.monotonic() + req.get("limit", 60)
    try:
        while got.keys() - _closed(got):
            left = deadline - time.monotonic()
            ready = select.select(list(got.keys() - _closed(got)), [], [], max(0.0, left))[0]
            if not ready:
                os.kill(pid, 9)
                raise TimeoutError(errno.ETIMEDOUT, f"the script ran past {req.get('limit', 60)} s")
            for fd in ready:
                data = os.read(fd, 65536)
                got[fd].append(data if data else None)
    finally:
        for fd in got:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "stdout": b"".join(got[out_r][:-1]).decode(errors="replace"),
        "stderr": b"".join(got[err_r][:-1]).decode(errors="replace"),
    }


def _closed(got: dict) -> set:
    """The pipes of ``op_py`` that reached their end (a ``None`` at the end of the list)."""
    return {fd for fd, parts in got.items() if parts and parts[-1] is None}


def _run_main(script: str) -> int:
    """``op_py``'s child: the script's exit code as ``python3 -c`` would give it."""
    try:
        exec(
            compile(script, "<py>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__}
        )
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


# Modules and the kernel log, by system calls: a process (insmod, rmmod, dmesg) started
# over 9p under TCG costs 0.25-0.6 s. finit_module(fd, params, flags) and
# delete_module(name, flags), by machine.
SYSCALLS = {"x86_64": (313, 176), "aarch64": (273, 106)}


def _module_syscall(index: int, *args: object) -> None:
    nrs = SYSCALLS.get(os.uname().machine)
    if nrs is None:
        raise OSError(errno.ENOSYS, f"no module system call numbers for {os.uname().machine}")
    import ctypes  # already imported by PID 1 in a fast boot

    libc = _libc()
    if libc.syscall(ctypes.c_long(nrs[index]), *args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def op_insmod(req: dict) -> object:
    """Load the module file ``path`` with ``params`` (``key=value ...``), as insmod does."""
    fd = _module_fd(req["path"])
    try:
        _module_syscall(0, fd, req.get("params", "").encode(), 0)
    finally:
        os.close(fd)
    return None


# The module files insmod loaded, kept in memory: path -> (identity, read-only descriptor)
_ko_copies: dict = {}
_ko_lock = threading.Lock()
KO_COPIES = 4  # paths kept (the oldest goes first)


def _module_fd(path: str) -> int:
    """A descriptor of ``path``'s bytes for ``finit_module()``, the caller's to close.

    The host's module file comes over 9p, which the guest does not cache: reading its
    1.5 MB took most of each load (about 170 of 245 ms under TCG). A regular file is read
    once into a sealed memfd, reused while the file's identity (device, inode, size,
    mtime, ctime) stays the same; anything else (a directory, no memfd) goes straight to
    the kernel, which then answers as it always did."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not hasattr(os, "memfd_create") or (st.st_mode & 0o170000) != 0o100000:
        return fd
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _ko_lock:
        hit = _ko_copies.get(path)
        if hit is not None and hit[0] == ident:
            os.close(fd)
            return os.dup(hit[1])
    try:
        data = b""
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    finally:
        os.close(fd)
    rw = os.memfd_create("wqlab-ko", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(rw, view) :]
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(rw, fcntl.F_ADD_SEALS, seals)
        # finit_module() refuses a file open for writing anywhere (ETXTBSY): keep a
        # read-only descriptor of it only
        ro = os.open(f"/proc/self/fd/{rw}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(rw)
    with _ko_lock:
        old = _ko_copies.pop(path, None)
        if old is not None:
            os.close(old[1])
        _ko_copies[path] = (ident, ro)
        while len(_ko_copies) > KO_COPIES:
            os.close(_ko_copies.pop(next(iter(_ko_copies)))[1])
        return os.dup(ro)


def op_rmmod(req: dict) -> object:
    """Unload the module ``name``; O_NONBLOCK as rmmod passes it: a module in use is
    refused (EWOULDBLOCK) at once. Its exit function may still take long (flushes).
    ``expedite_rcu``: see ``_ExpeditedRcu``."""
    with _ExpeditedRcu(req.get("expedite_rcu", False)):
        _module_syscall(1, req["name"].encode(), os.O_NONBLOCK)
    return None


class _Kmsg:
    """``/dev/kmsg`` read through one descriptor kept open: records come in sequence
    order, so a read goes on from the last one and only reads what is new."""

    def __init__(self) -> None:
        self._fd = -1
        self._next = 0  # sequence number of the next record the descriptor gives
        self._lock = threading.Lock()

    def read(self, since: int | None) -> dict:
        """Raw records (``prio,seq,ts,flags;message``) from sequence ``since`` on (none
        for None, a mark) and the sequence number of the next record to come."""
        with self._lock:
            if self._fd < 0:
                self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            elif since is not None and since < self._next:
                os.lseek(self._fd, 0, os.SEEK_SET)  # read again from the oldest record
            records = []
            while True:
                try:
                    raw = os.read(self._fd, 16384)
                except BlockingIOError:
                    break
                except BrokenPipeError:
                    continue  # overwritten before read: the next read gets the oldest left
                if not raw:
                    break
                seq = int(raw.split(b",", 2)[1])
                self._next = seq + 1
                if since is not None and seq >= since:
                    records.append(raw.decode(errors="replace").rstrip("\n"))
            return {"next": self._next, "records": records}


_kmsg = _Kmsg()


def op_kmsg(req: dict) -> object:
    return _kmsg.read(req.get("since"))


def op_exists(req: dict) -> object:
    return os.path.exists(req["path"])


def op_sleep(req: dict) -> object:
    time.sleep(req["seconds"])
    return None


# Generic netlink, through wqlab/genl.py and pyroute2. The agent runs isolated (-I -S) on
# the guest's system Python; the host's pyroute2 and wqlab (pure Python, seen read-only
# through the shared root) are put on its path for this import only, from the request's
# ``paths``: the host names where its own copies are.
_genl_local = threading.local()
_listeners: dict = {}
_listeners_lock = threading.Lock()


# where Debian's python3-pyroute2 lives: the last resort (a target the host did not boot)
DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def _pyroute2_core(paths: list) -> None:
    """Register the pyroute2 package without running its ``__init__``, which imports all
    of pyroute2 (IPRoute, NDB, IPDB, conntrack...: 163 modules, 31 s under TCG); the
    generic netlink socket needs 16 of them (about 4 s)."""
    if "pyroute2" in sys.modules:
        return
    for path in paths:
        pkg = os.path.join(path, "pyroute2")
        if os.path.isfile(os.path.join(pkg, "__init__.py")):
            import types

            mod = types.ModuleType("pyroute2")
            mod.__path__ = [pkg]
            mod.__file__ = os.path.join(pkg, "__init__.py")
            sys.modules["pyroute2"] = mod
            return


def _genl(req: dict):  # the wqlab.genl module
    paths = [*req.get("paths", ()), DIST_PACKAGES]
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)  # after the standard library: it keeps precedence
    _pyroute2_core(paths)
    try:
        from wqlab import genl
    except ImportError as e:
        raise OSError(
            errno.ENOPKG,
            f"generic netlink needs pyroute2 in the guest ({e}); the host's paths "
            f"{req.get('paths')} did not provide it: install pyroute2 (.venv) or "
            "python3-pyroute2",
        ) from None
    return genl


def _genl_socket(req: dict):  # wqlab.genl.Genl
    """This thread's socket to the family; a new one after the module was reloaded (the
    family gets a new id at each registration)."""
    genl = _genl(req)
    try:
        gen = os.stat("/sys/module/wqlab").st_ino
    except FileNotFoundError:
        raise OSError(errno.ENOENT, "the wqlab module is not loaded") from None
    cached = getattr(_genl_local, "nl", None)
    if cached is not None and cached[0] == gen:
        return cached[1]
    if cached is not None:
        cached[1].close()
    nl = genl.Genl()
    _genl_local.nl = (gen, nl)
    return nl


def op_genl_import(req: dict) -> object:
    """Import the netlink client now (the first use costs seconds to tens of seconds
    under TCG); the host asks once per agent, with a long deadline."""
    t0 = time.monotonic()
    _genl(req)
    return time.monotonic() - t0


def op_genl(req: dict) -> object:
    """One command over generic netlink: ``name`` and ``args``, or a ``raw`` message
    (``cmd``, ``version``, ``attrs`` as [type, base64]); the answer's attributes."""
    nl = _genl_socket(req)
    if "raw" in req:
        attrs = [(t, base64.b64decode(d)) for t, d in req["raw"]]
        return nl.raw(req["cmd"], attrs, req["version"])
    return nl.command(req["name"], req.get("args") or {})


def op_genl_dump(req: dict) -> object:
    return _genl_socket(req).dump(req["what"])


def op_genl_events(req: dict) -> object:
    """``action``: ``open`` (a listener subscribed to the events group; its handle),
    ``read`` (what came in, waiting up to ``wait`` seconds for the first), ``count`` (the
    same, taken in and summed up in the guest: benchmarks), ``close``."""
    action = req["action"]
    if action == "open":
        listener = _genl(req).Listener(rcvbuf=req.get("rcvbuf", 4 << 20))
        with _listeners_lock:
            handle = max(_listeners, default=0) + 1
            _listeners[handle] = (threading.Lock(), listener)
        return handle
    with _listeners_lock:
        entry = _listeners.get(req["handle"]) if action in ("read", "count") else None
        if action == "close":
            entry = _listeners.pop(req["handle"], None)
    if entry is None:
        raise OSError(errno.EBADF, f"no event listener {req['handle']}")
    lock, listener = entry
    with lock:
        if action == "close":
            listener.close()
            return None
        if action == "count":
            summary = listener.count(req.get("wait", 0.0))
            return {**summary, "overruns": listener.overruns, "gaps": listener.gaps}
        events = listener.read(req.get("wait", 0.0), req.get("limit", 100000))
        return {"events": events, "overruns": listener.overruns, "gaps": listener.gaps}


OPS = {
    "ping": op_ping,
    "echo": op_echo,
    "read": op_read,
    "write": op_write,
    "command": op_command,
    "ioctl": op_ioctl,
    "sh": op_sh,
    "py": op_py,
    "exists": op_exists,
    "sleep": op_sleep,
    "mkdir": op_mkdir,
    "rmdir": op_rmdir,
    "listdir": op_listdir,
    "batch": op_batch,
    "insmod": op_insmod,
    "rmmod": op_rmmod,
    "kmsg": op_kmsg,
    "genl": op_genl,
    "genl_import": op_genl_import,
    "genl_dump": op_genl_dump,
    "genl_events": op_genl_events,
}
BATCH_OPS = {"read", "write", "mkdir", "rmdir", "exists", "listdir"}

# Requests that never block run on the reading thread; the host marks others "inline"
# when it knows they return at once (module commands that do not flush or cancel_sync).
INLINE_OPS = {"ping", "echo", "exists", "kmsg"}


def _handle(req: dict) -> None:
    rid = req.get("id")
    try:
        fn = OPS[req["op"]]
        value = fn(req)
        _reply({"id": rid, "ok": True, "value": value})
    except OSError as e:
        _reply({"id": rid, "ok": False, "errno": e.errno, "error": str(e)})
    except Exception as e:  # every failure goes back to the host
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


# PID 1 ------------------------------------------------------------------------------
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
RB_POWER_OFF = 0x4321FEDC
# source, target, type, flags, options: in order (devpts and shm live on the devtmpfs)
MOUNTS = (
    ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
    ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=755"),
    ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"),
    ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, ""),
    ("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755"),
    ("debugfs", "/sys/kernel/debug", "debugfs", 0, ""),
    ("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""),
)
# The host's root is shared read-only: these get a tmpfs upper layer (as virtme-ng does),
# so the guest can write them (sshd's /etc/shadow, /tmp) without touching the host.
OVERLAYS = ("/etc", "/home", "/opt", "/srv", "/var", "/tmp")
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
# /usr again, as a 9p share of its own (``wqlab.vm.USR_TAG``, added by the harness) that
# the guest may cache: the root share is ``cache=none`` (virtme-ng's initramfs mounts it so,
# right for a tree the host changes under a running guest), so every exec, import and
# dlopen walks 9p again. /usr does not change while a VM runs (packages are installed
# before, builds and venvs live elsewhere): ``cache=loose`` keeps its pages and dentries,
# and a new guest Python imports asyncio in 3 s instead of 9 under TCG. Mounted over
# /usr by the fast boot's first PID 1 (busybox running wqlab/guest_init.sh, before it
# execs this agent's Python: its own start-up then reads the cached share too), else here
# once the agent runs (PID 1 keeps what it has loaded); no such share, no mount.
# So a change under /usr while a VM runs (apt, `make install` to /usr/local) is not seen
# by that VM, or seen torn: boot again, or set WQLAB_USR_CACHE=0 on the host.
USR_TAG = "wqlab_usr"
USR_OPTS = "trans=virtio,version=9p2000.L,cache=loose,access=any,msize=524288"
MS_RDONLY = 0x1
PORTS = ("virtme.stdin", "virtme.stdout", "virtme.stderr")
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    "TERM": "linux",
}


_LIBC: list = []


def _libc():  # ctypes.CDLL
    """The C library through ctypes (imported on first use: PID 1, module system calls)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _mount(libc, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    import ctypes  # PID 1 only (imported once by _libc)

    os.makedirs(target, exist_ok=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()):
        e = ctypes.get_errno()
        raise OSError(e, f"mount -t {fstype} {source} {target}: {os.strerror(e)}")


def _virtio_ports(names: tuple[str, ...], timeout: float = 10.0) -> dict[str, str]:
    """``{port name: /dev/vportNpM}``; the ports appear asynchronously, so wait a little."""
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    base = "/sys/class/virtio-ports"
    while True:
        for d in os.listdir(base) if os.path.isdir(base) else ():
            try:
                with open(f"{base}/{d}/name") as f:
                    found[f.read().strip()] = f"/dev/{d}"
            except OSError:
                continue
        if all(n in found for n in names) or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _mount_tags() -> set[str]:
    """The mount tags of the guest's virtio 9p devices."""
    base = "/sys/bus/virtio/drivers/9pnet_virtio"
    tags = set()
    for d in os.listdir(base) if os.path.isdir(base) else ():
        try:
            with open(f"{base}/{d}/mount_tag") as f:
                tags.add(f.read().strip("\0\n "))
        except OSError:
            continue
    return tags


def init_guest(chdir: str) -> None:
    """Set the guest up as its init, then fork: returns in the child, which runs the
    agent; PID 1 stays here, reaps orphans and powers off when the agent exits."""
    libc = _libc()
    for source, target, fstype, flags, data in MOUNTS:
        _mount(libc, source, target, fstype, flags, data)
    if USR_TAG in _mount_tags() and not os.path.ismount("/usr"):  # guest_init.sh did not
        try:
            _mount(libc, USR_TAG, "/usr", "9p", MS_RDONLY, USR_OPTS)
        except OSError as e:  # the uncached root's /usr still works, only slower
            print(f"wqlab init: {e}", file=sys.stderr)
    for i, d in enumerate(OVERLAYS):
        if not os.path.isdir(d):
            continue
        up = f"/run/wqlab/overlay{i}"
        os.makedirs(f"{up}/upper")
        os.makedirs(f"{up}/work")
        opts = f"lowerdir={d},upperdir={up}/upper,workdir={up}/work"
        try:
            _mount(libc, f"wqlab_overlay{i}", d, "overlay", 0, opts)
        except OSError as e:  # a kernel without overlayfs: at least /tmp is writable
            print(f"wqlab init: {e}", file=sys.stderr)
            if d == "/tmp":
                _mount(libc, "tmp", d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for name, target in DEV_LINKS:
        if not os.path.lexists(f"/dev/{name}"):
            os.symlink(target, f"/dev/{name}")
    with open("/proc/sys/kernel/hostname", "w") as f:
        f.write("virtme-ng")
    ports = _virtio_ports(PORTS)
    missing = [n for n in PORTS[:2] if n not in ports]
    if missing:
        raise RuntimeError(f"virtio-serial ports {missing} not found (have {sorted(ports)})")
    for fd, name in enumerate(PORTS):
        if name in ports:
            new = os.open(ports[name], os.O_RDONLY if fd == 0 else os.O_WRONLY)
            os.dup2(new, fd)
            os.close(new)
    os.environ.update(ENV)
    os.chdir(chdir)
    agent = os.fork()
    if agent == 0:
        return
    code = 255
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid == agent:
            code = os.waitstatus_to_exitcode(status)
            break
    _power_off(libc, code, _virtio_ports(("virtme.ret",), timeout=0).get("virtme.ret"))


def _power_off(libc, code: int, ret_port: str | None) -> None:
    """Tell vng the exit status (its ``virtme.ret`` port), sync and power off: PID 1 must
    not exit, or the kernel panics."""
    if ret_port:
        try:
            with open(ret_port, "w") as f:
                f.write(f"{code if code >= 0 else 255}\n")
        except OSError:
            pass
    os.sync()
    libc.reboot(RB_POWER_OFF)
    while True:  # reboot() does not return; never let PID 1 exit
        time.sleep(60)


def _as_init(argv: list[str]) -> None:
    if os.getpid() != 1:
        sys.exit("guest_agent.py --init: only the kernel's init (PID 1) may set the guest up")
    chdir = argv[argv.index("--chdir") + 1] if "--chdir" in argv else "/"
    try:
        init_guest(chdir)
    except BaseException:  # PID 1 must not exit: say why, power off
        import traceback

        traceback.print_exc()
        print("wqlab init: guest set-up failed; powering off", file=sys.stderr, flush=True)
        _power_off(_libc(), 255, None)


if __name__ == "__main__":
    if "--init" in sys.argv[1:]:
        _as_init(sys.argv[1:])
    main()
