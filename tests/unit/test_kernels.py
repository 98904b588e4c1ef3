# SPDX-License-Identifier: GPL-2.0
"""Kernel selectors: lines, exact versions, paths, and the PREEMPT_RT flavour."""

from __future__ import annotations

from pathlib import Path

import pytest

from wqlab import kernels
from wqlab.errors import KernelNotFoundError

VERSIONS = ["6.1.0-56-amd64", "6.1.0-56-rt-amd64", "6.12.95+deb12-amd64", "6.12.95+deb12-rt-amd64"]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    boot, src = tmp_path / "boot", tmp_path / "src"
    boot.mkdir()
    for v in VERSIONS:
        (boot / f"vmlinuz-{v}").write_text("")
        (src / f"linux-headers-{v}").mkdir(parents=True)
        (src / f"linux-headers-{v}" / "Makefile").write_text("")
    metas = {"linux-image-amd64": "6.1.0-56-amd64", "linux-image-rt-amd64": "6.1.0-56-rt-amd64"}
    monkeypatch.setattr(kernels, "default_version", lambda meta="linux-image-amd64": metas[meta])
    return boot, src


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        ("default", "6.1.0-56-amd64"),
        ("6.1", "6.1.0-56-amd64"),
        ("6.12", "6.12.95+deb12-amd64"),
        ("latest", "6.12.95+deb12-amd64"),
        ("rt", "6.1.0-56-rt-amd64"),
        ("6.12.95+deb12-rt-amd64", "6.12.95+deb12-rt-amd64"),
    ],
)
def test_a_line_names_the_generic_flavour_and_rt_names_preempt_rt(
    tree: tuple[Path, Path], spec: str, version: str
) -> None:
    k = kernels.resolve(spec, *tree)
    assert k.version == version
    assert k.rt == version.endswith("-rt-amd64")
    assert k.kdir is not None and k.kdir.name == f"linux-headers-{version}"


def test_a_missing_line_says_how_to_install_it(tree: tuple[Path, Path]) -> None:
    with pytest.raises(KernelNotFoundError, match=r"make kernel KERNEL=6\.6"):
        kernels.resolve("6.6", *tree)


def test_rt_without_an_rt_kernel_says_how_to_install_it(tmp_path: Path) -> None:
    boot, src = tmp_path / "boot", tmp_path / "src"
    boot.mkdir()
    (boot / "vmlinuz-6.1.0-56-amd64").write_text("")
    with pytest.raises(KernelNotFoundError, match=r"make kernel KERNEL=rt"):
        kernels.resolve("rt", boot, src)


def test_a_path_is_taken_as_it_is(tree: tuple[Path, Path]) -> None:
    boot, src = tree
    k = kernels.resolve(str(boot / "vmlinuz-6.12.95+deb12-amd64"), boot, src)
    assert k.version == "6.12.95+deb12-amd64" and k.line == "6.12"


def _debug_build(cache: Path, release: str = "6.12.117-wqlab-debug", built: bool = True) -> Path:
    d = cache / "debug-kernel" / f"6.12.117-1_deb12u1-{'a' * 12}"
    (d / "linux").mkdir(parents=True)
    (d / "linux" / "Makefile").write_text("")
    (d / "kernelrelease").write_text(release + "\n")
    (d / f"vmlinuz-{release}").write_text("")
    if built:
        (d / ".built").write_text("")
    (cache / "debug-kernel" / "current").symlink_to(d.name)
    return d


def test_debug_names_the_built_debug_line(tree: tuple[Path, Path], tmp_path: Path) -> None:
    d = _debug_build(tmp_path / "cache")
    for spec in ("debug", "6.12.117-wqlab-debug"):
        k = kernels.resolve(spec, *tree, cache=tmp_path / "cache")
        assert k.version == "6.12.117-wqlab-debug"
        assert k.debug and not k.rt and k.line == "6.12"
        assert k.image == (d / "vmlinuz-6.12.117-wqlab-debug").resolve()
        assert k.kdir == (d / "linux").resolve()  # the built tree is the module build dir
    # a line never picks the debug build
    assert not kernels.resolve("6.12", *tree, cache=tmp_path / "cache").debug


def test_debug_unbuilt_or_unfinished_says_how_to_build_it(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(KernelNotFoundError, match=r"make kernel KERNEL=debug"):
        kernels.resolve("debug", *tree, cache=tmp_path / "none")
    _debug_build(tmp_path / "cache", built=False)  # a build still running or failed
    with pytest.raises(KernelNotFoundError, match=r"make kernel KERNEL=debug"):
        kernels.resolve("debug", *tree, cache=tmp_path / "cache")
