"""Memory image of `SnfSystem` (a chain of aggregation and combination layers), its Verilog and its simulation.

Layout (word addresses; every layer's own program is the unchanged image of its engine, placed at a base)::

    word 0 ..           header and layer table (`hwforge.rtl.gcn.system`): L, LOG, then (kind, base) per layer
    base_i ..           layer i's program (an `snf` program or a one-layer `gemm` program), bases 64-word aligned
    LOG ..              layer log, `RECORD_WORDS` words per layer (written by the sequencer)

Chaining (why no host copies between layers): layer i > 0 reads its input where layer i-1 wrote its output.
`build_system` patches the consumer's input pointer to the producer's output region, as an address relative to
the consumer's base (negative offsets wrap in the 32-bit address adder). A combination reads any row stride
(its descriptor's ``SRC_STRIDE``), so it reads an aggregation's line-padded rows directly. An aggregation needs
rows of exactly ``row_lines`` 64-byte lines, so a combination that feeds one must produce that many columns
(the caller pads its weights with zero rows, see `padded_columns`). Consumers are built with zero input
features, so a broken chain shows up as wrong outputs rather than as the host's copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.generated import header
from hwforge.rtl.emit import convert_cached
from hwforge.rtl.gcn.config import SnfConfig
from hwforge.rtl.gcn.program import D
from hwforge.rtl.gcn.program import Program as AggProgram
from hwforge.rtl.gcn.system import (
    COUNTERS,
    HEADER_WORDS,
    KIND_AGGREGATION,
    KIND_COMBINATION,
    KINDS,
    RECORD_WORDS,
    SnfSystem,
    check_fault,
    record_counters,
)
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.program import DESC_WORDS, F
from hwforge.rtl.gemm.program import Program as GemmProgram
from hwforge.rtl.tb.verilator import DEFAULT_DEPTH, render_mem_tb, simulate_image

TOP_NAME = "snf_system"
ALIGN = 64
MASK32 = 0xFFFFFFFF
MAX_WORDS = DEFAULT_DEPTH
"""Largest image `simulate` runs (the Verilator testbench's memory)."""


def padded_columns(cfg: SnfConfig, n: int) -> int:
    """Columns a combination must produce to feed an aggregation directly: whole 64-byte lines of elements."""
    return -(-n // cfg.elems_per_line) * cfg.elems_per_line


@dataclass
class SystemLayer:
    kind: str
    program: AggProgram | GemmProgram
    base: int = 0

    def output(self, cfg: SnfConfig) -> tuple[int, int]:
        """(absolute word address, row stride in elements) of this layer's output."""
        if isinstance(self.program, AggProgram):
            return self.base + self.program.out_addr, self.program.row_lines * cfg.elems_per_line
        plan = self.program.plans[0]
        return self.base + plan.dst, plan.dst_words * self.program.cfg.per_word

    def output_span(self, cfg: SnfConfig) -> tuple[int, int]:
        lo, hi = self.program.output_range()
        return self.base + lo, self.base + hi


@dataclass
class SystemProgram:
    """The whole image plus where each layer's results and the layer log are."""

    cfg: SnfConfig
    words: list[int]
    layers: list[SystemLayer]
    log_addr: int

    @property
    def size(self) -> int:
        return len(self.words)

    def output_range(self) -> tuple[int, int]:
        return min(layer.output_span(self.cfg)[0] for layer in self.layers), self.size

    def hex_text(self) -> str:
        digits = self.cfg.bus_width // 4
        return "".join(f"{w:0{digits}x}\n" for w in self.words)

    def write_hex(self, path: str | Path) -> None:
        Path(path).write_text(self.hex_text())

    def read_layer(self, i: int, dump, lo: int) -> np.ndarray:
        """Layer i's output matrix from a dump whose first word is at ``lo`` (a combination's padded columns
        included)."""
        layer = self.layers[i]
        if isinstance(layer.program, AggProgram):
            return layer.program.read_outputs(dump, base=lo - layer.base)
        return layer.program.read_outputs(dump, base=lo - layer.base)[0]

    def read_tuner_log(self, i: int, dump, lo: int) -> list[dict]:
        layer = self.layers[i]
        return layer.program.read_log(dump, base=lo - layer.base) if isinstance(layer.program, AggProgram) else []

    def read_record(self, i: int, dump, lo: int) -> dict[str, int]:
        """Layer i's log record: its engine's counters for that layer; empty if the sequencer wrote none (it
        never ran the layer: the log starts zeroed, and every layer that ran has a non-zero cycle count)."""
        at = self.log_addr + RECORD_WORDS * i - lo
        words = [int(w) & MASK32 for w in dump[at:at + RECORD_WORDS]]
        kind = self.layers[i].kind
        if len(words) != RECORD_WORDS or words[0] != KINDS.index(kind) or not any(words[1:]):
            return {}
        return dict(zip(record_counters(kind), words[1:], strict=False))


def build_system(cfg: SnfConfig, layers: list[SystemLayer], chained: list[bool]) -> SystemProgram:
    """Place ``layers`` (programs built on their own, from address 0) and patch the chained inputs.

    ``chained[i]`` says layer i reads layer i-1's output (its own input region is then unused)."""
    words = [0] * (HEADER_WORDS + 2 * len(layers))
    words[0] = len(layers)
    for i, layer in enumerate(layers):
        words.extend([0] * (-len(words) % ALIGN))
        layer.base = len(words)
        prog = list(layer.program.words)
        if chained[i]:
            src, stride = layers[i - 1].output(cfg)
            rel = (src - layer.base) & MASK32
            if isinstance(layer.program, AggProgram):
                want = layer.program.row_lines * cfg.elems_per_line
                if stride != want:
                    raise ConfigError(f"snf system: layer {i} (aggregation) needs rows of {want} elements, its "
                                      f"producer writes {stride}")
                prog[D.X] = rel
            else:
                d = 1
                if prog[d + F.FLAGS] & 2:
                    raise ConfigError(f"snf system: layer {i} (combination) gathers its input; it cannot chain")
                k = prog[d + F.K]
                if stride < k:
                    raise ConfigError(f"snf system: layer {i} reads K={k} columns, its producer writes {stride}")
                old = prog[d + F.SRC_STRIDE]
                prog[d + F.SRC], prog[d + F.SRC_STRIDE] = rel, stride
                prog[d + F.A_STEP] = prog[d + F.A_STEP] // old * stride
                assert len(layer.program.plans) == 1 and DESC_WORDS == 20
        words[HEADER_WORDS + 2 * i] = KIND_AGGREGATION if layer.kind == "aggregation" else KIND_COMBINATION
        words[HEADER_WORDS + 2 * i + 1] = layer.base
        words.extend(prog)
    words.extend([0] * (-len(words) % ALIGN))
    log = words[1] = len(words)
    words.extend([0] * (RECORD_WORDS * len(layers)))
    return SystemProgram(cfg, words, layers, log)


# ---- Verilog and simulation ----------------------------------------------------------------------------------
def _emit(agg: SnfConfig, comb: GemmConfig, fault: str | None, kind: str) -> str:
    import dataclasses

    hw = sorted(agg.hw_key().items())
    params = [[list(p) for p in hw], dataclasses.asdict(comb), fault]
    text = convert_cached(lambda: SnfSystem(_hw_config(agg), comb, fault), TOP_NAME, params, kind)
    config = {**dict(hw), **{f"comb_{k}": v for k, v in dataclasses.asdict(comb).items()},
              "fault": fault or "none", "top": TOP_NAME}
    return header("hwforge.rtl.gcn.system.SnfSystem", config, "//" if kind == "v" else "#") + "\n" + text


def _hw_config(cfg: SnfConfig) -> SnfConfig:
    from hwforge.rtl.gcn.config import hardware_config

    return hardware_config(cfg.hw_key())


def emit_verilog(agg: SnfConfig, comb: GemmConfig, fault: str | None = None) -> str:
    """Verilog of `SnfSystem` (module ``snf_system``); ``fault`` as `SnfSystem`'s."""
    check_fault(fault)
    return _emit(agg, comb, fault, "v")


def emit_rtlil(agg: SnfConfig, comb: GemmConfig, fault: str | None = None) -> str:
    check_fault(fault)
    return _emit(agg, comb, fault, "il")


def testbench_verilog(cfg: SnfConfig) -> str:
    return render_mem_tb(TOP_NAME, list(COUNTERS), cfg.bus_width)


@dataclass
class SystemRun:
    counters: dict[str, int]
    dump: list[int]
    lo: int


def simulate(agg: SnfConfig, comb: GemmConfig, program: SystemProgram, *, verilog: str, seed: int = 0,
             stall_prob: float = 0.2, latency: int = 3, timeout_cycles: int = 200_000_000,
             work_dir: str | Path | None = None) -> SystemRun:
    """Run the image on the Verilator model of ``verilog`` (an `emit_verilog` text) with seeded stalls."""
    run, lo = simulate_image("snf_system", {f"{TOP_NAME}.v": verilog, "hwforge_tb.v": testbench_verilog(agg)},
                             program, list(COUNTERS), seed=seed, stall_prob=stall_prob, latency=latency,
                             timeout_cycles=timeout_cycles, work_dir=work_dir)
    return SystemRun({c: int(run.result[c]) for c in COUNTERS}, run.dump, lo)
