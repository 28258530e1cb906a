"""Clocking for board builds: run the design from an ECP5 PLL at a chosen frequency instead of the board clock.

Why: a board's oscillator (25 MHz on the ULX3S) says nothing about how fast a design can run, and nextpnr
optimises placement and routing for the clock constraint it is given. `hwforge build --clock-mhz F` therefore
clocks the design's ``sync`` domain from an ``EHXPLLL`` that multiplies the board clock up to F, and constrains
that clock to F, so the report's ``PASS``/``FAIL`` is for the frequency the bitstream actually runs at.

The PLL's dividers are found by exhaustive search within the ECP5 PLL's documented ranges (input 8-400 MHz
after no division, phase-frequency detector >= 3.125 MHz, VCO 400-800 MHz, output 3.125-400 MHz, dividers
1-128), preferring the exact frequency, then the highest VCO (lower jitter). The feedback is taken from CLKOP,
so ``f_out = f_in * CLKFB_DIV / CLKI_DIV`` and ``f_vco = f_out * CLKOP_DIV``. The design is held in reset
until the PLL reports lock (released through a reset synchroniser).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from hwforge.errors import ConfigError

#: ECP5 PLL operating ranges (Hz) and divider range, from the ECP5 sysCLOCK PLL usage guide.
PFD_MIN_HZ = 3.125e6
VCO_RANGE_HZ = (400e6, 800e6)
OUT_RANGE_HZ = (3.125e6, 400e6)
IN_RANGE_HZ = (8e6, 400e6)
DIVIDERS = range(1, 129)


@dataclass(frozen=True)
class PllSetting:
    """Divider settings of one ECP5 PLL and the frequencies they give."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in_hz: float
    f_out_hz: float

    @property
    def f_vco_hz(self) -> float:
        return self.f_out_hz * self.clkop_div


def ecp5_pll_setting(f_in_hz: float, f_out_hz: float) -> PllSetting:
    """The divider setting that gives `f_out_hz` from `f_in_hz` most closely (ConfigError if none is in range)."""
    if not IN_RANGE_HZ[0] <= f_in_hz <= IN_RANGE_HZ[1]:
        raise ConfigError(f"PLL input {f_in_hz / 1e6:g} MHz is outside the ECP5 PLL's 8-400 MHz")
    if not OUT_RANGE_HZ[0] <= f_out_hz <= OUT_RANGE_HZ[1]:
        raise ConfigError(f"clock {f_out_hz / 1e6:g} MHz is outside the ECP5 PLL's output range 3.125-400 MHz")
    best: tuple[float, float] | None = None
    setting: PllSetting | None = None
    for clki_div in DIVIDERS:
        if f_in_hz / clki_div < PFD_MIN_HZ:
            break
        for clkfb_div in DIVIDERS:
            out = f_in_hz * clkfb_div / clki_div
            if out > OUT_RANGE_HZ[1]:
                break
            for clkop_div in DIVIDERS:
                vco = out * clkop_div
                if vco > VCO_RANGE_HZ[1]:
                    break
                if vco < VCO_RANGE_HZ[0]:
                    continue
                key = (abs(out - f_out_hz), -vco)
                if best is None or key < best:
                    best = key
                    setting = PllSetting(clki_div, clkfb_div, clkop_div, f_in_hz, out)
    if setting is None:
        raise ConfigError(f"no ECP5 PLL setting gives {f_out_hz / 1e6:g} MHz from {f_in_hz / 1e6:g} MHz")
    return setting


class Ecp5PllClock(Elaboratable):
    """Creates the ``sync`` domain, clocked by an ``EHXPLLL`` from ``clk_in`` and reset until the PLL locks."""

    def __init__(self, clk_in: Any, setting: PllSetting):
        self.clk_in = clk_in
        self.setting = setting

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        s = self.setting
        m.domains.sync = ClockDomain("sync")
        locked = Signal()
        clk_out = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=s.clki_div, p_CLKFB_DIV=s.clkfb_div, p_CLKOP_DIV=s.clkop_div,
            p_CLKOP_CPHASE=(s.clkop_div - 1) // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            a_FREQUENCY_PIN_CLKI=f"{s.f_in_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{s.f_out_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            i_CLKI=self.clk_in, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clk_out)
        # lock is asynchronous to the new clock: its release is synchronised (reset held two more cycles)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        if platform is not None:
            platform.add_clock_constraint(clk_out, s.f_out_hz)
        return m
