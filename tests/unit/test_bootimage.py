"""PVH boot images: a bzImage's payload is found, decompressed and checked for the note."""

import gzip
import lzma
import os
import struct
from pathlib import Path

import pytest

from wqlab import bootimage
from wqlab.bootimage import NotExtractable, extract_vmlinux, has_pvh_note, pvh_vmlinux


def elf(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal 64-bit ELF with one PT_NOTE segment holding ``notes``."""
    body = b""
    for name, ntype, desc in notes:
        name0 = name + b"\0"
        body += struct.pack("<III", len(name0), len(desc), ntype)
        body += name0.ljust((len(name0) + 3) // 4 * 4, b"\0")
        body += desc.ljust((len(desc) + 3) // 4 * 4, b"\0")
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    phoff = 64
    struct.pack_into("<Q", ehdr, 0x20, phoff)
    struct.pack_into("<HH", ehdr, 0x36, 56, 2)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, 0, 0, 0)  # PT_LOAD, skipped
    note = struct.pack("<IIQQQQQQ", 4, 4, 64 + 2 * 56, 0, 0, len(body), len(body), 4)
    return bytes(ehdr) + load + note + body


PVH = elf([(b"GNU", 3, b"\x01" * 20), (b"Xen", bootimage.XEN_ELFNOTE_PHYS32_ENTRY, b"\0" * 4)])
NO_PVH = elf([(b"Xen", 6, b"linux\0"), (b"GNU", 3, b"\x01" * 20)])


def bzimage(payload: bytes, setup_sects: int = 3, offset: int = 0x3C0) -> bytes:
    img = bytearray(((setup_sects or 4) + 1) * 512 + offset)  # 0 means 4 (boot protocol)
    img[bootimage.SETUP_SECTS] = setup_sects
    img[bootimage.HDR_MAGIC : bootimage.HDR_MAGIC + 4] = b"HdrS"
    struct.pack_into("<I", img, bootimage.PAYLOAD_OFFSET, offset)
    # the decompressed size follows the payload, as in a real bzImage
    return bytes(img) + payload + struct.pack("<I", 123456)


def test_xz_and_gzip_payloads_are_found_by_the_header_offset() -> None:
    assert extract_vmlinux(bzimage(lzma.compress(PVH, format=lzma.FORMAT_XZ))) == PVH
    assert extract_vmlinux(bzimage(gzip.compress(PVH), setup_sects=0, offset=16)) == PVH


def test_the_pvh_note_is_told_apart_from_other_xen_notes() -> None:
    assert has_pvh_note(PVH)
    assert not has_pvh_note(NO_PVH)
    assert not has_pvh_note(b"MZ not an elf")


@pytest.mark.parametrize(
    ("image", "why"),
    [
        (b"\0" * 1024, "no HdrS"),
        (bzimage(b"\x02\x21\x4c\x18 lz4 payload"), "unknown payload compression"),
        (bzimage(lzma.compress(b"not an elf", format=lzma.FORMAT_XZ)), "not an ELF"),
    ],
)
def test_images_that_cannot_be_extracted_say_why(image: bytes, why: str) -> None:
    with pytest.raises(NotExtractable, match=why):
        extract_vmlinux(image)


def test_the_vmlinux_is_cached_by_name_size_and_mtime(tmp_path: Path) -> None:
    img = tmp_path / "vmlinuz-6.1.0-56-amd64"
    img.write_bytes(bzimage(lzma.compress(PVH, format=lzma.FORMAT_XZ)))
    cache = tmp_path / "cache"
    first = pvh_vmlinux(img, cache)
    assert first is not None and first.read_bytes() == PVH
    assert oct(first.stat().st_mode & 0o777) == "0o644"
    assert pvh_vmlinux(img, cache) == first  # no second extraction
    # a new build of the same file name replaces the old one
    img.write_bytes(bzimage(lzma.compress(PVH + b"\0" * 8, format=lzma.FORMAT_XZ)))
    os.utime(img, (1, 1))
    second = pvh_vmlinux(img, cache)
    assert second is not None and second != first and not first.exists()


def test_an_image_without_pvh_falls_back_and_is_remembered(tmp_path: Path) -> None:
    img = tmp_path / "vmlinuz-old"
    img.write_bytes(bzimage(lzma.compress(NO_PVH, format=lzma.FORMAT_XZ)))
    assert pvh_vmlinux(img, tmp_path) is None
    assert [p.suffix for p in tmp_path.glob("vmlinuz-old.*")] == [".nopvh"]
    assert pvh_vmlinux(img, tmp_path) is None


def test_a_cache_that_cannot_be_written_boots_the_bzimage(tmp_path: Path) -> None:
    img = tmp_path / "vmlinuz-x"
    img.write_bytes(bzimage(lzma.compress(PVH, format=lzma.FORMAT_XZ)))
    (tmp_path / "file").write_text("not a directory")
    assert pvh_vmlinux(img, tmp_path / "file" / "cache") is None


def test_cache_dir_honours_wqlab_cache_then_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WQLAB_CACHE", "/c/w")
    assert bootimage.cache_dir() == Path("/c/w")
    monkeypatch.delenv("WQLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c/x")
    assert bootimage.cache_dir() == Path("/c/x/wqlab")
