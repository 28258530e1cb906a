"""Benchmark: the Slice-and-Forge (`snf`) aggregation accelerator against its baselines, on Verilator.

    python benchmarks/gcn_snf.py [--quick | --full] [--jobs 2] [--out PATH]

Writes ``benchmarks/results/gcn_snf.json`` (``--quick``: ``benchmarks/results/quick/gcn_snf.json``; see
``common.py``).

One GCN aggregation layer ``relu(Â H + b)`` runs on the RTL for every (graph, cache, engines, policy) point and
every output is checked bit-exactly against `hwforge.rtl.gcn.reference` (the script aborts on the first
mismatch). Hardware is built once per distinct hardware configuration (engines x cache size = 4 Verilator
builds, cached by Verilog hash); every policy and slice width is a run-time program field of the same build.

Workload
- Graphs: Zachary's karate club (34 nodes, 156 directed edges), the seeded power-law ``cora-like`` preset
  (2,708 nodes, 10,556 edges) and a ``pubmed-like`` graph (19,717 nodes, 88,648 edges). Â is the symmetric
  normalisation D^-1/2 (A + I) D^-1/2 (self loops added, so nnz = edges + nodes).
- Â in Q2.14 (16-bit), features H in Q8.8 (16-bit, seeded, uniform in [-4, 4)), bias at the accumulator's 22
  fraction bits, 32-bit wrapping accumulators, requantised to Q8.8 with ReLU.
- Feature width 128. In a GCN the aggregation runs on the *hidden* width (``Â (X W)``: the combination
  shrinks Cora's 1,433 input features first, which is also the cheaper order), and 128 is a common hidden width
  for accelerator studies. 128 x 16 bits = 256 bytes = 4 cache lines per row, so slicing has 4 widths to choose
  from, and a simulation of a Cora-sized layer stays under a minute on one engine.
- Working set = N x 256 bytes: karate 8.5 KiB (fits even the 16 KiB cache: a control point, excluded from the
  geomeans), Cora 677 KiB, Pubmed 4.8 MiB (1.2 MiB scaled): all larger than both caches.

Hardware (one build each): engines in {1, 8} x shared feature cache in {16, 256} KiB; 4-way true-LRU, 64-byte
lines, 64-bit memory bus, 16 MAC lanes per engine, rows of up to 4 lines, chunks of 4 destination rows dealt
round-robin to the engines. Memory: latency 3 cycles, ``stall_prob=0`` (no random back-pressure), so the
cycles are the design's own and the run is deterministic (all seeds fixed; the RTL has no other randomness).

Policies (rows of the table)
- ``none``: whole feature rows, one round.
- ``tiling``: vertex tiling with a fixed, offline tile count of 4 (GCNAX / EnGN style as implemented in the
  generator: source vertices in 4 equal ranges, whole rows, 32-bit partial sums spilled to and reloaded from
  memory between tiles: the ``psum`` bytes).
- ``dynamic``: SnF with the run-time tuner, candidates (1, 2) lines: round 0 uses 1 line, round 1 uses 2 lines,
  later rounds the candidate with the fewest cycles per line (clamped to the lines left). With 4-line rows the
  candidates cover 3 of the 4 lines, so the tuner only chooses the last round's width and even that is clamped
  to 1 line: at this row width ``dynamic`` is mostly exploration, and dyn/oracle measures that cost. The setting
  column shows the trajectory the controller logged (widths of its rounds).
- ``oracle``: the best of an exhaustive sweep of static slice widths 1..4 lines (width 4 is the ``none`` run: the
  same program word for word). The setting column shows the winning width and every width's cycles.

Columns
- ``WS/cache``: working set (N x row bytes) over the cache size.
- ``cycles``: the RTL's cycle counter from start to done (descriptor and bias loads, every round, log writes).
- ``vs tiling``: tiling cycles / this policy's cycles (> 1: faster than vertex tiling).
- ``hit``: feature-cache hit rate, hits / (hits + misses) over all feature-line lookups.
- ``topo``, ``feat``, ``psum``, ``out``, ``total``: off-chip KiB by class from the memory port's counters
  (topology = row pointers and edge words, re-streamed every round; features = cache line fills; psum = tiling
  spills and reloads; out = output rows; total also counts bias words and descriptor/log control words).
- ``exact``: the outputs equal the reference bit for bit (always ``yes``: a mismatch aborts the run).

Summary: per point, SnF-dynamic speedup over tiling and dynamic / oracle cycles, then the geomean of the
speedup at 1 and at 8 engines over the points whose working set exceeds the cache, beside the paper's 1.46x
(single engine) and 1.73x (multi engine). The paper's numbers come from its own simulator, baselines and
datasets; this compares the same generator's policies on synthetic graphs.

Scaling (simulation time, not the design, forbids more): Verilator runs this design at about 60k cycles/s with
one engine and about 11k cycles/s with eight on the 2-core machine, and a full Pubmed-sized layer is 6.4M cycles
per policy for ``none`` on one engine (more for tiling). The default run therefore uses the Pubmed-like graph
scaled to 1/4 (4,929 nodes, 22,162 edges: same mean degree and degree exponent) and runs it on one engine only;
karate and Cora run at full size on both engine counts. ``--full`` runs unscaled Pubmed on both engine counts
(hours). ``--quick`` (about 2 minutes): karate and Cora on one engine with the 16 KiB cache.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_output_options, output_path, write_results  # noqa: E402

from hwforge.graphs import PRESETS, karate_club, normalized_adjacency, synthetic_graph  # noqa: E402
from hwforge.ir.quant import to_fixed  # noqa: E402
from hwforge.rtl.gcn import Csr, SnfConfig, build_program, reference, simulate  # noqa: E402

FEATURES = 128
FRAC_X, FRAC_ADJ, FRAC_OUT = 8, 14, 8
SEED = 0
LATENCY = 3
STALL_PROB = 0.0
TILES = 4
CANDIDATES = (1, 2)
CHUNK = 4
HW = dict(ways=4, feat_bits=16, acc_bits=32, bus_width=64, lanes=16, max_row_lines=4, max_chunk=16, max_tiles=8)
PAPER = {1: 1.46, 8: 1.73}
PUBMED_SCALE = 4

# (graph, cache KiB, engines) points of each mode.
CACHES = (16, 256)
ENGINES = (1, 8)


def points(mode: str) -> list[tuple[str, int, int]]:
    if mode == "quick":
        return [("karate", 16, 1), ("cora", 16, 1)]
    pubmed = "pubmed" if mode == "full" else f"pubmed/{PUBMED_SCALE}"
    pts = [(g, kb, e) for g in ("karate", "cora") for kb in CACHES for e in ENGINES]
    pts += [(pubmed, kb, e) for kb in CACHES for e in (ENGINES if mode == "full" else (1,))]
    return pts


@cache
def graph(name: str):
    """(Csr of Â in Q2.14, features Q8.8, bias at 22 fraction bits, graph label)."""
    if name == "karate":
        g = karate_club()
    else:
        base, _, scale = name.partition("/")
        ps = PRESETS[f"{base}-like"]
        k = int(scale or 1)
        edges = ps.edges // k // 2 * 2
        g = synthetic_graph(ps.nodes // k, edges, SEED, name=name)
    a = normalized_adjacency(g)
    csr = Csr(a.indptr, a.indices, to_fixed(a.values, FRAC_ADJ, 16))
    rng = np.random.default_rng([SEED, 7])
    x = to_fixed(rng.uniform(-4.0, 4.0, (g.num_nodes, FEATURES)), FRAC_X, 16)
    bias = to_fixed(rng.uniform(-1.0, 1.0, FEATURES), FRAC_X + FRAC_ADJ, 32)
    return csr, x, bias, g.num_edges


def run_one(task: dict) -> dict:
    """One simulation: build the program, run it, check it bit-exactly, return the measurements."""
    name, kb, engines, policy, width = task["graph"], task["cache_kb"], task["engines"], task["policy"], task["width"]
    csr, x, bias, edges = graph(name)
    cfg = SnfConfig(engines=engines, cache_kb=kb, **HW, policy=policy, slice_lines=width or 1, tiles=TILES,
                    candidates=CANDIDATES, chunk=CHUNK, active_engines=0)
    q = dict(frac_x=FRAC_X, frac_adj=FRAC_ADJ, frac_out=FRAC_OUT, relu=True)
    prog = build_program(cfg, csr, x, bias, **q)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gcn_snf_") as tmp:
        res = simulate(cfg, prog, seed=SEED, stall_prob=STALL_PROB, latency=LATENCY, work_dir=tmp)
    wall = time.monotonic() - start
    ref = reference(cfg, csr, x, bias, **q)
    exact = bool(np.array_equal(res.outputs, ref))
    label = f"{name} cache={kb}KiB engines={engines} policy={policy}" + (f" width={width}" if width else "")
    if not exact:
        bad = int(np.count_nonzero(res.outputs != ref))
        raise SystemExit(f"MISMATCH: {label}: {bad} of {ref.size} outputs differ from the reference")
    by_class = res.bytes_by_class()
    print(f"  {label}: {res.cycles} cycles, hit {res.hit_rate:.3f}, {wall:.1f} s", file=sys.stderr, flush=True)
    return {
        "graph": name, "nodes": csr.n, "edges": edges, "nnz": csr.nnz, "features": FEATURES,
        "row_bytes": prog.row_lines * 64, "working_set_bytes": csr.n * prog.row_lines * 64, "cache_kb": kb,
        "engines": engines, "policy": policy, "width": width, "exact": exact, "cycles": res.cycles,
        "hit_rate": res.hit_rate, "cache_hits": res.counters["cache_hits"],
        "cache_misses": res.counters["cache_misses"], "bytes": by_class, "bytes_total": sum(by_class.values()),
        "rounds": [(r["tile"], r["start"], r["width"], r["cycles"]) for r in res.log],
        "sim_seconds": round(wall, 2),
    }


def tasks_for(pts: list[tuple[str, int, int]]) -> list[dict]:
    out = []
    for name, kb, e in pts:
        for policy, width in (("none", None), ("tiling", None), ("dynamic", None),
                              *(("static", w) for w in range(1, HW["max_row_lines"]))):
            out.append({"graph": name, "cache_kb": kb, "engines": e, "policy": policy, "width": width})
    return out


def _cost(t: dict) -> float:
    """Rough relative simulation cost, to start the longest runs first."""
    n = graph(t["graph"])[0].nnz
    return n * (5 if t["engines"] > 1 else 1) * (2.5 if t["policy"] == "tiling" else 1)


def _geomean(rows: list[dict], key: str) -> float:
    return math.exp(sum(math.log(r[key]) for r in rows) / len(rows))


def summarise(results: list[dict]) -> tuple[list[dict], dict]:
    points_: dict[tuple, dict] = {}
    for r in results:
        points_.setdefault((r["graph"], r["cache_kb"], r["engines"]), {})[(r["policy"], r["width"])] = r
    summary = []
    for (name, kb, e), runs in points_.items():
        sweep = {w: runs[("static", w)] for w in range(1, HW["max_row_lines"])}
        sweep[HW["max_row_lines"]] = runs[("none", None)]   # static at the full row = the `none` program
        best_w = min(sweep, key=lambda w: (sweep[w]["cycles"], w))
        tiling, dyn, none = runs[("tiling", None)], runs[("dynamic", None)], runs[("none", None)]
        ws = none["working_set_bytes"]
        summary.append({
            "graph": name, "cache_kb": kb, "engines": e, "working_set_bytes": ws,
            "ws_over_cache": ws / (kb * 1024), "in_geomean": ws > kb * 1024,
            "none": none, "tiling": tiling, "dynamic": dyn, "oracle": {**sweep[best_w], "width": best_w},
            "sweep_cycles": {w: sweep[w]["cycles"] for w in sorted(sweep)},
            "dynamic_trajectory": [w for _, _, w, _ in dyn["rounds"]],
            "speedup_dynamic_over_tiling": tiling["cycles"] / dyn["cycles"],
            "speedup_oracle_over_tiling": tiling["cycles"] / sweep[best_w]["cycles"],
            "dynamic_over_oracle": dyn["cycles"] / sweep[best_w]["cycles"],
        })
    summary.sort(key=lambda s: (["karate", "cora"].index(s["graph"]) if s["graph"] in ("karate", "cora") else 2,
                                s["cache_kb"], s["engines"]))
    geo = {}
    for e in ENGINES:
        sel = [s for s in summary if s["engines"] == e and s["in_geomean"]]
        if sel:
            geo[e] = {"points": [f"{s['graph']}@{s['cache_kb']}KiB" for s in sel],
                      "speedup_dynamic_over_tiling": _geomean(sel, "speedup_dynamic_over_tiling"),
                      "speedup_oracle_over_tiling": _geomean(sel, "speedup_oracle_over_tiling"),
                      "dynamic_over_oracle": _geomean(sel, "dynamic_over_oracle"), "paper": PAPER[e]}
    return summary, geo


def _kib(b: int) -> str:
    return f"{b / 1024:,.0f}"


def print_tables(summary: list[dict], geo: dict, note: str) -> None:
    header = ("graph", "cache KiB", "WS/cache", "eng", "policy", "setting", "cycles", "vs tiling", "hit",
              "topo KiB", "feat KiB", "psum KiB", "out KiB", "total KiB", "exact")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for s in summary:
        for pol in ("none", "tiling", "dynamic", "oracle"):
            r = s[pol]
            if pol == "tiling":
                setting = f"{TILES} tiles"
            elif pol == "dynamic":
                setting = "widths " + ",".join(map(str, s["dynamic_trajectory"]))
            elif pol == "oracle":
                setting = f"w={r['width']} (" + " ".join(f"{w}:{c / 1000:.{1 if c < 100_000 else 0}f}k"
                                                       for w, c in s["sweep_cycles"].items()) + ")"
            else:
                setting = "whole row"
            b = r["bytes"]
            print(f"| {s['graph']} | {s['cache_kb']} | {s['ws_over_cache']:.1f} | {s['engines']} | {pol} | "
                  f"{setting} | {r['cycles']:,} | {s['tiling']['cycles'] / r['cycles']:.2f} | "
                  f"{r['hit_rate']:.3f} | {_kib(b['topology'])} | {_kib(b['features'])} | {_kib(b['psum'])} | "
                  f"{_kib(b['outputs'])} | {_kib(r['bytes_total'])} | {'yes' if r['exact'] else 'NO'} |")
    print()
    header = ("graph", "cache KiB", "eng", "tiling cycles", "dynamic cycles", "oracle cycles (w)",
              "SnF/tiling speedup", "oracle/tiling speedup", "dynamic/oracle")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for s in summary:
        mark = "" if s["in_geomean"] else " (fits)"
        print(f"| {s['graph']}{mark} | {s['cache_kb']} | {s['engines']} | {s['tiling']['cycles']:,} | "
              f"{s['dynamic']['cycles']:,} | {s['oracle']['cycles']:,} ({s['oracle']['width']}) | "
              f"{s['speedup_dynamic_over_tiling']:.2f}x | {s['speedup_oracle_over_tiling']:.2f}x | "
              f"{s['dynamic_over_oracle']:.3f} |")
    print()
    for e, g in geo.items():
        print(f"Geomean SnF-dynamic speedup over vertex tiling, {e} engine{'s' if e > 1 else ''}: "
              f"{g['speedup_dynamic_over_tiling']:.2f}x (paper: {g['paper']:.2f}x); oracle over tiling "
              f"{g['speedup_oracle_over_tiling']:.2f}x; dynamic/oracle cycles {g['dynamic_over_oracle']:.3f} "
              f"[{', '.join(g['points'])}]")
    print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    add_output_options(parser, "gcn_snf", "karate and Cora, one engine, 16 KiB (about 2 min)", quick_group=mode)
    mode.add_argument("--full", action="store_true", help="unscaled Pubmed on 1 and 8 engines (hours)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="simulations run in parallel (default 2)")
    args = parser.parse_args()
    m = "quick" if args.quick else "full" if args.full else "default"
    start = time.monotonic()
    tasks = sorted(tasks_for(points(m)), key=_cost, reverse=True)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_one, tasks))
    summary, geo = summarise(results)
    wall = time.monotonic() - start
    if m == "quick":
        note = "Quick subset: karate and Cora-sized, 1 engine, 16 KiB cache only."
    elif m == "full":
        note = "Full set: karate, Cora-sized and Pubmed-sized at full size, 1 and 8 engines, 16 and 256 KiB."
    else:
        note = (f"Scaled down for simulation time: Pubmed-like graph at 1/{PUBMED_SCALE} size "
                f"({graph(f'pubmed/{PUBMED_SCALE}')[0].n:,} nodes, {graph(f'pubmed/{PUBMED_SCALE}')[3]:,} edges) "
                "and on 1 engine only; karate and Cora at full size on 1 and 8 engines.")
    note += (f" Latency {LATENCY}, stall_prob {STALL_PROB}; {len(results)} simulations, all bit-exact; "
             f"wall time {wall / 60:.1f} min.")
    print_tables(summary, geo, note)
    settings = {"mode": m, "features": FEATURES, "formats": {"adjacency": "Q2.14", "features": "Q8.8",
                                                             "accumulator": "int32 (22 fraction bits)"},
                "seed": SEED, "latency": LATENCY, "stall_prob": STALL_PROB, "tiles": TILES,
                "candidates": list(CANDIDATES), "chunk": CHUNK, "hardware": HW, "note": note,
                "wall_seconds": round(wall, 1)}
    policies = ("none", "tiling", "dynamic", "oracle")
    summary_out = [{k: v for k, v in s.items() if k not in policies}
                   | {p: {"cycles": s[p]["cycles"], "width": s[p]["width"]} for p in policies} for s in summary]
    write_results(output_path(args), {"settings": settings, "runs": results, "summary": summary_out,
                                                 "geomean": {str(e): g for e, g in geo.items()}})


if __name__ == "__main__":
    main()
