"""What a pass is, and the registry targets add their own passes to.

A pass is a small object with a ``name`` and ``run(graph, options) -> Graph``. It must not modify its input
(work on ``graph.copy()`` or build a new graph): the pipeline keeps the input for dumps and error reports,
and callers reuse float graphs across several compilations.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hwforge.ir import Graph


@runtime_checkable
class Pass(Protocol):
    name: str

    def run(self, graph: Graph, options: dict[str, Any]) -> Graph: ...


PASSES: dict[str, type] = {}
"""Pass name -> pass class (instantiate with no arguments: ``PASSES["quantize"]()``)."""


def register_pass(cls: type) -> type:
    """Class decorator: register a pass class (constructible with no arguments) under ``cls.name``."""
    if not isinstance(getattr(cls, "name", None), str) or not callable(getattr(cls, "run", None)):
        raise TypeError(f"{cls.__name__} is not a pass (needs a 'name' and run(graph, options))")
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
