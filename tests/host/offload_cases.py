"""Shared workload of the offload tests: a tiny GPT on the seeded corpus, trained in memory or offloaded.

Also a script (``python offload_cases.py ROOT MODE STEPS``) so a test can run the trainer in its own process and
kill it with SIGKILL.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from hwforge.host import OffloadConfig, OffloadTrainer
from hwforge.zoo.gpt import CharData, corpus, gpt_model

torch.set_num_threads(1)  # tiny tensors: one thread is faster on a shared 2-core machine, and runs are comparable
DATA = CharData(corpus(4000, seed=1))
MODEL = {"d_model": 32, "n_layer": 2, "n_head": 2, "ctx": 16, "dropout": 0.1}
OPT = {"lr": 3e-3, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.05}
BATCH = 4
SUBGROUP = 2000  # ~30k parameters -> 15 subgroups, so a step has many transfers to interrupt


def model() -> torch.nn.Module:
    return gpt_model(len(DATA.vocab), seed=0, **MODEL)


def loss_fn(step: int):
    x, y = DATA.batch(step, BATCH, MODEL["ctx"], seed=0)
    return lambda m: m.loss(x, y)


def flat(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in m.parameters()]).clone()


def train_in_memory(steps: int) -> tuple[torch.Tensor, list[float]]:
    """(a): plain torch AdamW, same seeds, same batches."""
    torch.manual_seed(1234)
    m = model()
    opt = torch.optim.AdamW(m.parameters(), **OPT)
    losses = []
    for t in range(steps):
        opt.zero_grad()
        loss = loss_fn(t)(m)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return flat(m), losses


def config(root: Path, mode: str, devices: int = 2, **kw) -> OffloadConfig:
    return OffloadConfig(root, mode=mode, devices=devices, optimizer="adamw", optimizer_params=OPT,
                         subgroup_size=SUBGROUP, **kw)


def train_offloaded(root: Path, mode: str, steps: int, devices: int = 2, **kw) -> tuple[torch.Tensor, list[float]]:
    """Offloaded training from whatever ``root`` holds (fresh or a crashed run) up to ``steps``."""
    torch.manual_seed(1234)
    m = model()
    losses = []
    with OffloadTrainer(m, config(root, mode, devices, **kw)) as tr:
        start = tr.resume()
        for t in range(start.step, steps):
            losses.append(tr.step(loss_fn(t), user_state={"position": t + 1}))
    return flat(m), losses


if __name__ == "__main__":
    train_offloaded(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
