"""Verilog/RTLIL conversion of hwforge's Amaranth designs, memoised on disk.

Elaborating an accelerator and running Yosys takes seconds, and a test session or CLI call converts the same
design many times. The text is deterministic (no source locations), so it is cached under
``$HWFORGE_BUILD_CACHE/emit`` and in process memory, keyed by the design's parameters and `generator_hash`:
the source of every hwforge module the RTL generators can import (``hwforge.rtl`` and, transitively, what it
imports, e.g. ``hwforge.ir.quant``), the Amaranth version and the Yosys that conversion runs. Editing any of
them converts afresh; editing a module the RTL never imports does not.

The cached text is the converter's own output; emitters add their generated-file header (`hwforge.generated`)
afterwards, so the header's hwforge version never invalidates a conversion.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable

from amaranth.hdl import Elaboratable

from hwforge.buildcache import cache_root, digest, sources_key

_MEMORY: dict[str, str] = {}


#: The generator: every module of this package (and, through `sources_key`, every hwforge module they import).
GENERATOR_ROOTS = ("hwforge.rtl",)


@functools.cache
def generator_hash() -> str:
    """sha256 over everything that feeds a conversion besides the design's parameters: the hwforge sources of
    `GENERATOR_ROOTS` with their transitive hwforge imports, the Amaranth version and the conversion Yosys."""
    import amaranth

    from hwforge.toolchain import conversion_yosys

    return digest("rtl-emit", sources_key(*GENERATOR_ROOTS), f"amaranth {amaranth.__version__}", conversion_yosys())


def convert_cached(make_top: Callable[[], Elaboratable], name: str, params: object, kind: str) -> str:
    """Verilog (``kind="v"``) or RTLIL (``"il"``) of ``make_top()`` as module ``name``.

    ``params`` (JSON-serialisable) must determine the design completely, faults included.
    """
    if kind not in ("v", "il"):
        raise ValueError(f"unknown output kind {kind!r}; use 'v' or 'il'")
    key = digest("rtl-convert", json.dumps([name, params, kind, generator_hash()], sort_keys=True))[:24]
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_root() / "emit" / f"{name}_{key}.{kind}"
    if path.exists():
        out = path.read_text()
    else:
        if kind == "v":
            from amaranth.back import verilog

            out = verilog.convert(make_top(), name=name, emit_src=False)
        else:
            from amaranth.back import rtlil

            out = rtlil.convert(make_top(), name=name, emit_src=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(out)
        tmp.replace(path)
    _MEMORY[key] = out
    return out
