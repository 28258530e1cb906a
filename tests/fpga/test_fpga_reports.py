"""Report parsing on text captured from real YoWASP builds (tests/fpga/data; the stand-in SoC, seed 1)."""

import json
import shutil
from pathlib import Path

import pytest

from hwforge.fpga.reports import (
    ReportError,
    parse_build,
    parse_nextpnr_json,
    parse_nextpnr_log,
    parse_yosys_cells,
    summarise,
)

DATA = Path(__file__).parent / "data"
ECP5 = {"board": "ulx3s-85f", "family": "ecp5", "device": "LFE5U-85F", "bitstream": "top.bit"}
ICE40 = {"board": "icebreaker", "family": "ice40", "device": "iCE40UP5K", "bitstream": "top.bin"}


def test_ecp5_log_utilisation_and_last_fmax() -> None:
    util, clocks = parse_nextpnr_log((DATA / "ecp5_top.tim").read_text())
    assert util["TRELLIS_COMB"] == [461, 83640]
    assert util["TRELLIS_FF"] == [212, 83640]
    assert util["MULT18X18D"] == [0, 156]
    assert util["DP16KD"] == [0, 208]
    assert "Total" not in " ".join(util)  # the pre-packing summary is not the device table
    # Printed after placement (112.60) and after routing (119.01): the post-route figure counts.
    assert clocks == {"cd_sync.clk": {"fmax_mhz": 119.01, "target_mhz": 25.0}}


def test_ice40_log_utilisation() -> None:
    util, clocks = parse_nextpnr_log((DATA / "ice40_top.tim").read_text())
    assert util["ICESTORM_LC"] == [730, 5280]
    assert util["ICESTORM_RAM"] == [2, 30]
    assert util["ICESTORM_DSP"] == [0, 8]
    assert util["SB_IO"] == [3, 39]
    assert clocks == {"cd_sync.clk": {"fmax_mhz": 37.93, "target_mhz": 12.0}}


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_json_report_agrees_with_log(family: str) -> None:
    from_json = parse_nextpnr_json(json.loads((DATA / f"{family}_report.json").read_text()))
    from_log = parse_nextpnr_log((DATA / f"{family}_top.tim").read_text())
    assert from_json == from_log


def test_yosys_flip_flop_cells() -> None:
    cells = parse_yosys_cells((DATA / "ice40_yosys_stat.rpt").read_text())
    assert cells["SB_DFF"] == 71 and cells["SB_DFFESR"] == 173 and cells["SB_LUT4"] == 395
    assert not any(c.startswith("$") for c in cells)
    assert parse_yosys_cells("no statistics here") == {}


def test_summary_ecp5() -> None:
    util, clocks = parse_nextpnr_log((DATA / "ecp5_top.tim").read_text())
    rep = summarise(util, clocks, **ECP5)
    assert {k: rep[k] for k in ("board", "device", "luts", "ffs", "dsps", "brams", "fmax_mhz", "bitstream")} == {
        "board": "ulx3s-85f", "device": "LFE5U-85F", "luts": 461, "ffs": 212, "dsps": 0, "brams": 0,
        "fmax_mhz": 119.01, "bitstream": "top.bit"}
    assert rep["utilisation"]["TRELLIS_RAMW"] == [16, 10455]
    assert rep["timing_met"] is True                                     # 119.01 MHz against 25 MHz
    assert summarise(util, {"clk": {"fmax_mhz": 61.9, "target_mhz": 100.0}}, **ECP5)["timing_met"] is False


def test_summary_ice40_takes_flip_flops_from_yosys() -> None:
    util, clocks = parse_nextpnr_log((DATA / "ice40_top.tim").read_text())
    cells = parse_yosys_cells((DATA / "ice40_yosys_stat.rpt").read_text())
    rep = summarise(util, clocks, yosys_cells=cells, **ICE40)
    assert (rep["luts"], rep["ffs"], rep["dsps"], rep["brams"], rep["fmax_mhz"]) == (730, 385, 0, 2, 37.93)
    assert summarise(util, clocks, **ICE40)["ffs"] is None  # unknown, not a made-up zero


def test_parse_build_prefers_json_and_falls_back_to_log(tmp_path: Path) -> None:
    shutil.copy(DATA / "ice40_top.tim", tmp_path / "top.tim")
    shutil.copy(DATA / "ice40_yosys_stat.rpt", tmp_path / "top.rpt")
    from_log = parse_build(tmp_path, **ICE40)
    shutil.copy(DATA / "ice40_report.json", tmp_path / "top.report.json")
    from_json = parse_build(tmp_path, **ICE40)
    assert from_json == from_log
    assert json.dumps(from_json, sort_keys=True)  # plain JSON-serialisable data


def test_parse_build_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="neither"):
        parse_build(tmp_path, **ECP5)
    (tmp_path / "top.tim").write_text("Info: Packing IOs..\n")
    with pytest.raises(ReportError, match="utilisation"):
        parse_build(tmp_path, **ECP5)
    (tmp_path / "top.report.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        parse_build(tmp_path, **ECP5)
    with pytest.raises(ReportError, match="expected form"):
        parse_nextpnr_json({"fmax": {}})
    with pytest.raises(ReportError, match="family"):
        summarise({}, {}, board="x", family="gowin", device="y", bitstream="top.fs")
