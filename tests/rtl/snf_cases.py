"""Graphs and feature matrices for the snf accelerator tests (built with networkx directly)."""

from __future__ import annotations

import networkx as nx
import numpy as np

from hwforge.ir.quant import to_fixed
from hwforge.rtl.gcn import Csr

FRAC = 8


def normalized_csr(g: nx.Graph, frac_adj: int = FRAC, bits: int = 16) -> Csr:
    """CSR of D^-1/2 (A + I) D^-1/2 (rows = destination vertex), values in fixed point."""
    n = g.number_of_nodes()
    a = nx.to_scipy_sparse_array(g, nodelist=range(n), format="csr", dtype=np.float64)
    a = a + __import__("scipy.sparse", fromlist=["eye"]).eye(n, format="csr")
    a.sort_indices()
    deg = np.asarray(a.sum(axis=1)).reshape(-1)
    dinv = 1.0 / np.sqrt(deg)
    rows = np.repeat(np.arange(n), np.diff(a.indptr))
    vals = dinv[rows] * a.data * dinv[a.indices]
    return Csr(a.indptr, a.indices, to_fixed(vals, frac_adj, bits))


def karate() -> Csr:
    return normalized_csr(nx.karate_club_graph())


def powerlaw(n: int = 500, m: int = 3, seed: int = 0) -> Csr:
    return normalized_csr(nx.barabasi_albert_graph(n, m, seed=seed))


def features(n: int, f: int, seed: int = 0, bits: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Random Q8.8 features in [-4, 4) and a bias at 16 fraction bits."""
    rng = np.random.default_rng(seed)
    x = to_fixed(rng.uniform(-4, 4, (n, f)), FRAC, bits)
    bias = to_fixed(rng.uniform(-1, 1, f), 2 * FRAC, 32)
    return x, bias


def psum_case() -> Csr:
    """Six vertices, no self loops, for two source tiles [0, 3) and [3, 6): row 0 has edges in tile 0 only, row 1
    in both tiles, row 2 in tile 1 only, row 3 in both, row 4 in tile 0 only, row 5 none at all (its output is
    the requantised bias). Rows 1 and 3 must each spill and reload once; nothing else moves partial sums."""
    rows = [[0, 2], [1, 4], [5], [0, 3, 5], [2], []]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    indices = np.array([u for r in rows for u in r], dtype=np.int64)
    values = (np.arange(indices.size) % 7 - 3) * 37 + 64
    return Csr(indptr, indices, values)
