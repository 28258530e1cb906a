"""`hwforge report --plot`: measured cycles beside the predicted bound, per layer, as one PNG.

The point of the plot is to show where the hardware waits.  For every layer it draws a group of two bars: the
cycles measured on the simulator (``reports["verify"]["layers"][i]["cycles"]``) and the predicted bound, the
roofline ``max(compute cycles, bytes moved / bus bytes per cycle)`` the target records as ``"bound_cycles"`` (in
the verify or the compile report).  Above each measured bar is the utilisation ``bound / measured``: near 100 %
the layer runs at its bound, far below it the hardware stalls on something the model does not charge for.

Inputs are the artifact's report dicts as `hwforge.compiler.report.collect_report` loads them
(``reports["compile"]`` from ``reports/compile.json``, ``reports["verify"]`` from ``reports/verify.json``), and
the plot shows what is there:

* measured cycles where a verify layer has ``"cycles"``; the predicted bound where a layer has ``"bound_cycles"``,
  else (older artifacts, targets without a memory model) ``"compute_cycles_expected"``, drawn in a different colour
  because it is a compute-only bound, without the memory term;
* a target that measures only whole-run cycles (``gemm``: ``reports["verify"]["cycles"]`` and no per-layer
  cycles) gets one "whole run" group -- the measured total against ``reports["verify"]["bound_cycles"]`` or, if
  the run has none, the sum of the layers' bounds -- followed by the per-layer bounds;
* nothing measured and nothing predicted is a `ConfigError` (one line: run ``hwforge verify`` first).

The PNG is deterministic (same reports, same bytes): a fixed figure size and dpi, matplotlib's default style
whatever the user's ``matplotlibrc`` says, no pyplot state, and no ``Software`` metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwforge.errors import ConfigError

FIGSIZE = (8.0, 4.5)
DPI = 100
LOG_SPREAD = 30.0
"""Use a log y axis when the largest bar is more than this many times the smallest (small layers stay visible)."""

WHOLE_RUN = "whole run"
ROOFLINE = "roofline"
COMPUTE_ONLY = "compute"
_BOUND_LABELS = {ROOFLINE: "predicted bound (roofline)", COMPUTE_ONLY: "predicted compute cycles (no memory term)"}
_COLOURS = {"measured": "#1f77b4", ROOFLINE: "#ff7f0e", COMPUTE_ONLY: "#ffbb78"}


@dataclass(frozen=True)
class Group:
    """One group of bars: a layer (or the whole run) with what is known of it."""

    label: str
    measured: int | None = None
    bound: int | None = None
    bound_kind: str | None = None
    """`ROOFLINE` (``bound_cycles``) or `COMPUTE_ONLY` (``compute_cycles_expected``), when ``bound`` is set."""

    @property
    def utilisation(self) -> float | None:
        """``bound / measured``: the fraction of the measured cycles the model accounts for."""
        if self.measured and self.bound is not None:
            return self.bound / self.measured
        return None


def _bound(*entries: dict[str, Any]) -> tuple[int | None, str | None]:
    """The first roofline bound among ``entries`` (verify row before compile row), else a compute-only one."""
    for key, kind in (("bound_cycles", ROOFLINE), ("compute_cycles_expected", COMPUTE_ONLY)):
        for entry in entries:
            if entry.get(key) is not None:
                return int(entry[key]), kind
    return None, None


def _layer_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in report.get("layers", []) or [] if isinstance(row, dict) and "node" in row]


def plot_groups(reports: dict[str, Any]) -> tuple[list[Group], bool]:
    """The bar groups to draw and whether any cycles were measured; `ConfigError` if there is nothing to draw."""
    verify = reports.get("verify") or {}
    verify_rows = {row["node"]: row for row in _layer_rows(verify)}
    compile_rows = {row["node"]: row for row in _layer_rows(reports.get("compile") or {})}
    nodes = list(verify_rows) + [node for node in compile_rows if node not in verify_rows]
    layers = []
    for node in nodes:
        v, c = verify_rows.get(node, {}), compile_rows.get(node, {})
        bound, kind = _bound(v, c)
        measured = v.get("cycles")
        layers.append(Group(node, None if measured is None else int(measured), bound, kind))
    per_layer_measured = any(g.measured is not None for g in layers)
    total = verify.get("cycles")
    if not per_layer_measured and total is not None:
        bounds = [g for g in layers if g.bound is not None]
        run_bound, run_kind = _bound(verify)
        if run_bound is None and bounds:
            run_bound = sum(g.bound for g in bounds)  # type: ignore[misc]  # filtered above
            run_kind = ROOFLINE if all(g.bound_kind == ROOFLINE for g in bounds) else COMPUTE_ONLY
        groups = [Group(WHOLE_RUN, int(total), run_bound, run_kind), *bounds]
    else:
        groups = [g for g in layers if g.measured is not None or g.bound is not None]
    if not groups:
        raise ConfigError("--plot: no measured or predicted cycles in the artifact's reports; "
                          "run `hwforge verify` first")
    return groups, per_layer_measured or total is not None


def _percent(fraction: float) -> str:
    """``0.8 -> "80%"``, ``0.0075 -> "0.75%"``: two significant digits below 10 %, so a stalled layer is not "1%"."""
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.2g}%"


def plot_layers(reports: dict[str, Any], path: Path) -> Path:
    """Write the PNG of measured cycles against the predicted bound to ``path`` (see the module docstring)."""
    groups, measured_any = plot_groups(reports)
    try:
        import matplotlib.style
        from matplotlib.figure import Figure
    except ImportError:  # a dependency of hwforge; only a broken environment gets here
        raise ConfigError("--plot needs matplotlib (a dependency of hwforge): `pip install matplotlib`") from None

    values = [v for g in groups for v in (g.measured, g.bound) if v]
    log = bool(values) and max(values) > LOG_SPREAD * min(values)
    width = 0.38
    with matplotlib.style.context("default"):  # the user's matplotlibrc must not change the bytes
        fig = Figure(figsize=FIGSIZE, dpi=DPI)
        ax = fig.add_subplot()
        xs = range(len(groups))
        drawn: set[str] = set()
        for x, g in zip(xs, groups, strict=True):
            if g.measured is not None:
                ax.bar(x - width / 2, g.measured, width, color=_COLOURS["measured"],
                       label=None if "measured" in drawn else "measured (simulation)")
                drawn.add("measured")
                if g.utilisation is not None:
                    ax.annotate(_percent(g.utilisation), (x - width / 2, g.measured), ha="center",
                                va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
            if g.bound is not None and g.bound_kind is not None:
                ax.bar(x + width / 2, g.bound, width, color=_COLOURS[g.bound_kind],
                       label=None if g.bound_kind in drawn else _BOUND_LABELS[g.bound_kind])
                drawn.add(g.bound_kind)
        if groups[0].label == WHOLE_RUN and len(groups) > 1:  # the total is not one of the layers beside it
            ax.axvline(0.5, color="0.6", linestyle=":", linewidth=1)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(list(xs), [g.label for g in groups], rotation=30 if len(groups) > 6 else 0,
                      ha="right" if len(groups) > 6 else "center", fontsize=8)
        ax.set_ylabel("cycles" + (" (log scale)" if log else ""))
        ax.margins(y=0.12)
        title = "cycles per layer: measured vs predicted bound (% = utilisation, bound / measured)"
        if not measured_any:
            title = "predicted cycles per layer (nothing measured yet: run `hwforge verify`)"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", metadata={"Software": None})
    return path
