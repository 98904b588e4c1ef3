"""Run a VM command and take its whole process group down when the harness dies.

    python wqlab/reaper.py <vng argv...>

The harness starts this as the leader of a new process group (``start_new_session``);
it forks the VM command (vng, which starts QEMU) into the same group, passes the
standard streams through untouched, and exits with the command's status. If the harness
is killed outright (SIGKILL, OOM, a killed pytest-xdist worker), its atexit hooks never
run; the guest agent normally powers the VM off when its port reads EOF, but a hung
guest cannot. The reaper notices that its parent is gone (a pidfd of the parent turns
readable; it is reparented) and kills the group: SIGTERM, then SIGKILL (and SIGCONT,
for a stopped QEMU) after a grace period.

``kill_family`` is the harness's side of the same job: it kills a command it started
(a VM, a KVM probe) with everything that command started, even a process that left the
group.

Hand-written on purpose: QEMU's ``-run-with exit-with-parent=on`` needs QEMU 8.1+
(Debian 12 has 7.2) and ``PR_SET_PDEATHSIG`` would reach only vng, not QEMU, its child.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

POLL_S = 0.5
GRACE_S = 5.0


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    return [pid for pid, (_, g, _, state) in _proc_table().items() if g == pgid and state != "Z"]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time so far of those of ``pids`` that still run (a VM's
    reaper, vng and QEMU: what the guest has cost the host), from /proc/<pid>/stat."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat from its third field (state) on; [] once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:  # gone meanwhile
        return []
    return stat[stat.rindex(")") + 2 :].split()


def _proc_table() -> dict[int, tuple[int, int, int, str]]:
    """pid -> (ppid, pgid, sid, state) of every process, from /proc/<pid>/stat."""
    table = {}
    for d in os.scandir("/proc"):
        if d.name.isdigit() and (fields := _stat_fields(d.name)):
            table[int(d.name)] = (int(fields[1]), int(fields[2]), int(fields[3]), fields[0])
    return table


def _has_env(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:  # gone, or another user's
        return False


def family(leader: int | None, marker: str | None = None) -> list[int]:
    """Live (not zombie) processes that a command started, the caller excepted.

    ``leader`` is the command's pid, started with ``start_new_session``; it must not be
    reaped yet (a zombie is fine), so that its pid still names its process group and
    session. The family is every member of that group and session, every descendant of
    those at any depth (a child that moved into a session of its own), and every process
    whose environment holds ``marker`` (``NAME=value``, set in the command's
    environment: it is inherited down any fork, so it finds even a daemon whose parent
    has exited). Pass ``leader=None`` once the leader is reaped: the marker alone.
    """
    table = _proc_table()
    me = os.getpid()
    members: set[int] = set()
    if leader is not None:
        members = {pid for pid, (_, pgid, sid, _) in table.items() if leader in (pgid, sid)}
        members.add(leader)
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo = list(members)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in members:
                    members.add(child)
                    todo.append(child)
    if marker:
        raw = marker.encode()
        members |= {pid for pid in table if pid not in members and _has_env(pid, raw)}
    return sorted(
        pid for pid in members if pid in table and pid != me and table[pid][3] not in "ZX"
    )


def kill_family(
    leader: int | None, marker: str | None = None, grace: float = 2.0, patience: float = 10.0
) -> list[int]:
    """Kill a command's whole :func:`family`: SIGTERM, ``grace`` seconds to exit, then
    SIGCONT+SIGKILL to whatever is left or was started meanwhile, until none is left or
    ``patience`` seconds have passed. The caller still reaps ``leader`` (its child).

    Return: the pids still alive at the end (empty unless a process is stuck in the
    kernel).
    """

    def send(pids: list[int], *sigs: signal.Signals) -> None:
        for pid in pids:
            for sig in sigs:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break

    pids = family(leader, marker)
    send(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = family(leader, marker)
    deadline = time.monotonic() + patience
    while pids and time.monotonic() < deadline:
        send(pids, signal.SIGCONT, signal.SIGKILL)
        time.sleep(0.05)
        pids = family(leader, marker)
    return pids


def kill_group(pgid: int, grace: float = GRACE_S) -> None:
    """SIGTERM the group, then SIGCONT+SIGKILL whatever is left after ``grace``.
    The caller (a member of the group) goes down with it at the SIGKILL."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # outlive the SIGTERM to send the KILL
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.1)
        except ChildProcessError:
            break  # our child (vng) is gone; QEMU may still be there: KILL the group anyway
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: reaper.py <command...>", file=sys.stderr)
        return 2
    parent = os.getppid()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            print(f"reaper: cannot run {argv[0]}: {e}", file=sys.stderr)
            os._exit(127)
    # The command owns the streams now; keep none of our own copies of the pipes open
    # (the harness's stdin pipe must read EOF in the guest when the harness goes away).
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    events = _exit_events(pid, parent)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        ready = select.select(events, [], [], POLL_S)[0] if events else []
        if os.getppid() != parent or events[1:] and events[1] in ready:
            try:  # into the console log, if anyone still reads it (the pipe may be gone)
                os.write(2, b"reaper: the harness is gone; killing the VM's process group\n")
            except OSError:
                pass
            kill_group(os.getpgrp())
            return 1
        if not events:
            time.sleep(POLL_S)


def _exit_events(child: int, parent: int) -> list[int]:
    """Descriptors that become readable when ``child`` or ``parent`` exits (pidfds, Linux
    5.3+): the reaper acts at once instead of at its next poll. [] where there are none
    (then it polls every ``POLL_S``); with them the poll stays as a backstop."""
    fds: list[int] = []
    try:
        fds.append(os.pidfd_open(child))
        fds.append(os.pidfd_open(parent))
    except (AttributeError, OSError):  # no pidfd, or the parent is gone already
        pass
    return fds


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
