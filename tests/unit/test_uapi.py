"""wqlab/uapi.py mirrors module/include/uapi/wqlab.h exactly.

A small C program is compiled with gcc against the real header (linux/types.h and
linux/ioctl.h come from the host's linux-libc-dev) and prints every size, offset, constant
and ioctl number; the mirror must agree with each.
"""

from __future__ import annotations

import errno
import re
import shlex
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from wqlab import uapi

REPO = Path(__file__).resolve().parents[2]
UAPI_DIR = REPO / "module" / "include" / "uapi"
HEADER = UAPI_DIR / "wqlab.h"

C_CONSTANTS = {
    "WQLAB_ABI_VERSION": uapi.ABI_VERSION,
    "WQLAB_NAME_LEN": uapi.NAME_LEN,
    "WQLAB_NAME_MAX": uapi.NAME_MAX,
    "WQLAB_LINE_MAX": uapi.LINE_MAX,
    "WQLAB_DELAY_MS_MAX": uapi.DELAY_MS_MAX,
    "WQLAB_SLEEP_MS_MAX": uapi.SLEEP_MS_MAX,
    "WQLAB_SPIN_US_MAX": uapi.SPIN_US_MAX,
    "WQLAB_REQUEUE_MAX": uapi.REQUEUE_MAX,
    "WQLAB_MAX_ACTIVE_MAX": uapi.MAX_ACTIVE_MAX,
    "WQLAB_ID_STATIC_WORK": uapi.ID_STATIC_WORK,
    "WQLAB_ID_STATIC_DWORK": uapi.ID_STATIC_DWORK,
    "WQLAB_IOC_MAGIC": uapi.IOC_MAGIC,
    "WQLAB_ARG_ALL": uapi.ARG_ALL,
    "WQLAB_WQ_ALL": uapi.WQ_ALL,
    "WQLAB_IOC_VERSION": uapi.IOC_VERSION,
    **{f"WQLAB_ARG_{a.name}": int(a) for a in uapi.Arg},
    **{f"WQLAB_WQ_{f.name}": int(f) for f in uapi.WqFlag},
    **{f"WQLAB_BUSY_{b.name}": int(b) for b in uapi.Busy},
    **{f"WQLAB_NR_{n.upper()}": nr for n, nr in uapi.COMMAND_NRS.items()},
    **{f"WQLAB_IOC_{n.upper()}": ioc for n, ioc in uapi.IOCTLS.items()},
    "WQLAB_GENL_VERSION": uapi.GENL_VERSION,
    "WQLAB_GENL_CMD_WORKS": uapi.GENL_CMD_WORKS,
    "WQLAB_GENL_CMD_WORKQUEUES": uapi.GENL_CMD_WORKQUEUES,
    "WQLAB_GENL_CMD_EVENT": uapi.GENL_CMD_EVENT,
    "WQLAB_GENL_DEFERRED_MAX": uapi.GENL_DEFERRED_MAX,
    "WQLAB_A_MAX": uapi.ATTR_MAX,
    **{f"WQLAB_A_{a.name}": int(a) for a in uapi.Attr},
    **{f"WQLAB_EV_{e.name}": int(e) for e in uapi.Event},
}
C_STRINGS = {
    "WQLAB_GENL_NAME": uapi.GENL_NAME,
    "WQLAB_GENL_MCGRP_EVENTS": uapi.GENL_MCGRP_EVENTS,
}


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        '#include "wqlab.h"',
        '#define P(name, v) printf("%s %llu\\n", name, (unsigned long long)(v))',
        "int main(void)",
        "{",
        '\tP("sizeof_cmd", sizeof(struct wqlab_cmd));',
        '\tP("sizeof_version", sizeof(struct wqlab_version));',
    ]
    for fname, _, _ in uapi.CMD_FIELDS:
        lines.append(f'\tP("cmd.{fname}.offset", offsetof(struct wqlab_cmd, {fname}));')
        lines.append(f'\tP("cmd.{fname}.size", sizeof(((struct wqlab_cmd *)0)->{fname}));')
    for fname, _, _ in uapi.VERSION_FIELDS:
        lines.append(f'\tP("version.{fname}.offset", offsetof(struct wqlab_version, {fname}));')
        lines.append(f'\tP("version.{fname}.size", sizeof(((struct wqlab_version *)0)->{fname}));')
    for name in C_CONSTANTS:
        lines.append(f'\tP("{name}", {name});')
    for name in C_STRINGS:
        lines.append(f'\tprintf("{name} %s\\n", {name});')
    lines += ["\treturn 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int | str]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: install gcc (and linux-libc-dev) to check the uapi mirror")
    work = tmp_path_factory.mktemp("uapi")
    src = work / "uapi_dump.c"
    exe = work / "uapi_dump"
    src.write_text(_c_program())
    argv = [
        gcc,
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-I{UAPI_DIR}",
        str(src),
        "-o",
        str(exe),
    ]
    print("$", shlex.join(argv))
    build = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert build.returncode == 0, f"gcc failed:\n{build.stderr}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    values: dict[str, int | str] = {}
    for line in run.stdout.splitlines():
        key, value = line.split()
        values[key] = value if key in C_STRINGS else int(value)
    return values


def test_cmd_struct_size_matches_header(c_values: dict[str, int | str]) -> None:
    assert c_values["sizeof_cmd"] == uapi.CMD_SIZE == 160


def test_cmd_field_offsets_and_sizes_match_header(c_values: dict[str, int | str]) -> None:
    for fname, offset, size in uapi.CMD_FIELDS:
        assert c_values[f"cmd.{fname}.offset"] == offset, fname
        assert c_values[f"cmd.{fname}.size"] == size, fname


def test_cmd_struct_has_no_implicit_padding() -> None:
    end = 0
    for fname, offset, size in uapi.CMD_FIELDS:
        assert offset == end, f"hole before {fname}"
        end = offset + size
    assert end == uapi.CMD_SIZE


def test_struct_format_agrees_with_field_table() -> None:
    assert struct.calcsize(uapi.CMD_FORMAT) == sum(size for _, _, size in uapi.CMD_FIELDS)


def test_version_struct_matches_header(c_values: dict[str, int | str]) -> None:
    assert c_values["sizeof_version"] == uapi.VERSION_SIZE == 8
    for fname, offset, size in uapi.VERSION_FIELDS:
        assert c_values[f"version.{fname}.offset"] == offset, fname
        assert c_values[f"version.{fname}.size"] == size, fname


def test_every_constant_and_ioctl_number_matches_header(c_values: dict[str, int | str]) -> None:
    mismatches = {
        name: (c_values[name], value)
        for name, value in C_CONSTANTS.items()
        if c_values[name] != value
    }
    assert not mismatches, f"(header, mirror): {mismatches}"


def test_header_defines_no_command_missing_from_mirror() -> None:
    text = HEADER.read_text()
    header_nrs = set(re.findall(r"^#define (WQLAB_NR_\w+)", text, re.M))
    header_iocs = set(re.findall(r"^#define (WQLAB_IOC_\w+)", text, re.M))
    mirror_nrs = {f"WQLAB_NR_{n.upper()}" for n in uapi.COMMAND_NRS}
    mirror_iocs = {f"WQLAB_IOC_{n.upper()}" for n in uapi.COMMAND_NRS}
    mirror_iocs |= {"WQLAB_IOC_MAGIC", "WQLAB_IOC_VERSION"}
    assert header_nrs == mirror_nrs
    assert header_iocs == mirror_iocs


def test_ioctl_numbers_are_unique() -> None:
    assert len(set(uapi.IOCTLS.values())) == len(uapi.IOCTLS)
    assert uapi.IOC_VERSION not in uapi.IOCTLS.values()


def test_errno_table_covers_the_doc_block() -> None:
    text = HEADER.read_text()
    doc = text[text.index("DOC: errors") : text.index("*/", text.index("DOC: errors"))]
    documented = set(re.findall(r"^ \* - (E[A-Z0-9]+):", doc, re.M))
    assert {getattr(errno, name) for name in documented} == set(uapi.ERRNOS)


def test_pack_sets_args_bits_only_for_given_arguments() -> None:
    cmd = uapi.unpack_cmd(uapi.pack_cmd("queue_work_on", wq="wqa", cpu=1, id=3, block=True))
    assert cmd.args == uapi.Arg.WQ | uapi.Arg.CPU | uapi.Arg.ID | uapi.Arg.BLOCK
    assert (cmd.wq, cmd.cpu, cmd.id, cmd.block) == ("wqa", 1, 3, 1)
    assert cmd.name == "" and cmd.sleep_ms == 0 and cmd.reserved == (0, 0, 0)


def test_pack_unpack_round_trip_keeps_every_field() -> None:
    cmd = uapi.Cmd(
        ret=-5,
        args=uapi.ARG_ALL,
        id=7,
        cpu=-1,
        flags=int(uapi.WqFlag.UNBOUND | uapi.WqFlag.HIGHPRI),
        max_active=4,
        delay_ms=10,
        sleep_ms=20,
        spin_us=30,
        requeue=40,
        block=1,
        delayed=1,
        reserved=(1, 2, 3),
        wq="a" * 31,
        name="b",
    )
    assert uapi.unpack_cmd(cmd.pack()) == cmd


def test_pack_flags_accepts_names_and_rejects_unknown() -> None:
    cmd = uapi.unpack_cmd(uapi.pack_cmd(name="x", flags="unbound,sysfs"))
    assert cmd.flags == uapi.WqFlag.UNBOUND | uapi.WqFlag.SYSFS
    assert uapi.format_flags(cmd.flags) == "unbound,sysfs"
    with pytest.raises(ValueError, match="bogus"):
        uapi.pack_cmd(name="x", flags="unbound,bogus")


def test_pack_rejects_names_that_do_not_fit() -> None:
    with pytest.raises(ValueError):
        uapi.pack_cmd(wq="x" * uapi.NAME_LEN)


def test_pack_rejects_unknown_command() -> None:
    with pytest.raises(ValueError, match="no_such"):
        uapi.pack_cmd("no_such_command")


def test_unpack_rejects_wrong_size() -> None:
    with pytest.raises(ValueError):
        uapi.unpack_cmd(b"\0" * 64)


def test_netlink_strings_match_header(c_values: dict[str, int | str]) -> None:
    assert {name: c_values[name] for name in C_STRINGS} == C_STRINGS


def test_header_defines_no_netlink_constant_missing_from_mirror() -> None:
    text = HEADER.read_text()
    header = set(re.findall(r"^#define (WQLAB_(?:A|EV|GENL)_\w+)", text, re.M))
    mirror = {
        n
        for n in [*C_CONSTANTS, *C_STRINGS]
        if n.startswith(("WQLAB_A_", "WQLAB_EV_", "WQLAB_GENL_"))
    }
    assert header == mirror


def test_netlink_errnos_cover_the_doc_block() -> None:
    # every "- EXXX:" of the header's DOC: generic netlink is in the mirror's GENL_ERRNOS
    doc = HEADER.read_text().split("DOC: generic netlink", 1)[1].split("*/", 1)[0]
    names = set(re.findall(r"^ \* - (E[A-Z0-9]+):", doc, re.M))
    assert names == {errno.errorcode[e] for e in uapi.GENL_ERRNOS}


def test_every_argument_has_the_attribute_of_its_bit() -> None:
    # the module derives the attribute from the WQLAB_ARG_* bit: number + 1
    for key, bit in uapi.ARG_KEYS.items():
        attr = uapi.arg_attr(key)
        assert 1 << (attr - 1) == bit, key
        assert attr.name == key.upper(), key


def test_every_attribute_has_a_wire_type() -> None:
    assert set(uapi.ATTR_TYPES) == set(uapi.Attr)
    assert max(uapi.Attr) == uapi.ATTR_MAX


def test_netlink_command_numbers_do_not_clash_with_the_table() -> None:
    extra = {uapi.GENL_CMD_WORKS, uapi.GENL_CMD_WORKQUEUES, uapi.GENL_CMD_EVENT}
    assert not extra & set(uapi.COMMAND_NRS.values())
    assert all(0 < nr < 256 for nr in [*uapi.COMMAND_NRS.values(), *extra])
