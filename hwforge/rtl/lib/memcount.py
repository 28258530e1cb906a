"""A memory port pass-through that counts traffic, for every accelerator's performance report.

It sits between an initiator and the memory, changes nothing about the transfers, and counts while
``enable`` is high (``clear`` zeroes the counters, e.g. on ``start``):

- ``bytes_read`` / ``bytes_written``: accepted read / write requests times ``data_width // 8``.
- ``busy_cycles``: cycles with a request offered or a read outstanding (the port is in use).
- ``stall_cycles``: busy cycles in which neither a request nor a response was transferred (waiting on memory
  latency or back-pressure).

Reads may be pipelined by the initiator; outstanding reads are tracked with a counter, since responses come
back in request order.

Optionally (``classes=("topology", "features", ...)``) the port also splits the byte count by traffic class:
the initiator drives ``req_class`` (index into ``classes``) beside each request, and ``class_bytes[i]`` counts
read plus written bytes of class ``i``. Without ``classes`` the component (and its Verilog) is unchanged.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.rtl.lib.memport import MemPortSignature


class CountingMemPort(wiring.Component):
    """``up`` (from the initiator) is forwarded to ``down`` (to memory); traffic counters on the side."""

    def __init__(self, addr_width: int = 32, data_width: int = 32, counter_width: int = 32,
                 max_outstanding: int = 256, classes: tuple[str, ...] = ()):
        self.classes = tuple(classes)
        self.addr_width = addr_width
        self.data_width = data_width
        self.max_outstanding = max_outstanding
        sig = MemPortSignature(addr_width, data_width)
        extra = {}
        if self.classes:
            extra = {"req_class": In(range(max(2, len(self.classes)))),
                     "class_bytes": Out(unsigned(counter_width)).array(len(self.classes))}
        super().__init__({
            **extra,
            "up": In(sig),
            "down": Out(sig),
            "enable": In(1), "clear": In(1),
            "bytes_read": Out(unsigned(counter_width)),
            "bytes_written": Out(unsigned(counter_width)),
            "busy_cycles": Out(unsigned(counter_width)),
            "stall_cycles": Out(unsigned(counter_width)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        up, down = self.up, self.down
        m.d.comb += [
            down.req.valid.eq(up.req.valid), down.req.payload.eq(up.req.payload), up.req.ready.eq(down.req.ready),
            up.resp.valid.eq(down.resp.valid), up.resp.payload.eq(down.resp.payload),
            down.resp.ready.eq(up.resp.ready),
        ]
        req_fire = Signal()
        resp_fire = Signal()
        m.d.comb += [req_fire.eq(up.req.valid & up.req.ready), resp_fire.eq(up.resp.valid & up.resp.ready)]
        is_read = Signal()
        m.d.comb += is_read.eq(req_fire & ~up.req.payload.write)
        outstanding = Signal(range(self.max_outstanding + 1))
        m.d.sync += outstanding.eq(outstanding + is_read - resp_fire)
        busy = Signal()
        m.d.comb += busy.eq(up.req.valid | (outstanding != 0))
        nbytes = self.data_width // 8
        with m.If(self.clear):
            m.d.sync += [self.bytes_read.eq(0), self.bytes_written.eq(0), self.busy_cycles.eq(0),
                         self.stall_cycles.eq(0)]
        with m.Elif(self.enable):
            with m.If(is_read):
                m.d.sync += self.bytes_read.eq(self.bytes_read + nbytes)
            with m.If(req_fire & up.req.payload.write):
                m.d.sync += self.bytes_written.eq(self.bytes_written + nbytes)
            with m.If(busy):
                m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
            with m.If(busy & ~req_fire & ~resp_fire):
                m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        for i in range(len(self.classes)):
            with m.If(self.clear):
                m.d.sync += self.class_bytes[i].eq(0)
            with m.Elif(self.enable & req_fire & (self.req_class == i)):
                m.d.sync += self.class_bytes[i].eq(self.class_bytes[i] + nbytes)
        return m
