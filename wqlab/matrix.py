"""``make test-matrix``: the VM suite on every kernel line, as one table.

For each line (default: every installed line with headers, ``rt`` and the built ``debug``
line when present, or ``--lines``), run
``pytest tests/vm --wqlab-kernel=<line>`` in its own process, read its JUnit XML and the
session file the plugin writes, and print: kernel × passed / failed / skipped /
expected-failure, boot time, suite time. Exit non-zero if any line failed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from . import kernels
from .errors import KernelNotFoundError, SetupError

# the wqlab checkout whose tests/vm the matrix runs: ``make test-matrix`` runs it there
ROOT = Path.cwd()


@dataclass(frozen=True)
class LineResult:
    line: str
    version: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    boot_s: float | None = None
    suite_s: float = 0.0
    note: str = ""
    skips: tuple[tuple[str, int], ...] = ()  # (reason, how many), from the JUnit file


def first_boot_seconds(art: Path, version: str) -> float | None:
    """The session VM's first boot time from ``session-<version>.json``, or from one
    pytest-xdist worker's (``session-<version>-gw0.json``); not from the VMs booted with
    other kernel arguments (``session-<version>-preempt=full.json``)."""
    own = re.compile(rf"session-{re.escape(version)}(-gw\d+)?\.json")
    for sess in sorted(p for p in art.glob(f"session-{version}*.json") if own.fullmatch(p.name)):
        b = json.loads(sess.read_text()).get("boot_seconds") or []
        return float(b[0]) if b else None
    return None


def junit_counts(path: Path) -> dict[str, int]:
    """passed/failed/errors/skipped/xfailed from a pytest JUnit XML file (pure)."""
    counts = dict(passed=0, failed=0, errors=0, skipped=0, xfailed=0)
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag: child for child in case}
        if "failure" in tags:
            counts["failed"] += 1
        elif "error" in tags:
            counts["errors"] += 1
        elif "skipped" in tags:
            kind = tags["skipped"].get("type", "")
            counts["xfailed" if kind == "pytest.xfail" else "skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def junit_skip_reasons(path: Path) -> list[tuple[str, int]]:
    """Every skip and expected failure with its reason, most frequent first (pure)."""
    reasons: dict[str, int] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        for child in case:
            if child.tag == "skipped":
                why = (child.get("message") or "").strip() or "(no reason given)"
                if child.get("type") == "pytest.xfail":
                    why = f"xfail: {why}"
                reasons[why] = reasons.get(why, 0) + 1
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))


def run_line(line: str, extra: list[str]) -> LineResult:
    try:
        k = kernels.resolve(line)
    except KernelNotFoundError as e:
        return LineResult(line, "-", note=str(e))
    art = ROOT / "artifacts" / f"matrix-{k.version}"
    art.mkdir(parents=True, exist_ok=True)
    junit = art / "junit.xml"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "tests" / "vm"),
        f"--wqlab-kernel={line}",
        f"--wqlab-artifacts={art}",
        f"--junitxml={junit}",
        f"--wqlab-ktap={art / 'results.ktap'}",
        "-q",
        *extra,
    ]
    print(f"$ {' '.join(argv)}", flush=True)
    t0 = time.monotonic()
    subprocess.run(argv, check=False, cwd=ROOT)
    suite = time.monotonic() - t0
    if not junit.exists():
        return LineResult(line, k.version, suite_s=suite, note="pytest wrote no JUnit file")
    boot = first_boot_seconds(art, k.version)
    c = junit_counts(junit)
    return LineResult(
        line,
        k.version,
        passed=c["passed"],
        failed=c["failed"],
        errors=c["errors"],
        skipped=c["skipped"],
        xfailed=c["xfailed"],
        boot_s=boot,
        suite_s=suite,
        skips=tuple(junit_skip_reasons(junit)),
    )


def format_table(results: list[LineResult]) -> str:
    head = (
        f"{'line':<8} {'kernel':<24} {'passed':>6} {'failed':>6} {'errors':>6} "
        f"{'skipped':>7} {'xfail':>5} {'boot s':>7} {'suite s':>7}  note"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        boot = f"{r.boot_s:7.1f}" if r.boot_s is not None else f"{'-':>7}"
        rows.append(
            f"{r.line:<8} {r.version:<24} {r.passed:>6} {r.failed:>6} {r.errors:>6} "
            f"{r.skipped:>7} {r.xfailed:>5} {boot} {r.suite_s:7.0f}  {r.note}"
        )
    for r in results:
        for why, n in r.skips:
            rows.append(f"  {r.line}: {n} x {why}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wqlab.matrix", description=__doc__)
    ap.add_argument(
        "--lines",
        default="",
        help="comma-separated kernel lines (default: every installed line, and rt and debug "
        "if installed)",
    )
    args, extra = ap.parse_known_args(argv)
    if not (ROOT / "tests" / "vm").is_dir():
        raise SetupError(f"no tests/vm in {ROOT}: run the matrix in a wqlab checkout")
    lines = [x for x in args.lines.split(",") if x]
    if not lines:
        have = [k for k in kernels.installed() if k.kdir]
        lines = sorted(
            {k.line for k in have if not k.rt},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        ) + (["rt"] if any(k.rt for k in have) else [])
        lines += ["debug"] if kernels.debug_kernel() else []
    results = [run_line(line, extra) for line in lines]
    table = format_table(results)
    print("\n" + table)
    out = ROOT / "artifacts" / "matrix.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")
    bad = any(r.failed or r.errors or r.version == "-" or r.note for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
