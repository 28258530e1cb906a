"""Graph data for the GCN models: `GraphData` (CSR adjacency), Zachary's karate club, seeded power-law
synthetic graphs with exact edge counts, Cora/Pubmed-sized presets, seeded node features, and the symmetric
normalisation D^-1/2 (A + I) D^-1/2 every GCN in hwforge aggregates with.

Edge direction follows torch_geometric: an edge ``u -> v`` sends u's features to v, so ``A[v, u] = 1`` and row
``v`` of the CSR lists v's in-neighbours. Graphs never hold self loops or duplicate edges (the normalisation
adds the identity itself), so an edge count means distinct off-diagonal entries of A.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hwforge.errors import ConfigError


@dataclass(frozen=True)
class GraphData:
    """A graph as CSR: ``indices[indptr[v]:indptr[v+1]]`` are the sources of the edges into ``v`` (sorted)."""

    name: str
    num_nodes: int
    indptr: np.ndarray  # int64 [num_nodes + 1]
    indices: np.ndarray  # int64 [num_edges]
    labels: np.ndarray | None = None  # int64 [num_nodes], if the graph has classes

    @property
    def num_edges(self) -> int:
        """Directed edges (an undirected edge counts twice)."""
        return int(self.indices.shape[0])

    def edge_index(self) -> np.ndarray:
        """``[2, E]`` int64 ``(source, target)`` pairs, torch_geometric's layout, in CSR order."""
        dst = np.repeat(np.arange(self.num_nodes, dtype=np.int64), np.diff(self.indptr))
        return np.stack([self.indices, dst])

    def is_symmetric(self) -> bool:
        src, dst = self.edge_index()
        fwd = set(zip(src.tolist(), dst.tolist(), strict=True))
        return all((d, s) in fwd for s, d in fwd)

    def degrees(self) -> np.ndarray:
        """In-degree of every node (edges into it, self loop excluded)."""
        return np.diff(self.indptr)


def from_edges(name: str, num_nodes: int, src: np.ndarray, dst: np.ndarray, labels: np.ndarray | None = None,
               ) -> GraphData:
    """CSR from directed edge arrays; drops self loops and duplicates, sorts each row by source."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    keep = src != dst
    key = np.unique(dst[keep] * num_nodes + src[keep])  # sorted by (dst, src): CSR order, duplicates gone
    rows, cols = key // num_nodes, key % num_nodes
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_nodes), out=indptr[1:])
    return GraphData(name, int(num_nodes), indptr, cols.astype(np.int64), labels)


def karate_club() -> GraphData:
    """Zachary's karate club (34 nodes, 78 undirected = 156 directed edges); labels: 0 = Mr. Hi, 1 = Officer."""
    import networkx as nx

    g = nx.karate_club_graph()
    e = np.array(sorted(g.edges()), dtype=np.int64)
    labels = np.array([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(g.number_of_nodes())], np.int64)
    src = np.concatenate([e[:, 0], e[:, 1]])
    dst = np.concatenate([e[:, 1], e[:, 0]])
    return from_edges("karate", g.number_of_nodes(), src, dst, labels)


def synthetic_graph(nodes: int, edges: int, seed: int = 0, *, symmetric: bool = True, exponent: float = 2.8,
                    name: str | None = None) -> GraphData:
    """A seeded Chung-Lu graph with a power-law expected degree distribution (tail ``P(d) ~ d^-exponent``).

    ``edges`` counts directed edges and is met exactly, with no duplicates or self loops. With ``symmetric``
    (the default, like Cora and Pubmed) every edge has its reverse, so ``edges`` must be even. Node ids are
    shuffled so hubs are spread over the id range (as in real data sets, which matters for cache behaviour).
    """
    if nodes < 2 or edges < 0:
        raise ConfigError(f"synthetic graph needs >= 2 nodes and >= 0 edges, got {nodes} nodes, {edges} edges")
    if symmetric and edges % 2:
        raise ConfigError(f"a symmetric graph has an even number of directed edges, got {edges}")
    pairs = edges // 2 if symmetric else edges
    possible = nodes * (nodes - 1) // (2 if symmetric else 1)
    if pairs > possible:
        raise ConfigError(f"{edges} edges do not fit in a simple graph of {nodes} nodes")
    rng = np.random.default_rng(seed)
    weight = (np.arange(nodes, dtype=np.float64) + 1.0) ** (-1.0 / (exponent - 1.0))
    p = weight / weight.sum()
    if pairs > possible // 4:
        u, v = _dense_pairs(nodes, pairs, p, rng, symmetric)
    else:
        u, v = _sampled_pairs(nodes, pairs, p, rng, symmetric)
    perm = rng.permutation(nodes)
    u, v = perm[u], perm[v]
    src, dst = (np.concatenate([u, v]), np.concatenate([v, u])) if symmetric else (u, v)
    g = from_edges(name or f"syn{nodes}", nodes, src, dst)
    assert g.num_edges == edges, (g.num_edges, edges)
    return g


def _sampled_pairs(n: int, pairs: int, p: np.ndarray, rng: np.random.Generator, symmetric: bool,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Draw endpoint pairs ~ p x p in batches, keep first occurrences until ``pairs`` distinct ones exist."""
    keys = np.empty(0, dtype=np.int64)
    while keys.size < pairs:
        batch = max(1024, 2 * (pairs - keys.size))
        a = rng.choice(n, size=batch, p=p)
        b = rng.choice(n, size=batch, p=p)
        ok = a != b
        a, b = a[ok], b[ok]
        if symmetric:
            a, b = np.minimum(a, b), np.maximum(a, b)
        allk = np.concatenate([keys, a * n + b])
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)]  # earlier draws win, so the result does not depend on batch boundaries
    keys = keys[:pairs]
    return keys // n, keys % n


def _dense_pairs(n: int, pairs: int, p: np.ndarray, rng: np.random.Generator, symmetric: bool,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sampling without replacement over all pairs (Efraimidis-Spirakis keys), for dense requests."""
    a, b = np.triu_indices(n, 1) if symmetric else np.nonzero(~np.eye(n, dtype=bool))
    w = p[a] * p[b]
    key = np.log(rng.random(a.shape[0])) / w
    pick = np.sort(np.argpartition(-key, pairs - 1)[:pairs]) if pairs else np.empty(0, np.int64)
    return a[pick].astype(np.int64), b[pick].astype(np.int64)


def synthetic_features(nodes: int, features: int, seed: int = 0, *, density: float = 1.0, binary: bool = False,
                       ) -> np.ndarray:
    """Seeded float32 node features in [0, 1): a fraction ``density`` of entries is non-zero (bag-of-words
    style when ``binary``: non-zeros are 1.0, like Cora)."""
    rng = np.random.default_rng([seed, 1])  # a stream apart from the graph's, so features don't shift edges
    mask = rng.random((nodes, features)) < density
    values = np.ones((nodes, features)) if binary else rng.random((nodes, features))
    return np.where(mask, values, 0.0).astype(np.float32)


@dataclass(frozen=True)
class Preset:
    nodes: int
    edges: int
    features: int
    classes: int
    density: float
    binary: bool


PRESETS: dict[str, Preset] = {
    "cora-like": Preset(2708, 10556, 1433, 7, 0.0127, True),  # Cora: 1.27 % of the 1,433 words are set
    "pubmed-like": Preset(19717, 88648, 500, 3, 0.1, False),  # Pubmed: TF-IDF, about 10 % non-zero
    "syn500": Preset(500, 4000, 32, 4, 1.0, False),
}


def preset_graph(name: str, seed: int = 0) -> tuple[GraphData, np.ndarray]:
    """``(graph, features)`` of a named preset (``cora-like``, ``pubmed-like``, ``syn500``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown graph preset '{name}' (available: {', '.join(sorted(PRESETS))})")
    ps = PRESETS[name]
    g = synthetic_graph(ps.nodes, ps.edges, seed, name=name)
    return g, synthetic_features(ps.nodes, ps.features, seed, density=ps.density, binary=ps.binary)


class CSR(NamedTuple):
    """A sparse matrix in CSR form: ``indptr`` int64 [R + 1], ``indices`` int64 [nnz], ``values`` [nnz]."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray


def normalized_adjacency(graph: GraphData) -> CSR:
    """Â = D^-1/2 (A + I) D^-1/2 with D the row sums of A + I (in-degree + 1), rows sorted by column.

    Equals torch_geometric's ``gcn_norm`` (add_self_loops=True) on the same edges. Computed in float64 and
    rounded once to float32.
    """
    n = graph.num_nodes
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(graph.indptr))
    rows = np.concatenate([dst, np.arange(n, dtype=np.int64)])
    cols = np.concatenate([graph.indices, np.arange(n, dtype=np.int64)])
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    dinv = 1.0 / np.sqrt(np.diff(graph.indptr).astype(np.float64) + 1.0)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return CSR(indptr, cols, (dinv[rows] * dinv[cols]).astype(np.float32))
