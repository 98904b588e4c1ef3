"""The guest's kernel log, as the per-test splat scan reads it: a mark before the test,
the lines since that mark after it (``dmesg`` format, ``[    8.685572] message``)."""

from __future__ import annotations

from .channel import AgentChannel


def dmesg_mark(agent: AgentChannel) -> int:
    """Where the kernel log ends now (the scan after a test starts here)."""
    out = agent.sh("dmesg | wc -l", check=False)["stdout"].strip()
    return int(out) if out.isdigit() else 0


def dmesg_since(agent: AgentChannel, mark: int) -> str:
    """The kernel log's lines after ``mark``, as ``dmesg`` prints them."""
    return str(agent.sh(f"dmesg | tail -n +{mark + 1}", check=False)["stdout"])
