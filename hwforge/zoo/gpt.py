"""A small GPT-style decoder (plain torch) and a deterministic character-level text corpus.

The model is the usual pre-norm transformer decoder (token + learned position embeddings, causal self-attention,
GELU MLP, tied output head). The corpus is generated from a fixed seed by a small grammar (sentences about
objects, counting and simple arithmetic), so it ships as code instead of a data file, is identical on every
machine, and has real structure for a model to learn (the loss falls well below the unigram entropy).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hwforge.errors import ConfigError

_NOUNS = ["cat", "dog", "bird", "fox", "owl", "bee", "ant", "cow", "hen", "fish", "frog", "mouse", "horse", "sheep"]
_COLORS = ["red", "blue", "green", "brown", "white", "black", "gray", "gold"]
_PLACES = ["in the barn", "by the river", "on the hill", "under the tree", "near the gate", "in the field"]
_VERBS = ["sees", "likes", "follows", "meets", "hears", "helps", "chases", "greets"]
_NUMS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]


def corpus(chars: int = 120_000, seed: int = 0) -> str:
    """``chars`` characters of seeded synthetic English (same text for the same arguments, everywhere)."""
    if chars < 1000:
        raise ConfigError(f"gpt corpus needs at least 1000 characters, got {chars}")
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        kind = rng.random()
        a, b = rng.choice(_NOUNS), rng.choice(_NOUNS)
        if kind < 0.4:
            s = f"the {rng.choice(_COLORS)} {a} {rng.choice(_VERBS)} the {b} {rng.choice(_PLACES)}."
        elif kind < 0.7:
            x, y = rng.randrange(10), rng.randrange(9)
            s = f"{_NUMS[x]} plus {_NUMS[y]} is {_NUMS[x + y]}."
        elif kind < 0.85:
            n = rng.randrange(2, 10)
            s = (f"there are {_NUMS[n]} {a}s {rng.choice(_PLACES)}, "
                 f"and {_NUMS[n - 1]} of them are {rng.choice(_COLORS)}.")
        else:
            s = f"a {a} is not a {b}." if a != b else f"a {a} is a {a}."
        out.append(s)
        size += len(s) + 1
        if rng.random() < 0.15:
            out.append("\n")
    return " ".join(out)[:chars]


class CharData:
    """Character-level tokens of a text, with deterministic batches keyed by (seed, step)."""

    def __init__(self, text: str) -> None:
        self.vocab = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.vocab)}
        self.tokens = torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def batch(self, step: int, batch_size: int, ctx: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``step``: the same inputs for the same step in every run (the data position is ``step``)."""
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, len(self.tokens) - ctx - 1, (batch_size,), generator=g)
        x = torch.stack([self.tokens[s: s + ctx] for s in starts.tolist()])
        y = torch.stack([self.tokens[s + 1: s + ctx + 1] for s in starts.tolist()])
        return x, y


@dataclass(frozen=True)
class GPTConfig:
    vocab: int
    ctx: int = 64
    d_model: int = 256
    n_layer: int = 4
    n_head: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"gpt: d_model {self.d_model} is not a multiple of n_head {self.n_head}")
        if min(self.vocab, self.ctx, self.d_model, self.n_layer, self.n_head) < 1:
            raise ConfigError("gpt: vocab, ctx, d_model, n_layer and n_head must be positive")


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.out = nn.Linear(4 * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, c)))
        return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    """Decoder-only transformer; ``loss(x, y)`` is the mean next-token cross-entropy."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("proj.weight", "out.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.cfg.ctx:
            raise ConfigError(f"gpt: sequence of {t} tokens is longer than the context {self.cfg.ctx}")
        x = self.drop(self.tok(idx) + self.pos(torch.arange(t)))
        for blk in self.blocks:
            x = blk(x)
        return self.ln(x) @ self.tok.weight.T  # tied head

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def gpt_model(vocab: int, seed: int = 0, **kwargs: int | float) -> GPT:
    """A `GPT` with parameters initialised from ``seed`` (same model for the same arguments)."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab=vocab, **kwargs))  # type: ignore[arg-type]
