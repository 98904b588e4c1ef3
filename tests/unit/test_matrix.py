# SPDX-License-Identifier: GPL-2.0
"""The matrix table: counts and skip reasons read from pytest's JUnit XML."""

from __future__ import annotations

from pathlib import Path

from wqlab.matrix import (
    LineResult,
    first_boot_seconds,
    format_table,
    junit_counts,
    junit_skip_reasons,
)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="a" name="ok1"/>
<testcase classname="a" name="ok2"/>
<testcase classname="a" name="bad"><failure message="boom"/></testcase>
<testcase classname="a" name="err"><error message="setup"/></testcase>
<testcase classname="a" name="s1"><skipped type="pytest.skip" message="no wq_bh"/></testcase>
<testcase classname="a" name="s2"><skipped type="pytest.skip" message="no wq_bh"/></testcase>
<testcase classname="a" name="x"><skipped type="pytest.xfail" message="known bug"/></testcase>
</testsuite></testsuites>
"""


def test_counts_and_reasons(tmp_path: Path) -> None:
    p = tmp_path / "junit.xml"
    p.write_text(JUNIT)
    assert junit_counts(p) == dict(passed=2, failed=1, errors=1, skipped=2, xfailed=1)
    reasons = junit_skip_reasons(p)
    assert reasons == [("no wq_bh", 2), ("xfail: known bug", 1)]
    table = format_table(
        [LineResult("6.1", "6.1.0-56-amd64", passed=2, skipped=2, skips=tuple(reasons))]
    )
    assert "6.1.0-56-amd64" in table and "6.1: 2 x no wq_bh" in table


def test_the_boot_time_is_the_session_vms_not_a_variants(tmp_path: Path) -> None:
    v = "6.1.0-57-amd64"
    (tmp_path / f"session-{v}-preempt=full.json").write_text('{"boot_seconds": [99.0]}')
    (tmp_path / f"session-{v}-gw0-preempt=full.json").write_text('{"boot_seconds": [98.0]}')
    assert first_boot_seconds(tmp_path, v) is None
    (tmp_path / f"session-{v}-gw1.json").write_text('{"boot_seconds": [5.5, 7.0]}')
    assert first_boot_seconds(tmp_path, v) == 5.5
