"""The rows x cols systolic array, wired for one dataflow at elaboration time.

Edges, with the same port names for both dataflows so the controller's feeding logic stays uniform:

- ``a_in[r]``: left edge of row r (A operands, i.e. activations).
- ``b_in[c]``: top edge of column c: B operands (OS) or weights being preloaded (WS).
- ``top_in[c]``: partial sum entering column c from the top (WS: the previous K fold's partial sum; OS: unused).
- ``out[c]``: bottom edge: the bottom PE's accumulator (OS, valid while draining) or the bottom PE's
  combinational partial sum (WS).
- ``shift``: OS drain (accumulators move down one row) / WS weight load (weights move down one row).
- ``clear``: zero all pipeline registers (and OS accumulators) before a fold.

``fault_flip_bit`` exists only to prove the verifier can fail: it inverts one bit of column 0's output.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.errors import ConfigError
from hwforge.rtl.lib.pe import OSProcessingElement, WSProcessingElement


class SystolicArray(wiring.Component):
    """A grid of `OSProcessingElement` or `WSProcessingElement` with nearest-neighbour links only."""

    def __init__(self, rows: int, cols: int, width: int, acc_width: int, dataflow: str,
                 fault_flip_bit: int | None = None):
        if dataflow not in ("os", "ws"):
            raise ConfigError(f"SystolicArray: dataflow must be 'os' or 'ws', got {dataflow!r}")
        if rows < 1 or cols < 1:
            raise ConfigError(f"SystolicArray: rows and cols must be positive, got {rows}x{cols}")
        self.rows, self.cols, self.width, self.acc_width = rows, cols, width, acc_width
        self.dataflow = dataflow
        self.fault_flip_bit = fault_flip_bit
        super().__init__({
            "a_in": In(signed(width)).array(rows),
            "b_in": In(signed(width)).array(cols),
            "top_in": In(signed(acc_width)).array(cols),
            "out": Out(signed(acc_width)).array(cols),
            "shift": In(1), "clear": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        R, C = self.rows, self.cols
        cls = OSProcessingElement if self.dataflow == "os" else WSProcessingElement
        pes = [[cls(self.width, self.acc_width) for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.clear.eq(self.clear),
                             pe.a_in.eq(self.a_in[r] if c == 0 else pes[r][c - 1].a_out)]
                if self.dataflow == "os":
                    m.d.comb += [pe.drain.eq(self.shift),
                                 pe.b_in.eq(self.b_in[c] if r == 0 else pes[r - 1][c].b_out),
                                 pe.acc_in.eq(0 if r == 0 else pes[r - 1][c].acc)]
                else:
                    m.d.comb += [pe.load_w.eq(self.shift),
                                 pe.w_in.eq(self.b_in[c] if r == 0 else pes[r - 1][c].w),
                                 pe.psum_in.eq(self.top_in[c] if r == 0 else pes[r - 1][c].psum_out)]
        for c in range(C):
            bottom = pes[R - 1][c]
            value = bottom.acc if self.dataflow == "os" else bottom.psum_next
            if c == 0 and self.fault_flip_bit is not None:
                value = value ^ (1 << self.fault_flip_bit)
            m.d.comb += self.out[c].eq(value)
        return m
