#!/usr/bin/env python3
"""Make a lab's student skeleton from its solution: ``labs/skeleton.py labs/NN-name``.

In ``solution/<module>.c`` each ``/* TODO n: ... */`` comment is followed by its answer:
the lines after it indented as the comment, up to a blank line, a line indented less or
the next comment. The skeleton is the solution without the answers, with ``(solution)``
in the header changed to ``(student skeleton)``. ``--check`` compares instead of writing
(the unit tests run it on every lab). ``Kbuild`` is copied as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path


def strip_answers(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line.replace("(solution)", "(student skeleton)", 1))
        i += 1
        if "/* TODO" in line and line.rstrip().endswith("*/"):
            indent = len(line) - len(line.lstrip())
            while i < len(lines):
                nxt = lines[i]
                ind = len(nxt) - len(nxt.lstrip())
                if (
                    not nxt.strip()
                    or ind < indent
                    or (ind == indent and nxt.lstrip().startswith("/*"))
                ):
                    break
                i += 1
    return "\n".join(out)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    dirs = [Path(a) for a in argv if a != "--check"]
    bad = 0
    for d in dirs:
        for sol in sorted((d / "solution").glob("*.c")):
            skel = d / "skeleton" / sol.name
            want = strip_answers(sol.read_text())
            if check:
                if not skel.exists() or skel.read_text() != want:
                    print(
                        f"{skel}: not the solution without its answers (run labs/skeleton.py {d})"
                    )
                    bad += 1
            else:
                skel.parent.mkdir(exist_ok=True)
                skel.write_text(want)
                print(f"wrote {skel}")
        for kb in ("Kbuild", "Makefile"):  # build files are the same in both
            sol_kb, skel_kb = d / "solution" / kb, d / "skeleton" / kb
            if not sol_kb.exists():
                continue
            if check:
                if not skel_kb.exists() or skel_kb.read_text() != sol_kb.read_text():
                    print(f"{skel_kb}: differs from {sol_kb}")
                    bad += 1
            else:
                skel_kb.write_text(sol_kb.read_text())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
