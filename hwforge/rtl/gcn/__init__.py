"""GCN accelerators. `snf`: the Slice-and-Forge aggregation accelerator (multi-engine, shared feature cache,
feature slicing with a run-time slice width and a round-by-round tuner).

Public entry points: `SnfConfig` (parameters), `Csr`, `build_program` / `Program` / `reference` (memory image
and golden model), `expected_traffic` / `cache_model` / `planned_rounds` (what the counters must read),
`SnfAccelerator` (top component), `emit_verilog` / `emit_rtlil`, `simulate` (Verilator + cocotb).
"""

from hwforge.rtl.gcn.config import POLICIES, SnfConfig
from hwforge.rtl.gcn.engine import CLASSES
from hwforge.rtl.gcn.program import (
    Csr,
    D,
    Program,
    build_program,
    cache_model,
    expected_traffic,
    planned_rounds,
    reference,
    tile_bounds,
)
from hwforge.rtl.gcn.sim import SimResult, emit_rtlil, emit_verilog, simulate, testbench_verilog
from hwforge.rtl.gcn.top import COUNTERS, FAULTS, SnfAccelerator

__all__ = [
    "CLASSES", "COUNTERS", "D", "FAULTS", "POLICIES", "Csr", "Program", "SimResult", "SnfAccelerator",
    "SnfConfig", "build_program", "cache_model", "emit_rtlil", "emit_verilog", "expected_traffic",
    "planned_rounds", "reference", "simulate", "testbench_verilog", "tile_bounds",
]
