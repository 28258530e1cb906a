"""`hwforge report DIR --plot FILE` on a real artifact: compile and verify a tiny gemm design, then plot it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_plot_writes_a_png_after_verify(tmp_path: Path) -> None:
    art = tmp_path / "A"
    assert run_cli("compile", "mlp-digits", "--target", "gemm", "-o", str(art),
                   "--set", "rows=2", "--set", "cols=2").code == 0
    # before verify: no measured cycles; the plot shows the predictions (or exits 2 with one line), never crashes
    early = run_cli("report", str(art), "--plot", str(tmp_path / "early.png"))
    assert early.code in (0, 2), early.stderr
    if early.code == 2:
        assert len(early.stderr.strip().splitlines()) == 1 and "hwforge verify" in early.stderr
    verified = run_cli("verify", str(art), "--json")
    assert verified.code == 0, verified.stderr

    r = run_cli("report", str(art), "--plot", str(tmp_path / "a.png"), "--json")
    assert r.code == 0, r.stderr
    assert r.json["plot"] == str(tmp_path / "a.png")
    png = (tmp_path / "a.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert run_cli("report", str(art), "--plot", str(tmp_path / "b.png")).code == 0
    assert (tmp_path / "b.png").read_bytes() == png, "the same artifact must give the same PNG bytes"
