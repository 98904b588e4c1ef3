"""The module's sources reach the build tree so that make never keeps an object built from
an older version: a changed source lands with the time of the copy (not its own, which may
be older than an object made during the edit), an unchanged one keeps its time (no rebuild)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from wqlab.build import _sync


def test_a_changed_source_lands_newer_than_an_object_built_after_its_edit(tmp_path: Path) -> None:
    src, dst, obj = tmp_path / "a.c", tmp_path / "tree-a.c", tmp_path / "tree-a.o"
    src.write_text("int a = 1;\n")
    _sync(src, dst)
    src.write_text("int a = 2;\n")  # the edit: at time T
    edit = time.time() - 100
    os.utime(src, (edit, edit))
    obj.write_text("built from a = 1")  # the build that ran during the edit: after T
    os.utime(obj, (edit + 50, edit + 50))
    _sync(src, dst)
    assert dst.read_text() == "int a = 2;\n"
    assert dst.stat().st_mtime > obj.stat().st_mtime  # make rebuilds


def test_an_unchanged_source_keeps_its_time(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.c", tmp_path / "tree-a.c"
    src.write_text("int a = 1;\n")
    _sync(src, dst)
    old = time.time() - 1000
    os.utime(dst, (old, old))
    _sync(src, dst)
    assert dst.stat().st_mtime == old  # nothing to rebuild
