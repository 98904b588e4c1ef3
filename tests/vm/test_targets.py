"""The console target (the VM the harness booted, agent over virtio-serial), the SSH
target (fabric, the same agent over SSH) and the serial-console target (pexpect: a login
at a getty on the VM's ttyS1, the same agent on the line) pass the same smoke test."""

from __future__ import annotations

import statistics
import time

import pytest

from wqlab.channel import AgentChannel
from wqlab.client import WqlabClient
from wqlab.kernels import Kernel
from wqlab.vm import Vm

pytestmark = pytest.mark.vm


@pytest.fixture(params=["console", "ssh", "serial"])
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
