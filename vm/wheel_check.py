#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Clean-room check of the wqlab wheel (``make wheel-check``).

As a driver developer would, outside this repository:

1. build the wheel (``pip wheel``, not editable);
2. install it into a new venv in a temporary directory (dependencies pinned by
   requirements.lock where it pins them, from the wheelhouse set-up keeps in the wqlab
   cache when it holds them all, else from PyPI; the running Python's pip installs: see
   below). The wheelhouse holds the unpinned dependencies (pluggy, packaging, pygments,
   markdown-it-py...) in the versions set-up downloaded, which it does not refresh while
   requirements.lock is unchanged: a new release of one of them reaches this check only
   through the index (``WQLAB_WHEEL_CHECK_INDEX=1``);
3. copy examples/myproject/ there (a module of its own, ``mymod``: one work item on its
   own workqueue, and its tests) plus one test whose expectation is wrong;
4. the extras (ssh, serial) not installed: their targets name the extra to install;
   with the plugin installed, run the test that uses no wqlab fixture: it passes, and
   nothing is booted (no VM command in the log, no console log, no artifacts);
5. run the whole project: the lifecycle test passes, the wrong expectation fails with the
   lifecycle table in its message, and its artifacts land in the project's artifacts/;
6. ``wqlab --help`` and ``wqlab run`` (a VM of its own, the wheel's module sources) from
   the venv's CLI; the package, agent and module sources come from the venv, never from
   this checkout.

Exit status 0 when every check held; each phase's time is printed. ``--keep`` keeps the
temporary directory; ``--kernel`` picks the kernel line (default ``default``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "myproject"

WRONG_TEST = '''
"""A wrong expectation: it must fail, readably, with artifacts in this project."""

from test_mymod import mymod, mymod_lifecycles  # noqa: F401 - the fixture


def test_wrong_expectation(mymod, wqlab_guest, wqlab_trace):
    from wqlab.report import format_lifecycles

    lcs = mymod_lifecycles(wqlab_guest, wqlab_trace, mymod)
    assert len(lcs) == 2, format_lifecycles(lcs)
'''


class CheckFailed(Exception):
    pass


def run(argv: list[str], what: str, **kw: object) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(map(str, argv))}", flush=True)
    t0 = time.monotonic()
    p = subprocess.run(argv, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    print(f"  {what}: exit {p.returncode} in {time.monotonic() - t0:.1f} s", flush=True)
    return p  # type: ignore[no-any-return]


def check(cond: bool, what: str, detail: str = "") -> None:
    if not cond:
        raise CheckFailed(f"{what}\n{detail[-6000:]}")
    print(f"  ok: {what}", flush=True)


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a new user: the venv first on PATH, none of this checkout's
    (no .venv/bin from the Makefile, no PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def wheelhouse() -> Path:
    """Where vm/setup.sh keeps the pinned wheels (the same rule as its ``wh``)."""
    cache = os.environ.get("WQLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wqlab"
    )
    return Path(cache) / "wheelhouse"


def install_offline(
    pip: list[str], req: list[str], wh: Path, **kw: object
) -> subprocess.CompletedProcess[str] | None:
    """The install from set-up's wheelhouse alone (``--no-index``: the same pinned wheels
    a new user would download, without asking the index: pip's resolver online took
    about 15 s here). None if there is no wheelhouse, or set-up is writing it (its lock
    taken: no wait for its download), or it cannot be locked; a failure (a dependency it
    lacks) is the caller's cue to ask the index. Read under set-up's lock on it, shared."""
    if os.environ.get("WQLAB_WHEEL_CHECK_INDEX") == "1" or not any(wh.glob("*.whl")):
        return None
    try:
        lock = open(wh / ".lock", "a")
    except OSError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return run([*pip, "--no-index", "--find-links", str(wh), *req], "install", **kw)


def junit_outcomes(path: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        out[case.get("name", "?")] = kinds[0] if kinds else "passed"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default=os.environ.get("WQLAB_KERNEL", "default"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--python", default="python3", help="the Python of the new venv")
    ap.add_argument("--json", default=None, help="write the phase times here")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="wqlab-cleanroom-"))
    times: dict[str, float] = {}
    t_all = time.monotonic()
    print(f"clean room: {tmp}", flush=True)
    try:
        # 1. the wheel, built from this checkout (setuptools from the running Python)
        t0 = time.monotonic()
        dist = tmp / "dist"
        p = run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
            + ["-w", str(dist), str(REPO)],
            "wheel",
        )
        check(p.returncode == 0, "the wheel builds", p.stdout + p.stderr)
        wheels = sorted(dist.glob("wqlab-*.whl"))
        check(len(wheels) == 1, f"one wheel: {[w.name for w in wheels]}")
        times["wheel_s"] = time.monotonic() - t0

        # 2. a new venv, the wheel installed (not editable). The venv gets no pip of its
        # own (ensurepip: 5-8 s of CPU on a 2-core TCG host, a third of this phase): the
        # running Python's pip installs into it (``--python``: pip runs under the venv's
        # interpreter, whose tags and markers decide what is installed), and nothing
        # after the install uses pip, so what the venv holds is still the wheel and its
        # dependencies alone. Bytecode is still compiled at install (``--no-compile`` was
        # measured: with PYTHONDONTWRITEBYTECODE set, as here, every later Python process
        # then compiled what it imported again, which cost more than it saved).
        t0 = time.monotonic()
        venv = tmp / "venv"
        p = run([args.python, "-m", "venv", "--without-pip", str(venv)], "venv")
        check(p.returncode == 0, "the venv is created", p.stderr)
        py = str(venv / "bin" / "python")
        pip = [sys.executable, "-m", "pip", "--python", py, "install", "-q"]
        pip += ["--disable-pip-version-check"]
        # in the new user's environment: with this checkout on PYTHONPATH (its
        # wqlab.egg-info, which the wheel build leaves), pip took wqlab for installed
        env = clean_env(venv)
        req = ["-c", str(REPO / "requirements.lock"), str(wheels[0])]
        p = install_offline(pip, req, wheelhouse(), env=env, cwd=tmp)
        if p is None or p.returncode != 0:
            p = run([*pip, *req], "install (dependencies from the index)", env=env, cwd=tmp)
        check(p.returncode == 0, "the wheel installs with its dependencies", p.stdout + p.stderr)
        times["install_s"] = time.monotonic() - t0
        probe = (
            "import json, wqlab, wqlab.resources as r, wqlab.trace as t;"
            "print(json.dumps({'pkg': wqlab.__file__, 'agent': str(r.guest_agent()),"
            "'kmod': str(r.module_sources()), 'fast': t.C_PARSER}))"
        )
        p = run([py, "-c", probe], "where wqlab comes from", env=env, cwd=tmp)
        check(p.returncode == 0, "wqlab imports from the venv", p.stderr)
        where = json.loads(p.stdout)
        print(f"  {where}")
        for key in ("pkg", "agent", "kmod"):
            check(where[key].startswith(str(venv)), f"{key} is in the venv, not the checkout")
        check(where["fast"] is True, "the wheel's C parser (_fastparse) is in use")
        p = run([str(venv / "bin" / "wqlab"), "--help"], "wqlab --help", env=env, cwd=tmp)
        check(p.returncode == 0 and "usage" in p.stdout.lower(), "the CLI runs", p.stderr)
        # the extras are not installed: their targets say which one to install
        for spec, extra in (("ssh://root@127.0.0.1:1", "ssh"), ("serial:/dev/null", "serial")):
            code = (
                "from wqlab.targets import make_target, parse_target\n"
                f"make_target(parse_target({spec!r})).start()"
            )
            p = run([py, "-c", code], f"{extra} target without wqlab[{extra}]", env=env, cwd=tmp)
            check(
                p.returncode != 0 and f"pip install 'wqlab[{extra}]'" in p.stderr,
                f"a missing {extra} extra is named",
                p.stderr,
            )

        # 3. the user's project
        proj = tmp / "myproject"
        shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("artifacts", "__pycache__"))
        (proj / "test_wrong.py").write_text(WRONG_TEST)
        pytest = [py, "-m", "pytest", "-p", "no:cacheprovider", f"--wqlab-kernel={args.kernel}"]

        # 4. the plugin installed, no wqlab fixture used: nothing boots
        p = run([*pytest, "--help"], "pytest --help", env=env, cwd=proj)
        check(
            all(o in p.stdout for o in ("--wqlab-kernel", "--wqlab-target")),
            "the plugin's options are there",
            p.stdout,
        )
        t0 = time.monotonic()
        log = tmp / "plain.log"
        p = run(
            [*pytest, "test_plain.py", f"--log-file={log}", "--log-file-level=DEBUG"],
            "plain tests",
            env=env,
            cwd=proj,
        )
        times["plain_s"] = time.monotonic() - t0
        check(p.returncode == 0 and "1 passed" in p.stdout, "the plain test passes", p.stdout)
        text = log.read_text() if log.exists() else ""
        check("vng" not in text and "boot" not in text, "no VM was booted (log)", text)
        check(not (proj / "artifacts").exists(), "no artifacts: nothing ran in a VM")

        # 5. the whole project: boot, build mymod, load it, prove its lifecycle
        t0 = time.monotonic()
        junit = tmp / "junit.xml"
        p = run([*pytest, "-v", f"--junitxml={junit}"], "project tests", env=env, cwd=proj)
        times["project_s"] = time.monotonic() - t0
        print(p.stdout[-3000:])
        check(junit.exists(), "pytest wrote its JUnit file", p.stdout + p.stderr)
        got = junit_outcomes(junit)
        want = {
            "test_arithmetic": "passed",
            "test_work_item_runs_once_on_its_own_queue": "passed",
            "test_wrong_expectation": "failure",
        }
        check(got == want, f"outcomes {got}", p.stdout + p.stderr)
        check("mymod_wq" in p.stdout, "the failure shows the lifecycle table", p.stdout)
        art = proj / "artifacts"
        consoles = sorted(art.glob("console-*.log"))
        check(bool(consoles), f"the console log is in the project: {consoles}")
        failed = [d for d in art.iterdir() if d.is_dir() and "test_wrong" in d.name]
        check(
            len(failed) == 1 and (failed[0] / "trace.txt").exists(),
            f"the failure's artifacts are in the project: {failed}",
        )
        check(not list(venv.rglob("artifacts")), "nothing was written into the venv")

        # 6. the CLI's own VM: the wheel's copy of the wqlab module built, loaded, driven.
        # Build trees are named by their sources' content (wqlab/build.py): when the
        # wheel's copy is byte for byte the sources some earlier build (the suite's, a
        # previous check) built W=1-clean for this kernel, make finds that tree built and
        # does nothing. Safe: the name covers every file's path and bytes, so a file the
        # wheel lacks or changes gets a tree of its own and a real build from the wheel's
        # files alone; what is loaded was built from exactly the wheel's sources.
        t0 = time.monotonic()
        cli = [str(venv / "bin" / "wqlab"), "run", f"--kernel={args.kernel}", "--wait=1"]
        p = run([*cli, "schedule_work id=0", "flush_work id=0"], "wqlab run", env=env, cwd=tmp)
        times["cli_run_s"] = time.monotonic() - t0
        out = p.stdout + p.stderr
        check(p.returncode == 0 and "wqlab_" in p.stdout, "wqlab run drives the module", out)
        check((tmp / "artifacts").is_dir(), "the CLI's console log is in its working directory")
    except CheckFailed as e:
        print(f"\nwheel check FAILED: {e}", flush=True)
        return 1
    finally:
        times["total_s"] = time.monotonic() - t_all
        print("times: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(times, indent=1))
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("wheel check passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
