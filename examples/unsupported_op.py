"""A model hwforge cannot lower: ``hwforge compile examples/unsupported_op.py:build`` reports the op (sigmoid)
and where it came from, in one line, with exit code 2."""

import torch
from torch import nn


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.act = nn.Sigmoid()  # no sigmoid in the IR

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


def build() -> tuple[nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    return Gate(), (torch.randn(4, 16),)
