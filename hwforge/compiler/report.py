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
    """A PNG of MACs and formula compute cycles per layer (matplotlib is optional)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib; install it with `pip install matplotlib`") from None
    layers = reports.get("compile", {}).get("layers", [])
    if not layers:
        raise ConfigError("--plot: the artifact's compile report has no layers to plot")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [layer["node"] for layer in layers]
    ax.bar(names, [layer["fold_cycles_formula"] for layer in layers], label="compute cycles (fold formula)")
    ax.set_ylabel("cycles")
    ax.set_title("per-layer compute cycles")
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
