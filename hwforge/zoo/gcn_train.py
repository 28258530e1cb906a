"""Deterministic training of ``gcn-karate``: ``python -m hwforge.zoo.gcn_train [--out FILE]``.

Semi-supervised node classification as in Kipf & Welling's karate demo: identity features, the club split as
2 classes, KARATE_TRAIN_PER_CLASS seeded labelled members per club; full-graph Adam steps on a dense Â (34
nodes). Same determinism measures as `hwforge.zoo.train`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from hwforge.graphs import karate_club, normalized_adjacency
from hwforge.zoo.digits_models import weights_path
from hwforge.zoo.gcn_models import KARATE_HIDDEN, karate_train_mask, load_gcn_karate
from hwforge.zoo.train import deterministic_torch, npz_bytes


def karate_accuracy(logits: np.ndarray, labels: np.ndarray, train_mask: np.ndarray) -> float:
    """Accuracy (percent) on the members whose label was not used for training."""
    test = ~train_mask
    return float((np.asarray(logits).argmax(1) == labels)[test].mean() * 100)


def train_gcn_karate(seed: int = 0, epochs: int = 200) -> dict[str, np.ndarray]:
    """Train the 2-layer karate GCN (Adam, lr 0.01, weight decay 5e-4, cross entropy on the labelled nodes)."""
    g = karate_club()
    n = g.num_nodes
    adj = normalized_adjacency(g)
    dense = np.zeros((n, n), np.float32)
    dense[np.repeat(np.arange(n), np.diff(adj.indptr)), adj.indices] = adj.values
    a, x = torch.from_numpy(dense), torch.eye(n)
    y = torch.from_numpy(g.labels)
    mask = torch.from_numpy(karate_train_mask(g.labels, seed))
    with deterministic_torch(seed):
        lin1, lin2 = torch.nn.Linear(n, KARATE_HIDDEN, bias=False), torch.nn.Linear(KARATE_HIDDEN, 2, bias=False)
        b1, b2 = torch.nn.Parameter(torch.zeros(KARATE_HIDDEN)), torch.nn.Parameter(torch.zeros(2))
        params = [lin1.weight, lin2.weight, b1, b2]
        opt = torch.optim.Adam(params, lr=0.01, weight_decay=5e-4)
        for _ in range(epochs):
            opt.zero_grad()
            logits = a @ lin2(torch.relu(a @ lin1(x) + b1)) + b2
            torch.nn.functional.cross_entropy(logits[mask], y[mask]).backward()
            opt.step()
    named = {"conv1.weight": lin1.weight, "conv1.bias": b1, "conv2.weight": lin2.weight, "conv2.bias": b2}
    return {k: v.detach().numpy().astype(np.float32) for k, v in named.items()}


def main(argv: list[str] | None = None) -> int:
    """Retrain gcn-karate and write its weights (deterministic, like hwforge.zoo.train)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=None, help="output .npz (default: the package's)")
    args = parser.parse_args(argv)
    state = train_gcn_karate()
    path = args.out or weights_path("gcn-karate")
    path.write_bytes(npz_bytes(state))
    m = load_gcn_karate() if args.out is None else None
    if m is not None:
        from hwforge.ir import interpret

        logits = next(iter(interpret(m.graph, m.example_inputs).values())).numpy()
        acc = karate_accuracy(logits, m.test_set[1], m.extra["train_mask"])
        print(f"gcn-karate: accuracy on the unlabelled members {acc:.1f}% -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
