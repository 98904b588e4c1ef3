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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the long tests (``slow``, and the fuzz run) go first: the workers
    then end together on short tests instead of one of them finishing a long one alone
    (the wheel check and the target sessions, last in name order, made a tail of their
    own). Every worker orders the same way, as xdist requires; a run without xdist keeps
    the name order."""
    if not hasattr(config, "workerinput"):
        return
    first = [it for it in items if it.get_closest_marker("slow") or "test_fuzz.py" in it.nodeid]
    if first:
        chosen = set(map(id, first))
        items[:] = first + [it for it in items if id(it) not in chosen]
