"""The `gemm` target's hardware: a systolic MAC-array accelerator that runs quantised networks from memory.

Public entry points: `GemmConfig` / `GemmLayer` (parameters), `build_program` / `Program` / `reference`
(memory image and golden model), `GemmAccelerator` (top component), `emit_verilog` / `emit_rtlil`,
`simulate` (Verilator + cocotb), `fold_cycles_formula` (SCALE-Sim compute cycles the RTL matches) and
`predict_layer_cycles` (the roofline cycle model of whole layers, loads and stores included).
"""

from hwforge.rtl.gemm.config import GemmConfig, GemmLayer, min_acc_width
from hwforge.rtl.gemm.core import FAULTS, TRAFFIC_CLASSES, GemmCore
from hwforge.rtl.gemm.cycles import (
    fold_cycles_formula,
    minimum_bytes,
    predict_layer_cycles,
    predict_program_cycles,
    roofline_cycles,
    rtl_compute_cycles,
)
from hwforge.rtl.gemm.gather import conv2d_gather, flatten_gather
from hwforge.rtl.gemm.program import DESC_WORDS, F, LayerPlan, Program, build_program, pack, reference, unpack
from hwforge.rtl.gemm.sim import (
    VERIFY_LATENCY,
    VERIFY_STALL_PROB,
    SimResult,
    emit_rtlil,
    emit_verilog,
    simulate,
    testbench_verilog,
)
from hwforge.rtl.gemm.top import CLASS_COUNTERS, COUNTERS, GemmAccelerator, counters

__all__ = [
    "CLASS_COUNTERS", "COUNTERS", "DESC_WORDS", "F", "FAULTS", "TRAFFIC_CLASSES", "VERIFY_LATENCY",
    "VERIFY_STALL_PROB", "GemmAccelerator", "GemmConfig", "GemmCore", "GemmLayer", "LayerPlan", "Program",
    "SimResult", "build_program", "conv2d_gather", "counters", "emit_rtlil", "emit_verilog", "flatten_gather",
    "fold_cycles_formula", "min_acc_width", "minimum_bytes", "pack", "predict_layer_cycles",
    "predict_program_cycles", "reference", "roofline_cycles", "rtl_compute_cycles", "simulate", "testbench_verilog",
    "unpack",
]
