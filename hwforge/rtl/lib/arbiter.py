"""Round-robin arbiter that lets several initiators share one memory port (`MemPortSignature`).

Requests are granted round-robin (the port after the last winner has priority). Reads are tagged with the
index of their port in a FIFO, and since the memory answers in request order, the response at the head of the
memory's response stream belongs to the port at the head of that FIFO. Each port carries a traffic-class tag
(``up_class[i]``), forwarded as ``down_class`` with the granted request, for `CountingMemPort`'s per-class
byte counters.

``input_buffers=d`` (d >= 1) puts a ``d``-deep request FIFO (with the request's class) in front of every port:
a port's ``req.ready`` then depends only on its FIFO's level, so no initiator's next-state logic waits on the
grant, the other ports' requests and the memory in the same cycle (the chain that otherwise limits a design's
clock), at one cycle more request latency. Buffered requests are not yet in memory: ``idle`` is high only when
every FIFO is empty, and a design must see it before it reads what it wrote through another port.

Rule for initiators: a port must always accept its own read responses eventually, without waiting on another
port (responses are delivered strictly in order, so one port that refuses blocks every other one).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.rtl.lib.checks import refuse
from hwforge.rtl.lib.memport import MemPortSignature, mem_request_layout


class MemArbiter(wiring.Component):
    """``n`` initiator ports (``up[i]``, as seen from the initiators) onto one ``down`` port."""

    def __init__(self, n: int, addr_width: int = 32, data_width: int = 32, n_classes: int = 1,
                 max_outstanding: int = 64, input_buffers: int = 0):
        if n < 1:
            raise ValueError("MemArbiter needs at least one port")
        if input_buffers < 0:
            refuse(self, f"input_buffers must be >= 0, got {input_buffers}")
        self.n = n
        self.max_outstanding = max_outstanding
        self.input_buffers = input_buffers
        self.addr_width, self.data_width = addr_width, data_width
        sig = MemPortSignature(addr_width, data_width)
        cls = range(max(2, n_classes))
        super().__init__({
            "up": In(sig).array(n),
            "up_class": In(cls).array(n),
            "down": Out(sig),
            "down_class": Out(cls),
            "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        n = self.n
        m.submodules.tags = tags = SyncFIFOBuffered(width=max(1, ceil_log2(n)), depth=self.max_outstanding)
        reqs, classes = self._requests(m)
        rr = Signal(range(n))
        chosen = Signal(range(n))
        anyv = Signal()
        valids = [reqs[i].valid for i in range(n)]
        for i in reversed(range(n)):
            with m.If(valids[i]):
                m.d.comb += [chosen.eq(i), anyv.eq(1)]
        for i in reversed(range(n)):
            with m.If(valids[i] & (i >= rr)):
                m.d.comb += chosen.eq(i)
        down = self.down
        is_write = Signal()
        with m.Switch(chosen):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += [down.req.payload.eq(reqs[i].payload), self.down_class.eq(classes[i]),
                                 is_write.eq(reqs[i].payload.write)]
        can = Signal()
        m.d.comb += [can.eq(is_write | tags.w_rdy), down.req.valid.eq(anyv & can)]
        for i in range(n):
            m.d.comb += reqs[i].ready.eq(down.req.ready & can & anyv & (chosen == i))
        fire = Signal()
        m.d.comb += fire.eq(down.req.valid & down.req.ready)
        with m.If(fire):
            m.d.sync += rr.eq(chosen + 1 if n > 1 else 0)
            if n > 1:
                with m.If(chosen == n - 1):
                    m.d.sync += rr.eq(0)
        m.d.comb += [tags.w_en.eq(fire & ~is_write), tags.w_data.eq(chosen)]
        # responses: route to the port at the head of the tag FIFO
        for i in range(n):
            m.d.comb += [self.up[i].resp.payload.eq(down.resp.payload),
                         self.up[i].resp.valid.eq(down.resp.valid & tags.r_rdy & (tags.r_data == i))]
        with m.Switch(tags.r_data):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += down.resp.ready.eq(tags.r_rdy & self.up[i].resp.ready)
        m.d.comb += tags.r_en.eq(down.resp.valid & down.resp.ready)
        return m

    def _requests(self, m: Module) -> tuple[list, list]:
        """Each port's request stream and class as the arbiter sees them: the ports themselves, or the heads of
        their request FIFOs (``input_buffers``)."""
        n = self.n
        if not self.input_buffers:
            m.d.comb += self.idle.eq(1)
            return [self.up[i].req for i in range(n)], [self.up_class[i] for i in range(n)]
        layout = mem_request_layout(self.addr_width, self.data_width)
        cls_bits = len(self.up_class[0])
        reqs, classes, empty = [], [], []
        for i in range(n):
            fifo = m.submodules[f"req_fifo{i}"] = SyncFIFO(width=layout.size + cls_bits, depth=self.input_buffers)
            head = stream.Signature(layout).create(path=(f"head{i}",))
            up = self.up[i].req
            m.d.comb += [fifo.w_en.eq(up.valid), fifo.w_data.eq(Cat(up.payload, self.up_class[i])),
                         up.ready.eq(fifo.w_rdy),
                         head.valid.eq(fifo.r_rdy), head.payload.eq(fifo.r_data[:layout.size]),
                         fifo.r_en.eq(head.ready)]
            cls = Signal(cls_bits, name=f"head{i}_class")
            m.d.comb += cls.eq(fifo.r_data[layout.size:])
            reqs.append(head)
            classes.append(cls)
            empty.append(~fifo.r_rdy)
        m.d.comb += self.idle.eq(Cat(*empty).all())
        return reqs, classes
