"""Program (memory image) format of the gemm accelerator, the program builder and the integer golden model.

Memory is an array of ``bus_width``-bit words, addressed by word. Scalar fields (counts, addresses, biases,
gather indices) take one word each, in its low 32 bits. Operands and outputs are packed little-endian in
containers of `GemmConfig.container_bits` (8 bits for width 4/8, 16 bits for width 16), sign-extended,
``per_word`` containers per word, element 0 in the least significant bits.

Layout::

    word 0                 number of layers L
    word 1 + 20*i + f      descriptor of layer i, field f (see `F`; the products the loops step by are
                           precomputed here, so the sequencer only adds and compares)
    ...                    per layer: weights (N x K row-major, packed), bias (N words),
                           gather table (M x K words, int32, -1 = zero), all word aligned
    ...                    network input (packed, flat)
    out_lo ...             per layer: output (M rows, each padded to ``dst_words`` whole words)

The hardware addresses an A element by its *physical* index in the source region. The source of layer 0 is
the packed input; of layer i > 0, the previous layer's padded output, where logical element (m, n) is at
``m * npad + n``. `build_program` translates the layer's logical gather table (or, when no table is given but
the reshape changes the row length, a synthesised one) into physical indices, so the hardware never divides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir.quant import qlinear_int, qrange
from hwforge.rtl.gemm.config import GemmConfig, GemmLayer
from hwforge.rtl.gemm.isa import BIAS_SLOTS
from hwforge.rtl.gemm.load import bank_geometry

DESC_WORDS = 20


class F(IntEnum):
    """Descriptor fields (word offsets within a layer's DESC_WORDS-word descriptor)."""

    M = 0            # rows of A / output
    K = 1            # reduction length
    N = 2            # outputs per row
    FLAGS = 3        # bit 0: ReLU, bit 1: A is gathered through the index table, bit 2: OS only, the layer's
                     # weights stay resident (every column block fits the weight buffer at once, see `resident`)
    MULT = 4         # requantisation multiplier (unsigned, < 2**16)
    SHIFT = 5        # requantisation right shift (0..47)
    SRC = 6          # word address of the source tensor
    SRC_STRIDE = 7   # without gather: physical element index of A[m, k] is m * SRC_STRIDE + k
    GATHER = 8       # word address of the M x K gather table (physical indices, -1 = zero)
    W = 9            # word address of the packed N x K weights
    BIAS = 10        # word address of the N biases
    DST = 11         # word address of the output
    DST_WORDS = 12   # words per output row (npad = DST_WORDS * per_word elements)
    M_TILE = 13      # WS only: rows of A per chunk (bounded by op_depth and out_depth)
    A_STEP = 14      # elements of the source between row blocks: mstep * SRC_STRIDE (mstep = rows (OS) or M_TILE)
    G_STEP = 15      # gather-table words between row blocks: mstep * K
    B_STEP = 16      # weight elements between column blocks: cols * K
    DST_STEP = 17    # output words between row blocks: mstep * DST_WORDS
    OUT_WORDS = 18   # output words of the layer: M * DST_WORDS


@dataclass(frozen=True)
class LayerPlan:
    """Where one layer lives in the image and how it is tiled."""

    m: int
    k: int
    n: int
    dst: int
    dst_words: int
    m_tile: int


@dataclass
class Program:
    """A complete memory image plus what is needed to find the results in a memory dump."""

    cfg: GemmConfig
    words: list[int]
    plans: list[LayerPlan]
    out_lo: int

    @property
    def size(self) -> int:
        """Words in the image including the (zeroed) output regions."""
        return len(self.words)

    def output_range(self) -> tuple[int, int]:
        """``[lo, hi)`` word range holding every layer's output."""
        return self.out_lo, self.size

    def hex_text(self) -> str:
        """The image as ``$readmemh`` text: one word per line, ``bus_width/4`` hex digits."""
        digits = self.cfg.bus_width // 4
        return "".join(f"{w:0{digits}x}\n" for w in self.words)

    def write_hex(self, path: str | Path) -> None:
        Path(path).write_text(self.hex_text())

    def read_outputs(self, dumped: list[int] | np.ndarray, base: int = 0) -> list[np.ndarray]:
        """Per-layer outputs (M x N int64) from memory words; ``dumped[0]`` is the word at address ``base``."""
        words = [int(w) for w in dumped]
        outs = []
        for p in self.plans:
            lo = p.dst - base
            if lo < 0 or lo + p.m * p.dst_words > len(words):
                raise ConfigError(f"memory dump [{base}, {base + len(words)}) does not cover the output of a layer "
                                  f"at [{p.dst}, {p.dst + p.m * p.dst_words})")
            flat = unpack(self.cfg, words[lo:lo + p.m * p.dst_words])
            outs.append(flat.reshape(p.m, -1)[:, :p.n].copy())
        return outs


def pack(cfg: GemmConfig, values: np.ndarray) -> list[int]:
    """Pack ints into words: ``per_word`` sign-extended containers per word, little-endian."""
    cb, pw = cfg.container_bits, cfg.per_word
    v = [int(x) & ((1 << cb) - 1) for x in np.asarray(values).reshape(-1)]
    v += [0] * (-len(v) % pw)
    return [sum(v[i + j] << (cb * j) for j in range(pw)) for i in range(0, len(v), pw)]


def unpack(cfg: GemmConfig, words: list[int]) -> np.ndarray:
    """Inverse of `pack` (every container of every word, sign-extended to int64)."""
    cb, pw = cfg.container_bits, cfg.per_word
    out = []
    for w in words:
        for j in range(pw):
            c = (int(w) >> (cb * j)) & ((1 << cb) - 1)
            out.append(c - (1 << cb) if c >> (cb - 1) else c)
    return np.asarray(out, dtype=np.int64)


def resident(cfg: GemmConfig, k: int, n: int) -> bool:
    """Whether an output-stationary layer keeps all its weights on chip: every column block's K (padded to
    whole words) side by side in the two weight banks, and one bias slot per block. The weights are then read
    once per layer instead of once per row block; in WS each weight tile is already used by a whole chunk."""
    if cfg.dataflow != "os":
        return False
    blocks = -(-n // cfg.cols)
    kpad = -(-k // cfg.per_word) * cfg.per_word
    return blocks * kpad <= 2 * (1 << bank_geometry(cfg)[1]) and blocks <= BIAS_SLOTS


def _check_fits(name: str, values: np.ndarray, bits: int) -> None:
    lo, hi = qrange(bits)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ConfigError(f"gemm: {name} has values outside the signed {bits}-bit range [{lo}, {hi}]")


def _layer_shapes(layers: list[GemmLayer], x_size: int) -> list[tuple[int, int, int, int]]:
    """(M, K, N, source size) per layer, checking that each layer's A can be formed from its source."""
    shapes = []
    src = x_size
    for i, layer in enumerate(layers):
        k, n = layer.k, layer.n
        if layer.a_gather is not None:
            m = int(layer.a_gather.shape[0])
            if layer.a_gather.size and layer.a_gather.max() >= src:
                raise ConfigError(f"gemm layer {i}: a_gather index {int(layer.a_gather.max())} is outside its "
                                  f"source tensor of {src} elements")
        else:
            if src % k:
                raise ConfigError(f"gemm layer {i}: source of {src} elements cannot be reshaped to rows of K={k}")
            m = src // k
        if m < 1:
            raise ConfigError(f"gemm layer {i}: no rows (M=0)")
        shapes.append((m, k, n, src))
        src = m * n
    return shapes


def build_program(cfg: GemmConfig, layers: list[GemmLayer], x: np.ndarray) -> Program:
    """Lay out descriptors, weights, biases, gather tables, input and output regions (see module doc)."""
    if not layers:
        raise ConfigError("gemm: a program needs at least one layer")
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    _check_fits("input", x, cfg.width)
    shapes = _layer_shapes(layers, x.size)
    pw = cfg.per_word
    words: list[int] = [len(layers)] + [0] * (DESC_WORDS * len(layers))

    def place(chunk: list[int]) -> int:
        addr = len(words)
        words.extend(chunk)
        return addr

    placed = []
    for i, (layer, (m, k, n, _)) in enumerate(zip(layers, shapes, strict=True)):
        if layer.out_bits not in (None, cfg.width):
            raise ConfigError(f"gemm layer {i}: out_bits={layer.out_bits} must equal the array width {cfg.width}")
        _check_fits(f"layer {i} weight", layer.weight, cfg.width)
        if cfg.dataflow == "os" and k > cfg.op_depth:
            raise ConfigError(f"gemm layer {i}: K={k} exceeds op_depth={cfg.op_depth} (output-stationary keeps a "
                              "whole row of A per buffer lane); raise op_depth")
        dst_words = -(-n // pw)
        npad = dst_words * pw
        if cfg.dataflow == "os":
            if cfg.rows * npad > cfg.out_depth:
                raise ConfigError(f"gemm layer {i}: N={n} needs out_depth >= rows*{npad} = {cfg.rows * npad}, "
                                  f"have {cfg.out_depth}")
            m_tile = cfg.rows
        else:
            m_tile = min(cfg.op_depth, cfg.out_depth // npad, m)
            if m_tile < 1:
                raise ConfigError(f"gemm layer {i}: N={n} needs out_depth >= {npad}, have {cfg.out_depth}")
        w_addr = place(pack(cfg, layer.weight))
        b_addr = place([int(b) & 0xFFFFFFFF for b in layer.bias])
        placed.append((w_addr, b_addr, m, k, n, dst_words, m_tile))

    x_addr = place(pack(cfg, x))
    # gather tables need the previous layer's padded row length, known now
    gathers: list[int | None] = []
    src_strides: list[int] = []
    prev_npad = None
    for i, (layer, (m, k, _n, _src)) in enumerate(zip(layers, shapes, strict=True)):
        prev_n = shapes[i - 1][2] if i else None

        def phys(logical: np.ndarray, prev_n=prev_n, prev_npad=prev_npad) -> np.ndarray:
            if prev_n is None:
                return logical
            return np.where(logical < 0, -1, (logical // prev_n) * prev_npad + logical % prev_n)

        table = None
        stride = k
        if layer.a_gather is not None:
            table = phys(layer.a_gather)
        elif i and k != prev_n:
            table = phys(np.arange(m * k, dtype=np.int64).reshape(m, k))
        elif i:
            stride = prev_npad
        gathers.append(place([int(v) & 0xFFFFFFFF for v in table.reshape(-1)]) if table is not None else None)
        src_strides.append(stride)
        prev_npad = placed[i][5] * pw

    out_lo = len(words)
    plans = []
    src_addr = x_addr
    for i, (layer, (w_addr, b_addr, m, k, n, dst_words, m_tile)) in enumerate(zip(layers, placed, strict=True)):
        dst = place([0] * (m * dst_words))
        desc = [0] * DESC_WORDS
        desc[F.M], desc[F.K], desc[F.N] = m, k, n
        desc[F.FLAGS] = (int(bool(layer.relu)) | (2 if gathers[i] is not None else 0)
                         | (4 if resident(cfg, k, n) else 0))
        desc[F.MULT], desc[F.SHIFT] = int(layer.multiplier), int(layer.shift)
        desc[F.SRC], desc[F.SRC_STRIDE] = src_addr, src_strides[i]
        desc[F.GATHER] = gathers[i] or 0
        desc[F.W], desc[F.BIAS], desc[F.DST], desc[F.DST_WORDS], desc[F.M_TILE] = (
            w_addr, b_addr, dst, dst_words, m_tile)
        mstep = cfg.rows if cfg.dataflow == "os" else m_tile
        desc[F.A_STEP], desc[F.G_STEP], desc[F.B_STEP] = mstep * src_strides[i], mstep * k, cfg.cols * k
        desc[F.DST_STEP], desc[F.OUT_WORDS] = mstep * dst_words, m * dst_words
        words[1 + DESC_WORDS * i: 1 + DESC_WORDS * (i + 1)] = desc
        plans.append(LayerPlan(m, k, n, dst, dst_words, m_tile))
        src_addr = dst
    return Program(cfg, words, plans, out_lo)


def reference(cfg: GemmConfig, layers: list[GemmLayer], x: np.ndarray) -> list[np.ndarray]:
    """Per-layer integer outputs the hardware must produce (`hwforge.ir.quant` semantics, acc wraps)."""
    src = np.asarray(x, dtype=np.int64).reshape(-1)
    outs = []
    for layer, (m, k, _n, _) in zip(layers, _layer_shapes(layers, src.size), strict=True):
        if layer.a_gather is not None:
            g = layer.a_gather
            a = np.where(g < 0, 0, src[np.clip(g, 0, None)])
        else:
            a = src.reshape(m, k)
        y = qlinear_int(a, layer.weight, layer.bias, int(layer.multiplier), int(layer.shift), bool(layer.relu),
                        cfg.acc_width, cfg.width)
        outs.append(y)
        src = y.reshape(-1)
    return outs
