"""The `snf` target: GCNs on the Slice-and-Forge aggregation accelerator (Amaranth RTL).

compile: convert the graph to fixed point (`fixed_point` pass: Q8.8 features and weights, Q2.14 adjacency),
emit the accelerator's Verilog/RTLIL, and one memory image per aggregation (`qspmm`) node built from the integer
reference's input to that node.
verify: run the graph with every aggregation offloaded to the artifact's own Verilog on Verilator (seeded
stalls and latency); each aggregation's output feeds the next op, so the hardware's results travel through
the whole network. Every aggregation is compared bit-exactly with the integer reference and the final output
with float PyTorch. Combination (`qmatmul_fixed`), normalisation and residual adds run on the host with the
IR's integer reference: the combination engine on the `gemm` array is not built yet.
build: the first aggregation's program in on-chip RAM with the accelerator, through the open FPGA flow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwforge.compiler.artifact import load_npy
from hwforge.compiler.targets.base import Target, output_metrics, register_target
from hwforge.errors import ConfigError, InternalError

FEATURE_BITS = 16  # the fixed_point pass's default Q8.8 features; edge values are Q2.14 (also 16 bits)
SIM_COUNTERS = ("cycles", "cache_hits", "cache_misses", "bytes_read", "bytes_written")


def _rtl():
    import hwforge.rtl.gcn as rtl

    return rtl


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


class SnfTarget(Target):
    name = "snf"
    description = "Slice-and-Forge GCN aggregation accelerator (Amaranth RTL): feature slicing, dynamic tuning"
    hardware = "Amaranth RTL: multi-engine aggregation, shared LRU feature cache, per-class traffic counters"
    verified_by = "cocotb on Verilator vs PyTorch"

    def config(self, options: dict[str, Any]):
        rtl = _rtl()
        fields = {f.name for f in dataclasses.fields(rtl.SnfConfig)}
        kwargs = {k: v for k, v in options.items() if k in fields}
        if "candidates" in kwargs:
            kwargs["candidates"] = tuple(kwargs["candidates"])
        return rtl.SnfConfig(**kwargs)

    def parse_options(self, options: dict[str, str]) -> dict[str, Any]:
        cfg = _rtl().SnfConfig.from_options(options)
        if cfg.feat_bits != FEATURE_BITS:
            raise ConfigError(f"snf: feat_bits={cfg.feat_bits} is not supported by the fixed-point pass "
                              f"(Q8.8 features, Q2.14 edge values); use feat_bits={FEATURE_BITS}")
        return dataclasses.asdict(cfg)

    def passes(self, options: dict[str, Any]) -> list:
        from hwforge.compiler import PASSES

        return [PASSES["fixed_point"]()]

    def pipeline_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"acc_bits": options["acc_bits"]}

    def emit(self, graph, model, options, writer, inputs) -> dict[str, Any]:
        from hwforge.ir import interpret_all

        rtl = _rtl()
        cfg = self.config(options)
        values = interpret_all(graph, inputs)
        layers = []
        for node in graph.nodes():
            if node.op != "qspmm":
                continue
            args = _aggregation_args(graph, node, values[node.inputs[0]])
            program = rtl.build_program(cfg, **args)
            ir_value = values[node.name].numpy().astype(np.int64)
            if not np.array_equal(rtl.reference(cfg, **args), ir_value):
                raise InternalError(f"snf: aggregation {node.name!r}: the accelerator model differs from the IR")
            writer.add_npy(f"expected/int/{node.name}.npy", ir_value)
            writer.add_text(_hex_name(node.name), program.hex_text())
            layers.append({"node": node.name, "n": program.n, "nnz": int(args["csr"].indices.size),
                           "features": program.features, "row_lines": program.row_lines,
                           "program_words": program.size})
        if not layers:
            raise ConfigError(f"snf target: model {model.name!r} has no graph aggregation (spmm) to accelerate")
        if model.test_set is not None and len(model.test_set[1]) == layers[-1]["n"]:
            writer.add_npy("expected/labels.npy", np.asarray(model.test_set[1], dtype=np.int64))
        writer.add_text("rtl/snf.v", rtl.emit_verilog(cfg))
        writer.add_text("rtl/snf.il", rtl.emit_rtlil(cfg))
        writer.add_text("tb/hwforge_tb.v", rtl.testbench_verilog(cfg))
        return {"config": options, "layers": layers, "aggregations": len(layers)}

    def _run(self, artifact_dir: Path, manifest: dict[str, Any], seed: int,
             inputs: dict[str, np.ndarray] | None = None, expected: bool = False):
        """Interpret the artifact's graph with every `qspmm` on the simulated accelerator."""
        from hwforge.ir import interpret_all, load_graph
        from hwforge.ir.types import storage_torch_dtype

        rtl = _rtl()
        cfg = self.config(manifest["options"])
        graph = load_graph(artifact_dir)
        verilog = (artifact_dir / "rtl" / "snf.v").read_text()
        shipped = inputs is None
        if shipped:
            inputs = {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}
        layers: list[dict[str, Any]] = []

        def on_accelerator(node, args: list[torch.Tensor]) -> torch.Tensor:
            program = rtl.build_program(cfg, **_aggregation_args(graph, node, args[0]))
            upstream_ok = all(layer.get("mismatches", 0) == 0 for layer in layers)
            if shipped and upstream_ok and program.hex_text() != (artifact_dir / _hex_name(node.name)).read_text():
                raise ConfigError(f"{artifact_dir}: {_hex_name(node.name)} does not match the artifact's IR and inputs")
            sim = rtl.simulate(cfg, program, seed=seed, verilog=verilog)
            entry: dict[str, Any] = {"node": node.name, "hit_rate": round(sim.hit_rate, 4),
                                     "bytes_by_class": sim.bytes_by_class(), "tuner_log": sim.log,
                                     **{k: int(sim.counters[k]) for k in SIM_COUNTERS}}
            if expected:
                want = load_npy(artifact_dir / "expected" / "int" / f"{node.name}.npy")
                entry["mismatches"] = int(np.count_nonzero(sim.outputs != want))
            layers.append(entry)
            return torch.from_numpy(sim.outputs).to(storage_torch_dtype(node.type.dtype))

        values = interpret_all(graph, inputs, offload={"qspmm": on_accelerator})
        return graph, values, layers

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray],
            seed: int = 0) -> dict[str, np.ndarray]:
        graph, values, _ = self._run(artifact_dir, manifest, seed, inputs)
        return {name: values[name].numpy() for name in graph.outputs}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> dict[str, Any]:
        graph, values, layers = self._run(artifact_dir, manifest, seed, expected=True)
        mismatches = sum(layer["mismatches"] for layer in layers)
        outputs = {}
        labels_path = artifact_dir / "expected" / "labels.npy"
        labels = load_npy(labels_path) if labels_path.exists() else None
        for name in graph.outputs:
            outputs[name] = output_metrics(values[name].numpy(), load_npy(artifact_dir / "expected" / f"{name}.npy"),
                                           labels)
        totals = {k: sum(layer[k] for layer in layers) for k in SIM_COUNTERS}
        by_class: dict[str, int] = {}
        for layer in layers:
            for cls, count in layer["bytes_by_class"].items():
                by_class[cls] = by_class.get(cls, 0) + int(count)
        accesses = totals["cache_hits"] + totals["cache_misses"]
        return {
            "passed": mismatches == 0,
            "mismatches": mismatches,
            "seed": seed,
            **totals,
            "bytes_by_class": by_class,
            "cache_hit_rate": totals["cache_hits"] / accesses if accesses else 0.0,
            "layers": layers,
            "outputs": outputs,
        }

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str) -> dict[str, Any]:
        from hwforge.fpga import OnChipMemorySoC, build_bitstream

        rtl = _rtl()
        cfg = self.config(manifest["options"])
        from hwforge.ir import load_graph

        node = next(n for n in load_graph(artifact_dir).nodes() if n.op == "qspmm")
        first = artifact_dir / _hex_name(node.name)
        words = [int(line, 16) for line in first.read_text().split()]
        design = OnChipMemorySoC(lambda: rtl.SnfAccelerator(cfg), words, cfg.bus_width, depth=len(words))
        report = build_bitstream(design, board, artifact_dir / "build" / board)
        return {**report.to_dict(), "program": first.name, "bitstream_path": str(report.bitstream),
                "build_seconds": round(report.seconds, 1)}


register_target(SnfTarget())
