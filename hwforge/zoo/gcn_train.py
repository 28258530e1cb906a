"""Deterministic training of the zoo's trained GCNs: ``python -m hwforge.zoo.gcn_train [name ...] [--out DIR]``
(names: ``gcn-karate``, ``gcn-cora``, ``gcn-citeseer``, ``resgcn-cora-d8``, ``resgcn-cora-d16``,
``resgcn-cora-d28``; default all).

``gcn-karate``: semi-supervised node classification as in Kipf & Welling's karate demo: identity features, the
club split as 2 classes, KARATE_TRAIN_PER_CLASS seeded labelled members per club.

``gcn-cora`` / ``gcn-citeseer``: the reference GCN recipe (tkipf/gcn): 2 layers, hidden 16, ReLU, Glorot
weights and zero biases, dropout 0.5 on the input and the hidden layer, Adam (lr 0.01) for 200 epochs with
weight decay 5e-4 on the first layer's weights only, cross entropy on the 140 / 120 training nodes,
row-normalised features. No early stopping (the reference stops when the validation loss rises; 200 fixed
epochs keep the result independent of the validation split).

``resgcn-cora-d<depth>``: the ResGCN of `hwforge.zoo.gcn.resgcn_graph` (hidden 64) on Cora: dropout 0.5 on the
input and before every convolution and the classifier, BatchNorm over the whole graph as one batch, Adam (lr
0.01) with weight decay 5e-3 on the convolution and classifier weights, at most 200 epochs, keeping the epoch of
the best validation accuracy and stopping 50 epochs after it (`train_planetoid_resgcn`).

All run full-graph steps with the determinism measures of `hwforge.zoo.train`, so retraining on the same machine
and torch version reproduces the shipped files byte for byte. The two-layer models multiply by a dense Â (at
most 3,327 nodes: a dense matmul is fast and, unlike torch's sparse kernels, deterministic under
``torch.use_deterministic_algorithms``); the ResGCNs gather and index-add Â's edges (deterministic on one
thread, and a third of the time of a dense 2,708 x 2,708 product per convolution).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from hwforge.graphs import GraphData, karate_club, normalized_adjacency
from hwforge.npzio import npz_bytes
from hwforge.zoo.digits_models import weights_path
from hwforge.zoo.gcn import BN_EPS, resgcn_weight_names
from hwforge.zoo.gcn_models import (
    KARATE_HIDDEN,
    PLANETOID_HIDDEN,
    PLANETOID_MODELS,
    karate_model,
    karate_train_mask,
    planetoid_data,
    planetoid_model,
)
from hwforge.zoo.train import deterministic_torch

EPOCHS = 200
LR = 0.01
WEIGHT_DECAY = 5e-4
DROPOUT = 0.5
RES_EPOCHS = 200
RES_PATIENCE = 50
RES_LR = 0.01
RES_WEIGHT_DECAY = 5e-3
RES_DROPOUT = 0.5
MODELS = ("gcn-karate", *PLANETOID_MODELS)


def karate_accuracy(logits: np.ndarray, labels: np.ndarray, train_mask: np.ndarray) -> float:
    """Accuracy (percent) on the members whose label was not used for training."""
    test = ~train_mask
    return float((np.asarray(logits).argmax(1) == labels)[test].mean() * 100)


def split_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy (percent) over the labelled nodes; label -1 marks nodes outside the evaluated split."""
    labels = np.asarray(labels)
    keep = labels >= 0
    return float((np.asarray(logits).argmax(1)[keep] == labels[keep]).mean() * 100)


def _dense_adjacency(g: GraphData) -> torch.Tensor:
    adj = normalized_adjacency(g)
    n = g.num_nodes
    dense = np.zeros((n, n), np.float32)
    dense[np.repeat(np.arange(n), np.diff(adj.indptr)), adj.indices] = adj.values
    return torch.from_numpy(dense)


def _state(lin1: torch.nn.Linear, b1: torch.Tensor, lin2: torch.nn.Linear, b2: torch.Tensor) -> dict[str, np.ndarray]:
    named = {"conv1.weight": lin1.weight, "conv1.bias": b1, "conv2.weight": lin2.weight, "conv2.bias": b2}
    return {k: v.detach().numpy().astype(np.float32) for k, v in named.items()}


def train_gcn_karate(seed: int = 0, epochs: int = EPOCHS) -> dict[str, np.ndarray]:
    """Train the 2-layer karate GCN (Adam, lr 0.01, weight decay 5e-4, cross entropy on the labelled nodes)."""
    g = karate_club()
    n = g.num_nodes
    a, x = _dense_adjacency(g), torch.eye(n)
    y = torch.from_numpy(g.labels)
    mask = torch.from_numpy(karate_train_mask(g.labels, seed))
    with deterministic_torch(seed):
        lin1, lin2 = torch.nn.Linear(n, KARATE_HIDDEN, bias=False), torch.nn.Linear(KARATE_HIDDEN, 2, bias=False)
        b1, b2 = torch.nn.Parameter(torch.zeros(KARATE_HIDDEN)), torch.nn.Parameter(torch.zeros(2))
        params = [lin1.weight, lin2.weight, b1, b2]
        opt = torch.optim.Adam(params, lr=LR, weight_decay=WEIGHT_DECAY)
        for _ in range(epochs):
            opt.zero_grad()
            logits = a @ lin2(torch.relu(a @ lin1(x) + b1)) + b2
            torch.nn.functional.cross_entropy(logits[mask], y[mask]).backward()
            opt.step()
    return _state(lin1, b1, lin2, b2)


def train_planetoid_gcn(name: str, seed: int = 0, epochs: int = EPOCHS) -> dict[str, np.ndarray]:
    """Train ``gcn-cora`` or ``gcn-citeseer`` with the reference recipe (module docstring)."""
    data, features = planetoid_data(name)
    a, x = _dense_adjacency(data.graph), torch.from_numpy(features)
    y, train = torch.from_numpy(data.graph.labels), torch.from_numpy(data.train)
    drop = torch.nn.functional.dropout
    with deterministic_torch(seed):
        lin1 = torch.nn.Linear(x.shape[1], PLANETOID_HIDDEN, bias=False)
        lin2 = torch.nn.Linear(PLANETOID_HIDDEN, data.num_classes, bias=False)
        for lin in (lin1, lin2):
            torch.nn.init.xavier_uniform_(lin.weight)
        b1 = torch.nn.Parameter(torch.zeros(PLANETOID_HIDDEN))
        b2 = torch.nn.Parameter(torch.zeros(data.num_classes))
        opt = torch.optim.Adam([{"params": [lin1.weight], "weight_decay": WEIGHT_DECAY},
                                {"params": [b1, lin2.weight, b2], "weight_decay": 0.0}], lr=LR)
        for _ in range(epochs):
            opt.zero_grad()
            h = torch.relu(a @ lin1(drop(x, DROPOUT, training=True)) + b1)
            logits = a @ lin2(drop(h, DROPOUT, training=True)) + b2
            torch.nn.functional.cross_entropy(logits[train], y[train]).backward()
            opt.step()
    return _state(lin1, b1, lin2, b2)


def train_planetoid_resgcn(name: str, seed: int = 0, epochs: int = RES_EPOCHS, patience: int = RES_PATIENCE,
                           lr: float = RES_LR, weight_decay: float = RES_WEIGHT_DECAY,
                           dropout: float = RES_DROPOUT) -> dict[str, np.ndarray]:
    """Train a citation-graph ResGCN (``resgcn-cora-d8`` ...; the network of `hwforge.zoo.gcn.resgcn_graph`).

    Glorot weights, zero biases, BatchNorm gamma 1 / beta 0; dropout ``dropout`` on the input and on every
    ``relu(norm(h))`` (before each block's convolution and before the classifier); Adam (``lr``) with weight
    decay ``weight_decay`` on the convolution and classifier weights; cross entropy on the training nodes. The
    BatchNorms normalise with the statistics of the whole graph (one full-graph batch), in training and in
    evaluation alike, which is what `resgcn_graph` folds into the exported ``affine``. After every epoch the
    model is evaluated without dropout on the validation split; the returned weights are those of the best
    validation accuracy (ties: lower validation loss), and training stops ``patience`` epochs after the last
    improvement (at most ``epochs``).
    """
    spec = PLANETOID_MODELS[name]
    data, features = planetoid_data(name)
    g = data.graph
    adj = normalized_adjacency(g)
    rows = torch.from_numpy(np.repeat(np.arange(g.num_nodes), np.diff(adj.indptr)))
    cols, vals = torch.from_numpy(adj.indices.astype(np.int64)), torch.from_numpy(adj.values)[:, None]
    x, y = torch.from_numpy(features), torch.from_numpy(g.labels)
    train_idx, val_idx = torch.from_numpy(data.train), torch.from_numpy(data.val)
    hidden, f = spec.hidden, functional
    shapes = {"conv0": (hidden, x.shape[1]), "classifier": (data.num_classes, hidden),
              **{f"block{i}.conv": (hidden, hidden) for i in range(1, spec.depth + 1)}}

    def aggregate(h: torch.Tensor) -> torch.Tensor:  # Â h by gather / index_add (deterministic on one thread)
        return torch.zeros_like(h).index_add_(0, rows, vals * h[cols])

    with deterministic_torch(seed):
        p: dict[str, torch.nn.Parameter] = {}
        for key in resgcn_weight_names(spec.depth):
            layer, kind = key.rsplit(".", 1)
            if layer in shapes and kind == "weight":
                p[key] = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(shapes[layer])))
            else:  # linear biases, BatchNorm gamma (1) and beta (0)
                n = shapes[layer][0] if layer in shapes else hidden
                p[key] = torch.nn.Parameter(torch.ones(n) if kind == "weight" else torch.zeros(n))

        def forward(training: bool) -> torch.Tensor:
            def norm_relu_drop(h: torch.Tensor, layer: str) -> torch.Tensor:
                t = f.batch_norm(h, None, None, p[f"{layer}.weight"], p[f"{layer}.bias"], training=True, eps=BN_EPS)
                return f.dropout(torch.relu(t), dropout, training=training)

            xd = f.dropout(x, dropout, training=training)
            h = aggregate(xd @ p["conv0.weight"].T) + p["conv0.bias"]
            for i in range(1, spec.depth + 1):
                t = norm_relu_drop(h, f"block{i}.norm")
                h = h + aggregate(t @ p[f"block{i}.conv.weight"].T) + p[f"block{i}.conv.bias"]
            return f.linear(norm_relu_drop(h, "norm_out"), p["classifier.weight"], p["classifier.bias"])

        decay = [p[f"{layer}.weight"] for layer in shapes]
        rest = [v for k, v in p.items() if k.rsplit(".", 1)[0] not in shapes or k.endswith(".bias")]
        opt = torch.optim.Adam([{"params": decay, "weight_decay": weight_decay},
                                {"params": rest, "weight_decay": 0.0}], lr=lr)
        best, best_key, since = None, (-1.0, 0.0), 0
        for _ in range(epochs):
            opt.zero_grad()
            f.cross_entropy(forward(True)[train_idx], y[train_idx]).backward()
            opt.step()
            with torch.no_grad():
                logits = forward(False)[val_idx]
                key = (float((logits.argmax(1) == y[val_idx]).float().mean()),
                       -float(f.cross_entropy(logits, y[val_idx])))
            if key > best_key:
                best, best_key, since = {k: v.detach().numpy().astype(np.float32) for k, v in p.items()}, key, 0
            else:
                since += 1
                if since >= patience:
                    break
    assert best is not None
    return best


def train(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Train zoo model ``name`` (one of MODELS)."""
    if name == "gcn-karate":
        return train_gcn_karate(seed)
    return train_planetoid_resgcn(name, seed) if PLANETOID_MODELS[name].depth else train_planetoid_gcn(name, seed)


def evaluate(name: str, state: dict[str, np.ndarray]) -> float:
    """Float accuracy (percent) of ``state`` through the IR interpreter: the unlabelled karate members, or the
    1,000 test nodes of a citation graph."""
    from hwforge.ir import interpret

    m = karate_model(state) if name == "gcn-karate" else planetoid_model(name, state)
    logits = interpret(m.graph, m.example_inputs)["output"].numpy()
    if name == "gcn-karate":
        return karate_accuracy(logits, m.test_set[1], m.extra["train_mask"])
    return split_accuracy(logits, m.test_set[1])


def main(argv: list[str] | None = None) -> int:
    """Retrain the trained GCNs and write their weights (deterministic, like hwforge.zoo.train)."""
    parser = argparse.ArgumentParser(prog="python -m hwforge.zoo.gcn_train", description=main.__doc__)
    parser.add_argument("names", nargs="*", help=f"models to train (default: all of {', '.join(MODELS)})")
    parser.add_argument("--out", type=Path, default=None, help="directory for the .npz files (default: the package's)")
    args = parser.parse_args(argv)
    for name in args.names or MODELS:
        if name not in MODELS:
            print(f"unknown trained GCN '{name}' (available: {', '.join(MODELS)})", file=sys.stderr)
            return 2
        start = time.perf_counter()
        state = train(name)
        seconds = time.perf_counter() - start
        path = (args.out / f"{name}.npz") if args.out else weights_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(npz_bytes(state))
        what = "the unlabelled members" if name == "gcn-karate" else "the test split"
        print(f"{name}: float accuracy {evaluate(name, state):.1f}% on {what}, trained in {seconds:.1f} s -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
