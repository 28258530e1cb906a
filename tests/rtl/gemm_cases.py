"""Small networks for the gemm RTL tests (shared by several test modules)."""

from __future__ import annotations

import numpy as np

from hwforge.rtl.gemm import GemmConfig, GemmLayer

# Non-square arrays catch row/column mix-ups; M/K/N below are not multiples of either side.
OS_CFG = GemmConfig(rows=3, cols=2, width=8, acc_width=32, dataflow="os", op_depth=64, out_depth=96)
WS_CFG = GemmConfig(rows=2, cols=3, width=8, acc_width=32, dataflow="ws", op_depth=8, out_depth=96)


def im2col_gather(c: int, h: int, w: int, k: int, pad: int) -> np.ndarray:
    """Gather table for a stride-1 conv on an NCHW (N=1) input: rows (oh, ow), columns (c, kh, kw)."""
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    g = np.full((oh * ow, c * k * k), -1, dtype=np.int64)
    for y in range(oh):
        for x in range(ow):
            for ci in range(c):
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = y + ky - pad, x + kx - pad
                        if 0 <= iy < h and 0 <= ix < w:
                            g[y * ow + x, (ci * k + ky) * k + kx] = ci * h * w + iy * w + ix
    return g


def nhwc_to_nchw_flatten(c: int, h: int, w: int) -> np.ndarray:
    """1 x (c*h*w) gather: NCHW flatten of a conv output stored as (h*w) x c rows."""
    idx = [(y * w + x) * c + ci for ci in range(c) for y in range(h) for x in range(w)]
    return np.asarray(idx, dtype=np.int64).reshape(1, -1)


def conv_net(seed: int = 0) -> tuple[list[GemmLayer], np.ndarray]:
    """conv3x3(2->3, pad 1) on 2x4x4 + ReLU, NCHW flatten, linear 48->5 + ReLU, linear 5->3 (plain reshape)."""
    rng = np.random.default_rng(seed)
    c, h, w, o = 2, 4, 4, 3
    x = rng.integers(-128, 128, c * h * w)
    conv = GemmLayer(rng.integers(-128, 128, (o, c * 9)), rng.integers(-4000, 4000, o), multiplier=41000,
                     shift=21, relu=True, a_gather=im2col_gather(c, h, w, 3, 1))
    fc1 = GemmLayer(rng.integers(-128, 128, (5, o * h * w)), rng.integers(-4000, 4000, 5), multiplier=52000,
                    shift=22, relu=True, a_gather=nhwc_to_nchw_flatten(o, h, w))
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
