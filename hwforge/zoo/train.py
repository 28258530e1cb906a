"""Deterministic training of the zoo's digits models: ``python -m hwforge.zoo.train [name ...]``.

Determinism: fixed seeds for initialisation and shuffling, ``torch.use_deterministic_algorithms``, one
thread (reduction order fixed), and a byte-stable ``.npz`` writer (numpy's own stamps the current time into
the zip), so retraining on the same machine and torch version reproduces the shipped files byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwforge.npzio import npz_bytes  # noqa: F401  (re-exported: the zoo's weight files are written with it)
from hwforge.zoo.digits import accuracy, digits_split
from hwforge.zoo.digits_models import SPECS, DigitsSpec, model_inputs, weights_path

SEED = 0


@contextmanager
def deterministic_torch(seed: int = SEED) -> Iterator[None]:
    """Seed, single thread, deterministic kernels; restore the caller's settings afterwards."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.set_rng_state(rng)


def train_model(spec: DigitsSpec, seed: int = SEED) -> dict[str, np.ndarray]:
    """Train ``spec`` from scratch; returns its state dict as float32 arrays."""
    xtr, ytr, _, _ = digits_split()
    x = torch.from_numpy(np.array(model_inputs(spec, xtr)))
    y = torch.from_numpy(np.array(ytr))
    with deterministic_torch(seed):
        model = spec.factory()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(spec.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), spec.batch_size):
                idx = perm[i : i + spec.batch_size]
                opt.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()
        model.eval()
    return {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def evaluate(spec: DigitsSpec, state: dict[str, np.ndarray]) -> float:
    """Float test accuracy (percent) of a state dict."""
    _, _, xte, yte = digits_split()
    model = spec.factory()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.array(model_inputs(spec, xte)))).numpy()
    return accuracy(logits, yte)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to train (default: all of {', '.join(SPECS)})")
    parser.add_argument("--out", type=Path, default=None, help="directory for the .npz files (default: package)")
    args = parser.parse_args(argv)
    for name in args.names or list(SPECS):
        if name not in SPECS:
            print(f"unknown digits model '{name}'", file=sys.stderr)
            return 2
        spec = SPECS[name]
        state = train_model(spec)
        path = (args.out / f"{name}.npz") if args.out else weights_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(npz_bytes(state))
        print(f"{name}: test accuracy {evaluate(spec, state):.2f}% -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
