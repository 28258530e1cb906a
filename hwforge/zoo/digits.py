"""The scikit-learn digits data set (ships inside scikit-learn: no download) with the fixed split every zoo
digits model, test and benchmark uses: 80/20, stratified, ``random_state=0``, pixels scaled to [0, 1]."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EXAMPLE_COUNT = 32
CALIBRATION_COUNT = 256


@lru_cache(maxsize=1)
def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; x is float32 ``[N, 64]`` in [0, 1], y is int64. Read-only."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data.astype(np.float32) / np.float32(16.0)).astype(np.float32)
    y = data.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    out = tuple(np.ascontiguousarray(a) for a in (xtr, ytr, xte, yte))
    for a in out:
        a.setflags(write=False)
    return out  # type: ignore[return-value]


def as_images(x: np.ndarray) -> np.ndarray:
    """``[N, 64]`` -> ``[N, 1, 8, 8]`` (NCHW) for the convolutional models."""
    return np.ascontiguousarray(x.reshape(-1, 1, 8, 8))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float((np.asarray(logits).argmax(axis=1) == np.asarray(labels)).mean() * 100.0)
