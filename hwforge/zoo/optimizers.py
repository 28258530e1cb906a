"""Built-in optimizer settings for the ``smartupdate`` target (``hwforge compile adamw --target smartupdate``).

An optimizer entry is a factory taking the parameters to optimise and returning a ``torch.optim`` instance;
`get_optimizer` returns ``(model, optimizer)`` over a small model, the same shape a user's
``path/file.py:function`` returns. The model only carries the parameters: the kernel is generated from the
optimizer's kind and hyperparameters, and its test vectors have the length the target's ``n`` option says.
Kept apart from the model registry because these are not networks the other targets could compile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from hwforge.errors import ConfigError

Factory = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    description: str
    factory: Factory = field(repr=False, compare=False)


_OPTIMIZERS: dict[str, OptimizerEntry] = {}


def register_optimizer(name: str, description: str) -> Callable[[Factory], Factory]:
    """Decorator registering an optimizer factory under ``name``."""

    def deco(factory: Factory) -> Factory:
        if name in _OPTIMIZERS:
            raise ValueError(f"zoo optimizer '{name}' is already registered")
        _OPTIMIZERS[name] = OptimizerEntry(name, description, factory)
        return factory

    return deco


def list_optimizers() -> list[OptimizerEntry]:
    return [_OPTIMIZERS[k] for k in sorted(_OPTIMIZERS)]


def optimizer_names() -> list[str]:
    return sorted(_OPTIMIZERS)


def get_optimizer(name: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """``(model, optimizer)`` for built-in optimizer ``name`` (a fresh small model each call)."""
    if name not in _OPTIMIZERS:
        raise ConfigError(f"unknown zoo optimizer '{name}' (available: {', '.join(optimizer_names())})")
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    return model, _OPTIMIZERS[name].factory(list(model.parameters()))


@register_optimizer("adamw", "AdamW lr=1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 (torch defaults)")
def _adamw(params: list[Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


@register_optimizer("adamw-bert", "AdamW lr=1e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.01 (BERT/GPT style)")
def _adamw_bert(params: list[Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)


@register_optimizer("adam", "Adam lr=1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay")
def _adam(params: list[Any]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


@register_optimizer("sgd-momentum", "SGD lr=0.01, momentum 0.9, weight decay 1e-4")
def _sgd_momentum(params: list[Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)


@register_optimizer("sgd-nesterov", "SGD lr=0.01, Nesterov momentum 0.9")
def _sgd_nesterov(params: list[Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)


@register_optimizer("adagrad", "Adagrad lr=0.01, lr_decay 0, initial accumulator 0, eps 1e-10")
def _adagrad(params: list[Any]) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=0.01)
