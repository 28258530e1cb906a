"""The `localut` target: low-bit (W1-4 A1-4) inference as UPMEM DPU C, verified on hwforge's DPU emulation.

compile: quantise to ``wbits``-bit weights (per-channel scales) and ``abits``-bit activations (``quantize_lowbit``),
then emit one DPU kernel per ``lowbit_matmul`` (the LOCALUT LUT kernel, or the integer-MAC or bit-serial
baseline), the generic host program, a Makefile, the per-DPU input files of every layer and the integer
reference of every layer.
verify: interpret the graph with every ``lowbit_matmul`` run by the artifact's DPU program on the emulator; each
layer's device output goes through the host requantisation (``requantize_codes``, as the LOCALUT system does
between DPU launches) into the next launch, so the final output is the device's. Every layer is compared
bit-exactly with the integer reference, the output with float PyTorch (accuracies on labelled inputs), and the
emulator's counts give modelled DPU cycles and time per layer (`hwforge.upmem.cost`).
build: real DPU binaries with the UPMEM SDK when ``dpu-upmem-dpurte-clang`` is on PATH; otherwise the emulation
binaries, and it says plainly that no DPU binary was made.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hwforge.compiler.artifact import load_npy
from hwforge.compiler.passes import Canonicalize, FuseRelu, Pass, QuantizeLowbit
from hwforge.compiler.results import CompileReport, LayerRecord, OutputMetrics, VerifyResult
from hwforge.compiler.targets import localut_device as dev
from hwforge.compiler.targets.base import Target, register_target
from hwforge.compiler.targets.localut_device import LocalutOptions
from hwforge.errors import ConfigError, MissingToolError, UnsupportedOpError
from hwforge.testing import faults


@dataclass
class LocalutCompileReport(CompileReport):
    lowbit_layers: int = 0
    host_requantisation: str = "between DPU launches (requantize_codes on the host)"


@dataclass
class LocalutVerifyResult(VerifyResult):
    """``cycles`` are modelled DPU cycles (`hwforge.upmem.cost`) from the emulator's counts, summed over layers."""

    kernel: str = ""
    total_cycles: int = 0
    total_kernel_s: float = 0.0
    total_time_s: float = 0.0
    total_host_to_dpu_bytes: int = 0
    total_dpu_to_host_bytes: int = 0
    total_dma_bytes: int = 0

    SUMMARY: ClassVar[tuple[str, ...]] = ("cycles", "total_time_s", "total_dma_bytes")


def layer_name(node: str) -> str:
    """File stem of a ``lowbit_matmul`` node: the float layer's name (``fc1.mm`` -> ``fc1``)."""
    return node[:-3] if node.endswith(".mm") else node


def _example_labels(model, inputs: dict[str, Any]) -> np.ndarray | None:
    """Labels of the reference inputs when they are the first rows of the model's labelled test split."""
    if model.test_set is None or len(inputs) != 1:
        return None
    (x,) = inputs.values()
    xs, ys = model.test_set
    x = np.asarray(x)
    if len(x) > len(xs) or not np.array_equal(np.asarray(xs[:len(x)]), x):
        return None
    return np.asarray(ys[:len(x)], dtype=np.int64)


class LocalutTarget(Target):
    name = "localut"
    description = "LOCALUT LUT-based low-bit inference (UPMEM DPU C), with MAC and bit-serial baselines"
    hardware = "UPMEM DPU C (LUT, MAC or bit-serial kernel) + generic host C + Makefile"
    verified_by = "host-side DPU emulation vs PyTorch"
    build_message = ("building {artifact}: DPU binaries with the UPMEM SDK where it is on PATH, "
                     "else the emulation binaries")

    options_type = LocalutOptions

    def passes(self, options: LocalutOptions) -> list[Pass]:
        return [Canonicalize(), FuseRelu(), QuantizeLowbit(wbits=options.wbits, abits=options.abits)]

    # ------------------------------------------------------------------------------------------------ compile
    def emit(self, graph, model, options: LocalutOptions, writer, inputs) -> LocalutCompileReport:
        from hwforge.ir import interpret_all

        mm_nodes = [n for n in graph.nodes() if n.op == "lowbit_matmul"]
        if not mm_nodes:
            raise UnsupportedOpError(f"localut target: model {model.name!r} has no linear or conv2d layer to run")
        values = interpret_all(graph, inputs)
        fault = faults.active("localut")
        layers = []
        for node in mm_nodes:
            layer = layer_name(node.name)
            kernel = dev.make_kernel(graph, node, values[node.inputs[0]].numpy(), options, fault)
            writer.add_text(f"dpu/{layer}.c", kernel.dpu_source)
            for fname, data in sorted(dev.kernel_files(kernel).items()):
                writer.add_bytes(f"data/{layer}/{fname}", data)
            writer.add_npy(f"expected/int/{node.name}.npy", values[node.name].numpy().astype(np.int64))
            layers.append(LayerRecord(node=node.name, details={"layer": layer, **dev.layer_facts(kernel)}))
        labels = _example_labels(model, inputs)
        if labels is not None:  # the default example inputs are the head of the test split: keep their labels
            writer.add_npy("expected/labels.npy", labels)
        writer.add_text("host/host.c", dev.host_source())
        writer.add_text("dpu/hwforge_count.h", dev.count_header())
        writer.add_text("Makefile", dev.makefile([entry.details["layer"] for entry in layers], options.tasklets))
        return LocalutCompileReport(target=self.name, config=options.to_dict(), layers=layers,
                                    lowbit_layers=len(layers))

    # ----------------------------------------------------------------------------------------- run / verify
    @staticmethod
    def _random_check(graph, node, shape, options: LocalutOptions, seed: list[int], fault: str | None) -> int:
        """Mismatches of the layer's kernel on seeded uniformly random activation codes of the same shape (the
        same DPU program): calibrated activations rarely reach every code, random ones do."""
        from hwforge.ir.quant_lowbit import lowbit_matmul_int

        rng = np.random.default_rng(seed)
        ac = rng.integers(0, 1 << int(node.attrs["abits"]), size=tuple(shape))
        kernel = dev.make_kernel(graph, node, ac, options, fault)
        want = lowbit_matmul_int(ac, graph.constant_value(node.inputs[1]), graph.constant_value(node.inputs[2]))
        return int(np.count_nonzero(dev.run_kernel(kernel).output != want))

    def _run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray] | None,
             expected: bool, seed: int = 0):
        """Interpret the artifact's graph with every ``lowbit_matmul`` on the emulated DPUs."""
        from hwforge.ir import interpret_all, load_graph

        options = self.options_from_manifest(manifest)
        fault = manifest.get("test_faults", {}).get("localut")
        graph = load_graph(artifact_dir)
        shipped = inputs is None
        if shipped:
            inputs = {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}
        layers: list[dict[str, Any]] = []

        def on_dpus(node, args: list[torch.Tensor]) -> torch.Tensor:
            layer = layer_name(node.name)
            kernel = dev.make_kernel(graph, node, args[0].numpy(), options, fault)
            upstream_ok = all(entry.get("mismatches", 0) == 0 for entry in layers)
            if shipped and upstream_ok:
                dev.check_shipped(artifact_dir, layer, kernel)
            result = dev.run_kernel(kernel)
            entry: dict[str, Any] = {"node": node.name, "layer": layer, **dev.layer_facts(kernel), **result.report}
            if expected:
                want = load_npy(artifact_dir / "expected" / "int" / f"{node.name}.npy")
                entry["mismatches"] = int(np.count_nonzero(result.output != want))
                entry["random_codes_mismatches"] = self._random_check(graph, node, args[0].shape, options,
                                                                      [seed, len(layers)], fault)
            layers.append(entry)
            return torch.from_numpy(result.output.astype(np.int32))

        values = interpret_all(graph, inputs, offload={"lowbit_matmul": on_dpus})
        return graph, inputs, values, layers

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, np.ndarray],
            seed: int = 0) -> dict[str, np.ndarray]:
        """Run new inputs through the emulated DPUs; returns the float outputs (host dequantisation)."""
        graph, _, values, _ = self._run(artifact_dir, manifest, {k: np.asarray(v) for k, v in inputs.items()},
                                        expected=False)
        return {name: values[name].numpy() for name in graph.outputs}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> LocalutVerifyResult:
        from hwforge.ir import interpret

        options = self.options_from_manifest(manifest)
        seed = seed + options.seed
        graph, inputs, values, layers = self._run(artifact_dir, manifest, None, expected=True, seed=seed)
        int_ref = interpret(graph, inputs)
        labels = None
        for labels_path in (artifact_dir / "inputs" / "labels.npy", artifact_dir / "expected" / "labels.npy"):
            if labels_path.exists():
                labels = load_npy(labels_path)
                break
        outputs = {name: OutputMetrics.compare(values[name].numpy(),
                                               load_npy(artifact_dir / "expected" / f"{name}.npy"), labels,
                                               int_ref[name].numpy())
                   for name in graph.outputs}
        mismatches = sum(entry["mismatches"] + entry["random_codes_mismatches"] for entry in layers)
        totals = dev.totals(layers)
        # the cost model is itself a bound model (max of issue, dependency and MRAM bounds; ``bound`` names the one
        # that dominates), so there is no separate roofline to report beside its cycles
        records = [LayerRecord(node=entry.pop("node"), cycles=entry.pop("cycles"), mismatches=entry.pop("mismatches"),
                               details=entry) for entry in map(dict, layers)]
        return LocalutVerifyResult(
            target=self.name, passed=mismatches == 0, mismatches=mismatches, seed=seed, layers=records,
            outputs=outputs, cycles=totals.get("total_cycles", 0), kernel=options.kernel, **totals)

    # ------------------------------------------------------------------------------------------------- build
    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str,
              clock_mhz: float | None = None) -> dict[str, Any]:
        if clock_mhz is not None:
            raise ConfigError(f"--clock-mhz applies to RTL targets built through the open flow, not {self.name}")
        from hwforge.toolchain import which

        layers = sorted(p.stem for p in (artifact_dir / "dpu").glob("*.c"))
        if which("dpu-upmem-dpurte-clang") and which("dpu-pkg-config"):
            if which("make") is None:
                raise MissingToolError("make: not found; the UPMEM build runs the artifact's Makefile")
            proc = subprocess.run(["make", "-C", str(artifact_dir), "all"], capture_output=True, text=True)
            if proc.returncode:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
                raise ConfigError(f"UPMEM SDK build failed: {tail[0]}")
            return {"dpu_binary": True, "emulation": False, "layers": layers,
                    "binaries": [f"build/{layer}.dpu" for layer in layers] + ["build/host"]}
        note = ("dpu-upmem-dpurte-clang not found: no DPU binary was made; built the host-side emulation "
                "binaries instead (install the UPMEM SDK for real DPU binaries)")
        sys.stderr.write(f"hwforge build: {note}\n")
        builds = dev.build_emulation_binaries(artifact_dir, self.options_from_manifest(manifest), layers)
        return {"dpu_binary": False, "emulation": True, "note": note, "layers": layers, "binaries": builds}


register_target(LocalutTarget())
