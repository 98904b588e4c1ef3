"""Build a kernel module the Kbuild way (``make -C $KDIR M=$DIR``), one tree per kernel.

Each kernel gets its own copy of the sources under ``<cache>/build/<version>/``
(:func:`wqlab.resources.build_dir`: writable wherever wqlab is installed) so that modules
for several kernels can coexist (Kbuild writes objects next to the sources). A tree is
named by the content of the sources it builds (every file's name and bytes), not by
where they lie: the same sources built from anywhere (a checkout, the copy inside an
installed wheel, a temporary directory) share one tree and one build, and an edit gets a
tree of its own. A lock file per tree (``flock``) makes concurrent builders (pytest-xdist
workers, a CLI beside a test run) take turns: the second one finds the tree built and
``make`` does nothing. Trees nobody has built for an hour, beyond the newest few of each
module name, are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import BuildError
from .kernels import Kernel
from .resources import build_dir, module_sources

log = logging.getLogger(__name__)


def make_argv(kdir: Path, src: Path, w: int | None = 1, target: str = "modules") -> list[str]:
    """The make command line for one Kbuild build (pure)."""
    argv = ["make", "-C", str(kdir), f"M={src}"]
    if w:
        argv.append(f"W={w}")
    argv.append(target)
    return argv


KEEP_TREES = 8  # per module name and kernel: the most recently used trees, never removed
KEEP_SECONDS = 3600.0  # nor one used this recently (a session may still load its .ko)


def build_module(
    kernel: Kernel,
    src: Path | None = None,
    name: str = "wqlab",
    subdir: str = "module",
    out_root: Path | None = None,
    w: int | None = 1,
) -> Path:
    """Build ``<src>/<subdir>/<name>.ko`` for ``kernel``; return the path of the ``.ko``.

    ``src`` must hold a ``Kbuild`` (or ``Makefile``) that descends into ``subdir``; by
    default the wqlab module's own sources (:func:`wqlab.resources.module_sources`).
    The tree is ``<out_root>/<version>/<name>-<hash of the sources>`` (``out_root``: by
    default :func:`wqlab.resources.build_dir`; the hash covers every file copied, name and
    content: :func:`source_files`), so a tree only ever holds one set of sources: two
    projects' modules of the same name do not share one, a source missing from one copy
    is missing from its tree, and the same sources anywhere reuse the build.
    Warnings fail the build when ``w`` is set: the module must build W=1-clean.
    """
    if kernel.kdir is None:
        raise BuildError(
            f"no headers for {kernel.version}: install linux-headers-{kernel.version}"
            " (`make setup` or `make kernel KERNEL=...`)"
        )
    src = (src or module_sources()).resolve()
    out_root = out_root or build_dir()
    files = source_files(src, subdir)
    # the sources, and what else decides the build: the headers and the warning level
    key = f"{name}-{sources_hash(files, extra=f'{kernel.kdir} W={w}')}"
    root = out_root / kernel.version
    tree = root / key
    root.mkdir(parents=True, exist_ok=True)
    with _tree_lock(root / f".{key}.lock"):
        ko = _build_locked(kernel.kdir, files, name, subdir, tree, w, kernel.version)
    prune_trees(root, name, keep=key)
    return ko


@contextlib.contextmanager
def _tree_lock(path: Path) -> Iterator[None]:
    """Hold ``path``'s flock; its time becomes now (the tree's last use, for pruning).
    A lock file that :func:`prune_trees` removed while we waited is not the lock any
    more: take the one now at ``path``."""
    while True:
        with path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if _is_current(path, lock):
                os.utime(lock.fileno())
                yield
                return


def _is_current(path: Path, lock: IO[str]) -> bool:
    """Is the open ``lock`` still the file at ``path`` (not one a pruner removed)?"""
    try:
        return os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino
    except FileNotFoundError:
        return False


def source_files(src: Path, subdir: str) -> dict[str, Path]:
    """What a build copies into its tree: ``src``'s ``Kbuild`` and ``subdir`` (every file,
    recursively, but build products and hidden files), as relative path -> file."""
    out: dict[str, Path] = {}
    for item in ("Kbuild", subdir):
        s = src / item
        if s.is_file():
            out[os.path.normpath(item)] = s
        elif s.is_dir():
            for d, dirs, names in os.walk(s):
                skip = set(_not_sources(d, dirs + names))
                dirs[:] = sorted(n for n in dirs if n not in skip)
                for n in sorted(names):
                    if n not in skip:
                        f = Path(d) / n
                        out[os.path.normpath(f.relative_to(src))] = f
    return out


def sources_hash(files: dict[str, Path], extra: str = "") -> str:
    """A short hash of the files' relative paths and contents, and of ``extra`` (pure but
    for reading)."""
    h = hashlib.sha256(extra.encode() + b"\0")
    for rel in sorted(files):
        data = files[rel].read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def prune_trees(
    root: Path,
    name: str,
    keep: str,
    n: int = KEEP_TREES,
    idle: float = KEEP_SECONDS,
    now: float | None = None,
) -> list[Path]:
    """Remove ``name``'s trees in ``root`` (one kernel) but ``keep``, the ``n`` most
    recently used and any used in the last ``idle`` seconds, each only when its lock is
    free (nobody builds in it). Returns the trees removed."""
    now = time.time() if now is None else now
    used = []
    for tree in root.glob(f"{name}-*"):
        lock = root / f".{tree.name}.lock"
        if not tree.is_dir() or tree.name == keep or tree.name.rpartition("-")[0] != name:
            continue
        try:
            used.append((lock.stat().st_mtime, tree, lock))
        except OSError:
            used.append((0.0, tree, lock))
    used.sort(key=lambda t: t[0], reverse=True)
    removed = []
    for t, tree, lock in used[max(0, n - 1) :]:
        if now - t < idle:
            continue
        try:
            with lock.open("a") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # what was read before the lock may be stale: a build or a use since
                # (its time), another pruner that removed this lock file (its inode)
                if not _is_current(lock, f) or now - os.fstat(f.fileno()).st_mtime < idle:
                    continue
                shutil.rmtree(tree, ignore_errors=True)
                lock.unlink(missing_ok=True)
        except OSError:  # in use (BlockingIOError), or not ours to remove
            continue
        removed.append(tree)
    if removed:
        log.info("removed %d unused build trees of %s in %s", len(removed), name, root)
    return removed


def _build_locked(
    kdir: Path,
    files: dict[str, Path],
    name: str,
    subdir: str,
    tree: Path,
    w: int | None,
    version: str,
) -> Path:
    tree.mkdir(parents=True, exist_ok=True)
    for rel, s in files.items():
        d = tree / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        _sync(s, d)
    argv = make_argv(kdir, tree, w)
    log.info("$ %s", shlex.join(argv))
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    (tree / "build.log").write_text(p.stdout + p.stderr)
    warnings = [ln for ln in p.stderr.splitlines() if "warning:" in ln]
    if p.returncode != 0:
        raise BuildError(f"module build failed for {version}:\n{p.stderr[-4000:]}")
    if w and warnings:
        raise BuildError(
            f"module build for {version} has warnings (W={w}):\n" + "\n".join(warnings)
        )
    ko = tree / subdir / f"{name}.ko"
    if not ko.exists():
        raise BuildError(f"make succeeded but {ko} is missing; see {tree / 'build.log'}")
    return ko


def _sync(s: str | Path, d: str | Path) -> None:
    """Copy a source into the build tree only if its content differs, and then with the
    time of the copy: make compares times, and a source's own (older) time could sit before
    an object built from an earlier version during an edit, which make would keep."""
    new = Path(s).read_bytes()
    try:
        if Path(d).read_bytes() == new:
            return
    except OSError:
        pass
    Path(d).write_bytes(new)


def _not_sources(directory: str, names: list[str]) -> list[str]:
    suffixes = (".o", ".ko", ".mod", ".mod.c", ".cmd", ".symvers", ".order", ".log")
    return [n for n in names if n.endswith(suffixes) or n.startswith(".")]
