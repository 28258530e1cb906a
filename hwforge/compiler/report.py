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
        from hwforge.compiler.plot import plot_layers  # matplotlib is imported only when a plot is asked for

        result["plot"] = str(plot_layers(reports, plot))
    return result


def render_report(r: dict[str, Any], out: Console) -> None:
    out.print(f"artifact {r['artifact']}: target {r['target']}, model {r['model']}")
    reports = r["reports"]
    for title, rows in compile_tables(reports.get("compile", {})):
        out.print(records_table(title, rows))
    for name in ("verify", "build"):
        if name in reports:
            out.print(metrics_table(name, reports[name]))
        else:
            out.print(f"no {name} report yet (run `hwforge {name} {r['artifact']}`)")


def compile_tables(compile_report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every per-row table of a compile report (``layers``, ``combinations``, ``streams``, ...): the list fields
    whose items are records (docs/json.md)."""
    return [(key, value) for key, value in compile_report.items()
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value)]
