"""`hwforge report`: gather what compile, verify and build recorded about an artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from hwforge.compiler.artifact import read_manifest
from hwforge.errors import ConfigError
from hwforge.tables import metrics_table, records_table


def collect_report(artifact: Path, plot: Path | None = None) -> dict[str, Any]:
    manifest = read_manifest(artifact, check_hashes=False)
    reports: dict[str, Any] = {}
    for path in sorted((artifact / "reports").glob("*.json")):
        try:
            reports[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: malformed report ({exc})") from None
    result = {"artifact": str(artifact), "target": manifest["target"], "model": manifest.get("model"),
              "options": manifest["options"], "reports": reports}
    if plot is not None:
        result["plot"] = str(_plot_layers(reports, plot))
    return result


def _plot_layers(reports: dict[str, Any], plot: Path) -> Path:
    """A PNG of cycles per layer: measured ones if a verify report has them, else the predicted compute cycles."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib; install it with `pip install matplotlib`") from None
    measured = [layer for layer in reports.get("verify", {}).get("layers", []) if "cycles" in layer]
    predicted = [layer for layer in reports.get("compile", {}).get("layers", []) if "compute_cycles_expected" in layer]
    if measured:
        layers, key, label = measured, "cycles", "cycles measured on Verilator"
    elif predicted:
        layers, key, label = predicted, "compute_cycles_expected", "array compute cycles (fold formula)"
    else:
        raise ConfigError("--plot: no per-layer cycles recorded yet; run `hwforge verify` first")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([layer["node"] for layer in layers], [layer[key] for layer in layers], label=label)
    ax.set_ylabel("cycles")
    ax.set_title("cycles per layer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plot, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return plot


def render_report(r: dict[str, Any], out: Console) -> None:
    out.print(f"artifact {r['artifact']}: target {r['target']}, model {r['model']}")
    reports = r["reports"]
    layers = reports.get("compile", {}).get("layers", [])
    if layers:
        out.print(records_table("layers", layers))
    for name in ("verify", "build"):
        if name in reports:
            out.print(metrics_table(name, reports[name]))
        else:
            out.print(f"no {name} report yet (run `hwforge {name} {r['artifact']}`)")
