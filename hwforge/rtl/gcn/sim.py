"""Emit the snf accelerator's Verilog and run programs on it under Verilator (cocotb), like the gemm target.

Verilog depends only on the hardware fields of `SnfConfig` (`SnfConfig.hw_key`) and the fault, so programs
of every policy share one build; its generated-file header (`hwforge.generated`) lists exactly those. Text is
memoised on disk keyed by those fields and the generator hash (`hwforge.rtl.emit`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.generated import header
from hwforge.rtl.emit import convert_cached
from hwforge.rtl.gcn.config import SnfConfig, hardware_config
from hwforge.rtl.gcn.program import Program
from hwforge.rtl.gcn.top import COUNTERS, SnfAccelerator, check_fault
from hwforge.rtl.tb.verilator import render_mem_tb, simulate_image

TOP_NAME = "snf_accel"


def _emit(hw: tuple, fault: str | None, kind: str) -> str:
    text = convert_cached(lambda: SnfAccelerator(hardware_config(dict(hw)), fault), TOP_NAME,
                          [[list(pair) for pair in hw], fault], kind)
    # the hardware fields only: they are all the Verilog depends on (programs of every policy share it)
    config = {**dict(hw), "fault": fault or "none", "top": TOP_NAME}
    return header("hwforge.rtl.gcn.SnfAccelerator", config, "//" if kind == "v" else "#") + "\n" + text


def _hw(cfg: SnfConfig) -> tuple:
    return tuple(sorted(cfg.hw_key().items()))


def emit_verilog(cfg: SnfConfig, fault: str | None = None) -> str:
    """Verilog of `SnfAccelerator` (module ``snf_accel``); ``fault`` selects a deliberately broken variant."""
    check_fault(fault)
    return _emit(_hw(cfg), fault, "v")


def emit_rtlil(cfg: SnfConfig, fault: str | None = None) -> str:
    check_fault(fault)
    return _emit(_hw(cfg), fault, "il")


def testbench_verilog(cfg: SnfConfig) -> str:
    return render_mem_tb(TOP_NAME, list(COUNTERS), cfg.bus_width)


@dataclass
class SimResult:
    """Outputs, the hardware counters (``counters``: name -> value), the round log and run settings."""

    outputs: np.ndarray
    counters: dict
    log: list
    seed: int
    stall_prob: float
    latency: int
    work_dir: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def cycles(self) -> int:
        return int(self.counters["cycles"])

    @property
    def hit_rate(self) -> float:
        h, mi = self.counters["cache_hits"], self.counters["cache_misses"]
        return h / (h + mi) if h + mi else 0.0

    def bytes_by_class(self) -> dict:
        return {k[len("bytes_"):]: v for k, v in self.counters.items()
                if k.startswith("bytes_") and k not in ("bytes_read", "bytes_written")}

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["outputs"] = self.outputs.tolist()
        d["hit_rate"] = self.hit_rate
        return d


def simulate(cfg: SnfConfig, program: Program, *, seed: int = 0, stall_prob: float = 0.2, latency: int = 3,
             cache_dir: str | Path | None = None, work_dir: str | Path | None = None,
             verilog: str | None = None, timeout_cycles: int = 50_000_000) -> SimResult:
    """Run ``program`` on the Verilator model of ``cfg``'s hardware (or the given ``verilog``).

    ``seed``, ``stall_prob`` and ``latency`` are plusargs (no rebuild). Raises `VerificationError` on a
    timeout or an out-of-range access; output mismatches are for the caller to judge against `reference`.
    """
    if program.cfg.hw_key() != cfg.hw_key():
        raise ConfigError("snf: the program was built for different hardware")
    if verilog is None:
        verilog = emit_verilog(cfg)
    run, lo = simulate_image("snf", {f"{TOP_NAME}.v": verilog, "hwforge_tb.v": testbench_verilog(cfg)}, program,
                             list(COUNTERS), seed=seed, stall_prob=stall_prob, latency=latency,
                             timeout_cycles=timeout_cycles, cache_dir=cache_dir, work_dir=work_dir)
    r = run.result
    outputs = program.read_outputs(run.dump, base=lo)
    log = program.read_log(run.dump, base=lo)
    return SimResult(outputs=outputs, counters={c: int(r[c]) for c in COUNTERS}, log=log, seed=seed,
                     stall_prob=stall_prob, latency=latency, work_dir=str(work_dir) if work_dir is not None else "")
