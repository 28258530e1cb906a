"""cocotb bench for `MemPortToAxi4` instances against cocotbext-axi's `AxiRam`, under random back-pressure.

Why this shape: the adapter's job is protocol translation, so the reference is an independent AXI4 slave model
(cocotbext-axi, which also asserts the 4 KiB rule) rather than anything hwforge wrote. One Verilator model holds
several adapters side by side (``<name>_mem__*`` and ``<name>_m_axi_*`` ports; good and deliberately broken
variants), so one build and one simulation cover every configuration; each instance gets its own `AxiRam`, its
own pause generators on all five channels and its own seeded traffic, driven concurrently.

Per instance, a traffic program (random writes, consecutive read runs including one across a 4 KiB page,
write-then-read-same-address pairs, a random mix) is driven on the memory port with random request gaps and
random ``resp.ready`` back-pressure. Expected read data comes from a Python model of the memory updated in
program order (the memory-port contract), so a read that overtakes a write shows up as a mismatch. At the end
the `AxiRam` contents are compared with the model (catches lost or partial writes). Results go to the JSON file
named by ``+result=``; the run configuration comes from ``+config=`` (JSON: ``seed``, ``instances``).
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterator

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

PERIOD_NS = 10


def traffic(rng: random.Random, addr_width: int, data_width: int, page_words: int) -> list[tuple]:
    """A program of ``("w", addr, data)`` / ``("r", addr)`` operations exercising the adapter's cases."""
    words = 1 << addr_width
    ops: list[tuple] = []

    def data() -> int:
        return rng.getrandbits(data_width)

    for _ in range(40):                                        # scattered writes
        ops.append(("w", rng.randrange(words), data()))
    start = page_words - 5                                     # a consecutive run across a 4 KiB boundary
    ops += [("r", (start + i) % words) for i in range(24)]
    for _ in range(10):                                        # consecutive read runs (coalescing)
        base, n = rng.randrange(words), rng.randint(1, 40)
        ops += [("r", (base + i) % words) for i in range(n)]
    for _ in range(30):                                        # read-after-write to the same address
        a = rng.randrange(words)
        ops += [("w", a, data()), ("r", a)]
    base = rng.randrange(words)                                # a written run read back as a run
    ops += [("w", (base + i) % words, data()) for i in range(20)]
    ops += [("r", (base + i) % words) for i in range(20)]
    for _ in range(80):                                        # random mix, biased to nearby addresses
        a = rng.randrange(words) if rng.random() < 0.5 else rng.randrange(min(words, 64))
        ops.append(("w", a, data()) if rng.random() < 0.4 else ("r", a))
    return ops


def pauses(rng: random.Random, prob: float) -> Iterator[bool]:
    """Endless pause pattern for a cocotbext-axi channel: paused in a fraction ``prob`` of cycles."""
    while True:
        yield rng.random() < prob


class Instance:
    """One adapter in the top: its traffic driver, response checker, AR monitor and results."""

    def __init__(self, dut, clk, spec: dict, seed: int):
        from cocotbext.axi import AxiBus, AxiRam

        self.dut, self.clk, self.spec = dut, clk, spec
        self.name = spec["name"]
        self.aw, self.dw = spec["addr_width"], spec["data_width"]
        self.lanes = self.dw // 8
        self.page_words = 4096 // self.lanes
        self.rng = random.Random(seed)
        self.sig = {s: getattr(dut, f"{self.name}_{s}") for s in
                    ("mem__req__valid", "mem__req__payload", "mem__req__ready", "mem__resp__valid",
                     "mem__resp__payload", "mem__resp__ready", "m_axi_arvalid", "m_axi_arready", "m_axi_araddr",
                     "m_axi_arlen", "error", "idle")}
        size = 1 << (self.aw + self.lanes.bit_length() - 1)
        self.ram = AxiRam(AxiBus.from_prefix(dut, f"{self.name}_m_axi"), clk, dut.rst, size=size)
        init = self.rng.randbytes(size)
        self.ram.write(0, init)
        self.model = [int.from_bytes(init[i * self.lanes:(i + 1) * self.lanes], "little") for i in range(1 << self.aw)]
        self.written: set[int] = set()
        p = spec.get("pause", 0.3)
        wif, rif = self.ram.write_if, self.ram.read_if
        for ch, prob in ((wif.aw_channel, p), (wif.w_channel, spec.get("w_pause", p)), (wif.b_channel, p),
                         (rif.ar_channel, p), (rif.r_channel, p)):
            ch.set_pause_generator(pauses(random.Random(self.rng.getrandbits(32)), prob))
        self.ops = traffic(self.rng, self.aw, self.dw, self.page_words)
        self.expected: deque[tuple[int, int]] = deque()
        self.res = {"ops": len(self.ops), "reads": 0, "writes": 0, "mismatches": 0, "extra": 0, "missing": 0,
                    "bursts": 0, "multi_beat_bursts": 0, "max_burst": 0, "page_crossings": 0,
                    "mem_mismatches": 0, "error": 0, "idle": 0, "first_mismatch": None}
        self.driver_done = False

    def _pack(self, op: tuple) -> int:
        addr = op[1]
        if op[0] == "w":
            return addr | (1 << self.aw) | (op[2] << (self.aw + 1))
        return addr

    async def drive(self) -> None:
        """Offer the program one request at a time, with random idle cycles between requests."""
        s = self.sig
        i = 0
        while i < len(self.ops):
            await RisingEdge(self.clk)
            valid = self.rng.random() >= self.spec.get("gap", 0.15)
            s["mem__req__valid"].value = int(valid)
            s["mem__req__payload"].value = self._pack(self.ops[i])
            await ReadOnly()
            if valid and int(s["mem__req__ready"].value):
                op = self.ops[i]
                if op[0] == "w":
                    self.model[op[1]] = op[2]
                    self.written.add(op[1])
                    self.res["writes"] += 1
                else:
                    self.expected.append((op[1], self.model[op[1]]))
                    self.res["reads"] += 1
                i += 1
        await RisingEdge(self.clk)
        s["mem__req__valid"].value = 0
        self.driver_done = True

    async def check(self, max_cycles: int) -> None:
        """Take responses with random back-pressure, compare them in order, and watch AR handshakes."""
        s = self.sig
        cycles = 0
        while cycles < max_cycles:
            cycles += 1
            await RisingEdge(self.clk)
            ready = self.rng.random() >= self.spec.get("resp_stall", 0.2)
            s["mem__resp__ready"].value = int(ready)
            await ReadOnly()
            if int(s["m_axi_arvalid"].value) and int(s["m_axi_arready"].value):
                addr, beats = int(s["m_axi_araddr"].value), int(s["m_axi_arlen"].value) + 1
                self.res["bursts"] += 1
                self.res["multi_beat_bursts"] += beats > 1
                self.res["max_burst"] = max(self.res["max_burst"], beats)
                self.res["page_crossings"] += (addr % 4096) + beats * self.lanes > 4096
            if ready and int(s["mem__resp__valid"].value):
                got = int(s["mem__resp__payload"].value)
                if not self.expected:
                    self.res["extra"] += 1
                else:
                    addr, want = self.expected.popleft()
                    if got != want:
                        self.res["mismatches"] += 1
                        if self.res["first_mismatch"] is None:
                            self.res["first_mismatch"] = {"addr": addr, "got": hex(got), "want": hex(want)}
            if self.driver_done and not self.expected and int(s["idle"].value):
                break
        self.res["missing"] = len(self.expected)
        self.res["cycles"] = cycles
        await ClockCycles(self.clk, 20)                          # let a broken adapter show extra beats / errors
        await ReadOnly()
        self.res["error"] = int(s["error"].value)
        self.res["idle"] = int(s["idle"].value)
        for a in sorted(self.written):
            got = int.from_bytes(self.ram.read(a * self.lanes, self.lanes), "little")
            self.res["mem_mismatches"] += got != self.model[a]


@cocotb.test()
async def axi_adapters(dut) -> None:
    """Run every configured instance concurrently; write the per-instance results as JSON."""
    plus = cocotb.plusargs
    with open(str(plus["config"])) as f:
        config = json.load(f)
    max_cycles = int(config.get("max_cycles", 50_000))
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    insts = [Instance(dut, dut.clk, spec, config["seed"] * 1000 + k) for k, spec in enumerate(config["instances"])]
    for inst in insts:
        inst.sig["mem__req__valid"].value = 0
        inst.sig["mem__resp__ready"].value = 0
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    running = [(inst, cocotb.start_soon(inst.drive()), cocotb.start_soon(inst.check(max_cycles))) for inst in insts]
    for inst, driver, checker in running:
        await checker
        if not inst.driver_done:                                 # a hung adapter: stop offering requests
            driver.cancel()
    with open(str(plus["result"]), "w") as f:
        json.dump({inst.name: inst.res for inst in insts}, f)


@cocotb.test()
async def axil_control(dut) -> None:
    """Start the countdown accelerator behind `Axi4LiteControl` twice through cocotbext-axi's AxiLiteMaster,
    poll STATUS until done and record STATUS/CYCLES (JSON to ``+result=``)."""
    from cocotbext.axi import AxiLiteBus, AxiLiteMaster

    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "ctl_s_axil"), dut.clk, dut.rst)
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    runs = []
    for _ in range(2):
        before = await master.read_dword(0x4)
        await master.write_dword(0x0, 1)
        polls, status = 0, 0
        while not status & 2 and polls < 1000:
            status = await master.read_dword(0x4)
            polls += 1
        runs.append({"status_before": before, "status": status, "cycles": await master.read_dword(0x8),
                     "polls": polls})
    with open(str(cocotb.plusargs["result"]), "w") as f:
        json.dump(runs, f)
