"""`OptimizerSpec`: one torch.optim optimizer (kind, hyperparameters, gradient format) as plain data.

torch.optim -> `OptimizerSpec` (`OptimizerSpec.from_torch`) -> optimizer IR (`hwforge.ir.optim_lowering`,
element-wise ops of `hwforge.ir.ops_optim`). Why a spec between torch and the IR: the storage-offloaded trainer
ships the spec to worker processes (`to_json`), and the kernel, the host scalars and the torch reference are all
derived from it. It lives in the IR package so that the compiler's `smartupdate` target, the HLS back end
(`hwforge.fpga.hls`) and the offload runtime (`hwforge.host`) share it without importing each other; torch is
imported only inside `from_torch`/`to_torch`.

Per-step values (bias corrections, step size, lr, loss-scale reciprocal, SGD's first-step flag) are computed
on the host in float64 exactly as torch computes them (`host_scalars`), rounded once to float32, and passed to
the kernel as scalar inputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwforge.errors import ConfigError

KINDS = ("sgd", "adam", "adamw", "adagrad")
GRAD_FORMATS = ("fp32", "fp16", "topk_fp16", "topk_fp32")
STATE_NAMES = {"adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq"), "adagrad": ("sum",)}
_REJECT = ("amsgrad", "maximize", "capturable", "differentiable", "fused")


def f32(x: float) -> float:
    """``x`` rounded to float32 (as torch does with a Python scalar applied to a float32 tensor)."""
    return float(np.float32(x))


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything the update kernel needs to know about one optimizer (one parameter group)."""

    kind: str
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    lr_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    grad_format: str = "fp32"
    half_copy: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"optimizer kind {self.kind!r} is not supported; supported: {', '.join(KINDS)}")
        if self.grad_format not in GRAD_FORMATS:
            raise ConfigError(f"grad_format {self.grad_format!r}: expected one of {', '.join(GRAD_FORMATS)}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for key in ("lr", "eps", "weight_decay", "momentum", "dampening", "lr_decay", "initial_accumulator_value"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"optimizer {key}={value!r}: expected a finite number")
            object.__setattr__(self, key, float(value))
        if self.kind == "sgd" and self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ConfigError("SGD nesterov momentum requires a momentum and zero dampening (as torch)")

    # ------------------------------------------------------------------------------------------- torch side
    @classmethod
    def from_torch(cls, opt: Any, grad_format: str = "fp32", half_copy: bool = False) -> OptimizerSpec:
        """Read the kind and hyperparameters of a torch.optim instance; unsupported settings are ConfigErrors."""
        import torch

        kinds = {torch.optim.AdamW: "adamw", torch.optim.Adam: "adam", torch.optim.SGD: "sgd",
                 torch.optim.Adagrad: "adagrad"}
        kind = kinds.get(type(opt))
        if kind is None:
            raise ConfigError(f"optimizer {type(opt).__name__} is not supported; use Adam, AdamW, SGD or Adagrad")
        if len(opt.param_groups) != 1:
            raise ConfigError(f"{type(opt).__name__} has {len(opt.param_groups)} parameter groups; one is supported")
        group = opt.param_groups[0]
        for key in _REJECT:
            if group.get(key):
                raise ConfigError(f"{type(opt).__name__}({key}=True) is not supported by the smartupdate kernel")
        if kind == "adam" and group.get("decoupled_weight_decay"):
            kind = "adamw"
        values = {}
        for key in ("lr", "eps", "weight_decay", "momentum", "dampening", "lr_decay", "initial_accumulator_value"):
            if key in group:
                v = group[key]
                values[key] = float(v.item()) if isinstance(v, torch.Tensor) else v
        if "betas" in group:
            values["betas"] = tuple(float(b.item()) if isinstance(b, torch.Tensor) else b for b in group["betas"])
        if kind == "sgd":
            values["nesterov"] = bool(group.get("nesterov", False))
        return cls(kind=kind, grad_format=grad_format, half_copy=bool(half_copy), **values)

    def to_torch(self, params: list) -> Any:
        """A fresh torch.optim instance with these hyperparameters over ``params`` (the verifier's reference)."""
        import torch

        if self.kind in ("adam", "adamw"):
            cls = torch.optim.AdamW if self.kind == "adamw" else torch.optim.Adam
            return cls(params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)
        if self.kind == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, dampening=self.dampening,
                                   nesterov=self.nesterov, weight_decay=self.weight_decay)
        return torch.optim.Adagrad(params, lr=self.lr, lr_decay=self.lr_decay, weight_decay=self.weight_decay,
                                   initial_accumulator_value=self.initial_accumulator_value, eps=self.eps)

    # ------------------------------------------------------------------------------------------------ JSON
    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OptimizerSpec:
        try:
            d = json.loads(text)
            return cls(**d)
        except (json.JSONDecodeError, TypeError) as e:
            raise ConfigError(f"not an OptimizerSpec JSON: {' '.join(str(e).split())}") from None

    # ------------------------------------------------------------------------------------------ derived
    @property
    def state_names(self) -> tuple[str, ...]:
        """torch's state keys in order (SGD without momentum keeps no state)."""
        if self.kind == "sgd":
            return ("momentum_buffer",) if self.momentum != 0 else ()
        return STATE_NAMES[self.kind]

    @property
    def topk(self) -> bool:
        return self.grad_format.startswith("topk")

    @property
    def grad_dtype(self) -> str:
        return "f16" if self.grad_format.endswith("fp16") else "f32"

    def initial_state(self, n: int) -> dict[str, np.ndarray]:
        """Zero states (Adagrad: initial_accumulator_value), as torch initialises them."""
        fill = f32(self.initial_accumulator_value) if self.kind == "adagrad" else 0.0
        return {name: np.full(n, fill, dtype=np.float32) for name in self.state_names}

    def scalar_names(self) -> tuple[str, ...]:
        """The kernel's per-step scalar inputs, in argument order."""
        names = {"adam": ("neg_step_size", "bc2_sqrt"), "adamw": ("neg_step_size", "bc2_sqrt"),
                 "sgd": ("neg_lr",), "adagrad": ("neg_clr",)}[self.kind]
        if self.kind == "adamw" and self.weight_decay != 0:
            names += ("decay",)
        if self.kind == "sgd" and self.momentum != 0:
            names += ("first",)
        return ("inv_scale",) + names

    def host_scalars(self, step: int, lr: float | None = None, loss_scale: float = 1.0) -> dict[str, float]:
        """Float32 values of the per-step scalars for 1-based ``step``, computed in float64 as torch does."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
            raise ConfigError(f"step must be a 1-based integer, got {step!r}")
        if not (isinstance(loss_scale, (int, float)) and math.isfinite(loss_scale) and loss_scale > 0):
            raise ConfigError(f"loss_scale must be a positive finite number, got {loss_scale!r}")
        lr = self.lr if lr is None else float(lr)
        s = float(step)
        out = {"inv_scale": f32(1.0 / float(loss_scale))}  # GradScaler: scale.double().reciprocal().float()
        if self.kind in ("adam", "adamw"):
            beta1, beta2 = self.betas
            out["neg_step_size"] = f32(-(lr / (1 - beta1**s)))
            out["bc2_sqrt"] = f32((1 - beta2**s) ** 0.5)
            if self.kind == "adamw" and self.weight_decay != 0:
                out["decay"] = f32(1 - lr * self.weight_decay)
        elif self.kind == "sgd":
            out["neg_lr"] = f32(-lr)
            if self.momentum != 0:
                out["first"] = 1.0 if step == 1 else 0.0
        else:
            out["neg_clr"] = f32(-(lr / (1 + (s - 1) * self.lr_decay)))
        return {k: out[k] for k in self.scalar_names()}


def topk_count(n: int, ratio: float) -> int:
    """Number of kept gradient elements for a top-k ratio: ceil(ratio * n), at least 1."""
    return max(1, min(n, math.ceil(ratio * n)))
