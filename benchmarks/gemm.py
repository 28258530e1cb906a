"""Benchmark: `gemm` RTL cycles against SCALE-Sim's fold formula (and SCALE-Sim itself), PE utilisation, and
simulation speed of Verilator against Amaranth's Python simulator.

    python benchmarks/gemm.py [--quick] [--out PATH]

Writes ``benchmarks/results/gemm.json`` (``--quick``: ``benchmarks/results/quick/gemm.json``; see ``common.py``).

For each array size, dataflow and GEMM shape (some not multiples of the array) it runs one random int8 layer on
the Verilator model (seeded stalls off, so compute and memory cycles are the design's own), checks the output
bit-exactly against the integer reference, and reports:

- ``compute``: the RTL's compute-cycle counter (cycles the array streams: fill, MACs, drain),
- ``formula``: SCALE-Sim's analytical cycles, ``ceil(Sr/R)*ceil(Sc/C) * (2R + C + T - 2)`` with
  (Sr, Sc, T) = (M, N, K) for OS and (K, N, M) for WS,
- ``scalesim``: SCALE-Sim's own compute cycles if the package runs (it omits the R-cycle OS drain and counts
  0-based: scalesim = formula - R*folds - 1 for OS, formula - 1 for WS),
- ``total``: all cycles from start to done including operand loads and output writes over the 32-bit port,
- utilisation = MACs / (rows * cols * cycles), against compute cycles and against total cycles.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_output_options, output_path, write_results  # noqa: E402

from hwforge.ir.quant import quantize_multiplier  # noqa: E402
from hwforge.rtl.gemm import (  # noqa: E402
    GemmConfig,
    GemmLayer,
    build_program,
    fold_cycles_formula,
    reference,
    roofline_cycles,
    rtl_compute_cycles,
)
from hwforge.rtl.gemm.sim import simulate  # noqa: E402

ARRAYS = [(4, 4), (8, 8), (16, 16)]
SHAPES = [(16, 16, 16), (33, 40, 17), (64, 64, 64), (100, 72, 24)]
QUICK_ARRAYS = [(4, 4)]
PYSIM_CYCLES = 20_000
QUICK_SHAPES = [(16, 16, 16), (33, 40, 17)]


def _layer(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[GemmLayer, np.ndarray]:
    w = rng.integers(-128, 128, size=(n, k))
    b = rng.integers(-2000, 2000, size=n)
    mult, shift = quantize_multiplier(1.0 / (k * 40))
    layer = GemmLayer(weight=w, bias=b, multiplier=mult, shift=shift, relu=False, out_bits=8)
    return layer, rng.integers(-128, 128, size=m * k)


def run_cycles(arrays: list[tuple[int, int]], shapes: list[tuple[int, int, int]], workdir: Path) -> list[dict]:
    from hwforge.rtl.gemm.scalesim import scalesim_cycles

    rows = []
    rng = np.random.default_rng(0)
    for r, c in arrays:
        for dataflow in ("os", "ws"):
            cfg = GemmConfig(rows=r, cols=c, dataflow=dataflow)
            for m, k, n in shapes:
                layer, x = _layer(rng, m, k, n)
                program = build_program(cfg, [layer], x)
                start = time.monotonic()
                sim = simulate(cfg, program, seed=0, stall_prob=0.0, latency=1, work_dir=workdir / "run")
                wall = time.monotonic() - start
                exact = bool(np.array_equal(sim.outputs[0], reference(cfg, [layer], x)[0]))
                folds, formula = fold_cycles_formula(cfg, m, k, n)
                m_tile = program.plans[0].m_tile
                _, chunked = rtl_compute_cycles(cfg, m, k, n, m_tile)
                ss = scalesim_cycles(r, c, dataflow, m, k, n, workdir / "scalesim")
                bound = roofline_cycles(cfg, m, k, n, m_tile)
                macs = m * k * n
                rows.append({
                    "array": f"{r}x{c}", "dataflow": dataflow, "M": m, "K": k, "N": n, "exact": exact,
                    "folds": folds, "compute_cycles": sim.compute_cycles, "formula_cycles": formula,
                    "m_tile": m_tile, "formula_chunked_cycles": chunked,
                    "scalesim_cycles": None if ss is None else ss["total_cycles"],
                    "total_cycles": sim.cycles, "bound_cycles": bound, "total_over_bound": sim.cycles / bound,
                    "bytes_read": sim.bytes_read, "bytes_written": sim.bytes_written,
                    "util_compute": macs / (r * c * sim.compute_cycles),
                    "util_total": macs / (r * c * sim.cycles), "sim_seconds": round(wall, 2),
                })
                print(f"  {r}x{c} {dataflow} {m}x{k}x{n}: compute {sim.compute_cycles} formula {formula}",
                      file=sys.stderr)
    return rows


def run_sim_speed(workdir: Path) -> dict:
    """Cycles per second of the same 4x4 design and program on Verilator and on Amaranth's Python simulator."""
    from amaranth.sim import Simulator

    from hwforge.fpga import OnChipMemorySoC
    from hwforge.rtl.gemm import GemmAccelerator

    cfg = GemmConfig(rows=4, cols=4)
    layer, x = _layer(np.random.default_rng(1), 256, 64, 64)
    program = build_program(cfg, [layer], x)
    simulate(cfg, program, seed=0, stall_prob=0.0, latency=1, work_dir=workdir / "warm")  # build once
    start = time.monotonic()
    vsim = simulate(cfg, program, seed=0, stall_prob=0.0, latency=1, work_dir=workdir / "speed")
    v_wall = time.monotonic() - start

    soc = OnChipMemorySoC(lambda: GemmAccelerator(cfg), program.words, cfg.bus_width, depth=program.size)
    sim = Simulator(soc)
    sim.add_clock(1e-8)
    cycles = {"n": 0}

    async def bench(ctx):  # a fixed budget: pysim would need hours for the whole program
        while not ctx.get(soc.done) and cycles["n"] < PYSIM_CYCLES:
            await ctx.tick()
            cycles["n"] += 1

    sim.add_testbench(bench)
    start = time.monotonic()
    sim.run()
    p_wall = time.monotonic() - start
    return {
        "design": f"gemm 4x4 OS, one 256x64x64 layer (pysim: first {PYSIM_CYCLES} cycles)",
        "verilator_cycles": vsim.cycles, "verilator_seconds": round(v_wall, 3),
        "verilator_cycles_per_s": vsim.cycles / v_wall,
        "pysim_cycles": cycles["n"], "pysim_seconds": round(p_wall, 3),
        "pysim_cycles_per_s": cycles["n"] / p_wall,
        "ratio": (vsim.cycles / v_wall) / (cycles["n"] / p_wall),
        "note": "Verilator wall time includes simulator start, memory load and dump (build cached)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_options(parser, "gemm", "one array size and two shapes")
    args = parser.parse_args()
    arrays, shapes = (QUICK_ARRAYS, QUICK_SHAPES) if args.quick else (ARRAYS, SHAPES)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_cycles(arrays, shapes, Path(tmp))
        speed = run_sim_speed(Path(tmp))

    header = ("array", "df", "M", "K", "N", "exact", "folds", "compute", "formula", "formula (WS M-chunks)",
              "scalesim", "total", "roofline bound", "total / bound",
              "util(compute)", "util(total)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print(f"| {row['array']} | {row['dataflow']} | {row['M']} | {row['K']} | {row['N']} | {row['exact']} | "
              f"{row['folds']} | {row['compute_cycles']} | {row['formula_cycles']} | {row['formula_chunked_cycles']} | "
              f"{row['scalesim_cycles']} | "
              f"{row['total_cycles']} | {row['bound_cycles']} | {row['total_over_bound']:.2f} | "
              f"{row['util_compute']:.3f} | {row['util_total']:.3f} |")
    print()
    print(f"Simulation speed ({speed['design']}): Verilator {speed['verilator_cycles_per_s']:,.0f} cycles/s, "
          f"Amaranth pysim {speed['pysim_cycles_per_s']:,.0f} cycles/s, ratio {speed['ratio']:.0f}x")
    write_results(output_path(args), {"cycles": rows, "sim_speed": speed})


if __name__ == "__main__":
    main()
