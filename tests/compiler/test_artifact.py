"""The artifact writer: atomic, canonical, tamper-evident."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwforge.compiler.artifact import ArtifactWriter, read_manifest
from hwforge.compiler.driver import parse_sets
from hwforge.errors import ConfigError


def _write(out: Path, value: int = 1) -> Path:
    writer = ArtifactWriter(out, "gemm")
    writer.add_text("rtl/top.v", "module top; endmodule\n")
    writer.add_npy("inputs/x.npy", np.arange(6, dtype=np.int8).reshape(2, 3) * value)
    writer.add_json("reports/compile.json", {"b": 2, "a": [1, 2]})
    return writer.commit({"model": "m", "options": {"rows": 4}})


def test_manifest_lists_every_file_with_hash(tmp_path: Path) -> None:
    art = _write(tmp_path / "a")
    manifest = read_manifest(art)
    assert sorted(manifest["files"]) == ["inputs/x.npy", "reports/compile.json", "rtl/top.v"]
    assert manifest["schema"] == 1 and manifest["target"] == "gemm"


def test_same_content_gives_identical_bytes(tmp_path: Path) -> None:
    a, b = _write(tmp_path / "a"), _write(tmp_path / "b")
    for name in ["manifest.json", "inputs/x.npy", "reports/compile.json", "rtl/top.v"]:
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_recompile_replaces_the_whole_artifact(tmp_path: Path) -> None:
    art = _write(tmp_path / "a")
    (art / "stale.txt").write_text("left from an older compile")
    _write(tmp_path / "a", value=2)
    assert not (art / "stale.txt").exists()
    assert np.load(art / "inputs/x.npy")[1, 2] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no staging directories left behind


def test_failed_commit_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ArtifactWriter(tmp_path / "a", "gemm")
    writer.add_text("rtl/top.v", "module top; endmodule\n")
    with pytest.raises(TypeError):
        writer.commit({"options": {"bad": object()}})  # the manifest cannot be serialised
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a hwforge artifact"):
        _write(tmp_path / "a")
    assert (tmp_path / "a" / "thesis.tex").exists()


def test_tampered_file_is_detected(tmp_path: Path) -> None:
    art = _write(tmp_path / "a")
    (art / "rtl/top.v").write_text("module evil; endmodule\n")
    with pytest.raises(ConfigError, match="rtl/top.v was modified"):
        read_manifest(art)


def test_foreign_schema_is_rejected(tmp_path: Path) -> None:
    art = _write(tmp_path / "a")
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["schema"] = 99
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="unsupported artifact schema 99"):
        read_manifest(art)


def test_parse_sets() -> None:
    assert parse_sets(["rows=4", "dataflow = ws"]) == {"rows": "4", "dataflow": "ws"}
    for bad in (["rows"], ["=4"], ["rows="], ["rows=4", "rows=8"]):
        with pytest.raises(ConfigError):
            parse_sets(bad)
