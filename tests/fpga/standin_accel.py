"""A tiny stand-in accelerator that speaks the hwforge memory-port contract, for SoC and bitstream tests.

It reads N words from `src` (several reads outstanding at once), writes each plus one to `dst`, reads
`dst` back and XORs what it reads into `readback`, then raises `done`. The read-back phase checks that a
read after a write sees the written value. `stall` is an input nobody drives inside the SoC, so a
testbench can set it at random: bit 0 holds back new requests, bit 1 drops `resp.ready`; requests already
offered stay valid until accepted, as the stream rules require.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.rtl.lib import MemPortSignature


class StandInAccelerator(wiring.Component):
    def __init__(self, n: int, src: int, dst: int, data_width: int = 32):
        self.n, self.src, self.dst, self.data_width = n, src, dst, data_width
        super().__init__({
            "start": In(1),
            "done": Out(1),
            "mem": Out(MemPortSignature(32, data_width)),
            "stall": In(2),
            "readback": Out(data_width),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, dw = self.n, self.data_width
        buf = Array(Signal(dw, name=f"buf{i}") for i in range(n))
        issued = Signal(range(n + 1))
        received = Signal(range(n + 1))
        req, resp = self.mem.req, self.mem.resp
        offering = Signal()  # a request is on the bus and must stay there until accepted

        m.d.comb += resp.ready.eq(~self.stall[1])
        with m.If(req.valid & req.ready):
            m.d.sync += issued.eq(issued + 1)

        def offer(addr, write: int, wdata=0) -> None:
            # Keep valid high once raised (stall only delays raising it); valid never looks at ready.
            m.d.comb += [
                req.valid.eq((issued < n) & (offering | ~self.stall[0])),
                req.payload.addr.eq(addr),
                req.payload.write.eq(write),
                req.payload.wdata.eq(wdata),
            ]
            m.d.sync += offering.eq(req.valid & ~req.ready)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [issued.eq(0), received.eq(0), self.done.eq(0), self.readback.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                offer(self.src + issued, 0)
                with m.If(resp.valid & resp.ready):
                    m.d.sync += [buf[received].eq(resp.payload), received.eq(received + 1)]
                    with m.If(received == n - 1):
                        m.d.sync += [issued.eq(0), received.eq(0)]
                        m.next = "WRITE"
            with m.State("WRITE"):
                offer(self.dst + issued, 1, buf[issued] + 1)
                with m.If((issued == n - 1) & req.valid & req.ready):
                    m.d.sync += issued.eq(0)
                    m.next = "CHECK"
            with m.State("CHECK"):
                offer(self.dst + issued, 0)
                with m.If(resp.valid & resp.ready):
                    m.d.sync += [self.readback.eq(self.readback ^ resp.payload), received.eq(received + 1)]
                    with m.If(received == n - 1):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
        return m
