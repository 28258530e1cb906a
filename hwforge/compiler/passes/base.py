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
