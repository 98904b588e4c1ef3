"""wqlab/guest_agent.py as a module for unit tests: a script in the guest, not a package
member, so it is loaded from its file."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guest_agent", ROOT / "wqlab" / "guest_agent.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
