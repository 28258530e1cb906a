"""The `gemm` target's hardware: a systolic MAC-array accelerator that runs quantised networks from memory."""

from hwforge.rtl.gemm.config import GemmConfig, GemmLayer
from hwforge.rtl.gemm.core import FAULTS, GemmCore
from hwforge.rtl.gemm.cycles import fold_cycles_formula, rtl_compute_cycles
from hwforge.rtl.gemm.program import DESC_WORDS, F, LayerPlan, Program, build_program, pack, reference, unpack
from hwforge.rtl.gemm.top import COUNTERS, GemmAccelerator

__all__ = [
    "COUNTERS", "DESC_WORDS", "F", "FAULTS", "GemmAccelerator", "GemmConfig", "GemmCore", "GemmLayer",
    "LayerPlan", "Program", "build_program", "fold_cycles_formula", "pack", "reference", "rtl_compute_cycles",
    "unpack",
]
