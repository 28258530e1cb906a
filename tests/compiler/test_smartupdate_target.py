"""The `smartupdate` target end to end: compile an optimizer, verify the C simulation against torch.optim,
byte-identical artifacts, a broken kernel caught, clear errors for bad input and for a missing v++."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hwforge.cli import app
from hwforge.compiler.artifact import read_manifest
from hwforge.compiler.driver import compile_model
from hwforge.compiler.targets import get_target
from hwforge.errors import ConfigError
from hwforge.testing import faults
from tests.conftest import run_cli

USER_OPTIMIZER = '''
import torch

def build():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.8, dampening=0.2, weight_decay=1e-3)

def foreign():
    model = torch.nn.Linear(2, 2)
    return model, torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
'''


def _cli(*args: str) -> tuple[int, dict, str]:
    """The CLI in this process (no interpreter start-up): exit code, the JSON on stdout, stderr."""
    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return r.exit_code, json.loads(r.stdout), r.stderr


def _verify(directory: Path) -> dict:
    return get_target("smartupdate").verify(directory, read_manifest(directory), 0).to_dict()


def test_cli_compile_verify_report_and_build(tmp_path: Path) -> None:
    out = tmp_path / "A"
    r = run_cli("compile", "adamw", "--target", "smartupdate", "-o", str(out), "--json")
    assert r.code == 0, r.stderr
    files = set(read_manifest(out)["files"])
    assert {"ir.json", "hls/adamw_update.cpp", "hls/adamw_update.h", "host/host.cpp", "Makefile", "link.cfg",
            "reports/compile.json", "inputs/param.npy", "inputs/grad.npy", "expected/param.npy",
            "expected/exp_avg.npy", "expected/exp_avg_sq.npy", "expected/param_fp16.npy"} <= files
    v = run_cli("verify", str(out), "--json")
    assert v.code == 0 and v.json["passed"] is True, v.stdout
    tensors = v.json["tensors"]
    assert set(tensors) == {"param", "exp_avg", "exp_avg_sq", "param_fp16"}
    assert all("max_abs_error" in t and "max_rel_error" in t for t in tensors.values())
    assert v.json["n"] == 10007 and v.json["steps"] == 5
    code, rep, _ = _cli("report", str(out), "--json")
    assert code == 0 and rep["reports"]["verify"]["passed"] is True
    code, b, err = _cli("build", str(out), "--json")
    assert code == 2 and "v++" in b["error"] and str(out / "Makefile") in b["error"]
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err  # progress line + the error


def test_artifacts_are_byte_identical(tmp_path: Path) -> None:
    sets = ["grad=topk_fp16", "n=1000", "steps=2", "chunk=64", "dataflow=1", "loss_scale=1024"]
    a = compile_model("sgd-momentum", "smartupdate", tmp_path / "a", sets)
    b = compile_model("sgd-momentum", "smartupdate", tmp_path / "b", sets)
    for name in read_manifest(a.artifact)["files"]:
        assert (a.artifact / name).read_bytes() == (b.artifact / name).read_bytes(), name
    assert (a.artifact / "manifest.json").read_bytes() == (b.artifact / "manifest.json").read_bytes()
    r = _verify(a.artifact)
    assert r["passed"] and all(t["mismatches_vs_torch"] == 0 for t in r["tensors"].values())  # SGD: exact
    # the runtime entry point: the artifact's kernel on (here: the same) inputs
    manifest = read_manifest(a.artifact)
    inputs = {n: np.load(a.artifact / "inputs" / f"{n}.npy") for n in manifest["inputs"]}
    out = get_target("smartupdate").run(a.artifact, manifest, inputs)
    assert np.array_equal(out["param"], np.load(a.artifact / "expected" / "param.npy"))


@pytest.mark.parametrize(("model", "sets"), [
    ("adam", ["grad=fp16", "half_copy=0", "n=333", "steps=3", "chunk=32"]),
    ("adagrad", ["grad=topk_fp32", "topk=0.1", "n=777", "steps=3"]),
])
def test_other_optimizers_and_formats_verify(tmp_path: Path, model: str, sets: list[str]) -> None:
    res = compile_model(model, "smartupdate", tmp_path / model, sets)
    r = _verify(res.artifact)
    assert r["passed"], r
    assert ("param_fp16" in r["tensors"]) == ("half_copy=0" not in sets)


def test_user_file_optimizer_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "opt.py"
    src.write_text(USER_OPTIMIZER)
    res = compile_model(f"{src}:build", "smartupdate", tmp_path / "U", ["n=100", "steps=3"])
    spec = json.loads((res.artifact / "optimizer.json").read_text())
    assert spec["kind"] == "sgd" and spec["momentum"] == 0.8 and spec["dampening"] == 0.2
    assert _verify(res.artifact)["passed"]
    with pytest.raises(ConfigError, match="over the model's parameters"):
        compile_model(f"{src}:foreign", "smartupdate", tmp_path / "F", [])
    for bad in ("grad=int8", "n=0", "chunk=100", "topk=2", "dataflow=2", "colour=red", "fault=sometimes"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            compile_model("adamw", "smartupdate", tmp_path / "X", [bad])
    with pytest.raises(ConfigError, match="overflows the f16"):
        compile_model("adamw", "smartupdate", tmp_path / "X", ["grad=fp16", "loss_scale=1e6"])
    with pytest.raises(ConfigError, match="n\\*steps"):
        compile_model("adamw", "smartupdate", tmp_path / "X", ["n=67108864", "steps=1000"])
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        compile_model("rmsprop", "smartupdate", tmp_path / "X", [])
    assert not (tmp_path / "X").exists() and not (tmp_path / "F").exists()


def test_broken_kernel_fails_verification_with_exit_1(tmp_path: Path) -> None:
    with faults.inject("smartupdate", "drop_tail"):
        res = compile_model("adamw", "smartupdate", tmp_path / "B", ["n=1001", "steps=2"])
    r = _verify(res.artifact)
    assert r["passed"] is False and r["mismatches"] > 0
    code, v, _ = _cli("verify", str(res.artifact), "--json")
    assert code == 1 and v["passed"] is False


def test_inspect_and_zoo_list_optimizers() -> None:
    code, r, _ = _cli("inspect", "adamw", "--target", "smartupdate", "--set", "grad=topk_fp16", "--json")
    assert code == 0 and "scatter" in r["ir"] and "%out.param = output(%param.new)" in r["ir"]
    code, z, _ = _cli("zoo", "--json")
    assert {"adamw", "adam", "sgd-momentum", "adagrad"} <= {o["name"] for o in z["optimizers"]}
    assert {"mlp-digits"} <= {m["name"] for m in z["models"]}
