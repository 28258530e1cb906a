"""Benchmark: `gemm` RTL cycles against the roofline cycle model and its bound, SCALE-Sim's fold formula (and
SCALE-Sim itself), PE utilisation, bytes moved against the minimum, and simulation speed.

    python benchmarks/gemm.py [--quick] [--out PATH] [--ray-address ADDR]

Writes ``benchmarks/results/gemm.json`` (``--quick``: ``benchmarks/results/quick/gemm.json``; see ``common.py``).

Each hardware configuration (array, dataflow, bus width; ``reads_in_flight`` 32 so that a 20-cycle memory can be
streamed at full rate; ``out_depth`` rows x 256 so that OS can stage a 256-wide row block) is one Ray task (a
local Ray instance by default, a cluster with ``--ray-address``): it builds the Verilator model once and runs
every workload at memory latencies 3 and 20 (no stalls, so the cycles are the design's own). The 4x4 array
skips 256^3 (millions of cycles per run); ECP5 builds of 4x4 and 8x8 run as tasks beside them (``--no-fpga``).
Workloads are GEMMs from 16^3 to 256^3 and odd sizes, two odd-channel convolutions through the hardware im2col
gather (one stride 2), and the gemm zoo models whole (``mlp-digits``, ``cnn-digits``, every
test image). Every run is checked bit-exactly against the integer reference, and reports:

- ``total``: all cycles from start to done (descriptor fetch, loads, streaming, stores);
- ``predicted``: `hwforge.rtl.gemm.cycles.predict_layer_cycles` (the cycle model `hwforge search` prices), and
  ``total / predicted``;
- ``bound``: the roofline, ``max(compute, minimum bytes / bus bytes per cycle)``, and ``total / bound``;
- ``util(total)`` = MACs / (rows * cols * total); ``bytes / min``: bytes moved over each operand once;
- ``compute`` (the RTL's streaming-cycle counter), ``formula`` (SCALE-Sim's
  ``ceil(Sr/R)*ceil(Sc/C) * (2R + C + T - 2)``, (Sr, Sc, T) = (M, N, K) for OS and (K, N, M) for WS) and
  ``scalesim`` (SCALE-Sim's own compute cycles, if the package runs: formula - R*folds - 1 for OS,
  formula - 1 for WS).
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
    conv2d_gather,
    fold_cycles_formula,
    minimum_bytes,
    predict_program_cycles,
    reference,
    roofline_cycles,
    rtl_compute_cycles,
)
from hwforge.rtl.gemm.sim import simulate  # noqa: E402

#: (rows, cols, bus widths): each array with the buses that span its memory- to compute-bound regimes
CONFIGS = [(4, 4, (32, 64)), (8, 8, (32, 128)), (16, 16, (128, 256))]
#: 256^3 on the 4x4 array is millions of cycles per run (WS: its M-chunks); the larger arrays cover that size
SKIP = {(4, 4): [(256, 256, 256)]}
SHAPES = [(16, 16, 16), (64, 64, 64), (128, 128, 128), (256, 256, 256), (33, 40, 17), (100, 72, 24)]
#: (channels, height/width, out channels, kernel, stride, padding): odd channel counts, one stride 2
CONVS = [(3, 10, 7, 3, 2, 1), (5, 12, 11, 3, 1, 1)]
ZOO = ["mlp-digits", "cnn-digits"]
LATENCIES = (3, 20)
READS_IN_FLIGHT = 32
#: the staging buffer holds an output row block of this many columns (OS needs rows x N; WS chunks M by it)
OUT_COLUMNS = 256
QUICK_CONFIGS = [(4, 4, (32,))]
QUICK_SHAPES = [(16, 16, 16), (33, 40, 17)]
QUICK_CONVS = CONVS[:1]
PYSIM_CYCLES = 20_000
#: ECP5 builds (ULX3S-85F): int8 OS arrays with the default memory system. 16x16 needs 256 multipliers, more than
#: the 156 MULT18X18D of the LFE5U-85F (the rest would become LUT multipliers), so it is not built.
FPGA_ARRAYS = [(4, 4), (8, 8)]
FPGA_BOARD = "ulx3s-85f"


def _layer(rng: np.random.Generator, m: int, k: int, n: int, a_gather: np.ndarray | None = None,
           sources: int | None = None) -> tuple[GemmLayer, np.ndarray]:
    w = rng.integers(-128, 128, size=(n, k))
    b = rng.integers(-2000, 2000, size=n)
    mult, shift = quantize_multiplier(1.0 / (k * 40))
    layer = GemmLayer(weight=w, bias=b, multiplier=mult, shift=shift, relu=False, out_bits=8, a_gather=a_gather)
    return layer, rng.integers(-128, 128, size=m * k if sources is None else sources)


def _workloads(shapes, convs, zoo) -> list[dict]:
    """What every configuration runs: ``kind`` gemm / conv / zoo with its parameters."""
    return ([{"kind": "gemm", "shape": s} for s in shapes] + [{"kind": "conv", "conv": c} for c in convs]
            + [{"kind": "zoo", "model": z} for z in zoo])


def _program(cfg: GemmConfig, work: dict, workdir: Path):
    """``(name, program, layers, x, shapes)`` of one workload on ``cfg``; ``shapes`` are per-layer
    ``(M, K, N, distinct A elements)``."""
    rng = np.random.default_rng(0)
    if work["kind"] == "gemm":
        m, k, n = work["shape"]
        layer, x = _layer(rng, m, k, n)
        return f"{m}x{k}x{n}", build_program(cfg, [layer], x), [layer], x, [(m, k, n, m * k)]
    if work["kind"] == "conv":
        c, hw, co, kk, st, pad = work["conv"]
        table = conv2d_gather(1, c, hw, hw, kk, kk, (st, st), (pad, pad))
        layer, x = _layer(rng, table.shape[0], table.shape[1], co, table, c * hw * hw)
        m, k = table.shape
        return (f"conv {c}x{hw}x{hw}->{co} k{kk} s{st}", build_program(cfg, [layer], x), [layer], x,
                [(m, k, co, int(np.unique(table[table >= 0]).size))])
    from hwforge.compiler.artifact import read_manifest
    from hwforge.compiler.driver import compile_model
    from hwforge.compiler.targets import get_target

    out = workdir / f"zoo-{work['model']}"
    sets = [f"{key}={value}" for key, value in cfg.to_dict().items()] + ["samples=all"]
    result = compile_model(work["model"], "gemm", out, sets)
    _, _, layers, x, program = get_target("gemm")._program(out, read_manifest(out))
    shapes = [(r.details["m"], r.details["k"], r.details["n"],
               r.details["m"] * r.details["k"] if layer.a_gather is None
               else int(np.unique(layer.a_gather[layer.a_gather >= 0]).size))
              for r, layer in zip(result.report.layers, layers, strict=True)]
    return work["model"], program, layers, x, shapes


def run_config(r: int, c: int, dataflow: str, bus: int, works: list[dict], latencies: tuple[int, ...],
               workdir: str) -> list[dict]:
    """Every workload at every latency on one configuration (one Verilator build)."""
    from hwforge.rtl.gemm.scalesim import scalesim_cycles

    cfg = GemmConfig(rows=r, cols=c, dataflow=dataflow, bus_width=bus, reads_in_flight=READS_IN_FLIGHT,
                     out_depth=r * OUT_COLUMNS)
    base = Path(workdir) / f"{r}x{c}-{dataflow}-{bus}"
    rows = []
    for work in works:
        name, program, layers, x, shapes = _program(cfg, work, base)
        expected = reference(cfg, layers, x)
        macs = sum(m * k * n for m, k, n, _ in shapes)
        compute = formula = bound = least = 0
        ss_total: int | None = 0
        for (m, k, n, a), plan in zip(shapes, program.plans, strict=True):
            compute += rtl_compute_cycles(cfg, m, k, n, plan.m_tile)[1]
            formula += fold_cycles_formula(cfg, m, k, n)[1]
            bound += roofline_cycles(cfg, m, k, n, plan.m_tile, a)
            least += minimum_bytes(cfg, m, k, n, a)
            ss = scalesim_cycles(r, c, dataflow, m, k, n, base / "scalesim") if ss_total is not None else None
            ss_total = None if ss is None else ss_total + ss["total_cycles"]
        for latency in latencies:
            start = time.monotonic()
            sim = simulate(cfg, program, seed=0, stall_prob=0.0, latency=latency, work_dir=base / "run")
            wall = time.monotonic() - start
            exact = all(np.array_equal(s, e) for s, e in zip(sim.outputs, expected, strict=True))
            predicted = sum(predict_program_cycles(program, latency, 0.0))
            moved = sim.bytes_read + sim.bytes_written
            rows.append({
                "array": f"{r}x{c}", "dataflow": dataflow, "bus_width": bus, "latency": latency,
                "reads_in_flight": READS_IN_FLIGHT, "workload": name, "layers": len(shapes), "macs": macs,
                "exact": exact, "total_cycles": sim.cycles, "predicted_cycles": predicted,
                "total_over_predicted": sim.cycles / predicted, "bound_cycles": bound,
                "total_over_bound": sim.cycles / bound, "bound_is": "compute" if bound == compute else "memory",
                "util_total": macs / (r * c * sim.cycles), "util_compute": macs / (r * c * sim.compute_cycles),
                "bytes_moved": moved, "bytes_minimum": least, "bytes_over_minimum": moved / least,
                "compute_cycles": sim.compute_cycles, "compute_expected": compute, "formula_cycles": formula,
                "scalesim_cycles": ss_total, "sim_seconds": round(wall, 2),
            })
            print(f"  {r}x{c} {dataflow} b{bus} L{latency} {name}: total {sim.cycles} predicted {predicted} "
                  f"bound {bound} exact {exact}", file=sys.stderr, flush=True)
    return rows


def build_fpga(r: int, c: int, workdir: str) -> dict:
    """One real Yosys/nextpnr build of an r x c int8 OS gemm (a one-layer program in on-chip RAM)."""
    from hwforge.fpga import OnChipMemorySoC, build_bitstream
    from hwforge.rtl.gemm import GemmAccelerator

    cfg = GemmConfig(rows=r, cols=c)
    layer, x = _layer(np.random.default_rng(2), 16, 16, 16)
    program = build_program(cfg, [layer], x)
    design = OnChipMemorySoC(lambda: GemmAccelerator(cfg), program.words, cfg.bus_width, depth=program.size)
    report = build_bitstream(design, FPGA_BOARD, Path(workdir) / f"fpga-{r}x{c}")
    print(f"  build {r}x{c}: {report.report}", file=sys.stderr, flush=True)
    return {"array": f"{r}x{c}", "board": FPGA_BOARD, **report.to_dict(), "build_seconds": round(report.seconds, 1)}


def run_cycles(configs, works: list[dict], latencies: tuple[int, ...], fpga: list[tuple[int, int]], workdir: Path,
               ray_address: str | None) -> tuple[list[dict], list[dict]]:
    """Fan the configurations (one Verilator build each) and the FPGA builds out as Ray tasks; gather in order."""
    import ray

    ray.init(address=ray_address, include_dashboard=False, log_to_driver=True, logging_level="ERROR")
    try:
        task = ray.remote(num_cpus=1)(run_config)
        builds = [ray.remote(num_cpus=1)(build_fpga).remote(r, c, str(workdir)) for r, c in fpga]
        futures = [task.remote(r, c, df, bus, [w for w in works if w.get("shape") not in SKIP.get((r, c), [])],
                               latencies, str(workdir))
                   for r, c, buses in configs for bus in buses for df in ("os", "ws")]
        return [row for rows in ray.get(futures) for row in rows], ray.get(builds)
    finally:
        ray.shutdown()


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
    add_output_options(parser, "gemm", "one 4x4 configuration, two GEMMs and one convolution")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster to run on (default: start a local instance)")
    parser.add_argument("--no-fpga", action="store_true", help="skip the ECP5 builds (a few minutes each)")
    args = parser.parse_args()
    if args.quick:
        configs, works = QUICK_CONFIGS, _workloads(QUICK_SHAPES, QUICK_CONVS, [])
    else:
        configs, works = CONFIGS, _workloads(SHAPES, CONVS, ZOO)
    with tempfile.TemporaryDirectory() as tmp:
        fpga = [] if args.quick or args.no_fpga else FPGA_ARRAYS
        rows, builds = run_cycles(configs, works, LATENCIES, fpga, Path(tmp), args.ray_address)
        speed = run_sim_speed(Path(tmp))

    header = ("array", "df", "bus", "L", "workload", "exact", "total", "predicted", "total / predicted", "bound",
              "bound is", "total / bound", "util(total)", "bytes / min", "compute", "formula", "scalesim")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print(f"| {row['array']} | {row['dataflow']} | {row['bus_width']} | {row['latency']} | {row['workload']} | "
              f"{row['exact']} | {row['total_cycles']} | {row['predicted_cycles']} | "
              f"{row['total_over_predicted']:.3f} | {row['bound_cycles']} | {row['bound_is']} | "
              f"{row['total_over_bound']:.2f} | {row['util_total']:.3f} | {row['bytes_over_minimum']:.2f} | "
              f"{row['compute_cycles']} | {row['formula_cycles']} | {row['scalesim_cycles']} |")
    ratios = [row["total_over_predicted"] for row in rows]
    compute_bound = [row["util_total"] for row in rows if row["bound_is"] == "compute" and row["macs"] >= 128 ** 3]
    summary = {"rows": len(rows), "all_exact": all(row["exact"] for row in rows),
               "total_over_predicted_min": min(ratios), "total_over_predicted_max": max(ratios),
               "rows_within_15pct": sum(abs(v - 1) <= 0.15 for v in ratios),
               "util_total_min_compute_bound_128cubed_up": min(compute_bound) if compute_bound else None}
    print()
    print(f"model error: total / predicted in [{summary['total_over_predicted_min']:.3f}, "
          f"{summary['total_over_predicted_max']:.3f}], {summary['rows_within_15pct']} of {len(rows)} rows within "
          f"15 %; all exact: {summary['all_exact']}")
    print()
    print(f"Simulation speed ({speed['design']}): Verilator {speed['verilator_cycles_per_s']:,.0f} cycles/s, "
          f"Amaranth pysim {speed['pysim_cycles_per_s']:,.0f} cycles/s, ratio {speed['ratio']:.0f}x")
    for b in builds:
        print(f"ECP5 {b['board']} {b['array']} int8 OS: {b}")
    write_results(output_path(args), {"summary": summary, "cycles": rows, "fpga": builds, "sim_speed": speed})


if __name__ == "__main__":
    main()
