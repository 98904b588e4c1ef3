"""kallsyms symbol map: naming functions read after rmmod."""

from __future__ import annotations

from pathlib import Path

import pytest

from wqlab.symbols import SymbolMap
from wqlab.trace import ExecuteStart, QueueWork, Symbol, parse

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_after_rmmod_trace_resolves_to_the_loaded_names(kernel: str) -> None:
    syms = SymbolMap.from_kallsyms((DATA / kernel / "kallsyms-refmod.txt").read_text())
    assert syms.usable
    loaded = parse((DATA / kernel / "trace-refmod.txt").read_text())
    after = parse((DATA / kernel / "trace-refmod-after-rmmod.txt").read_text(), symbols=syms)
    assert len(loaded) == len(after)
    for a, b in zip(loaded, after, strict=True):
        fa, fb = getattr(a, "function", None), getattr(b, "function", None)
        assert (fa is None) == (fb is None)
        if fa is not None and fb is not None:
            assert (fa.name, fa.module) == (fb.name, fb.module)


def test_6_12_padding_symbols_are_not_functions() -> None:
    syms = SymbolMap.from_kallsyms((DATA / "6.12" / "kallsyms-refmod.txt").read_text())
    assert syms.resolve(0xFFFFFFFFC0754030) == ("ref_fn", "refmod")
    assert syms.resolve(0xFFFFFFFFC0754020) == ("ref_delayed_fn", "refmod")  # in its tail


SYNTH = """\
ffffffffc0a1b000 t ref_fn\t[refmod]
ffffffffc0a1b080 t ref_other\t[refmod]
ffffffffc0a1d000 d ref_data\t[refmod]
ffffffff81000000 T _stext
"""


def test_exact_and_containing_lookup() -> None:
    syms = SymbolMap.from_kallsyms(SYNTH, max_offset=0x1000)
    assert syms.resolve(0xFFFFFFFFC0A1B000) == ("ref_fn", "refmod")
    assert syms.resolve(0xFFFFFFFFC0A1B010) == ("ref_fn", "refmod")
    assert syms.resolve(0xFFFFFFFFC0A1B090) == ("ref_other", "refmod")
    assert syms.resolve(0xFFFFFFFFC0A1D000) is None  # data, and too far into ref_other
    assert syms.resolve(0xFFFFFFFFC0AFF000) is None  # beyond max_offset
    assert syms.resolve(0x1000) is None
    assert syms.resolve(0xFFFFFFFF81000000) == ("_stext", None)
    assert syms.address_of("ref_data", "refmod") == 0xFFFFFFFFC0A1D000


def test_zero_addresses_from_kptr_restrict_are_unusable() -> None:
    syms = SymbolMap.from_kallsyms("0000000000000000 t ref_fn\t[refmod]\n")
    assert not syms.usable
    assert syms.resolve_symbol(Symbol(None, None, 0xFFFFFFFFC0A1B000)).name is None


def test_synthetic_after_unload_trace_is_named() -> None:
    text = (
        "  insmod-1  [000] d..1.  1.000000: workqueue_queue_work: work struct=0000000000000abc "
        "function=0xffffffffc0a1b010 workqueue=wqlab_wq req_cpu=8192 cpu=0\n"
        "  kworker/0:1-17  [000] .....  1.000100: workqueue_execute_start: work struct "
        "0000000000000abc: function 0xffffffffc0a1b010\n"
        "  kworker/0:1-17  [000] .....  1.000200: workqueue_execute_start: work struct "
        "0000000000000abd: function 0xffffffff00000000\n"
    )
    syms = SymbolMap.from_kallsyms(SYNTH)
    q, s, unknown = parse(text, symbols=syms)
    assert isinstance(q, QueueWork) and isinstance(s, ExecuteStart)
    assert q.function == Symbol("ref_fn", "refmod", 0xFFFFFFFFC0A1B010)
    assert str(s.function) == "ref_fn [refmod]"
    assert isinstance(unknown, ExecuteStart) and not unknown.function.resolved
