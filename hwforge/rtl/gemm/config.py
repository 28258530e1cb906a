"""Parameters of the `gemm` accelerator and of the layers it runs.

`GemmConfig` fixes the hardware (array shape, operand width, dataflow, buffer sizes, memory bus width); it is
elaboration-time data, so every check happens here, in Python, with a message that names the offending key
rather than failing later inside Amaranth or Verilator. `GemmLayer` is one quantised fully-connected layer
(optionally with an input gather table, which is how convolutions and layout changes reach the hardware).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir.quant import MAX_SHIFT, MULT_BITS, qrange

DATAFLOWS = ("os", "ws")
WIDTHS = (4, 8, 16)
BUS_WIDTHS = (32, 64, 128)


def min_acc_width(width: int) -> int:
    """Narrowest accumulator for ``width``-bit operands: a product plus one guard bit, capped at 32.

    The cap admits the fixed-point GCN contract (Q8.8 x Q8.8 into a wrapping 32-bit accumulator, which the
    `snf` target's combination engine runs on this array): a product of two signed 16-bit operands is at most
    2**30 in magnitude, so it fits 32 bits, and the accumulator wraps exactly like `quant.int_matmul` whatever
    the headroom. For widths 4 and 8 the guard-bit rule is unchanged.
    """
    return min(2 * width + 1, 32)


@dataclass(frozen=True)
class GemmConfig:
    """Hardware parameters of one `GemmAccelerator` instance.

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

    rows: int = 4
    cols: int = 4
    width: int = 8
    acc_width: int = 32
    dataflow: str = "os"
    op_depth: int = 256
    out_depth: int = 1024
    bus_width: int = 32

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v <= 32:
                raise ConfigError(f"gemm: {name}={v!r} is impossible; the PE array side must be 1..32")
        if self.width not in WIDTHS:
            raise ConfigError(f"gemm: width={self.width!r} is not supported; choose one of 4, 8, 16")
        lo = min_acc_width(self.width)
        if not isinstance(self.acc_width, int) or not lo <= self.acc_width <= 48:
            raise ConfigError(
                f"gemm: acc_width={self.acc_width!r} must be {lo}..48 for width={self.width} "
                f"(a product is {2 * self.width} bits, plus one guard bit below 32-bit accumulators)")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(f"gemm: dataflow={self.dataflow!r} is unknown; choose 'os' or 'ws'")
        if self.bus_width not in BUS_WIDTHS:
            raise ConfigError(f"gemm: bus_width={self.bus_width!r} must be 32, 64 or 128")
        need = max(self.rows, self.cols, 2)
        if not isinstance(self.op_depth, int) or not need <= self.op_depth <= 65536:
            raise ConfigError(
                f"gemm: op_depth={self.op_depth!r} must be {need}..65536 (at least max(rows, cols) entries "
                "per buffer lane)")
        need = self.rows * self.per_word
        if not isinstance(self.out_depth, int) or self.out_depth < need or self.out_depth > 1 << 20:
            raise ConfigError(
                f"gemm: out_depth={self.out_depth!r} is too small: the output buffer must hold at least "
                f"rows*elements_per_word = {self.rows}*{self.per_word} = {need} elements (and <= 2**20)")
        if self.out_depth % self.per_word:
            raise ConfigError(
                f"gemm: out_depth={self.out_depth} must be a multiple of {self.per_word} "
                "(elements per memory word)")

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
        """Build a config from ``--set key=value`` strings; errors name the key and say what is allowed."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, object] = {}
        for key, raw in options.items():
            if key not in known:
                raise ConfigError(f"gemm: unknown option {key!r}; known options: {', '.join(known)}")
            if key == "dataflow":
                kwargs[key] = str(raw).strip().lower()
                continue
            try:
                kwargs[key] = int(str(raw).strip(), 0)
            except ValueError:
                raise ConfigError(f"gemm: option {key}={raw!r} is not an integer") from None
        return cls(**kwargs)  # type: ignore[arg-type]


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
