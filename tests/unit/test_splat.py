"""The one splat detector (wqlab/splat.py) on real kernel report text, and kmemleak's
report parser (wqlab/kmemleak.py).

Report texts under data/splats/ are the examples of the kernel's own documentation
(linux-source-6.12: dev-tools/kasan.rst, kfence.rst, ubsan.rst, RCU/lockdep-splat.rst,
RCU/stallwarn.rst, admin-guide/bug-hunting.rst) and, named ``debug-*.txt``, reports the
debug kernel line printed in a wqlab VM (``tests/unit/data/splats/README.md``). The
documentation shows them without the console's timestamps, which the detector requires:
:func:`console` adds them as printk does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wqlab import kmemleak
from wqlab.splat import find_splats, is_splat, splat_kind

DATA = Path(__file__).parent / "data"
SPLATS = DATA / "splats"


def console(text: str) -> list[str]:
    """``text`` as console lines: each behind a printk timestamp, unless it has one."""
    return [
        ln if ln.startswith("[") else f"[   12.{i:06d}] {ln}"
        for i, ln in enumerate(text.splitlines())
    ]


# every documented report: the kinds of the splats found in it, in order
DOC_REPORTS = {
    "kasan-slab-out-of-bounds.txt": ["KASAN"],
    "kfence-out-of-bounds.txt": ["KFENCE"],
    "kfence-use-after-free.txt": ["KFENCE"],
    "kfence-invalid-free.txt": ["KFENCE"],
    "ubsan-shift.txt": ["UBSAN"],
    "lockdep-suspicious-rcu.txt": ["lockdep"],
    "rcu-stall.txt": ["RCU stall"],
    "warn-module-put.txt": ["WARNING"],
}


@pytest.mark.parametrize("name", sorted(DOC_REPORTS))
def test_documented_reports_are_splats_of_their_kind(name: str) -> None:
    text = (SPLATS / name).read_text()
    found = find_splats(console(text))
    assert [s.kind for s in found] == DOC_REPORTS[name]
    # the splat keeps the report's body (call trace...) for the failure message
    assert len(found[0].text) > 3
    # the same text without timestamps (not kernel console lines) is no splat
    assert find_splats(text.splitlines()) == []


# reports the debug line printed (tests/debugsplat/capture.py): the kind of the case's
# first splat, and every kind that must be among its splats
DEBUG_REPORTS = {
    "debug-kasan.txt": ("KASAN", {"KASAN"}),
    "debug-kfence.txt": ("KFENCE", {"KFENCE"}),
    "debug-odebug.txt": ("ODEBUG", {"ODEBUG", "WARNING"}),
    "debug-circular.txt": ("lockdep", {"lockdep"}),
    "debug-recursive.txt": ("lockdep", {"lockdep"}),
    "debug-inconsistent.txt": ("lockdep", {"lockdep"}),
    "debug-atomic_sleep.txt": ("atomic sleep", {"atomic sleep"}),
    "debug-sched_atomic.txt": ("scheduling atomic", {"scheduling atomic"}),
    "debug-leak.txt": ("kmemleak", {"kmemleak"}),
    "debug-hung.txt": ("hung task", {"hung task"}),
    "debug-lockup.txt": ("workqueue lockup", {"workqueue lockup"}),
}


# KFENCE and ODEBUG gave no report on the build measured (see README, "The debug line"):
# their kinds are covered by the documentation's examples until capture.py records them
@pytest.mark.parametrize("name", sorted(n for n in DEBUG_REPORTS if (SPLATS / n).exists()))
def test_reports_of_the_debug_line_are_splats_of_their_kind(name: str) -> None:
    found = find_splats((SPLATS / name).read_text().splitlines())
    first, every = DEBUG_REPORTS[name]
    assert found and found[0].kind == first, [s.line for s in found]
    assert every <= {s.kind for s in found}, [s.line for s in found]


def test_every_data_file_is_covered() -> None:
    names = {p.name for p in SPLATS.glob("*.txt")}
    assert names <= set(DOC_REPORTS) | set(DEBUG_REPORTS)
    assert set(DOC_REPORTS) <= names


# first lines of reports as the 6.12 sources print them (printk formats filled in)
REPORT_LINES = [
    ("BUG: KASAN: slab-use-after-free in wqlab_fn+0x4c/0x90 [wqlab]", "KASAN"),
    ("BUG: KFENCE: use-after-free read in wqlab_fn+0x4c/0x90 [wqlab]", "KFENCE"),
    ("UBSAN: array-index-out-of-bounds in module/wqlab_work.c:120:9", "UBSAN"),
    ("WARNING: possible circular locking dependency detected", "lockdep"),
    ("WARNING: inconsistent lock state", "lockdep"),
    ("WARNING: possible recursive locking detected", "lockdep"),
    ("WARNING: possible irq lock inversion dependency detected", "lockdep"),
    ("WARNING: bad unlock balance detected!", "lockdep"),
    ("WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "lockdep"),
    (
        "BUG: sleeping function called from invalid context at kernel/workqueue.c:4200",
        "atomic sleep",
    ),
    ("BUG: scheduling while atomic: kworker/0:1/20/0x00000002", "scheduling atomic"),
    (
        "BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 33s!",
        "workqueue lockup",
    ),
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:20]", "soft lockup"),
    ("watchdog: Watchdog detected hard LOCKUP on cpu 1", "hard lockup"),
    ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 0", "hard lockup"),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", "RCU stall"),
    ("rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... }", "RCU stall"),
    ("INFO: task kworker/0:1:20 blocked for more than 120 seconds.", "hung task"),
    (
        "ODEBUG: free active (active state 0) object: 00000000a1b2c3d4 object type: "
        "work_struct hint: wqlab_fn+0x0/0x90 [wqlab]",
        "ODEBUG",
    ),
    ("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "kmemleak"),
    ("unreferenced object 0xffff888005b3e000 (size 64):", "kmemleak"),
    ("Oops: 0002 [#1] PREEMPT SMP NOPTI", "Oops"),
    (
        "Oops: general protection fault, probably for non-canonical address "
        "0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI",
        "Oops",
    ),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "BUG"),
    ("kernel BUG at kernel/workqueue.c:1234!", "BUG"),
    ("BUG: MAX_LOCKDEP_KEYS too low!", "BUG"),
    ("WARNING: CPU: 1 PID: 5 at kernel/workqueue.c:2345 __queue_work+0x2c1/0x420", "WARNING"),
    ("Kernel panic - not syncing: softlockup: hung tasks", "panic"),
]


@pytest.mark.parametrize(("line", "kind"), REPORT_LINES)
def test_report_first_lines_are_splats(line: str, kind: str) -> None:
    assert splat_kind(f"[  101.234567] {line}") == kind
    assert splat_kind(f"[  101.234567][  T123] {line}") == kind  # CONFIG_PRINTK_CALLER


# normal messages that mention the words, and the debug features' own notices
NOT_SPLATS = [
    "[    0.000000] kasan: KernelAddressSanitizer initialized (generic)",
    "[    0.000000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
    "[    0.000000] ... MAX_LOCKDEP_SUBCLASSES:  8",
    "[    0.101000] kfence: initialized - using 2097152 bytes for 255 objects",
    "[    0.102000] ODEBUG: selftest passed",
    "[    0.103000] ODEBUG: 1224 of 1224 active objects replaced",
    "[    0.104000] ODEBUG: Out of memory. ODEBUG disabled",
    "[    0.200000] rcu: Hierarchical RCU implementation.",
    "[    1.300000] kmemleak: Kernel memory leak detector initialized (mem pool available: 14784)",
    "[    1.400000] kmemleak: Automatic memory scanning thread started",
    "[    2.000000] workqueue: wqlab_fn [wqlab] hogged CPU for >10000us 4 times, consider "
    "switching to WQ_UNBOUND",
    "[    3.000000] INFO: lockdep is turned off.",
    "[    4.000000] wqlab: item 'BUG: KASAN' queued on wqlab_q",
    "[    4.100000] wqlab: refused: WARNING: possible circular locking dependency detected",
    "[    4.200000] wqlab: work hint: UBSAN: and ODEBUG: free active object type: x",
    "[    4.300000] wqlab: 2 new suspected memory leaks would be a bug",
    "[    4.400000] random: crng init done, no Oops here",
    "virtme-ng-init: WARNING: failed to run: systemd-tmpfiles",
    "WARNING: CPU: 1 PID: 5 at kernel/workqueue.c:1 x",  # no timestamp: not the kernel
    "INFO: task kworker/0:1:20 blocked for more than 120 seconds.",
]


@pytest.mark.parametrize("line", NOT_SPLATS)
def test_normal_lines_that_mention_the_words_are_not_splats(line: str) -> None:
    assert not is_splat(line)
    assert splat_kind(line) is None


def test_a_warn_keeps_the_message_printed_before_it() -> None:
    lines = [
        "[    5.000000] wqlab: loaded",
        "[    5.100000] ODEBUG: assert_init not available (active state 0) object: 0000000012345678"
        " object type: timer_list hint: 0x0",
        "[    5.100001] WARNING: CPU: 0 PID: 171 at lib/debugobjects.c:629 "
        "debug_print_object+0xe3/0x140",
        "[    5.100002] Modules linked in: wqlab",
    ]
    found = find_splats(lines)
    assert [s.kind for s in found] == ["ODEBUG", "WARNING"]
    assert found[1].text[0] == lines[1]  # WARN(cond, "ODEBUG: ...") prints its message first
    assert found[1].text[-1] == lines[3]


# kmemleak ---------------------------------------------------------------------------
def test_kmemleak_parser_reads_the_documented_report() -> None:
    leaks = kmemleak.parse((DATA / "kmemleak-doc.txt").read_text())
    assert len(leaks) == 1
    lk = leaks[0]
    assert (lk.address, lk.size, lk.comm, lk.pid) == ("0xffff89862ca702e8", 32, "modprobe", 2088)
    assert lk.backtrace[0] == "0xffffffffc01d2036"  # a module unloaded before the read
    assert lk.backtrace[1] == "do_one_initcall+0x41/0x1df"
    assert len(lk.backtrace) == 7
    assert lk.unloaded and not lk.points_into("wqlab")
    assert kmemleak.module_leaks(leaks, "wqlab") == leaks
    assert kmemleak.module_leaks(leaks, "wqlab", unloaded=False) == []
    assert kmemleak.parse("") == []


def test_kmemleak_parser_reads_what_the_debug_line_reported() -> None:
    path = DATA / "kmemleak-debug.txt"
    if not path.exists():
        pytest.skip("kmemleak-debug.txt not recorded (tests/debugsplat/capture.py)")
    leaks = kmemleak.parse(path.read_text())
    mine = kmemleak.module_leaks(leaks, "debugsplat", unloaded=False)
    # debugsplat_leak() drops three 128-byte objects while the module is loaded
    assert [lk.size for lk in mine].count(128) >= 1, kmemleak.format_leaks(leaks)
    assert all(any("debugsplat_leak" in f for f in lk.backtrace) for lk in mine)
    assert all(lk.comm == "insmod" for lk in mine)
    # 6.12 prints bare frames; debugsplat_init() is __init code, freed after the load, so
    # its frame is a bare module-space address even while the module is loaded
    assert mine[0].backtrace[:3] == (
        mine[0].backtrace[0],
        "debugsplat_leak+0x41/0x70 [debugsplat]",
        mine[0].backtrace[2],
    )
    assert mine[0].backtrace[2].startswith("0xffffffffc") and mine[0].unloaded
    assert not kmemleak.module_leaks(leaks, "wqlab", unloaded=False)


def test_kmemleak_attributes_symbolised_frames_to_their_module() -> None:
    text = "\n".join(
        [
            "unreferenced object 0xffff888005b3e000 (size 64):",
            '  comm "insmod", pid 171, jiffies 4294893513',
            "  hex dump (first 32 bytes):",
            "    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................",
            "  backtrace (crc 1f2a3b4c):",
            "    [<ffffffff8139a5e2>] __kmalloc_cache_noprof+0x2d2/0x3a0",
            "    [<ffffffffc0201065>] wqlab_alloc+0x65/0x130 [wqlab]",
            "    [<ffffffff81002a7a>] do_one_initcall+0xda/0x480",
            "unreferenced object 0xffff888005b3f000 (size 32):",
            '  comm "swapper/0", pid 1, jiffies 4294667296',
            "  backtrace (crc 0):",
            "    [<ffffffff8139a5e2>] __kmalloc_cache_noprof+0x2d2/0x3a0",
            "    [<ffffffff81234567>] acpi_os_map_memory+0x10/0x20",
        ]
    )
    leaks = kmemleak.parse(text)
    assert [lk.points_into("wqlab") for lk in leaks] == [True, False]
    assert [lk.unloaded for lk in leaks] == [False, False]
    assert kmemleak.module_leaks(leaks, "wqlab") == leaks[:1]
    assert "wqlab_alloc" in kmemleak.format_leaks(leaks[:1])


class _FakeAgent:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.writes: list[tuple[str, str]] = []

    def exists(self, path: str) -> bool:
        return path in self.files

    def write(self, path: str, data: str) -> int:
        self.writes.append((path, data))
        return len(data)


def test_kmemleak_auto_scan_is_turned_off_only_where_kmemleak_exists() -> None:
    with_kmemleak = _FakeAgent({kmemleak.KMEMLEAK: ""})
    assert kmemleak.manual(with_kmemleak)  # type: ignore[arg-type]
    assert with_kmemleak.writes == [(kmemleak.KMEMLEAK, "scan=off")]
    without = _FakeAgent({})
    assert not kmemleak.manual(without)  # type: ignore[arg-type]
    assert without.writes == []
