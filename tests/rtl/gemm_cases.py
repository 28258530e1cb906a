"""Small networks for the gemm RTL tests (shared by several test modules)."""

from __future__ import annotations

import numpy as np

from hwforge.rtl.gemm import GemmConfig, GemmLayer
from hwforge.rtl.gemm.gather import conv2d_gather, flatten_gather

# Non-square arrays catch row/column mix-ups; M/K/N below are not multiples of either side.
OS_CFG = GemmConfig(rows=3, cols=2, width=8, acc_width=32, dataflow="os", op_depth=64, out_depth=96)
WS_CFG = GemmConfig(rows=2, cols=3, width=8, acc_width=32, dataflow="ws", op_depth=8, out_depth=96)


def conv_net(seed: int = 0) -> tuple[list[GemmLayer], np.ndarray]:
    """conv3x3(2->3, pad 1) on 2x4x4 + ReLU, NCHW flatten, linear 48->5 + ReLU, linear 5->3 (plain reshape)."""
    rng = np.random.default_rng(seed)
    c, h, w, o = 2, 4, 4, 3
    x = rng.integers(-128, 128, c * h * w)
    conv = GemmLayer(rng.integers(-128, 128, (o, c * 9)), rng.integers(-4000, 4000, o), multiplier=41000,
                     shift=21, relu=True, a_gather=conv2d_gather(1, c, h, w, 3, 3, padding=(1, 1)))
    fc1 = GemmLayer(rng.integers(-128, 128, (5, o * h * w)), rng.integers(-4000, 4000, 5), multiplier=52000,
                    shift=22, relu=True, a_gather=flatten_gather(1, o, h, w))
    fc2 = GemmLayer(rng.integers(-128, 128, (3, 5)), rng.integers(-4000, 4000, 3), multiplier=60000, shift=19)
    return [conv, fc1, fc2], x


def mlp(seed: int, m: int = 5, k: int = 7, n: int = 5) -> tuple[list[GemmLayer], np.ndarray]:
    """Two plain layers (M x K -> M x N -> M x 4), no ReLU, so any corrupted element shows."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, m * k)
    l1 = GemmLayer(rng.integers(-128, 128, (n, k)), rng.integers(-3000, 3000, n), multiplier=30000, shift=20)
    l2 = GemmLayer(rng.integers(-128, 128, (4, n)), rng.integers(-3000, 3000, 4), multiplier=45000, shift=19,
                   relu=True)
    return [l1, l2], x


# The `snf` target's default combination engine (16-bit Q8.8 operands, wrapping 32-bit accumulators, 4x4 WS,
# per-class traffic counters): the same Verilog, hence the same Verilator build, as tests/compiler's snf runs.
COMB_CFG = GemmConfig(rows=4, cols=4, width=16, acc_width=32, dataflow="ws")
COMB_SHIFT = 8  # Q8.8 x Q8.8 -> Q8.8


def fixed_point_layer(seed: int, m: int = 9, k: int = 40, n: int = 6, relu: bool = False,
                      ) -> tuple[list[GemmLayer], np.ndarray]:
    """One combination layer at the extremes of Q8.8: |products| near 2**30, so 40 of them wrap 32 bits."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-32768, -32767, 32767, 32000, -1, 1, 0, 255, 128, -129], (m, k))
    w = rng.choice([-32768, 32767, -30000, 3, -2, 128, 127], (n, k))
    bias = rng.integers(-(1 << 31), 1 << 31, n)
    return [GemmLayer(w, bias, multiplier=1, shift=COMB_SHIFT, relu=relu, out_bits=16)], x
