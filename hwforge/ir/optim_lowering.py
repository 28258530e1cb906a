"""`OptimizerSpec` -> optimizer IR: `lower_optimizer` builds the element-wise update graph (`hwforge.ir.ops_optim`).

The IR repeats torch's single-tensor (CPU) update operation by operation, fused multiply-adds included, so the
interpreter and the kernel compute the same float32 values (see docs/smartupdate.md for the one known difference
from torch itself: torch's CPU ``sqrt`` is not always correctly rounded). Per-step values are scalar inputs
(`OptimizerSpec.host_scalars`); the hyperparameters that never change become ``fconst`` nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import infer_type
from hwforge.ir.optim_spec import OptimizerSpec, f32, topk_count
from hwforge.ir.types import TensorType


class _Builder:
    """Adds nodes with inferred types, so the lowering reads like torch's update code."""

    def __init__(self, name: str) -> None:
        self.g = Graph(name)

    def vector(self, name: str, dtype: str, n: int) -> str:
        self.g.add(name, "input", [], {}, TensorType((n,), dtype))
        return name

    def scalar(self, name: str) -> str:
        self.g.add(name, "input", [], {}, TensorType((), "f32"))
        return name

    def const(self, name: str, value: float) -> str:
        self.g.add(name, "fconst", [], {"value": f32(value)}, TensorType((), "f32"))
        return name

    def op(self, name: str, op: str, *inputs: str, **attrs: Any) -> str:
        node = Node(name, op, list(inputs), dict(attrs), TensorType((), "f32"))
        node.type = infer_type(node, [self.g[i].type for i in inputs])
        self.g.add_node(node)
        return name

    def output(self, target: str, src: str) -> None:
        self.g.add(f"out.{target}", "output", [src], {}, self.g[src].type)


def _lerp(b: _Builder, name: str, start: str, end: str, weight: float) -> str:
    """torch's ``start.lerp_(end, weight)`` on CPU: fma(w, end-start, start), or fma(w-1, end-start, end)."""
    w = np.float32(weight)
    diff = b.op(f"{name}.diff", "ew_sub", end, start)
    if abs(w) < 0.5:
        return b.op(name, "ew_fma", b.const(f"{name}.w", float(w)), diff, start)
    return b.op(name, "ew_fma", b.const(f"{name}.w1", float(w - np.float32(1))), diff, end)


def lower_optimizer(spec: OptimizerSpec, n: int, k: int | None = None) -> Graph:
    """The optimizer IR for vectors of ``n`` elements (``k`` kept elements for top-k gradients)."""
    if n < 1:
        raise ConfigError(f"vector length n={n} must be >= 1")
    b = _Builder(f"{spec.kind}-update")
    param = b.vector("param", "f32", n)
    states = {name: b.vector(name, "f32", n) for name in spec.state_names}
    if spec.topk:
        k = k if k is not None else topk_count(n, 0.01)
        idx = b.vector("grad_indices", "int32", k)
        vals = b.vector("grad_values", spec.grad_dtype, k)
        if spec.grad_dtype == "f16":
            vals = b.op("grad_values.f32", "ew_cast", vals, dtype="f32")
        raw = b.op("grad.dense", "scatter", idx, vals, param)
    else:
        raw = b.vector("grad", spec.grad_dtype, n)
        if spec.grad_dtype == "f16":
            raw = b.op("grad.f32", "ew_cast", raw, dtype="f32")
    scalars = {name: b.scalar(name) for name in spec.scalar_names()}
    g = b.op("g", "ew_mul", raw, scalars["inv_scale"])  # loss-scale unscaling (GradScaler: grad * inv_scale)
    wd = spec.weight_decay
    if wd != 0 and spec.kind != "adamw":  # grad.add(param, alpha=wd)
        g = b.op("g.wd", "ew_fma", param, b.const("weight_decay", wd), g)
    outs: dict[str, str] = {}
    if spec.kind in ("adam", "adamw"):
        p = param
        if spec.kind == "adamw" and wd != 0:  # param.mul_(1 - lr * wd)
            p = b.op("param.decayed", "ew_mul", param, scalars["decay"])
        beta1, beta2 = spec.betas
        m = _lerp(b, "exp_avg.new", states["exp_avg"], g, 1 - beta1)
        v = b.op("exp_avg_sq.scaled", "ew_mul", states["exp_avg_sq"], b.const("beta2", beta2))
        gv = b.op("exp_avg_sq.gv", "ew_mul", b.const("one_minus_beta2", 1 - beta2), g)  # addcmul: (value*g)*g + v
        v = b.op("exp_avg_sq.new", "ew_fma", gv, g, v)
        root = b.op("denom.sqrt", "ew_sqrt", v)
        denom = b.op("denom", "ew_add", b.op("denom.unbiased", "ew_div", root, scalars["bc2_sqrt"]),
                     b.const("eps", spec.eps))
        step = b.op("update.num", "ew_mul", scalars["neg_step_size"], m)  # addcdiv: p + (value*m)/denom
        new_p = b.op("param.new", "ew_add", p, b.op("update", "ew_div", step, denom))
        outs.update({"exp_avg": m, "exp_avg_sq": v})
    elif spec.kind == "sgd":
        d = g
        if spec.momentum != 0:
            mom = b.const("momentum", spec.momentum)
            scaled = b.op("buf.scaled", "ew_mul", states["momentum_buffer"], mom)
            later = b.op("buf.later", "ew_fma", g, b.const("one_minus_dampening", 1 - spec.dampening), scaled)
            buf = b.op("momentum_buffer.new", "ew_select", scalars["first"], g, later)
            d = b.op("g.nesterov", "ew_fma", buf, mom, g) if spec.nesterov else buf
            outs["momentum_buffer"] = buf
        new_p = b.op("param.new", "ew_fma", d, scalars["neg_lr"], param)  # param.add_(d, alpha=-lr)
    else:  # adagrad
        s = b.op("sum.new", "ew_fma", g, g, states["sum"])  # addcmul(g, g, value=1): 1*g is exact
        std = b.op("std", "ew_add", b.op("std.sqrt", "ew_sqrt", s), b.const("eps", spec.eps))
        step = b.op("update.num", "ew_mul", scalars["neg_clr"], g)
        new_p = b.op("param.new", "ew_add", param, b.op("update", "ew_div", step, std))
        outs["sum"] = s
    b.output("param", new_p)
    for name in spec.state_names:
        b.output(name, outs[name])
    if spec.half_copy:
        b.output("param_fp16", b.op("param.fp16", "ew_cast", new_p, dtype="f16"))
    b.g.verify()
    return b.g
