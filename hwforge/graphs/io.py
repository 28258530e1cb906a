"""A user's graph from a file: an edge list (``.txt``/``.csv``/``.edges``) or a CSR ``.npz``.

Edge list: one ``u v`` pair per line (whitespace or a comma between), ``#`` starts a comment, blank lines are
skipped; node ids are non-negative integers and the node count is ``max id + 1``. Each line is one directed
edge ``u -> v``; pass ``symmetrize=True`` for files that list each undirected edge once.

CSR ``.npz``: ``indptr`` (N + 1) and ``indices`` integer arrays, optional ``num_nodes``; row ``v`` lists the
sources of the edges into ``v`` (hwforge's `GraphData` layout). Read with ``allow_pickle=False``.

Self loops and duplicate edges are dropped (the GCN normalisation adds the identity itself). Anything malformed
is a `ConfigError`: one line naming the file and what is wrong.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.graphs.data import GraphData, from_edges

EDGE_LIST_SUFFIXES = (".txt", ".csv", ".edges", ".el")
_SPLIT = re.compile(r"[\s,]+")


def load_graph_file(path: str | Path, *, symmetrize: bool = False) -> GraphData:
    """Load an edge list or CSR ``.npz`` as `GraphData` (named after the file stem)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"graph file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        g = _load_npz(p)
    elif suffix in EDGE_LIST_SUFFIXES:
        g = _load_edge_list(p)
    else:
        known = ", ".join(EDGE_LIST_SUFFIXES)
        raise ConfigError(f"graph file {p}: unknown format '{suffix}' (expected .npz or {known})")
    if symmetrize:
        src, dst = g.edge_index()
        g = from_edges(g.name, g.num_nodes, np.concatenate([src, dst]), np.concatenate([dst, src]))
    if g.num_nodes == 0:
        raise ConfigError(f"graph file {p}: the graph has no nodes")
    return g


def _load_edge_list(p: Path) -> GraphData:
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"graph file {p}: cannot read as text: {e}") from None
    pairs: list[tuple[int, int]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        if len(fields) != 2:
            raise ConfigError(f"graph file {p}, line {lineno}: expected 'u v', got {line[:60]!r}")
        try:
            u, v = int(fields[0]), int(fields[1])
        except ValueError:
            raise ConfigError(f"graph file {p}, line {lineno}: node ids must be integers, got {line[:60]!r}") from None
        if u < 0 or v < 0:
            raise ConfigError(f"graph file {p}, line {lineno}: node ids must be >= 0, got {line[:60]!r}")
        pairs.append((u, v))
    if not pairs:
        raise ConfigError(f"graph file {p}: no edges found")
    e = np.array(pairs, dtype=np.int64)
    n = int(e.max()) + 1
    if n > 1 << 31:
        raise ConfigError(f"graph file {p}: node id {n - 1} is too large (ids must be < 2**31)")
    return from_edges(p.stem, n, e[:, 0], e[:, 1])


def _load_npz(p: Path) -> GraphData:
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.array(z[k]) for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"graph file {p}: not a readable .npz without pickle: {' '.join(str(e).split())}") from None
    for key in ("indptr", "indices"):
        if key not in arrays:
            raise ConfigError(f"graph file {p}: missing array '{key}' (has {', '.join(sorted(arrays)) or 'none'})")
        a = arrays[key]
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise ConfigError(f"graph file {p}: '{key}' must be a 1-D integer array, got {a.dtype}{list(a.shape)}")
    indptr, indices = arrays["indptr"].astype(np.int64), arrays["indices"].astype(np.int64)
    n = indptr.shape[0] - 1
    if "num_nodes" in arrays:
        nn = arrays["num_nodes"]
        if nn.shape not in ((), (1,)) or not np.issubdtype(nn.dtype, np.integer) or int(nn.reshape(-1)[0]) != n:
            raise ConfigError(f"graph file {p}: 'num_nodes' must be one integer equal to len(indptr) - 1 = {n}")
    if n < 1 or indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ConfigError(
            f"graph file {p}: 'indptr' must start at 0, never decrease and end at len(indices) = {indices.shape[0]}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ConfigError(f"graph file {p}: 'indices' must be node ids in 0..{n - 1}")
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    return from_edges(p.stem, n, indices, dst)
