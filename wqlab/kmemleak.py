"""kmemleak: scan a guest's kernel for leaks and keep the ones a module caused.

On a kernel with ``CONFIG_DEBUG_KMEMLEAK`` (the debug line), ``echo scan >
/sys/kernel/debug/kmemleak`` runs a scan now and reading the file lists every suspected
leak (Documentation/dev-tools/kmemleak.rst)::

    unreferenced object 0xffff888005b3e000 (size 64):
      comm "insmod", pid 171, jiffies 4294893513
      hex dump (first 32 bytes):
        00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
      backtrace (crc 1f2a3b4c):
        [<ffffffff8139a5e2>] __kmalloc_cache_noprof+0x2d2/0x3a0
        [<ffffffffc0201065>] wqlab_alloc+0x65/0x130 [wqlab]
        [<ffffffff81002a7a>] do_one_initcall+0xda/0x480

:func:`parse` (pure) reads that text; :func:`scan` runs it on a guest. A leak *points
into* a module when a frame names it (``[wqlab]``, ``wqlab_...``). Frames are symbolised
when the file is read, so a leak made by a module that has since been unloaded, or by a
module's ``__init`` code (freed once it is loaded), shows those frames as bare
module-space addresses (``0xffffffffc0201065``): :attr:`Leak.unloaded` says so, and
:func:`module_leaks` counts those too unless told otherwise. (6.12 prints the frames
bare, as below without the ``[<...>]`` column; older kernels with it.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .channel import AgentChannel

KMEMLEAK = "/sys/kernel/debug/kmemleak"

_HEAD = re.compile(r"^unreferenced object (0x[0-9a-f]+) \(size (\d+)\):")
_COMM = re.compile(r'^\s+comm "(.*)", pid (\d+)')
_FRAME = re.compile(r"^\s+(?:\[<[0-9a-f]+>\]\s+)?(\S.*)$")
# x86-64 module space (MODULES_VADDR..MODULES_END): a frame left unsymbolised there
# belonged to a module that is gone
_MODULE_ADDR = re.compile(r"^(?:0x)?ffffffff[a-f][0-9a-f]{7}$")


@dataclass(frozen=True)
class Leak:
    """One ``unreferenced object`` of a kmemleak report."""

    address: str
    size: int
    comm: str
    pid: int
    backtrace: tuple[str, ...]  # "kmalloc_trace+0x27/0xa0", "wqlab_x+0x1/0x2 [wqlab]"
    text: str  # the whole entry, for a failure message

    def points_into(self, module: str) -> bool:
        """A frame of ``module`` (symbolised: the module was loaded when it was read)."""
        tag = f"[{module}]"
        return any(f.endswith(tag) or f.startswith(f"{module}_") for f in self.backtrace)

    @property
    def unloaded(self) -> bool:
        """A frame in module space that no loaded module's symbols cover."""
        return any(_MODULE_ADDR.match(f.split()[0]) for f in self.backtrace)


def parse(text: str) -> list[Leak]:
    """Every entry of a ``/sys/kernel/debug/kmemleak`` read (pure)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if _HEAD.match(line):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    return [_leak(b) for b in blocks]


def _leak(block: list[str]) -> Leak:
    head = _HEAD.match(block[0])
    assert head is not None
    comm, pid = "", 0
    frames: list[str] = []
    in_bt = False
    for line in block[1:]:
        m = _COMM.match(line)
        if m:
            comm, pid = m.group(1), int(m.group(2))
        elif line.strip().startswith("backtrace"):
            in_bt = True
        elif in_bt:
            f = _FRAME.match(line)
            if f:
                frames.append(f.group(1).strip())
    return Leak(
        head.group(1), int(head.group(2)), comm, pid, tuple(frames), "\n".join(block).rstrip()
    )


def module_leaks(leaks: list[Leak], module: str = "wqlab", unloaded: bool = True) -> list[Leak]:
    """The leaks that point into ``module``; with ``unloaded``, also those whose frames lie
    in an unloaded module (the session loaded and unloaded ``module`` many times)."""
    return [lk for lk in leaks if lk.points_into(module) or (unloaded and lk.unloaded)]


def available(agent: AgentChannel) -> bool:
    """The guest's kernel has kmemleak (debugfs mounted)."""
    return agent.exists(KMEMLEAK)


def manual(agent: AgentChannel) -> bool:
    """Stop kmemleak's automatic scan (every 10 min), if the kernel has kmemleak: its
    ``kmemleak: N new suspected memory leaks`` line would fail whatever test runs then,
    for leaks of anything since boot; :func:`scan` at the end looks only for wqlab's."""
    if not available(agent):
        return False
    agent.write(KMEMLEAK, "scan=off")
    return True


def scan(agent: AgentChannel, timeout: float = 300.0) -> list[Leak]:
    """Run a kmemleak scan in the guest now and return every suspected leak. A leak is
    reported only once it is older than 5 s and has been seen unreferenced by a scan, so
    the scan runs twice (as kmemleak.rst advises against transient false positives)."""
    agent.sh(f"echo scan > {KMEMLEAK}; sleep 1; echo scan > {KMEMLEAK}", timeout=timeout)
    return parse(str(agent.sh(f"cat {KMEMLEAK}", timeout=60)["stdout"]))


def format_leaks(leaks: list[Leak]) -> str:
    return "\n\n".join(lk.text for lk in leaks)
