"""Build of the C extension ``harness._fastparse``; the rest is in pyproject.toml.

``pip install -e .`` (``vm/setup.sh``) compiles it in place; without it (or with
``WQLAB_PURE_PARSER=1``) :mod:`harness.trace` parses in pure Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "harness._fastparse",
            sources=["harness/_fastparse.c"],
            extra_compile_args=["-Wall", "-Wextra"],
        )
    ]
)
