"""Graph data for the GCN models and targets: karate club, the Cora and CiteSeer citation graphs (shipped
converted, with their standard split), seeded power-law synthetic graphs (Cora- and Pubmed-sized presets), a
loader for a user's edge list or CSR ``.npz``, and the GCN normalisation."""

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
from hwforge.graphs.planetoid import PlanetoidData, load_planetoid_npz, planetoid_graph, row_normalize

__all__ = [
    "CSR",
    "PRESETS",
    "GraphData",
    "PlanetoidData",
    "from_edges",
    "karate_club",
    "load_graph_file",
    "load_planetoid_npz",
    "normalized_adjacency",
    "planetoid_graph",
    "preset_graph",
    "row_normalize",
    "synthetic_features",
    "synthetic_graph",
]
