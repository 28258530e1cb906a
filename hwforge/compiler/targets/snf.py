"""The `snf` target: GCNs on the Slice-and-Forge aggregation accelerator plus a combination engine (Amaranth RTL).

compile: convert the graph to fixed point (`fixed_point` pass: Q8.8 features and weights, Q2.14 adjacency),
emit the whole accelerator's Verilog/RTLIL (``rtl/snf_system.v``: `hwforge.rtl.gcn.system.SnfSystem`, the
aggregation accelerator and the combination engine, i.e. the `gemm` systolic array with 16-bit operands and 32-bit
wrapping accumulators whose requantiser with multiplier 1 is exactly the fixed-point contract's rescaling, behind
one memory arbiter with a layer sequencer), and one memory image per run of chained offloaded layers
(``mem/system.hex``, or ``mem/system.<i>.hex`` when host ops split the network; `_segments`), built from the
integer reference's input to the run's first layer; later layers read their predecessor's output in memory.
verify/run: interpret the graph with every run of `qspmm` (aggregation) and `qmatmul_fixed` (combination) nodes
offloaded to ``rtl/snf_system.v`` on Verilator (seeded stalls and latency), one simulation per run; every layer's
output is read back from the dump, so the results travel through the whole network from hardware. Every
aggregation and combination is compared bit-exactly with the integer reference and the final output with float
PyTorch; per-layer cycles and bytes come from the log records the sequencer writes after each layer. Only
normalisation (`qaffine`) and residual adds (`qadd_fixed`) run on the host, in the IR's integer reference.
build: `SnfSystem` with the first run's image (for a GCN without host ops, the whole network) in on-chip RAM,
through the open FPGA flow.
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


# ---- combination engine and the whole system --------------------------------------------------------------
def _checked_comb_config(graph, options: SnfOptions):
    """The combination engine for a graph with combinations: its accumulator must wrap where the IR's does."""
    for node in graph.nodes():
        if node.op == "qmatmul_fixed" and int(node.attrs["acc_bits"]) != 32:
            raise ConfigError(f"snf: combination {node.name!r} accumulates in {node.attrs['acc_bits']} bits, but the "
                              "combination engine (gemm array, 16-bit operands) accumulates in 32; use acc_bits=32")
    return options.combination()


OFFLOADED = ("qspmm", "qmatmul_fixed")
SYSTEM_FILES = ("rtl/snf_system.v", "rtl/snf_system.il", "tb/snf_system_tb.v")


def _segments(graph) -> list[list[Any]]:
    """Runs of offloaded nodes in which each reads the previous one's output: one `SnfSystem` run each (a host
    op in between, e.g. a residual add or a normalisation, starts a new run)."""
    segments: list[list[Any]] = []
    for node in graph.nodes():
        if node.op not in OFFLOADED:
            if segments and segments[-1] and any(segments[-1][-1].name == i for i in node.inputs):
                segments.append([])  # a host op consumes the last output: whatever follows reads host values
            continue
        if segments and segments[-1] and node.inputs[0] == segments[-1][-1].name:
            segments[-1].append(node)
        else:
            segments.append([node])
    return [s for s in segments if s]


def _comb_layer(graph, node, pad_to: int | None):
    """The node as a gemm layer; ``pad_to`` adds zero output columns (zero weight rows and biases), so that
    `build_program` lays the output out in rows of whole 64-byte lines (the row layout a directly following
    aggregation reads) and sizes the staging tiles for it; `_system_program` then sets the descriptor's N back
    to the real columns, so the array computes only those (the padding elements of each row are don't-care:
    the aggregation's padded output columns are never read)."""
    from hwforge.compiler.targets.gemm_lowering import combination_layer

    layer = combination_layer(graph, node)
    if pad_to is None or pad_to == layer.n:
        return layer
    w = np.zeros((pad_to, layer.k), np.int64)
    w[:layer.n] = layer.weight
    b = np.zeros(pad_to, np.int64)
    b[:layer.n] = layer.bias
    return dataclasses.replace(layer, weight=w, bias=b)


def _system_program(graph, segment: list[Any], x: torch.Tensor, options: SnfOptions, comb_cfg):
    """The `SnfSystem` image of one segment with input ``x`` (the first node's input); later layers are built
    with zero inputs and chained to their producer's output. Also returns each layer's gemm layer (or None)."""
    rtl, gemm = _rtl(), _gemm()
    from hwforge.rtl.gcn import system_image as si

    cfg = options.aggregation
    layers, chained, gemm_layers = [], [], []
    value = x.numpy().astype(np.int64)
    shape = value.shape
    for i, node in enumerate(segment):
        if i:
            value = np.zeros(shape, np.int64)
        feeds_agg = i + 1 < len(segment) and segment[i + 1].op == "qspmm"
        if node.op == "qmatmul_fixed":
            n = int(np.asarray(graph.constant_value(node.inputs[1])).shape[0])
            layer = _comb_layer(graph, node, si.padded_columns(cfg, n) if feeds_agg else None)
            try:
                program = gemm.build_program(comb_cfg, [layer], value)
            except ConfigError as e:
                raise ConfigError(f"snf: combination engine (comb_* options): {str(e).removeprefix('gemm: ')}") \
                    from None
            if layer.n != n:  # computes only the n real columns; the padding only sets the output row layout
                from hwforge.rtl.gemm.program import F, resident

                desc = program.words
                desc[1 + F.N] = n
                desc[1 + F.FLAGS] = (desc[1 + F.FLAGS] & ~4) | (4 if resident(comb_cfg, layer.k, n) else 0)
            layers.append(si.SystemLayer("combination", program))
            gemm_layers.append(layer)
            shape = (program.plans[0].m, n)
        else:
            args = _aggregation_args(graph, node, torch.from_numpy(value))
            program = rtl.build_program(cfg, **args)
            layers.append(si.SystemLayer("aggregation", program))
            gemm_layers.append(None)
            shape = (program.n, program.features)
        chained.append(i > 0)
    system = si.build_system(cfg, layers, chained)
    if system.size > si.MAX_WORDS:
        raise ConfigError(f"snf: the whole accelerator's image for {segment[0].name!r}..{segment[-1].name!r} needs "
                          f"{system.size} words, more than the simulated memory's {si.MAX_WORDS}; use a wider "
                          "bus (--set bus_width=64 or more)")
    return system, gemm_layers


def _system_hex_name(index: int, count: int) -> str:
    return "mem/system.hex" if count == 1 else f"mem/system.{index}.hex"


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
    compulsory bytes being the CSR topology as `hwforge.rtl.gcn.program` lays it out (one bus word per row
    pointer and per edge), every feature row once and every output row once, rows padded to whole 64-byte lines.
    A reconstruction until the snf cycle model lands; measured / bound is what the plots show."""
    elem = cfg.feat_bits // 8
    compute = -(-nnz * features // (cfg.lanes * cfg.engines))
    row_bytes = -(-features * elem // 64) * 64
    moved = (n + 1 + nnz) * cfg.bus_bytes + 2 * n * row_bytes
    return max(compute, -(-moved // cfg.bus_bytes))


@dataclass
class SnfCompileReport(CompileReport):
    aggregations: int = 0
    combinations: list[LayerRecord] = field(default_factory=list)
    combination_engine: dict[str, Any] | None = None
    system_runs: int = 0

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
    system_runs: int = 0
    system_cycles: int = 0

    SUMMARY: ClassVar[tuple[str, ...]] = ("cycles", "bound_cycles", "aggregation_cycles", "combination_cycles",
                                          "cache_hit_rate", "bytes_read", "bytes_written")


class SnfTarget(Target):
    name = "snf"
    description = "Slice-and-Forge GCN accelerator (Amaranth RTL): feature slicing, dynamic tuning, gemm combination"
    hardware = ("Amaranth RTL: multi-engine aggregation, shared banked non-blocking LRU feature cache, per-class "
                "traffic counters; "
                "combination on the gemm systolic array")
    verified_by = "cocotb on Verilator vs PyTorch"

    options_type = SnfOptions

    def passes(self, options: SnfOptions) -> list[Pass]:
        return [FixedPoint(acc_bits=options.acc_bits)]

    def emit(self, graph, model, options: SnfOptions, writer, inputs) -> SnfCompileReport:
        from hwforge.ir import interpret_all

        rtl, gemm = _rtl(), _gemm()
        from hwforge.rtl.gcn import system_image as si

        cfg = options.aggregation
        comb_cfg = _checked_comb_config(graph, options)
        values = interpret_all(graph, inputs)
        layers: list[LayerRecord] = []
        combinations: list[LayerRecord] = []
        segments = _segments(graph)
        if not any(node.op == "qspmm" for seg in segments for node in seg):
            raise ConfigError(f"snf target: model {model.name!r} has no graph aggregation (spmm) to accelerate")
        for index, seg in enumerate(segments):
            program, gemm_layers = _system_program(graph, seg, values[seg[0].inputs[0]], options, comb_cfg)
            for node, placed, glayer in zip(seg, program.layers, gemm_layers, strict=True):
                ir_value = values[node.name].numpy().astype(np.int64)
                writer.add_npy(f"expected/int/{node.name}.npy", ir_value)
                if node.op == "qmatmul_fixed":
                    x = values[node.inputs[0]].numpy().astype(np.int64)
                    hw_model = gemm.reference(comb_cfg, [glayer], x)[0][:, :ir_value.shape[1]]
                    if not np.array_equal(hw_model, ir_value):
                        raise InternalError(f"snf: combination {node.name!r}: the gemm array's model differs from "
                                            "the IR")
                    plan = placed.program.plans[0]
                    n = int(ir_value.shape[1])
                    combinations.append(LayerRecord(
                        node=node.name,
                        bound_cycles=gemm.roofline_cycles(comb_cfg, plan.m, plan.k, n, plan.m_tile),
                        details={"m": plan.m, "k": plan.k, "n": n, "row_elements": plan.n,
                                 "relu": glayer.relu, "bias": len(node.inputs) > 2,
                                 "program_words": placed.program.size, "base": placed.base,
                                 "compute_cycles_expected": gemm.rtl_compute_cycles(comb_cfg, plan.m, plan.k, n,
                                                                                    plan.m_tile)[1]}))
                    continue
                args = _aggregation_args(graph, node, values[node.inputs[0]])
                if not np.array_equal(rtl.reference(cfg, **args), ir_value):
                    raise InternalError(f"snf: aggregation {node.name!r}: the accelerator model differs from the IR")
                agg = placed.program
                nnz = int(args["csr"].indices.size)
                layers.append(LayerRecord(
                    node=node.name, bound_cycles=_aggregation_bound(cfg, agg.n, nnz, agg.features),
                    details={"n": agg.n, "nnz": nnz, "features": agg.features, "row_lines": agg.row_lines,
                             "program_words": agg.size, "base": placed.base}))
            writer.add_text(_system_hex_name(index, len(segments)), program.hex_text())
        if model.test_set is not None and len(model.test_set[1]) == layers[-1].details["n"]:
            writer.add_npy("expected/labels.npy", np.asarray(model.test_set[1], dtype=np.int64))
        writer.add_text("rtl/snf_system.v", si.emit_verilog(cfg, comb_cfg))
        writer.add_text("rtl/snf_system.il", si.emit_rtlil(cfg, comb_cfg))
        writer.add_text("tb/snf_system_tb.v", si.testbench_verilog(cfg))
        report = SnfCompileReport(target=self.name, config=options.to_dict(), layers=layers,
                                  aggregations=len(layers), combinations=combinations)
        report.combination_engine = comb_cfg.to_dict()
        report.system_runs = len(segments)
        return report

    def _run(self, artifact_dir: Path, manifest: dict[str, Any], seed: int,
             inputs: dict[str, np.ndarray] | None = None, expected: bool = False):
        """Interpret the artifact's graph with every run of chained `qspmm` / `qmatmul_fixed` nodes on the
        simulated `SnfSystem` (one simulation per run, see `_segments`)."""
        from hwforge.ir import interpret_all, load_graph
        from hwforge.ir.types import storage_torch_dtype
        from hwforge.rtl.gcn import system_image as si

        gemm = _gemm()
        options = self.options_from_manifest(manifest)
        cfg = options.aggregation
        graph = load_graph(artifact_dir)
        comb_cfg = _checked_comb_config(graph, options)
        path = artifact_dir / "rtl" / "snf_system.v"
        if not path.exists():
            raise ConfigError(f"{artifact_dir}: no whole-accelerator design (rtl/snf_system.v); the artifact "
                              "predates it, recompile it")
        verilog = path.read_text()
        shipped = inputs is None
        if shipped:
            inputs = {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}
        segments = _segments(graph)
        where = {node.name: (i, pos) for i, seg in enumerate(segments) for pos, node in enumerate(seg)}
        layers: list[dict[str, Any]] = []
        pending: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
        runs: list[dict[str, int]] = []

        def check_shipped(text: str, relpath: str) -> None:
            """With the artifact's inputs and correct hardware upstream, the image must be the shipped one."""
            upstream_ok = all(layer.get("mismatches", 0) == 0 for layer in layers)
            if shipped and upstream_ok and text != (artifact_dir / relpath).read_text():
                raise ConfigError(f"{artifact_dir}: {relpath} does not match the artifact's IR and inputs")

        def run_segment(index: int, x: torch.Tensor) -> None:
            seg = segments[index]
            program, _ = _system_program(graph, seg, x, options, comb_cfg)
            check_shipped(program.hex_text(), _system_hex_name(index, len(segments)))
            timeout = sum(50_000_000 if layer.kind == "aggregation" else
                          _comb_timeout(comb_cfg, layer.program.plans[0]) for layer in program.layers)
            run = si.simulate(cfg, comb_cfg, program, verilog=verilog, seed=seed, timeout_cycles=timeout)
            runs.append(run.counters)
            for pos, node in enumerate(seg):
                placed = program.layers[pos]
                rec = program.read_record(pos, run.dump, run.lo)
                out = program.read_layer(pos, run.dump, run.lo)
                if node.op == "qmatmul_fixed":
                    plan = placed.program.plans[0]
                    n = int(np.asarray(graph.constant_value(node.inputs[1])).shape[0])
                    out = out[:, :n]
                    entry: dict[str, Any] = {
                        "node": node.name, "kind": "combination", "m": plan.m, "k": plan.k, "n": n,
                        "row_elements": plan.n, **{k: rec.get(k, 0) for k in COMB_SIM_FIELDS},
                        "bytes_by_class": {c[len("bytes_"):]: rec.get(c, 0) for c in gemm.CLASS_COUNTERS},
                        "bound_cycles": gemm.roofline_cycles(comb_cfg, plan.m, plan.k, n, plan.m_tile)}
                else:
                    agg = placed.program
                    nnz = agg.tiles[0].nnz if len(agg.tiles) == 1 else sum(t.nnz for t in agg.tiles)
                    hits, misses = rec.get("cache_hits", 0), rec.get("cache_misses", 0)
                    entry = {"node": node.name, "kind": "aggregation",
                             "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
                             "bound_cycles": _aggregation_bound(cfg, agg.n, nnz, agg.features),
                             "bytes_by_class": {c: rec.get(f"bytes_{c}", 0) for c in _rtl().CLASSES},
                             "tuner_log": program.read_tuner_log(pos, run.dump, run.lo),
                             **{k: rec.get(k, 0) for k in SIM_COUNTERS}}
                pending[node.name] = (entry, out)

        def on_offload(node, args: list[torch.Tensor]) -> torch.Tensor:
            index, pos = where[node.name]
            if pos == 0:
                run_segment(index, args[0])
            entry, out = pending.pop(node.name)
            if expected:
                want = load_npy(artifact_dir / "expected" / "int" / f"{node.name}.npy")
                entry["mismatches"] = int(np.count_nonzero(out != want)) if out.shape == want.shape else int(want.size)
            layers.append(entry)
            return torch.from_numpy(out).to(storage_torch_dtype(node.type.dtype))

        values = interpret_all(graph, inputs, offload=dict.fromkeys(OFFLOADED, on_offload))
        return graph, values, layers, runs

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray],
            seed: int = 0) -> dict[str, np.ndarray]:
        graph, values, _, _ = self._run(artifact_dir, manifest, seed, inputs)
        return {name: values[name].numpy() for name in graph.outputs}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> SnfVerifyResult:
        graph, values, layers, runs = self._run(artifact_dir, manifest, seed, expected=True)
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
            cache_hit_rate=totals["cache_hits"] / accesses if accesses else 0.0,
            system_runs=len(runs), system_cycles=sum(run["cycles"] for run in runs))

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str,
              clock_mhz: float | None = None) -> dict[str, Any]:
        """Bitstream of the whole accelerator (`SnfSystem`: aggregation, combination engine and layer sequencer)
        with the image of its first run (the whole network unless a host op splits it) in on-chip RAM."""
        from hwforge.fpga import OnChipMemorySoC, build_bitstream
        from hwforge.ir import load_graph
        from hwforge.rtl.gcn.system import SnfSystem

        options = self.options_from_manifest(manifest)
        cfg = options.aggregation
        comb_cfg = _checked_comb_config(load_graph(artifact_dir), options)
        first = artifact_dir / "mem" / "system.hex"
        if not first.exists():
            first = artifact_dir / _system_hex_name(0, 2)
        if not first.exists():
            raise ConfigError(f"{artifact_dir}: no whole-accelerator image (mem/system*.hex); recompile it")
        words = [int(line, 16) for line in first.read_text().split()]
        design = OnChipMemorySoC(lambda: SnfSystem(_hw_config(cfg), comb_cfg), words, cfg.bus_width,
                                 depth=len(words))
        report = build_bitstream(design, board, artifact_dir / "build" / board, clock_mhz=clock_mhz)
        return {**report.to_dict(), "program": first.name, "bitstream_path": str(report.bitstream),
                "build_seconds": round(report.seconds, 1)}


def _hw_config(cfg: SnfConfig) -> SnfConfig:
    from hwforge.rtl.gcn.config import hardware_config

    return hardware_config(cfg.hw_key())


register_target(SnfTarget())
