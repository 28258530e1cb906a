"""The `gemm` target: a quantised model on the systolic MAC-array accelerator (Amaranth RTL).

compile: quantise (width bits) -> lower to a chain of GEMM layers (conv2d via hardware-gathered im2col) ->
emit Verilog/RTLIL and the memory image, plus the integer reference of every layer.
verify: run the artifact's own Verilog on Verilator under seeded stalls and memory latency, compare every
layer bit-exactly with the integer reference and the final output with float PyTorch.
build: put the accelerator and its memory image in on-chip RAM and run the open FPGA flow.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.compiler.artifact import load_npy
from hwforge.compiler.targets.base import Target, register_target
from hwforge.compiler.targets.gemm_lowering import (
    GemmPlan,
    gather_logical,
    lower_graph,
    quantize_input,
)
from hwforge.errors import ConfigError, HwforgeError


class InternalError(HwforgeError):
    exit_code = 3


def _rtl():
    import hwforge.rtl.gemm as rtl

    return rtl


def _to_rtl_layers(plan: GemmPlan) -> list:
    rtl = _rtl()
    return [rtl.GemmLayer(weight=layer.weight, bias=layer.bias, multiplier=layer.multiplier, shift=layer.shift,
                          relu=layer.relu, out_bits=layer.out_bits, a_gather=layer.a_gather)
            for layer in plan.layers]


class GemmTarget(Target):
    name = "gemm"
    description = "systolic MAC-array GEMM accelerator (Amaranth RTL); the template DANCE/HDX search over"
    hardware = "Amaranth RTL: systolic MAC array, operand/result buffers, memory port with counters"
    verified_by = "cocotb on Verilator vs PyTorch"

    def config(self, options: dict[str, Any]):
        rtl = _rtl()
        fields = {f.name for f in dataclasses.fields(rtl.GemmConfig)}
        return rtl.GemmConfig(**{k: v for k, v in options.items() if k in fields})

    def parse_options(self, options: dict[str, str]) -> dict[str, Any]:
        cfg = _rtl().GemmConfig.from_options(options)
        return dataclasses.asdict(cfg)

    def passes(self, options: dict[str, Any]) -> list:
        from hwforge.compiler import PASSES

        return [PASSES["canonicalize"](), PASSES["fuse_relu"](), PASSES["quantize"]()]

    def pipeline_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"bits": options["width"], "acc_bits": options["acc_width"]}

    def emit(self, graph, model, options, writer, inputs) -> dict[str, Any]:
        from hwforge.ir import interpret_all

        rtl = _rtl()
        cfg = self.config(options)
        plan = lower_graph(graph)
        layers = _to_rtl_layers(plan)
        x_int = quantize_input(plan, inputs[plan.input_node])
        program = rtl.build_program(cfg, layers, x_int.reshape(-1))

        # The integer reference is the IR interpreter; the accelerator's own numpy model must agree with it,
        # otherwise the lowering (gathers, layouts) is wrong and verification would chase a phantom.
        values = interpret_all(graph, inputs)
        hw_model = rtl.reference(cfg, layers, x_int.reshape(-1))
        for node, (index, phys) in plan.layer_values.items():
            ir_value = values[node].detach().numpy().astype(np.int64)
            mine = gather_logical(hw_model, index, phys)
            if not np.array_equal(ir_value, mine):
                raise InternalError(f"gemm lowering: layer {node!r} of the accelerator model differs from the IR")
            writer.add_npy(f"expected/int/{node}.npy", ir_value)

        writer.add_text("rtl/gemm.v", rtl.emit_verilog(cfg))
        writer.add_text("rtl/gemm.il", rtl.emit_rtlil(cfg))
        with tempfile.TemporaryDirectory() as tmp:
            program.write_hex(Path(tmp) / "program.hex")
            writer.add_bytes("mem/program.hex", (Path(tmp) / "program.hex").read_bytes())
        writer.add_text("tb/hwforge_tb.v", rtl.testbench_verilog(cfg))
        return {
            "config": dataclasses.asdict(cfg),
            "program_words": int(len(program.words)),
            "layers": [{"node": layer.node, "m": layer.m, "k": layer.k, "n": layer.n, "macs": layer.macs,
                        "gather": layer.a_gather is not None, "relu": layer.relu,
                        "fold_cycles_formula": rtl.fold_cycles_formula(cfg, layer.m, layer.k, layer.n)[1]}
                       for layer in plan.layers],
            "macs": int(sum(layer.macs for layer in plan.layers)),
        }

    def _program(self, artifact_dir: Path, manifest: dict[str, Any],
                 inputs: dict[str, np.ndarray] | None = None):
        """Rebuild the memory image from the artifact's IR and inputs (or new inputs of the same shape)."""
        from hwforge.ir import load_graph

        rtl = _rtl()
        cfg = self.config(manifest["options"])
        plan = lower_graph(load_graph(artifact_dir))
        if inputs is None:
            inputs = {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}
        x = np.asarray(inputs[plan.input_node])
        if tuple(x.shape) != plan.input_shape:
            raise ConfigError(f"input {plan.input_node!r}: shape {tuple(x.shape)} does not match the compiled "
                              f"shape {plan.input_shape}; recompile with the batch you want to run")
        layers = _to_rtl_layers(plan)
        x_int = quantize_input(plan, x).reshape(-1)
        return cfg, plan, layers, x_int, rtl.build_program(cfg, layers, x_int)

    def _simulate(self, artifact_dir: Path, manifest: dict[str, Any], seed: int,
                  inputs: dict[str, np.ndarray] | None = None):
        rtl = _rtl()
        cfg, plan, layers, x_int, program = self._program(artifact_dir, manifest, inputs)
        verilog = (artifact_dir / "rtl" / "gemm.v").read_text()
        sim = rtl.simulate(cfg, program, seed=seed, verilog=verilog)
        return cfg, plan, rtl.reference(cfg, layers, x_int), sim

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray],
            seed: int = 0) -> dict[str, np.ndarray]:
        """Run new inputs on the simulated accelerator; return the dequantised outputs."""
        _, plan, _, sim = self._simulate(artifact_dir, manifest, seed, inputs)
        return {name: (gather_logical(sim.outputs, index, phys) * scale).astype(np.float32)
                for name, (index, phys, scale) in plan.outputs.items()}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> dict[str, Any]:
        cfg, plan, int_model, sim = self._simulate(artifact_dir, manifest, seed)

        layers = []
        mismatches = 0
        for node, (index, phys) in plan.layer_values.items():
            expected = load_npy(artifact_dir / "expected" / "int" / f"{node}.npy")
            got = gather_logical(sim.outputs, index, phys)
            bad = int(np.count_nonzero(got != expected))
            mismatches += bad
            layers.append({"node": node, "elements": int(expected.size), "mismatches": bad})

        outputs = {}
        labels_path = artifact_dir / "inputs" / "labels.npy"
        labels = load_npy(labels_path) if labels_path.exists() else None
        for name, (index, phys, scale) in plan.outputs.items():
            hw = gather_logical(sim.outputs, index, phys).astype(np.float64) * scale
            ref = load_npy(artifact_dir / "expected" / f"{name}.npy").astype(np.float64)
            entry: dict[str, Any] = {"max_abs_error_vs_float": float(np.max(np.abs(hw - ref))),
                                     "mean_abs_error_vs_float": float(np.mean(np.abs(hw - ref)))}
            if labels is not None and hw.ndim == 2:
                entry["accuracy_float"] = float(np.mean(ref.argmax(1) == labels))
                q = gather_logical(int_model, index, phys).astype(np.float64) * scale
                entry["accuracy_int_reference"] = float(np.mean(q.argmax(1) == labels))
                entry["accuracy_hardware"] = float(np.mean(hw.argmax(1) == labels))
            outputs[name] = entry

        return {
            "passed": mismatches == 0,
            "mismatches": mismatches,
            "seed": seed,
            "layers": layers,
            "outputs": outputs,
            **{k: v for k, v in dataclasses.asdict(sim).items() if k not in ("outputs", "work_dir", "extra")},
        }

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str) -> dict[str, Any]:
        from hwforge.fpga import OnChipMemorySoC, build_bitstream

        rtl = _rtl()
        cfg, _, _, _, program = self._program(artifact_dir, manifest)
        design = OnChipMemorySoC(lambda: rtl.GemmAccelerator(cfg), program.words, cfg.bus_width,
                                 depth=program.size)
        report = build_bitstream(design, board, artifact_dir / "build" / board)
        return {**report.to_dict(), "bitstream_path": str(report.bitstream), "build_seconds": round(report.seconds, 1)}


register_target(GemmTarget())
