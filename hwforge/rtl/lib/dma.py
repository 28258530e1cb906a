"""A DMA read engine: streams ``length`` consecutive memory words per command, keeping many reads in flight.

Why: an initiator that issues one read and waits for its response before the next spends ``latency`` cycles
per word on the memory port (the gemm loader today idles the array 90+ % of the time). This engine *decouples
access from consumption*: the issue side walks the address range and sends one read request per cycle while it
holds a credit, independent of when (or whether) the consumer takes the words; the response side catches every
returning word in a small FIFO, and the consumer drains that FIFO through the ``data`` stream at its own pace.
Commands queue back to back: the next command's requests go out while the previous command's words drain.

The credit rule (why a stalled consumer can never lose or block a response):
    ``used`` = read requests issued whose words have not yet left through ``data``
    (= responses still in the memory + words held in the response FIFO). A request may be issued only while
    ``used < max_in_flight``, and the response FIFO holds ``max_in_flight`` words. Hence whenever the memory
    offers a response (so at least one word is still in the memory), the FIFO holds at most
    ``max_in_flight - 1`` words and has room: ``mem.resp.ready`` is high whenever ``mem.resp.valid`` could be.
    (``mem.resp.ready`` is wired to the FIFO's ``w_rdy`` rather than a constant 1, so a broken credit rule shows
    up as back-pressure on the memory, which the tests check never happens, instead of silently lost words.)

Throughput: a credit taken by a request in cycle ``t`` returns with the response in cycle ``t + L`` (memory
latency ``L``), the word is visible on ``data`` in ``t + L + 1`` and the decremented ``used`` lets a new request
out in ``t + L + 2``. So with no stalls the engine sustains ``min(1, max_in_flight / (L + 2))`` words per cycle
(the constant ``c = 2``; one cycle for the response FIFO, one for the registered credit counter), and a lone
command of ``n`` words takes ``n + L + 2`` cycles from ``cmd.valid`` to its last word (inclusive) once
``max_in_flight >= L + 2`` (`dma_cycles` models every case; the tests check it cycle-exactly).
Outputs are registered or come straight out of FIFO storage; the only combinational input-to-output path is
``mem.req.ready -> cmd.ready`` (accepting the next command in the cycle the current one's last request goes
out, so commands issue back to back).

The response FIFO is an `amaranth.lib.fifo.SyncFIFO` (asynchronous-read storage: LUT RAM or flops, cheap at
<= 16 entries) rather than `SyncFIFOBuffered`, whose extra output register would add a cycle to ``c`` and
whose ``w_rdy`` can be low while its level is below its depth, breaking the exact credit count above.
A 1-bit tag FIFO of the same depth carries each request's ``last`` flag to its response (responses come back
in request order).

Ports (``Out(MemPortSignature)``: the engine is the initiator; it only reads, ``write`` is always 0):

- ``cmd``: ``In(stream)`` of ``{base, length}``: first word address and number of words (a zero-length
  command is consumed and produces nothing).
- ``mem``: the memory port.
- ``data``: ``Out(stream)`` of ``{data, last}``: the words in address order, ``last`` set on each command's
  final word.
- ``idle``: high when no command is in progress and no word is in flight or buffered.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hwforge.rtl.lib.checks import bus_problem, fault_problem, refuse
from hwforge.rtl.lib.memport import MemPortSignature

#: Deliberate defects for testing the tests: ``drop_last_word`` never sets ``last``; ``reorder`` swaps the
#: words of each aligned pair within a command; ``ignore_credits`` issues requests without taking credits (so a
#: stalled consumer back-pressures the memory's response stream and requests are lost from the tag FIFO).
FAULTS: tuple[str, ...] = ("drop_last_word", "reorder", "ignore_credits")

#: Cycles a credit spends beyond the memory latency (see the module docstring): sustained words per cycle are
#: ``min(1, max_in_flight / (latency + CREDIT_OVERHEAD))``.
CREDIT_OVERHEAD = 2


def dma_command_layout(addr_width: int, len_width: int) -> data.StructLayout:
    """Payload of one command: ``base`` (first word address) and ``length`` (words)."""
    return data.StructLayout({"base": unsigned(addr_width), "length": unsigned(len_width)})


def dma_data_layout(data_width: int) -> data.StructLayout:
    """Payload of one output word: ``data`` and ``last`` (final word of its command)."""
    return data.StructLayout({"data": unsigned(data_width), "last": unsigned(1)})


def dma_cycles(length: int, latency: int, max_in_flight: int) -> int:
    """Stall-free cycles from ``cmd.valid`` to the last word of one ``length``-word command (inclusive).

    The command is accepted in cycle 0 and request ``i`` goes out in cycle ``1 + (i // m) * p + i % m``
    (``m = max_in_flight``, ``p = latency + CREDIT_OVERHEAD``; one per cycle once ``m >= p``); its word leaves
    through ``data`` ``latency + 1`` cycles later.
    """
    period = latency + CREDIT_OVERHEAD
    last = length - 1
    issue = 1 + last if max_in_flight >= period else 1 + (last // max_in_flight) * period + last % max_in_flight
    return issue + latency + 2


def _check_params(addr_width: int, data_width: int, max_in_flight: int, len_width: int,
                  fault: str | None) -> str | None:
    """One-line description of the first bad constructor parameter (named first), or None."""
    if problem := bus_problem(addr_width, data_width):
        return problem
    if not 1 <= max_in_flight <= 32:
        return f"max_in_flight must be 1..32, got {max_in_flight}"
    if not 1 <= len_width <= 32:
        return f"len_width must be 1..32, got {len_width}"
    return fault_problem(fault, FAULTS)


class DmaReader(wiring.Component):
    """Decoupled DMA read engine; see the module docstring for the ports, the credit rule and the throughput."""

    def __init__(self, addr_width: int = 32, data_width: int = 32, max_in_flight: int = 4, len_width: int = 16,
                 fault: str | None = None):
        problem = _check_params(addr_width, data_width, max_in_flight, len_width, fault)
        if problem:
            refuse(self, problem)
        self.addr_width = addr_width
        self.data_width = data_width
        self.max_in_flight = max_in_flight
        self.len_width = len_width
        self.fault = fault
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(addr_width, len_width))),
            "mem": Out(MemPortSignature(addr_width, data_width)),
            "data": Out(stream.Signature(dma_data_layout(data_width))),
            "idle": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n = self.max_in_flight
        req, resp = self.mem.req, self.mem.resp

        # ---------------------------------------------------------------- issue side
        active = Signal()                           # a command has requests left to issue
        addr = Signal(self.addr_width)              # next word address
        remaining = Signal(self.len_width)          # requests left in the current command
        odd = Signal()                              # index within the command is odd ("reorder" fault only)
        used = Signal(range(n + 1))                 # credits taken: issued words not yet out through `data`

        last_req = Signal()
        req_fire = Signal()
        data_fire = Signal()
        has_credit = Const(1) if self.fault == "ignore_credits" else (used != n)
        m.d.comb += [
            last_req.eq(remaining == 1),
            req.valid.eq(active & has_credit),
            req.payload.write.eq(0),
            req.payload.wdata.eq(0),
            req_fire.eq(req.valid & req.ready),
            self.cmd.ready.eq(~active | (req_fire & last_req)),
        ]
        if self.fault == "reorder":
            with m.If(odd):
                m.d.comb += req.payload.addr.eq(addr - 1)
            with m.Elif(~last_req):
                m.d.comb += req.payload.addr.eq(addr + 1)
            with m.Else():
                m.d.comb += req.payload.addr.eq(addr)
        else:
            m.d.comb += req.payload.addr.eq(addr)

        with m.If(req_fire):
            m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1), odd.eq(~odd)]
            with m.If(last_req):
                m.d.sync += active.eq(0)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                addr.eq(self.cmd.payload.base),
                remaining.eq(self.cmd.payload.length),
                active.eq(self.cmd.payload.length != 0),
                odd.eq(0),
            ]
        if self.fault != "ignore_credits":
            m.d.sync += used.eq(used + req_fire - data_fire)

        # ---------------------------------------------------------------- response side
        tags = m.submodules.tags = SyncFIFO(width=1, depth=n)           # `last` of each outstanding request
        words = m.submodules.words = SyncFIFO(width=self.data_width + 1, depth=n)
        resp_fire = Signal()
        m.d.comb += [
            tags.w_en.eq(req_fire),
            tags.w_data.eq(0 if self.fault == "drop_last_word" else last_req),
            resp.ready.eq(words.w_rdy),
            resp_fire.eq(resp.valid & resp.ready),
            tags.r_en.eq(resp_fire),
            words.w_en.eq(resp_fire),
            words.w_data.eq(Cat(resp.payload, tags.r_data)),             # dma_data_layout order
            self.data.valid.eq(words.r_rdy),
            self.data.payload.eq(words.r_data),
            words.r_en.eq(self.data.ready),
            data_fire.eq(self.data.valid & self.data.ready),
            self.idle.eq(~active & (used == 0)),
        ]
        return m

