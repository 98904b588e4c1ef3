"""Build a kernel module the Kbuild way (``make -C $KDIR M=$DIR``), one tree per kernel.

Each kernel gets its own copy of the sources under ``<cache>/build/<version>/``
(:func:`wqlab.resources.build_dir`: writable wherever wqlab is installed) so that modules
for several kernels can coexist (Kbuild writes objects next to the sources). A lock file
per tree (``flock``) makes concurrent builders (pytest-xdist workers, a CLI beside a test
run) take turns: the second one finds the tree built and ``make`` does nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shlex
import shutil
import subprocess
from pathlib import Path

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
    The tree is ``<out_root>/<version>/<name>-<hash of src's path>`` (``out_root``: by
    default :func:`wqlab.resources.build_dir`), so two projects' modules of the same name
    do not share one. Warnings fail the build when ``w`` is set: the module must build W=1-clean.
    """
    if kernel.kdir is None:
        raise BuildError(
            f"no headers for {kernel.version}: install linux-headers-{kernel.version}"
            " (`make setup` or `make kernel KERNEL=...`)"
        )
    src = (src or module_sources()).resolve()
    out_root = out_root or build_dir()
    key = f"{name}-{hashlib.sha256(str(src).encode()).hexdigest()[:10]}"
    tree = out_root / kernel.version / key
    tree.mkdir(parents=True, exist_ok=True)
    with (out_root / kernel.version / f".{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _build_locked(kernel.kdir, src, name, subdir, tree, w, kernel.version)


def _build_locked(
    kdir: Path, src: Path, name: str, subdir: str, tree: Path, w: int | None, version: str
) -> Path:
    for item in ("Kbuild", subdir):
        s, d = src / item, tree / item
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True, ignore=_not_sources, copy_function=_sync)
        elif s.exists():
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
