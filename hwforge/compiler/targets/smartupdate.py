"""The `smartupdate` target: Smart-Infinity's near-storage optimizer update as a Vitis HLS kernel.

MODEL is an optimizer, not a network: a zoo optimizer name (``hwforge zoo``) or ``path/file.py:function``
returning ``(model, optimizer)``. compile: torch.optim -> `OptimizerSpec` -> optimizer IR -> HLS C++ kernel,
XRT host program, Makefile and link.cfg; the reference inputs are seeded parameters and ``steps`` gradients of
length ``n`` and the expected outputs come from torch.optim itself (via the `Target.load_own` hook).
verify: g++-compile the artifact's own kernel (C simulation), run every step, compare bit-exactly with the IR
interpreter and with tolerances against torch.optim (`hwforge.fpga.hls.csim`).
build: ``make xclbin`` (v++ -c, v++ -l) where Vitis is installed.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwforge.compiler.artifact import load_npy
from hwforge.compiler.passes import Pass
from hwforge.compiler.results import CompileReport, VerifyResult
from hwforge.compiler.targets.base import OwnModel, Target, register_target
from hwforge.errors import ConfigError, MissingToolError
from hwforge.options import OptionError, Options, option
from hwforge.testing import faults

GRAD_FORMATS = ("fp32", "fp16", "topk_fp16", "topk_fp32")
SPEC_FILE = "optimizer.json"
faults.declare("smartupdate", ("no_bias_correction", "drop_tail"))


@dataclass(frozen=True)
class SmartUpdateOptions(Options):
    """The `smartupdate` target's options: gradient format, reference data, HLS code-generation choices."""

    OWNER: ClassVar[str] = "smartupdate"

    grad: str = option("fp32", "gradient format: fp32, fp16, or top-k with fp16/fp32 values (int32 indices)",
                       choices=GRAD_FORMATS)
    topk: float = option(0.01, "kept fraction of the gradient (top-k formats)", lo=1e-9, hi=1.0)
    half_copy: bool = option(True, "also write an fp16 copy of the parameters")
    loss_scale: float = option(1.0, "loss-scale the kernel unscales gradients by", lo=1e-30)
    n: int = option(10007, "reference vector length", lo=1, hi=1 << 26)
    steps: int = option(5, "reference optimizer steps", lo=1, hi=1000)
    chunk: int = option(4096, "elements per on-chip chunk (a multiple of 16, 16..16384)", lo=16, hi=16384)
    dataflow: bool = option(False, "the DATAFLOW variant (read, compute and write chunks overlap)")
    seed: int = option(0, "seed of the reference parameters and gradients", lo=0, hi=2**31 - 1)
    memory: str = option("DDR", "link.cfg memory: DDR[0] or one HBM channel per buffer", choices=("DDR", "HBM"))
    platform: str = option("xilinx_u2_gen3x4_xdma_gc_2_202110_1", "Vitis platform of the Makefile (SmartSSD)")

    def __post_init__(self) -> None:
        self.check_fields()
        if not math.isfinite(self.loss_scale) or not math.isfinite(self.topk):
            raise OptionError(self.OWNER, "loss_scale", self.loss_scale, "must be finite")
        if self.n * self.steps > 1 << 27:
            raise OptionError(self.OWNER, "n", self.n,
                              f"with steps={self.steps}: the reference gradients would take "
                              f"{self.n * self.steps * 4 >> 20} MiB; keep n*steps <= 2**27")
        self.hls()  # chunk, memory

    def hls(self, fault: str | None = None):
        """The HLS emitter's options (``fault``: tests only, `hwforge.testing.faults`)."""
        from hwforge.fpga.hls import HlsOptions

        try:
            return HlsOptions(chunk=self.chunk, dataflow=self.dataflow, fault=fault or "none",
                              platform=self.platform, memory=self.memory)
        except ConfigError as e:
            raise ConfigError(f"smartupdate: {e}") from None


@dataclass
class SmartUpdateCompileReport(CompileReport):
    """The kernel's interface and traffic per step; ``streams`` has one row per m_axi stream."""

    kernel: str = ""
    optimizer: dict[str, Any] = field(default_factory=dict)
    state_names: list[str] = field(default_factory=list)
    scalars: list[str] = field(default_factory=list)
    n: int = 0
    steps: int = 0
    topk_k: int = 0
    beats_per_step: int = 0
    ii: int = 1
    beat_cycles_per_step_estimate: int = 0
    bytes_read_per_step: int = 0
    bytes_written_per_step: int = 0
    streams: list[dict[str, Any]] = field(default_factory=list)
    ir_nodes: int = 0

    TABLES: ClassVar[tuple[str, ...]] = ("streams",)


@dataclass
class SmartUpdateVerifyResult(VerifyResult):
    """C simulation of every step: bit-exact against the IR, within tolerance against torch.optim."""

    mismatches_vs_ir: int = 0
    tolerance: dict[str, float] = field(default_factory=dict)
    tensors: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    steps: int = 0
    library: str = ""
    compile_seconds: float = 0.0
    note: str = ""

    SUMMARY: ClassVar[tuple[str, ...]] = ("mismatches_vs_ir", "n", "steps", "compile_seconds")


def load_optimizer(spec: str) -> tuple[str, Any, str]:
    """(name, torch optimizer, source hash) for a zoo optimizer name or ``path/file.py:function``."""
    import torch

    from hwforge.compiler.frontend import call_user_file
    from hwforge.zoo import get_optimizer, optimizer_names

    if spec in optimizer_names():
        _, opt = get_optimizer(spec)
        return spec, opt, hashlib.sha256(f"zoo-optimizer:{spec}".encode()).hexdigest()
    path_part, _, func = spec.rpartition(":")
    if not (path_part.endswith(".py") and func):
        raise ConfigError(f"unknown optimizer '{spec}': not a zoo optimizer ({', '.join(optimizer_names())}) "
                          "and not path/to/file.py:function")
    result, digest = call_user_file(Path(path_part), func, "optimizer")
    if (not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[0], torch.nn.Module)
            or not isinstance(result[1], torch.optim.Optimizer)):
        raise ConfigError(f"{path_part}:{func}() must return (torch.nn.Module, torch.optim.Optimizer), "
                          f"got {type(result).__name__}")
    model, opt = result
    params = {id(p) for p in model.parameters()}
    if not all(id(p) in params for group in opt.param_groups for p in group["params"]):
        raise ConfigError(f"{path_part}:{func}(): the optimizer must be over the model's parameters")
    return Path(path_part).stem, opt, digest


class SmartUpdateTarget(Target):
    name = "smartupdate"
    description = "Smart-Infinity near-storage optimizer updaters (Vitis HLS C++)"
    hardware = "Vitis HLS C++ kernel (m_axi 512-bit streams, II=1) + XRT host code with P2P buffers + v++ config"
    verified_by = "g++ C-simulation vs the IR (bit-exact) and torch.optim"
    build_message = "building {artifact} with Vitis v++ (make xclbin; a Vitis platform name as --board overrides)"

    options_type = SmartUpdateOptions

    def passes(self, options: SmartUpdateOptions) -> list[Pass]:
        return []

    def load_own(self, spec: str, options: SmartUpdateOptions) -> OwnModel:
        from hwforge.fpga.hls.csim import make_inputs, torch_reference
        from hwforge.ir.optim_lowering import lower_optimizer
        from hwforge.ir.optim_spec import OptimizerSpec, topk_count

        name, opt, digest = load_optimizer(spec)
        ospec = OptimizerSpec.from_torch(opt, grad_format=options.grad, half_copy=options.half_copy)
        n = options.n
        k = topk_count(n, options.topk) if ospec.topk else None
        inputs = make_inputs(ospec, n, options.steps, options.seed, options.topk, options.loss_scale)
        graph = lower_optimizer(ospec, n, k)
        expected = torch_reference(ospec, inputs)
        return OwnModel(name, hashlib.sha256((digest + ospec.to_json()).encode()).hexdigest(), graph, inputs,
                        expected, payload=ospec, manifest={"optimizer": json.loads(ospec.to_json())})

    def emit(self, graph, model, options: SmartUpdateOptions, writer, inputs) -> SmartUpdateCompileReport:
        from hwforge.fpga.hls import kernel_model, render

        spec = model.payload
        hls = options.hls(faults.active("smartupdate"))
        for path, text in render(graph, spec, hls).items():
            writer.add_text(path, text)
        writer.add_text(SPEC_FILE, spec.to_json() + "\n")
        km = kernel_model(graph, hls)
        n = options.n
        k = int(inputs["grad_indices"].shape[1]) if spec.topk else 0
        bytes_of = {"f32x16": 4, "f16x16": 2, "int": 4, "float": 4, "fp16_t": 2}
        streams = [{"node": p.arg, "bundle": p.bundle, "direction": "write" if not p.const else "read",
                    "element_bytes": bytes_of[p.ctype], "elements": n if p.wide else k,
                    "bytes_per_step": bytes_of[p.ctype] * ((n + 15) // 16 * 16 if p.wide else k)}
                   for p in km.ports]
        beats = (n + 15) // 16
        return SmartUpdateCompileReport(
            target=self.name, config=options.to_dict(), kernel=km.name, optimizer=json.loads(spec.to_json()),
            state_names=list(spec.state_names), scalars=list(km.scalars), n=n, steps=options.steps, topk_k=k,
            beats_per_step=beats, ii=1, beat_cycles_per_step_estimate=beats * (1 if hls.dataflow else 3) + k,
            bytes_read_per_step=sum(s["bytes_per_step"] for s in streams if s["direction"] == "read"),
            bytes_written_per_step=sum(s["bytes_per_step"] for s in streams if s["direction"] == "write"),
            streams=streams, ir_nodes=len(graph))

    # ------------------------------------------------------------------------------------- verify / run
    def _updater(self, artifact_dir: Path, manifest: dict[str, Any]):
        from hwforge.fpga.hls.native import NativeUpdater
        from hwforge.ir.optim_spec import OptimizerSpec

        spec = OptimizerSpec.from_json((artifact_dir / SPEC_FILE).read_text())
        name = f"{spec.kind}_update"
        header = (artifact_dir / "hls" / f"{name}.h").read_text()
        source = (artifact_dir / "hls" / f"{name}.cpp").read_text()
        fault = manifest.get("test_faults", {}).get("smartupdate")
        return NativeUpdater.from_source(spec, name, header, source, self.options_from_manifest(manifest).hls(fault))

    def _inputs(self, artifact_dir: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
        return {name: load_npy(artifact_dir / "inputs" / f"{name}.npy") for name in manifest["inputs"]}

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> SmartUpdateVerifyResult:
        from hwforge.fpga.hls.csim import compare, run_ir, run_kernel
        from hwforge.ir import load_graph

        start = time.monotonic()
        updater = self._updater(artifact_dir, manifest)
        build_s = time.monotonic() - start
        inputs = self._inputs(artifact_dir, manifest)
        kernel = run_kernel(updater, inputs)
        ir = run_ir(load_graph(artifact_dir), updater.spec, inputs)
        expected = {name: load_npy(artifact_dir / "expected" / f"{name}.npy") for name in manifest["outputs"]}
        result = compare(kernel, ir, expected)
        outputs = {name: {k: t[k] for k in ("max_abs_error", "max_rel_error", "mismatches_vs_ir",
                                            "mismatches_vs_torch")} for name, t in result["tensors"].items()}
        return SmartUpdateVerifyResult(
            target=self.name, passed=result["passed"], mismatches=result["mismatches"], seed=seed, outputs=outputs,
            mismatches_vs_ir=result["mismatches"], tolerance=result["tolerance"], tensors=result["tensors"],
            n=int(inputs["param"].shape[0]), steps=self.options_from_manifest(manifest).steps,
            library=str(updater.library_path), compile_seconds=round(build_s, 2),
            note="inputs are fixed at compile time (--set seed=...); --seed does not change them")

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, Any],
            seed: int = 0) -> dict[str, Any]:
        """Run new inputs (same keys as the artifact's ``inputs/``) through the C-simulated kernel."""
        from hwforge.fpga.hls.csim import run_kernel

        return run_kernel(self._updater(artifact_dir, manifest), inputs)

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str,
              clock_mhz: float | None = None) -> dict[str, Any]:
        if clock_mhz is not None:
            raise ConfigError(f"--clock-mhz applies to RTL targets built through the open flow, not {self.name}")
        from hwforge.toolchain import which

        makefile = Path(artifact_dir) / "Makefile"
        if which("v++") is None:
            raise MissingToolError(f"Vitis `v++` is needed to build the xclbin and is not on PATH (source Vitis' "
                                   f"settings64.sh); the generated build files are in {makefile} "
                                   f"(`make -C {artifact_dir} xclbin PLATFORM=<your platform>`)")
        platform = self.options_from_manifest(manifest).platform if board in ("ulx3s-85f", "icebreaker") else board
        start = time.monotonic()
        proc = subprocess.run(["make", "-C", str(artifact_dir), "xclbin", f"PLATFORM={platform}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingToolError(f"v++ build failed (make -C {artifact_dir} xclbin): {tail}")
        kernel = f"{json.loads((artifact_dir / SPEC_FILE).read_text())['kind']}_update"
        return {"platform": platform, "xclbin": str(Path(artifact_dir) / "build" / f"{kernel}.hw.xclbin"),
                "build_seconds": round(time.monotonic() - start, 1)}


register_target(SmartUpdateTarget())
