# SPDX-License-Identifier: GPL-2.0
"""Kernel selectors: lines, exact versions, paths, and the PREEMPT_RT flavour."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kernels
from harness.errors import KernelNotFoundError

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
