"""End to end on the `snf` target: compile, verify with aggregations on Verilator, catch a broken design."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwforge.compiler.artifact import sha256_bytes
from hwforge.compiler.driver import compile_model
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# hardware fields equal to tests/rtl's 2-engine build, so one Verilator build serves both
TWO_ENGINES = ["engines=2", "cache_kb=8", "ways=4", "max_row_lines=8"]


def _sets(*extra: str) -> list[str]:
    return [arg for item in [*TWO_ENGINES, *extra] for arg in ("--set", item)]


def test_gcn_karate_verifies_with_traffic_by_class_and_hit_rate(tmp_path: Path) -> None:
    out = tmp_path / "D"
    r = run_cli("compile", "gcn-karate", "--target", "snf", "-o", str(out), *_sets())
    assert r.code == 0, r.stderr
    r = run_cli("verify", str(out), "--json", "--seed", "2")
    assert r.code == 0, r.stderr
    result = r.json
    assert result["passed"] is True and result["mismatches"] == 0
    assert [layer["node"] for layer in result["layers"]] == ["conv1", "conv2"]
    assert result["cycles"] > 0 and 0.0 < result["cache_hit_rate"] < 1.0
    for cls in ("topology", "features", "outputs"):
        assert result["bytes_by_class"][cls] > 0
    assert all(layer["tuner_log"] for layer in result["layers"])
    # hardware-in-the-loop output classifies the club as well as float PyTorch
    out_metrics = result["outputs"]["output"]
    assert out_metrics["accuracy_hardware"] == out_metrics["accuracy_float"]


def test_residual_gcn_depth_8_and_a_user_graph_file(tmp_path: Path) -> None:
    for spec in ("resgcn-syn500-d8", f"{EXAMPLES / 'gcn_user_graph.py'}:build"):
        out = tmp_path / spec.split("/")[-1].replace(":", "-")
        compile_model(spec, "snf", out, [*TWO_ENGINES, "policy=static", "slice_lines=1"])
        r = run_cli("verify", str(out), "--json")
        assert r.code == 0, (spec, r.stderr)
        assert r.json["passed"] and r.json["mismatches"] == 0
    assert len(r.json["layers"]) == 2
    resgcn = json.loads((tmp_path / "resgcn-syn500-d8" / "reports" / "verify.json").read_text())
    assert len(resgcn["layers"]) == 9  # head conv + 8 residual blocks


def test_broken_aggregator_is_caught(tmp_path: Path) -> None:
    import hwforge.rtl.gcn as rtl
    from hwforge.compiler.targets import get_target

    out = tmp_path / "D"
    compile_model("gcn-karate", "snf", out, TWO_ENGINES)
    manifest = json.loads((out / "manifest.json").read_text())
    verilog = rtl.emit_verilog(get_target("snf").config(manifest["options"]), fault="drop_last_edge")
    (out / "rtl" / "snf.v").write_text(verilog)
    manifest["files"]["rtl/snf.v"]["sha256"] = sha256_bytes(verilog.encode())
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("verify", str(out), "--json")
    assert r.code == 1 and r.json["passed"] is False and r.json["mismatches"] > 0


def test_snf_options_are_validated(tmp_path: Path) -> None:
    for bad in ("engines=9", "policy=random", "feat_bits=8", "cache_kb=3"):
        r = run_cli("compile", "gcn-karate", "--target", "snf", "-o", str(tmp_path / "X"), "--set", bad, "--json")
        assert r.code == 2 and bad.split("=")[0] in r.json["error"], r.json
    r = run_cli("compile", "mlp-digits", "--target", "snf", "-o", str(tmp_path / "Y"))
    assert r.code == 2 and "aggregation" in r.stderr
