"""C-simulation verifier for optimizer kernels: run the g++-compiled kernel for several steps and compare it
with the optimizer IR (bit-exact model of the kernel's float32 arithmetic) and with torch.optim itself.

Why two references (docs/ARCHITECTURE.md, "Verification"): the IR interpreter must match the kernel bit for bit, which
catches any emitter or kernel bug however small; torch.optim is the float reference the user cares about and is
compared with stated tolerances, because torch's CPU ``sqrt`` (MKL) is not always correctly rounded while the
kernel's is (docs/smartupdate.md). The fp16 copy must equal the kernel's own fp32 result rounded by torch's
``.half()``, and may differ from torch's ``.half()`` only where the fp32 values differ, by one fp16 ulp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hwforge.errors import ConfigError
from hwforge.ir.optim_spec import OptimizerSpec, topk_count

RTOL = 1e-5
ATOL = 1e-6


def make_inputs(spec: OptimizerSpec, n: int, steps: int, seed: int, topk_ratio: float = 0.01,
                loss_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Seeded reference inputs: initial params and, per step, the (loss-scaled) gradient the kernel receives."""
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(n).astype(np.float32)
    grads = (rng.standard_normal((steps, n)) * 0.1).astype(np.float32) * np.float32(loss_scale)
    gdtype = np.float16 if spec.grad_dtype == "f16" else np.float32
    out = {"param": param, "loss_scale": np.array([loss_scale], dtype=np.float64)}
    with np.errstate(over="ignore"):
        overflow = not np.all(np.isfinite(grads.astype(gdtype)))
    if overflow:
        raise ConfigError(f"loss_scale={loss_scale} overflows the {spec.grad_dtype} test gradients (torch's GradScaler "
                          "would skip such a step); use a smaller loss_scale")
    if spec.topk:
        k = topk_count(n, topk_ratio)
        idx = np.sort(np.argsort(-np.abs(grads), axis=1, kind="stable")[:, :k], axis=1).astype(np.int32)
        out["grad_indices"] = idx
        out["grad_values"] = np.take_along_axis(grads, idx.astype(np.int64), axis=1).astype(gdtype)
    else:
        out["grad"] = grads.astype(gdtype)
    return out


def _step_grad(inputs: dict[str, np.ndarray], spec: OptimizerSpec, s: int) -> Any:
    if spec.topk:
        return inputs["grad_indices"][s], inputs["grad_values"][s]
    return inputs["grad"][s]


def _loss_scale(inputs: dict[str, np.ndarray]) -> float:
    return float(np.asarray(inputs["loss_scale"]).reshape(-1)[0])


def _steps(inputs: dict[str, np.ndarray], spec: OptimizerSpec) -> int:
    return int((inputs["grad_indices"] if spec.topk else inputs["grad"]).shape[0])


def run_kernel(updater: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Final param, states and fp16 copy after running every step through the compiled kernel."""
    spec = updater.spec
    param = inputs["param"].copy()
    states = spec.initial_state(param.shape[0])
    half = None
    for s in range(_steps(inputs, spec)):
        half = updater.step(param, states, _step_grad(inputs, spec, s), s + 1,
                            loss_scale=_loss_scale(inputs))
    out = {"param": param, **states}
    if half is not None:
        out["param_fp16"] = half
    return out


def run_ir(graph: Any, spec: OptimizerSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same steps through the IR interpreter (the bit-exact model)."""
    from hwforge.ir import interpret

    param = inputs["param"].copy()
    states = spec.initial_state(param.shape[0])
    out: dict[str, np.ndarray] = {}
    for s in range(_steps(inputs, spec)):
        feeds: dict[str, Any] = {"param": param, **states}
        if spec.topk:
            feeds["grad_indices"], feeds["grad_values"] = _step_grad(inputs, spec, s)
        else:
            feeds["grad"] = inputs["grad"][s]
        scalars = spec.host_scalars(s + 1, loss_scale=_loss_scale(inputs))
        feeds.update({k: np.array(v, dtype=np.float32) for k, v in scalars.items()})
        values = interpret(graph, feeds)
        out = {name[len("out."):]: v.numpy() for name, v in values.items()}
        param, states = out["param"], {k: out[k] for k in spec.state_names}
    return out


def torch_reference(spec: OptimizerSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torch.optim on the same gradients, unscaled as GradScaler does (float32 grad * float32(1/scale))."""
    n = inputs["param"].shape[0]
    p = torch.nn.Parameter(torch.from_numpy(inputs["param"].copy()))
    opt = spec.to_torch([p])
    inv_scale = torch.tensor(1.0 / _loss_scale(inputs), dtype=torch.float64).float()
    for s in range(_steps(inputs, spec)):
        if spec.topk:
            idx, vals = _step_grad(inputs, spec, s)
            g = torch.zeros(n, dtype=torch.float32)
            g[torch.from_numpy(idx.astype(np.int64))] = torch.from_numpy(vals).float()
        else:
            g = torch.from_numpy(inputs["grad"][s]).float()
        p.grad = g * inv_scale
        opt.step()
    state = opt.state[p]
    out = {"param": p.detach().numpy().copy()}
    for name in spec.state_names:
        out[name] = state[name].detach().numpy().copy()
    if spec.half_copy:
        out["param_fp16"] = p.detach().half().numpy()
    return out


def _errors(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    g, w = got.astype(np.float64), want.astype(np.float64)
    diff = np.abs(g - w)
    rel = diff / np.maximum(np.abs(w), np.finfo(np.float32).tiny)
    return {"max_abs_error": float(diff.max()), "max_rel_error": float(rel.max()),
            "mismatches_vs_torch": int(np.count_nonzero(got != want))}


def _bit_mismatches(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose bit patterns differ (NaNs compare by payload, -0 differs from +0)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return int(a.size)
    u = f"u{a.itemsize}"
    return int(np.count_nonzero(a.view(u) != b.view(u)))


def compare(kernel: dict[str, np.ndarray], ir: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-tensor errors and the pass/fail verdict (see the module docstring for the criteria)."""
    tensors: dict[str, Any] = {}
    passed = True
    for name in ref:
        got, want = kernel[name], ref[name]
        entry: dict[str, Any] = {"elements": int(got.size), **_errors(got, want),
                                 "mismatches_vs_ir": _bit_mismatches(got, ir[name])}
        if name == "param_fp16":
            own = kernel["param"].astype(np.float16)
            entry["mismatches_vs_own_fp32"] = int(np.count_nonzero(got.view(np.uint16) != own.view(np.uint16)))
            bad = got.view(np.uint16) != want.view(np.uint16)
            ulps = np.abs(got.view(np.int16).astype(np.int32) - want.view(np.int16).astype(np.int32))
            entry["max_ulp_vs_torch"] = int(ulps.max()) if got.size else 0
            fp32_differs = kernel["param"] != ref["param"]
            entry["unexplained_mismatches"] = int(np.count_nonzero(bad & ~fp32_differs))
            ok = (entry["mismatches_vs_own_fp32"] == 0 and entry["unexplained_mismatches"] == 0
                  and entry["max_ulp_vs_torch"] <= 1)
        else:
            ok = bool(np.allclose(got, want, rtol=RTOL, atol=ATOL))
        ok = ok and entry["mismatches_vs_ir"] == 0
        entry["ok"] = ok
        passed = passed and ok
        tensors[name] = entry
    return {"passed": passed, "tolerance": {"rtol": RTOL, "atol": ATOL}, "tensors": tensors,
            "mismatches": int(sum(t["mismatches_vs_ir"] for t in tensors.values()))}
