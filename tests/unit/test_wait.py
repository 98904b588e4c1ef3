"""wqlab.wait.wait_for, the one polling loop (traces, console lines, item states)."""

from __future__ import annotations

import time

import pytest

from wqlab.wait import WaitTimeout, wait_for


def test_returns_the_first_true_value() -> None:
    tries = iter([None, 0, {}, {"runs": "2"}])
    assert wait_for("two runs", lambda: next(tries), timeout=5, interval=0.001) == {"runs": "2"}


def test_the_deadline_names_what_and_explains_what_was_seen() -> None:
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"after 0 s waiting for the run: state=queued$"):
        wait_for("the run", lambda: False, 0.2, 0.01, explain=lambda: ": state=queued")
    assert 0.2 <= time.monotonic() - t0 < 2
    assert issubclass(WaitTimeout, TimeoutError)


def test_the_condition_is_tried_once_even_with_no_time() -> None:
    assert wait_for("now", lambda: "yes", timeout=0) == "yes"
