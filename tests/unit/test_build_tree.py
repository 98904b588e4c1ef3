"""Module build trees are named by the content of their sources (wqlab/build.py): the same
sources from two places share a tree, any difference in a file's name or bytes (a file
missing from one copy) gets another, build products do not count; unused trees go."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from wqlab.build import prune_trees, source_files, sources_hash


def _module(root: Path, extra: dict[str, str] | None = None) -> Path:
    (root / "module" / "include").mkdir(parents=True)
    (root / "Kbuild").write_text("obj-m += module/\n")
    (root / "module" / "Kbuild").write_text("obj-m += m.o\n")
    (root / "module" / "m.c").write_text("int m;\n")
    (root / "module" / "include" / "m.h").write_text("extern int m;\n")
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def test_the_same_sources_in_two_places_have_one_key(tmp_path: Path) -> None:
    a, b = _module(tmp_path / "a"), _module(tmp_path / "b")
    fa, fb = source_files(a, "module"), source_files(b, "module")
    assert sorted(fa) == ["Kbuild", "module/Kbuild", "module/include/m.h", "module/m.c"]
    assert sources_hash(fa) == sources_hash(fb)


def test_build_products_and_hidden_files_do_not_count(tmp_path: Path) -> None:
    a = _module(tmp_path / "a")
    before = sources_hash(source_files(a, "module"))
    for name in ("m.o", "m.ko", "m.mod", "m.mod.c", ".m.o.cmd", "Module.symvers", "build.log"):
        (a / "module" / name).write_text("product")
    (a / "module" / ".tmp").mkdir()
    (a / "module" / ".tmp" / "x.c").write_text("hidden")
    assert sources_hash(source_files(a, "module")) == before


def test_a_changed_missing_or_renamed_file_changes_the_key(tmp_path: Path) -> None:
    base = sources_hash(source_files(_module(tmp_path / "a"), "module"))
    b = _module(tmp_path / "b")
    (b / "module" / "m.c").write_text("int m = 1;\n")
    c = _module(tmp_path / "c")
    (c / "module" / "include" / "m.h").unlink()  # a header the copy lacks
    d = _module(tmp_path / "d")
    (d / "module" / "m.c").rename(d / "module" / "n.c")
    keys = {sources_hash(source_files(x, "module")) for x in (b, c, d)}
    assert base not in keys and len(keys) == 3


def test_a_module_in_its_own_directory(tmp_path: Path) -> None:
    (tmp_path / "Kbuild").write_text("obj-m += mymod.o\n")
    (tmp_path / "mymod.c").write_text("int x;\n")
    assert sorted(source_files(tmp_path, ".")) == ["Kbuild", "mymod.c"]


def _tree(root: Path, key: str, age: float, now: float) -> Path:
    (root / key).mkdir(parents=True)
    lock = root / f".{key}.lock"
    lock.touch()
    os.utime(lock, (now - age, now - age))
    return root / key


def test_unused_trees_beyond_the_newest_go_unless_locked(tmp_path: Path) -> None:
    now = time.time()
    keep = _tree(tmp_path, "m-0", 7200, now)  # the one just built: kept whatever its age
    recent = [_tree(tmp_path, f"m-r{i}", 7200 + i, now) for i in range(2)]
    old = [_tree(tmp_path, f"m-o{i}", 9000 + i, now) for i in range(3)]
    young = _tree(tmp_path, "m-y", 10, now)  # used a moment ago: kept
    other = _tree(tmp_path, "other-1", 99999, now)  # another module's: not this call's
    held = open(tmp_path / f".{old[0].name}.lock", "a")  # someone builds in it
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        removed = prune_trees(tmp_path, "m", keep="m-0", n=4, idle=3600, now=now)
    finally:
        held.close()
    # newest other than keep: y, r0, r1 (n=4 with keep); o0 is locked; o1, o2 go
    assert sorted(p.name for p in removed) == ["m-o1", "m-o2"]
    assert all(p.is_dir() for p in (keep, *recent, young, other, old[0]))
    assert not (tmp_path / ".m-o1.lock").exists()
