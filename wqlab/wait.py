"""The one way to wait: call a condition until it holds or a deadline passes.

Every wait in wqlab and its tests goes through :func:`wait_for` (a trace that shows some
events, a console line, an item's state): a deadline on ``time.monotonic()``, a short
sleep between tries, and on the deadline a :class:`WaitTimeout` that says what was
awaited and, through ``explain``, what was seen instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.05  # seconds between tries: a guest request costs about a millisecond


class WaitTimeout(TimeoutError):
    """A condition did not hold by its deadline (a test's expectation, not a lost guest)."""


def wait_for(
    what: str,
    pred: Callable[[], T | None],
    timeout: float,
    interval: float = INTERVAL,
    explain: Callable[[], str] | None = None,
) -> T:
    """Call ``pred`` until it returns something true, and return that; at the deadline
    (``timeout`` seconds from now) raise :class:`WaitTimeout` naming ``what``, followed
    by ``explain()`` when given. ``pred`` is always called at least once."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            why = explain() if explain is not None else ""
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{why}")
        time.sleep(interval)
