"""`OffloadConfig`: every knob of the storage-offloaded trainer, validated up front.

Validation happens here, once, so that a bad option fails with one clear line before any worker process is
started or any byte is written to the storage directory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hwforge.errors import ConfigError

MODES = ("baseline", "smartupdate")
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam,
                                                      "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}
GRAD_DTYPES = ("fp32", "fp16")


@dataclass(frozen=True)
class OffloadConfig:
    """How and where a model's optimizer step is offloaded.

    mode: ``"baseline"`` (ZeRO-Infinity style: the host reads parameters, gradients and optimizer states from
        storage, updates them with ``torch.optim`` on the CPU and writes everything back) or ``"smartupdate"``
        (Smart-Infinity: each computational storage device updates its own subgroups with the natively compiled
        HLS updater; only gradients go down and updated parameters come back).
    devices: number of emulated storage devices (a directory each; in smartupdate mode also a worker process).
    storage_dir: root directory of the device directories and the global commit record.
    optimizer / optimizer_params: a ``torch.optim`` class name (``adamw``, ``adam``, ``sgd``, ``adagrad``) and
        its keyword arguments (``lr``, ``betas``, ``eps``, ``weight_decay``, ``momentum``, ...), one parameter
        group, as in a DeepSpeed config.
    subgroup_size: elements per subgroup, the unit of transfer and update (DeepSpeed's ``sub_group_size``).
    topk: ``None`` for dense gradients, or the fraction of each subgroup's gradient elements sent (SmartComp).
    error_feedback: with top-k, keep the unsent remainder on the host and add it to the next step's gradient.
    grad_dtype: ``fp32`` or ``fp16`` gradient values on the host link.
    overlap: transfer handler on (prefetch the next subgroup, defer state write-back) or off (serial).
    buffers: fixed subgroup buffer sets per device (3 = one loading, one updating, one writing back).
    fsync: fsync every state file and manifest before it is renamed into place; process crashes are safe
        without it (rename is atomic), power loss is not.
    cache_dir: build cache of the native updater kernel (``None``: the kernel's default).
    worker_timeout: seconds to wait for a device worker's reply before declaring it hung.
    """

    storage_dir: str | Path
    mode: str = "smartupdate"
    devices: int = 1
    optimizer: str = "adamw"
    optimizer_params: dict[str, Any] = field(default_factory=dict)
    subgroup_size: int = 1 << 20
    topk: float | None = None
    error_feedback: bool = True
    grad_dtype: str = "fp32"
    overlap: bool = True
    buffers: int = 3
    fsync: bool = False
    cache_dir: str | Path | None = None
    worker_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"offload mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not isinstance(self.devices, int) or not 1 <= self.devices <= 64:
            raise ConfigError(f"offload devices must be an integer in 1..64, got {self.devices!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"offload optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if not isinstance(self.subgroup_size, int) or self.subgroup_size < 1:
            raise ConfigError(f"offload subgroup_size must be a positive integer, got {self.subgroup_size!r}")
        if self.topk is not None:
            if self.mode != "smartupdate":
                raise ConfigError("offload topk (gradient compression) needs mode='smartupdate'")
            if not isinstance(self.topk, int | float) or not 0.0 < float(self.topk) <= 1.0 or math.isnan(self.topk):
                raise ConfigError(f"offload topk must be a fraction in (0, 1], got {self.topk!r}")
        if self.grad_dtype not in GRAD_DTYPES:
            raise ConfigError(f"offload grad_dtype {self.grad_dtype!r} is not one of {', '.join(GRAD_DTYPES)}")
        if self.grad_dtype == "fp16" and self.mode == "baseline":
            raise ConfigError("offload grad_dtype='fp16' is only supported with mode='smartupdate'")
        if not isinstance(self.buffers, int) or not 1 <= self.buffers <= 8:
            raise ConfigError(f"offload buffers must be an integer in 1..8, got {self.buffers!r}")
        if not self.worker_timeout > 0:
            raise ConfigError(f"offload worker_timeout must be positive, got {self.worker_timeout!r}")
        try:
            self.make_optimizer([torch.nn.Parameter(torch.zeros(1))])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"offload optimizer_params {self.optimizer_params!r}: {exc}") from None

    @property
    def root(self) -> Path:
        return Path(self.storage_dir)

    @property
    def grad_format(self) -> str:
        """The updater kernel's gradient format: fp32, fp16, topk_fp32 or topk_fp16."""
        return ("topk_" if self.topk is not None else "") + self.grad_dtype

    def make_optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The torch optimizer these settings describe (the baseline's updater and the kernel's spec source)."""
        return OPTIMIZERS[self.optimizer](params, **self.optimizer_params)

    def topk_count(self, n: int) -> int:
        """Elements of an ``n``-element subgroup that top-k sends (at least one)."""
        return max(1, math.ceil(float(self.topk) * n)) if self.topk is not None else n

    def describe(self) -> dict[str, Any]:
        """The fields that must match between a checkpoint and the trainer that resumes it."""
        return {"mode": self.mode, "devices": self.devices, "optimizer": self.optimizer,
                "optimizer_params": {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in sorted(self.optimizer_params.items())},
                "subgroup_size": self.subgroup_size, "topk": self.topk, "error_feedback": self.error_feedback,
                "grad_dtype": self.grad_dtype}
