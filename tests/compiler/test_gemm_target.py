"""End to end on the `gemm` target: compile, verify on Verilator, catch a broken design, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwforge.compiler.artifact import sha256_bytes
from hwforge.compiler.driver import compile_model
from hwforge.host import load_artifact
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlp_4x4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gemm") / "A"
    r = run_cli("compile", "mlp-digits", "--target", "gemm", "-o", str(out), "--set", "rows=4", "--set", "cols=4",
                "--set", "samples=8")
    assert r.code == 0, r.stderr
    return out


def test_verify_mlp_4x4_passes_with_counters(mlp_4x4: Path) -> None:
    r = run_cli("verify", str(mlp_4x4), "--json", "--seed", "3")
    assert r.code == 0, r.stderr
    result = r.json
    assert result["passed"] is True and result["mismatches"] == 0
    for key in ("cycles", "bytes_read", "bytes_written"):
        assert result[key] > 0
    # every weight byte must have been read at least once
    compile_report = json.loads((mlp_4x4 / "reports" / "compile.json").read_text())
    weight_bytes = sum(layer["k"] * layer["n"] for layer in compile_report["layers"])
    assert result["bytes_read"] >= weight_bytes
    # the array's own compute-cycle counter equals the fold formula the compile report predicts
    assert result["compute_cycles"] == sum(layer["compute_cycles_expected"] for layer in compile_report["layers"])
    # the roofline bound is a bound: no run beats it, and it is the sum of the per-layer bounds
    assert 0 < result["bound_cycles"] <= result["cycles"]
    assert result["bound_cycles"] == sum(layer["bound_cycles"] for layer in compile_report["layers"])
    # the cycle model's prediction (per layer at compile time, for the memory verify simulates) is reported
    # beside the measured total and is within the error the benchmark measures
    assert result["predicted_cycles"] == sum(layer["predicted_cycles"] for layer in compile_report["layers"])
    assert abs(result["cycles"] / result["predicted_cycles"] - 1) <= 0.15
    assert result["schema"] == 1 and result["kind"] == "verify" and result["target"] == "gemm"
    assert (mlp_4x4 / "reports" / "verify.json").exists()


@pytest.mark.parametrize("model,sets", [
    ("mlp-digits", ["rows=8", "cols=8"]),
    ("mlp-digits", ["rows=4", "cols=4", "dataflow=ws"]),
    ("cnn-digits", ["rows=4", "cols=4"]),
])
def test_verify_variants(tmp_path: Path, model: str, sets: list[str]) -> None:
    out = tmp_path / "A"
    compile_model(model, "gemm", out, [*sets, "samples=2"])
    result = load_artifact(out).verify(seed=1)
    assert result.passed, result.layers
    assert result.mismatches == 0


def _corrupt(artifact: Path, fault: str) -> None:
    """Swap the artifact's Verilog for a deliberately broken variant and re-seal the manifest."""
    import hwforge.rtl.gemm as rtl
    from hwforge.compiler.targets import get_target

    manifest = json.loads((artifact / "manifest.json").read_text())
    cfg = get_target("gemm").options_from_manifest(manifest)
    verilog = rtl.emit_verilog(cfg, fault=fault)
    (artifact / "rtl" / "gemm.v").write_text(verilog)
    manifest["files"]["rtl/gemm.v"]["sha256"] = sha256_bytes(verilog.encode())
    (artifact / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("fault", ["flip_acc_bit", "drop_last_fold"])
def test_broken_design_is_caught(tmp_path: Path, fault: str) -> None:
    broken = tmp_path / "B"
    compile_model("mlp-digits", "gemm", broken, ["rows=4", "cols=4", "samples=8"])
    _corrupt(broken, fault)
    r = run_cli("verify", str(broken), "--json")
    assert r.code == 1, r.stderr
    assert r.json["passed"] is False and r.json["mismatches"] > 0


def test_runtime_runs_new_inputs(mlp_4x4: Path) -> None:
    art = load_artifact(mlp_4x4)
    name = json.loads((mlp_4x4 / "manifest.json").read_text())["inputs"][0]
    x = np.load(mlp_4x4 / "inputs" / f"{name}.npy")
    flipped = x[::-1].copy()
    out = art.run({name: flipped}, seed=5)
    ref = art.run({name: x}, seed=0)
    (key,) = out
    assert np.array_equal(out[key], ref[key][::-1])


def test_build_makes_an_ecp5_bitstream_with_resources(tmp_path: Path) -> None:
    """`hwforge build` on a small configuration (the 4x4 acceptance build takes about 4 minutes; see README)."""
    out = tmp_path / "A"
    compile_model("mlp-digits", "gemm", out, ["rows=2", "cols=2", "samples=1"])
    r = run_cli("build", str(out), "--board", "ulx3s-85f", "--json", timeout=1800)
    assert r.code == 0, r.stderr
    report = r.json
    assert (out / "build" / "ulx3s-85f" / "top.bit").stat().st_size > 0
    assert report["fmax_mhz"] > 0 and report["luts"] > 0 and report["dsps"] > 0
    assert (out / "reports" / "build.json").exists()
    shown = run_cli("report", str(out), "--json")
    assert shown.code == 0 and shown.json["reports"]["build"]["luts"] == report["luts"]


def test_a_resealed_program_image_that_disagrees_with_the_ir_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "A"
    compile_model("mlp-digits", "gemm", out, ["rows=2", "cols=2", "samples=1"])
    hexfile = out / "mem" / "program.hex"
    lines = hexfile.read_text().splitlines()
    lines[20] = f"{int(lines[20], 16) ^ 1:08x}"  # one weight word
    text = "\n".join(lines) + "\n"
    hexfile.write_text(text)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["mem/program.hex"]["sha256"] = sha256_bytes(text.encode())
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("verify", str(out), "--json")
    assert r.code == 2 and "program.hex does not match" in r.json["error"]
