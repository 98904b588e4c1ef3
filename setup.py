"""Build steps that pyproject.toml cannot declare: the C extension ``wqlab._fastparse``
and the module sources shipped as package data.

``pip install -e .`` (``vm/setup.sh``) compiles the extension in place; without it (no
compiler: the extension is optional) or with ``WQLAB_PURE_PARSER=1``, :mod:`wqlab.trace`
parses in pure Python.

A wheel carries the kernel module's Kbuild tree as ``wqlab/kmod/`` (``Kbuild`` and
``module/``, sources only), so that an installed wqlab builds wqlab.ko without a
checkout (:func:`wqlab.resources.module_sources`). A checkout uses its own ``module/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
MODULE_SOURCES = (".c", ".h", ".sh", "Kbuild")


class BuildPyWithModule(build_py):
    """``build_py`` that also copies ``Kbuild`` and ``module/`` into ``wqlab/kmod/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's module/ itself
        dest = Path(self.build_lib) / "wqlab" / "kmod"
        shutil.rmtree(dest, ignore_errors=True)
        (dest / "module").mkdir(parents=True)
        shutil.copy2(HERE / "Kbuild", dest / "Kbuild")
        for f in sorted((HERE / "module").rglob("*")):
            if f.is_file() and f.name.endswith(MODULE_SOURCES) and ".mod." not in f.name:
                out = dest / "module" / f.relative_to(HERE / "module")
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, out)


setup(
    cmdclass={"build_py": BuildPyWithModule},
    ext_modules=[
        Extension(
            "wqlab._fastparse",
            sources=["wqlab/_fastparse.c"],
            extra_compile_args=["-Wall", "-Wextra"],
            optional=True,  # no compiler: the pure-Python parser serves
        )
    ],
)
