"""Fixtures shared by the VM tests (the harness's own come from the ``wqlab`` plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wqlab.client import WqlabClient

PLANES = ["wqlab", "wqlab_ioctl", "wqlab_netlink"]


@pytest.fixture(params=PLANES)
def plane(request: pytest.FixtureRequest) -> Iterator[WqlabClient]:
    """The module loaded for the test, driven through the debugfs, ioctl or netlink plane."""
    yield request.getfixturevalue(request.param)
