"""``wqlab shell``'s words and completion, on the command listing a real module gave
(``data/6.1/control-listing.txt``: reading ``control`` on 6.1.0-57-amd64) and the
``features`` file of the same boot. No VM: ``tests/vm/test_shell.py`` types into the real
CLI with pexpect."""

from __future__ import annotations

import base64
import errno
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from wqlab import uapi
from wqlab.client import WqlabClient, parse_kv
from wqlab.errors import GuestTimeoutError, VmLostError
from wqlab.shell import (
    ARG_HELP,
    BUILTINS,
    LineError,
    Shell,
    State,
    candidates,
    explain,
    history_path,
    parse_listing,
    split_line,
)

DATA = Path(__file__).parent / "data" / "6.1"
LISTING = (DATA / "control-listing.txt").read_text()
TABLE = parse_listing(LISTING)
FEATURES = parse_kv((DATA / "features.txt").read_text())
SYSTEM = FEATURES["system_queues"].split(",")


def state(**kw: Any) -> State:
    base: dict[str, Any] = dict(
        queues=["ord", "unb"],
        system_queues=SYSTEM,
        items={0: "work", 1: "delayed", 2: "work", 3: "delayed"},
        cpus=2,
        name_max=17,
    )
    base.update(kw)
    return State(**base)


# --------------------------------------------------------------------------- the listing


def test_listing_names_every_command_of_the_uapi_table_with_known_keys() -> None:
    assert list(TABLE) == list(uapi.COMMAND_NRS)
    for spec in TABLE.values():
        assert set(spec.args) <= set(uapi.ARG_KEYS), spec
        assert spec.help
    q = TABLE["queue_work"]
    assert q.required == ("wq", "id")
    assert q.optional == ("sleep_ms", "spin_us", "requeue", "block")
    assert q.usage() == "queue_work wq id [sleep_ms] [spin_us] [requeue] [block]"
    assert TABLE["flush_scheduled_work"].args == ()


def test_every_argument_key_has_help() -> None:
    assert set(ARG_HELP) == set(uapi.ARG_KEYS)


def test_split_line() -> None:
    assert split_line("queue_work wq=ord id=2") == ("queue_work", {"wq": "ord", "id": "2"})
    with pytest.raises(LineError, match="'id' is not key=value"):
        split_line("schedule_work id")
    with pytest.raises(LineError, match="id= is given twice"):
        split_line("schedule_work id=0 id=1")
    with pytest.raises(LineError, match="no key"):
        split_line("schedule_work =3")


# --------------------------------------------------------------------------- the words


@pytest.mark.parametrize(
    ("line", "err", "words"),
    [
        ("frobnicate x=1", errno.ENOENT, "ENOENT: unknown command 'frobnicate'."),
        ("schedule_wrok id=0", errno.ENOENT, "Did you mean 'schedule_work'"),
        ("queue_work wq=nope id=0", errno.ENOENT, "ENOENT: unknown queue 'nope'."),
        ("queue_work wq=sytem id=0", errno.ENOENT, "Did you mean 'system'"),
        ("queue_work wq=nope id=0", errno.ENOENT, "Your queues: ord, unb; system queues: system,"),
        ("queue_work wq=nope id=0", errno.ENOENT, "Make one with: alloc_workqueue name=nope"),
        ("queue_work wq=ord ids=0", errno.EINVAL, "unknown argument 'ids' for queue_work."),
        ("queue_work wq=ord ids=0", errno.EINVAL, "Did you mean 'id'?"),
        ("schedule_work id=0 cpu=1", errno.EINVAL, "EINVAL: schedule_work does not take cpu=."),
        ("schedule_work id=0 cpu=1", errno.EINVAL, "Usage: schedule_work id [sleep_ms]"),
        ("queue_work id=0", errno.EINVAL, "EINVAL: queue_work needs wq= (workqueue:"),
        ("queue_work_on wq=ord", errno.EINVAL, "needs cpu= and id="),
        ("schedule_work id=99", errno.ENOENT, "no work item 99: the items are 0 (static), 1 (st"),
        ("queue_delayed_work wq=ord id=0", errno.EINVAL, "item 0 is a plain work item;"),
        ("queue_work wq=ord id=3", errno.EINVAL, "item 3 is a delayed item;"),
        ("alloc_workqueue name=x flags=unbond", errno.EINVAL, "Did you mean 'unbound'?"),
        ("schedule_work_on id=0 cpu=7", errno.EINVAL, "cpu 7 does not exist here: this VM has "),
        ("schedule_work id=0 sleep_ms=99999", errno.E2BIG, "E2BIG: sleep_ms=99999 is above its"),
        ("schedule_work id=abc", errno.EINVAL, "id=abc is not a number"),
        ("schedule_work id=0 block=2", errno.EINVAL, "block= is 0 or 1"),
        ("alloc_workqueue name=Bad", errno.EINVAL, "'Bad' is not a valid queue name: [a-z0-9_]"),
        ("alloc_workqueue name=a_very_long_name_x", errno.EINVAL, ", 1 to 17 characters"),
        ("alloc_workqueue name=ord", errno.EEXIST, "EEXIST: a queue named 'ord' exists already"),
        ("work_free id=2", errno.EBUSY, "EBUSY: item pending/running/in use"),
    ],
)  # fmt: skip
def test_a_refusal_says_what_was_wrong(line: str, err: int, words: str) -> None:
    name, args = split_line(line)
    text = explain(TABLE, name, args, err, state())
    assert words in text, text
    assert text.startswith(errno.errorcode[err] + ": ")


def test_without_the_modules_state_the_errno_meaning_is_said() -> None:
    text = explain(TABLE, "queue_work", {"wq": "nope", "id": "0"}, errno.ENOENT, None)
    assert text.startswith("ENOENT: unknown command (text plane), workqueue, or work item id")


def test_no_item_yet_says_how_to_make_one() -> None:
    text = explain(TABLE, "schedule_work", {"id": "5"}, errno.ENOENT, state(items={}))
    assert "there are none: make one with work_new" in text


# --------------------------------------------------------------------------- Tab


def test_tab_completes_commands_and_the_shells_own() -> None:
    assert candidates("queue_w", TABLE) == ["queue_work", "queue_work_on"]
    assert candidates("tim", TABLE) == ["timeline"]
    assert "help" in candidates("", TABLE) and len(candidates("", TABLE)) > 39
    assert candidates("frobnicate ", TABLE) == []


def test_tab_completes_argument_names_not_given_yet() -> None:
    assert candidates("queue_work ", TABLE) == [
        "wq=",
        "id=",
        "sleep_ms=",
        "spin_us=",
        "requeue=",
        "block=",
    ]
    assert candidates("queue_work wq=ord i", TABLE) == ["id="]
    assert candidates("queue_work wq=ord id=1 s", TABLE) == ["sleep_ms=", "spin_us="]


def test_tab_completes_values_from_the_modules_state() -> None:
    st = state()
    assert candidates("queue_work wq=", TABLE, lambda: st) == [
        "wq=ord",
        "wq=unb",
        *[f"wq={q}" for q in SYSTEM],
    ]
    assert candidates("queue_work wq=system_u", TABLE, lambda: st) == ["wq=system_unbound"]
    assert candidates("schedule_work id=", TABLE, lambda: st) == ["id=0", "id=1", "id=2", "id=3"]
    assert candidates("schedule_work_on id=0 cpu=", TABLE, lambda: st) == ["cpu=0", "cpu=1"]
    assert candidates("alloc_workqueue name=x flags=unbound,hi", TABLE) == ["flags=unbound,highpri"]
    assert "flags=unbound" not in candidates("alloc_workqueue flags=unbound,", TABLE)
    assert candidates("work_new delayed=", TABLE) == ["delayed=0", "delayed=1"]
    assert candidates("help queue_work_", TABLE) == ["queue_work_on"]
    assert candidates("help w", TABLE)[:2] == ["work_busy", "work_free"]
    assert "wq" in candidates("help w", TABLE)


def test_history_file_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WQLAB_HISTORY", str(tmp_path / "h"))
    assert history_path() == tmp_path / "h"
    monkeypatch.delenv("WQLAB_HISTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert history_path() == tmp_path / "wqlab" / "shell_history"


# --------------------------------------------------------------------------- the loop


class _NoVmClient:
    """Answers what the shell reads; any command sent fails the test."""

    plane = "debugfs"

    def commands(self) -> str:
        return LISTING

    def submit(self, name: str, /, **args: Any) -> Any:
        raise AssertionError(f"{name} {args} was sent")


class _Session:
    client = _NoVmClient()


def _shell() -> tuple[Shell, list[str]]:
    out: list[str] = []
    return Shell(_Session(), lambda text, style: out.append(text)), out


def test_a_line_that_is_not_key_value_is_refused_before_sending() -> None:
    sh, out = _shell()
    assert sh.execute("queue_work wq ord") is True
    assert out == [
        "'wq' is not key=value: write each argument as key=value (nothing was sent to the "
        "module). Usage: queue_work wq id [sleep_ms] [spin_us] [requeue] [block]"
    ]


def test_help_per_command_and_per_argument() -> None:
    sh, _ = _shell()
    text = sh.help("queue_delayed_work")
    assert text.splitlines()[0] == "queue_delayed_work wq id [delay_ms] [sleep_ms] [spin_us] " + (
        "[requeue] [block]"
    )
    assert "queue_delayed_work(); ret=queued" in text
    assert "delay before the item is queued" in text
    assert sh.help("wq").startswith("wq=: workqueue:")
    assert "taken by: workqueue_set_max_active, destroy_workqueue, queue_work," in sh.help("wq")
    assert "Did you mean 'queue_work'" in sh.help("queue_wrk")
    full = sh.help()
    assert all(name in full for name in uapi.COMMAND_NRS) and all(b in full for b in BUILTINS)


def test_quit_and_comments() -> None:
    sh, out = _shell()
    assert sh.execute("# a comment") is True and sh.execute("   ") is True
    assert sh.execute("exit") is False and sh.execute("quit") is False
    assert out == []


class _IoctlAgent:
    """The agent side of the ioctl plane: records each request, answers ret=1."""

    def __init__(self) -> None:
        self.sent: list[uapi.Cmd] = []

    def submit(self, op: str, **kw: Any) -> Future[Any]:
        assert op == "ioctl"
        cmd = uapi.unpack_cmd(base64.b64decode(kw["arg"]))
        self.sent.append(cmd)
        fut: Future[Any] = Future()
        fut.set_result({"arg": base64.b64encode(replace(cmd, ret=1).pack()).decode()})
        return fut

    def result(self, fut: Future[Any], timeout: float, what: str) -> Any:
        return fut.result(timeout)


def test_on_the_ioctl_plane_numbers_are_packed_and_bad_keys_refused_before_sending() -> None:
    agent = _IoctlAgent()

    class S:
        client = WqlabClient(agent, plane="ioctl")  # type: ignore[arg-type]

    S.client.commands = lambda: LISTING  # type: ignore[method-assign]
    out: list[str] = []
    sh = Shell(S(), lambda text, style: out.append(text))
    sh.execute("queue_work wq=system id=0x2 sleep_ms=5")
    assert out.pop() == "ret=1"
    (cmd,) = agent.sent
    assert (cmd.wq, cmd.id, cmd.sleep_ms) == ("system", 2, 5)
    assert cmd.args == uapi.Arg.WQ | uapi.Arg.ID | uapi.Arg.SLEEP_MS
    sh._state = lambda: None  # type: ignore[method-assign]
    sh.execute("queue_work wq=system ids=0")
    assert out.pop().startswith(
        "refused before sending (ioctl plane): unknown argument 'ids' for queue_work."
    )
    assert len(agent.sent) == 1


class _BrokenClient(_NoVmClient):
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def submit(self, name: str, /, **args: Any) -> Any:
        raise self.exc

    def result(self, fut: Any) -> Any:
        raise AssertionError("submit raised: nothing to wait for")

    def read(self, name: str) -> str:
        raise self.exc


def _shell_with(client: Any) -> tuple[Shell, list[str]]:
    class S:
        pass

    S.client = client  # type: ignore[attr-defined]
    out: list[str] = []
    return Shell(S(), lambda text, style: out.append(text)), out


def test_a_lost_vm_ends_the_shell_with_a_reason() -> None:
    sh, out = _shell_with(_BrokenClient(VmLostError("QEMU exited (status 1)")))
    assert sh.execute("schedule_work id=0") is False
    assert out == ["the VM is gone: QEMU exited (status 1). The shell ends (the console is in "
                   "artifacts/)."]  # fmt: skip


def test_any_other_harness_failure_is_said_and_the_session_goes_on() -> None:
    sh, out = _shell_with(_BrokenClient(GuestTimeoutError("no answer within 60 s")))
    assert sh.execute("works") is True
    assert sh.execute("schedule_work id=0") is True
    assert out == ["works: no answer within 60 s", "schedule_work id=0: no answer within 60 s"]
