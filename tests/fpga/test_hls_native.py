"""NativeUpdater (the HLS kernel compiled by g++): the API the offloaded trainer uses, checked against
torch.optim and the IR on sizes that are not multiples of the beat or the chunk; broken kernels are caught."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError
from hwforge.fpga import NativeUpdater
from hwforge.fpga.hls import HlsOptions
from hwforge.fpga.hls.csim import compare, make_inputs, run_ir, run_kernel, torch_reference
from hwforge.ir import OptimizerSpec, lower_optimizer

CHUNK = 64  # small chunks so that small vectors still span several chunks and a partial one


def _verify(spec: OptimizerSpec, n: int, steps: int = 4, seed: int = 0, loss_scale: float = 1.0,
            options: HlsOptions | None = None) -> dict:
    upd = NativeUpdater.build(spec, options=options or HlsOptions(chunk=CHUNK))
    inputs = make_inputs(spec, n, steps, seed, topk_ratio=0.05, loss_scale=loss_scale)
    k = inputs["grad_indices"].shape[1] if spec.topk else None
    return compare(run_kernel(upd, inputs), run_ir(lower_optimizer(spec, n, k), spec, inputs),
                   torch_reference(spec, inputs))


@pytest.mark.parametrize(("spec", "dataflow"), [
    (OptimizerSpec(kind="adamw", lr=1e-2, weight_decay=0.01, half_copy=True), False),
    (OptimizerSpec(kind="adam", lr=1e-2, weight_decay=0.01, betas=(0.3, 0.99), grad_format="fp16"), True),
    (OptimizerSpec(kind="sgd", lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3, grad_format="topk_fp16",
                   half_copy=True), False),
    (OptimizerSpec(kind="sgd", lr=0.1, momentum=0.9, nesterov=True, grad_format="topk_fp32"), True),
    (OptimizerSpec(kind="adagrad", lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01,
                   half_copy=True), True),
    (OptimizerSpec(kind="sgd", lr=0.1), False),
])
def test_kernel_matches_ir_exactly_and_torch_within_tolerance(spec: OptimizerSpec, dataflow: bool) -> None:
    r = _verify(spec, 1003, loss_scale=64.0, options=HlsOptions(chunk=CHUNK, dataflow=dataflow))
    assert r["passed"], r
    assert r["mismatches"] == 0
    if spec.kind == "sgd":  # no sqrt: bit-exact with torch.optim too
        assert all(t["mismatches_vs_torch"] == 0 for t in r["tensors"].values())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 200), kind=st.sampled_from(["adam", "adamw", "sgd", "adagrad"]),
       grad=st.sampled_from(["fp32", "fp16", "topk_fp16", "topk_fp32"]), lr=st.floats(1e-4, 0.1),
       seed=st.integers(0, 1000))
def test_random_sizes_and_hyperparameters(n: int, kind: str, grad: str, lr: float, seed: int) -> None:
    spec = OptimizerSpec(kind=kind, lr=lr, momentum=0.5 if kind == "sgd" else 0.0, weight_decay=0.01,
                         grad_format=grad, half_copy=True)
    r = _verify(spec, n, steps=3, seed=seed)
    assert r["passed"], r


def test_api_in_place_update_lr_override_and_state_names(tmp_path) -> None:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.1)
    spec = OptimizerSpec.from_torch(opt, grad_format="fp32", half_copy=True)
    upd = NativeUpdater.build(spec, cache_dir=tmp_path)
    assert upd.library_path.parent.parent == tmp_path and upd.state_names == ("exp_avg", "exp_avg_sq")
    n = 37
    rng = np.random.default_rng(3)
    param = rng.standard_normal(n).astype(np.float32)
    p = torch.nn.Parameter(torch.from_numpy(param.copy()))
    ref = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.1)
    states = {name: np.zeros(n, np.float32) for name in upd.state_names}
    for step in (1, 2, 3):
        grad = rng.standard_normal(n).astype(np.float32)
        lr = 1e-3 if step < 3 else 5e-4  # a scheduler changed lr: torch reads the group, we pass lr=
        ref.param_groups[0]["lr"] = lr
        p.grad = torch.from_numpy(grad.copy())
        ref.step()
        half = upd.step(param, states, grad, step, lr=lr)
    np.testing.assert_allclose(param, p.detach().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(states["exp_avg"], ref.state[p]["exp_avg"].numpy())
    assert half.dtype == np.float16 and np.array_equal(half, param.astype(np.float16))


def test_topk_unsorted_indices_are_sorted_and_n1_works() -> None:
    spec = OptimizerSpec(kind="sgd", lr=0.5, momentum=0.9, grad_format="topk_fp32")
    upd = NativeUpdater.build(spec, options=HlsOptions(chunk=CHUNK))
    param = np.arange(40, dtype=np.float32)
    states = {"momentum_buffer": np.zeros(40, np.float32)}
    idx = np.array([39, 3, 17], np.int32)
    vals = np.array([1.0, 2.0, -4.0], np.float32)
    assert upd.step(param, states, (idx, vals), 1) is None
    expected = np.arange(40, dtype=np.float32)
    expected[[39, 3, 17]] -= 0.5 * vals
    np.testing.assert_array_equal(param, expected)
    one = np.ones(1, np.float32)
    upd.step(one, {"momentum_buffer": np.zeros(1, np.float32)}, (np.zeros(1, np.int32), np.ones(1, np.float32)), 1)
    assert one[0] == 0.5


def test_bad_arguments_are_config_errors() -> None:
    spec = OptimizerSpec(kind="adagrad", lr=0.1, grad_format="topk_fp16")
    upd = NativeUpdater.build(spec, options=HlsOptions(chunk=CHUNK))
    param, st_ = np.zeros(8, np.float32), {"sum": np.zeros(8, np.float32)}
    good = (np.array([1], np.int32), np.ones(1, np.float16))
    for bad_call, match in [
        (lambda: upd.step(param.astype(np.float64), st_, good, 1), "param must be a 1-D numpy float32"),
        (lambda: upd.step(param, {}, good, 1), "states must have exactly the keys"),
        (lambda: upd.step(param, st_, (np.array([8], np.int32), np.ones(1, np.float16)), 1), r"\[0, 8\)"),
        (lambda: upd.step(param, st_, (np.array([1], np.int32), np.ones(1, np.float32)), 1), "float16"),
        (lambda: upd.step(param, st_, np.zeros(8, np.float16), 1), "indices int32, values"),
        (lambda: upd.step(param, st_, good, 0), "1-based"),
        (lambda: upd.step(param, st_, good, 1, loss_scale=0.0), "loss_scale"),
    ]:
        with pytest.raises(ConfigError, match=match):
            bad_call()


def test_load_in_another_process_and_refuse_a_foreign_spec(tmp_path) -> None:
    spec = OptimizerSpec(kind="adam", lr=1e-3, grad_format="fp16", half_copy=True)
    upd = NativeUpdater.build(spec, cache_dir=tmp_path)
    code = (
        "import numpy as np, sys\n"
        "from hwforge.ir import OptimizerSpec\nfrom hwforge.fpga import NativeUpdater\n"
        "spec = OptimizerSpec.from_json(sys.argv[2])\nu = NativeUpdater.load(sys.argv[1], spec)\n"
        "p = np.ones(21, np.float32); s = {k: np.zeros(21, np.float32) for k in u.state_names}\n"
        "h = u.step(p, s, np.full(21, 0.5, np.float16), 1)\nprint(float(p[20]), h.dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(upd.library_path), spec.to_json()], capture_output=True,
                         text=True, check=True).stdout.split()
    assert float(out[0]) == pytest.approx(1 - 1e-3) and out[1] == "float16"
    other = OptimizerSpec(kind="adam", lr=1e-3, betas=(0.8, 0.999), grad_format="fp16", half_copy=True)
    with pytest.raises(ConfigError, match="was not built for this optimizer spec"):
        NativeUpdater.load(upd.library_path, other)


@pytest.mark.parametrize("fault", ["drop_tail", "no_bias_correction"])
def test_broken_kernels_are_caught(fault: str) -> None:
    spec = OptimizerSpec(kind="adamw", lr=1e-2, weight_decay=0.01, half_copy=True)
    r = _verify(spec, 1003, options=HlsOptions(chunk=CHUNK, fault=fault))
    assert r["passed"] is False
    assert r["tensors"]["param"]["mismatches_vs_ir"] > 0


def test_threads_update_concurrently_with_identical_results() -> None:
    from concurrent.futures import ThreadPoolExecutor

    spec = OptimizerSpec(kind="adamw", lr=1e-2, weight_decay=0.01, half_copy=True)
    upd = NativeUpdater.build(spec, options=HlsOptions(chunk=CHUNK))
    rng = np.random.default_rng(5)
    shards = [(rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32))
              for n in (1000, 333, 4097, 17)]

    def run(shard):
        param, grad = shard[0].copy(), shard[1]
        states = {k: np.zeros(param.size, np.float32) for k in upd.state_names}
        for step in (1, 2):
            half = upd.step(param, states, grad, step)
        return param, half

    sequential = [run(s) for s in shards]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run, shards))
    for (p1, h1), (p2, h2) in zip(sequential, parallel, strict=True):
        assert np.array_equal(p1, p2) and np.array_equal(h1, h2)
