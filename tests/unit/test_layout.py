"""The test tree collects as one session: pytest's default import mode puts each test file
on ``sys.path`` by its folder, so two test files with one basename (``tests/unit/test_x.py``
and ``tests/vm/test_x.py``) break the collection of ``make test`` ("import file mismatch"),
although each passes alone."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_basename() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if "data" in path.relative_to(TESTS).parts:
            continue
        seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
