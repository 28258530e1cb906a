"""Read what Yosys and nextpnr say about a build: resources used and the clock rate reached.

Where the numbers come from (checked on the YoWASP builds of nextpnr 0.11 and Yosys 0.70):
- nextpnr writes `--report top.report.json` when `hwforge.fpga.bitstream` asks it to: ``utilization``
  (``{bel type: {used, available}}``) and ``fmax`` (``{clock net: {achieved, constraint}}``, post-route).
  This is the preferred source: structured, and nothing to misread.
- Amaranth's build script always passes ``--log top.tim``: the same numbers as text, in a "Device utilisation"
  table (``Info: <TAB> TRELLIS_COMB:   461/ 83640   0%``) and "Max frequency for clock 'X': F MHz (PASS at
  T MHz)" lines, printed once after placement and again after routing (the last one counts). Used when the
  JSON report is absent, e.g. a build directory made by another tool or with the options overridden.
- iCE40 logic cells (ICESTORM_LC) pair a LUT with a flip-flop, so nextpnr has no flip-flop count there; it
  comes from Yosys' cell statistics in ``top.rpt`` (the ``SB_DFF*`` cells).
The resulting dict holds no times or absolute paths, so it can go into an artifact byte-identically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hwforge.errors import HwforgeError

REPORT_JSON = "top.report.json"
LOG = "top.tim"
YOSYS_LOG = "top.rpt"

#: Which nextpnr bel types count as LUTs, flip-flops, DSPs and block RAMs, per FPGA family.
#: `None` for flip-flops means "count Yosys' flip-flop cells instead" (see the module docstring).
FAMILY_CELLS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "ecp5": {"luts": ("TRELLIS_COMB",), "ffs": ("TRELLIS_FF",), "dsps": ("MULT18X18D",),
             "brams": ("DP16KD",)},
    "ice40": {"luts": ("ICESTORM_LC",), "ffs": None, "dsps": ("ICESTORM_DSP",), "brams": ("ICESTORM_RAM",)},
}

_UTIL_LINE = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")
_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz\s+\((?:PASS|FAIL) at ([0-9.]+) MHz\)")
_YOSYS_CELL = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")


class ReportError(HwforgeError):
    """A build directory holds neither nextpnr's JSON report nor its log, or they cannot be read."""


def _clock_name(net: str) -> str:
    """`$glbnet$cd_sync.clk` (ECP5 global net) and `cd_sync.clk` (iCE40) are both the `sync` clock."""
    return net.removeprefix("$glbnet$")


def _clock_entry(achieved: float, target: float) -> dict[str, float]:
    return {"fmax_mhz": round(float(achieved), 2), "target_mhz": round(float(target), 2)}


def parse_nextpnr_json(report: dict[str, Any]) -> tuple[dict[str, list[int]], dict[str, dict[str, float]]]:
    """Utilisation ``{bel: [used, available]}`` and clocks ``{net: {fmax_mhz, target_mhz}}`` from --report."""
    try:
        util = {bel: [int(v["used"]), int(v["available"])] for bel, v in report["utilization"].items()}
        clocks = {_clock_name(net): _clock_entry(v["achieved"], v["constraint"])
                  for net, v in report.get("fmax", {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"nextpnr JSON report is not in the expected form: {exc!r}") from None
    return dict(sorted(util.items())), dict(sorted(clocks.items()))


def parse_nextpnr_log(text: str) -> tuple[dict[str, list[int]], dict[str, dict[str, float]]]:
    """The same two tables from nextpnr's text log (``top.tim``); the last figures printed win."""
    util: dict[str, list[int]] = {}
    clocks: dict[str, dict[str, float]] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Info: Device utilisation:"):
            in_table, util = True, {}
            continue
        if in_table:
            match = _UTIL_LINE.match(line)
            if match:
                util[match.group(1)] = [int(match.group(2)), int(match.group(3))]
                continue
            in_table = False
        match = _FMAX_LINE.search(line)
        if match:
            clocks[_clock_name(match.group(1))] = _clock_entry(float(match.group(2)), float(match.group(3)))
    if not util:
        raise ReportError("nextpnr log has no 'Device utilisation' table (did place-and-route finish?)")
    return dict(sorted(util.items())), dict(sorted(clocks.items()))


def parse_yosys_cells(text: str) -> dict[str, int]:
    """Cell counts from the last "Printing statistics" section of a Yosys log (``top.rpt``)."""
    start = text.rfind("Printing statistics")
    if start < 0:
        return {}
    section = text[start:]
    end = section.find("Executing", 1)
    if end > 0:
        section = section[:end]
    # The design-hierarchy summary (printed for multi-module designs) repeats the per-module counts, so
    # only the last block of counts is read.
    blocks = section.split("===")
    cells: dict[str, int] = {}
    for line in blocks[-1].splitlines():
        match = _YOSYS_CELL.match(line)
        if match and not match.group(2).startswith("$"):
            cells[match.group(2)] = int(match.group(1))
    return cells


def summarise(util: dict[str, list[int]], clocks: dict[str, dict[str, float]], *, board: str, family: str,
              device: str, bitstream: str, yosys_cells: dict[str, int] | None = None) -> dict[str, Any]:
    """The report dict: headline counts for this family, the full utilisation table and every clock."""
    if family not in FAMILY_CELLS:
        raise ReportError(f"no report mapping for FPGA family {family!r}; known: {', '.join(FAMILY_CELLS)}")
    kinds = FAMILY_CELLS[family]

    def used(bels: tuple[str, ...]) -> int:
        return sum(util.get(bel, [0, 0])[0] for bel in bels)

    ff_bels = kinds["ffs"]
    if ff_bels is not None:
        ffs: int | None = used(ff_bels)
    elif yosys_cells:
        ffs = sum(n for cell, n in yosys_cells.items() if cell.startswith("SB_DFF"))
    else:
        ffs = None
    fmax = min((c["fmax_mhz"] for c in clocks.values()), default=None)
    return {
        "board": board,
        "device": device,
        "luts": used(kinds["luts"] or ()),
        "ffs": ffs,
        "dsps": used(kinds["dsps"] or ()),
        "brams": used(kinds["brams"] or ()),
        "fmax_mhz": fmax,
        # every clock reaches the frequency it was constrained to (the board clock, or `--clock-mhz`)
        "timing_met": all(c["fmax_mhz"] >= c["target_mhz"] for c in clocks.values()) if clocks else None,
        "clocks": clocks,
        "bitstream": bitstream,
        "utilisation": util,
    }


def parse_build(build_dir: Path | str, *, board: str, family: str, device: str,
                bitstream: str) -> dict[str, Any]:
    """Report for a finished build directory: nextpnr's JSON report if present, else its log."""
    build_dir = Path(build_dir)
    json_path, log_path = build_dir / REPORT_JSON, build_dir / LOG
    if json_path.exists():
        try:
            data = json.loads(json_path.read_text())
        except json.JSONDecodeError as exc:
            raise ReportError(f"{json_path}: not valid JSON ({exc})") from None
        util, clocks = parse_nextpnr_json(data)
    elif log_path.exists():
        util, clocks = parse_nextpnr_log(log_path.read_text(errors="replace"))
    else:
        raise ReportError(f"{build_dir}: neither {REPORT_JSON} nor {LOG} found; was the build run?")
    rpt = build_dir / YOSYS_LOG
    cells = parse_yosys_cells(rpt.read_text(errors="replace")) if rpt.exists() else None
    return summarise(util, clocks, board=board, family=family, device=device, bitstream=bitstream,
                     yosys_cells=cells)
