"""What a pass is, and the registry targets add their own passes to.

A pass is a small, parameterised object, in the manner of xDSL's passes: its parameters are fixed when it is
built (``Quantize(bits=8, acc_bits=32)``, validated in the constructor), and ``run(graph, calibration)``
returns a new graph. Targets build their pipelines from their typed options; calibration data, which belongs
to the model rather than to the target, travels as its own typed argument (`Calibration`). A pass must not
modify its input (work on ``graph.copy()`` or build a new graph): the pipeline keeps the input for dumps and
error reports, and callers reuse float graphs across several compilations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir import Graph


@dataclass(frozen=True)
class Calibration:
    """Representative inputs of a model (graph input name -> array), for passes that calibrate scales."""

    inputs: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, Mapping) or not self.inputs:
            raise ConfigError("calibration data must map at least one graph input name to an array")
        for name, value in self.inputs.items():
            if not isinstance(value, np.ndarray) or value.size == 0:
                raise ConfigError(f"calibration input {name!r}: expected a non-empty numpy array")


@runtime_checkable
class Pass(Protocol):
    name: str

    def run(self, graph: Graph, calibration: Calibration | None = None) -> Graph: ...


def require_calibration(pass_name: str, calibration: Calibration | None) -> Calibration:
    """The calibration a pass needs, or a one-line error naming the pass."""
    if calibration is None:
        raise ConfigError(f"pass '{pass_name}' needs calibration data (graph input name -> array)")
    return calibration


PASSES: dict[str, type] = {}
"""Pass name -> pass class (every parameter has a default: ``PASSES["quantize"]()`` is ``Quantize(bits=8)``)."""


def register_pass(cls: type) -> type:
    """Class decorator: register a pass class (constructible with no arguments) under ``cls.name``."""
    if not isinstance(getattr(cls, "name", None), str) or not callable(getattr(cls, "run", None)):
        raise TypeError(f"{cls.__name__} is not a pass (needs a 'name' and run(graph, calibration))")
    if cls.name in PASSES:
        raise ValueError(f"pass '{cls.name}' is already registered")
    PASSES[cls.name] = cls
    return cls


class GraphRebuilder:
    """Base of passes that rebuild a graph node by node into ``self.g`` (quantize, quantize_lowbit,
    fixed_point): owns the new graph and hands out node names that clash neither with the source graph's
    non-constant nodes (they keep their names where they survive) nor with anything already built."""

    def __init__(self, src: Graph) -> None:
        self.src = src
        self.g = Graph(src.name)
        # constants are not carried over by name (layers get fresh constants), so only non-constant names are
        # reserved; a constant copied later takes a free name
        self.taken = {n.name for n in src.nodes() if n.op != "constant"}

    def fresh(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... if taken; the name is reserved."""
        name, i = base, 1
        while name in self.taken or name in self.g:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name
