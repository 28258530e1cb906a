"""The zoo's graph models and `gcn_from_graph_file` for user graphs.

``gcn-karate`` is trained (semi-supervised, as in Kipf & Welling's karate demo: identity features, 4 labelled
members per club, 2 classes = the club split). ``gcn-cora`` and ``gcn-citeseer`` are Kipf & Welling's 2-layer
GCN (hidden 16) trained on the shipped citation graphs (`hwforge.graphs.planetoid_graph`) with the standard
split; ``resgcn-cora-d8`` / ``-d16`` / ``-d28`` are the deep residual GCN of `hwforge.zoo.gcn.resgcn_graph`
(hidden RESGCN_HIDDEN) trained on Cora with the same split. All of these are trained by
``python -m hwforge.zoo.gcn_train`` and ship as ``weights/<name>.npz``; every other model uses seeded random
weights, because the synthetic graphs carry no labels to learn (they exist for hardware sizing and
verification).

The citation models take the features row-normalised (each row sums to 1), as the reference preprocesses them:
their example, calibration and test inputs are those normalised features, not the 0/1 words. Their ``test_set``
is ``(features of every node, labels)`` with label -1 on every node outside the 1,000-node test split, because a
GCN needs the whole graph as input but its accuracy is measured on the test nodes only; accuracy code skips
negative labels (`hwforge.compiler.results.OutputMetrics`, `hwforge.zoo.gcn_train.split_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.graphs import (
    PRESETS,
    GraphData,
    PlanetoidData,
    karate_club,
    load_graph_file,
    planetoid_graph,
    preset_graph,
    row_normalize,
    synthetic_features,
)
from hwforge.graphs.planetoid import dataset_path
from hwforge.zoo.digits_models import weights_path
from hwforge.zoo.gcn import gcn_graph, resgcn_graph
from hwforge.zoo.registry import ZooModel, entry, register, sha256_of

KARATE_HIDDEN = 16
KARATE_TRAIN_PER_CLASS = 4
PLANETOID_HIDDEN = 16
RESGCN_HIDDEN = 64  # 128-byte Q8.8 rows: two 64-byte lines of the snf cache, well inside max_row_lines


@dataclass(frozen=True)
class PlanetoidSpec:
    """A zoo model trained on a citation graph: Kipf & Welling's 2-layer GCN (``depth`` 0, hidden
    PLANETOID_HIDDEN) or a ResGCN of ``depth`` residual blocks (hidden RESGCN_HIDDEN)."""

    dataset: str
    depth: int = 0

    @property
    def hidden(self) -> int:
        return RESGCN_HIDDEN if self.depth else PLANETOID_HIDDEN


RESGCN_CORA_DEPTHS = (8, 16, 28)
PLANETOID_MODELS = {"gcn-cora": PlanetoidSpec("cora"), "gcn-citeseer": PlanetoidSpec("citeseer"),
                    **{f"resgcn-cora-d{d}": PlanetoidSpec("cora", d) for d in RESGCN_CORA_DEPTHS}}
_SOURCES = [Path(__file__), Path(__file__).with_name("gcn.py"),
            Path(__file__).parents[1] / "graphs" / "data.py"]


def _source_hash(*extra: bytes) -> str:
    return sha256_of(*(p.read_bytes() for p in _SOURCES), *extra)


def _model(name: str, description: str, graph, data: GraphData, features: np.ndarray,
           test_set: tuple[np.ndarray, np.ndarray] | None = None, extra_hash: bytes = b"", **extra) -> ZooModel:
    x = np.ascontiguousarray(features, dtype=np.float32)
    description = description or entry(name).description
    return ZooModel(name=name, description=description, module=None, example_inputs={"x": x},
                    calibration={"x": x}, test_set=test_set, source_hash=_source_hash(name.encode(), extra_hash),
                    graph=graph, extra={"graph_data": data, **extra})


# ------------------------------------------------------------------------------------------------- karate
def karate_train_mask(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Seeded choice of KARATE_TRAIN_PER_CLASS labelled nodes per class (boolean mask)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        mask[rng.choice(np.flatnonzero(labels == c), KARATE_TRAIN_PER_CLASS, replace=False)] = True
    return mask


def _read_weights(name: str) -> tuple[dict[str, np.ndarray], bytes]:
    """The shipped weights of ``name`` and the file's bytes (part of the model's source hash)."""
    path = weights_path(name)
    try:
        blob = path.read_bytes()
        with np.load(path, allow_pickle=False) as z:
            w = {k: np.array(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        hint = f"run python -m hwforge.zoo.gcn_train {name}"
        raise ConfigError(f"zoo weights {path} missing or unreadable ({e}); {hint}") from None
    return w, blob


def _two_layers(w: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(w["conv1.weight"], w["conv1.bias"]), (w["conv2.weight"], w["conv2.bias"])]


def karate_model(w: dict[str, np.ndarray], blob: bytes = b"") -> ZooModel:
    """``gcn-karate`` with weights ``w`` (the shipped ones, or fresh ones being evaluated)."""
    g = karate_club()
    x = np.eye(g.num_nodes, dtype=np.float32)
    graph = gcn_graph(g, x, KARATE_HIDDEN, 2, weights=_two_layers(w), name="gcn-karate")
    return _model("gcn-karate", "", graph, g, x, (x, g.labels.copy()), blob,
                  train_mask=karate_train_mask(g.labels))


@register("gcn-karate", "2-layer GCN (34-16-2, trained) on Zachary's karate club, identity features")
def load_gcn_karate() -> ZooModel:
    return karate_model(*_read_weights("gcn-karate"))


@register("resgcn-karate-d8", "ResGCN, 8 residual blocks, hidden 16, on karate club (seeded weights)")
def load_resgcn_karate() -> ZooModel:
    g = karate_club()
    x = synthetic_features(g.num_nodes, 16, 0)
    return _model("resgcn-karate-d8", "", resgcn_graph(g, x, 8, 16, 2, name="resgcn-karate-d8"), g, x)


# -------------------------------------------------------------------------------------- citation graphs
def planetoid_data(name: str) -> tuple[PlanetoidData, np.ndarray]:
    """The data set of zoo model ``name`` and its model input: the row-normalised float32 features."""
    data = planetoid_graph(PLANETOID_MODELS[name].dataset)
    return data, row_normalize(data.features)


def labels_on_test_split(data: PlanetoidData) -> np.ndarray:
    """Every node's label on the test split, -1 elsewhere (accuracy is measured on the test nodes only)."""
    labels = np.full(data.graph.num_nodes, -1, dtype=np.int64)
    labels[data.test] = data.graph.labels[data.test]
    return labels


def planetoid_model(name: str, w: dict[str, np.ndarray], blob: bytes = b"") -> ZooModel:
    """Citation-graph model ``name`` (a PLANETOID_MODELS key) with weights ``w``."""
    spec = PLANETOID_MODELS[name]
    data, x = planetoid_data(name)
    if spec.depth:
        graph = resgcn_graph(data.graph, x, spec.depth, spec.hidden, data.num_classes, weights=w, name=name)
    else:
        graph = gcn_graph(data.graph, x, spec.hidden, data.num_classes, weights=_two_layers(w), name=name)
    loader = Path(__file__).parents[1] / "graphs" / "planetoid.py"
    extra_hash = blob + dataset_path(spec.dataset).read_bytes() + loader.read_bytes()
    split = {"train": data.train, "val": data.val, "test": data.test}
    return _model(name, "", graph, data.graph, x, (x, labels_on_test_split(data)), extra_hash, split=split)


for _name, _what in (("gcn-cora", "Cora (2,708 nodes, 1,433 words, 7 classes)"),
                     ("gcn-citeseer", "CiteSeer (3,327 nodes, 3,703 words, 6 classes)")):
    register(_name, f"2-layer GCN (hidden 16, trained) on the {_what} citation graph, row-normalised features; "
                    "accuracy on the standard 1,000 test nodes")(
        lambda n=_name: planetoid_model(n, *_read_weights(n)))

for _depth in RESGCN_CORA_DEPTHS:
    register(f"resgcn-cora-d{_depth}",
             f"ResGCN, {_depth} residual blocks, hidden {RESGCN_HIDDEN} (trained), on the Cora citation graph, "
             "row-normalised features; accuracy on the standard 1,000 test nodes")(
        lambda n=f"resgcn-cora-d{_depth}": planetoid_model(n, *_read_weights(n)))


# ---------------------------------------------------------------------------------------------- synthetic
def _preset_gcn(name: str, preset: str) -> ZooModel:
    g, x = preset_graph(preset)
    return _model(name, "", gcn_graph(g, x, 16, PRESETS[preset].classes, name=name), g, x)


for _name, _preset, _what in (
    ("gcn-cora-like", "cora-like", "Cora-sized synthetic graph (2,708 nodes, 10,556 edges, 1,433 features)"),
    ("gcn-pubmed-like", "pubmed-like", "Pubmed-sized synthetic graph (19,717 nodes, 88,648 edges, 500 features)"),
    ("gcn-syn500", "syn500", "500-node synthetic graph (4,000 edges, 32 features)"),
):
    register(_name, f"2-layer GCN (hidden 16, seeded weights) on a {_what}")(
        lambda n=_name, p=_preset: _preset_gcn(n, p))


@register("resgcn-syn500-d8", "ResGCN, 8 residual blocks, hidden 16, on the 500-node synthetic graph (seeded)")
def load_resgcn_syn500() -> ZooModel:
    g, x = preset_graph("syn500")
    return _model("resgcn-syn500-d8", "", resgcn_graph(g, x, 8, 16, 4, name="resgcn-syn500-d8"), g, x)


# ------------------------------------------------------------------------------------------- user graphs
def gcn_from_graph_file(path: str | Path, hidden: int = 16, layers: int = 2, seed: int = 0, features: int = 16,
                        classes: int = 4, symmetrize: bool = False, depth: int | None = None) -> ZooModel:
    """A GCN (or, with ``depth``, a ResGCN of that many blocks) with seeded weights and seeded features of
    width ``features`` over the graph in ``path`` (see `hwforge.graphs.load_graph_file`).

    Return it from a user file's function to compile it: ``hwforge compile my_model.py:build --target snf``.
    """
    g = load_graph_file(path, symmetrize=symmetrize)
    x = synthetic_features(g.num_nodes, features, seed)
    name = f"gcn-{g.name}" if depth is None else f"resgcn-{g.name}-d{depth}"
    graph = (gcn_graph(g, x, hidden, classes, layers, seed, name=name) if depth is None
             else resgcn_graph(g, x, depth, hidden, classes, seed, name=name))
    params = repr((hidden, layers, seed, features, classes, symmetrize, depth)).encode()
    return _model(name, f"GCN over {path}", graph, g, x, None, Path(path).read_bytes() + params)
