"""The DMA read engine (`hwforge.rtl.lib.dma`) in Amaranth's Python simulator, against a memory model with
configurable latency, random request/response stalls and random back-pressure on the ``data`` stream."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hwforge.errors import ConfigError
from hwforge.rtl.lib.dma import FAULTS, DmaReader, dma_cycles

ADDR_WIDTH = 12


def word_at(addr: int, data_width: int) -> int:
    """Memory contents: a pure function of the address, so the model and the checker agree."""
    return random.Random(addr * 1_000_003 + data_width).getrandbits(data_width)


@dataclass
class DmaRun:
    """What the memory model and the consumer saw during one simulation."""

    out: list[tuple[int, int]] = field(default_factory=list)      # (word, last) accepted from `data`
    violations: list[str] = field(default_factory=list)          # memory-port contract breaches
    last_fire: int = -1                                           # cycle of the final `data` transfer
    idle_at_end: bool = False


def run_dma(dut: DmaReader, commands: list[tuple[int, int]], *, latency: int = 1, req_stall: float = 0.0,
            resp_stall: float = 0.0, data_stall: float = 0.0, seed: int = 0, max_cycles: int = 20_000) -> DmaRun:
    """Feed ``commands`` ((base, length) pairs, back to back) to ``dut``; model memory; collect ``data``.

    The memory accepts a read in cycle ``t`` (unless a random request stall) and offers its word from cycle
    ``t + latency`` on, in order, dropping ``valid`` in randomly stalled cycles. It records a violation if
    ``resp.ready`` is low while it offers a word (the DMA's credit rule promises that never happens), if a
    request is a write, or if ``mem.req`` or ``data`` withdraws or changes an offer before it is taken (the
    `amaranth.lib.stream` rule).
    """
    rng = random.Random(seed)
    run = DmaRun()
    req, resp = dut.mem.req, dut.mem.resp
    total = sum(length for _, length in commands)
    mask = (1 << dut.addr_width) - 1

    async def bench(ctx) -> None:
        pending: deque[tuple[int, int]] = deque()
        cmd_i = 0
        held_req: int | None = None        # address of a request offered but not taken last cycle
        held_data: tuple[int, int] | None = None
        for cycle in range(max_cycles):
            cmd_valid = cmd_i < len(commands)
            ctx.set(dut.cmd.valid, cmd_valid)
            if cmd_valid:
                ctx.set(dut.cmd.payload.base, commands[cmd_i][0])
                ctx.set(dut.cmd.payload.length, commands[cmd_i][1])
            head_ok = bool(pending) and pending[0][0] <= cycle and rng.random() >= resp_stall
            ctx.set(resp.valid, head_ok)
            ctx.set(resp.payload, pending[0][1] if head_ok else 0)
            req_ready = rng.random() >= req_stall
            ctx.set(req.ready, req_ready)
            data_ready = rng.random() >= data_stall
            ctx.set(dut.data.ready, data_ready)

            req_valid = bool(ctx.get(req.valid))
            req_addr = int(ctx.get(req.payload.addr))
            if held_req is not None and (not req_valid or req_addr != held_req):
                run.violations.append(f"cycle {cycle}: request for {held_req} withdrawn or changed")
            held_req = req_addr if req_valid and not req_ready else None
            data_valid = bool(ctx.get(dut.data.valid))
            beat = (int(ctx.get(dut.data.payload.data)), int(ctx.get(dut.data.payload.last)))
            if held_data is not None and (not data_valid or beat != held_data):
                run.violations.append(f"cycle {cycle}: data word withdrawn or changed")
            held_data = beat if data_valid and not data_ready else None
            if req_ready and req_valid:
                if ctx.get(req.payload.write):
                    run.violations.append(f"cycle {cycle}: write request")
                pending.append((cycle + latency, word_at(req_addr & mask, dut.data_width)))
            if head_ok:
                if ctx.get(resp.ready):
                    pending.popleft()
                else:
                    run.violations.append(f"cycle {cycle}: memory response not accepted")
            if data_ready and data_valid:
                run.out.append(beat)
                run.last_fire = cycle
            if cmd_valid and ctx.get(dut.cmd.ready):
                cmd_i += 1
            await ctx.tick()
            if cmd_i == len(commands) and (len(run.out) >= total or (not pending and ctx.get(dut.idle))):
                break
        run.idle_at_end = bool(ctx.get(dut.idle))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return run


def expected(commands: list[tuple[int, int]], data_width: int) -> list[tuple[int, int]]:
    """The memory's words for each command, in address order (wrapping), ``last`` on each command's final word."""
    mask = (1 << ADDR_WIDTH) - 1
    return [(word_at((base + i) & mask, data_width), int(i == length - 1))
            for base, length in commands for i in range(length)]


def check(run: DmaRun, commands: list[tuple[int, int]], data_width: int) -> None:
    """Raise AssertionError unless ``run`` shows exactly the expected stream and a clean memory port."""
    assert not run.violations, run.violations[:3]
    want = expected(commands, data_width)
    assert len(run.out) == len(want), f"{len(run.out)} words out, expected {len(want)}"
    for i, (got, exp) in enumerate(zip(run.out, want, strict=True)):
        assert got == exp, f"word {i}: got (0x{got[0]:x}, last={got[1]}), expected (0x{exp[0]:x}, last={exp[1]})"
    assert run.idle_at_end, "not idle after the last word"


def random_commands(rng: random.Random, count: int, max_len: int) -> list[tuple[int, int]]:
    """``count`` commands of random bases (some wrap past the top of the address space) and lengths."""
    return [(rng.randrange(1 << ADDR_WIDTH), rng.randint(1, max_len)) for _ in range(count)]


@pytest.mark.parametrize("data_width", [32, 128])
@pytest.mark.parametrize("max_in_flight", [1, 4, 16])
def test_random_commands_under_stalls(max_in_flight, data_width):
    """Random commands, latencies and stall rates: exact words in order, `last` per command, resp never blocked."""
    for seed in range(8):
        rng = random.Random(seed * 100 + max_in_flight + data_width)
        commands = random_commands(rng, rng.randint(1, 6), 40)
        if seed == 0:
            commands.append((commands[0][0], 1))     # single-word command right behind another
        dut = DmaReader(ADDR_WIDTH, data_width, max_in_flight, len_width=6)   # lengths up to 40 < 2**6
        run = run_dma(dut, commands, latency=rng.randint(1, 6), req_stall=rng.choice([0.0, 0.3]),
                      resp_stall=rng.choice([0.0, 0.3]), data_stall=rng.choice([0.0, 0.5, 0.8]), seed=seed)
        check(run, commands, data_width)


def test_zero_length_command_is_skipped():
    """A zero-length command between two others produces no words and no `last`."""
    commands = [(5, 3), (9, 0), (20, 2)]
    run = run_dma(DmaReader(ADDR_WIDTH, 32, 4, len_width=4), commands, latency=2, data_stall=0.3, seed=1)
    check(run, [c for c in commands if c[1]], 32)


def measured_cycles(latency: int, max_in_flight: int, length: int = 256) -> int:
    """Stall-free cycles from `cmd.valid` to the last word of one ``length``-word command."""
    dut = DmaReader(ADDR_WIDTH, 32, max_in_flight, len_width=9)
    run = run_dma(dut, [(7, length)], latency=latency)
    check(run, [(7, length)], 32)
    return run.last_fire + 1


THROUGHPUT_TABLE = {  # (latency, max_in_flight) -> cycles for 256 words, no stalls (= dma_cycles)
    (1, 1): 769, (1, 4): 259, (1, 8): 259, (1, 16): 259,
    (4, 1): 1537, (4, 4): 388, (4, 8): 262, (4, 16): 262,
    (8, 1): 2561, (8, 4): 644, (8, 8): 328, (8, 16): 266,
}


@pytest.mark.parametrize("latency, max_in_flight", sorted(THROUGHPUT_TABLE))
def test_throughput_table(latency, max_in_flight):
    """Deterministic stall-free cycle counts: the documented table and the `dma_cycles` model."""
    got = measured_cycles(latency, max_in_flight)
    assert got == THROUGHPUT_TABLE[latency, max_in_flight] == dma_cycles(256, latency, max_in_flight)


def test_throughput_bounds():
    """Latency 4: >= 6 in flight streams one word per cycle; 1 in flight costs latency + 2 cycles per word."""
    for max_in_flight in (6, 7, 12):
        assert measured_cycles(4, max_in_flight) <= 256 + 4 + 2
    assert measured_cycles(4, 1) == 256 * (4 + 2) + 1     # + 1: the cycle that accepts the command


def test_back_to_back_commands_do_not_bubble():
    """Two commands with enough credits stream without a gap between them (next command issues early)."""
    dut = DmaReader(ADDR_WIDTH, 32, 8, len_width=8)
    run = run_dma(dut, [(0, 100), (500, 100)], latency=4)
    check(run, [(0, 100), (500, 100)], 32)
    assert run.last_fire + 1 == dma_cycles(200, 4, 8)


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_caught(fault):
    """Each deliberate defect fails the same checker the clean engine passes."""
    rng = random.Random(7)
    commands = random_commands(rng, 4, 20) + [(100, 8)]
    dut = DmaReader(ADDR_WIDTH, 32, 4, len_width=6, fault=fault)
    run = run_dma(dut, commands, latency=3, req_stall=0.2, resp_stall=0.2, data_stall=0.6, seed=3, max_cycles=3000)
    with pytest.raises(AssertionError) as info:
        check(run, commands, 32)
    symptom = {"drop_last_word": "last=0), expected", "reorder": "word 0: got", "ignore_credits": "not accepted"}
    assert symptom[fault] in str(info.value)


@pytest.mark.parametrize("kwargs, name", [
    ({"addr_width": 0}, "addr_width"), ({"addr_width": 33}, "addr_width"),
    ({"data_width": 16}, "data_width"), ({"data_width": 96}, "data_width"), ({"data_width": 1024}, "data_width"),
    ({"max_in_flight": 0}, "max_in_flight"), ({"max_in_flight": 33}, "max_in_flight"),
    ({"len_width": 0}, "len_width"), ({"fault": "nope"}, "fault"),
])
def test_bad_parameters(kwargs, name):
    with pytest.raises(ConfigError, match=name) as info:
        DmaReader(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data_width, max_in_flight", [(32, 1), (512, 16)])
def test_verilog_conversion(data_width, max_in_flight):
    dut = DmaReader(32, data_width, max_in_flight, len_width=16)
    text = verilog.convert(dut, name="dma_reader")
    assert "module dma_reader" in text and "mem__req__valid" in text and "data__payload" in text
