"""wqlab/vm.py's KVM probe: a hung probe leaves no process behind, and its verdict is
probed once per machine and remembered in the cache dir. A stand-in ``vng`` (a shell
script) plays the hung or the successful probe; no VM boots."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from wqlab.vm import (
    KVM_PROBE_FILE,
    cached_kvm_verdict,
    kvm_probe_key,
    kvm_works,
    probe_kvm,
    remember_kvm_verdict,
)

# hangs like a KVM boot here, with a child that left vng's session and process group
HANGING_VNG = """#!/bin/sh
setsid sh -c 'cut -d" " -f1,6 /proc/$$/stat > {d}/child.pid; exec sleep 1000' &
echo $$ > {d}/vng.pid
sleep 1000
"""

# the probe must not run: if it does, it says KVM works and leaves a trace
MUST_NOT_RUN_VNG = """#!/bin/sh
touch {d}/ran
exit 0
"""


def stand_in(tmp_path: Path, text: str) -> str:
    vng = tmp_path / "vng"
    vng.write_text(text.format(d=tmp_path))
    vng.chmod(0o755)
    return str(vng)


def fake_kvm(tmp_path: Path) -> str:
    """A read-write file in place of /dev/kvm, so the probe runs on any machine."""
    dev = tmp_path / "kvm"
    dev.touch()
    return str(dev)


def alive(pid: int) -> bool:
    """Running (a zombie is dead: an orphan waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def read_ids(path: Path, deadline: float) -> list[int]:
    while not path.exists() or not path.read_text().endswith("\n"):
        assert time.monotonic() < deadline, f"the stand-in vng never wrote {path}"
        time.sleep(0.02)
    return [int(w) for w in path.read_text().split()]


def test_a_hung_probe_is_killed_with_all_it_started(tmp_path: Path) -> None:
    vng = stand_in(tmp_path, HANGING_VNG)
    image = tmp_path / "vmlinuz"
    image.touch()
    t0 = time.monotonic()
    assert probe_kvm(image, vng, timeout=1.0, dev=fake_kvm(tmp_path)) is False
    assert time.monotonic() - t0 < 10
    (vng_pid,) = read_ids(tmp_path / "vng.pid", time.monotonic() + 5)
    child, child_sid = read_ids(tmp_path / "child.pid", time.monotonic() + 5)
    assert child_sid == child != vng_pid, "the child led a session of its own"
    pids = [vng_pid, child]
    try:
        assert not [p for p in pids if alive(p)], f"left running: {pids}"
    finally:
        for p in pids:
            if alive(p):
                os.kill(p, 9)


def test_the_key_changes_with_what_decides_the_verdict(tmp_path: Path) -> None:
    dev = fake_kvm(tmp_path)
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"x")
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_bytes(b"q")
    key = kvm_probe_key(image, dev, str(qemu))
    assert key == kvm_probe_key(image, dev, str(qemu))
    assert f"release={os.uname().release}" in key.split()
    assert f"image={image}@1," in key

    def changed(path: Path | str) -> str:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return kvm_probe_key(image, dev, str(qemu))

    seen = {key}
    for path in (dev, image, qemu):
        seen.add(changed(path))
    assert len(seen) == 4, "each of /dev/kvm, the image and QEMU is in the key"
    st = image.stat()
    image.write_bytes(b"xy")  # same mtime, another size
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert kvm_probe_key(image, dev, str(qemu)) not in seen
    assert kvm_probe_key(tmp_path / "other", dev, str(qemu)) not in seen


def test_the_cache_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / KVM_PROBE_FILE
    assert cached_kvm_verdict(path, "k1") is None
    remember_kvm_verdict(path, "k1", False)
    remember_kvm_verdict(path, "k2", True)
    assert cached_kvm_verdict(path, "k1") is False
    assert cached_kvm_verdict(path, "k2") is True
    assert cached_kvm_verdict(path, "k3") is None
    assert [p.name for p in path.parent.iterdir()] == [KVM_PROBE_FILE], "no temporary left"
    for n in range(20):
        remember_kvm_verdict(path, f"n{n}", True, keep=4)
    assert cached_kvm_verdict(path, "n19") is True
    assert cached_kvm_verdict(path, "n16") is not None
    assert cached_kvm_verdict(path, "n15") is None, "only the newest are kept"
    path.write_text("{not json")
    assert cached_kvm_verdict(path, "n19") is None
    remember_kvm_verdict(path, "k1", True)  # a broken file is replaced
    assert cached_kvm_verdict(path, "k1") is True


def test_a_cached_verdict_is_used_without_probing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WQLAB_KVM", raising=False)
    monkeypatch.setenv("WQLAB_CACHE", str(tmp_path / "cache"))
    vng = stand_in(tmp_path, MUST_NOT_RUN_VNG)
    dev = fake_kvm(tmp_path)
    image = tmp_path / "vmlinuz"
    image.touch()
    cache = tmp_path / "cache" / KVM_PROBE_FILE
    remember_kvm_verdict(cache, kvm_probe_key(image, dev), False)
    assert kvm_works(image, vng, dev=dev) is False
    assert not (tmp_path / "ran").exists(), "the probe ran despite a cached verdict"
    # another kernel image: probed once, then remembered
    other = tmp_path / "vmlinuz-2"
    other.touch()
    assert kvm_works(other, vng, dev=dev) is True
    assert (tmp_path / "ran").exists()
    (tmp_path / "ran").unlink()
    assert kvm_works(other, vng, dev=dev) is True
    assert cached_kvm_verdict(cache, kvm_probe_key(other, dev)) is True
    assert not (tmp_path / "ran").exists(), "probed twice"


@pytest.mark.parametrize("forced", ["0", "1"])
def test_wqlab_kvm_overrides_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forced: str
) -> None:
    monkeypatch.setenv("WQLAB_KVM", forced)
    monkeypatch.setenv("WQLAB_CACHE", str(tmp_path / "cache"))
    vng = stand_in(tmp_path, MUST_NOT_RUN_VNG)
    dev = fake_kvm(tmp_path)
    image = tmp_path / "vmlinuz"
    image.touch()
    remember_kvm_verdict(tmp_path / "cache" / KVM_PROBE_FILE, kvm_probe_key(image, dev), False)
    assert kvm_works(image, vng, dev=dev) is (forced == "1")
    assert not (tmp_path / "ran").exists()
