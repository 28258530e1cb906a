"""`GemmAxi4`: the gemm accelerator with AXI4 interfaces only, ready to drop into a Vivado or LiteX SoC.

Why: `GemmAccelerator` speaks hwforge's memory port and has bare ``start``/``done`` wires, which no SoC
interconnect understands. This wrapper puts `MemPortToAxi4` on its memory port and `Axi4LiteControl` on its
control wires (both in `hwforge.rtl.lib.axi`), so the whole accelerator is one AXI4 master plus one AXI4-Lite
slave with the port names Vivado's interface inference and LiteX/cocotbext-axi ``from_prefix`` expect.

How a SoC uses it:

- ``m_axi_*`` (data width ``cfg.bus_width``, byte address = word address * ``cfg.bus_width // 8``): connect it to
  a memory window (DDR or BRAM) through the interconnect; the accelerator reads its program from AXI address 0
  of that window, so map (or offset) the window such that its byte 0 is where the host put the image
  (`hwforge.rtl.gemm.program.build_program`'s ``Program.words``, little-endian words). Outputs are written to
  words ``Program.output_range()`` of the same window.
- ``s_axil_*`` (4-bit byte addresses; `Axi4LiteControl`'s map): write 1 to CTRL (0x0) to start, poll STATUS (0x4)
  until bit 1 (done) is set, then read CYCLES (0x8, clock cycles from start to done) and the outputs. Do not
  write CTRL while STATUS bit 0 (busy) is set. STATUS reports done only once the accelerator has finished
  *and* every AXI write has been answered (the adapter's ``idle``), so the outputs are in memory when the host
  sees it (flush or invalidate CPU caches as the SoC requires).
- ``error``: the adapter's sticky error (SLVERR/DECERR or a malformed ``rlast``); route it to an interrupt or
  a GPIO if the SoC wants to see it. It clears only on reset.
- Clock and reset are Amaranth's ``sync`` domain (active-high ``rst``; invert the AXI ``aresetn``).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hwforge.errors import ConfigError
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.core import FAULTS
from hwforge.rtl.gemm.top import GemmAccelerator
from hwforge.rtl.lib.axi import Axi4LiteControl, MemPortToAxi4
from hwforge.rtl.lib.checks import fault_problem, refuse


class GemmAxi4(wiring.Component):
    """`GemmAccelerator` behind an AXI4 master (``m_axi_*``) and an AXI4-Lite control slave (``s_axil_*``).

    ``max_burst`` / ``max_outstanding`` are `MemPortToAxi4`'s read-burst length and in-flight limits; ``fault``
    selects one of the accelerator's deliberately broken variants (`hwforge.rtl.gemm.core.FAULTS`, tests only).
    """

    def __init__(self, cfg: GemmConfig, fault: str | None = None, max_burst: int = 16, max_outstanding: int = 8):
        self.cfg = cfg
        self.fault = fault
        # Parts are built here so that bad parameters raise ConfigError now and the port widths are known.
        if problem := fault_problem(fault, FAULTS):
            refuse(self, problem)
        try:
            self.axi = MemPortToAxi4(32, cfg.bus_width, max_burst=max_burst, max_outstanding=max_outstanding)
        except ConfigError as e:
            refuse(self, str(e))
        self.accel = GemmAccelerator(cfg, fault)
        self.ctl = Axi4LiteControl()
        members: dict[str, wiring.Member] = {}
        for part, prefix in ((self.axi, "m_axi_"), (self.ctl, "s_axil_")):
            members |= {n: mem for n, mem in part.signature.members.items() if n.startswith(prefix)}
        members["error"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.accel = accel = self.accel
        m.submodules.axi = axi = self.axi
        m.submodules.ctl = ctl = self.ctl
        wiring.connect(m, accel.mem, axi.mem)
        # Done only when nothing is left in the AXI adapter: the last writes' B responses have arrived (and no
        # request is still being offered), so a host that sees STATUS.done can read the outputs at once.
        m.d.comb += [
            accel.start.eq(ctl.start),
            ctl.done.eq(accel.done & axi.idle & ~accel.mem.req.valid),
            self.error.eq(axi.error),
        ]
        for name, member in self.signature.members.items():
            if name == "error":
                continue
            outer, inner = getattr(self, name), getattr(axi if name.startswith("m_axi_") else ctl, name)
            m.d.comb += outer.eq(inner) if member.flow == Out else inner.eq(outer)
        return m
