"""The `snf` target: GCNs on the Slice-and-Forge aggregation accelerator plus a combination engine (Amaranth RTL).

compile: convert the graph to fixed point (`fixed_point` pass: Q8.8 features and weights, Q2.14 adjacency),
emit the aggregation accelerator's Verilog/RTLIL (``rtl/snf.v``) and the combination engine's (``rtl/combination.v``:
the `gemm` systolic array with 16-bit operands, 32-bit wrapping accumulators and per-class traffic counters,
whose requantiser with multiplier 1 is exactly the fixed-point contract's rescaling), and one memory image per
aggregation (`qspmm`, ``mem/<node>.hex``) and per combination (`qmatmul_fixed`, ``mem/combination/<node>.hex``;
split by rows into ``<node>.<i>.hex`` when one image would exceed `COMB_WORDS`), each built from the integer
reference's input to that node.
verify/run: interpret the graph with every aggregation offloaded to ``rtl/snf.v`` and every combination to
``rtl/combination.v``, both on Verilator with the same seeded stalls and latency; each node's hardware output
feeds the next op, so the results travel through the whole network from hardware. Every aggregation and
combination is compared bit-exactly with the integer reference and the final output with float PyTorch; only
normalisation (`qaffine`) and residual adds (`qadd_fixed`) run on the host, in the IR's integer reference.
build: the first aggregation's program in on-chip RAM with the aggregation accelerator, through the open FPGA
flow. The combination engine is a separate design in the artifact and is not in that bitstream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hwforge.compiler.artifact import load_npy
from hwforge.compiler.passes import FixedPoint, Pass
from hwforge.compiler.results import CompileReport, LayerRecord, OutputMetrics, VerifyResult
from hwforge.compiler.targets.base import Target, register_target
from hwforge.errors import ConfigError, InternalError
from hwforge.options import OptionError, option
from hwforge.rtl.gcn.config import SnfConfig

FEATURE_BITS = 16  # the fixed_point pass's default Q8.8 features; edge values are Q2.14 (also 16 bits)
SIM_COUNTERS = ("cycles", "cache_hits", "cache_misses", "bytes_read", "bytes_written")
COMB_SIM_FIELDS = ("cycles", "compute_cycles", "folds", "busy_cycles", "stall_cycles", "bytes_read", "bytes_written")
_COMB_KEYS = {"rows": "comb_rows", "cols": "comb_cols", "dataflow": "comb_dataflow", "op_depth": "comb_op_depth",
              "out_depth": "comb_out_depth", "acc_width": "acc_bits", "bus_width": "bus_width"}
"""`GemmConfig` field -> the `snf` option that sets it for the combination engine."""


@dataclass(frozen=True)
class SnfOptions(SnfConfig):
    """The `snf` target's options: the aggregation accelerator's (`SnfConfig`) plus the combination engine's
    ``comb_*`` array parameters (a `GemmConfig` with 16-bit Q8.8 operands on the aggregation's bus)."""

    LOWER_CASE: ClassVar[tuple[str, ...]] = ("policy", "comb_dataflow")

    comb_rows: int = option(4, "combination engine's PE array rows (the gemm array, Q8.8 operands)", lo=1, hi=32,
                            kind="combination")
    comb_cols: int = option(4, "combination engine's PE array columns", lo=1, hi=32, kind="combination")
    comb_dataflow: str = option("ws", "ws (any input width) or os (needs input features <= comb_op_depth)",
                                choices=("os", "ws"), kind="combination")
    comb_op_depth: int = option(256, "combination array's operand/accumulator buffer entries (as gemm's op_depth)",
                                lo=2, hi=65536, kind="combination")
    comb_out_depth: int = option(1024, "combination array's output staging elements (as gemm's out_depth)",
                                 lo=1, hi=1 << 20, kind="combination")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.feat_bits != FEATURE_BITS:
            raise OptionError("snf", "feat_bits", self.feat_bits,
                              f"is not supported by the fixed-point pass (Q8.8 features, Q2.14 edge values); use "
                              f"feat_bits={FEATURE_BITS}")
        self.combination(acc_width=32)  # the array shape is valid (acc_bits is checked against the graph)

    @property
    def aggregation(self) -> SnfConfig:
        """The aggregation accelerator's configuration (this object without the ``comb_*`` fields)."""
        return SnfConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SnfConfig)})

    def combination(self, acc_width: int | None = None):
        """The combination engine's `GemmConfig`; an error names the `snf` option that caused it."""
        gemm = _gemm()
        try:
            return gemm.GemmConfig(rows=self.comb_rows, cols=self.comb_cols, width=FEATURE_BITS,
                                   acc_width=self.acc_bits if acc_width is None else acc_width,
                                   dataflow=self.comb_dataflow, op_depth=self.comb_op_depth,
                                   out_depth=self.comb_out_depth, bus_width=self.bus_width)
        except OptionError as e:
            key = _COMB_KEYS.get(e.key, e.key)
            raise OptionError("snf", key, e.value, f"(combination engine) {e.reason}") from None


COMB_WORDS = 1 << 20
"""Largest combination memory image per simulation (words); larger inputs are split into row blocks."""


def _rtl():
    import hwforge.rtl.gcn as rtl

    return rtl


def _gemm():
    import hwforge.rtl.gemm as gemm

    return gemm


def _aggregation_args(graph, node, x: torch.Tensor) -> dict[str, Any]:
    """`build_program` / `reference` arguments of one `qspmm` node with input value ``x``."""
    rtl = _rtl()
    indptr, indices, values = (np.asarray(graph.constant_value(name)) for name in node.inputs[1:4])
    bias = np.asarray(graph.constant_value(node.inputs[4])) if len(node.inputs) > 4 else None
    if int(node.attrs["acc_bits"]) > 32:
        raise ConfigError(f"snf target: node {node.name!r} accumulates in {node.attrs['acc_bits']} bits; max 32")
    return {"csr": rtl.Csr(indptr, indices, values), "x": x.numpy().astype(np.int64), "bias": bias,
            "frac_x": int(node.attrs["frac_in"]), "frac_adj": int(node.attrs["frac_adj"]),
            "frac_out": int(node.attrs["frac_out"]), "relu": bool(node.attrs["relu"])}


def _hex_name(node: str) -> str:
    return f"mem/{node}.hex"


# ---- combination engine ----------------------------------------------------------------------------------
def _has_combination(graph) -> bool:
    return any(node.op == "qmatmul_fixed" for node in graph.nodes())


def _checked_comb_config(graph, options: SnfOptions):
    """The combination engine for a graph with combinations: its accumulator must wrap where the IR's does."""
    for node in graph.nodes():
        if node.op == "qmatmul_fixed" and int(node.attrs["acc_bits"]) != 32:
            raise ConfigError(f"snf: combination {node.name!r} accumulates in {node.attrs['acc_bits']} bits, but the "
                              "combination engine (gemm array, 16-bit operands) accumulates in 32; use acc_bits=32")
    return options.combination()


def _comb_chunks(cfg, layer, x: np.ndarray) -> list[tuple[int, Any]]:
    """(first row, memory image) per row block of ``x``: one block unless an image would exceed `COMB_WORDS`
    (the simulated memory holds 4 Mi words; a Cora-sized feature matrix is 2 Mi words on a 32-bit bus)."""
    gemm = _gemm()
    m = len(x)
    parts = 1
    while True:
        rows = -(-m // parts)
        try:
            chunks = [(r0, gemm.build_program(cfg, [layer], x[r0:r0 + rows])) for r0 in range(0, m, rows)]
        except ConfigError as e:
            raise ConfigError(f"snf: combination engine (comb_* options): {str(e).removeprefix('gemm: ')}") from None
        biggest = max(p.size for _, p in chunks)
        if biggest <= COMB_WORDS:
            return chunks
        if rows == 1:
            raise ConfigError(f"snf: one row of combination input needs {biggest} words of memory image, more than "
                              f"{COMB_WORDS}")
        parts = max(parts + 1, -(-parts * biggest // COMB_WORDS))


def _comb_hex_name(node: str, index: int, chunks: int) -> str:
    return f"mem/combination/{node}.hex" if chunks == 1 else f"mem/combination/{node}.{index}.hex"


def _comb_timeout(cfg, plan) -> int:
    """A cycle budget no correct run reaches: every operand element loaded from memory on its own (A once per
    column block, weights and biases once per row chunk and K block) at 32 cycles each, which covers latency
    and heavy stalls; it only has to stop a hung design."""
    m, k, n = plan.m, plan.k, plan.n
    chunks = -(-m // min(cfg.rows, plan.m_tile))
    loads = m * k * -(-n // cfg.cols) + (n * k + n * -(-k // cfg.rows)) * chunks + 2 * m * n
    return 20_000_000 + 32 * loads


def _sum_into(total: dict[str, int], part: dict[str, int]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + int(value)


def _aggregation_bound(cfg: SnfConfig, n: int, nnz: int, features: int) -> int:
    """Roofline lower bound of one aggregation: max(MACs / (lanes * engines), compulsory bytes / bus bytes), the
    compulsory bytes being the CSR topology (row pointers, 32-bit indices, 16-bit values), every feature row once
    and every output row once. A reconstruction until the snf cycle model lands; measured / bound is what the
    plots show."""
    elem = cfg.feat_bits // 8
    compute = -(-nnz * features // (cfg.lanes * cfg.engines))
    moved = 4 * (n + 1) + nnz * (4 + elem) + 2 * n * features * elem
    return max(compute, -(-moved // cfg.bus_bytes))


@dataclass
class SnfCompileReport(CompileReport):
    aggregations: int = 0
    combinations: list[LayerRecord] = field(default_factory=list)
    combination_engine: dict[str, Any] | None = None

    TABLES: ClassVar[tuple[str, ...]] = ("layers", "combinations")


@dataclass
class SnfVerifyResult(VerifyResult):
    """Totals over every aggregation and combination run; ``layers`` holds both kinds (``kind`` column)."""

    cache_hits: int = 0
    cache_misses: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    aggregation_cycles: int = 0
    combination_cycles: int = 0
    combination_compute_cycles: int = 0
    aggregations: int = 0
    combinations: int = 0
    bytes_by_class: dict[str, int] = field(default_factory=dict)
    cache_hit_rate: float = 0.0

    SUMMARY: ClassVar[tuple[str, ...]] = ("cycles", "bound_cycles", "aggregation_cycles", "combination_cycles",
                                          "cache_hit_rate", "bytes_read", "bytes_written")


class SnfTarget(Target):
    name = "snf"
    description = "Slice-and-Forge GCN accelerator (Amaranth RTL): feature slicing, dynamic tuning, gemm combination"
    hardware = ("Amaranth RTL: multi-engine aggregation, shared LRU feature cache, per-class traffic counters; "
                "combination on the gemm systolic array")
    verified_by = "cocotb on Verilator vs PyTorch"

    options_type = SnfOptions

    def passes(self, options: SnfOptions) -> list[Pass]:
        return [FixedPoint(acc_bits=options.acc_bits)]

    def emit(self, graph, model, options: SnfOptions, writer, inputs) -> SnfCompileReport:
        from hwforge.compiler.targets.gemm_lowering import combination_layer
        from hwforge.ir import interpret_all

        rtl, gemm = _rtl(), _gemm()
        cfg = options.aggregation
        comb_cfg = _checked_comb_config(graph, options) if _has_combination(graph) else None
        values = interpret_all(graph, inputs)
        layers: list[LayerRecord] = []
        combinations: list[LayerRecord] = []
        for node in graph.nodes():
            if node.op == "qmatmul_fixed":
                layer = combination_layer(graph, node)
                x = values[node.inputs[0]].numpy().astype(np.int64)
                chunks = _comb_chunks(comb_cfg, layer, x)
                ir_value = values[node.name].numpy().astype(np.int64)
                hw_model = np.concatenate([gemm.reference(comb_cfg, [layer], x[r0:r0 + p.plans[0].m])[0]
                                           for r0, p in chunks])
                if not np.array_equal(hw_model, ir_value):
                    raise InternalError(f"snf: combination {node.name!r}: the gemm array's model differs from the IR")
                writer.add_npy(f"expected/int/{node.name}.npy", ir_value)
                for i, (_, program) in enumerate(chunks):
                    writer.add_text(_comb_hex_name(node.name, i, len(chunks)), program.hex_text())
                m, k, n = int(x.shape[0]), layer.k, layer.n
                combinations.append(LayerRecord(
                    node=node.name,
                    bound_cycles=sum(gemm.roofline_cycles(comb_cfg, p.plans[0].m, k, n, p.plans[0].m_tile)
                                     for _, p in chunks),
                    details={"m": m, "k": k, "n": n, "relu": layer.relu, "bias": len(node.inputs) > 2,
                             "chunks": len(chunks), "program_words": sum(p.size for _, p in chunks),
                             "compute_cycles_expected": sum(gemm.rtl_compute_cycles(comb_cfg, p.plans[0].m, k, n,
                                                                                    p.plans[0].m_tile)[1]
                                                            for _, p in chunks)}))
                continue
            if node.op != "qspmm":
                continue
            args = _aggregation_args(graph, node, values[node.inputs[0]])
            program = rtl.build_program(cfg, **args)
            ir_value = values[node.name].numpy().astype(np.int64)
            if not np.array_equal(rtl.reference(cfg, **args), ir_value):
                raise InternalError(f"snf: aggregation {node.name!r}: the accelerator model differs from the IR")
            writer.add_npy(f"expected/int/{node.name}.npy", ir_value)
            writer.add_text(_hex_name(node.name), program.hex_text())
            nnz = int(args["csr"].indices.size)
            layers.append(LayerRecord(
                node=node.name, bound_cycles=_aggregation_bound(cfg, program.n, nnz, program.features),
                details={"n": program.n, "nnz": nnz, "features": program.features, "row_lines": program.row_lines,
                         "program_words": program.size}))
        if not layers:
            raise ConfigError(f"snf target: model {model.name!r} has no graph aggregation (spmm) to accelerate")
        if model.test_set is not None and len(model.test_set[1]) == layers[-1].details["n"]:
            writer.add_npy("expected/labels.npy", np.asarray(model.test_set[1], dtype=np.int64))
        writer.add_text("rtl/snf.v", rtl.emit_verilog(cfg))
        writer.add_text("rtl/snf.il", rtl.emit_rtlil(cfg))
        writer.add_text("tb/hwforge_tb.v", rtl.testbench_verilog(cfg))
        report = SnfCompileReport(target=self.name, config=options.to_dict(), layers=layers,
                                  aggregations=len(layers), combinations=combinations)
        if comb_cfg is not None:
            writer.add_text("rtl/combination.v", gemm.emit_verilog(comb_cfg, classes=True))
            writer.add_text("rtl/combination.il", gemm.emit_rtlil(comb_cfg, classes=True))
            writer.add_text("tb/combination_tb.v", gemm.testbench_verilog(comb_cfg, classes=True))
            report.combination_engine = comb_cfg.to_dict()
        return report

    def _run(self, artifact_dir: Path, manifest: dict[str, Any], seed: int,
             inputs: dict[str, np.ndarray] | None = None, expected: bool = False):
        """Interpret the artifact's graph with every `qspmm` and `qmatmul_fixed` on simulated hardware."""
        from hwforge.compiler.targets.gemm_lowering import combination_layer
        from hwforge.ir import interpret_all, load_graph
        from hwforge.ir.types import storage_torch_dtype

        rtl, gemm = _rtl(), _gemm()
        options = self.options_from_manifest(manifest)
        cfg = options.aggregation
        graph = load_graph(artifact_dir)
        comb_cfg = None
        if _has_combination(graph):
            if not (artifact_dir / "rtl" / "combination.v").exists():
                raise ConfigError(f"{artifact_dir}: no combination engine (rtl/combination.v); the artifact predates "
                                  "it, recompile it")
            comb_cfg = _checked_comb_config(graph, options)
        verilog = (artifact_dir / "rtl" / "snf.v").read_text()
        comb_verilog = (artifact_dir / "rtl" / "combination.v").read_text() if comb_cfg is not None else ""
        shipped = inputs is None
        if shipped:
            inputs = {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}
        layers: list[dict[str, Any]] = []

        def check_shipped(text: str, relpath: str) -> None:
            """With the artifact's inputs and correct hardware upstream, the image must be the shipped one."""
            upstream_ok = all(layer.get("mismatches", 0) == 0 for layer in layers)
            if shipped and upstream_ok and text != (artifact_dir / relpath).read_text():
                raise ConfigError(f"{artifact_dir}: {relpath} does not match the artifact's IR and inputs")

        def finish(node, entry: dict[str, Any], out: np.ndarray) -> torch.Tensor:
            if expected:
                want = load_npy(artifact_dir / "expected" / "int" / f"{node.name}.npy")
                entry["mismatches"] = int(np.count_nonzero(out != want))
            layers.append(entry)
            return torch.from_numpy(out).to(storage_torch_dtype(node.type.dtype))

        def on_aggregation(node, args: list[torch.Tensor]) -> torch.Tensor:
            program = rtl.build_program(cfg, **_aggregation_args(graph, node, args[0]))
            check_shipped(program.hex_text(), _hex_name(node.name))
            sim = rtl.simulate(cfg, program, seed=seed, verilog=verilog)
            nnz = int(np.asarray(graph.constant_value(node.inputs[2])).size)
            entry: dict[str, Any] = {"node": node.name, "kind": "aggregation", "hit_rate": round(sim.hit_rate, 4),
                                     "bound_cycles": _aggregation_bound(cfg, program.n, nnz, program.features),
                                     "bytes_by_class": sim.bytes_by_class(), "tuner_log": sim.log,
                                     **{k: int(sim.counters[k]) for k in SIM_COUNTERS}}
            return finish(node, entry, sim.outputs)

        def on_combination(node, args: list[torch.Tensor]) -> torch.Tensor:
            layer = combination_layer(graph, node)
            x = args[0].numpy().astype(np.int64)
            chunks = _comb_chunks(comb_cfg, layer, x)
            entry: dict[str, Any] = {"node": node.name, "kind": "combination", "m": int(x.shape[0]), "k": layer.k,
                                     "n": layer.n, "chunks": len(chunks), **dict.fromkeys(COMB_SIM_FIELDS, 0),
                                     "bytes_by_class": {},
                                     "bound_cycles": sum(gemm.roofline_cycles(comb_cfg, p.plans[0].m, layer.k,
                                                                              layer.n, p.plans[0].m_tile)
                                                         for _, p in chunks)}
            outs = []
            for i, (_, program) in enumerate(chunks):
                check_shipped(program.hex_text(), _comb_hex_name(node.name, i, len(chunks)))
                sim = gemm.simulate(comb_cfg, program, seed=seed, verilog=comb_verilog, classes=True,
                                    timeout_cycles=_comb_timeout(comb_cfg, program.plans[0]))
                outs.append(sim.outputs[0])
                _sum_into(entry, {k: getattr(sim, k) for k in COMB_SIM_FIELDS})
                _sum_into(entry["bytes_by_class"], sim.bytes_by_class)
            return finish(node, entry, np.concatenate(outs))

        values = interpret_all(graph, inputs, offload={"qspmm": on_aggregation, "qmatmul_fixed": on_combination})
        return graph, values, layers

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray],
            seed: int = 0) -> dict[str, np.ndarray]:
        graph, values, _ = self._run(artifact_dir, manifest, seed, inputs)
        return {name: values[name].numpy() for name in graph.outputs}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> SnfVerifyResult:
        graph, values, layers = self._run(artifact_dir, manifest, seed, expected=True)
        mismatches = sum(layer["mismatches"] for layer in layers)
        labels_path = artifact_dir / "expected" / "labels.npy"
        labels = load_npy(labels_path) if labels_path.exists() else None
        outputs = {name: OutputMetrics.compare(values[name].numpy(),
                                               load_npy(artifact_dir / "expected" / f"{name}.npy"), labels)
                   for name in graph.outputs}
        aggs = [layer for layer in layers if layer["kind"] == "aggregation"]
        combs = [layer for layer in layers if layer["kind"] == "combination"]
        totals = {k: sum(layer.get(k, 0) for layer in layers) for k in SIM_COUNTERS}
        by_class: dict[str, int] = {}
        for layer in layers:
            _sum_into(by_class, layer["bytes_by_class"])
        accesses = totals["cache_hits"] + totals["cache_misses"]
        records = [LayerRecord(node=entry.pop("node"), cycles=entry.pop("cycles"), mismatches=entry.pop("mismatches"),
                               bound_cycles=entry.pop("bound_cycles"), details=entry) for entry in map(dict, layers)]
        return SnfVerifyResult(
            target=self.name, passed=mismatches == 0 and len(layers) > 0, mismatches=mismatches, seed=seed,
            layers=records, outputs=outputs, cycles=totals["cycles"],
            bound_cycles=sum(r.bound_cycles or 0 for r in records),
            cache_hits=totals["cache_hits"], cache_misses=totals["cache_misses"], bytes_read=totals["bytes_read"],
            bytes_written=totals["bytes_written"],
            aggregation_cycles=sum(layer["cycles"] for layer in aggs),
            combination_cycles=sum(layer["cycles"] for layer in combs),
            combination_compute_cycles=sum(layer["compute_cycles"] for layer in combs),
            aggregations=len(aggs), combinations=len(combs), bytes_by_class=by_class,
            cache_hit_rate=totals["cache_hits"] / accesses if accesses else 0.0)

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str,
              clock_mhz: float | None = None) -> dict[str, Any]:
        """Bitstream of the aggregation accelerator with its first program (the combination engine is a
        separate design, ``rtl/combination.v``, and not part of it)."""
        from hwforge.fpga import OnChipMemorySoC, build_bitstream

        rtl = _rtl()
        from hwforge.ir import load_graph

        cfg = self.options_from_manifest(manifest).aggregation

        node = next(n for n in load_graph(artifact_dir).nodes() if n.op == "qspmm")
        first = artifact_dir / _hex_name(node.name)
        words = [int(line, 16) for line in first.read_text().split()]
        design = OnChipMemorySoC(lambda: rtl.SnfAccelerator(cfg), words, cfg.bus_width, depth=len(words))
        report = build_bitstream(design, board, artifact_dir / "build" / board, clock_mhz=clock_mhz)
        return {**report.to_dict(), "program": first.name, "bitstream_path": str(report.bitstream),
                "build_seconds": round(report.seconds, 1)}


register_target(SnfTarget())
