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
