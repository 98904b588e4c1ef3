"""A symbol map from ``/proc/kallsyms`` text, to name functions read after ``rmmod``.

``%ps`` in a trace is resolved when the trace is *read*: once the module is gone, its
functions print as raw addresses (``function=0xffffffffc07b4010``). Keep the module's
``/proc/kallsyms`` lines from while it was loaded and resolve those addresses here::

    syms = SymbolMap.from_kallsyms(kallsyms_text)
    events = trace.parse(trace_text, symbols=syms)

Pure: text in, lookups out. Addresses read without privilege are all zero
(``kptr_restrict``); such lines are ignored, so :attr:`SymbolMap.usable` tells whether the
text was worth keeping.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from wqlab.trace import Symbol, TraceEvent, resolve_events

__all__ = ["KallsymsEntry", "SymbolMap"]

#: Largest offset into a function accepted when resolving a non-exact address.
DEFAULT_MAX_OFFSET = 0x10000

# Compiler-generated padding before a function (CONFIG_FUNCTION_PADDING / kCFI), not a
# function of its own: ``__pfx_ref_fn`` sits 16 bytes before ``ref_fn``.
_PADDING_PREFIXES = ("__pfx_", "__cfi_")


@dataclass(frozen=True, slots=True)
class KallsymsEntry:
    """One ``/proc/kallsyms`` line: ``ffffffffc0a1b000 t ref_fn\\t[refmod]``."""

    addr: int
    kind: str
    name: str
    module: str | None

    @property
    def is_text(self) -> bool:
        return self.kind in "tTwW"


class SymbolMap:
    """Address → (name, module) for text symbols, with exact and containing lookups."""

    def __init__(self, entries: Iterable[KallsymsEntry], max_offset: int = DEFAULT_MAX_OFFSET):
        self.max_offset = max_offset
        self.entries: list[KallsymsEntry] = [e for e in entries if e.addr != 0]
        text = [e for e in self.entries if e.is_text and not e.name.startswith(_PADDING_PREFIXES)]
        text.sort(key=lambda e: e.addr)
        self._text = text
        self._addrs = [e.addr for e in text]
        self._exact = {e.addr: e for e in reversed(text)}  # first listed wins on aliases
        self._by_name = {(e.name, e.module): e for e in self.entries}

    @classmethod
    def from_kallsyms(cls, text: str, max_offset: int = DEFAULT_MAX_OFFSET) -> SymbolMap:
        """Parse ``/proc/kallsyms`` text (or the module's lines of it)."""
        entries: list[KallsymsEntry] = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            module = None
            if len(parts) >= 4 and parts[3].startswith("[") and parts[3].endswith("]"):
                module = parts[3][1:-1]
            entries.append(KallsymsEntry(addr, parts[1], parts[2], module))
        return cls(entries, max_offset)

    @property
    def usable(self) -> bool:
        """False when every address was zero (read without privilege) or nothing parsed."""
        return bool(self._text)

    def __len__(self) -> int:
        return len(self._text)

    def address_of(self, name: str, module: str | None = None) -> int | None:
        e = self._by_name.get((name, module))
        return None if e is None else e.addr

    def lookup(self, addr: int) -> tuple[KallsymsEntry, int] | None:
        """The text symbol containing ``addr`` and the offset into it, or ``None``.

        Exact matches first; otherwise the greatest text symbol at or below ``addr``, if
        the offset is within ``max_offset`` (kallsyms has no sizes; a module's text is
        contiguous, so the nearest lower symbol is the containing one).
        """
        e = self._exact.get(addr)
        if e is not None:
            return e, 0
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        e = self._text[i]
        off = addr - e.addr
        if off > self.max_offset:
            return None
        return e, off

    def resolve(self, addr: int) -> tuple[str, str | None] | None:
        """``(name, module)`` of the function at or containing ``addr``, or ``None``."""
        hit = self.lookup(addr)
        if hit is None:
            return None
        return hit[0].name, hit[0].module

    def resolve_symbol(self, sym: Symbol) -> Symbol:
        """A named copy of an unresolved ``sym``; ``sym`` itself when it cannot be named."""
        if sym.resolved or sym.addr is None:
            return sym
        hit = self.resolve(sym.addr)
        if hit is None:
            return sym
        return Symbol(hit[0], hit[1], sym.addr)

    def resolve_events(self, events: Iterable[TraceEvent]) -> list[TraceEvent]:
        return resolve_events(events, self)
