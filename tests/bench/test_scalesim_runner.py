"""SCALE-Sim adapter: run the real simulator on small GEMMs and pin its relation to the fold formula.

Measured (scalesim 3.0.0): ws/is  compute_cycles == fold_formula_cycles - 1;
                           os     compute_cycles == fold_formula_cycles - rows * folds - 1.

SCALE-Sim is the external reference for the gemm cycle model, so it is a test dependency (the ``test``
extra) and these tests fail -- never skip -- when it is missing, like the Verilator tests do.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from pathlib import Path

import pytest

from hwforge.rtl.gemm import scalesim as runner

DIMS = (4, 7, 16, 33)


def test_scalesim_is_installed_and_patchable() -> None:
    assert importlib.util.find_spec("scalesim") is not None, (
        "scalesim (SCALE-Sim) is not installed: it is in the `test` extra, `pip install -e '.[test]'`")
    import scalesim.memory.double_buffered_scratchpad_mem as mem_module

    assert runner.check_scalesim_version(mem_module) in runner.PATCHED_VERSIONS


def test_patch_refuses_an_unknown_version_and_restores_the_module() -> None:
    import scalesim.memory.double_buffered_scratchpad_mem as mem_module

    before = dict(vars(mem_module))
    with pytest.raises(runner.ScaleSimVersionError, match="9.9.9"), runner.numpy2_patch(mem_module, "9.9.9"):
        pytest.fail("the patch must not be applied to an unknown scalesim version")
    assert "max" not in vars(mem_module)
    with runner.numpy2_patch(mem_module):
        patched = vars(mem_module)["max"]
        assert patched is not max
        # only the patched call form changes: max(list of 1-element arrays) gives a scalar
        import numpy as np

        assert np.ndim(patched([np.array([3]), np.array([5])])) == 0
        assert patched(3, 5, 4) == 5 and patched([1, 2]) == 2
        assert patched([np.array([1, 9])], key=len).shape == (2,)
    assert dict(vars(mem_module)) == before


def test_unsupported_version_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(runner.importlib.metadata, "version", lambda name: "3.1.0")
    with pytest.raises(runner.ScaleSimVersionError, match="3.1.0"):
        runner.scalesim_cycles(4, 4, "os", 4, 4, 4, tmp_path)


DIMS = (4, 7, 16, 33)


def _folds(rows: int, cols: int, dataflow: str, M: int, K: int, N: int) -> int:
    sr, sc, _ = runner.spatio_temporal_dims(dataflow, M, K, N)
    return math.ceil(sr / rows) * math.ceil(sc / cols)


def _expected(rows: int, cols: int, dataflow: str, M: int, K: int, N: int) -> int:
    """The measured relation documented in hwforge/rtl/gemm/scalesim.py."""
    formula = runner.fold_formula_cycles(rows, cols, dataflow, M, K, N)
    if dataflow == "os":
        return formula - rows * _folds(rows, cols, dataflow, M, K, N) - 1
    return formula - 1


def test_fold_formula_hand_values() -> None:
    # os: Sr=M=7, Sc=N=16, T=K=33 on 4x4 -> (8 + 4 + 33 - 2) * 2 * 4
    assert runner.fold_formula_cycles(4, 4, "os", 7, 33, 16) == 43 * 8
    # ws: Sr=K=33, Sc=N=16, T=M=7 -> (8 + 4 + 7 - 2) * 9 * 4
    assert runner.fold_formula_cycles(4, 4, "ws", 7, 33, 16) == 17 * 36
    # is: Sr=K=33, Sc=M=7, T=N=16 -> (8 + 4 + 16 - 2) * 9 * 2
    assert runner.fold_formula_cycles(4, 4, "is", 7, 33, 16) == 26 * 18
    assert runner.spatio_temporal_dims("os", 1, 2, 3) == (1, 3, 2)
    assert runner.spatio_temporal_dims("ws", 1, 2, 3) == (2, 3, 1)
    assert runner.spatio_temporal_dims("is", 1, 2, 3) == (2, 1, 3)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="dataflow"):
        runner.fold_formula_cycles(4, 4, "rs", 4, 4, 4)
    with pytest.raises(ValueError, match="K"):
        runner.scalesim_cycles(4, 4, "os", 4, 0, 4, Path("unused"))


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_scalesim_matches_fold_formula_4x4(dataflow: str, tmp_path: Path) -> None:
    mismatches = []
    for M, K, N in itertools.product(DIMS, repeat=3):
        res = runner.scalesim_cycles(4, 4, dataflow, M, K, N, tmp_path)
        assert res is not None, f"scalesim failed for {dataflow} M={M} K={K} N={N}"
        assert res["stall_cycles"] == 0, res
        assert res["compute_cycles"] == res["total_cycles"]
        assert (res["sr"], res["sc"], res["t"]) == runner.spatio_temporal_dims(dataflow, M, K, N)
        if res["compute_cycles"] != _expected(4, 4, dataflow, M, K, N):
            mismatches.append((M, K, N, res["compute_cycles"], runner.fold_formula_cycles(4, 4, dataflow, M, K, N)))
    assert not mismatches, f"{dataflow}: (M, K, N, scalesim, formula) not matching documented relation: {mismatches}"


@pytest.mark.parametrize(
    ("rows", "cols", "dataflow"),
    [(4, 8, "os"), (8, 4, "os"), (4, 8, "ws"), (8, 4, "ws"), (4, 4, "is"), (8, 4, "is")],
)
def test_scalesim_relation_non_square_and_is(rows: int, cols: int, dataflow: str, tmp_path: Path) -> None:
    # Non-square arrays pin that the OS deficit is rows (not cols) per fold.
    for M, K, N in [(7, 33, 16), (33, 4, 7), (16, 16, 33)]:
        res = runner.scalesim_cycles(rows, cols, dataflow, M, K, N, tmp_path)
        assert res is not None
        assert res["stall_cycles"] == 0
        assert res["compute_cycles"] == _expected(rows, cols, dataflow, M, K, N), (rows, cols, dataflow, M, K, N, res)


def test_report_fields_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    M, K, N = 7, 33, 16
    res = runner.scalesim_cycles(4, 4, "os", M, K, N, tmp_path)
    assert res is not None
    for key in ("total_cycles", "compute_cycles", "stall_cycles", "utilization_pct"):
        assert key in res
    assert res["total_cycles"] == 311  # (4 + 4 + 33 - 2) * 2 * 4 - 1
    # SCALE-Sim's "Overall Util %" = 100 * MACs / (cycles * PEs)
    assert res["utilization_pct"] == pytest.approx(100 * M * K * N / (res["total_cycles"] * 16))
    assert res["total_cycles_incl_prefetch"] >= res["total_cycles"]
    # inputs and reports live in workdir; nothing printed
    assert list(tmp_path.glob("*.cfg")) and list(tmp_path.glob("*/COMPUTE_REPORT.csv"))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_returns_none_without_scalesim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for name in [n for n in sys.modules if n == "scalesim" or n.startswith("scalesim.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scalesim", None)  # makes `import scalesim...` raise ImportError
    assert runner.scalesim_cycles(4, 4, "os", 4, 4, 4, tmp_path) is None
    assert "not importable" in capsys.readouterr().err


def test_returns_none_when_scalesim_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import scalesim.scale_sim

    def boom(self, top_path: str = ".") -> None:
        print("noise from scalesim")
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(scalesim.scale_sim.scalesim, "run_scale", boom)
    assert runner.scalesim_cycles(4, 4, "ws", 4, 4, 4, tmp_path) is None
    captured = capsys.readouterr()
    assert "simulated failure" in captured.err and "noise from scalesim" in captured.err
    assert captured.out == ""
