"""``wqlab shell``: an interactive prompt to the module, for a class.

What a student gets: help for each command and argument, Tab completion of commands,
argument names and their values (queues, item ids, flags, CPUs) from the module's own
listing and state, a history kept across sessions, and a refusal that says what was wrong
in words (unknown command, unknown queue ``nope``, which argument) beside the errno name
the module returned; the session goes on after any error.

The parts are pure where they can be (unit-tested without a VM):

* :func:`parse_listing`: the module's command listing (reading ``control``:
  ``NAME key [key] ... # description``) → a :class:`CommandSpec` per command;
* :func:`split_line`: a typed line → command and ``key=value`` arguments, or a
  :class:`LineError`;
* :func:`explain`: a command, its arguments, the errno and the module's state
  (:class:`State`) → the sentence to print;
* :func:`candidates`: the text before the cursor → what Tab offers.

:class:`Shell` ties them to a live :class:`~wqlab.session.Session` and ``readline``.
"""

from __future__ import annotations

import difflib
import errno as errno_mod
import os
import re
import signal
import struct
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import uapi
from .client import WqlabClient, WqlabCommandError, may_block
from .errors import HarnessError, VmLostError

__all__ = [
    "ARG_HELP",
    "BUILTINS",
    "CommandSpec",
    "LineError",
    "Shell",
    "State",
    "candidates",
    "explain",
    "history_path",
    "parse_listing",
    "split_line",
]

ARG_HELP: Mapping[str, str] = {
    "id": "work item id: 0 = the static DECLARE_WORK item, 1 = the static "
    "DECLARE_DELAYED_WORK item, 2.. = items made by work_new",
    "wq": "workqueue: one you created (alloc_workqueue name=...) or a system queue "
    "(system, system_highpri, system_unbound, ...)",
    "name": "name of a new workqueue: [a-z0-9_], not starting with 'system'; "
    "the kernel calls it wqlab_<name>",
    "cpu": "CPU number; must be online",
    "flags": "comma-separated: " + ",".join(uapi.FLAG_NAMES),
    "max_active": f"0 = the default, 1..{uapi.MAX_ACTIVE_MAX}",
    "delay_ms": f"delay before the item is queued, ms (at most {uapi.DELAY_MS_MAX})",
    "sleep_ms": f"the work function sleeps this long, ms (at most {uapi.SLEEP_MS_MAX})",
    "spin_us": f"the work function busy-waits this long, µs (at most {uapi.SPIN_US_MAX})",
    "requeue": f"the work function queues itself again this many times (at most "
    f"{uapi.REQUEUE_MAX})",
    "block": "1: the work function blocks until 'release id=N'",
    "delayed": "work_new only: 1 makes a delayed_work item",
}
"""What each argument key means (every key of :data:`wqlab.uapi.ARG_KEYS`)."""

_MAXIMA = {
    "delay_ms": uapi.DELAY_MS_MAX,
    "sleep_ms": uapi.SLEEP_MS_MAX,
    "spin_us": uapi.SPIN_US_MAX,
    "requeue": uapi.REQUEUE_MAX,
    "max_active": uapi.MAX_ACTIVE_MAX,
}

BUILTINS: Mapping[str, str] = {
    "help": "help [COMMAND|ARGUMENT]: the commands, or one command's or argument's help",
    "trace": "what ran since the last 'clear': one row per execution of a wqlab item",
    "timeline": "a per-CPU picture in text of what ran when",
    "clear": "empty the trace",
    "works": "the module's work items and their state",
    "workqueues": "the queues you created",
    "stats": "the module's counters",
    "features": "what this kernel has (system queues, APIs)",
    "png": "png FILE: save a PNG timeline of the trace (lanes per CPU and worker)",
    "perfetto": "perfetto FILE: save a Perfetto trace of it (open it in ui.perfetto.dev)",
    "history": "the lines typed so far (also across sessions)",
    "quit": "leave the shell (or exit, or Ctrl-D)",
}
"""The shell's own commands (not sent to the module)."""
_ALIASES = {"exit": "quit"}


# --------------------------------------------------------------------------- the listing


@dataclass(frozen=True)
class CommandSpec:
    """One module command as the listing gives it."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    help: str

    @property
    def args(self) -> tuple[str, ...]:
        return self.required + self.optional

    def usage(self) -> str:
        return " ".join([self.name, *self.required, *(f"[{k}]" for k in self.optional)])


def parse_listing(text: str) -> dict[str, CommandSpec]:
    """The module's command listing → ``{name: CommandSpec}`` (in the listing's order)."""
    out: dict[str, CommandSpec] = {}
    for line in text.splitlines():
        head, _, desc = line.partition(" # ")
        words = head.split()
        if not words:
            continue
        req = tuple(w for w in words[1:] if not w.startswith("["))
        opt = tuple(w.strip("[]") for w in words[1:] if w.startswith("["))
        out[words[0]] = CommandSpec(words[0], req, opt, desc.strip())
    return out


# --------------------------------------------------------------------------- lines


class LineError(ValueError):
    """A line that cannot be sent as a command (said in words; nothing was sent)."""


def split_line(line: str) -> tuple[str, dict[str, str]]:
    """``queue_work wq=ord id=2`` → ``("queue_work", {"wq": "ord", "id": "2"})``."""
    name, *words = line.split()
    args: dict[str, str] = {}
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise LineError(f"'{w}' is not key=value: write each argument as key=value")
        if not key:
            raise LineError(f"'{w}' has no key before '='")
        if key in args:
            raise LineError(f"{key}= is given twice; give each argument once")
        args[key] = value
    return name, args


# --------------------------------------------------------------------------- explanations


@dataclass
class State:
    """What the module holds now, read when a command failed or Tab wants values."""

    queues: list[str] = field(default_factory=list)  # created by the student
    system_queues: list[str] = field(default_factory=list)
    items: dict[int, str] = field(default_factory=dict)  # id → kind ("work", "delayed")
    cpus: int | None = None  # nr_cpu_ids
    name_max: int | None = None

    @classmethod
    def read(cls, client: WqlabClient) -> State:
        feats = client.features()
        items: dict[int, str] = {}
        for w in client.works():
            if w.get("id", "").isdigit():
                items[int(w["id"])] = w.get("kind", "?")
        return cls(
            queues=[q["name"] for q in client.workqueues() if "name" in q],
            system_queues=[q for q in feats.get("system_queues", "").split(",") if q],
            items=items,
            cpus=int(feats["nr_cpu_ids"]) if feats.get("nr_cpu_ids", "").isdigit() else None,
            name_max=int(feats["wq_name_max"]) if feats.get("wq_name_max", "").isdigit() else None,
        )


def _close(word: str, choices: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    near = _close(word, choices)
    if not near:
        return ""
    return " Did you mean " + " or ".join(f"'{n}'" for n in near) + "?"


def _number(text: str) -> int | None:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        return None


def _item_words(state: State) -> str:
    if not state.items:
        return "there are none: make one with work_new"
    words = []
    for i, kind in sorted(state.items.items()):
        what = {0: " (static)", 1: " (static, delayed)"}.get(
            i, " (delayed)" if kind == "delayed" else ""
        )
        words.append(f"{i}{what}")
    return "the items are " + ", ".join(words)


def _wants_delayed(name: str) -> bool | None:
    if "delayed" in name:
        return True
    if name.startswith(("schedule_work", "queue_work", "cancel_work", "disable_work")) or name in (
        "enable_work",
        "enable_and_queue_work",
    ):
        return False
    return None


def explain(
    table: Mapping[str, CommandSpec],
    name: str,
    args: Mapping[str, str],
    err: int | None,
    state: State | None = None,
) -> str:
    """Say in words why ``name args`` failed with ``err`` (the errno's name first).

    The module's errno is the verdict; this finds the likeliest reason from the listing
    and the module's state, and falls back on the errno's documented meaning."""
    ename = errno_mod.errorcode.get(err or 0, str(err))
    why = _why(table, name, args, err, state)
    return f"{ename}: {why}"


def _why(
    table: Mapping[str, CommandSpec],
    name: str,
    args: Mapping[str, str],
    err: int | None,
    state: State | None,
) -> str:
    spec = table.get(name)
    if spec is None:
        return (
            f"unknown command '{name}'.{_did_you_mean(name, [*table, *BUILTINS])} "
            "Type 'help' for the commands (Tab completes them)."
        )
    usage = f"Usage: {spec.usage()}"
    for key in args:
        if key not in spec.args:
            hint = _did_you_mean(key, spec.args)
            if not hint:
                takes = ", ".join(spec.args) if spec.args else "no argument"
                hint = f" It takes {takes}."
            if key in uapi.ARG_KEYS and not _close(key, spec.args):
                return f"{name} does not take {key}=.{hint} {usage}"
            return f"unknown argument '{key}' for {name}.{hint} {usage}"
    missing = [k for k in spec.required if k not in args]
    if missing:
        need = " and ".join(f"{k}=" for k in missing)
        return f"{name} needs {need} ({'; '.join(ARG_HELP.get(k, k) for k in missing)}). {usage}"
    for key, value in args.items():
        if key in ("wq", "name", "flags"):
            continue
        n = _number(value)
        if n is None or (n < 0 and key != "cpu"):
            return f"{key}={value} is not a number ({ARG_HELP.get(key, key)})."
        if key in _MAXIMA and n > _MAXIMA[key]:
            return f"{key}={value} is above its maximum, {_MAXIMA[key]}."
        if key in ("block", "delayed") and n > 1:
            return f"{key}= is 0 or 1, not {value}."
    if "flags" in args:
        for f in args["flags"].split(","):
            if f not in uapi.FLAG_NAMES:
                return (
                    f"unknown flag '{f}'.{_did_you_mean(f, list(uapi.FLAG_NAMES))} "
                    f"Flags: {','.join(uapi.FLAG_NAMES)} (comma-separated)."
                )
    if state is not None:
        if "wq" in args and err == errno_mod.ENOENT:
            wq = args["wq"]
            every = [*state.queues, *state.system_queues]
            if wq not in every:
                yours = ", ".join(state.queues) if state.queues else "none yet"
                return (
                    f"unknown queue '{wq}'.{_did_you_mean(wq, every)} Your queues: {yours}; "
                    f"system queues: {', '.join(state.system_queues)}. "
                    f"Make one with: alloc_workqueue name={wq}"
                )
        if "id" in args:
            n = _number(args["id"])
            if n is not None and n not in state.items and err == errno_mod.ENOENT:
                return f"no work item {n}: {_item_words(state)}."
            kind = state.items.get(n) if n is not None else None
            want = _wants_delayed(name)
            if err == errno_mod.EINVAL and kind is not None and want is not None:
                if want and kind != "delayed":
                    return (
                        f"item {n} is a plain work item; {name} needs a delayed one "
                        "(item 1, or work_new delayed=1)."
                    )
                if not want and kind == "delayed":
                    return (
                        f"item {n} is a delayed item; {name} needs a plain one "
                        f"(item 0, or work_new); use the *delayed_work* commands for it."
                    )
        if "cpu" in args and err == errno_mod.EINVAL and state.cpus is not None:
            n = _number(args["cpu"])
            if n is not None and not 0 <= n < state.cpus:
                return f"cpu {n} does not exist here: this VM has CPUs 0-{state.cpus - 1}."
        if "name" in args:
            qname = args["name"]
            if err == errno_mod.EEXIST:
                return f"a queue named '{qname}' exists already ('workqueues' lists them)."
            limit = state.name_max or uapi.NAME_MAX
            if err == errno_mod.EINVAL and (
                not re.fullmatch(rf"[a-z0-9_]{{1,{limit}}}", qname) or qname.startswith("system")
            ):
                return (
                    f"'{qname}' is not a valid queue name: [a-z0-9_], 1 to {limit} characters, "
                    "not starting with 'system'."
                )
    meaning = uapi.ERRNOS.get(err or 0) or (os.strerror(err) if err else "failed")
    return f"{meaning}. {usage}"


# --------------------------------------------------------------------------- completion


def candidates(
    before_cursor: str,
    table: Mapping[str, CommandSpec],
    state: Callable[[], State] | None = None,
) -> list[str]:
    """What Tab offers for the word being typed at the end of ``before_cursor``: commands
    (and the shell's own) for the first word, then the command's argument names not yet
    given (``key=``), then values after ``key=``: queues for ``wq=``, items for ``id=``,
    flag names for ``flags=`` (after commas too), CPUs for ``cpu=``."""
    words = before_cursor.split(" ")
    word = words[-1]
    done = [w for w in words[:-1] if w]
    if not done:
        return sorted(n for n in [*table, *BUILTINS, *_ALIASES] if n.startswith(word))
    cmd = done[0]
    if cmd == "help" and len(done) == 1:
        return sorted(n for n in [*table, *BUILTINS, *uapi.ARG_KEYS] if n.startswith(word))
    spec = table.get(cmd)
    if spec is None:
        return []
    key, eq, value = word.partition("=")
    if not eq:
        given = {w.partition("=")[0] for w in done[1:]}
        return [f"{k}=" for k in spec.args if k not in given and k.startswith(word)]
    values: list[str] = []
    if key == "flags":
        head, _, last = value.rpartition(",")
        chosen = set(head.split(",")) if head else set()
        prefix = f"{head}," if head else ""
        values = [prefix + f for f in uapi.FLAG_NAMES if f not in chosen and f.startswith(last)]
        return [f"flags={v}" for v in values]
    if key in ("block", "delayed"):
        values = ["0", "1"]
    elif state is not None and key in ("wq", "id", "cpu"):
        st = state()
        if key == "wq":
            values = [*st.queues, *st.system_queues]
        elif key == "id":
            values = [str(i) for i in sorted(st.items)]
        elif st.cpus is not None:
            values = [str(c) for c in range(st.cpus)]
    return [f"{key}={v}" for v in values if v.startswith(value)]


# --------------------------------------------------------------------------- history


def history_path() -> Path:
    """``$WQLAB_HISTORY``, else ``$XDG_STATE_HOME/wqlab/shell_history`` (default
    ``~/.local/state``)."""
    env = os.environ.get("WQLAB_HISTORY")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "wqlab" / "shell_history"


HISTORY_LENGTH = 1000
# a command that may wait (flush, drain, *_sync) still running after this long says so
WAIT_NOTE_S = 1.0


# --------------------------------------------------------------------------- the shell


Say = Callable[[str, str], None]


class Shell:
    """The prompt loop over a live session (``say(text, style)`` prints)."""

    PROMPT = "wqlab> "

    def __init__(self, session: Any, say: Say) -> None:
        self.s = session
        self.client: WqlabClient = session.client
        self.say = say
        self.table = parse_listing(self.client.commands())
        unknown = set(self.table) - set(uapi.COMMAND_NRS)
        if unknown:  # a module newer than this harness: still usable, but say so
            say(f"(the module lists commands this wqlab does not know: {sorted(unknown)})", "")
        self._readline: Any = None

    # readline -------------------------------------------------------------------------
    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # pragma: no cover - CPython on Linux has it
            return
        self._readline = readline
        readline.set_completer_delims(" \t\n")
        readline.set_completer(self._complete)
        if "libedit" in (readline.__doc__ or ""):  # pragma: no cover - macOS
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        readline.set_history_length(HISTORY_LENGTH)
        try:
            readline.read_history_file(history_path())
        except OSError:
            pass

    def _save_history(self) -> None:
        if self._readline is None:
            return
        path = history_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._readline.write_history_file(path)
        except OSError as e:
            self.say(f"(history not saved to {path}: {e.strerror})", "")

    def _complete(self, text: str, n: int) -> str | None:
        rl = self._readline
        try:
            before = rl.get_line_buffer()[: rl.get_endidx()]
            opts = candidates(before, self.table, lambda: State.read(self.client))
        except Exception:  # a completion must never kill the prompt
            return None
        if len(opts) == 1 and not opts[0].endswith("=") and not opts[0].startswith("flags="):
            opts = [opts[0] + " "]  # a finished word: the cursor moves on to the next one
        return opts[n] if n < len(opts) else None

    # the loop -------------------------------------------------------------------------
    def run(self) -> int:
        interactive = os.isatty(0)
        if interactive:
            self._setup_readline()
            # Ctrl-C is the student's way out of a waiting command. Python keeps SIGINT
            # ignored when it starts ignored (a shell's background job, nohup, some CI
            # runners), and then nothing could interrupt a flush: take it back.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.say(
            "wqlab shell: type module commands, e.g. 'schedule_work id=0'. "
            "'help' lists them, 'help CMD' explains one, Tab completes, 'trace' and "
            "'timeline' show what ran, 'quit' leaves.",
            "",
        )
        try:
            while True:
                try:
                    line = input(self.PROMPT)
                except EOFError:
                    if interactive:
                        print()
                    break
                except KeyboardInterrupt:
                    print("^C")
                    continue
                try:
                    if not self.execute(line):
                        break
                except KeyboardInterrupt:
                    self.say("interrupted (a command already sent may still run in the VM)", "red")
        finally:
            self._save_history()
        return 0

    def execute(self, line: str) -> bool:
        """Run one line; False when the shell should end (quit, or the VM is gone). Any
        other failure is said and the session goes on."""
        try:
            return self._execute(line)
        except VmLostError as e:
            self.say(f"the VM is gone: {e}. The shell ends (the console is in artifacts/).", "red")
            return False
        except HarnessError as e:
            self.say(f"{line.strip()}: {e}", "red")
            return True

    def _execute(self, line: str) -> bool:
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        word, _, rest = line.partition(" ")
        word = _ALIASES.get(word, word)
        if word in BUILTINS:
            return self._builtin(word, rest.strip())
        try:
            name, args = split_line(line)
        except LineError as e:
            spec = self.table.get(line.split()[0])
            usage = f" Usage: {spec.usage()}" if spec else ""
            self.say(f"{e} (nothing was sent to the module).{usage}", "red")
            return True
        sent: dict[str, Any] = dict(args)
        if self.client.plane != "debugfs":  # typed planes want numbers; the text one parses
            sent = {k: v if k in ("wq", "name", "flags") else _number(v) for k, v in args.items()}
        try:
            # submit/result, not cmd(): a student's 'timeout=' is an argument, not cmd()'s
            fut = self.client.submit(name, **sent)
            if may_block(name) and not futures.wait([fut], timeout=WAIT_NOTE_S).done:
                self.say(f"waiting for {name} (Ctrl-C gives the prompt back)", "yellow")
            r = self.client.result(fut)
        except (TypeError, ValueError, struct.error):  # the ioctl struct cannot carry it
            why = _why(self.table, name, args, errno_mod.EINVAL, self._state())
            self.say(f"refused before sending ({self.client.plane} plane): {why}", "red")
            return True
        except WqlabCommandError as e:
            state = self._state()
            self.say(explain(self.table, name, args, e.errno, state), "red")
            return True
        extra = " ".join(f"{k}={v}" for k, v in r.fields.items())
        self.say(f"ret={r.ret} {extra}".rstrip(), "green")
        return True

    def _state(self) -> State | None:
        try:
            return State.read(self.client)
        except VmLostError:
            raise
        except HarnessError:
            return None

    def _builtin(self, word: str, rest: str) -> bool:
        if word == "quit":
            return False
        if word == "help":
            self.say(self.help(rest), "")
        elif word in ("works", "workqueues", "stats", "features"):
            text = self.client.read(word).rstrip()
            self.say(text or f"(no {word})", "")
        elif word == "clear":
            self.s.trace.clear()
            self.say("trace cleared", "")
        elif word in ("trace", "timeline"):
            from .report import format_lifecycles, format_timeline

            lcs = self._lifecycles()
            if word == "trace":
                self.say(f"{len(lcs)} executions of wqlab items (ms from the first event)", "")
                self.say(format_lifecycles(lcs), "")
            else:
                self.say(format_timeline(lcs, by="cpu"), "")
        elif word in ("png", "perfetto"):
            if not rest:
                self.say(f"usage: {word} FILE", "red")
                return True
            try:
                self.say(self._save(word, rest), "")
            except OSError as e:
                self.say(f"{word}: {e}", "red")
        elif word == "history":
            self.say(self._history(), "")
        return True

    def _lifecycles(self) -> list[Any]:
        from .lifecycle import build_lifecycles
        from .trace import parse

        return [
            lc
            for lc in build_lifecycles(parse(self.s.trace.read()))
            if lc.function is not None and lc.function.module == "wqlab"
        ]

    def _save(self, what: str, path: str) -> str:
        lcs = self._lifecycles()
        if what == "png":
            from .plot import save_png, timeline_model

            model = timeline_model(lcs, title=f"wqlab shell on {self.s.kernel.version}")
            save_png(model, path)
            return f"wrote {path}: {len(model.lanes)} lanes, {len(model.bars)} executions"
        from .pftrace import perfetto_trace, read_back

        data = perfetto_trace(lcs)
        Path(path).write_bytes(data)
        return f"wrote {path}: {read_back(data).summary()}"

    def _history(self) -> str:
        rl = self._readline
        if rl is None:
            return "(no history: the input is not a terminal)"
        n = rl.get_current_history_length()
        first = max(1, n - 19)
        return "\n".join(f"{i:5}  {rl.get_history_item(i)}" for i in range(first, n + 1))

    def help(self, topic: str = "") -> str:
        """The help text: every command, or one command's or argument's."""
        if not topic:
            width = max(len(s.usage()) for s in self.table.values())
            lines = ["module commands (Tab completes; 'help CMD' for one):"]
            lines += [f"  {s.usage():<{width}}  {s.help}" for s in self.table.values()]
            lines.append("shell commands:")
            lines += [f"  {k:<10} {v}" for k, v in BUILTINS.items()]
            lines.append("arguments are key=value; 'help ARG' explains one (e.g. help wq)")
            return "\n".join(lines)
        if topic in self.table:
            spec = self.table[topic]
            lines = [spec.usage(), f"  {spec.help}"]
            lines += [f"  {k:<10} {ARG_HELP.get(k, '')}" for k in spec.required]
            lines += [
                f"  [{k}]{'':<{max(0, 8 - len(k))}} {ARG_HELP.get(k, '')}" for k in spec.optional
            ]
            return "\n".join(lines)
        if topic in ARG_HELP:
            users = [n for n, s in self.table.items() if topic in s.args]
            return f"{topic}=: {ARG_HELP[topic]}\n  taken by: {', '.join(users) or 'no command'}"
        if topic in BUILTINS or topic in _ALIASES:
            return BUILTINS[_ALIASES.get(topic, topic)]
        hint = _did_you_mean(topic, [*self.table, *BUILTINS, *ARG_HELP])
        return f"no command or argument '{topic}'.{hint} 'help' lists them."
