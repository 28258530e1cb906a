"""Verilog/RTLIL conversion of hwforge's Amaranth designs, memoised on disk.

Elaborating an accelerator and running Yosys takes seconds, and a test session or CLI call converts the same
design many times. The text is deterministic (no source locations), so it is cached under
``$HWFORGE_BUILD_CACHE/emit`` keyed by the design's parameters and a hash of every RTL generator source
(editing the generator invalidates the cache), and in process memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from amaranth.hdl import Elaboratable

from hwforge.buildcache import cache_root

_RTL_ROOT = Path(__file__).resolve().parent
_MEMORY: dict[str, str] = {}


@functools.cache
def generator_hash() -> str:
    """sha256 over the Amaranth version and every source file of `hwforge.rtl`."""
    import amaranth

    h = hashlib.sha256(amaranth.__version__.encode())
    for p in sorted(_RTL_ROOT.rglob("*.py")):
        h.update(str(p.relative_to(_RTL_ROOT)).encode() + p.read_bytes())
    return h.hexdigest()


def convert_cached(make_top: Callable[[], Elaboratable], name: str, params: object, kind: str) -> str:
    """Verilog (``kind="v"``) or RTLIL (``"il"``) of ``make_top()`` as module ``name``.

    ``params`` (JSON-serialisable) must determine the design completely, faults included.
    """
    if kind not in ("v", "il"):
        raise ValueError(f"unknown output kind {kind!r}; use 'v' or 'il'")
    text = json.dumps([name, params, kind, generator_hash()], sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
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
