"""Build of the C extension ``wqlab._fastparse``; the rest is in pyproject.toml.

``pip install -e .`` (``vm/setup.sh``) compiles it in place; without it (or with
``WQLAB_PURE_PARSER=1``) :mod:`wqlab.trace` parses in pure Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wqlab._fastparse",
            sources=["wqlab/_fastparse.c"],
            extra_compile_args=["-Wall", "-Wextra"],
        )
    ]
)
