"""Graph passes. ``PASSES`` maps a pass name to the pass; targets add theirs with `register_pass`."""

from hwforge.compiler.passes import canonicalize as _canonicalize  # noqa: F401  (registers)
from hwforge.compiler.passes import fixed_point as _fixed_point  # noqa: F401
from hwforge.compiler.passes import fuse_relu as _fuse_relu  # noqa: F401
from hwforge.compiler.passes import quantize as _quantize  # noqa: F401
from hwforge.compiler.passes import quantize_lowbit as _quantize_lowbit  # noqa: F401
from hwforge.compiler.passes.base import PASSES, Calibration, Pass, register_pass
from hwforge.compiler.passes.canonicalize import Canonicalize
from hwforge.compiler.passes.fixed_point import FixedPoint, fixed_point_error
from hwforge.compiler.passes.fuse_relu import FuseRelu
from hwforge.compiler.passes.quantize import Quantize, calibrate
from hwforge.compiler.passes.quantize_lowbit import QuantizeLowbit


def default_int8_pipeline(bits: int = 8, acc_bits: int = 32) -> list[Pass]:
    """canonicalize -> fuse_relu -> quantize (ReLUs fused first so scales are calibrated post-ReLU)."""
    return [Canonicalize(), FuseRelu(), Quantize(bits=bits, acc_bits=acc_bits)]


__all__ = ["PASSES", "Calibration", "Canonicalize", "FixedPoint", "FuseRelu", "Pass", "Quantize", "QuantizeLowbit",
           "calibrate", "default_int8_pipeline", "fixed_point_error", "register_pass"]
