"""Boot a Debian ``vmlinuz`` without decompressing it in the guest (PVH direct boot).

A bzImage starts by decompressing itself: under TCG that costs about 5 s of a 6.1
kernel's XZ payload before the first kernel line. Debian builds its kernels with
``CONFIG_PVH=y``, so the uncompressed ``vmlinux`` inside the bzImage carries a Xen PVH
entry note, and QEMU boots such an ELF directly (``-kernel vmlinux``), skipping the
firmware's real-mode set-up and the decompressor.

``extract_vmlinux`` is pure (bytes in, bytes out) and unit tested; ``pvh_vmlinux`` keeps
the result in a cache (``$WQLAB_CACHE``, else ``$XDG_CACHE_HOME/wqlab``, else
``~/.cache/wqlab``) keyed by the image's name, size and mtime, and returns ``None`` when the
image cannot be booted that way (an unknown compression, no PVH note): the caller then
boots the bzImage as it is.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

# Linux x86 boot protocol (Documentation/arch/x86/boot.rst)
SETUP_SECTS = 0x1F1
HDR_MAGIC = 0x202  # "HdrS"
PAYLOAD_OFFSET = 0x248  # u32, from the start of the protected-mode code (protocol >= 2.08)
XEN_ELFNOTE_PHYS32_ENTRY = 18
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"


class NotExtractable(ValueError):
    """The image is not a bzImage whose payload this module can decompress."""


def _zstd(payload: bytes) -> bytes:
    if shutil.which("zstd") is None:
        raise NotExtractable("a zstd payload needs the zstd tool (`make setup` installs it)")
    p = subprocess.run(["zstd", "-dcq"], input=payload, capture_output=True, check=False)
    if p.returncode != 0 and not p.stdout.startswith(b"\x7fELF"):
        raise NotExtractable(f"zstd failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout


def extract_vmlinux(image: bytes) -> bytes:
    """The ELF ``vmlinux`` compressed inside an x86 bzImage (XZ, zstd or gzip)."""
    if image[HDR_MAGIC : HDR_MAGIC + 4] != b"HdrS":
        raise NotExtractable("not an x86 bzImage (no HdrS header)")
    setup = (image[SETUP_SECTS] or 4) + 1
    (offset,) = struct.unpack_from("<I", image, PAYLOAD_OFFSET)
    payload = image[setup * 512 + offset :]
    if payload.startswith(XZ_MAGIC):
        # the payload is followed by the decompressed size: stop at the end of the stream
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(ZSTD_MAGIC):
        out = _zstd(payload)
    elif payload.startswith(GZIP_MAGIC):
        out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    else:
        raise NotExtractable(f"unknown payload compression {payload[:6].hex()}")
    if not out.startswith(b"\x7fELF"):
        raise NotExtractable("the payload is not an ELF file")
    return out


def has_pvh_note(elf: bytes) -> bool:
    """True if a 64-bit little-endian ELF has the Xen PVH entry note QEMU boots from."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, phentsize, phnum = (
        struct.unpack_from("<Q", elf, 0x20)[0],
        *struct.unpack_from("<HH", elf, 0x36),
    )
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize
        )
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def cache_dir() -> Path:
    if os.environ.get("WQLAB_CACHE"):
        return Path(os.environ["WQLAB_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "wqlab"


def pvh_vmlinux(image: Path, cache: Path | None = None) -> Path | None:
    """The cached PVH-bootable ``vmlinux`` of ``image``, made on first use, or ``None``
    (boot the bzImage): not extractable, no PVH note, or a cache that cannot be written."""
    cache = cache or cache_dir()
    st = image.stat()
    out = cache / f"{image.name}.{st.st_size}.{int(st.st_mtime)}.pvh"
    bad = out.with_suffix(".nopvh")
    if out.exists():
        return out
    if bad.exists():
        return None
    try:
        elf = extract_vmlinux(image.read_bytes())
    except NotExtractable as e:  # not remembered: a missing zstd may be installed later
        log.info("%s: booting the bzImage as it is (%s)", image, e)
        return None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob(f"{image.name}.*"):  # an older build of the same file name
            old.unlink(missing_ok=True)
        if not has_pvh_note(elf):
            log.info("%s: booting the bzImage as it is (no PVH note: CONFIG_PVH is off)", image)
            bad.touch()
            return None
        f = tempfile.NamedTemporaryFile(dir=cache, delete=False, prefix=".tmp-")
        try:
            with f:
                f.write(elf)
            os.chmod(f.name, 0o644)
            os.replace(f.name, out)  # atomic: a concurrent session sees all or nothing
        except BaseException:
            os.unlink(f.name)
            raise
    except OSError as e:
        log.warning("%s: cannot keep its vmlinux in %s (%s); booting the bzImage", image, cache, e)
        return None
    log.info("%s: uncompressed for PVH boot into %s (%d MB)", image, out, len(elf) >> 20)
    return out
