"""End to end on the `snf` target: compile, verify the whole accelerator (`SnfSystem`: aggregation, combination
engine and layer sequencer in one design) on Verilator, catch a broken aggregator, combination engine and
sequencer, and build the whole design into a bitstream."""

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
    layers = result["layers"]
    assert [(layer["kind"], layer["node"]) for layer in layers] == [
        ("combination", "conv1.lin"), ("aggregation", "conv1"), ("combination", "conv2.lin"), ("aggregation", "conv2")]
    assert all(layer["mismatches"] == 0 and layer["cycles"] > 0 for layer in layers)
    assert result["cycles"] == result["aggregation_cycles"] + result["combination_cycles"]
    assert result["aggregation_cycles"] > 0 and result["combination_cycles"] > 0 and 0.0 < result["cache_hit_rate"] < 1
    for cls in ("topology", "features", "weights", "outputs"):
        assert result["bytes_by_class"][cls] > 0
    assert sum(result["bytes_by_class"].values()) == result["bytes_read"] + result["bytes_written"]
    aggs = [layer for layer in layers if layer["kind"] == "aggregation"]
    combs = [layer for layer in layers if layer["kind"] == "combination"]
    assert all(layer["tuner_log"] for layer in aggs)
    # combination: X (34 x 34) @ W.T (16 x 34) on the default 4x4 array; 16-bit outputs, 2 per 32-bit word
    assert (combs[0]["m"], combs[0]["k"], combs[0]["n"]) == (34, 34, 16)
    for comb in combs:
        assert sum(comb["bytes_by_class"].values()) == comb["bytes_read"] + comb["bytes_written"]
        # outputs are written in the aggregation's row layout (whole 64-byte lines), 2 elements per 32-bit word
        assert comb["row_elements"] == 32 and comb["n"] <= 16
        assert comb["bytes_by_class"]["outputs"] == comb["bytes_written"] == comb["m"] * comb["row_elements"] // 2 * 4
        assert comb["bytes_by_class"]["weights"] > 0 and comb["bytes_by_class"]["features"] > 0
    compiled = json.loads((out / "reports" / "compile.json").read_text())
    assert [c["compute_cycles_expected"] for c in compiled["combinations"]] == [c["compute_cycles"] for c in combs]
    # one design, one run: the sequencer ran all four layers, chained in memory, from one start
    assert result["system_runs"] == 1 and result["system_cycles"] > result["cycles"]
    assert (out / "rtl" / "snf_system.v").read_text().count("module snf_system(") == 1
    assert not (out / "rtl" / "snf.v").exists() and (out / "mem" / "system.hex").exists()
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
    assert [layer["kind"] for layer in r.json["layers"]] == ["combination", "aggregation"] * 2
    resgcn = json.loads((tmp_path / "resgcn-syn500-d8" / "reports" / "verify.json").read_text())
    # head conv + 8 residual blocks (combination + aggregation each), then the classifier's combination
    assert (resgcn["aggregations"], resgcn["combinations"], len(resgcn["layers"])) == (9, 10, 19)


def _with_fault(out: Path, fault: str) -> None:
    """Replace the artifact's whole-accelerator design with a deliberately broken variant (manifest resealed)."""
    from hwforge.compiler.targets import get_target
    from hwforge.rtl.gcn import system_image

    manifest = json.loads((out / "manifest.json").read_text())
    options = get_target("snf").options_from_manifest(manifest)
    verilog = system_image.emit_verilog(options.aggregation, options.combination(), fault=fault)
    assert verilog != (out / "rtl" / "snf_system.v").read_text()
    (out / "rtl" / "snf_system.v").write_text(verilog)
    manifest["files"]["rtl/snf_system.v"]["sha256"] = sha256_bytes(verilog.encode())
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_broken_aggregator_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "D"
    compile_model("gcn-karate", "snf", out, TWO_ENGINES)
    _with_fault(out, "drop_last_edge")
    r = run_cli("verify", str(out), "--json")
    assert r.code == 1 and r.json["passed"] is False and r.json["mismatches"] > 0


def test_broken_combination_engine_is_caught(tmp_path: Path) -> None:
    """A combination engine whose accumulator bit flips fails verify, naming the combination that went wrong."""
    from hwforge.compiler.artifact import read_manifest
    from hwforge.compiler.targets import get_target

    out = tmp_path / "D"
    compile_model("gcn-karate", "snf", out, [*TWO_ENGINES, "comb_rows=2", "comb_cols=2"])  # a small faulty build
    cfg = get_target("snf").options_from_manifest(read_manifest(out)).combination()
    assert (cfg.rows, cfg.cols, cfg.width, cfg.acc_width) == (2, 2, 16, 32)
    _with_fault(out, "flip_acc_bit")
    result = get_target("snf").verify(out, read_manifest(out), seed=1)  # in process: the CLI path is tested above
    assert result.passed is False and result.mismatches > 0
    first = result.layers[0]
    assert (first.details["kind"], first.node) == ("combination", "conv1.lin") and first.mismatches > 0


def test_broken_layer_sequencer_is_caught(tmp_path: Path) -> None:
    """A sequencer that never starts the last layer of its table: every layer before it is still bit-exact, the
    skipped one is reported with mismatches (its output region was never written)."""
    from hwforge.compiler.artifact import read_manifest
    from hwforge.compiler.targets import get_target

    out = tmp_path / "D"
    compile_model("gcn-karate", "snf", out, [*TWO_ENGINES, "comb_rows=2", "comb_cols=2"])
    _with_fault(out, "skip_last_layer")
    result = get_target("snf").verify(out, read_manifest(out), seed=1)
    assert result.passed is False
    assert [(r.node, r.mismatches > 0) for r in result.layers] == [
        ("conv1.lin", False), ("conv1", False), ("conv2.lin", False), ("conv2", True)]
    assert result.layers[-1].cycles == 0  # no log record: the sequencer never ran it


def test_build_makes_a_whole_accelerator_bitstream(tmp_path: Path) -> None:
    """`hwforge build` puts the whole accelerator (aggregation + combination + sequencer) and the whole GCN's
    image on the ECP5, in the smallest configuration (the README's measured one is larger)."""
    out = tmp_path / "B"
    compile_model("gcn-karate", "snf", out, ["engines=1", "cache_kb=1", "ways=2", "lanes=2", "max_row_lines=1",
                                            "max_chunk=4", "candidates=1", "comb_rows=2", "comb_cols=2"])
    r = run_cli("build", str(out), "--board", "ulx3s-85f", "--json", timeout=3000)
    assert r.code == 0, r.stderr
    report = r.json
    assert (out / "build" / "ulx3s-85f" / "top.bit").stat().st_size > 0
    assert report["program"] == "system.hex"
    assert report["fmax_mhz"] > 0 and report["luts"] > 0 and report["dsps"] > 0  # the combination's multipliers


def test_snf_options_are_validated(tmp_path: Path) -> None:
    from hwforge.compiler.targets import get_target
    from hwforge.errors import ConfigError

    for bad in ("comb_rows=0", "comb_dataflow=xy", "comb_depth=4", "comb_cols=many", "comb_out_depth=3",
                "comb_op_depth=3"):
        key, value = bad.split("=")
        with pytest.raises(ConfigError, match=key):
            get_target("snf").parse_options({key: value})
    # a combination-engine rule of the gemm array is reported under the snf option that set it
    with pytest.raises(ConfigError, match=r"snf: comb_op_depth=4 .*combination engine"):
        get_target("snf").parse_options({"comb_rows": "8", "comb_op_depth": "4"})
    for bad in ("engines=9", "policy=random", "feat_bits=8", "cache_kb=3"):
        r = run_cli("compile", "gcn-karate", "--target", "snf", "-o", str(tmp_path / "X"), "--set", bad, "--json")
        assert r.code == 2 and bad.split("=")[0] in r.json["error"], r.json
    r = run_cli("compile", "mlp-digits", "--target", "snf", "-o", str(tmp_path / "Y"))
    assert r.code == 2 and "aggregation" in r.stderr
    # the combination engine accumulates in 32 bits, like the fixed-point contract's default
    with pytest.raises(ConfigError, match=r"'conv1\.lin' accumulates in 24 bits.*acc_bits=32"):
        compile_model("gcn-karate", "snf", tmp_path / "Z", ["acc_bits=24"])
