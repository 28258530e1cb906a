"""The `localut` target end to end: low-bit quantisation, DPU kernels on the emulation, verification, build, runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwforge.compiler.driver import compile_model
from hwforge.compiler.targets import get_target
from hwforge.errors import ConfigError, IRError, UnsupportedOpError
from hwforge.host import load_artifact
from hwforge.ir import Graph, TensorType
from hwforge.ir import quant_lowbit as ql
from hwforge.testing import faults
from tests.conftest import run_cli

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("gcc") is None, reason="the DPU emulation needs gcc")]


@pytest.fixture(scope="module")
def mac_w2a2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("localut") / "A"
    compile_model("mlp-digits", "localut", out, ["wbits=2", "abits=2", "kernel=mac", "samples=24"])
    return out


def test_cli_verify_is_bit_exact_with_accuracies_and_cycles(mac_w2a2: Path) -> None:
    r = run_cli("verify", str(mac_w2a2), "--json", "--seed", "2")
    assert r.code == 0, r.stderr
    res = r.json
    assert res["passed"] is True and res["mismatches"] == 0
    assert [layer["layer"] for layer in res["layers"]] == ["fc1", "fc2"]
    for layer in res["layers"]:
        assert layer["mismatches"] == 0 and layer["random_codes_mismatches"] == 0
        assert layer["cycles"] > 0 and layer["kernel_s"] > 0 and layer["bound"] in ("issue", "chain", "mram")
    out = res["outputs"]["output"]
    assert out["accuracy_hardware"] == out["accuracy_int_reference"]  # bit-exact device, same argmax
    assert 0.5 < out["accuracy_hardware"] <= 1.0 and "accuracy_float" in out
    assert res["total_cycles"] == sum(layer["cycles"] for layer in res["layers"])
    files = {p.relative_to(mac_w2a2).as_posix() for p in mac_w2a2.rglob("*") if p.is_file()}
    for f in ("dpu/fc1.c", "dpu/fc2.c", "dpu/hwforge_count.h", "host/host.c", "Makefile", "data/fc1/layout.txt",
              "data/fc1/args.bin", "data/fc1/weights.bin", "data/fc2/acts.bin", "expected/int/fc2.mm.npy",
              "reports/compile.json", "reports/verify.json"):
        assert f in files


def test_localut_kernel_w4a4_p3_and_runtime(tmp_path: Path) -> None:
    out = tmp_path / "L"
    compile_model("mlp-digits", "localut", out, ["wbits=4", "abits=4", "p=3", "scheme=joint", "samples=4"])
    art = load_artifact(out)
    res = art.verify(seed=1).to_dict()
    assert res["passed"], res["layers"]
    assert {(layer["kernel"], layer["p"], layer["scheme"]) for layer in res["layers"]} == {("localut", 3, "joint")}
    x = np.load(out / "inputs" / "x.npy")
    flipped = art.run({"x": x[::-1].copy()})["output"]
    assert np.array_equal(flipped, art.run({"x": x})["output"][::-1])


def test_wrong_kernel_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "B"
    with faults.inject("localut", "drop_last_k_group"):
        compile_model("mlp-digits", "localut", out, ["kernel=bitserial", "samples=4"])
    assert json.loads((out / "manifest.json").read_text())["test_faults"] == {"localut": "drop_last_k_group"}
    r = run_cli("verify", str(out), "--json")  # a new process: the fault comes from the manifest
    assert r.code == 1, r.stderr
    assert r.json["passed"] is False and r.json["layers"][0]["mismatches"] > 0


def test_wrong_lut_kernel_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "F"
    with faults.inject("localut", "slice_off_by_one"):
        compile_model("mlp-digits", "localut", out, ["p=2", "samples=2"])
    res = load_artifact(out).verify()
    assert res.passed is False and res.layers[0].mismatches > 0


def test_cnn_through_im2col_on_bitserial(tmp_path: Path) -> None:
    out = tmp_path / "C"
    compile_model("cnn-digits", "localut", out, ["kernel=bitserial", "wbits=3", "abits=2", "samples=2", "dpus=3"])
    res = load_artifact(out).verify().to_dict()
    assert res["passed"] and [layer["layer"] for layer in res["layers"]] == ["conv1", "conv2", "fc"]
    assert res["layers"][0]["k"] == 9 and res["layers"][1]["k"] == 72


def test_build_without_sdk_says_so_and_builds_emulation(mac_w2a2: Path, capsys, monkeypatch) -> None:
    import hwforge.toolchain as tc

    monkeypatch.setattr(tc, "which", lambda name: None if name.startswith("dpu-") else shutil.which(name))
    manifest = json.loads((mac_w2a2 / "manifest.json").read_text())
    res = get_target("localut").build(mac_w2a2, manifest, "")
    assert res["dpu_binary"] is False and res["emulation"] is True
    assert "no DPU binary was made" in capsys.readouterr().err
    assert all((mac_w2a2 / f).exists() for f in res["binaries"])


def test_bad_options_exit_2() -> None:
    r = run_cli("compile", "mlp-digits", "--target", "localut", "--set", "wbits=5", "--json")
    assert r.code == 2 and "wbits" in r.json["error"]
    tgt = get_target("localut")
    for sets, word in ((({"kernel": "fpga"}), "kernel"), ({"scheme": "odd"}, "scheme"), ({"p": "8"}, "fits"),
                       ({"frobnicate": "1"}, "unknown option"), ({"fault": "slice_off_by_one"}, "unknown option"),
                       ({"g": "3"}, "g=3")):
        with pytest.raises(ConfigError, match=word):
            tgt.parse_options(sets)
    assert tgt.parse_options({"wbits": "2", "abits": "2"}).p == 4  # p=0 resolves to the default p, once
    assert tgt.parse_options({"kernel": "mac"}).p == 0  # the baselines take no p
    with faults.inject("localut", "slice_off_by_one"), pytest.raises(ConfigError, match="LUT kernel only"):
        compile_model("mlp-digits", "localut", Path("never-written"), ["kernel=mac", "samples=1"])
    assert not Path("never-written").exists()
    with pytest.raises(ConfigError, match="unknown fault"), faults.inject("localut", "nope"):
        pass


def test_ops_and_pass_refuse_bad_graphs(loaded) -> None:
    from hwforge.compiler import PASSES, Calibration, run_pipeline

    g = Graph("t")
    g.add("x", "input", [], {}, TensorType((2, 4), "int3"))
    g.add_constant("w", np.array([[0, 1, 2, 4]], dtype=np.int8), "int4")  # code 4 does not fit 2 bits
    g.add_constant("lv", ql.odd_levels(2).astype(np.int8), "int8")
    g.add("y", "lowbit_matmul", ["x", "w", "lv"], {"wbits": 2, "abits": 2}, TensorType((2, 1), "int32"))
    g.add("out", "output", ["y"], {}, TensorType((2, 1), "int32"))
    with pytest.raises(IRError, match="weight codes must be in 0..3"):
        g.verify()
    model = loaded["mlp-digits"]
    negative = {"x": model.calibration["x"] - 8.0}
    with pytest.raises(UnsupportedOpError, match="negative"):
        run_pipeline(model.graph, [PASSES["quantize_lowbit"]()], Calibration(negative))
