"""`hwforge demo`: the default end-to-end run a new user sees first.

Compiles the digits MLP for the `gemm` target with the whole digits test split as reference inputs, runs the
generated Verilog on Verilator under random stalls, and reports float / int8 / hardware accuracy, cycles and
bytes moved. Everything it prints comes from the verification run; nothing is precomputed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from hwforge.tables import metrics_table

DEMO_MODEL = "mlp-digits"
DEMO_SETS = ["rows=4", "cols=4", "samples=all"]


def run_demo(artifact: Path, log: Console) -> dict[str, Any]:
    from hwforge.compiler.artifact import read_manifest
    from hwforge.compiler.driver import compile_model
    from hwforge.compiler.targets import get_target

    start = time.monotonic()
    log.print(f"compiling {DEMO_MODEL} for gemm ({' '.join(DEMO_SETS)}) -> {artifact}")
    compiled = compile_model(DEMO_MODEL, "gemm", artifact, DEMO_SETS)
    compile_s = time.monotonic() - start
    log.print("verifying on Verilator (builds the model once, then reuses the build)")
    target = get_target("gemm")
    result = target.verify(artifact, read_manifest(artifact), seed=0)
    (name, output), = result.outputs.items()
    return {
        "passed": result.passed,
        "model": DEMO_MODEL,
        "artifact": str(artifact),
        "config": compiled.report.config,
        "samples": int(compiled.report.layers[0].details["m"]),
        "accuracy_float": output.accuracy_float,
        "accuracy_int8": output.accuracy_int_reference,
        "accuracy_hardware": output.accuracy_hardware,
        "mismatches": result.mismatches,
        "cycles": result.cycles,
        "predicted_cycles": result.predicted_cycles,
        "bound_cycles": result.bound_cycles,
        "compute_cycles": result.compute_cycles,
        "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written,
        "macs": compiled.report.macs,
        "compile_seconds": round(compile_s, 1),
        "total_seconds": round(time.monotonic() - start, 1),
    }


def render_demo(r: dict[str, Any], out: Console) -> None:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.2f} %"

    title = (f"hwforge demo: {r['model']} on a {r['config']['rows']}x{r['config']['cols']} "
             f"{r['config']['dataflow'].upper()} systolic array ({r['samples']} test images)")
    out.print(metrics_table(title, {
        "float accuracy (PyTorch)": pct(r["accuracy_float"]),
        "int8 accuracy (integer reference)": pct(r["accuracy_int8"]),
        "hardware accuracy (Verilator)": pct(r["accuracy_hardware"]),
        "mismatches vs integer reference": r["mismatches"],
        "cycles": f"{r['cycles']:,}",
        "cycle model's prediction": f"{r['predicted_cycles']:,} (measured / predicted "
                                    f"{r['cycles'] / max(r['predicted_cycles'], 1):.3f})",
        "roofline bound (cycles)": f"{r['bound_cycles']:,} ({r['cycles'] / max(r['bound_cycles'], 1):.1f}x)",
        "array compute cycles": f"{r['compute_cycles']:,}",
        "MACs": f"{r['macs']:,}",
        "bytes read": f"{r['bytes_read']:,}",
        "bytes written": f"{r['bytes_written']:,}",
        "wall time": f"{r['total_seconds']} s",
    }))
    out.print("[green]PASSED[/green]" if r["passed"] else "[red]FAILED[/red]")
