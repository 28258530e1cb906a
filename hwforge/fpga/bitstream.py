"""Open bitstream flow: Amaranth design -> Yosys -> nextpnr -> ecppack/icepack, all through YoWASP.

Why it is shaped like this:
- The tools are the YoWASP WebAssembly builds (pip-installable; `hwforge.toolchain`). Amaranth's build
  script finds them through environment variables (`YOSYS`, `NEXTPNR_ECP5`, ...), which
  `hwforge.toolchain.yowasp_env` supplies. We hand that environment to the build script's process only; this
  process's `os.environ` is never changed, so concurrent builds and other code are unaffected.
- We run the script Amaranth writes ourselves (`BuildPlan.extract` + `sh build_top.sh`) rather than
  `platform.build()`, so the tools' output is captured: `hwforge ... --json` must print exactly one JSON
  object on stdout, and a failed build should say what went wrong in one error, not a wall of tool output.
- Builds are reproducible: a fixed nextpnr `--seed`, no source locations in the netlist (`emit_src=False`,
  so the checkout path does not leak into it) and nothing time-dependent. Same design, same seed, same bits
  (checked for both boards, also across build directories). Caveat: Amaranth lets an `AMARANTH_nextpnr_opts`
  environment variable override the options given here; with it set, the seed and JSON report are its to set.
- nextpnr also writes a JSON report (`--report`), which `hwforge.fpga.reports` reads in preference to the
  text log.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from hwforge.errors import ConfigError, HwforgeError
from hwforge.fpga.clocking import Ecp5PllClock, ecp5_pll_setting
from hwforge.fpga.reports import LOG, REPORT_JSON, ReportError, parse_build, parse_nextpnr_log
from hwforge.toolchain import yowasp_env

#: Name Amaranth gives every generated file (top.il, top.tim, top.bit, build_top.sh, ...).
NAME = "top"
#: Where the tools' console output goes when a build fails (on success it is not kept: nothing to read).
BUILD_LOG = "build.log"


class BitstreamError(HwforgeError):
    """Synthesis, place-and-route or packing failed (e.g. the design does not fit); the message says where."""


@dataclass(frozen=True)
class Board:
    """A board the open flow can target: its Amaranth platform and what its bitstream file is called."""

    name: str
    family: str  # "ecp5" or "ice40": selects the YoWASP tools and how reports are read
    device: str
    bitstream: str
    platform: Callable[[], Any] = field(repr=False, compare=False)
    #: Extra Yosys synth_* options. The iCE40UP5K's eight DSPs are only used with `-dsp`; without it every
    #: multiplier becomes logic cells and a MAC array overflows the device.
    synth_opts: str = ""


def _ulx3s_85f() -> Any:
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()


def _icebreaker() -> Any:
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    return ICEBreakerPlatform()


BOARDS: dict[str, Board] = {
    "ulx3s-85f": Board("ulx3s-85f", "ecp5", "LFE5U-85F", f"{NAME}.bit", _ulx3s_85f),
    "icebreaker": Board("icebreaker", "ice40", "iCE40UP5K", f"{NAME}.bin", _icebreaker, "-dsp"),
}


def get_board(name: str) -> Board:
    """The board called `name`, or a ConfigError that lists the boards there are."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ConfigError(f"unknown board {name!r}; boards: {', '.join(sorted(BOARDS))}") from None


@dataclass
class BuildReport:
    """What a build produced: where, how long it took, and the parsed resource/timing report.

    `report` is the deterministic part (see `hwforge.fpga.reports.parse_build`); `seconds` is kept out of
    it so that a report written into an artifact is byte-identical between runs.
    """

    board: str
    build_dir: Path
    bitstream: Path
    seconds: float
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.report)


class LedTop(Elaboratable):
    """Board top: the design's eight `leds` bits drive however many LEDs the board has.

    If the board has fewer than eight, the remaining bits are XOR-ed onto the last LED so that no part of the
    design becomes unobservable (and thus removable) on a small board.
    """

    def __init__(self, design: Elaboratable, clock_hz: float | None = None):
        self.design = design
        self.clock_hz = clock_hz

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.design = self.design
        if self.clock_hz is not None and platform is not None:
            # the board oscillator feeds a PLL that clocks the design (hwforge.fpga.clocking)
            setting = ecp5_pll_setting(platform.default_clk_frequency, self.clock_hz)
            m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            m.submodules.clocking = Ecp5PllClock(clk_in.i, setting)
        bits = self.design.leds
        pins = []
        if platform is not None:
            for i in range(len(bits)):
                try:
                    port = platform.request("led", i, dir="-")
                except ResourceError:
                    break
                m.submodules[f"led_{i}"] = buf = io.Buffer("o", port)  # applies the board's inversion
                pins.append(buf)
        if not pins:
            raise ConfigError("the board has no LEDs to connect the design's `leds` to")
        for i, pin in enumerate(pins[:-1]):
            m.d.comb += pin.o.eq(bits[i])
        last = len(pins) - 1
        m.d.comb += pins[-1].o.eq(bits[last:].xor())
        return m


def _failure_summary(build_dir: Path, output: str) -> str:
    """One line saying why a build failed: the resources that overflow, else the last tool ERROR line."""
    log = build_dir / LOG
    if log.exists():
        try:
            util, _ = parse_nextpnr_log(log.read_text(errors="replace"))
        except ReportError:
            util = {}
        over = [f"{bel} {used}/{avail}" for bel, (used, avail) in util.items() if used > avail]
        if over:
            return f"the design does not fit the device ({', '.join(over)} used/available)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return errors[-1] if errors else (lines[-1] if lines else "the tools printed nothing")


def build_bitstream(design: Elaboratable, board: str, build_dir: Path | str, *, seed: int = 1,
                    synth_opts: str | None = None, clock_mhz: float | None = None,
                    timeout: float | None = 3600) -> BuildReport:
    """Synthesise, place, route and pack `design` (an Elaboratable with ``leds: Out(8)``) for `board`.

    `synth_opts` replaces the board's default Yosys synth options (e.g. ``""`` to keep multipliers out of
    the iCE40 DSPs when a design has more multipliers than the eight DSPs). `clock_mhz` clocks the design from a
    PLL at that frequency and constrains place-and-route to it (ECP5 boards; see `hwforge.fpga.clocking`);
    without it the design runs from the board's oscillator.

    Raises ConfigError for an unknown board, MissingToolError when a YoWASP tool is absent (before any work),
    and BitstreamError with the tail of the tool output when a tool fails.
    """
    spec = get_board(board)
    if clock_mhz is not None and spec.family != "ecp5":
        raise ConfigError(f"--clock-mhz needs a PLL this flow drives only on ECP5 boards, not {board}")
    clock_hz = None if clock_mhz is None else clock_mhz * 1e6
    if clock_hz is not None:
        ecp5_pll_setting(spec.platform().default_clk_frequency, clock_hz)   # refuse before any work
    if not hasattr(design, "leds") or len(design.leds) < 1:
        raise ConfigError(f"{type(design).__name__} has no `leds` output to connect to the board")
    tool_env = yowasp_env(spec.family)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    # Stale products from an earlier build must never be mistaken for this one's.
    for stale in (spec.bitstream, LOG, f"{NAME}.rpt", REPORT_JSON, BUILD_LOG):
        (build_dir / stale).unlink(missing_ok=True)

    platform = spec.platform()
    # With a PLL clock the constraint is the point: a design that misses it still gets its bitstream and a report
    # that says by how much (the report's clock entry holds achieved and target), rather than no report at all.
    allow_fail = " --timing-allow-fail" if clock_hz is not None else ""
    overrides = {"nextpnr_opts": f"--seed {int(seed)} --report {REPORT_JSON}{allow_fail}"}
    synth = spec.synth_opts if synth_opts is None else synth_opts
    if synth:
        overrides["synth_opts"] = synth
    plan = platform.prepare(LedTop(design, clock_hz), name=NAME, emit_src=False, **overrides)
    plan.extract(build_dir)
    env = {**os.environ, **tool_env}
    start = time.monotonic()
    try:
        proc = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BitstreamError(f"bitstream build for {board} timed out after {timeout} s in {build_dir}") from None
    seconds = time.monotonic() - start
    bitfile = build_dir / spec.bitstream
    if proc.returncode != 0 or not bitfile.exists():
        output = proc.stdout + proc.stderr
        (build_dir / BUILD_LOG).write_text(output)
        raise BitstreamError(f"bitstream build for {board} failed: {_failure_summary(build_dir, output)} "
                             f"(logs: {build_dir}/{BUILD_LOG}, {NAME}.rpt, {NAME}.tim)")
    report = parse_build(build_dir, board=spec.name, family=spec.family, device=spec.device,
                         bitstream=spec.bitstream)
    report["seed"] = int(seed)
    return BuildReport(board=spec.name, build_dir=build_dir, bitstream=bitfile, seconds=seconds, report=report)
