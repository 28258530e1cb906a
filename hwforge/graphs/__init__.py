"""Graph data for the GCN models and targets: karate club, seeded power-law synthetic graphs (Cora- and
Pubmed-sized presets), a loader for a user's edge list or CSR ``.npz``, and the GCN normalisation."""

from hwforge.graphs.data import (
    CSR,
    PRESETS,
    GraphData,
    from_edges,
    karate_club,
    normalized_adjacency,
    preset_graph,
    synthetic_features,
    synthetic_graph,
)
from hwforge.graphs.io import load_graph_file

__all__ = [
    "CSR",
    "PRESETS",
    "GraphData",
    "from_edges",
    "karate_club",
    "load_graph_file",
    "normalized_adjacency",
    "preset_graph",
    "synthetic_features",
    "synthetic_graph",
]
