"""The vng command line is built by a pure function: compare the exact list."""

from pathlib import Path

from harness.build import make_argv
from harness.client import format_command, may_block, parse_kv, parse_table
from harness.vm import SPLAT_RE, VmConfig, build_cmdline, build_vng_argv

IMG = Path("/boot/vmlinuz-6.1.0-56-amd64")
INIT = Path("/venv/virtme/guest/bin/virtme-ng-init")


def cfg(**kw: object) -> VmConfig:
    base = dict(
        image=IMG,
        cwd=Path("/src/wqlab"),
        agent=Path("/src/wqlab/vm/guest_agent.py"),
        fastinit=Path("/src/wqlab/vm/fastinit"),
        virtme_init=INIT,
        vng="vng",
    )
    base.update(kw)
    return VmConfig(**base)  # type: ignore[arg-type]


def test_fast_boot_argv_is_exact() -> None:
    c = cfg()
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
        "--exec",
        "exec /usr/bin/python3 -I -S -u /src/wqlab/vm/guest_agent.py",
        "--qemu-opts=-append",
        "--qemu-opts='" + build_cmdline(c) + "'",
    ]


def test_fast_cmdline_runs_fastinit_then_virtme_init() -> None:
    line = build_cmdline(cfg()).split()
    assert line[-1] == "init=/src/wqlab/vm/fastinit"
    assert f"wqlab_init={INIT}" in line
    assert "virtme_chdir=src/wqlab" in line
    assert "loglevel=5" in line
    # /usr and /lib are not overlaid, or the fastinit bind mounts would be hidden
    overlays = [p.split("=", 1)[1] for p in line if p.startswith("virtme_rw_overlay")]
    assert "/usr" not in overlays and "/lib" not in overlays and "/tmp" in overlays
    assert "modprobe.blacklist=kvm,kvm_amd,kvm_intel,ahci,sr_mod,i6300esb,powernow_k8" in line
    exec_arg = next(p for p in line if p.startswith("virtme.exec="))
    import base64

    assert base64.b64decode(exec_arg.split("`")[1]).decode() == (
        "exec /usr/bin/python3 -I -S -u /src/wqlab/vm/guest_agent.py"
    )


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


def test_a_console_log_held_by_a_live_vm_is_not_shared(tmp_path: Path) -> None:
    from harness.vm import open_console_log

    p1, f1 = open_console_log(tmp_path / "console-6.1.log")
    p2, f2 = open_console_log(tmp_path / "console-6.1.log")
    assert (p1.name, p2.name) == ("console-6.1.log", "console-6.1.2.log")
    f1.close()
    p3, f3 = open_console_log(tmp_path / "console-6.1.log")
    assert p3 == p1, "free again once the first VM stopped"
    f2.close()
    f3.close()


def test_boot_deadline_scales_with_load_and_the_last_boot() -> None:
    from harness.vm import boot_deadline

    assert boot_deadline(kvm=False, load=0.0, ncpu=2) == 120
    assert boot_deadline(kvm=True, load=0.0, ncpu=2) == 60
    assert boot_deadline(kvm=False, load=4.0, ncpu=2) == 360  # two more VMs' worth of load
    assert boot_deadline(kvm=False, load=0.0, ncpu=2, last_boot=50.0) == 200
    assert boot_deadline(kvm=False, load=40.0, ncpu=2) == 900
    assert boot_deadline(kvm=False, load=9.0, ncpu=2, override="30") == 30
