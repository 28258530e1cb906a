"""Integer semantics of low-bit (1-4 bit) inference, shared by the IR ops, the `localut` target and its kernels.

Conventions (agreed with the LUT-kernel emitter, see docs/localut_target.md):

- Weights are ``wbits``-bit *codes* ``c`` in ``[0, 2**wbits)`` with an integer level table
  ``levels[c] = 2*c - (2**wbits - 1)`` ("odd symmetric": W1 = {-1, +1}, W2 = {-3, -1, 1, 3}, ...), times a
  float scale per output channel. Why odd symmetric rather than two's complement: it is the only level set that
  also covers 1 bit, it is symmetric (two's complement wastes its most negative level on one side), and it is
  *bit-linear*: ``level = sum_i 2**(i+1) * bit_i - (2**wbits - 1)``, which is what bit-serial (T-MAC) kernels
  need. Kernels take any level table; the baselines check bit-linearity and the LUT kernel does not care.
- Activations are unsigned ``abits``-bit codes ``a`` in ``[0, 2**abits)`` meaning ``a * scale`` (one scale per
  tensor). The inputs of low-bit layers must be non-negative (image pixels, post-ReLU activations).
- The device computes ``y[m, n] = sum_k levels[wc[n, k]] * ac[m, k]`` in a 32-bit two's-complement
  accumulator (`lowbit_matmul_int`). The host then adds the int32 bias (at ``in_scale * w_scale[n]``) and either
  requantises to the next layer's activation codes (`requantize_codes_int`, per-channel multiplier and shift
  with the round-half-up rule of `hwforge.ir.quant.requantize`) or dequantises to float (`dequantize_acc`).
"""

from __future__ import annotations

import numpy as np

from hwforge.ir import quant

ACC_BITS = 32
CLIP_RATIOS = np.linspace(0.25, 1.0, 31)
"""Clipping ratios (of max |value|) the calibrators try; the one with the least squared error wins."""


def odd_levels(bits: int) -> np.ndarray:
    """The odd-symmetric level table ``2c - (2**bits - 1)`` for ``bits`` in 1..8 (int32)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"weight bits must be 1..8, got {bits}")
    c = np.arange(1 << bits, dtype=np.int64)
    return (2 * c - ((1 << bits) - 1)).astype(np.int32)


def bit_linear(levels: np.ndarray) -> tuple[int, list[int]] | None:
    """``(offset, coefficients)`` with ``levels[c] == offset + sum_i coef[i] * bit_i(c)``, or None.

    Bit-serial kernels need this decomposition (one partial sum per bit plane); odd-symmetric and
    two's-complement tables both have it.
    """
    levels = np.asarray(levels, dtype=np.int64)
    bits = int(len(levels)).bit_length() - 1
    if len(levels) != 1 << bits:
        return None
    offset = int(levels[0])
    coef = [int(levels[1 << i]) - offset for i in range(bits)]
    c = np.arange(len(levels))
    rebuilt = offset + sum(coef[i] * ((c >> i) & 1) for i in range(bits))
    return (offset, coef) if np.array_equal(rebuilt, levels) else None


def quantize_weights(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel odd-symmetric quantisation of ``w`` (N x K float) -> (codes uint8 N x K, scales N).

    Each channel's scale is chosen among `CLIP_RATIOS` of ``max|w| / (2**bits - 1)`` by least squared error:
    at 1-2 bits plain max scaling wastes most levels on a few outliers (at W1 the best scale is near mean|w|).
    """
    w = np.asarray(w, dtype=np.float64)
    top = (1 << bits) - 1
    amax = np.abs(w).max(axis=1)
    amax = np.where(amax > 0, amax, 1.0)
    best_err = np.full(w.shape[0], np.inf)
    best_scale = amax / top
    for r in CLIP_RATIOS:
        scale = r * amax / top
        codes = np.clip(np.round((w / scale[:, None] + top) / 2), 0, top)
        err = ((codes * 2 - top) * scale[:, None] - w) ** 2
        err = err.sum(axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
    codes = np.clip(np.round((w / best_scale[:, None] + top) / 2), 0, top).astype(np.uint8)
    return codes, best_scale.astype(np.float64)


def activation_scale(values: np.ndarray, bits: int) -> float:
    """Scale of unsigned ``bits``-bit codes for non-negative ``values`` (least squared error over clip ratios)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    top = (1 << bits) - 1
    vmax = float(v.max()) if v.size else 0.0
    if vmax <= 0:
        return 1.0
    best = (np.inf, vmax / top)
    for r in CLIP_RATIOS:
        scale = r * vmax / top
        err = float((((np.clip(np.round(v / scale), 0, top)) * scale - v) ** 2).sum())
        if err < best[0]:
            best = (err, scale)
    return float(best[1])


def quantize_codes(x: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """Float -> unsigned codes ``clamp(round_half_even(x / scale), 0, 2**bits - 1)`` in float32 (int64 out)."""
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(scale))
    return np.clip(q, 0, (1 << bits) - 1).astype(np.int64)


def lowbit_matmul_int(ac: np.ndarray, wc: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """What the DPU computes: ``y[m, n] = sum_k levels[wc[n, k]] * ac[m, k]``, 32-bit wrap (int64 out)."""
    w = np.asarray(levels, dtype=np.int64)[np.asarray(wc, dtype=np.int64)]
    return quant.int_matmul(np.asarray(ac, dtype=np.int64), w, None, ACC_BITS)


def requantize_codes_int(acc: np.ndarray, bias: np.ndarray, multipliers: np.ndarray, shifts: np.ndarray,
                         bits: int) -> np.ndarray:
    """Host requantisation between DPU launches: ``(acc + bias[n])`` wrapped to 32 bits, then per channel
    ``(v * multiplier[n] + 2**(shift[n]-1)) >> shift[n]`` (round half up), clamped to ``[0, 2**bits - 1]``
    (the clamp at 0 is the layer's ReLU: codes are unsigned)."""
    v = quant.wrap(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)[None, :], ACC_BITS)
    mult = np.asarray(multipliers, dtype=np.int64)[None, :]
    shift = np.asarray(shifts, dtype=np.int64)[None, :]
    rnd = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    scaled = (v * mult + rnd) >> shift  # |v| < 2**31, multiplier < 2**16: fits int64
    return np.clip(scaled, 0, (1 << bits) - 1)


def dequantize_acc(acc: np.ndarray, bias: np.ndarray, scales: np.ndarray, relu: bool) -> np.ndarray:
    """Float output of a last layer: ``float32(acc + bias[n]) * float32(scale[n])`` (then ReLU if fused)."""
    v = quant.wrap(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)[None, :], ACC_BITS)
    out = v.astype(np.float32) * np.asarray(scales, dtype=np.float32)[None, :]
    return np.maximum(out, np.float32(0)) if relu else out


def requant_params(in_scale: float, w_scales: np.ndarray, out_scale: float) -> tuple[list[int], list[int]]:
    """Per-channel (multiplier, shift) for ``in_scale * w_scale[n] / out_scale`` (`quant.quantize_multiplier`)."""
    pairs = [quant.quantize_multiplier(float(in_scale * s / out_scale)) for s in np.asarray(w_scales)]
    return [m for m, _ in pairs], [s for _, s in pairs]


def rows_to_nchw(rows: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """im2col output rows ``(n*oh*ow, C)`` in (n, oh, ow) order back to NCHW."""
    r = np.asarray(rows)
    n = r.shape[0] // (oh * ow)
    return np.ascontiguousarray(r.reshape(n, oh, ow, r.shape[1]).transpose(0, 3, 1, 2))
