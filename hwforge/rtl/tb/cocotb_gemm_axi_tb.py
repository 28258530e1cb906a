"""cocotb bench for `GemmAxi4` instances driven the way a SoC host drives them: AXI4-Lite control, AXI4 memory.

Why this shape: the wrapper's job is to make the accelerator usable with nothing but standard AXI, so both sides
are independent models from cocotbext-axi: an `AxiRam` on ``<name>_m_axi_*`` (which also asserts AXI rules such
as the 4 KiB one) and an `AxiLiteMaster` on ``<name>_s_axil_*``, with seeded random pauses on all ten channels.
One Verilator model holds several instances side by side (good and deliberately broken), and the configured
ones run concurrently.

Per instance and run: load the program image at AXI address 0 (outputs zeroed), read STATUS, write CTRL=1,
poll STATUS until done (bit 1), read CYCLES, then dump the output words from the `AxiRam`. A monitor counts the
handshakes on the AXI4 side (R/W beats, B responses), records the cycle of the CTRL write and of the last B
response, and flags bursts outside the image. Comparing with the golden model is the caller's job (the bench
only reports). Results go to the JSON file named by ``+result=``; the run configuration comes from ``+config=``
(JSON: ``seed``, ``max_cycles``, ``instances``: ``name``, ``bus_width``, ``words``, ``out_lo``, ``pause``,
``runs``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

PERIOD_NS = 10
REG_CTRL, REG_STATUS, REG_CYCLES = 0x0, 0x4, 0x8


def pauses(rng: random.Random, prob: float) -> Iterator[bool]:
    """Endless pause pattern for a cocotbext-axi channel: paused in a fraction ``prob`` of cycles."""
    while True:
        yield rng.random() < prob


def _channels(master_or_slave) -> list:
    w, r = master_or_slave.write_if, master_or_slave.read_if
    return [w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel]


class Instance:
    """One `GemmAxi4` in the top: its memory, its host, its AXI monitor and its results."""

    def __init__(self, dut, spec: dict, seed: int):
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

        self.dut, self.clk, self.spec, self.name = dut, dut.clk, spec, spec["name"]
        self.lanes = spec["bus_width"] // 8
        self.words = [int(w) for w in spec["words"]]
        self.image = b"".join(w.to_bytes(self.lanes, "little") for w in self.words)
        self.out_lo = int(spec["out_lo"])
        size = 1 << max(16, (len(self.image) - 1).bit_length())
        self.ram = AxiRam(AxiBus.from_prefix(dut, f"{self.name}_m_axi"), self.clk, dut.rst, size=size)
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, f"{self.name}_s_axil"), self.clk, dut.rst)
        rng = random.Random(seed)
        p = spec.get("pause", 0.3)
        for ch in _channels(self.ram) + _channels(self.host):
            ch.set_pause_generator(pauses(random.Random(rng.getrandbits(32)), p))
        self.sig = {s: getattr(dut, f"{self.name}_{s}") for s in
                    ("m_axi_arvalid", "m_axi_arready", "m_axi_araddr", "m_axi_arlen", "m_axi_awvalid",
                     "m_axi_awready", "m_axi_awaddr", "m_axi_rvalid", "m_axi_rready", "m_axi_wvalid",
                     "m_axi_wready", "m_axi_bvalid", "m_axi_bready", "s_axil_awvalid", "s_axil_awready",
                     "s_axil_awaddr", "s_axil_wdata", "s_axil_wstrb", "error")}
        self.cycle = 0
        self.mon = self._fresh()

    @staticmethod
    def _fresh() -> dict:
        return {"r_beats": 0, "w_beats": 0, "b_resps": 0, "ar_bursts": 0, "aw_bursts": 0, "out_of_image": 0,
                "start_cycle": None, "last_b_cycle": None}

    async def monitor(self) -> None:
        """Count AXI handshakes each cycle (sampled after the edge, i.e. the ones completing at the next edge)."""
        s, image_bytes = self.sig, len(self.image)
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            self.cycle += 1
            mon = self.mon
            if int(s["m_axi_arvalid"].value) and int(s["m_axi_arready"].value):
                mon["ar_bursts"] += 1
                end = int(s["m_axi_araddr"].value) + (int(s["m_axi_arlen"].value) + 1) * self.lanes
                mon["out_of_image"] += end > image_bytes
            if int(s["m_axi_awvalid"].value) and int(s["m_axi_awready"].value):
                mon["aw_bursts"] += 1
                addr = int(s["m_axi_awaddr"].value)
                mon["out_of_image"] += not self.out_lo * self.lanes <= addr < image_bytes
            mon["r_beats"] += int(s["m_axi_rvalid"].value) & int(s["m_axi_rready"].value)
            mon["w_beats"] += int(s["m_axi_wvalid"].value) & int(s["m_axi_wready"].value)
            if int(s["m_axi_bvalid"].value) and int(s["m_axi_bready"].value):
                mon["b_resps"] += 1
                mon["last_b_cycle"] = self.cycle
            if (int(s["s_axil_awvalid"].value) and int(s["s_axil_awready"].value)
                    and int(s["s_axil_awaddr"].value) & 0xC == REG_CTRL and int(s["s_axil_wstrb"].value) & 1
                    and int(s["s_axil_wdata"].value) & 1):
                mon["start_cycle"] = self.cycle

    async def run(self, max_cycles: int) -> list[dict]:
        """The host program, ``runs`` times; one result dict per run."""
        out_bytes = self.image[self.out_lo * self.lanes:]
        results = []
        self.ram.write(0, self.image)
        for _ in range(int(self.spec.get("runs", 1))):
            self.ram.write(self.out_lo * self.lanes, bytes(len(out_bytes)))     # zero outputs of a previous run
            self.mon = self._fresh()
            status_before = await self.host.read_dword(REG_STATUS)
            await self.host.write_dword(REG_CTRL, 1)
            begin, polls, status = self.cycle, 0, 0
            while not status & 2 and self.cycle - begin < max_cycles:
                status = await self.host.read_dword(REG_STATUS)
                polls += 1
            res = {"status_before": status_before, "status": status, "polls": polls, "timed_out": not status & 2,
                   "done_seen_cycle": self.cycle, "error": int(self.sig["error"].value)}
            res["cycles"] = await self.host.read_dword(REG_CYCLES)
            res |= self.mon
            dump = self.ram.read(self.out_lo * self.lanes, len(self.words) * self.lanes - self.out_lo * self.lanes)
            res["outputs"] = [int.from_bytes(dump[i:i + self.lanes], "little") for i in range(0, len(dump), self.lanes)]
            # the program itself (everything below out_lo) must be untouched
            res["clobbered"] = int(self.ram.read(0, self.out_lo * self.lanes) != self.image[:self.out_lo * self.lanes])
            results.append(res)
            if res["timed_out"]:
                break
        return results


@cocotb.test()
async def gemm_axi(dut) -> None:
    """Run every configured instance concurrently; write ``{name: [run results]}`` as JSON."""
    with open(str(cocotb.plusargs["config"])) as f:
        config = json.load(f)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    insts = [Instance(dut, spec, config["seed"] * 1000 + k) for k, spec in enumerate(config["instances"])]
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    for inst in insts:
        cocotb.start_soon(inst.monitor())
    tasks = [(inst.name, cocotb.start_soon(inst.run(int(config.get("max_cycles", 200_000))))) for inst in insts]
    results = {name: await task for name, task in tasks}
    with open(str(cocotb.plusargs["result"]), "w") as f:
        json.dump(results, f)
