"""Where wqlab finds what it ships and where it writes, installed or in a checkout.

Nothing here reads the source tree of an installed wqlab: the guest agent and the
module's Kbuild tree are package data (``importlib.resources``); build trees go to the
cache directory; artifacts go where the caller says (the pytest rootdir, the CLI's
working directory).

    wqlab/guest_agent.py    run in the guest by its /usr/bin/python3
    wqlab/kmod/Kbuild       ``obj-m += module/``, as at the top of the repository
    wqlab/kmod/module/      the module's sources (the wheel's copy of module/)

In a checkout (``pip install -e .``, ``PYTHONPATH=.``) there is no ``wqlab/kmod``: the
module sources are the checkout's own ``Kbuild`` and ``module/``, next to the package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .bootimage import cache_dir
from .errors import SetupError

PACKAGE = "wqlab"
KMOD = "kmod"  # the module's Kbuild tree inside the installed package


def package_file(name: str) -> Path:
    """A file shipped in the wqlab package, as a path on disk (the guest and
    ``scp`` need one: a zipped install cannot serve)."""
    res = resources.files(PACKAGE) / name
    path = Path(str(res))
    if not path.is_file():
        raise SetupError(
            f"wqlab's {name} is not a file on disk ({res}): reinstall wqlab (unzipped)"
        )
    return path


def guest_agent() -> Path:
    """The guest agent script (``wqlab/guest_agent.py``)."""
    return package_file("guest_agent.py")


def guest_init() -> Path:
    """The fast boot's first PID 1 (``wqlab/guest_init.sh``, run by busybox's sh): mounts
    the cached /usr share, then execs the agent."""
    return package_file("guest_init.sh")


def module_sources() -> Path:
    """The directory whose ``Kbuild`` builds wqlab.ko from its ``module/`` subdirectory:
    the package's ``kmod/`` when installed from a wheel, the checkout when editable."""
    shipped = Path(str(resources.files(PACKAGE) / KMOD))
    if (shipped / "Kbuild").is_file():
        return shipped
    checkout = Path(str(resources.files(PACKAGE))).resolve().parent
    if (checkout / "Kbuild").is_file() and (checkout / "module" / "Kbuild").is_file():
        return checkout
    raise SetupError(
        f"the wqlab module sources are missing (no {shipped}/Kbuild): reinstall wqlab from "
        "its wheel, or `pip install -e .` in a checkout"
    )


def package_parent() -> Path:
    """The directory that holds the ``wqlab`` package (site-packages, or the checkout):
    the import path of a guest Python that runs wqlab's own modules (the fuzzer)."""
    return Path(str(resources.files(PACKAGE))).resolve().parent


def build_dir() -> Path:
    """Where module build trees go (``<cache>/build``, :func:`wqlab.bootimage.cache_dir`):
    writable, unlike site-packages, and seen by the guest (the host's root through 9p)."""
    return cache_dir() / "build"
