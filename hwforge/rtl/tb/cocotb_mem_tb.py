"""cocotb test for `mem_tb.v.j2` wrappers: reset, pulse start, wait for done, record counters as JSON.

Everything cycle-by-cycle happens inside the simulator; this coroutine only waits on two events, so it costs
nothing per clock. Plusargs: ``+result=<json path>``, ``+timeout_cycles=<n>``, ``+counters=a,b,c``.
"""

from __future__ import annotations

import json

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout

PERIOD_NS = 10


@cocotb.test()
async def run_to_done(dut) -> None:
    plus = cocotb.plusargs
    result_path = str(plus["result"])
    timeout_cycles = int(plus.get("timeout_cycles", 10_000_000))
    counters = [c for c in str(plus.get("counters", "")).split(",") if c]

    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    timed_out = False
    try:
        await with_timeout(RisingEdge(dut.dumped), timeout_cycles * PERIOD_NS, "ns")
    except SimTimeoutError:
        timed_out = True
    await ClockCycles(dut.clk, 2)
    result = {"timed_out": timed_out, "done": int(dut.done.value), "mem_error": int(dut.mem_error.value)}
    for c in counters:
        result[c] = int(getattr(dut, c).value)
    with open(result_path, "w") as f:
        json.dump(result, f)
