"""`GemmAccelerator`: the gemm target's top-level component (contract in docs/CONTRACTS.md).

Ports: ``start`` (pulse), ``done`` (high from completion until the next start), ``mem`` (the shared memory
port), and performance counters that are zeroed on ``start`` and frozen at ``done``:

- ``cycles``: clock cycles from start to done.
- ``bytes_read`` / ``bytes_written`` / ``busy_cycles`` / ``stall_cycles``: from `CountingMemPort`.
- ``compute_cycles``: cycles in which the array streams (see `hwforge.rtl.gemm.cycles`).
- ``folds``: array passes performed.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.core import GemmCore, check_fault
from hwforge.rtl.lib.memcount import CountingMemPort
from hwforge.rtl.lib.memport import MemPortSignature

COUNTERS = ("cycles", "bytes_read", "bytes_written", "busy_cycles", "stall_cycles", "compute_cycles", "folds")


class GemmAccelerator(wiring.Component):
    """Systolic GEMM accelerator running a multi-layer quantised network from a program in memory."""

    def __init__(self, cfg: GemmConfig, fault: str | None = None):
        self.cfg = cfg
        self.fault = fault
        check_fault(fault)
        super().__init__({
            "start": In(1), "done": Out(1),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            **{name: Out(unsigned(32)) for name in COUNTERS},
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.core = core = GemmCore(self.cfg, self.fault)
        m.submodules.port = port = CountingMemPort(32, self.cfg.bus_width)
        wiring.connect(m, core.mem, port.up)
        wiring.connect(m, port.down, wiring.flipped(self.mem))
        m.d.comb += [core.start.eq(self.start), self.done.eq(core.done),
                     port.clear.eq(self.start & ~core.busy), port.enable.eq(core.busy),
                     self.bytes_read.eq(port.bytes_read), self.bytes_written.eq(port.bytes_written),
                     self.busy_cycles.eq(port.busy_cycles), self.stall_cycles.eq(port.stall_cycles),
                     self.compute_cycles.eq(core.compute_cycles), self.folds.eq(core.folds)]
        with m.If(self.start & ~core.busy):
            m.d.sync += self.cycles.eq(0)
        with m.Elif(core.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m
