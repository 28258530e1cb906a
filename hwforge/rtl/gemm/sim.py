"""Emit the gemm accelerator's Verilog/RTLIL and run programs on it under Verilator (via cocotb).

`emit_verilog` is deterministic (no source locations, fixed names) and starts with the generated-file header
(`hwforge.generated`: every `GemmConfig` field, the fault and the counter variant). Because Amaranth
elaboration plus Yosys takes seconds, the text is also memoised on disk, keyed by the configuration, the fault
and the generator hash (`hwforge.rtl.emit`), so a test session or a CLI call pays for it once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.generated import header
from hwforge.rtl.emit import convert_cached
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.core import check_fault
from hwforge.rtl.gemm.program import Program
from hwforge.rtl.gemm.top import CLASS_COUNTERS, GemmAccelerator, counters
from hwforge.rtl.tb.verilator import render_mem_tb, simulate_image

TOP_NAME = "gemm_accel"

#: The memory `simulate` (and so ``hwforge verify``) runs against unless told otherwise: a response
#: ``VERIFY_LATENCY`` cycles after each read, and request and response streams each stalled with probability
#: ``VERIFY_STALL_PROB`` per cycle. Compile reports predict cycles for this memory, so the two are comparable.
VERIFY_LATENCY = 3
VERIFY_STALL_PROB = 0.2


def _emit(cfg: GemmConfig, fault: str | None, kind: str, classes: bool) -> str:
    # the cache key of the plain design is what it always was; the classes variant appends a marker
    params = [dataclasses.asdict(cfg), fault] + (["classes"] if classes else [])
    text = convert_cached(lambda: GemmAccelerator(cfg, fault, classes), TOP_NAME, params, kind)
    config = {**dataclasses.asdict(cfg), "fault": fault or "none", "classes": classes, "top": TOP_NAME}
    return header("hwforge.rtl.gemm.GemmAccelerator", config, "//" if kind == "v" else "#") + "\n" + text


def emit_verilog(cfg: GemmConfig, fault: str | None = None, classes: bool = False) -> str:
    """Verilog of `GemmAccelerator` (module ``gemm_accel``); ``fault`` selects a deliberately broken variant,
    ``classes`` the variant with per-traffic-class byte counters."""
    check_fault(fault)
    return _emit(cfg, fault, "v", classes)


def emit_rtlil(cfg: GemmConfig, fault: str | None = None, classes: bool = False) -> str:
    """RTLIL (Yosys IR) of the same design, for synthesis flows."""
    check_fault(fault)
    return _emit(cfg, fault, "il", classes)


def testbench_verilog(cfg: GemmConfig, classes: bool = False) -> str:
    """The simulation wrapper (memory model, stalls, dump) around ``gemm_accel``."""
    return render_mem_tb(TOP_NAME, list(counters(classes)), cfg.bus_width)


@dataclass
class SimResult:
    """What one simulated run produced: per-layer outputs and the hardware's own counters."""

    outputs: list[np.ndarray]
    cycles: int
    bytes_read: int
    bytes_written: int
    busy_cycles: int
    stall_cycles: int
    compute_cycles: int
    folds: int
    seed: int
    stall_prob: float
    latency: int
    work_dir: str
    extra: dict = field(default_factory=dict)
    bytes_by_class: dict = field(default_factory=dict)  # class -> bytes, from a ``classes=True`` design only

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["outputs"] = [o.tolist() for o in self.outputs]
        return d


def simulate(cfg: GemmConfig, program: Program, *, seed: int = 0, stall_prob: float = VERIFY_STALL_PROB,
             latency: int = VERIFY_LATENCY,
             cache_dir: str | Path | None = None, work_dir: str | Path | None = None,
             verilog: str | None = None, timeout_cycles: int = 20_000_000, classes: bool = False) -> SimResult:
    """Run ``program`` on the Verilator model of ``cfg`` (or of the given ``verilog``) and collect results.

    Reads ``seed``, ``stall_prob`` (per-cycle probability that the memory stalls the request or the response
    stream) and ``latency`` (read latency in cycles) as plusargs, so they never trigger a rebuild. Raises
    `ConfigError` if the program does not fit the simulated memory, and `VerificationError` on a timeout or an
    out-of-range memory access (the outputs would be meaningless). Output mismatches are for the caller to
    judge against `reference`. ``classes`` must say whether ``verilog`` is the per-class-counter variant.
    """
    if program.cfg != cfg:
        raise ConfigError("gemm: the program was built for a different configuration")
    if verilog is None:
        verilog = emit_verilog(cfg, classes=classes)
    run, lo = simulate_image("gemm", {"gemm_accel.v": verilog, "hwforge_tb.v": testbench_verilog(cfg, classes)},
                             program, list(counters(classes)), seed=seed, stall_prob=stall_prob, latency=latency,
                             timeout_cycles=timeout_cycles, cache_dir=cache_dir, work_dir=work_dir)
    r = run.result
    outputs = program.read_outputs(run.dump, base=lo)
    return SimResult(outputs=outputs, cycles=r["cycles"], bytes_read=r["bytes_read"],
                     bytes_written=r["bytes_written"], busy_cycles=r["busy_cycles"],
                     stall_cycles=r["stall_cycles"], compute_cycles=r["compute_cycles"], folds=r["folds"],
                     seed=seed, stall_prob=stall_prob, latency=latency,
                     work_dir=str(work_dir) if work_dir is not None else "",
                     bytes_by_class={c[len("bytes_"):]: int(r[c]) for c in CLASS_COUNTERS if classes})
