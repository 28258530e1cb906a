"""`hwforge report --plot` from hand-built report dicts (no simulation): what is drawn, and a deterministic PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hwforge.compiler.plot import COMPUTE_ONLY, ROOFLINE, Group, plot_groups, plot_layers
from hwforge.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _per_layer() -> dict[str, Any]:
    """snf-like: every layer measured; bounds from verify rows, one only in the compile report; a wide spread."""
    return {
        "compile": {"layers": [{"node": "agg0", "bound_cycles": 900}, {"node": "comb0", "bound_cycles": 40}]},
        "verify": {"cycles": 125_000, "layers": [
            {"node": "agg0", "cycles": 120_000},
            {"node": "comb0", "cycles": 5_000, "bound_cycles": 4_000},
        ]},
    }


def _whole_run() -> dict[str, Any]:
    """gemm-like today: only the run's total is measured; per-layer bounds in the compile report."""
    return {
        "compile": {"layers": [{"node": "linear", "bound_cycles": 700, "compute_cycles_expected": 600},
                               {"node": "linear_1", "bound_cycles": 300}]},
        "verify": {"cycles": 1_400, "layers": [{"node": "linear", "mismatches": 0},
                                               {"node": "linear_1", "mismatches": 0}]},
    }


def _write_twice(reports: dict[str, Any], tmp_path: Path) -> bytes:
    first = plot_layers(reports, tmp_path / "a.png").read_bytes()
    second = plot_layers(reports, tmp_path / "sub" / "b.png").read_bytes()
    assert first.startswith(PNG_MAGIC)
    assert first == second, "the same reports must give the same PNG bytes"
    return first


def test_per_layer_measured_beside_bound(tmp_path: Path) -> None:
    groups, measured = plot_groups(_per_layer())
    assert measured
    assert groups == [Group("agg0", 120_000, 900, ROOFLINE), Group("comb0", 5_000, 4_000, ROOFLINE)]
    assert groups[1].utilisation == pytest.approx(0.8)
    _write_twice(_per_layer(), tmp_path)


def test_whole_run_only_plots_total_against_summed_bounds(tmp_path: Path) -> None:
    groups, measured = plot_groups(_whole_run())
    assert measured
    assert groups == [Group("whole run", 1_400, 1_000, ROOFLINE), Group("linear", None, 700, ROOFLINE),
                      Group("linear_1", None, 300, ROOFLINE)]
    png = _write_twice(_whole_run(), tmp_path)
    # the run's own bound wins over the sum; a compute-only bound is kept apart from the roofline
    reports = _whole_run()
    reports["verify"]["bound_cycles"] = 1_100
    assert plot_groups(reports)[0][0] == Group("whole run", 1_400, 1_100, ROOFLINE)
    older = {"compile": {"layers": [{"node": "linear", "compute_cycles_expected": 600}]}, "verify": {"cycles": 900}}
    assert plot_groups(older)[0] == [Group("whole run", 900, 600, COMPUTE_ONLY), Group("linear", None, 600,
                                                                                       COMPUTE_ONLY)]
    assert plot_layers(reports, tmp_path / "c.png").read_bytes() != png


def test_nothing_to_plot_is_a_one_line_config_error(tmp_path: Path) -> None:
    for reports in ({}, {"compile": {"layers": [{"node": "linear", "m": 4}]}},
                    {"verify": {"layers": [{"node": "linear", "mismatches": 0}]}}):
        with pytest.raises(ConfigError, match="run `hwforge verify` first") as info:
            plot_layers(reports, tmp_path / "x.png")
        assert "\n" not in str(info.value)
    assert not (tmp_path / "x.png").exists()
