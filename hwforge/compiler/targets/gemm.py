"""The `gemm` target: a quantised model on the systolic MAC-array accelerator (Amaranth RTL).

compile: quantise (width bits) -> lower to a chain of GEMM layers (conv2d via hardware-gathered im2col) ->
emit Verilog/RTLIL and the memory image, plus the integer reference of every layer.
verify: run the artifact's own Verilog on Verilator under seeded stalls and memory latency, compare every
layer bit-exactly with the integer reference and the final output with float PyTorch.
build: put the accelerator and its memory image in on-chip RAM and run the open FPGA flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwforge.compiler.artifact import load_npy
from hwforge.compiler.passes import Canonicalize, FuseRelu, Pass, Quantize
from hwforge.compiler.results import CompileReport, LayerRecord, OutputMetrics, VerifyResult
from hwforge.compiler.targets.base import Target, register_target
from hwforge.compiler.targets.gemm_lowering import gather_logical, hardware_layers, lower_graph, quantize_input
from hwforge.errors import ConfigError, InternalError
from hwforge.rtl.gemm.config import GemmConfig


def _rtl():
    import hwforge.rtl.gemm as rtl

    return rtl


PROGRAM_HEX = "mem/program.hex"


@dataclass
class GemmCompileReport(CompileReport):
    program_words: int = 0
    macs: int = 0


@dataclass
class GemmVerifyResult(VerifyResult):
    """Counters of the whole run (one simulation runs every layer from the memory image)."""

    predicted_cycles: int = 0
    """The cycle model's total for the simulated memory (`hwforge.rtl.gemm.cycles.predict_layer_cycles`)."""
    compute_cycles: int = 0
    busy_cycles: int = 0
    stall_cycles: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    folds: int = 0
    stall_prob: float = 0.0
    latency: int = 0

    SUMMARY: ClassVar[tuple[str, ...]] = ("cycles", "predicted_cycles", "bound_cycles", "compute_cycles",
                                          "bytes_read", "bytes_written", "stall_cycles")


def _a_elements(lowered) -> int:
    """Distinct A elements a layer must read at least once (the gathered source's, for im2col)."""
    gather = lowered.layer.a_gather
    if gather is None:
        return lowered.m * lowered.layer.k
    return int(np.unique(gather[gather >= 0]).size)


class GemmTarget(Target):
    name = "gemm"
    description = "systolic MAC-array GEMM accelerator (Amaranth RTL); the template DANCE/HDX search over"
    hardware = "Amaranth RTL: systolic MAC array, operand/result buffers, memory port with counters"
    verified_by = "cocotb on Verilator vs PyTorch"
    options_type = GemmConfig

    def passes(self, options: GemmConfig) -> list[Pass]:
        return [Canonicalize(), FuseRelu(), Quantize(bits=options.width, acc_bits=options.acc_width)]

    def emit(self, graph, model, options: GemmConfig, writer, inputs) -> GemmCompileReport:
        from hwforge.ir import interpret_all

        rtl = _rtl()
        cfg = options
        plan = lower_graph(graph)
        for lowered in plan.layers:
            if lowered.acc_bits != cfg.acc_width:
                raise InternalError(f"gemm: layer {lowered.node!r} accumulates in {lowered.acc_bits} bits but the "
                                    f"array in {cfg.acc_width}; the quantize pass did not get acc_bits")
        layers = hardware_layers(plan)
        x_int = quantize_input(plan, inputs[plan.input_node]).reshape(-1)
        program = rtl.build_program(cfg, layers, x_int)

        # The integer reference is the IR interpreter; the accelerator's own numpy model must agree with it,
        # otherwise the lowering (gathers, layouts) is wrong and verification would chase a phantom.
        values = interpret_all(graph, inputs)
        hw_model = rtl.reference(cfg, layers, x_int)
        for node, (index, phys) in plan.layer_values.items():
            ir_value = values[node].detach().numpy().astype(np.int64)
            if not np.array_equal(ir_value, gather_logical(hw_model, index, phys)):
                raise InternalError(f"gemm lowering: layer {node!r} of the accelerator model differs from the IR")
            writer.add_npy(f"expected/int/{node}.npy", ir_value)

        writer.add_text("rtl/gemm.v", rtl.emit_verilog(cfg))
        writer.add_text("rtl/gemm.il", rtl.emit_rtlil(cfg))
        writer.add_text(PROGRAM_HEX, program.hex_text())
        writer.add_text("tb/hwforge_tb.v", rtl.testbench_verilog(cfg))
        return GemmCompileReport(
            target=self.name, config=cfg.to_dict(), program_words=program.size,
            layers=self._layer_records(cfg, plan, program),
            macs=int(sum(lowered.macs for lowered in plan.layers)))

    @staticmethod
    def _layer_records(cfg: GemmConfig, plan, program) -> list[LayerRecord]:
        """Per layer: the roofline bound, and the cycle model's prediction for the memory verify simulates."""
        rtl = _rtl()
        records = []
        for index, (lowered, lp) in enumerate(zip(plan.layers, program.plans, strict=True)):
            m, k, n = lowered.m, lowered.layer.k, lowered.layer.n
            records.append(LayerRecord(
                node=lowered.node,
                bound_cycles=rtl.roofline_cycles(cfg, m, k, n, lp.m_tile, _a_elements(lowered)),
                details={"m": m, "k": k, "n": n, "macs": lowered.macs, "gather": lowered.layer.a_gather is not None,
                         "relu": lowered.layer.relu, "fold_cycles_formula": rtl.fold_cycles_formula(cfg, m, k, n)[1],
                         "compute_cycles_expected": rtl.rtl_compute_cycles(cfg, m, k, n, lp.m_tile)[1],
                         "predicted_cycles": rtl.predict_layer_cycles(program, index, rtl.VERIFY_LATENCY,
                                                                      rtl.VERIFY_STALL_PROB)}))
        return records

    def _program(self, artifact_dir: Path, manifest: dict[str, Any],
                 inputs: dict[str, np.ndarray] | None = None):
        """The memory image for the artifact's IR and inputs (or new inputs of the same shape).

        With the artifact's own inputs the rebuilt image must equal the shipped ``mem/program.hex``: what is
        simulated or put on the FPGA is exactly what the artifact says.
        """
        from hwforge.ir import load_graph

        rtl = _rtl()
        cfg = self.options_from_manifest(manifest)
        plan = lower_graph(load_graph(artifact_dir))
        shipped = inputs is None
        if shipped:
            inputs = {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}
        x = np.asarray(inputs[plan.input_node])
        if tuple(x.shape) != plan.input_shape:
            raise ConfigError(f"input {plan.input_node!r}: shape {tuple(x.shape)} does not match the compiled "
                              f"shape {plan.input_shape}; recompile with the batch you want to run")
        layers = hardware_layers(plan)
        x_int = quantize_input(plan, x).reshape(-1)
        program = rtl.build_program(cfg, layers, x_int)
        if shipped and program.hex_text() != (artifact_dir / PROGRAM_HEX).read_text():
            raise ConfigError(f"{artifact_dir}: {PROGRAM_HEX} does not match the artifact's IR and inputs")
        return cfg, plan, layers, x_int, program

    def _simulate(self, artifact_dir: Path, manifest: dict[str, Any], seed: int,
                  inputs: dict[str, np.ndarray] | None = None):
        rtl = _rtl()
        cfg, plan, layers, x_int, program = self._program(artifact_dir, manifest, inputs)
        verilog = (artifact_dir / "rtl" / "gemm.v").read_text()
        return cfg, plan, program, layers, x_int, rtl.simulate(cfg, program, seed=seed, verilog=verilog)

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray],
            seed: int = 0) -> dict[str, np.ndarray]:
        """Run new inputs on the simulated accelerator; return the dequantised outputs."""
        _, plan, _, _, _, sim = self._simulate(artifact_dir, manifest, seed, inputs)
        return {name: (gather_logical(sim.outputs, index, phys) * scale).astype(np.float32)
                for name, (index, phys, scale) in plan.outputs.items()}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> GemmVerifyResult:
        cfg, plan, program, hw_layers, x_int, sim = self._simulate(artifact_dir, manifest, seed)
        records = self._layer_records(cfg, plan, program)

        layers = []
        mismatches = 0
        for node, (index, phys) in plan.layer_values.items():
            expected = load_npy(artifact_dir / "expected" / "int" / f"{node}.npy")
            got = gather_logical(sim.outputs, index, phys)
            bad = int(np.count_nonzero(got != expected))
            mismatches += bad
            layers.append(LayerRecord(node=node, mismatches=bad, bound_cycles=records[index].bound_cycles,
                                      details={"elements": int(expected.size),
                                               "predicted_cycles": records[index].details["predicted_cycles"]}))

        outputs = {}
        labels_path = artifact_dir / "inputs" / "labels.npy"
        labels = load_npy(labels_path) if labels_path.exists() else None
        int_model = _rtl().reference(cfg, hw_layers, x_int) if labels is not None else None
        for name, (index, phys, scale) in plan.outputs.items():
            outputs[name] = OutputMetrics.compare(
                gather_logical(sim.outputs, index, phys) * scale, load_npy(artifact_dir / "expected" / f"{name}.npy"),
                labels, None if int_model is None else gather_logical(int_model, index, phys) * scale)

        return GemmVerifyResult(
            target=self.name, passed=mismatches == 0, mismatches=mismatches, seed=seed, layers=layers,
            outputs=outputs, cycles=sim.cycles, bound_cycles=sum(r.bound_cycles or 0 for r in records),
            predicted_cycles=sum(r.details["predicted_cycles"] for r in records),
            compute_cycles=sim.compute_cycles, busy_cycles=sim.busy_cycles, stall_cycles=sim.stall_cycles,
            bytes_read=sim.bytes_read, bytes_written=sim.bytes_written, folds=sim.folds,
            stall_prob=sim.stall_prob, latency=sim.latency)

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str,
              clock_mhz: float | None = None) -> dict[str, Any]:
        from hwforge.fpga import OnChipMemorySoC, build_bitstream

        rtl = _rtl()
        cfg, _, _, _, program = self._program(artifact_dir, manifest)
        design = OnChipMemorySoC(lambda: rtl.GemmAccelerator(cfg), program.words, cfg.bus_width,
                                 depth=program.size)
        report = build_bitstream(design, board, artifact_dir / "build" / board, clock_mhz=clock_mhz)
        return {**report.to_dict(), "bitstream_path": str(report.bitstream), "build_seconds": round(report.seconds, 1)}


register_target(GemmTarget())
