"""`MemArbiter` with and without request FIFOs: every read answered to the port that asked, in its order, every
write in memory, and ``idle`` low while a request still waits in a FIFO."""

import random

import pytest
from amaranth.sim import Simulator

from hwforge.errors import ConfigError
from hwforge.rtl.lib.arbiter import MemArbiter


@pytest.mark.parametrize("input_buffers", [0, 2])
@pytest.mark.parametrize("seed", [1, 2])
def test_requests_are_routed_and_answered_in_order(input_buffers: int, seed: int) -> None:
    rng = random.Random(seed)
    n = 3
    dut = MemArbiter(n, 8, 32, input_buffers=input_buffers)
    # port i writes address 16*i + k, then reads it back, interleaved at random with reads of the initial contents
    todo = []
    for i in range(n):
        ops = []
        for k in range(12):
            ops.append(("w", 16 * i + k, (i << 8) | k))
            ops.append(("r", 16 * i + k, (i << 8) | k))
            ops.append(("r", 200 + k, 1000 + 200 + k))
        todo.append(ops)
    memory = {a: 1000 + a for a in range(256)}
    expected: list[list[int]] = [[] for _ in range(n)]
    got: list[list[int]] = [[] for _ in range(n)]

    async def bench(ctx):
        pending_resp: list[int] = []          # the memory's in-order read responses (values)
        for _ in range(2000):
            if not any(todo) and all(len(got[i]) == len(expected[i]) for i in range(n)) and not pending_resp:
                break
            for i in range(n):
                want = bool(todo[i]) and rng.random() < 0.7
                ctx.set(dut.up[i].req.valid, want)
                if want:
                    kind, addr, val = todo[i][0]
                    ctx.set(dut.up[i].req.payload.addr, addr)
                    ctx.set(dut.up[i].req.payload.write, kind == "w")
                    ctx.set(dut.up[i].req.payload.wdata, val if kind == "w" else 0)
                ctx.set(dut.up[i].resp.ready, rng.random() < 0.8)
            ctx.set(dut.down.req.ready, rng.random() < 0.8)
            ctx.set(dut.down.resp.valid, bool(pending_resp))
            ctx.set(dut.down.resp.payload, pending_resp[0] if pending_resp else 0)
            accepted = [ctx.get(dut.up[i].req.valid) and ctx.get(dut.up[i].req.ready) for i in range(n)]
            down_fire = ctx.get(dut.down.req.valid) and ctx.get(dut.down.req.ready)
            down = (ctx.get(dut.down.req.payload.addr), ctx.get(dut.down.req.payload.write),
                    ctx.get(dut.down.req.payload.wdata))
            resp_fire = pending_resp and ctx.get(dut.down.resp.ready)
            took = [ctx.get(dut.up[i].resp.valid) and ctx.get(dut.up[i].resp.ready) for i in range(n)]
            data = ctx.get(dut.up[0].resp.payload)
            await ctx.tick()
            for i in range(n):
                if took[i]:
                    got[i].append(data)
            if resp_fire:
                pending_resp.pop(0)
            if down_fire:
                addr, write, wdata = down
                if write:
                    memory[addr] = wdata
                else:
                    pending_resp.append(memory[addr])
            for i in range(n):
                if accepted[i]:
                    kind, addr, val = todo[i].pop(0)
                    if kind == "r":
                        expected[i].append(val)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not any(todo)
    assert got == expected
    assert all(memory[16 * i + k] == (i << 8) | k for i in range(n) for k in range(12))


def test_idle_is_low_while_a_request_waits_in_its_fifo() -> None:
    dut = MemArbiter(2, 8, 32, input_buffers=2)
    seen = []

    async def bench(ctx):
        ctx.set(dut.down.req.ready, 0)                 # the memory refuses: the write stays buffered
        ctx.set(dut.up[1].req.valid, 1)
        ctx.set(dut.up[1].req.payload.write, 1)
        seen.append(ctx.get(dut.idle))
        await ctx.tick()
        ctx.set(dut.up[1].req.valid, 0)
        for _ in range(3):
            seen.append(ctx.get(dut.idle))
            await ctx.tick()
        ctx.set(dut.down.req.ready, 1)
        await ctx.tick()
        seen.append(ctx.get(dut.idle))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [1, 0, 0, 0, 1]


def test_negative_buffers_are_refused() -> None:
    with pytest.raises(ConfigError, match="MemArbiter: input_buffers"):
        MemArbiter(2, input_buffers=-1)
