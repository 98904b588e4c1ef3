"""The console target (the VM the harness booted, agent over virtio-serial), the SSH
target (fabric, the same agent over SSH) and the serial-console target (pexpect: a login
at a getty on the VM's ttyS1, the same agent on the line) pass the same smoke test."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wqlab.channel import AgentChannel
from wqlab.client import WqlabClient
from wqlab.kernels import Kernel
from wqlab.pytest_plugin import VmManager, guest_serial, guest_ssh
from wqlab.ssh import GUEST_SSH_USER
from wqlab.vm import Vm

pytestmark = pytest.mark.vm


# ssh and serial: a login and the agent's start in the guest, 7-8 s under TCG. wqlab_long:
# under xdist they start beside the long tests, not last on one worker while the others
# have finished (what they did: 16 s at the end of the run)
@pytest.fixture(
    params=[
        "console",
        pytest.param("ssh", marks=pytest.mark.wqlab_long),
        pytest.param("serial", marks=pytest.mark.wqlab_long),
    ]
)
def target(request: pytest.FixtureRequest, wqlab: WqlabClient) -> AgentChannel:
    """The agent of each target; the module is loaded by the ``wqlab`` fixture."""
    if request.param == "console":
        return wqlab.agent
    return request.getfixturevalue(f"wqlab_{request.param}").agent()  # type: ignore[no-any-return]


def test_target_smoke(target: AgentChannel, wqlab_kernel: Kernel, wqlab_vm: Vm) -> None:
    assert target.request("ping")["uptime"] > 0
    assert target.succeed("uname -r").strip() == wqlab_kernel.version
    c = WqlabClient(target)
    assert c.features()["kernel"] == wqlab_kernel.version
    assert c.cmd("schedule_work", id=0).ret == 1
    assert c.cmd("flush_work", id=0).ret in (0, 1)
    assert int(c.work(0)["runs"]) >= 1
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        target.request("echo", data="x")
        lat.append(time.perf_counter() - t)
    median_ms = statistics.median(lat) * 1e3
    print(f"agent round trip over {target._name}: median {median_ms:.2f} ms")
    assert median_ms < 1000, f"a request round trip took {median_ms:.0f} ms"


INNER = '''
"""Run by test_wqlab_target_option in a pytest of its own, on a target it did not boot."""

import time


def test_module_and_trace_on_the_target(wqlab, wqlab_trace, wqlab_kernel, wqlab_vm):
    assert wqlab_vm.name.startswith(("ssh:", "serial:"))
    assert wqlab.features()["kernel"] == wqlab_kernel.version
    assert wqlab.cmd("schedule_work", id=0).ret == 1
    wqlab.cmd("flush_work", id=0)
    text = wqlab_trace.wait_for(lambda t: "workqueue_execute_end" in t and "wqlab_" in t)
    assert "workqueue_queue_work" in text
    assert int(wqlab.work(0)["runs"]) >= 1
'''


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["serial", "ssh"])
def test_wqlab_target_option_runs_the_fixtures_on_a_machine_it_did_not_boot(
    kind: str,
    wqlab_vm_manager: VmManager,
    wqlab_vm: Vm,
    wqlab_kernel: Kernel,
    tmp_path: Path,
) -> None:
    """A second pytest with ``--wqlab-target`` reaches this session's VM as a machine it
    did not boot (over its ttyS1, or over SSH): it builds and copies the module, loads it,
    traces it, and boots nothing itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WQLAB_SERIAL")}
    if kind == "serial":
        line, user, password = guest_serial(wqlab_vm_manager, wqlab_vm)
        target = f"serial:{line}"
        env.update(WQLAB_SERIAL_USER=user, WQLAB_SERIAL_PASSWORD=password)
    else:
        port, key = guest_ssh(wqlab_vm_manager, wqlab_vm)
        target = f"ssh://{GUEST_SSH_USER}@127.0.0.1:{port}"
        env["WQLAB_SSH_KEY"] = str(key)
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-s"]
    argv += [f"--wqlab-target={target}", f"--wqlab-kernel={wqlab_kernel.version}"]
    argv += ["--log-level=INFO", "test_inner.py"]
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    print(f"--wqlab-target={kind}: {time.monotonic() - t0:.1f} s")
    assert p.returncode == 0 and "1 passed" in p.stdout, out[-6000:]
    assert "vng" not in out, "the inner pytest booted a VM"
    consoles = [c.name for c in (tmp_path / "artifacts").glob("console-*.log")]
    assert consoles and all(kind in c for c in consoles), consoles
