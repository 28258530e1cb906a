"""The optimizer IR: element-wise ops (verifiers, exact float32 semantics), the torch.optim -> spec -> IR
lowering, and the IR against torch.optim itself."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError, IRError
from hwforge.ir import (
    Graph,
    OptimizerSpec,
    TensorType,
    graph_from_json,
    graph_to_json,
    interpret,
    lower_optimizer,
    print_graph,
)
from hwforge.ir.ops_optim import fma_f32

F32 = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-(2.0**60), max_value=2.0**60)


@settings(max_examples=300, deadline=None)
@given(F32, F32, F32)
def test_fma_rounds_once(a: float, b: float, c: float) -> None:
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    got = fma_f32(*(torch.tensor([x], dtype=torch.float32) for x in (a, b, c))).item()
    # the float32 nearest to the exact value (ties to even): compare with both neighbours
    assert np.isfinite(got)
    lo, hi = np.nextafter(np.float32(got), np.float32(-np.inf)), np.nextafter(np.float32(got), np.float32(np.inf))
    err = abs(Fraction(got) - exact)
    assert err <= abs(Fraction(float(lo)) - exact) and err <= abs(Fraction(float(hi)) - exact)
    if err == abs(Fraction(float(lo)) - exact) or err == abs(Fraction(float(hi)) - exact):  # a tie: even wins
        assert np.float32(got).view(np.uint32) % 2 == 0 or err == 0


def _small_graph(op: str, in_types: list[TensorType], attrs: dict | None = None, out: TensorType | None = None):
    g = Graph("t")
    names = []
    for i, t in enumerate(in_types):
        names.append(g.add(f"x{i}", "input", [], {}, t).name)
    node = g.add("y", op, names, attrs or {}, out or TensorType((4,), "f32"))
    g.add("out.y", "output", [node.name], {}, node.type)
    return g


@pytest.mark.parametrize(("op", "types", "attrs", "message"), [
    ("ew_add", [TensorType((4,), "f32"), TensorType((5,), "f32")], {}, "differ in length"),
    ("ew_mul", [TensorType((4,), "f16"), TensorType((4,), "f32")], {}, "must be f32"),
    ("ew_select", [TensorType((4,), "f32")] * 3, {}, "flag must be a scalar"),
    ("ew_cast", [TensorType((4,), "f32")], {"dtype": "int8"}, "between f16 and f32"),
    ("scatter", [TensorType((3,), "int8"), TensorType((3,), "f32"), TensorType((4,), "f32")], {}, "int32"),
])
def test_verifiers_name_the_problem(op: str, types: list[TensorType], attrs: dict, message: str) -> None:
    g = _small_graph(op, types, attrs)
    with pytest.raises(IRError, match=message):
        g.verify()


def test_fconst_must_be_a_float32() -> None:
    g = Graph("c")
    g.add("c", "fconst", [], {"value": 0.1}, TensorType((), "f32"))
    g.add("out.c", "output", ["c"], {}, TensorType((), "f32"))
    with pytest.raises(IRError, match="not exactly representable"):
        g.verify()


def test_scatter_zero_fills_ignores_out_of_range_and_last_duplicate_wins() -> None:
    g = _small_graph("scatter", [TensorType((5,), "int32"), TensorType((5,), "f32"), TensorType((6,), "f32")],
                     out=TensorType((6,), "f32"))
    g.verify()
    out = interpret(g, {"x0": np.array([4, 1, 9, 1, -1], np.int32), "x1": np.array([1, 2, 3, 4, 5], np.float32),
                        "x2": np.zeros(6, np.float32)})["out.y"].numpy()
    assert out.tolist() == [0, 4, 0, 0, 1, 0]


def _torch_run(spec: OptimizerSpec, factory, n: int, steps: int, seed: int, loss_scale: float = 1.0):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(n).astype(np.float32)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = factory([tp])
    graph = lower_optimizer(spec, n)
    param, states = p0.copy(), spec.initial_state(n)
    for s in range(1, steps + 1):
        grad = (rng.standard_normal(n) * np.float32(loss_scale)).astype(np.float32)
        tp.grad = torch.from_numpy(grad) * torch.tensor(1.0 / loss_scale, dtype=torch.float64).float()
        opt.step()
        feeds = {"param": param, **states, "grad": grad,
                 **{k: np.array(v, np.float32) for k, v in spec.host_scalars(s, loss_scale=loss_scale).items()}}
        out = interpret(graph, feeds)
        param, states = out["out.param"].numpy(), {k: out[f"out.{k}"].numpy() for k in states}
    return param, states, tp.detach().numpy(), {k: v.numpy() for k, v in opt.state[tp].items() if k != "step"}


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), lr=st.floats(1e-4, 0.5), momentum=st.floats(0.0, 0.99), damp=st.floats(0, 0.5),
       wd=st.sampled_from([0.0, 1e-4, 0.1]), nesterov=st.booleans(), seed=st.integers(0, 2**16))
def test_sgd_ir_is_bit_exact_with_torch(n, lr, momentum, damp, wd, nesterov, seed) -> None:
    damp = 0.0 if nesterov else damp
    momentum = max(momentum, 0.1) if nesterov else momentum

    def factory(p):
        return torch.optim.SGD(p, lr=lr, momentum=momentum, dampening=damp, weight_decay=wd, nesterov=nesterov)

    spec = OptimizerSpec.from_torch(factory([torch.nn.Parameter(torch.zeros(1))]))
    param, states, tparam, tstates = _torch_run(spec, factory, n, 4, seed, loss_scale=8.0)
    assert np.array_equal(param, tparam)  # SGD has no sqrt: every op matches torch's CPU kernels exactly
    for k in states:
        assert np.array_equal(states[k], tstates[k])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 300), kind=st.sampled_from(["adam", "adamw", "adagrad"]), lr=st.floats(1e-4, 0.1),
       b1=st.floats(0.0, 0.99), b2=st.floats(0.5, 0.9999), wd=st.sampled_from([0.0, 0.01]),
       seed=st.integers(0, 2**16))
def test_adaptive_ir_matches_torch(n, kind, lr, b1, b2, wd, seed) -> None:
    def factory(p):
        if kind == "adagrad":
            return torch.optim.Adagrad(p, lr=lr, lr_decay=0.01, weight_decay=wd, initial_accumulator_value=0.1)
        return (torch.optim.AdamW if kind == "adamw" else torch.optim.Adam)(p, lr=lr, betas=(b1, b2),
                                                                             weight_decay=wd)

    spec = OptimizerSpec.from_torch(factory([torch.nn.Parameter(torch.zeros(1))]))
    param, states, tparam, tstates = _torch_run(spec, factory, n, 3, seed)
    # torch's CPU sqrt (MKL) is not always correctly rounded; the IR's is: allow a few float32 ulps
    np.testing.assert_allclose(param, tparam, rtol=1e-5, atol=1e-6)
    for k in states:
        np.testing.assert_allclose(states[k], tstates[k], rtol=1e-5, atol=1e-9)


def test_lowered_graph_prints_and_round_trips_through_json() -> None:
    for fmt in ("fp32", "fp16", "topk_fp16", "topk_fp32"):
        spec = OptimizerSpec(kind="adamw", lr=1e-3, weight_decay=0.01, grad_format=fmt, half_copy=True)
        g = lower_optimizer(spec, 100)
        again = graph_from_json(graph_to_json(g), {})
        again.verify()
        assert graph_to_json(again) == graph_to_json(g)
        assert print_graph(again) == print_graph(g)
        text = print_graph(g)
        assert "ew_fma" in text and "%out.param_fp16 = output(%param.fp16)" in text
        assert ("scatter" in text) == fmt.startswith("topk")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: torch.optim.Adam(p, amsgrad=True), "amsgrad"),
    (lambda p: torch.optim.SGD(p, lr=0.1, maximize=True), "maximize"),
    (lambda p: torch.optim.RMSprop(p), "RMSprop is not supported"),
    (lambda p: torch.optim.Adam([{"params": p}, {"params": [torch.nn.Parameter(torch.ones(1))]}]), "2 parameter"),
])
def test_unsupported_optimizer_settings_are_one_line_config_errors(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        OptimizerSpec.from_torch(make([torch.nn.Parameter(torch.zeros(3))]))
    assert "\n" not in str(e.value)


def test_spec_is_frozen_and_json_round_trips() -> None:
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2))], lr=0.05, lr_decay=0.1,
                              initial_accumulator_value=0.2, eps=1e-9)
    spec = OptimizerSpec.from_torch(opt, grad_format="topk_fp16", half_copy=True)
    assert spec.kind == "adagrad" and spec.state_names == ("sum",)
    assert OptimizerSpec.from_json(spec.to_json()) == spec
    with pytest.raises(AttributeError):
        spec.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="grad_format"):
        OptimizerSpec.from_torch(opt, grad_format="int8")
    with pytest.raises(ConfigError, match="not an OptimizerSpec"):
        OptimizerSpec.from_json('{"kind": "adam"}')
