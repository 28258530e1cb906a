"""A GCN over your own graph, for `hwforge compile examples/gcn_user_graph.py:build --target snf`.

The edge list has one edge per line (`u v`); a CSR `.npz` with `indptr` and `indices` works the same way.
"""

from pathlib import Path

from hwforge.zoo import gcn_from_graph_file


def build():
    return gcn_from_graph_file(Path(__file__).parent / "data" / "small_world.txt", hidden=16, layers=2,
                               symmetrize=True)
