"""The two digits classifiers: ``mlp-digits`` and ``cnn-digits``.

Weights are trained by ``python -m hwforge.zoo.train`` (deterministic) and shipped as ``weights/<name>.npz``.
Module attribute names (fc1, conv1, ...) become IR node names, so keep them short and meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwforge.errors import ConfigError
from hwforge.zoo.digits import CALIBRATION_COUNT, EXAMPLE_COUNT, as_images, digits_split
from hwforge.zoo.registry import ZooModel, register, sha256_of


class DigitsMLP(nn.Module):
    """64 -> 64 -> ReLU -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu1(self.fc1(x)))


class DigitsCNN(nn.Module):
    """conv(1->8, 3x3, pad 1)+ReLU, conv(8->16, 3x3, stride 2, pad 1)+ReLU, flatten, linear(256->10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.relu2(self.conv2(self.relu1(self.conv1(x))))))


@dataclass(frozen=True)
class DigitsSpec:
    """Architecture and training recipe of one digits model."""

    name: str
    description: str
    factory: type[nn.Module]
    images: bool  # NCHW 1x8x8 input instead of a flat 64-vector
    epochs: int
    lr: float
    batch_size: int = 32


SPECS: dict[str, DigitsSpec] = {
    s.name: s
    for s in (
        DigitsSpec("mlp-digits", "MLP 64-64-10 (ReLU) on sklearn digits", DigitsMLP, False, 40, 3e-3),
        DigitsSpec("cnn-digits", "CNN conv8-conv16/s2-fc10 on sklearn digits 1x8x8", DigitsCNN, True, 30, 3e-3),
    )
}


def weights_path(name: str) -> Path:
    return Path(str(resources.files("hwforge.zoo") / "weights" / f"{name}.npz"))


def model_inputs(spec: DigitsSpec, x: np.ndarray) -> np.ndarray:
    return as_images(x) if spec.images else np.ascontiguousarray(x)


def load_digits_model(spec: DigitsSpec) -> ZooModel:
    """Build the module, load the shipped weights (no pickle) and attach the digits data."""
    path = weights_path(spec.name)
    try:
        blob = path.read_bytes()
        with np.load(path, allow_pickle=False) as npz:
            state = {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
    except (OSError, ValueError) as e:
        raise ConfigError(f"zoo weights {path} missing or unreadable ({e}); run python -m hwforge.zoo.train") from None
    module = spec.factory()
    module.load_state_dict(state, strict=True)
    module.eval()
    xtr, _, xte, yte = digits_split()
    src = Path(__file__).read_bytes()
    return ZooModel(
        name=spec.name,
        description=spec.description,
        module=module,
        example_inputs={"x": model_inputs(spec, xte[:EXAMPLE_COUNT])},
        calibration={"x": model_inputs(spec, xtr[:CALIBRATION_COUNT])},
        test_set=(model_inputs(spec, xte), np.array(yte)),
        source_hash=sha256_of(src, blob),
    )


def _register(spec: DigitsSpec) -> None:
    register(spec.name, spec.description)(lambda: load_digits_model(spec))


for _spec in SPECS.values():
    _register(_spec)
