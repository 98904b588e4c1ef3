"""Measure trace parser throughput in lines per second (goal: 1e6 lines/s).

Builds ~1M lines from the reference traces in tests/unit/data (both kernels, loaded and
after rmmod), then times several stages so the cost of each is visible: parse(text) with
the C extension (wqlab/_fastparse.c) and with the pure-Python parser in the same run,
and the memory the parsed events hold (tracemalloc). Prints numbers; asserts nothing.

    python bench/bench_parser.py [--lines 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wqlab import trace  # noqa: E402
from wqlab.lifecycle import build_lifecycles  # noqa: E402

GOAL = 1_000_000
DATA = ROOT / "tests" / "unit" / "data"


def reference_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(DATA.glob("*/trace-refmod*.txt")):
        lines += [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return lines


def best_rate(n: int, fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        del result
        best = min(best, dt)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    base = reference_lines()
    reps = max(1, args.lines // len(base))
    text = "\n".join(base * reps) + "\n"
    n = len(base) * reps
    parser = "C extension" if trace.C_PARSER else "pure Python (C extension not in use)"
    print(
        f"python {sys.version.split()[0]}, {n} lines ({len(text) / 1e6:.0f} MB), "
        f"best of {args.repeat}; parse() uses: {parser}"
    )

    stages: list[tuple[str, Callable[[], object]]] = [
        ("str.splitlines (floor)", text.splitlines),
        ("parse(text)", lambda: trace.parse(text)),
        ("parse(text, pure=True)", lambda: trace.parse(text, pure=True)),
        ("list(parse_lines(lines))", lambda: list(trace.parse_lines(text.splitlines()))),
    ]
    rates: dict[str, float] = {}
    for name, fn in stages:
        rate = rates[name] = best_rate(n, fn, args.repeat)
        print(
            f"{name:28s} {rate:12,.0f} lines/s  {1e6 / rate:6.2f} us/line  {rate / GOAL:5.2f}x goal"
        )
    if trace.C_PARSER:
        speedup = rates["parse(text)"] / rates["parse(text, pure=True)"]
        print(f"{'C extension / pure Python':28s} {speedup:12.1f}x")

    # what the events of one parse hold (objects, strings, ints), per event
    sample = "\n".join(base * max(1, 100_000 // len(base))) + "\n"
    for label, pure in (("C", False), ("pure", True)):
        tracemalloc.start()
        kept = trace.parse(sample, pure=pure)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        print(f"{'memory, parse ' + label:28s} {held / len(kept):12.0f} bytes/event")
        del kept

    events = trace.parse(text)
    rate = best_rate(n, lambda: build_lifecycles(events), args.repeat)
    print(
        f"{'build_lifecycles(events)':28s} {rate:12,.0f} events/s {1e6 / rate:6.2f} us/event "
        f"{rate / GOAL:5.2f}x goal"
    )


if __name__ == "__main__":
    main()
