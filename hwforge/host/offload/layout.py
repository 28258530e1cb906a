"""Flat parameter layout: parameters concatenated in model order, cut into subgroups dealt round-robin to devices.

One flat fp32 vector makes every transfer a contiguous slice, and fixed-size subgroups let every device
preallocate its buffers once, for the largest subgroup, and reuse them for every subgroup of every step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from hwforge.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """Names and shapes of the trained parameters and their cut into subgroups."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    subgroup_size: int
    devices: int

    @classmethod
    def from_model(cls, model: torch.nn.Module, subgroup_size: int, devices: int) -> Layout:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ConfigError("offload: the model has no trainable parameters")
        for n, p in named:
            if p.dtype != torch.float32 or p.device.type != "cpu":
                raise ConfigError(f"offload: parameter {n!r} is {p.dtype} on {p.device}; "
                                  "the offloaded trainer keeps fp32 master parameters on the CPU")
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named), subgroup_size, devices)

    @property
    def numel(self) -> int:
        return sum(_prod(s) for s in self.shapes)

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """(start, stop) of every parameter in the flat vector."""
        out, pos = [], 0
        for s in self.shapes:
            out.append((pos, pos + _prod(s)))
            pos += _prod(s)
        return out

    @property
    def subgroups(self) -> list[tuple[int, int]]:
        """(start, stop) of every subgroup in the flat vector; subgroups may span parameter boundaries."""
        n = self.numel
        return [(a, min(a + self.subgroup_size, n)) for a in range(0, n, self.subgroup_size)]

    @property
    def max_subgroup(self) -> int:
        return max(b - a for a, b in self.subgroups)

    def owner(self, sg: int) -> int:
        """Device that stores and updates subgroup ``sg`` (round-robin, so every device gets every K-th)."""
        return sg % self.devices

    def device_subgroups(self, device: int) -> list[int]:
        return [s for s in range(len(self.subgroups)) if self.owner(s) == device]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes],
                "subgroup_size": self.subgroup_size, "devices": self.devices, "numel": self.numel}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        return cls(tuple(d["names"]), tuple(tuple(s) for s in d["shapes"]), int(d["subgroup_size"]),
                   int(d["devices"]))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out
