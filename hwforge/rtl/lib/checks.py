"""Constructor checks shared by the rtl library's components.

A component validates its parameters in ``__init__`` and refuses a bad one with a one-line `ConfigError` that
names the component and the parameter. Amaranth warns about an `Elaboratable` that is created but never
elaborated (``UnusedElaboratable``); a refused component is dropped on purpose, so `refuse` silences that warning
before raising.
"""

from __future__ import annotations

from typing import NoReturn

from hwforge.errors import ConfigError

#: Amaranth's `MustUse` flag (name-mangled inside Amaranth; spelt out here so Python does not mangle it again).
_MUSTUSE_SILENCE = "_MustUse__silence"


def refuse(component: object, problem: str) -> NoReturn:
    """Raise ``ConfigError("<Component>: <problem>")`` for a component whose constructor rejects its parameters."""
    setattr(component, _MUSTUSE_SILENCE, True)
    raise ConfigError(f"{type(component).__name__}: {problem}")


def bus_problem(addr_width: int, data_width: int) -> str | None:
    """What is wrong with a memory-side bus of ``addr_width``-bit word addresses and ``data_width``-bit words (the
    widths `hwforge.rtl.lib.memport.MemPortSignature` initiators in this library support), or None."""
    if not 1 <= addr_width <= 32:
        return f"addr_width must be 1..32, got {addr_width}"
    if not (32 <= data_width <= 512 and data_width & (data_width - 1) == 0):
        return f"data_width must be a power of two in 32..512, got {data_width}"
    return None


def fault_problem(fault: str | None, faults: tuple[str, ...]) -> str | None:
    """What is wrong with a deliberate-fault selection (None, or one of ``faults``), or None."""
    if fault is not None and fault not in faults:
        return f"fault must be None or one of {', '.join(faults)}, got {fault!r}"
    return None
