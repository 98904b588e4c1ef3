"""Run a VM command and take its whole process group down when the harness dies.

    python harness/reaper.py <vng argv...>

The harness starts this as the leader of a new process group (``start_new_session``);
it forks the VM command (vng, which starts QEMU) into the same group, passes the
standard streams through untouched, and exits with the command's status. If the harness
is killed outright (SIGKILL, OOM, a killed pytest-xdist worker), its atexit hooks never
run; the guest agent normally powers the VM off when its port reads EOF, but a hung
guest cannot. The reaper notices that its parent is gone (it is reparented) and kills
the group: SIGTERM, then SIGKILL (and SIGCONT, for a stopped QEMU) after a grace period.

Hand-written on purpose: QEMU's ``-run-with exit-with-parent=on`` needs QEMU 8.1+
(Debian 12 has 7.2) and ``PR_SET_PDEATHSIG`` would reach only vng, not QEMU, its child.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_S = 0.5
GRACE_S = 5.0


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    out = []
    for d in os.scandir("/proc"):
        if not d.name.isdigit():
            continue
        try:
            with open(f"/proc/{d.name}/stat") as f:
                stat = f.read()
            if os.getpgid(int(d.name)) == pgid and stat[stat.rindex(")") + 2] != "Z":
                out.append(int(d.name))
        except (ProcessLookupError, FileNotFoundError):
            pass
    return out


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
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if os.getppid() != parent:
            try:  # into the console log, if anyone still reads it (the pipe may be gone)
                os.write(2, b"reaper: the harness is gone; killing the VM's process group\n")
            except OSError:
                pass
            kill_group(os.getpgrp())
            return 1
        time.sleep(POLL_S)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
