"""Registry of built-in models. A model registers a loader with the `register` decorator::

    @register("gcn-karate", "2-layer GCN on Zachary's karate club")
    def _load() -> ZooModel: ...

A loader returns either a PyTorch ``module`` (the frontend exports it) or a ready IR ``graph`` (for models,
like GCNs, whose graph structure is data rather than a traced module), plus the data every consumer needs:
example inputs, calibration inputs and, if the model has one, a labelled test split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwforge.errors import ConfigError


@dataclass
class ZooModel:
    """A loaded built-in model and its data (all arrays keyed by graph input name)."""

    name: str
    description: str
    module: Any | None  # torch.nn.Module; Any keeps torch out of this module's import-time needs
    example_inputs: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray]
    test_set: tuple[np.ndarray, np.ndarray] | None
    source_hash: str
    graph: Any | None = None  # hwforge.ir.Graph for models defined directly in the IR
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    loader: Callable[[], ZooModel] = field(repr=False, compare=False)

    def load(self) -> ZooModel:
        return self.loader()


_ENTRIES: dict[str, ZooEntry] = {}


def register(name: str, description: str) -> Callable[[Callable[[], ZooModel]], Callable[[], ZooModel]]:
    """Decorator registering a zero-argument loader under ``name``."""

    def deco(loader: Callable[[], ZooModel]) -> Callable[[], ZooModel]:
        if name in _ENTRIES:
            raise ValueError(f"zoo model '{name}' is already registered")
        _ENTRIES[name] = ZooEntry(name, description, loader)
        return loader

    return deco


def list_models() -> list[ZooEntry]:
    """All registered models, sorted by name."""
    return [_ENTRIES[k] for k in sorted(_ENTRIES)]


def names() -> list[str]:
    return sorted(_ENTRIES)


def entry(name: str) -> ZooEntry:
    if name not in _ENTRIES:
        raise ConfigError(f"unknown zoo model '{name}' (available: {', '.join(names())})")
    return _ENTRIES[name]


def get(name: str) -> ZooModel:
    """Load built-in model ``name`` (a fresh module each call, so callers may modify it)."""
    return entry(name).load()


def sha256_of(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(hashlib.sha256(c).digest())
    return h.hexdigest()
