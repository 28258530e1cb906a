"""ECP5 PLL settings for `hwforge build --clock-mhz`: every setting within the PLL's ranges, exact where possible."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError
from hwforge.fpga.bitstream import build_bitstream
from hwforge.fpga.clocking import IN_RANGE_HZ, OUT_RANGE_HZ, PFD_MIN_HZ, VCO_RANGE_HZ, ecp5_pll_setting


def test_100_mhz_from_the_ulx3s_oscillator_is_exact() -> None:
    s = ecp5_pll_setting(25e6, 100e6)
    assert s.f_out_hz == 100e6
    assert (s.clki_div, s.clkfb_div) == (1, 4)
    assert VCO_RANGE_HZ[0] <= s.f_vco_hz <= VCO_RANGE_HZ[1]


@settings(max_examples=60, deadline=None)
@given(f_in=st.sampled_from([12e6, 25e6, 48e6, 100e6]), f_out=st.floats(10e6, 300e6))
def test_every_setting_is_within_the_pll_ranges(f_in: float, f_out: float) -> None:
    s = ecp5_pll_setting(f_in, f_out)
    assert s.f_out_hz == pytest.approx(f_in * s.clkfb_div / s.clki_div)
    assert f_in / s.clki_div >= PFD_MIN_HZ
    assert VCO_RANGE_HZ[0] <= s.f_vco_hz <= VCO_RANGE_HZ[1]
    assert OUT_RANGE_HZ[0] <= s.f_out_hz <= OUT_RANGE_HZ[1]
    assert all(1 <= d <= 128 for d in (s.clki_div, s.clkfb_div, s.clkop_div))
    # the finest grid the phase detector allows is f_in / ki_max: the setting is no further than half a step off
    ki_max = int(f_in // PFD_MIN_HZ)
    assert abs(s.f_out_hz - f_out) <= f_in / ki_max / 2 + 1


@pytest.mark.parametrize("f_in, f_out", [(25e6, 1e6), (25e6, 500e6), (1e6, 100e6), (IN_RANGE_HZ[1] * 2, 100e6)])
def test_out_of_range_frequencies_are_refused(f_in: float, f_out: float) -> None:
    with pytest.raises(ConfigError, match="MHz"):
        ecp5_pll_setting(f_in, f_out)


def test_clock_on_an_ice40_board_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="only on ECP5"):
        build_bitstream(object(), "icebreaker", tmp_path, clock_mhz=50)
    assert not any(tmp_path.iterdir())   # refused before anything was written


def test_impossible_clock_is_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(ConfigError, match="outside"):
        build_bitstream(object(), "ulx3s-85f", tmp_path / "b", clock_mhz=1000)
    assert not (tmp_path / "b").exists()
