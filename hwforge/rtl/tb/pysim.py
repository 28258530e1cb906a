"""Run a memory-port accelerator in Amaranth's Python simulator against a Python memory model.

Much slower per cycle than Verilator but needs no C++ build, so it suits tiny programs in unit tests (other
widths and bus sizes without another Verilator build) and machines without Verilator. The memory model
accepts every request and answers reads after ``latency`` cycles, in order.
"""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from hwforge.errors import VerificationError


def run_pysim(dut, words: list[int], *, latency: int = 2, max_cycles: int = 200_000,
              counters: tuple[str, ...] = ()) -> tuple[list[int], dict[str, int]]:
    """Simulate ``dut`` (ports ``start``, ``done``, ``mem``) on a copy of ``words``; return memory and counters."""
    mem = dict(enumerate(int(w) for w in words))
    req, resp = dut.mem.req, dut.mem.resp
    result: dict[str, int] = {}

    async def bench(ctx) -> None:
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        pending: deque[tuple[int, int]] = deque()
        for cycle in range(max_cycles):
            head_ok = bool(pending) and pending[0][0] <= cycle
            ctx.set(resp.valid, head_ok)
            ctx.set(resp.payload, pending[0][1] if head_ok else 0)
            ctx.set(req.ready, 1)
            fire_req = ctx.get(req.valid)
            payload = ctx.get(req.payload)
            fire_resp = head_ok and ctx.get(resp.ready)
            if fire_req:
                if payload.write:
                    mem[int(payload.addr)] = int(payload.wdata)
                else:
                    pending.append((cycle + latency, mem.get(int(payload.addr), 0)))
            if fire_resp:
                pending.popleft()
            await ctx.tick()
            if ctx.get(dut.done):
                for c in counters:
                    result[c] = int(ctx.get(getattr(dut, c)))
                result["done"] = 1
                return
        result["done"] = 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    if not result.get("done"):
        raise VerificationError(f"python simulation did not finish within {max_cycles} cycles")
    size = max(mem) + 1 if mem else 0
    return [mem.get(i, 0) for i in range(size)], result
