"""Which kernel the VM boots and which headers the module builds against.

A kernel is named by a *line* (``default``, ``6.1``, ``6.12``, ``latest``, ``rt``,
``debug``), an exact version (``6.1.0-56-amd64``) or a path to a ``vmlinuz`` image. Only
Debian kernels installed under ``/boot`` with headers under
``/usr/src/linux-headers-<version>`` are used: the host's own kernel is not a Debian
kernel and has no headers here. ``vm/kernels.sh LINE`` installs a line from Debian's
archives.

``debug`` is the one line that is built, not installed: ``vm/debug-kernel.sh`` builds
Debian's ``linux-source-6.12`` with KASAN, lockdep and friends (``vm/debug.config``) in
``<cache>/debug-kernel/<source-version>-<config-hash>/`` (the cache of
:func:`wqlab.bootimage.cache_dir`) and points ``current`` at the newest finished build:
``vmlinuz-<release>`` is the image, the built tree ``linux/`` the module build dir.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .bootimage import cache_dir
from .errors import KernelNotFoundError

BOOT = Path("/boot")
SRC = Path("/usr/src")
_VMLINUZ = re.compile(r"^vmlinuz-(?P<version>\d+\.\d+\.\d+.*)$")
DEBUG_SUFFIX = "-wqlab-debug"  # CONFIG_LOCALVERSION of the debug line (vm/debug-kernel.sh)


@dataclass(frozen=True)
class Kernel:
    """An installed kernel image and the headers to build modules for it."""

    version: str
    image: Path
    kdir: Path | None

    @property
    def line(self) -> str:
        """``6.1`` for ``6.1.0-56-amd64``."""
        m = re.match(r"(\d+)\.(\d+)", self.version)
        return f"{m.group(1)}.{m.group(2)}" if m else self.version

    @property
    def rt(self) -> bool:
        """Debian's PREEMPT_RT flavour (``6.1.0-56-rt-amd64``)."""
        return self.version.endswith("-rt-amd64")

    @property
    def debug(self) -> bool:
        """The debug line built by ``vm/debug-kernel.sh`` (``6.12.117-wqlab-debug``)."""
        return self.version.endswith(DEBUG_SUFFIX)

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.line.split(".")[:2]
        return int(major), int(minor)


def version_key(version: str) -> tuple[int, ...]:
    """Sort key: numeric parts of a Debian kernel version, ``6.12.95+deb12`` > ``6.1.0``."""
    return tuple(int(x) for x in re.findall(r"\d+", version.split("-amd64")[0]))


def installed(boot: Path = BOOT, src: Path = SRC) -> list[Kernel]:
    """Every Debian kernel under ``boot``, oldest first, with its headers if present."""
    found = []
    for entry in boot.glob("vmlinuz-*") if boot.is_dir() else []:
        m = _VMLINUZ.match(entry.name)
        if not m:
            continue
        version = m.group("version")
        kdir = src / f"linux-headers-{version}"
        found.append(Kernel(version, entry, kdir if (kdir / "Makefile").exists() else None))
    return sorted(found, key=lambda k: version_key(k.version))


def debug_kernel(cache: Path | None = None) -> Kernel | None:
    """The finished debug-line build that ``<cache>/debug-kernel/current`` points at, or
    ``None`` (never built, or a build still running or failed: no ``.built`` stamp)."""
    d = (cache or cache_dir()) / "debug-kernel" / "current"
    try:
        if not (d / ".built").exists():
            return None
        version = (d / "kernelrelease").read_text().strip()
    except OSError:
        return None
    image, kdir = d / f"vmlinuz-{version}", d / "linux"
    if not version or not image.exists():
        return None
    return Kernel(
        version, image.resolve(), kdir.resolve() if (kdir / "Makefile").exists() else None
    )


def default_version(meta: str = "linux-image-amd64") -> str | None:
    """The version that the host suite's ``linux-image-amd64`` metapackage pulls in
    (``linux-image-rt-amd64`` for the PREEMPT_RT flavour)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Depends}", meta],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except FileNotFoundError:
        return None
    m = re.search(r"linux-image-(\d[^\s,(]*-amd64)", out)
    return m.group(1) if m else None


def resolve(
    spec: str = "default", boot: Path = BOOT, src: Path = SRC, cache: Path | None = None
) -> Kernel:
    """Turn a kernel selector into an installed kernel, or say how to get it."""
    spec = spec or "default"
    if spec == "debug" or spec.endswith(DEBUG_SUFFIX):
        dbg = debug_kernel(cache)
        if dbg is not None and spec in ("debug", dbg.version):
            return dbg
        raise KernelNotFoundError(
            f"kernel {spec!r} is not built: run `make kernel KERNEL=debug` (builds Debian's "
            "linux-source-6.12 with KASAN, lockdep...; about an hour on 2 cores)"
        )
    if "/" in spec:
        image = Path(spec)
        if not image.exists():
            raise KernelNotFoundError(f"kernel image {spec} does not exist")
        m = _VMLINUZ.match(image.name)
        version = m.group("version") if m else image.name
        kdir = src / f"linux-headers-{version}"
        return Kernel(version, image, kdir if kdir.exists() else None)
    kernels = installed(boot, src)
    if not kernels:
        raise KernelNotFoundError(
            "no Debian kernel in /boot: run `make setup` (installs linux-image-amd64 "
            "and linux-headers-amd64)"
        )
    exact = [k for k in kernels if k.version == spec]
    if exact:
        return exact[0]
    if spec == "rt":
        rt = [k for k in kernels if k.rt]
        want = default_version("linux-image-rt-amd64")
        for k in rt:
            if k.version == want and k.kdir is not None:
                return k
        if rt:
            return _with_headers(rt, spec)[-1]
    # lines name the generic flavour; the PREEMPT_RT one is asked for as ``rt``
    generic = [k for k in kernels if not k.rt]
    if spec == "default":
        want = default_version()
        for k in generic:
            if k.version == want:
                return k
        return _with_headers(generic or kernels, spec)[-1]
    if spec == "latest" and generic:
        return _with_headers(generic, spec)[-1]
    line = [k for k in generic if k.line == spec]
    if line:
        return _with_headers(line, spec)[-1]
    have = ", ".join(k.version for k in kernels)
    raise KernelNotFoundError(
        f"kernel {spec!r} is not installed (have: {have}); run `make kernel KERNEL={spec}`"
    )


def _with_headers(kernels: list[Kernel], spec: str) -> list[Kernel]:
    usable = [k for k in kernels if k.kdir is not None]
    if not usable:
        raise KernelNotFoundError(
            f"no headers for kernel {spec!r}: install linux-headers-{kernels[-1].version}"
            " (`make setup`)"
        )
    return usable


def main(argv: list[str] | None = None) -> int:
    """``python -m wqlab.kernels [--version|--kdir|--image] [SELECTOR]`` for make."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m wqlab.kernels", description=main.__doc__)
    ap.add_argument(
        "what", nargs="?", choices=["version", "kdir", "image", "list"], default="version"
    )
    ap.add_argument("selector", nargs="?", default="default")
    args = ap.parse_args(argv)
    if args.what == "list":
        dbg = debug_kernel()
        for k in installed() + ([dbg] if dbg else []):
            print(k.version, k.image, k.kdir or "-")
        return 0
    try:
        k = resolve(args.selector)
    except KernelNotFoundError as e:
        print(f"wqlab: {e}", file=__import__("sys").stderr)
        return 1
    print({"version": k.version, "kdir": k.kdir or "", "image": k.image}[args.what])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
