"""The vng command line is built by a pure function: compare the exact list."""

from pathlib import Path

import pytest
from agentmod import load_agent

from wqlab.build import make_argv
from wqlab.client import format_command, may_block, parse_kv, parse_table
from wqlab.errors import SetupError
from wqlab.splat import SPLAT_RE
from wqlab.vm import USR_OPTS, USR_TAG, VmConfig, build_cmdline, build_vng_argv

IMG = Path("/boot/vmlinuz-6.1.0-56-amd64")
VMLINUX = Path("/cache/wqlab/vmlinuz-6.1.0-56-amd64.1.2.pvh")


def cfg(**kw: object) -> VmConfig:
    base = dict(
        image=IMG,
        cwd=Path("/src/wqlab"),
        agent=Path("/src/wqlab/wqlab/guest_agent.py"),
        vng="vng",
    )
    base.update(kw)
    return VmConfig(**base)  # type: ignore[arg-type]


def test_fast_boot_argv_is_exact() -> None:
    c = cfg(tcg_thread="single")
    assert build_vng_argv(c) == [
        "vng",
        "--run",
        str(IMG),
        "--cpus",
        "2",
        "--memory",
        "1G",
        "--force-9p",
        "--verbose",
        "--cwd",
        "/src/wqlab",
        "--disable-kvm",
        "--qemu-opts=-accel",
        "--qemu-opts=tcg,thread=single",
        "--exec",
        "exec /usr/bin/python3 -I -S -u /src/wqlab/wqlab/guest_agent.py",
        "--force-initramfs",
        "--qemu-opts=-fsdev",
        "--qemu-opts=local,id=wqlab_usr,path=/usr,security_model=none,readonly=on,multidevs=remap",
        "--qemu-opts=-device",
        "--qemu-opts=virtio-9p-pci,fsdev=wqlab_usr,mount_tag=wqlab_usr",
        "--qemu-opts=-append",
        "--qemu-opts='" + build_cmdline(c) + "'",
    ]


def test_the_usr_share_is_the_one_the_agent_mounts_and_only_on_a_fast_boot() -> None:
    ga = load_agent()
    assert ga.USR_TAG == USR_TAG and ga.USR_OPTS == USR_OPTS and "cache=loose" in USR_OPTS
    assert f"--qemu-opts=virtio-9p-pci,fsdev={USR_TAG},mount_tag={USR_TAG}" in build_vng_argv(cfg())
    for off in (cfg(usr_cache=False), cfg(fast=False)):
        assert not any(USR_TAG in a for a in build_vng_argv(off))


def test_wqlab_usr_cache_0_keeps_usr_on_the_uncached_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WQLAB_USR_CACHE", "0")
    assert not any(USR_TAG in a for a in build_vng_argv(cfg()))
    monkeypatch.setenv("WQLAB_USR_CACHE", "1")
    assert any(USR_TAG in a for a in build_vng_argv(cfg()))


def test_fast_boot_always_asks_vng_for_its_initramfs() -> None:
    # vng makes an initramfs only when it has modules to load in it: a kernel with 9p and
    # virtio built in (the debug line) gets none, and then nothing mounts the root before
    # the fast boot's init= (the agent) runs. A plain boot lets vng decide (rootfstype=9p).
    assert "--force-initramfs" in build_vng_argv(cfg())
    assert "--force-initramfs" in build_vng_argv(cfg(boot_image=VMLINUX))
    assert "--force-initramfs" not in build_vng_argv(cfg(fast=False))


# the agent's arguments as init (after "--", or after the init script's Python)
AGENT_ARGS = [
    "-I",
    "-S",
    "-u",
    "/src/wqlab/wqlab/guest_agent.py",
    "--init",
    "--chdir",
    "/src/wqlab",
]


def test_fast_cmdline_makes_the_agent_init() -> None:
    line = build_cmdline(cfg(usr_cache=False)).split()  # with the share: busybox first (below)
    # virtme-ng's initramfs execs init= with the words after "--" as its arguments
    assert line[line.index("--") - 1] == "init=/usr/bin/python3"
    assert line[line.index("--") + 1 :] == AGENT_ARGS
    assert "loglevel=5" in line and "mitigations=off" in line and "cryptomgr.notests" in line
    assert "modprobe.blacklist=kvm,kvm_amd,kvm_intel,ahci,sr_mod,i6300esb,powernow_k8" in line
    # nothing for virtme-ng-init, which does not run
    assert not [p for p in line if p.startswith("virtme")]


def test_fast_cmdline_refuses_paths_with_blanks() -> None:
    with pytest.raises(SetupError, match="kernel command line"):
        build_cmdline(cfg(cwd=Path("/my src/wqlab")))


def test_pvh_boot_overrides_vngs_kernel_with_the_vmlinux() -> None:
    argv = build_vng_argv(cfg(boot_image=VMLINUX))
    assert argv[2] == str(IMG)  # vng still reads the bzImage (version, modules)
    i = argv.index("--qemu-opts=-kernel")
    assert argv[i + 1] == f"--qemu-opts={VMLINUX}"
    assert i < argv.index("--qemu-opts=-append")
    # a plain boot never swaps the image
    assert "--qemu-opts=-kernel" not in build_vng_argv(cfg(boot_image=VMLINUX, fast=False))


def test_tcg_is_single_threaded_beside_other_vms_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WQLAB_TCG_THREAD", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")  # VMs of several workers at once
    assert "--qemu-opts=tcg,thread=single" in build_vng_argv(cfg())
    for alone in ("1", ""):  # one worker, no xdist: a VM alone
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", alone)
        assert "--qemu-opts=tcg,thread=multi" in build_vng_argv(cfg())
    monkeypatch.setenv("WQLAB_TCG_THREAD", "single")
    assert "--qemu-opts=tcg,thread=single" in build_vng_argv(cfg())
    monkeypatch.setenv("WQLAB_TCG_THREAD", "multi")
    assert "--qemu-opts=tcg,thread=multi" in build_vng_argv(cfg())
    # KVM: no TCG option (QEMU refuses -accel beside vng's -machine accel=kvm:tcg)
    assert not any("tcg" in a for a in build_vng_argv(cfg(kvm=True)))
    monkeypatch.setenv("WQLAB_TCG_THREAD", "2")
    with pytest.raises(SetupError, match="use single or multi"):
        cfg()


def test_plain_boot_with_kvm_uses_vng_append() -> None:
    argv = build_vng_argv(cfg(fast=False, kvm=True, cpus=4, append=("foo=1",)))
    assert "--disable-kvm" not in argv
    assert argv[argv.index("--cpus") + 1] == "4"
    assert argv[-4:] == [
        "--append",
        "modprobe.blacklist=kvm,kvm_amd,kvm_intel,ahci,sr_mod,i6300esb,powernow_k8",
        "--append",
        "foo=1",
    ]
    assert not any(a.startswith("--qemu-opts") for a in argv)


def test_make_argv() -> None:
    assert make_argv(Path("/k"), Path("/m")) == ["make", "-C", "/k", "M=/m", "W=1", "modules"]
    assert make_argv(Path("/k"), Path("/m"), w=None, target="clean") == [
        "make",
        "-C",
        "/k",
        "M=/m",
        "clean",
    ]


def test_command_formatting_and_parsing() -> None:
    assert format_command(
        "alloc_workqueue",
        {"name": "q", "flags": ["unbound", "highpri"], "max_active": 2, "block": True, "x": None},
    ) == ("alloc_workqueue name=q flags=unbound,highpri max_active=2 block=1")
    assert parse_kv("ret=1 id=3\n") == {"ret": "1", "id": "3"}
    assert parse_table("id=0 state=idle\n\nid=1 state=pending\n") == [
        {"id": "0", "state": "idle"},
        {"id": "1", "state": "pending"},
    ]
    assert may_block("flush_work") and may_block("cancel_delayed_work_sync")
    assert may_block("drain_workqueue") and may_block("destroy_workqueue")
    assert not may_block("queue_work") and not may_block("cancel_work")


def test_splat_patterns_match_kernel_lines_only() -> None:
    assert SPLAT_RE.search("[   12.345678] WARNING: CPU: 1 PID: 5 at kernel/workqueue.c:1 x")
    assert SPLAT_RE.search("[    3.000001] BUG: kernel NULL pointer dereference, address: 0")
    assert SPLAT_RE.search("[  100.000000] INFO: task kworker/0:1:20 blocked for more than 120 s")
    assert SPLAT_RE.search("[    1.5] Oops: 0002 [#1] PREEMPT SMP NOPTI")
    assert not SPLAT_RE.search("virtme-ng-init: WARNING: failed to run: systemd-tmpfiles")
    assert not SPLAT_RE.search("[    1.000000] wqlab: loaded")


def test_ssh_port_adds_a_loopback_only_user_nic() -> None:
    argv = build_vng_argv(cfg(ssh_port=2222))
    i = argv.index("--qemu-opts=-netdev")
    assert argv[i : i + 4] == [
        "--qemu-opts=-netdev",
        "--qemu-opts=user,id=wqnet,hostfwd=tcp:127.0.0.1:2222-:22",
        "--qemu-opts=-device",
        "--qemu-opts=virtio-net-pci,netdev=wqnet",
    ]
    assert argv[-2] == "--qemu-opts=-append"  # the command line override stays last


def test_serial_socket_adds_a_second_uart_served_on_a_unix_socket() -> None:
    argv = build_vng_argv(cfg(serial_socket=Path("/tmp/wq/ttyS1.sock")))
    i = argv.index("--qemu-opts=-serial")
    assert argv[i : i + 2] == [
        "--qemu-opts=-serial",
        "--qemu-opts=unix:/tmp/wq/ttyS1.sock,server=on,wait=off",
    ]
    assert "--qemu-opts=-serial" not in build_vng_argv(cfg())
    assert argv[-2] == "--qemu-opts=-append"


def test_a_console_log_held_by_a_live_vm_is_not_shared(tmp_path: Path) -> None:
    from wqlab.vm import open_console_log

    p1, f1 = open_console_log(tmp_path / "console-6.1.log")
    p2, f2 = open_console_log(tmp_path / "console-6.1.log")
    assert (p1.name, p2.name) == ("console-6.1.log", "console-6.1.2.log")
    f1.close()
    p3, f3 = open_console_log(tmp_path / "console-6.1.log")
    assert p3 == p1, "free again once the first VM stopped"
    f2.close()
    f3.close()


def test_boot_deadline_scales_with_load_and_the_last_boot() -> None:
    from wqlab.vm import boot_deadline

    assert boot_deadline(kvm=False, load=0.0, ncpu=2) == 120
    assert boot_deadline(kvm=True, load=0.0, ncpu=2) == 60
    assert boot_deadline(kvm=False, load=4.0, ncpu=2) == 360  # two more VMs' worth of load
    assert boot_deadline(kvm=False, load=0.0, ncpu=2, last_boot=50.0) == 200
    assert boot_deadline(kvm=False, load=40.0, ncpu=2) == 900
    assert boot_deadline(kvm=False, load=9.0, ncpu=2, override="30") == 30


def test_with_the_usr_share_busybox_mounts_it_first_then_execs_the_agent() -> None:
    c = cfg(init_script=Path("/src/wqlab/wqlab/guest_init.sh"))
    line = build_cmdline(c)
    init = line[line.index("init=") :].split()
    script = ["init=/bin/busybox", "--", "sh", "/src/wqlab/wqlab/guest_init.sh"]
    assert init == [*script, USR_TAG, USR_OPTS, "/usr/bin/python3", *AGENT_ARGS]


def test_the_init_script_mounts_the_share_then_execs_its_command_even_if_that_fails(
    tmp_path: Path,
) -> None:
    """guest_init.sh with a stand-in busybox that logs its mount and fails it."""
    import subprocess

    from wqlab.resources import guest_init

    script = guest_init().read_text()
    assert script.count("/bin/busybox mount") == 1
    fake = tmp_path / "busybox"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/mount.args\nexit 1\n')
    fake.chmod(0o755)
    staged = tmp_path / "init.sh"
    staged.write_text(script.replace("/bin/busybox", str(fake)))
    p = subprocess.run(
        ["sh", str(staged), USR_TAG, USR_OPTS, "echo", "agent", "--init"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0 and p.stdout == "agent --init\n", p
    assert (tmp_path / "mount.args").read_text().split() == [
        "mount",
        "-t",
        "9p",
        "-o",
        f"ro,{USR_OPTS}",
        USR_TAG,
        "/usr",
    ]
    assert "Python starts uncached" in p.stderr
