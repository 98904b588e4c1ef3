"""Which kernel the VM boots and which headers the module builds against.

A kernel is named by a *line* (``default``, ``6.1``, ``6.12``, ``latest``, ``rt``), an exact
version (``6.1.0-56-amd64``) or a path to a ``vmlinuz`` image. Only Debian kernels
installed under ``/boot`` with headers under ``/usr/src/linux-headers-<version>`` are
used: the host's own kernel is not a Debian kernel and has no headers here.
``vm/kernels.sh LINE`` installs a line from Debian's archives.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import KernelNotFoundError

BOOT = Path("/boot")
SRC = Path("/usr/src")
_VMLINUZ = re.compile(r"^vmlinuz-(?P<version>\d+\.\d+\.\d+.*)$")


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


def resolve(spec: str = "default", boot: Path = BOOT, src: Path = SRC) -> Kernel:
    """Turn a kernel selector into an installed kernel, or say how to get it."""
    spec = spec or "default"
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
    """``python -m harness.kernels [--version|--kdir|--image] [SELECTOR]`` for make."""
    import argparse  # noqa: PLC0415

    ap = argparse.ArgumentParser(prog="python -m harness.kernels", description=main.__doc__)
    ap.add_argument(
        "what", nargs="?", choices=["version", "kdir", "image", "list"], default="version"
    )
    ap.add_argument("selector", nargs="?", default="default")
    args = ap.parse_args(argv)
    if args.what == "list":
        for k in installed():
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
