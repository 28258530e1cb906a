"""The manifest's toolchain record: every package and tool that shapes generated files, deterministic."""

from __future__ import annotations

from hwforge.toolchain import artifact_versions, conversion_yosys


def test_artifact_versions_names_every_tool() -> None:
    versions = artifact_versions()
    assert set(versions) >= {"hwforge", "torch", "amaranth", "numpy", "jinja2", "yosys", "verilator", "gcc", "g++"}
    assert list(versions) == sorted(versions)
    assert all(isinstance(v, str) and v and "\n" not in v for v in versions.values())
    assert versions == artifact_versions()  # cached and stable
    assert versions["yosys"] == conversion_yosys() != "missing"  # Verilog conversion needs one
    assert not versions["gcc"].startswith("/") and not versions["g++"].startswith("/")  # versions, not paths
