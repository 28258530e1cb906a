"""Benchmark: LOCALUT LUT kernels against the integer-MAC and bit-serial (T-MAC-style) baselines on UPMEM DPUs.

    python benchmarks/localut.py [--quick] [--jobs 1] [--out PATH]

Writes ``benchmarks/results/localut.json`` (``--quick``: ``benchmarks/results/quick/localut.json``; see
``common.py``).

Every point is one low-bit GEMM ``y = ac @ levels[wc].T`` (int32) emitted by exactly the code the ``localut``
target uses (`hwforge.compiler.targets.localut_device`), run through the generic host program on hwforge's
host-side UPMEM emulation, and checked bit-exactly against `hwforge.ir.quant_lowbit.lowbit_matmul_int`
(a mismatch aborts the run). Cycles are the cost model's (`hwforge.upmem.cost`: per DPU the max of the
instruction-issue, per-tasklet chain and MRAM bounds; a launch takes its slowest DPU) from the emulator's counts,
16 tasklets, 350 MHz. Speedups compare kernel cycles (host transfers are left out: weights and tables are
uploaded once per model).

Workloads
- ``digits-fc1`` (M=64, K=64, N=64) and ``digits-fc2`` (M=64, K=64, N=10): the digits MLP quantised by the
  ``quantize_lowbit`` pass at each bit width; M = the first 64 test images, the activation codes are the real ones
  (network input, then the host-requantised hidden layer). 4 DPUs, all emulated; digits-fc2 has too few channels
  for 4 channel blocks, so its DPUs split the 64 activation rows (`hwforge.upmem.dpu_kernel.grid`, every kernel alike).
- ``bert-768x768`` (attention projections) and ``bert-768x3072`` (FFN up-projection), M = 8 tokens, seeded uniform
  random weight and activation codes. 16 DPUs (48 and 192 output channels per DPU), and the FFN layer once more on
  4 DPUs (``bert-768x3072@4dpu``, 768 channels per DPU: a LUT kernel streams each activation group's slice once per
  DPU and reuses it for every channel, so channels per DPU set how far that cost is amortised). Only the first 2
  DPUs are emulated, because every DPU runs the same program on a same-sized shard (the cycles of a launch are its
  slowest DPU's; the emulated DPUs are as loaded as any). Correctness is checked on the emulated DPUs' columns.

For every (W, A) bit width: the MAC baseline (decoded int8 levels x uint8 codes), the bit-serial baseline (g=4
tables of subset sums, one look-up per weight bit plane and group), and LOCALUT for every scheme and every packing
degree p from 1 to the largest whose working set fits WRAM (`lutkernel.max_p`). LUT bytes per scheme come from the
table layouts (`hwforge.upmem.lut`); the best LOCALUT configuration is the one with the fewest cycles.
``--quick``: W2A2 and W4A4, schemes full and joint at p = 1 and the largest p, digits-fc1 and bert-768x3072@4dpu.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import add_output_options, output_path, write_results  # noqa: E402

from hwforge.compiler.targets import localut_device as dev  # noqa: E402
from hwforge.ir.quant_lowbit import lowbit_matmul_int, odd_levels  # noqa: E402

PAPER_SPEEDUP = 1.82
TASKLETS = 16
SEED = 0
WORKLOADS = {  # name: (M, K, N, DPUs, emulated DPUs or None for all)
    "digits-fc1": (64, 64, 64, 4, None),
    "digits-fc2": (64, 64, 10, 4, None),
    "bert-768x768": (8, 768, 768, 16, 2),
    "bert-768x3072": (8, 768, 3072, 16, 2),
    "bert-768x3072@4dpu": (8, 768, 3072, 4, 2),
}
BITS = [(w, a) for w in range(1, 5) for a in range(1, 5) if w == a]


@cache
def digits_codes(wbits: int, abits: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weight and activation codes of both digits layers from the quantised MLP on 64 test images."""
    from hwforge.compiler import Calibration, load_model, run_pipeline
    from hwforge.compiler.passes import Canonicalize, FuseRelu, QuantizeLowbit
    from hwforge.ir import interpret_all

    model = load_model("mlp-digits")
    g = run_pipeline(model.graph, [Canonicalize(), FuseRelu(), QuantizeLowbit(wbits=wbits, abits=abits)],
                     Calibration(model.calibration)).graph
    values = interpret_all(g, {"x": model.test_set[0][:64]})
    out = {}
    for node in g.nodes():
        if node.op == "lowbit_matmul":
            layer = node.name.removesuffix(".mm")
            out[f"digits-{layer}"] = (np.asarray(g.constant_value(node.inputs[1]), dtype=np.int64),
                                      values[node.inputs[0]].numpy().astype(np.int64))
    return out


def operands(workload: str, wbits: int, abits: int) -> tuple[np.ndarray, np.ndarray]:
    if workload.startswith("digits"):
        return digits_codes(wbits, abits)[workload]
    m, k, n, _, _ = WORKLOADS[workload]
    rng = np.random.default_rng([SEED, wbits, abits, k, n])
    return rng.integers(0, 1 << wbits, (n, k)), rng.integers(0, 1 << abits, (m, k))


def max_p(wbits: int, abits: int, scheme: str) -> int:
    from hwforge.upmem.lutkernel import max_p as lut_max_p

    return lut_max_p(wbits, abits, scheme, TASKLETS, w_levels=odd_levels(wbits))


def lut_sizes(wbits: int, abits: int, scheme: str, p: int) -> dict:
    from hwforge.upmem import lut

    lay = lut.lut_layout(scheme, p, wbits, abits, odd_levels(wbits))
    return {"entries": int(lut.entry_count(scheme, p, wbits, abits)), "table_mram_bytes": int(lay.image_bytes),
            "reorder_mram_bytes": int(lay.rlut_bytes + lay.adt_bytes), "mram_bytes": int(lay.mram_bytes),
            "slice_wram_bytes": int(lay.wram_bytes)}


def run_one(task: dict) -> dict:
    """Emit, emulate and check one (workload, bits, kernel, scheme, p) point."""
    workload, wbits, abits, kernel = task["workload"], task["wbits"], task["abits"], task["kernel"]
    m, k, n, dpus, emulated = WORKLOADS[workload]
    wc, ac = operands(workload, wbits, abits)
    levels = odd_levels(wbits)
    options = dev.LocalutOptions(wbits=wbits, abits=abits, p=task.get("p", 1), scheme=task.get("scheme", "joint"),
                                 kernel=kernel, dpus=dpus, tasklets=TASKLETS, g=4)
    start = time.monotonic()
    ker = dev.build_kernel(kernel, wc, levels, ac, options)
    if emulated is not None and emulated < ker.nr_dpus:
        ker = dataclasses.replace(ker, dpu_args=ker.dpu_args[:emulated], mram_inputs=ker.mram_inputs[:emulated],
                                  meta={**ker.meta, "shards": ker.meta["shards"][:emulated],
                                        "m_shards": ker.meta["m_shards"][:emulated]})
    run = dev.run_kernel(ker)
    done = np.zeros((m, n), dtype=bool)  # the outputs the emulated DPUs computed
    for (m0, mc), (n0, nc) in zip(ker.meta["m_shards"], ker.meta["shards"], strict=True):
        done[m0:m0 + mc, n0:n0 + nc] = True
    want = lowbit_matmul_int(ac, wc, levels)
    exact = bool(np.array_equal(run.output[done], want[done]))
    label = f"{workload} W{wbits}A{abits} {kernel}" + (f" {options.scheme} p={options.p}"
                                                       if kernel == "localut" else "")
    if not exact:
        raise SystemExit(f"MISMATCH: {label}: {int(np.count_nonzero(run.output[done] != want[done]))} outputs differ")
    wall = time.monotonic() - start
    print(f"  {label}: {run.report['cycles']:,} cycles ({run.report['bound']}), {wall:.1f} s", file=sys.stderr,
          flush=True)
    return {**task, "m": m, "k": k, "n": n, "dpus": dpus, "emulated_dpus": ker.nr_dpus, "exact": exact,
            "cycles": run.report["cycles"], "bound": run.report["bound"], "kernel_s": run.report["kernel_s"],
            "dma_bytes": run.report["dma_bytes"], "wram_bytes": ker.meta.get("wram_bytes"),
            "mram_input_bytes_per_dpu": sum(len(v) for v in ker.mram_inputs[0].values()),
            "emulation_seconds": round(wall, 2)}


def tasks_for(quick: bool) -> list[dict]:
    workloads = ["digits-fc1", "bert-768x3072@4dpu"] if quick else list(WORKLOADS)
    bits = [(2, 2), (4, 4)] if quick else BITS
    schemes = ["full", "joint"] if quick else list(dev.SCHEMES)
    out = []
    for wl in workloads:
        for wbits, abits in bits:
            base = {"workload": wl, "wbits": wbits, "abits": abits}
            out += [{**base, "kernel": "mac"}, {**base, "kernel": "bitserial"}]
            for scheme in schemes:
                top = max_p(wbits, abits, scheme)
                ps = sorted({1, top}) if quick else range(1, top + 1)
                out += [{**base, "kernel": "localut", "scheme": scheme, "p": p} for p in ps]
    return out


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def summarise(results: list[dict]) -> tuple[list[dict], dict]:
    points: dict[tuple, list[dict]] = {}
    for r in results:
        points.setdefault((r["workload"], r["wbits"], r["abits"]), []).append(r)
    summary = []
    for (wl, wbits, abits), runs in points.items():
        mac = next(r for r in runs if r["kernel"] == "mac")
        bs = next(r for r in runs if r["kernel"] == "bitserial")
        luts = [r for r in runs if r["kernel"] == "localut"]
        best = min(luts, key=lambda r: (r["cycles"], r["p"]))
        summary.append({"workload": wl, "wbits": wbits, "abits": abits, "mac_cycles": mac["cycles"],
                        "bitserial_cycles": bs["cycles"], "best": {k: best[k] for k in ("scheme", "p", "cycles")},
                        "speedup_vs_mac": mac["cycles"] / best["cycles"],
                        "speedup_vs_bitserial": bs["cycles"] / best["cycles"],
                        "exact": all(r["exact"] for r in runs)})
    per_workload = {wl: {"vs_mac": geomean([s["speedup_vs_mac"] for s in summary if s["workload"] == wl]),
                         "vs_bitserial": geomean([s["speedup_vs_bitserial"] for s in summary if s["workload"] == wl])}
                    for wl in dict.fromkeys(s["workload"] for s in summary)}
    geo = {"per_workload": per_workload, "vs_mac": geomean([s["speedup_vs_mac"] for s in summary]),
           "vs_bitserial": geomean([s["speedup_vs_bitserial"] for s in summary]),
           "vs_best_baseline": geomean([min(s["mac_cycles"], s["bitserial_cycles"]) / s["best"]["cycles"]
                                        for s in summary]), "paper": PAPER_SPEEDUP}
    return summary, geo


def print_tables(results: list[dict], summary: list[dict], geo: dict, luts: list[dict], note: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=200)
    t = Table(title="LOCALUT vs baselines: modelled DPU cycles (slowest DPU, 16 tasklets)")
    for col in ("workload", "W/A", "MAC", "bit-serial", "best LOCALUT (scheme, p)", "LOCALUT cycles", "vs MAC",
                "vs bit-serial", "bit-exact"):
        t.add_column(col, justify="right" if col not in ("workload", "best LOCALUT (scheme, p)") else "left")
    for s in summary:
        b = s["best"]
        t.add_row(s["workload"], f"W{s['wbits']}A{s['abits']}", f"{s['mac_cycles']:,}", f"{s['bitserial_cycles']:,}",
                  f"{b['scheme']}, p={b['p']}", f"{b['cycles']:,}", f"{s['speedup_vs_mac']:.2f}x",
                  f"{s['speedup_vs_bitserial']:.2f}x", "yes" if s["exact"] else "NO")
    con.print(t)
    t = Table(title="LOCALUT cycles per scheme and p")
    for col in ("workload", "W/A", "scheme", "p", "cycles", "bound", "WRAM B", "MRAM in/DPU B"):
        t.add_column(col)
    for r in results:
        if r["kernel"] == "localut":
            t.add_row(r["workload"], f"W{r['wbits']}A{r['abits']}", r["scheme"], str(r["p"]), f"{r['cycles']:,}",
                      r["bound"], f"{r['wram_bytes']:,}", f"{r['mram_input_bytes_per_dpu']:,}")
    con.print(t)
    t = Table(title="LUT bytes per scheme (table + reordering structures in MRAM; slice in WRAM)")
    for col in ("W/A", "p", "scheme", "entries", "table MRAM B", "reorder MRAM B", "slice WRAM B"):
        t.add_column(col, justify="right")
    for r in luts:
        t.add_row(f"W{r['wbits']}A{r['abits']}", str(r["p"]), r["scheme"], f"{r['entries']:,}",
                  f"{r['table_mram_bytes']:,}", f"{r['reorder_mram_bytes']:,}", f"{r['slice_wram_bytes']:,}")
    con.print(t)
    for wl, g in geo["per_workload"].items():
        con.print(f"  {wl}: geomean over bit widths {g['vs_mac']:.2f}x over MAC, {g['vs_bitserial']:.2f}x over "
                  "bit-serial")
    con.print(f"Geomean speedup of the best LOCALUT configuration: {geo['vs_mac']:.2f}x over MAC, "
              f"{geo['vs_bitserial']:.2f}x over bit-serial, {geo['vs_best_baseline']:.2f}x over the better baseline "
              f"(paper: {geo['paper']:.2f}x).")
    con.print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_options(parser, "localut", "W2A2/W4A4, full and joint at p=1 and max, two workloads")
    parser.add_argument("--jobs", type=int, default=1, help="emulations run in parallel (default 1)")
    args = parser.parse_args()
    start = time.monotonic()
    tasks = tasks_for(args.quick)
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_one, tasks))
    else:
        results = [run_one(t) for t in tasks]
    summary, geo = summarise(results)
    luts = [{"wbits": w, "abits": a, "scheme": s, "p": p, **lut_sizes(w, a, s, p)}
            for w, a in ([(2, 2), (4, 4)] if args.quick else BITS) for s in dev.SCHEMES
            for p in range(1, max_p(w, a, s) + 1)]
    wall = time.monotonic() - start
    note = (f"{len(results)} emulated GEMMs, all bit-exact; wall time {wall / 60:.1f} min. BERT layers: 16 DPUs "
            "(4 for @4dpu), 2 emulated (same program, same shard size on every DPU).")
    print_tables(results, summary, geo, luts, note)
    settings = {"mode": "quick" if args.quick else "default", "tasklets": TASKLETS, "seed": SEED,
                "workloads": {k: dict(zip(("m", "k", "n", "dpus", "emulated_dpus"), v, strict=True))
                              for k, v in WORKLOADS.items()},
                "cost_model": "hwforge.upmem.cost (350 MHz)", "note": note, "wall_seconds": round(wall, 1),
                "nr_cpus": os.cpu_count()}
    write_results(output_path(args), {"settings": settings, "runs": results, "summary": summary,
                                                 "geomean": geo, "lut_bytes": luts})


if __name__ == "__main__":
    main()
