"""`hwforge compile` is deterministic: two compiles of the same model and options, in separate processes with
their own empty build caches, different hash seeds, working directories and output paths, give byte-identical
artifact trees. Also checks that every generated source file in them starts with the generated-file header."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwforge.generated import hwforge_version, parse_header

CASES = {
    "gemm": ["mlp-digits", "--set", "rows=2", "--set", "cols=2"],
    "snf": ["gcn-karate", "--set", "engines=1", "--set", "cache_kb=1", "--set", "ways=2", "--set", "lanes=2",
            "--set", "max_row_lines=1", "--set", "max_chunk=4", "--set", "candidates=1", "--set", "comb_rows=2",
            "--set", "comb_cols=2"],
    "localut": ["mlp-digits", "--set", "wbits=2", "--set", "abits=2", "--set", "samples=4"],
    "smartupdate": ["adamw", "--set", "n=1001", "--set", "steps=2"],
}
SOURCE_SUFFIXES = (".v", ".il", ".c", ".h", ".cpp")


def _compile(target: str, run: Path, seed: str) -> Path:
    """One compile in a fresh process: its own empty build cache, hash seed and working directory."""
    out = run / "artifact"
    (run / "cwd").mkdir(parents=True)
    env = {**os.environ, "HWFORGE_BUILD_CACHE": str(run / "cache"), "PYTHONHASHSEED": seed, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "hwforge", "compile", *CASES[target], "--target", target,
                           "-o", str(out)], capture_output=True, text=True, env=env, cwd=run / "cwd", timeout=600)
    assert proc.returncode == 0, f"compile {target} failed:\n{proc.stderr[-2000:]}"
    return out


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_cli_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "hwforge", "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "compile" in proc.stdout


@pytest.mark.parametrize("target", sorted(CASES))
def test_compile_is_byte_identical_across_processes(tmp_path: Path, target: str) -> None:
    a = _compile(target, tmp_path / "run-a", "1")
    b = _compile(target, tmp_path / "run-b", "2")
    files = _tree(a)
    assert files == _tree(b), "the two compiles wrote different file lists"
    assert "manifest.json" in files
    differing = [f for f in files if not filecmp.cmp(a / f, b / f, shallow=False)]
    assert not differing, f"{len(differing)} files differ, first: {differing[0]}"

    for f in files:
        if f.endswith(SOURCE_SUFFIXES):
            parsed = parse_header((a / f).read_text())
            assert parsed is not None, f"{f} has no generated-file header"
            assert parsed.generator.startswith("hwforge.") and parsed.version == hwforge_version(), f
            assert parsed.config, f"{f}: the header lists no configuration"
            assert str(tmp_path) not in (a / f).read_text(), f"{f} contains the output path"
