"""docs/commands.md, the module's command table (module/wqlab_cmds.c), its uapi header
and wqlab.uapi name the same commands with the same arguments and errnos: the contract
cannot drift from the code without a failing test. Pure text checks, no VM."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from wqlab import uapi
from wqlab.client import may_block

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "commands.md").read_text()
CMDS_C = (ROOT / "module" / "wqlab_cmds.c").read_text()
UAPI_H = (ROOT / "module" / "include" / "uapi" / "wqlab.h").read_text()

BEHAVIOUR = ("sleep_ms", "spin_us", "requeue", "block")
MACROS = {
    "A_ID": ("id",),
    "A_WQ": ("wq",),
    "A_NAME": ("name",),
    "A_CPU": ("cpu",),
    "A_FLAGS": ("flags",),
    "A_MAXACT": ("max_active",),
    "A_DELAY": ("delay_ms",),
    "A_DELAYED": ("delayed",),
    "A_BEH": BEHAVIOUR,
    "0": (),
}


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert m, f"no '## {title}' section in docs/commands.md"
    return m.group(1)


def doc_commands() -> dict[str, tuple[set[str], set[str]]]:
    """command → (required, optional) argument keys, from the "Commands" table."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for row in re.findall(r"^\| `(\w+)` \|([^|]*)\|", _section("Commands"), re.M):
        name, cell = row
        words = " ".join(re.findall(r"`([^`]*)`", cell)).split()
        req = {w for w in words if not w.startswith("[")}
        opt: set[str] = set()
        for w in words:
            if w.startswith("["):
                key = w.strip("[]")
                opt |= set(BEHAVIOUR) if key == "behaviour" else {key}
        out[name] = (req, opt)
    return out


def code_commands() -> dict[str, tuple[int, set[str], set[str]]]:
    """command → (ioctl nr, required, optional) from the WQLAB_CMD() table."""
    nrs = {
        m[0]: int(m[1], 16)
        for m in re.findall(r"#define\s+WQLAB_NR_(\w+)\s+(0x[0-9a-fA-F]+)", UAPI_H)
    }
    body = CMDS_C[CMDS_C.index("const struct wqlab_cmd_desc wqlab_cmds[] = {") :]
    out = {}
    for name, nr, allowed, required in re.findall(
        r"WQLAB_CMD(?:_WAITS)?\((\w+),\s*(\w+),\s*([^,]+),\s*([^,]+),", body
    ):

        def keys(expr: str) -> set[str]:
            return {k for part in expr.split("|") for k in MACROS[part.strip()]}

        req = keys(required)
        out[name] = (nrs[nr], req, keys(allowed) - req)
    return out


def test_doc_table_code_table_and_uapi_name_the_same_commands() -> None:
    doc, code = doc_commands(), code_commands()
    assert len(code) == len(uapi.COMMAND_NRS) == 39
    assert set(doc) == set(code) == set(uapi.COMMAND_NRS)


def test_commands_that_wait_are_the_ones_the_client_and_the_docs_name() -> None:
    # the table's WQLAB_CMD_WAITS entries: the netlink plane defers them, the guest agent
    # runs them off its reading thread (client.may_block), the docs list them
    body = CMDS_C[CMDS_C.index("const struct wqlab_cmd_desc wqlab_cmds[] = {") :]
    waits = set(re.findall(r"WQLAB_CMD_WAITS\((\w+),", body))
    assert len(waits) == 10
    assert waits == {name for name in uapi.COMMAND_NRS if may_block(name)}
    doc = _section("Generic netlink")
    listed = re.search(r"\*\*Commands that wait\.\*\*(.*?)\n\n", doc, re.S)
    assert listed, "no **Commands that wait.** paragraph under Generic netlink"
    assert set(re.findall(r"`(\w+)`", listed.group(1))) >= waits


@pytest.mark.parametrize("name", sorted(uapi.COMMAND_NRS))
def test_command_arguments_and_numbers_match(name: str) -> None:
    nr, req, opt = code_commands()[name]
    assert nr == uapi.COMMAND_NRS[name], "ioctl number: header vs wqlab.uapi"
    assert doc_commands()[name] == (req, opt), "arguments: docs/commands.md vs wqlab_cmds.c"
    assert req | opt <= set(uapi.ARG_KEYS)


def test_every_documented_errno_is_in_the_uapi_errno_table() -> None:
    names = re.findall(r"^\| `(E[A-Z0-9]+)` \((\d+)\)", _section("Errors"), re.M)
    assert len(names) >= 12
    for name, number in names:
        assert getattr(errno, name) == int(number), f"{name} is not {number}"
    documented = {getattr(errno, n) for n, _ in names}
    # ENOMEM (allocation) needs no explanation in the ABI table; every other one does
    assert documented - {errno.ENOMEM} == set(uapi.ERRNOS), (
        f"doc only: {documented - set(uapi.ERRNOS)}, uapi only: {set(uapi.ERRNOS) - documented}"
    )


def test_documented_limits_match_the_uapi_constants() -> None:
    args = _section("Arguments")
    assert f"≤ {uapi.DELAY_MS_MAX} (`-E2BIG`)" in args
    assert f"≤ {uapi.SPIN_US_MAX} (`-E2BIG`)" in args
    assert f"≤ {uapi.REQUEUE_MAX} (`-E2BIG`)" in args
    assert f"1..`WQ_MAX_ACTIVE` ({uapi.MAX_ACTIVE_MAX})" in args
    # the name's limit depends on the kernel (features wq_name_max), capped by the uapi field
    assert "`[a-z0-9_]{1,N}`" in args and f"{uapi.NAME_MAX} from 6.8" in args
    assert f"text line of {uapi.LINE_MAX} bytes or more" in _section("Errors")


def test_every_documented_system_queue_name_fits_the_wq_field() -> None:
    """ABI 1 failed this (32-byte fields); ABI 2 has 48."""
    names = re.findall(r"`(system\w*)`", _section("Arguments"))
    assert "system_freezable_power_efficient" in names
    too_long = [n for n in names if len(n) >= uapi.NAME_LEN]
    assert not too_long, f"longer than {uapi.NAME_LEN - 1} bytes: {too_long}"


def test_netlink_section_names_every_attribute_event_and_errno() -> None:
    text = _section("Generic netlink")
    for a in uapi.Attr:
        assert f"| `WQLAB_A_{a.name}` | {int(a)} |" in text, a
    for e in uapi.Event:
        assert f"`WQLAB_EV_{e.name}` ({int(e)})" in text, e
    for err in uapi.GENL_ERRNOS:
        assert f"| `{errno.errorcode[err]}` |" in text, errno.errorcode[err]
    for key, bit in uapi.ARG_KEYS.items():  # the policy column: the documented ranges
        row = re.search(rf"^\| `WQLAB_A_{key.upper()}` \|.*$", text, re.M)
        assert row and bit, key
    for key, limit in (("DELAY_MS", uapi.DELAY_MS_MAX), ("SLEEP_MS", uapi.SLEEP_MS_MAX),
                       ("SPIN_US", uapi.SPIN_US_MAX), ("REQUEUE", uapi.REQUEUE_MAX),
                       ("MAX_ACTIVE", uapi.MAX_ACTIVE_MAX)):  # fmt: skip
        assert re.search(rf"^\| `WQLAB_A_{key}` \|.*\| 0 \.\. {limit} \|$", text, re.M), key


def test_one_version_number_each() -> None:
    """The package and the module give one version (MODULE_VERSION repeats
    wqlab.__version__); docs, header and the Python mirror give one ABI version."""
    import wqlab

    main_c = (ROOT / "module" / "wqlab_main.c").read_text()
    m = re.search(r'^MODULE_VERSION\("([^"]+)"\);', main_c, re.M)
    assert m and m.group(1) == wqlab.__version__, (m and m.group(1), wqlab.__version__)
    abi = re.search(r"^#define WQLAB_ABI_VERSION\s+(\d+)", UAPI_H, re.M)
    assert abi, "no WQLAB_ABI_VERSION in the uapi header"
    doc = re.search(r"returns the ABI version \(currently (\d+)", DOC)
    assert doc and doc.group(1) == abi.group(1), "docs/commands.md's ABI version"
    assert uapi.ABI_VERSION == int(abi.group(1))
    genl = re.search(r"^#define WQLAB_GENL_VERSION\s+(\d+)", UAPI_H, re.M)
    doc_genl = re.search(r"the family `wqlab` \(version (\d+)\)", DOC)
    assert genl and doc_genl and genl.group(1) == doc_genl.group(1)
