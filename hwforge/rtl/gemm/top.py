"""`GemmAccelerator`: the gemm target's top-level component (contract in docs/CONTRACTS.md).

Ports: ``start`` (pulse), ``done`` (high from completion until the next start), ``mem`` (the shared memory
port), and performance counters that are zeroed on ``start`` and frozen at ``done``:

- ``cycles``: clock cycles from start to done.
- ``bytes_read`` / ``bytes_written`` / ``busy_cycles`` / ``stall_cycles``: from `CountingMemPort`.
- ``compute_cycles``: cycles in which the array streams (see `hwforge.rtl.gemm.cycles`).
- ``folds``: array passes performed.

``GemmAccelerator(cfg, classes=True)`` also counts bytes per traffic class (`TRAFFIC_CLASSES`:
``bytes_features``, ``bytes_weights``, ``bytes_outputs``, ``bytes_control``; `CLASS_COUNTERS`). The `snf`
target's combination engine uses it so its verify report splits traffic like the aggregation engines do.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.core import TRAFFIC_CLASSES, GemmCore, check_fault
from hwforge.rtl.lib.memcount import CountingMemPort
from hwforge.rtl.lib.memport import MemPortSignature

COUNTERS = ("cycles", "bytes_read", "bytes_written", "busy_cycles", "stall_cycles", "compute_cycles", "folds")
CLASS_COUNTERS = tuple(f"bytes_{c}" for c in TRAFFIC_CLASSES)


def counters(classes: bool = False) -> tuple[str, ...]:
    """Counter outputs of ``GemmAccelerator(cfg, classes=classes)``, in port order."""
    return COUNTERS + CLASS_COUNTERS if classes else COUNTERS


class GemmAccelerator(wiring.Component):
    """Systolic GEMM accelerator running a multi-layer quantised network from a program in memory."""

    def __init__(self, cfg: GemmConfig, fault: str | None = None, classes: bool = False):
        self.cfg = cfg
        self.fault = fault
        self.classes = classes
        check_fault(fault)
        super().__init__({
            "start": In(1), "done": Out(1),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            **{name: Out(unsigned(32)) for name in counters(classes)},
            # with classes, the class of the request on ``mem`` too, so a system that shares one port between
            # this accelerator and others can count its traffic by class (the snf system does)
            **({"req_class": Out(range(len(TRAFFIC_CLASSES)))} if classes else {}),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.core = core = GemmCore(self.cfg, self.fault, self.classes)
        m.submodules.port = port = CountingMemPort(32, self.cfg.bus_width,
                                                   classes=TRAFFIC_CLASSES if self.classes else ())
        wiring.connect(m, core.mem, port.up)
        wiring.connect(m, port.down, wiring.flipped(self.mem))
        m.d.comb += [core.start.eq(self.start), self.done.eq(core.done),
                     port.clear.eq(self.start & ~core.busy), port.enable.eq(core.busy),
                     self.bytes_read.eq(port.bytes_read), self.bytes_written.eq(port.bytes_written),
                     self.busy_cycles.eq(port.busy_cycles), self.stall_cycles.eq(port.stall_cycles),
                     self.compute_cycles.eq(core.compute_cycles), self.folds.eq(core.folds)]
        if self.classes:
            m.d.comb += [port.req_class.eq(core.req_class), self.req_class.eq(core.req_class)]
            for i, name in enumerate(CLASS_COUNTERS):
                m.d.comb += getattr(self, name).eq(port.class_bytes[i])
        with m.If(self.start & ~core.busy):
            m.d.sync += self.cycles.eq(0)
        with m.Elif(core.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m
