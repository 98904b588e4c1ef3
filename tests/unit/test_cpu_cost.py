"""What a test costs the host in CPU (wqlab/pytest_plugin.py): the CPU time of a process
group's live members from /proc, and the two JUnit properties with the session's summary."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

from wqlab.reaper import cpu_seconds, group_members

pytest_plugins = ["pytester"]

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_cpu_seconds_counts_what_a_process_group_spent() -> None:
    p = subprocess.Popen([sys.executable, "-c", SPIN.format(s=60)], start_new_session=True)
    try:
        time.sleep(0.1)
        first = cpu_seconds(group_members(p.pid))
        time.sleep(0.8)
        spent = cpu_seconds(group_members(p.pid)) - first
        assert 0.3 < spent < 1.5, spent  # one busy process: about 0.8 s
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert cpu_seconds(group_members(p.pid)) == 0.0  # no live member


INNER = textwrap.dedent(
    """
    import subprocess, sys
    import pytest

    @pytest.mark.xdist_group("whole_vm")  # uses wqlab: the plugin measures
    def test_spins_in_a_child():
        subprocess.run([sys.executable, "-c", {spin!r}], check=True)

    @pytest.mark.xdist_group("whole_vm")
    def test_sleeps():
        import time
        time.sleep(0.3)
    """
)


@pytest.mark.parametrize("mode", ["plain", "xdist"])
def test_each_test_gets_its_cpu_cost_in_junit_and_the_summary(
    pytester: pytest.Pytester, mode: str
) -> None:
    """Also from xdist workers: the controller writes JUnit and the summary."""
    if mode == "xdist":
        pytest.importorskip("xdist")
    pytester.makepyfile(test_inner=INNER.format(spin=SPIN.format(s=0.6)))
    junit = pytester.path / "junit.xml"
    par = ["-p", "no:xdist"] if mode == "plain" else ["-n", "2"]
    res = pytester.runpytest_subprocess(
        *par, f"--junitxml={junit}", f"--wqlab-artifacts={pytester.path / 'art'}"
    )
    res.assert_outcomes(passed=2)
    props = {
        case.get("name"): {
            p.get("name"): float(p.get("value", "nan")) for p in case.iter("property")
        }
        for case in ET.parse(junit).iter("testcase")
    }
    spin, sleep = props["test_spins_in_a_child"], props["test_sleeps"]
    assert spin["guest_cpu_s"] == 0.0 and sleep["guest_cpu_s"] == 0.0  # no VM booted
    assert 0.5 <= spin["host_cpu_s"] < 3.0, spin  # the child's 0.6 s, reaped in the test
    assert sleep["host_cpu_s"] < 0.25, sleep
    out = res.stdout.str()
    assert "wqlab: CPU time the tests cost the host" in out, out
    top = [ln for ln in out.splitlines() if ln.endswith("test_inner.py::test_spins_in_a_child")]
    assert top and "(VM 0.0, host" in top[0], out
