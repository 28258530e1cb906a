"""AXI4 at the boundary: `MemPortToAxi4` turns an accelerator's memory port into an AXI4 master.

Why: every hwforge accelerator reaches memory through one `MemPortSignature` (word addresses, an in-order read
response stream, writes without a response). A Vivado block design, a LiteX SoC or any other AXI interconnect
expects an AXI4 master with the standard ``m_axi_*`` port names instead; this adapter is the only piece between
the two, so the accelerators themselves never learn about AXI.

Interface:

- ``mem``: ``In(MemPortSignature(addr_width, data_width))``, the *target* side of the accelerator's port
  (connect with ``wiring.connect(m, accel.mem, adapter.mem)``).
- ``m_axi_*``: one AXI4 master as plain signals with the names Vivado's interface inference and cocotbext-axi's
  ``AxiBus.from_prefix(dut, "m_axi")`` look for (AW, W, B, AR, R channels; ``*id`` fixed to 0, ``*size`` the full
  bus width, ``*burst`` INCR, ``*cache`` 0b0011 (normal non-cacheable bufferable, what Xilinx IP expects),
  ``*prot``/``*lock`` 0; ``rid``/``bid`` are ignored). Byte address = word address * ``data_width // 8``;
  ``axi_addr_width`` defaults to exactly the bits that needs.
- ``error``: sticky, set by an SLVERR/DECERR on R or B, or an ``rlast`` that disagrees with the burst length the
  adapter asked for (a protocol violation by the interconnect, or a broken adapter: the fault tests see it).
- ``idle``: no read or write accepted and not yet answered (a host polls this before it reads results).

Reads (burst coalescing): an accepted read opens a pending burst (``start``, ``count``); while the next request
arrives in the very next cycle(s) with the next word address, it extends the pending burst, up to ``max_burst``
beats and never across a 4 KiB boundary (AXI4 forbids INCR bursts that cross one; since the words are
consecutive the check is only "the new word starts a page"). Whenever a cycle brings no extending read, the
pending burst moves to the AR register (one cycle after its last request) and a non-extending read in that
same cycle opens the next one, so a stream of requests is accepted one per cycle. The worst case is a
single-beat INCR burst per request, which is always legal. Back-pressure on AR lengthens bursts (the pending
burst keeps growing while AR is busy). R beats come back in AR order (all ids are 0), one per read request, so
``mem.resp`` is the R channel itself (``rready = mem.resp.ready``); up to ``max_outstanding`` reads may be in
flight.

Writes: one single-beat INCR burst per write request: AW and W are registered and offered together (full
``wstrb``, ``wlast`` 1); B responses are only counted (``bready`` is 1). Up to ``max_outstanding`` writes may be
waiting for their B response.

Ordering (why the adapter serialises the two directions): AXI4 does not order a read against a write, not even
to the same address, until the write's B response (resp. the read's R beat) has arrived, while the memory-port
contract promises program order. So a read is not accepted while any write is waiting for its B response, and
a write is not accepted while any read is waiting for its R beat. Each switch of direction therefore costs a
round trip; streams of reads and streams of writes run at full rate. An accelerator must drain ``mem.resp``
without waiting for a later write to be accepted (every hwforge initiator does).

Timing: AR/AW/W payloads come from registers; the combinational paths are ``arready``/``awready``/``wready`` ->
``mem.req.ready`` and the R channel passed straight through to ``mem.resp``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hwforge.rtl.lib.checks import bus_problem, fault_problem, refuse
from hwforge.rtl.lib.memport import MemPortSignature

#: Deliberate defects for testing the tests: ``wrong_wstrb`` enables only the lower half of the byte lanes;
#: ``long_arlen`` asks for one beat more than the coalesced requests (extra R beats, ``rlast`` late);
#: ``read_passes_write`` accepts reads while writes are still waiting for B (a read may overtake a write).
FAULTS: tuple[str, ...] = ("wrong_wstrb", "long_arlen", "read_passes_write")

#: AXI4 INCR bursts may not cross a 4 KiB boundary.
PAGE_BYTES = 4096
#: ``AxCACHE`` = normal non-cacheable bufferable, the value Xilinx IP documents for DMA masters.
AXCACHE = 0b0011
AXBURST_INCR = 0b01


def axi4_master_members(axi_addr_width: int, data_width: int, id_width: int = 1) -> dict[str, wiring.Member]:
    """The ``m_axi_*`` members of an AXI4 master, directions as seen from the master."""
    strb = data_width // 8
    return {
        "m_axi_awid": Out(id_width), "m_axi_awaddr": Out(axi_addr_width), "m_axi_awlen": Out(8),
        "m_axi_awsize": Out(3), "m_axi_awburst": Out(2), "m_axi_awlock": Out(1), "m_axi_awcache": Out(4),
        "m_axi_awprot": Out(3), "m_axi_awvalid": Out(1), "m_axi_awready": In(1),
        "m_axi_wdata": Out(data_width), "m_axi_wstrb": Out(strb), "m_axi_wlast": Out(1), "m_axi_wvalid": Out(1),
        "m_axi_wready": In(1),
        "m_axi_bid": In(id_width), "m_axi_bresp": In(2), "m_axi_bvalid": In(1), "m_axi_bready": Out(1),
        "m_axi_arid": Out(id_width), "m_axi_araddr": Out(axi_addr_width), "m_axi_arlen": Out(8),
        "m_axi_arsize": Out(3), "m_axi_arburst": Out(2), "m_axi_arlock": Out(1), "m_axi_arcache": Out(4),
        "m_axi_arprot": Out(3), "m_axi_arvalid": Out(1), "m_axi_arready": In(1),
        "m_axi_rid": In(id_width), "m_axi_rdata": In(data_width), "m_axi_rresp": In(2), "m_axi_rlast": In(1),
        "m_axi_rvalid": In(1), "m_axi_rready": Out(1),
    }


def _check_params(addr_width: int, data_width: int, axi_addr_width: int, max_burst: int, max_outstanding: int,
                  fault: str | None) -> str | None:
    """One-line description of the first bad constructor parameter (named first), or None."""
    if problem := bus_problem(addr_width, data_width):
        return problem
    need = addr_width + (data_width // 8).bit_length() - 1
    if not need <= axi_addr_width <= 64:
        return f"axi_addr_width must be {need}..64 (addr_width + log2(data_width / 8)), got {axi_addr_width}"
    if not 1 <= max_burst <= 256:
        return f"max_burst must be 1..256 (AXI4 INCR limit), got {max_burst}"
    if not 1 <= max_outstanding <= 256:
        return f"max_outstanding must be 1..256, got {max_outstanding}"
    return fault_problem(fault, FAULTS)


class MemPortToAxi4(wiring.Component):
    """Memory-port target -> AXI4 master with read-burst coalescing; see the module docstring."""

    def __init__(self, addr_width: int = 32, data_width: int = 32, *, axi_addr_width: int | None = None,
                 max_burst: int = 16, max_outstanding: int = 16, fault: str | None = None):
        if isinstance(data_width, int) and isinstance(addr_width, int) and axi_addr_width is None:
            axi_addr_width = addr_width + max(0, (data_width // 8).bit_length() - 1)
        problem = _check_params(addr_width, data_width, axi_addr_width, max_burst, max_outstanding, fault)
        if problem:
            refuse(self, problem)
        self.addr_width = addr_width
        self.data_width = data_width
        self.axi_addr_width = axi_addr_width
        self.max_burst = max_burst
        self.max_outstanding = max_outstanding
        self.fault = fault
        self.byte_shift = (data_width // 8).bit_length() - 1
        #: Words per 4 KiB page (the burst-boundary granule), at least one.
        self.page_words = max(1, PAGE_BYTES >> self.byte_shift)
        super().__init__({
            "mem": In(MemPortSignature(addr_width, data_width)),
            **axi4_master_members(axi_addr_width, data_width),
            "error": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        req, resp = self.mem.req, self.mem.resp
        lim = self.max_outstanding
        page_bits = self.page_words.bit_length() - 1

        def byte_addr(word: Signal) -> Value:
            """Word address -> byte address (zero-extended to ``axi_addr_width`` on assignment)."""
            return word.as_unsigned() << self.byte_shift

        # ---------------------------------------------------------------- constant AXI fields
        size = Const(self.byte_shift, 3)
        m.d.comb += [
            self.m_axi_awid.eq(0), self.m_axi_arid.eq(0),
            self.m_axi_awsize.eq(size), self.m_axi_arsize.eq(size),
            self.m_axi_awburst.eq(AXBURST_INCR), self.m_axi_arburst.eq(AXBURST_INCR),
            self.m_axi_awcache.eq(AXCACHE), self.m_axi_arcache.eq(AXCACHE),
            self.m_axi_awlock.eq(0), self.m_axi_arlock.eq(0), self.m_axi_awprot.eq(0), self.m_axi_arprot.eq(0),
            self.m_axi_awlen.eq(0), self.m_axi_wlast.eq(1), self.m_axi_bready.eq(1),
        ]

        # ---------------------------------------------------------------- bookkeeping
        reads_out = Signal(range(lim + 1))          # reads accepted whose R beat has not been delivered
        writes_out = Signal(range(lim + 1))         # writes accepted whose B response has not arrived
        read_fire = Signal()
        write_fire = Signal()
        r_fire = Signal()
        b_fire = Signal()
        m.d.comb += [
            r_fire.eq(self.m_axi_rvalid & self.m_axi_rready),
            b_fire.eq(self.m_axi_bvalid & self.m_axi_bready),
        ]
        m.d.sync += [reads_out.eq(reads_out + read_fire - r_fire), writes_out.eq(writes_out + write_fire - b_fire)]
        m.d.comb += self.idle.eq((reads_out == 0) & (writes_out == 0))

        # ---------------------------------------------------------------- read path: coalescing
        acc_valid = Signal()                        # a pending (not yet issued) read burst
        acc_start = Signal(self.addr_width)
        acc_next = Signal(self.addr_width)          # word address that would extend it
        acc_count = Signal(range(self.max_burst + 1))
        ar_free = Signal()
        m.d.comb += ar_free.eq(~self.m_axi_arvalid | self.m_axi_arready)

        wait_writes = Const(0) if self.fault == "read_passes_write" else (writes_out != 0)
        read_ok = Signal()                          # a read request may be accepted at all this cycle
        is_read = Signal()
        extend = Signal()
        close = Signal()
        m.d.comb += [
            is_read.eq(req.valid & ~req.payload.write),
            read_ok.eq(~wait_writes & (reads_out != lim)),
            extend.eq(is_read & read_ok & acc_valid & (req.payload.addr == acc_next)
                      & (acc_count != self.max_burst) & (req.payload.addr[:page_bits] != 0)),
            close.eq(acc_valid & ~extend & ar_free),
        ]
        arlen = acc_count - 1 + (1 if self.fault == "long_arlen" else 0)
        with m.If(close):
            m.d.sync += [
                self.m_axi_arvalid.eq(1),
                self.m_axi_araddr.eq(byte_addr(acc_start)),
                self.m_axi_arlen.eq(arlen),
            ]
        with m.Elif(self.m_axi_arready):
            m.d.sync += self.m_axi_arvalid.eq(0)

        open_new = Signal()
        m.d.comb += [
            open_new.eq(is_read & read_ok & ~extend & (~acc_valid | close)),
            read_fire.eq(extend | open_new),
        ]
        with m.If(extend):
            m.d.sync += [acc_next.eq(acc_next + 1), acc_count.eq(acc_count + 1)]
        with m.Elif(open_new):
            m.d.sync += [acc_valid.eq(1), acc_start.eq(req.payload.addr), acc_next.eq(req.payload.addr + 1),
                         acc_count.eq(1)]
        with m.Elif(close):
            m.d.sync += acc_valid.eq(0)

        # ---------------------------------------------------------------- read path: responses and rlast check
        # Each issued burst's length goes into a FIFO; the R side counts beats and compares rlast with it.
        lens = m.submodules.burst_lens = SyncFIFO(width=9, depth=lim)
        beat = Signal(9)
        rlast_bad = Signal()
        m.d.comb += [
            lens.w_en.eq(self.m_axi_arvalid & self.m_axi_arready),
            lens.w_data.eq(self.m_axi_arlen),
            resp.valid.eq(self.m_axi_rvalid),
            resp.payload.eq(self.m_axi_rdata),
            self.m_axi_rready.eq(resp.ready),
            rlast_bad.eq(r_fire & (self.m_axi_rlast != (beat == lens.r_data))),
            lens.r_en.eq(r_fire & self.m_axi_rlast),
        ]
        with m.If(r_fire):
            m.d.sync += beat.eq(Mux(self.m_axi_rlast, 0, beat + 1))

        # ---------------------------------------------------------------- write path
        aw_free = Signal()
        w_free = Signal()
        m.d.comb += [
            aw_free.eq(~self.m_axi_awvalid | self.m_axi_awready),
            w_free.eq(~self.m_axi_wvalid | self.m_axi_wready),
            write_fire.eq(req.valid & req.payload.write & (reads_out == 0) & (writes_out != lim) & aw_free & w_free),
        ]
        strb_bits = self.data_width // 8
        strb = (1 << (strb_bits // 2)) - 1 if self.fault == "wrong_wstrb" else (1 << strb_bits) - 1
        with m.If(write_fire):
            m.d.sync += [
                self.m_axi_awvalid.eq(1), self.m_axi_awaddr.eq(byte_addr(req.payload.addr)),
                self.m_axi_wvalid.eq(1), self.m_axi_wdata.eq(req.payload.wdata), self.m_axi_wstrb.eq(strb),
            ]
        with m.Else():
            with m.If(self.m_axi_awready):
                m.d.sync += self.m_axi_awvalid.eq(0)
            with m.If(self.m_axi_wready):
                m.d.sync += self.m_axi_wvalid.eq(0)

        m.d.comb += req.ready.eq(read_fire | write_fire)

        # ---------------------------------------------------------------- errors (sticky)
        with m.If((r_fire & self.m_axi_rresp[1]) | (b_fire & self.m_axi_bresp[1]) | rlast_bad):
            m.d.sync += self.error.eq(1)
        return m


#: `Axi4LiteControl` register map (byte offsets): write 1 to bit 0 of CTRL to start; STATUS bit 0 = busy,
#: bit 1 = done (sticky until the next start); CYCLES = cycles from start to done (counts while busy).
REG_CTRL, REG_STATUS, REG_CYCLES = 0x0, 0x4, 0x8


class Axi4LiteControl(wiring.Component):
    """A minimal AXI4-Lite slave (32-bit data) through which a host starts an accelerator and times it.

    Why: an accelerator behind `MemPortToAxi4` still needs a start pulse and a way to report completion; in a
    Vivado or LiteX SoC that is a few registers on the CPU's AXI4-Lite peripheral bus. Ports: ``s_axil_*`` (the
    standard AXI4-Lite slave names, 32-bit data, ``addr_width``-bit byte addresses, decoded on bits [3:2]),
    ``start`` (one-cycle pulse to the accelerator, combinational from the write handshake, so that ``busy`` is set
    in the cycle the accelerator starts and a ``done`` level left over from the previous run is never mistaken
    for completion) and ``done`` (from the accelerator; a pulse or a level that drops the cycle after start).
    One transaction per direction at a time: AW and W are taken together once both are valid and no B response
    is pending; a read is answered in the cycle after AR. Writes to other registers or with ``wstrb[0]`` low are
    ignored (OKAY), reads of unmapped offsets return 0.
    """

    def __init__(self, addr_width: int = 4):
        if not 4 <= addr_width <= 32:
            refuse(self, f"addr_width must be 4..32, got {addr_width}")
        self.addr_width = addr_width
        super().__init__({
            "s_axil_awaddr": In(addr_width), "s_axil_awprot": In(3), "s_axil_awvalid": In(1),
            "s_axil_awready": Out(1),
            "s_axil_wdata": In(32), "s_axil_wstrb": In(4), "s_axil_wvalid": In(1), "s_axil_wready": Out(1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(addr_width), "s_axil_arprot": In(3), "s_axil_arvalid": In(1),
            "s_axil_arready": Out(1),
            "s_axil_rdata": Out(32), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1), "s_axil_rready": In(1),
            "start": Out(1), "done": In(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        busy = Signal()
        done_flag = Signal()
        cycles = Signal(32)

        take_write = Signal()
        m.d.comb += [
            take_write.eq(self.s_axil_awvalid & self.s_axil_wvalid & ~self.s_axil_bvalid),
            self.s_axil_awready.eq(take_write),
            self.s_axil_wready.eq(take_write),
            self.s_axil_bresp.eq(0),
            self.s_axil_rresp.eq(0),
            self.s_axil_arready.eq(~self.s_axil_rvalid),
        ]
        start = Signal()
        m.d.comb += start.eq(take_write & (self.s_axil_awaddr[2:4] == REG_CTRL >> 2) & self.s_axil_wstrb[0]
                             & self.s_axil_wdata[0])
        m.d.comb += self.start.eq(start)
        with m.If(take_write):
            m.d.sync += self.s_axil_bvalid.eq(1)
        with m.Elif(self.s_axil_bready):
            m.d.sync += self.s_axil_bvalid.eq(0)

        with m.If(start):
            m.d.sync += [busy.eq(1), done_flag.eq(0), cycles.eq(0)]
        with m.Elif(busy & self.done):
            m.d.sync += [busy.eq(0), done_flag.eq(1)]
        with m.Elif(busy):
            m.d.sync += cycles.eq(cycles + 1)

        with m.If(self.s_axil_arvalid & self.s_axil_arready):
            m.d.sync += self.s_axil_rvalid.eq(1)
            with m.Switch(self.s_axil_araddr[2:4]):
                with m.Case(REG_STATUS >> 2):
                    m.d.sync += self.s_axil_rdata.eq(Cat(busy, done_flag))
                with m.Case(REG_CYCLES >> 2):
                    m.d.sync += self.s_axil_rdata.eq(cycles)
                with m.Default():
                    m.d.sync += self.s_axil_rdata.eq(0)
        with m.Elif(self.s_axil_rready):
            m.d.sync += self.s_axil_rvalid.eq(0)
        return m
