"""Parameters of the `gemm` accelerator and of the layers it runs.

`GemmConfig` fixes the hardware (array shape, operand width, dataflow, buffer sizes, memory bus width); it is
elaboration-time data, so every check happens here, in Python, with a message that names the offending key
rather than failing later inside Amaranth or Verilator. `GemmLayer` is one quantised fully-connected layer
(optionally with an input gather table, which is how convolutions and layout changes reach the hardware).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir.quant import MAX_SHIFT, MULT_BITS, qrange
from hwforge.options import OptionError, Options, option

DATAFLOWS = ("os", "ws")
WIDTHS = (4, 8, 16)
BUS_WIDTHS = (32, 64, 128, 256, 512)


def min_acc_width(width: int) -> int:
    """Narrowest accumulator for ``width``-bit operands: a product plus one guard bit, capped at 32.

    The cap admits the fixed-point GCN contract (Q8.8 x Q8.8 into a wrapping 32-bit accumulator, which the
    `snf` target's combination engine runs on this array): a product of two signed 16-bit operands is at most
    2**30 in magnitude, so it fits 32 bits, and the accumulator wraps exactly like `quant.int_matmul` whatever
    the headroom. For widths 4 and 8 the guard-bit rule is unchanged.
    """
    return min(2 * width + 1, 32)


@dataclass(frozen=True)
class GemmConfig(Options):
    """Hardware parameters of one `GemmAccelerator` instance; also the `gemm` target's options.

    - ``rows`` x ``cols``: PE array shape (1..32 each).
    - ``width``: operand and output bits (4, 8 or 16); ``acc_width``: accumulator bits (2*width+1 .. 48, and
      32 for width 16: the fixed-point contract's accumulator, see `min_acc_width`).
    - ``dataflow``: ``"os"`` (output-stationary) or ``"ws"`` (weight-stationary).
    - ``op_depth``: entries per lane of each operand buffer (A rows / B columns) and of the accumulator
      buffer. OS needs ``K <= op_depth``; WS tiles M into chunks of at most ``op_depth`` rows.
    - ``out_depth``: elements in the output staging buffer, which holds one row block of the output with rows
      padded to whole memory words before it is written back.
    - ``bus_width``: memory data bits (32, 64 or 128).
    """

    OWNER: ClassVar[str] = "gemm"
    LOWER_CASE: ClassVar[tuple[str, ...]] = ("dataflow",)

    rows: int = option(4, "PE array rows", lo=1, hi=32)
    cols: int = option(4, "PE array columns", lo=1, hi=32)
    width: int = option(8, "operand and activation bits (the quantisation pass uses the same width)",
                        choices=WIDTHS)
    acc_width: int = option(32, "accumulator bits, 2*width+1..48 (32 for width 16); the integer reference wraps "
                                "exactly where the hardware does", lo=9, hi=48)
    dataflow: str = option("os", "os (output-stationary) or ws (weight-stationary)", choices=DATAFLOWS)
    op_depth: int = option(256, "entries per lane of the operand and accumulator buffers; OS needs K <= op_depth, "
                                "WS tiles M by it", lo=2, hi=65536)
    out_depth: int = option(1024, "elements in the output staging buffer (one row block, rows padded to whole "
                                  "memory words)", lo=1, hi=1 << 20)
    bus_width: int = option(32, "memory data bits", choices=BUS_WIDTHS)
    reads_in_flight: int = option(8, "memory reads each DMA engine keeps in flight; a memory with latency L "
                                     "streams min(1, reads_in_flight / (L + 2)) words a cycle", lo=1, hi=32)

    def __post_init__(self) -> None:
        self.check_fields()
        lo = min_acc_width(self.width)
        if not lo <= self.acc_width <= 48:
            raise OptionError("gemm", "acc_width", self.acc_width,
                              f"must be {lo}..48 for width={self.width} (a product is {2 * self.width} bits, plus "
                              "one guard bit below 32-bit accumulators)")
        need = max(self.rows, self.cols, 2)
        if self.op_depth < need:
            raise OptionError("gemm", "op_depth", self.op_depth,
                              f"must be {need}..65536 (at least max(rows, cols) entries per buffer lane)")
        need = self.rows * self.per_word
        if self.out_depth < need:
            raise OptionError("gemm", "out_depth", self.out_depth,
                              f"is too small: the output buffer must hold at least rows*elements_per_word = "
                              f"{self.rows}*{self.per_word} = {need} elements")
        if self.out_depth % self.per_word:
            raise OptionError("gemm", "out_depth", self.out_depth,
                              f"must be a multiple of {self.per_word} (elements per memory word)")

    @property
    def container_bits(self) -> int:
        """Bits each operand occupies in memory: 8 for width 4/8 (sign-extended), 16 for width 16."""
        return 16 if self.width == 16 else 8

    @property
    def per_word(self) -> int:
        """Operands per memory word (little-endian: element 0 in the least significant container)."""
        return self.bus_width // self.container_bits

    @classmethod
    def from_options(cls, options: dict[str, str]) -> GemmConfig:
        """Build a config from ``--set key=value`` strings (`Options.from_sets`)."""
        return cls.from_sets(options)


@dataclass
class GemmLayer:
    """One quantised layer: ``out = requantize(A @ weight.T + bias)`` with A gathered from the source tensor.

    ``a_gather`` (M x K, int32) picks element ``a_gather[m, k]`` of the source tensor (flattened row-major),
    or 0 where it is -1; without it, A is the source reshaped to M x K (M inferred from the source size).
    """

    weight: np.ndarray
    bias: np.ndarray
    multiplier: int
    shift: int
    relu: bool = False
    out_bits: int | None = None
    a_gather: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.int64)
        if self.weight.ndim != 2 or self.weight.size == 0:
            raise ConfigError(f"gemm layer: weight must be a non-empty N x K matrix, got shape {self.weight.shape}")
        n = self.weight.shape[0]
        self.bias = np.zeros(n, np.int64) if self.bias is None else np.asarray(self.bias, dtype=np.int64)
        if self.bias.shape != (n,):
            raise ConfigError(f"gemm layer: bias must have shape ({n},), got {self.bias.shape}")
        lo, hi = qrange(32)
        if self.bias.size and (self.bias.min() < lo or self.bias.max() > hi):
            raise ConfigError("gemm layer: bias does not fit in int32")
        if not 0 <= int(self.multiplier) < 1 << MULT_BITS:
            raise ConfigError(f"gemm layer: multiplier {self.multiplier} must be 0..{(1 << MULT_BITS) - 1}")
        if not 0 <= int(self.shift) <= MAX_SHIFT:
            raise ConfigError(f"gemm layer: shift {self.shift} must be 0..{MAX_SHIFT}")
        if self.a_gather is not None:
            self.a_gather = np.asarray(self.a_gather, dtype=np.int64)
            if self.a_gather.ndim != 2 or self.a_gather.shape[1] != self.weight.shape[1]:
                raise ConfigError(
                    f"gemm layer: a_gather must be M x K with K={self.weight.shape[1]}, got {self.a_gather.shape}")
            if self.a_gather.size and self.a_gather.min() < -1:
                raise ConfigError("gemm layer: a_gather entries must be >= -1 (-1 means zero padding)")

    @property
    def n(self) -> int:
        return int(self.weight.shape[0])

    @property
    def k(self) -> int:
        return int(self.weight.shape[1])
