"""`hwforge compile`: model -> passes -> target emitter -> artifact directory.

The driver owns what every target shares: option parsing, choosing reference inputs, running the pass
pipeline, writing the IR, inputs and PyTorch reference outputs, and the manifest. Targets only add their own
files. A target whose input is not a network (``smartupdate``: an optimizer) loads it itself through the
`Target.load_own` hook and supplies its graph, reference inputs and expected outputs (`_compile_own`).
Nothing time-dependent (pass timings, paths) goes into the artifact, so compiles are byte-identical.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwforge.compiler.artifact import ArtifactWriter
from hwforge.compiler.passes import Calibration
from hwforge.compiler.results import CompileReport
from hwforge.compiler.targets import get_target
from hwforge.errors import ConfigError
from hwforge.options import OptionError, Options, option
from hwforge.testing import faults
from hwforge.toolchain import artifact_versions


@dataclass(frozen=True)
class CompileOptions(Options):
    """Options every target takes (``--set samples=...``), besides the target's own."""

    OWNER: ClassVar[str] = "compile"
    LOWER_CASE: ClassVar[tuple[str, ...]] = ("samples",)

    samples: str = option("examples", "reference inputs: 'examples' (the model's example inputs), a count N (the "
                                      "first N of its test split) or 'all' (the whole test split)")

    def __post_init__(self) -> None:
        self.check_fields()
        if self.samples not in ("examples", "all") and not (self.samples.isdigit() and int(self.samples) >= 1):
            raise OptionError(self.OWNER, "samples", self.samples, "expected 'examples', 'all' or a positive count")


def parse_sets(sets: list[str]) -> dict[str, str]:
    """``["rows=4", "cols=4"]`` -> dict; a malformed or repeated item is a ConfigError naming it."""
    out: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"--set {item!r}: expected key=value")
        if key in out:
            raise ConfigError(f"--set {key}: given twice")
        out[key] = value
    return out


def _select_inputs(model: Any, samples: str) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    if samples == "examples":
        return dict(model.example_inputs), None
    if model.test_set is None:
        raise ConfigError(f"--set samples={samples}: model {model.name!r} has no test split")
    x, y = model.test_set
    count = len(x) if samples == "all" else int(samples)
    if not 1 <= count <= len(x):
        raise ConfigError(f"--set samples={samples}: must be between 1 and {len(x)}")
    if len(model.example_inputs) != 1:
        raise ConfigError("--set samples: only single-input models take samples from a test split")
    (name,) = model.example_inputs
    return {name: np.ascontiguousarray(x[:count])}, np.asarray(y[:count], dtype=np.int64)


def _graph_for_inputs(model: Any, inputs: dict[str, np.ndarray]) -> Any:
    """The float graph traced at the shapes of ``inputs`` (IR types carry the traced batch size)."""
    from hwforge.compiler import from_torch

    if all(model.example_inputs[k].shape == v.shape for k, v in inputs.items()):
        return model.graph
    if model.module is None:
        raise ConfigError(f"model {model.name!r} was exported at a fixed batch; --set samples cannot change it")
    args = tuple(inputs[name] for name in model.example_inputs)
    return from_torch(model.module, args, model.name)


@dataclass
class CompileResult:
    artifact: Path
    target: str
    report: CompileReport
    pass_timings: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``hwforge compile --json`` (pass timings are wall-clock, so they stay out of the artifact)."""
        return {"ok": True, "artifact": str(self.artifact), "target": self.target, "report": self.report.to_dict(),
                "pass_seconds": {name: round(sec, 4) for name, sec in self.pass_timings}}


def split_sets(target: Any, sets: list[str]) -> tuple[Any, CompileOptions]:
    """``--set`` items -> (the target's typed options, the general `CompileOptions`)."""
    raw = parse_sets(sets)
    general_keys = {row["name"] for row in CompileOptions.describe()}
    general = CompileOptions.from_sets({k: raw.pop(k) for k in list(raw) if k in general_keys})
    return target.parse_options(raw), general


def _manifest_extras(general: CompileOptions) -> dict[str, Any]:
    """Manifest fields besides the target's options: general options, and any test-only fault (so `verify`
    regenerates the same deliberately broken variant)."""
    extras: dict[str, Any] = {"compile_options": general.to_dict(), "toolchain": artifact_versions()}
    selected = faults.selected()
    if selected:
        extras["test_faults"] = selected
    return extras


def compile_model(spec: str, target_name: str, out_dir: Path, sets: list[str],
                  dump_ir: Path | None = None) -> CompileResult:
    from hwforge.compiler import load_model, run_pipeline
    from hwforge.ir import interpret, save_graph

    target = get_target(target_name)
    options, general = split_sets(target, sets)
    own = target.load_own(spec, options)
    if own is not None:
        return _compile_own(target, own, options, general, out_dir)
    model = load_model(spec)
    inputs, labels = _select_inputs(model, general.samples)
    graph = _graph_for_inputs(model, inputs)

    result = run_pipeline(graph, target.passes(options), Calibration(dict(model.calibration)), dump_dir=dump_ir)

    writer = ArtifactWriter(out_dir, target.name)
    with tempfile.TemporaryDirectory() as tmp:
        save_graph(result.graph, Path(tmp))
        writer.add_tree("", Path(tmp))  # ir.json + weights/*.npy
    for name, value in sorted(inputs.items()):
        writer.add_npy(f"inputs/{name}.npy", value)
    if labels is not None:
        writer.add_npy("inputs/labels.npy", labels)
    float_out = interpret(graph, inputs)
    for name, value in sorted(float_out.items()):
        writer.add_npy(f"expected/{name}.npy", value.detach().numpy().astype(np.float32))

    report = target.emit(result.graph, model, options, writer, inputs)
    report.passes = list(result.passes)
    writer.add_json("reports/compile.json", report.to_dict())
    writer.commit({
        "model": model.name,
        "source_sha256": model.source_hash,
        "options": options.to_dict(),
        "passes": list(result.passes),
        "inputs": sorted(inputs),
        "outputs": sorted(float_out),
        **_manifest_extras(general),
    })
    return CompileResult(Path(out_dir), target.name, report, list(result.timings))


def _compile_own(target: Any, own: Any, options: Any, general: CompileOptions, out_dir: Path) -> CompileResult:
    """Compile an `OwnModel` (a target's own kind of input, e.g. an optimizer): no frontend, no passes, the
    target's reference outputs; the artifact layout and manifest are the same as for models."""
    from hwforge.ir import save_graph

    if general != CompileOptions():
        raise ConfigError(f"--set samples: not an option of target {target.name!r} (its MODEL is not a network)")
    own.graph.verify()
    writer = ArtifactWriter(out_dir, target.name)
    with tempfile.TemporaryDirectory() as tmp:
        save_graph(own.graph, Path(tmp))
        writer.add_tree("", Path(tmp))
    for name, value in sorted(own.inputs.items()):
        writer.add_npy(f"inputs/{name}.npy", value)
    for name, value in sorted(own.expected.items()):
        writer.add_npy(f"expected/{name}.npy", value)
    report = target.emit(own.graph, own, options, writer, own.inputs)
    writer.add_json("reports/compile.json", report.to_dict())
    writer.commit({"model": own.name, "source_sha256": own.source_hash, "options": options.to_dict(), "passes": [],
                   "inputs": sorted(own.inputs), "outputs": sorted(own.expected), **_manifest_extras(general),
                   **own.manifest})
    return CompileResult(Path(out_dir), target.name, report, [])
