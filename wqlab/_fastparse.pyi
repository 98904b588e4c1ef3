"""Types of the C extension ``wqlab/_fastparse.c`` (configured by :mod:`wqlab.trace`)."""

from collections.abc import Callable, Iterable

from wqlab.trace import BufferStats, LostEvents, Symbol, TraceEvent

def configure(
    *,
    queue_work: type[TraceEvent],
    activate_work: type[TraceEvent],
    execute_start: type[TraceEvent],
    execute_end: type[TraceEvent],
    wqlab_event: type[TraceEvent],
    unknown_event: type[TraceEvent],
    symbol_cache: dict[str, Symbol],
    symbol_parse: Callable[[str], Symbol],
    slow: Callable[
        [Iterable[str], list[TraceEvent], list[LostEvents], list[str]], BufferStats | None
    ],
) -> None: ...
def parse_text(
    text: str, events: list[TraceEvent], lost: list[LostEvents], unparsed: list[str], /
) -> BufferStats | None: ...
def parse_lines(
    lines: Iterable[str],
    events: list[TraceEvent],
    lost: list[LostEvents],
    unparsed: list[str],
    /,
) -> BufferStats | None: ...
