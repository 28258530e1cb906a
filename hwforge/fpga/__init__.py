"""FPGA back ends: the open bitstream flow (YoWASP Yosys/nextpnr) and reading its reports.

`OnChipMemorySoC` puts an accelerator with a memory port on a board without external memory;
`build_bitstream` turns any design with ``leds: Out(8)`` into a bitstream for one of `BOARDS` and returns a
`BuildReport` whose `to_dict()` is the deterministic resource/timing summary. `NativeUpdater` is the
smartupdate target's HLS optimizer kernel compiled with g++ and callable from Python (`hwforge.fpga.hls`).
"""

from hwforge.fpga.bitstream import BOARDS, BitstreamError, Board, BuildReport, LedTop, build_bitstream, get_board
from hwforge.fpga.hls import NativeUpdater
from hwforge.fpga.reports import ReportError, parse_build
from hwforge.fpga.soc import OnChipMemorySoC, checksum_of

__all__ = [
    "BOARDS",
    "BitstreamError",
    "Board",
    "BuildReport",
    "LedTop",
    "NativeUpdater",
    "OnChipMemorySoC",
    "ReportError",
    "build_bitstream",
    "checksum_of",
    "get_board",
    "parse_build",
]
