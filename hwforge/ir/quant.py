"""Integer arithmetic that hardware and the integer reference share, bit for bit.

Every target that computes in integers uses these functions for its golden model, so there is one definition
of rounding and saturation in the project:

- Symmetric per-tensor quantisation: ``q = clamp(round_half_even(x / scale), qmin, qmax)``, zero point 0,
  ``qmax = 2**(bits-1) - 1``, ``qmin = -qmax - 1`` (torch.round semantics, so float reference and integer
  model agree on how ties go).
- Accumulators are two's-complement ``acc_bits`` wide and wrap on overflow, exactly like a hardware register.
- Requantisation multiplies the accumulator by an unsigned integer ``multiplier`` (< 2**MULT_BITS) and shifts
  right by ``shift`` with round-half-up: ``(acc * multiplier + 2**(shift-1)) >> shift`` (arithmetic shift,
  i.e. floor), then optional ReLU, then saturation to the output width.
"""

from __future__ import annotations

import math

import numpy as np

MULT_BITS = 16
"""Width of the unsigned requantisation multiplier in hardware."""

MAX_SHIFT = 47
"""Largest right shift the requantiser supports."""


def qrange(bits: int) -> tuple[int, int]:
    """Signed range of a ``bits``-wide two's-complement integer."""
    if bits < 2:
        raise ValueError(f"signed integers need at least 2 bits, got {bits}")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def symmetric_scale(max_abs: float, bits: int) -> float:
    """Scale that maps ``[-max_abs, max_abs]`` onto the signed ``bits`` range (never zero)."""
    _, qmax = qrange(bits)
    return float(max_abs) / qmax if max_abs > 0 else 1.0 / qmax


def wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 values to ``bits`` bits (what a ``bits``-wide register holds)."""
    v = np.asarray(values, dtype=np.int64)
    if bits >= 64:
        return v
    mask = (1 << bits) - 1
    u = v & mask
    return np.where(u >= (1 << (bits - 1)), u - (1 << bits), u).astype(np.int64)


def saturate(values: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = qrange(bits)
    return np.clip(np.asarray(values, dtype=np.int64), lo, hi)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Approximate a positive real multiplier as ``multiplier * 2**-shift`` with a MULT_BITS-wide multiplier.

    The multiplier is normalised into ``[2**(MULT_BITS-1), 2**MULT_BITS)`` for the most precision the
    hardware can use.
    """
    if not (real > 0 and math.isfinite(real)):
        raise ValueError(f"requantisation multiplier must be positive and finite, got {real}")
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    multiplier = round(mantissa * (1 << MULT_BITS))
    shift = MULT_BITS - exponent
    if multiplier == 1 << MULT_BITS:  # rounding carried out of the mantissa
        multiplier >>= 1
        shift -= 1
    while shift < 0:  # huge ratio: cannot scale up by shifting left, fold into a smaller multiplier
        raise ValueError(f"requantisation multiplier {real} is too large for the hardware requantiser")
    if shift > MAX_SHIFT:
        raise ValueError(f"requantisation multiplier {real} is too small (shift {shift} > {MAX_SHIFT})")
    return int(multiplier), int(shift)


def requantize(acc: np.ndarray, multiplier: int, shift: int, relu: bool, out_bits: int) -> np.ndarray:
    """Scale an accumulator down to ``out_bits``: multiply, round half up, shift, ReLU, saturate."""
    a = np.asarray(acc, dtype=np.int64)
    if shift > 0:
        # Python ints avoid int64 overflow of acc * multiplier for wide accumulators.
        scaled = np.array(
            [(int(x) * multiplier + (1 << (shift - 1))) >> shift for x in a.reshape(-1)], dtype=np.int64
        ).reshape(a.shape) if a.size and np.abs(a).max() >= (1 << (62 - MULT_BITS)) else (
            (a * multiplier + (1 << (shift - 1))) >> shift
        )
    else:
        scaled = a * multiplier
    if relu:
        scaled = np.maximum(scaled, 0)
    return saturate(scaled, out_bits)


def int_matmul(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, acc_bits: int) -> np.ndarray:
    """``x @ w.T + bias`` in int64, wrapped to ``acc_bits`` (x: M x K, w: N x K, bias: N)."""
    acc = np.asarray(x, dtype=np.int64) @ np.asarray(w, dtype=np.int64).T
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)[None, :]
    return wrap(acc, acc_bits)


# ---------------------------------------------------------------------------------------------------------
# Whole-op integer semantics (the quantised IR ops' golden model; see docs/CONTRACTS.md). Built only from the
# primitives above, so the hardware-facing definition of rounding/saturation stays in one place.
# ---------------------------------------------------------------------------------------------------------


def quantize_array(x: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """Float -> int: ``clamp(round_half_even(x / scale))`` computed in float32 (as torch does), int64 out.

    Division (not multiplication by a reciprocal) in float32 is correctly rounded in both numpy and torch, so
    the float reference and this function agree bit for bit.
    """
    lo, hi = qrange(bits)
    q = np.round(np.asarray(x, dtype=np.float32) / np.float32(scale))
    return np.clip(q, lo, hi).astype(np.int64)


def dequantize_array(q: np.ndarray, scale: float) -> np.ndarray:
    """Int -> float32: ``q * scale`` in float32."""
    return np.asarray(q, dtype=np.float32) * np.float32(scale)


def im2col(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Rows of conv input patches: ``(N*OH*OW, C*kh*kw)``, row order (n, oh, ow), column order (c, kh, kw).

    Padding inserts zeros, which is exact for symmetric quantisation (zero point 0).
    """
    x = np.asarray(x, dtype=np.int64)
    n, c, h, w = x.shape
    sh, sw = stride
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # n, c, H', W', kh, kw
    win = win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]  # n, c, oh, ow, kh, kw
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * kh * kw)


def qlinear_int(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    multiplier: int,
    shift: int,
    relu: bool,
    acc_bits: int,
    out_bits: int,
) -> np.ndarray:
    """The ``qlinear`` op: ``requantize(int_matmul(x, w, bias, acc_bits), ...)`` (int64 in and out)."""
    return requantize(int_matmul(x, w, bias, acc_bits), multiplier, shift, relu, out_bits)


def qconv2d_int(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    multiplier: int,
    shift: int,
    relu: bool,
    acc_bits: int,
    out_bits: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> np.ndarray:
    """The ``qconv2d`` op: `qlinear_int` on `im2col` rows, reshaped back to NCHW (int64)."""
    n, _, h, wd = np.shape(x)
    o, _, kh, kw = np.shape(w)
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
    rows = im2col(x, kh, kw, stride, padding)
    y = qlinear_int(rows, np.asarray(w).reshape(o, -1), bias, multiplier, shift, relu, acc_bits, out_bits)
    return np.ascontiguousarray(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------------------
# Fixed point (docs/CONTRACTS.md, "Graph convolution"): a raw integer v of a ``fixed(Qi.f)`` value means
# v * 2**-f. Every fixed-point op accumulates in ``acc_bits`` (wrapping) and rescales with `requantize`
# (multiplier 1, shift = fraction bits of the accumulator - fraction bits of the output), so the int8 path
# and the fixed-point path share one rounding rule. Sums are taken in int64 and wrapped once at the end:
# two's-complement addition is associative modulo 2**acc_bits, so this equals a register that wraps at every
# step, whatever order the hardware adds in.
# ---------------------------------------------------------------------------------------------------------


def to_fixed(x: np.ndarray, frac: int, bits: int) -> np.ndarray:
    """Float -> raw fixed point: ``saturate(round_half_even(x * 2**frac), bits)`` (int64 out).

    Scaling by a power of two is exact in float32 (barring overflow to inf, which saturates), so numpy and torch
    agree bit for bit.
    """
    scaled = np.asarray(x, dtype=np.float32) * np.float32(2.0**frac)
    lo, hi = qrange(bits)
    return np.clip(np.round(scaled), lo, hi).astype(np.int64)


def from_fixed(q: np.ndarray, frac: int) -> np.ndarray:
    """Raw fixed point -> float32 (``q * 2**-frac``; exact for values of up to 24 significant bits)."""
    return (np.asarray(q, dtype=np.float64) * 2.0**-frac).astype(np.float32)


def fixed_shift(frac_acc: int, frac_out: int) -> int:
    """Right shift that takes an accumulator with ``frac_acc`` fraction bits to ``frac_out`` (must be >= 0)."""
    shift = frac_acc - frac_out
    if not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"output fraction bits {frac_out} need a shift of {shift}, outside 0..{MAX_SHIFT}")
    return shift


def qmatmul_fixed_int(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, shift: int, relu: bool, acc_bits: int, out_bits: int
) -> np.ndarray:
    """Fixed-point ``x @ w.T + bias``: `int_matmul` then ``requantize(acc, 1, shift, relu, out_bits)``."""
    return requantize(int_matmul(x, w, bias, acc_bits), 1, shift, relu, out_bits)


def spmm_acc(
    x: np.ndarray, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, chunk: int = 1 << 24
) -> np.ndarray:
    """Raw CSR SpMM accumulators ``acc[v] = sum_{e in row v} values[e] * x[indices[e]]`` in int64 (no wrap).

    Segment sums are differences of a running sum; int64 overflow wraps modulo 2**64, which leaves the result
    modulo 2**acc_bits (acc_bits <= 64) intact. Columns are processed in chunks of at most ``chunk`` products.
    """
    x = np.asarray(x, dtype=np.int64)
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    vals = np.asarray(values, dtype=np.int64)[:, None]
    rows, feats = len(indptr) - 1, x.shape[1]
    out = np.empty((rows, feats), dtype=np.int64)
    step = max(1, chunk // max(1, len(indices)))
    with np.errstate(over="ignore"):
        for c0 in range(0, feats, step):
            prod = vals * x[indices, c0 : c0 + step]
            csum = np.zeros((len(indices) + 1, prod.shape[1]), dtype=np.int64)
            np.cumsum(prod, axis=0, out=csum[1:])
            out[:, c0 : c0 + step] = csum[indptr[1:]] - csum[indptr[:-1]]
    return out


def qspmm_int(
    x: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    bias: np.ndarray | None,
    shift: int,
    relu: bool,
    acc_bits: int,
    out_bits: int,
) -> np.ndarray:
    """The ``qspmm`` op: CSR aggregation, plus bias (at the accumulator's fraction bits), wrapped to
    ``acc_bits``, then ``requantize(acc, 1, shift, relu, out_bits)`` (int64 in and out)."""
    acc = spmm_acc(x, indptr, indices, values)
    if bias is not None:
        with np.errstate(over="ignore"):
            acc = acc + np.asarray(bias, dtype=np.int64)[None, :]
    return requantize(wrap(acc, acc_bits), 1, shift, relu, out_bits)


def qaffine_int(
    x: np.ndarray, scale: np.ndarray, shift_add: np.ndarray, shift: int, relu: bool, acc_bits: int, out_bits: int
) -> np.ndarray:
    """The ``qaffine`` op (folded BatchNorm): ``x * scale[c] + shift_add[c]`` per channel (last axis), wrapped
    to ``acc_bits``, then requantised; ``shift_add`` carries the product's fraction bits."""
    acc = np.asarray(x, dtype=np.int64) * np.asarray(scale, dtype=np.int64) + np.asarray(shift_add, dtype=np.int64)
    return requantize(wrap(acc, acc_bits), 1, shift, relu, out_bits)


def qadd_sat_int(a: np.ndarray, b: np.ndarray, relu: bool, out_bits: int) -> np.ndarray:
    """The ``qadd_fixed`` op: operands in the same format, exact sum, optional ReLU, saturate to ``out_bits``."""
    s = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    return saturate(np.maximum(s, 0) if relu else s, out_bits)
