"""Graph passes. ``PASSES`` maps a pass name to the pass; targets add theirs with `register_pass`."""

from hwforge.compiler.passes import canonicalize as _canonicalize  # noqa: F401  (registers)
from hwforge.compiler.passes import fixed_point as _fixed_point  # noqa: F401
from hwforge.compiler.passes import fuse_relu as _fuse_relu  # noqa: F401
from hwforge.compiler.passes import quantize as _quantize  # noqa: F401
from hwforge.compiler.passes import quantize_lowbit as _quantize_lowbit  # noqa: F401
from hwforge.compiler.passes.base import PASSES, Pass, register_pass
from hwforge.compiler.passes.fixed_point import fixed_point_error
from hwforge.compiler.passes.quantize import calibrate


def default_int8_pipeline() -> list[Pass]:
    """canonicalize -> fuse_relu -> quantize (ReLUs fused first so scales are calibrated post-ReLU)."""
    return [PASSES["canonicalize"](), PASSES["fuse_relu"](), PASSES["quantize"]()]


__all__ = ["PASSES", "Pass", "calibrate", "default_int8_pipeline", "fixed_point_error", "register_pass"]
