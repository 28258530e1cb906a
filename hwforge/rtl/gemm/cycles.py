"""Analytical compute cycles (SCALE-Sim) and what the RTL's ``compute_cycles`` counter reports.

SCALE-Sim (Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN Accelerators
using SCALE-Sim", ISPASS 2020) models an R x C array running an Sr x T x Sc GEMM as
``folds = ceil(Sr / R) * ceil(Sc / C)`` folds of ``2R + C + T - 2`` cycles each, with
``(Sr, Sc, T) = (M, N, K)`` for output-stationary and ``(K, N, M)`` for weight-stationary.

The RTL matches it exactly, offset 0 per fold:

- OS fold: ``T + R + C - 2`` cycles until the last PE's last MAC (skewed A from the left, B from the top), then
  ``R`` drain cycles shifting accumulators out of the bottom edge: ``2R + C + T - 2``.
- WS fold: ``R`` cycles preloading weights down the columns, then ``T + R + C - 2`` cycles until the bottom
  of the last column has its last partial sum: ``2R + C + T - 2``.

``compute_cycles`` counts exactly these cycles (one pipeline-priming cycle per fold for the synchronous
buffer reads is not counted). One deviation, by construction: WS splits M into chunks of ``m_tile`` rows when
M exceeds the buffers (`LayerPlan.m_tile`), each chunk being its own set of folds with ``T = chunk rows``;
`rtl_compute_cycles` accounts for that and equals `fold_cycles_formula` whenever ``m_tile >= M``.
"""

from __future__ import annotations

from hwforge.rtl.gemm.config import GemmConfig


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def fold_cycles_formula(cfg: GemmConfig, M: int, K: int, N: int) -> tuple[int, int]:
    """SCALE-Sim's ``(folds, compute cycles)`` for an M x K x N GEMM on ``cfg``'s array and dataflow."""
    R, C = cfg.rows, cfg.cols
    sr, sc, t = (M, N, K) if cfg.dataflow == "os" else (K, N, M)
    folds = _ceil(sr, R) * _ceil(sc, C)
    return folds, folds * (2 * R + C + t - 2)


def rtl_compute_cycles(cfg: GemmConfig, M: int, K: int, N: int, m_tile: int | None = None) -> tuple[int, int]:
    """``(folds, compute_cycles)`` the RTL reports for one layer, including WS M-chunking."""
    if cfg.dataflow == "os" or m_tile is None or m_tile >= M:
        return fold_cycles_formula(cfg, M, K, N)
    folds = cycles = 0
    for m0 in range(0, M, m_tile):
        f, c = fold_cycles_formula(cfg, min(m_tile, M - m0), K, N)
        folds += f
        cycles += c
    return folds, cycles


def roofline_cycles(cfg: GemmConfig, M: int, K: int, N: int, m_tile: int | None = None,
                    a_elements: int | None = None) -> int:
    """The bound of one layer: ``max(compute cycles, bytes / bus bytes per cycle)``.

    Bytes are what a perfect memory system must move at least once: the distinct A elements (``a_elements``,
    e.g. the source tensor of an im2col gather; default ``M*K``), the weights, the int32 bias and the output,
    in the array's memory containers. The compute term is this configuration's own fold count
    (`rtl_compute_cycles`), so where WS must split M into chunks because its buffers are shallow the bound includes
    that cost; `fold_cycles_formula` is the unchunked array bound. Measured cycles over this bound is the figure
    of merit.
    """
    cb = cfg.container_bits // 8
    a = M * K if a_elements is None else a_elements
    moved = (a + N * K + M * N) * cb + 4 * N
    _, compute = rtl_compute_cycles(cfg, M, K, N, m_tile)
    return max(compute, _ceil(moved, cfg.bus_width // 8))
