"""Every test here boots and uses no VM (stand-ins at most): marked ``wqlab_host``, so that
under xdist it runs beside a ``whole_vm`` test's body (wqlab/pytest_plugin.py)."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.wqlab_host)
