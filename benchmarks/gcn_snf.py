"""Benchmark: the Slice-and-Forge (`snf`) aggregation accelerator against fair baselines, on Verilator.

    python benchmarks/gcn_snf.py [--quick | --full] [--jobs 2] [--out PATH]
                                 [--graphs cora,...] [--caches 64,256] [--engines 1,8] [--buses 512]

Writes ``benchmarks/results/gcn_snf.json`` (``--quick``: ``benchmarks/results/quick/gcn_snf.json``; see
``common.py``). A run restricted by ``--graphs/--caches/--engines/--buses`` is not the default set, so it needs
``--out``.

One GCN aggregation layer ``relu(Â H + b)`` runs on the RTL for every (graph, SRAM budget, engines, bus,
policy) point and every output is checked bit-exactly against `hwforge.rtl.gcn.reference` (the script aborts on
the first mismatch). Hardware is built once per distinct hardware configuration (engines x cache x bus, cached by
Verilog hash); every policy, slice width and tile count is a run-time program field of the same build.

Workload
- Graphs: the real Planetoid Cora (2,708 nodes, 10,556 directed edges) and CiteSeer (3,327 nodes, 9,104 edges)
  from `hwforge.graphs.planetoid.planetoid_graph`, plus the seeded power-law ``pubmed-like`` synthetic graph for
  scale (19,717 nodes, 88,648 edges; the default run uses it at 1/4 size: 4,929 nodes, 22,162 edges). Â is
  D^-1/2 (A + I) D^-1/2 (self loops added, so nnz = edges + nodes).
- Â in Q2.14, features H in Q8.8 (seeded, uniform in [-4, 4)), bias at 22 fraction bits, 32-bit wrapping
  accumulators, requantised to Q8.8 with ReLU.
- Hidden width 256 (the aggregation runs on ``X W``): 256 x 16 bits = 512 bytes = 8 cache lines per row, so
  slice widths 1..8 and the tuner's candidates really differ. Working set = N x 512 bytes (Cora 1.3 MiB,
  CiteSeer 1.6 MiB): larger than every cache, so every point is in the geomeans.

Hardware: engines 1/2/4/8; on-chip SRAM budget = feature cache 16/64/256 KiB (4-way true LRU, 64-byte lines,
4 banks, 4 MSHRs per bank); memory bus 128 or 512 bits; 32 MAC lanes per engine (one 64-byte line per cycle),
rows of up to 8 lines, chunks of 4 destination rows dealt round-robin to the engines, up to 8 vertex tiles.
Memory: latency 3 cycles, one bus word per cycle, ``stall_prob=0``, so the run is deterministic.

SRAM budget (the same for every policy): the budget is the feature cache. No policy has a partial-sum buffer
beyond the engines' accumulator memories (one destination row slice per engine: 8 lines x 32 x 4 bytes = 1 KiB
per engine) and bias memories, which every policy has and which are not counted. Tiling spills its partial sums
off chip (they are the ``psum`` bytes), so it gets the whole budget as cache.

Policies
- ``none``: whole feature rows, one round: destination rows outermost, each row's partial sums on chip in the
  engine's accumulators while all its sources stream through the cache.
- ``tiling`` (fair source tiling, baseline (a)): the source vertices in T equal contiguous ranges
  (T = 2, 4, 8; the table shows the best T per point), tile by tile, whole rows. A row's 32-bit partial sums
  are spilled after a tile and reloaded before a later one only if the row has edges in both (per-row flags in
  the row-pointer words, `hwforge.rtl.gcn.program.tile_flags`); rows a tile does not touch are skipped. So a
  row with edges in k tiles moves 2(k-1) x 1 KiB of psum: at most one write per tile plus one read per later
  tile of the rows the tile touches. Cora at 4 tiles: 4,322 spills = 6.4x the output bytes (3.2x in output-row
  units, the accumulators being twice as wide as the outputs); before this fix every row was spilled and
  reloaded at every tile boundary (12x).
- GCNAX-style (baseline (b), destination tiles outermost with their partial sums on chip): in this design a
  destination tile held on chip is what an engine's accumulator memory holds (the row in flight per engine), so
  the destination-outermost order with on-chip psums and a source loop inside is exactly the ``none`` program:
  zero psum bytes and the whole budget as cache. Larger destination tiles (a multi-row psum buffer taking part
  of the budget, with a source-tile loop inside each destination tile) are not expressible in this RTL: the
  aggregator accumulates one row at a time. Running ``none`` on a cache shrunk by such a buffer would only be a
  slower copy of ``none`` (same access order, smaller cache), so it is not run; the ``none`` rows stand for (b).
- ``static`` widths 1..8 lines (8 = the ``none`` program word for word); ``oracle`` = the best of them.
- ``dynamic``: SnF with the run-time tuner, candidates (1, 4) lines: round 0 uses 1 line, round 1 uses 4, then the
  candidate with the fewer cycles per line runs the 3 lines left (clamped): trajectory 1,4,3 or 1,4,1,1,1, a real
  choice between narrow and wide slices at 8-line rows. ``setting`` shows the trajectory the controller logged.
  (Candidates (1, 2), the old setting, cover 3 lines and then choose between 2-line and 1-line slices only: at a
  512-bit bus, where a whole-row schedule wins, that cost 31 % over the oracle on Cora, 64 KiB, 1 engine.)
  The best fair baseline per point is the faster of ``none`` (= GCNAX-style) and the best tiling.

Columns
- ``cycles``: the RTL's cycle counter from start to done (descriptor and bias loads, every round, log writes).
- ``hit``: feature-cache hit rate over all feature-line lookups.
- ``topo``, ``feat``, ``psum``, ``out``, ``total``: off-chip KiB by class from the memory port's counters
  (topology = row pointers and edge words, one bus word each, re-streamed every round; features = cache line
  fills; psum = tiling spills and reloads; out = output rows; total also counts bias and control words).
- Roofline: ``compute`` = nnz x row_lines x (32 / lanes) / engines cycles (each engine's MAC lanes take one
  64-byte line per 32/lanes cycles, one line per edge per feature line; the design's throughput limit);
  ``bound`` = max(compute, min_bytes / bus_bytes) with min_bytes = every feature line once + every output once +
  the topology once as laid out ((N + 1 + nnz) bus words) + bias; ``bound@moved`` = max(compute, total bytes
  moved / bus_bytes) (the policy's own traffic at full bus rate); ``of bound`` = cycles / bound;
  ``BW`` = bandwidth utilisation = total bytes / cycles / bus bytes.
- ``exact``: the outputs equal the reference bit for bit (always ``yes``: a mismatch aborts the run).

Summary: per point, SnF-dynamic speedup over the best fair baseline and dynamic / oracle cycles; geomean of the
speedup at 1 and at 8 engines beside the paper's 1.46x (single engine) and 1.73x (multi engine). The paper's
numbers come from its own simulator, baselines and datasets.

Modes (simulation time, not the design, limits them: Verilator runs this design at roughly 11k-60k cycles/s):
``--quick``: Cora, 1 engine, 64 KiB, 512-bit bus (12 simulations, a few minutes). Default: Cora and CiteSeer at
every budget / engine count / bus, plus pubmed-like/4 on 1 engine at a 512-bit bus (hours on 2 cores).
``--full``: the default with unscaled pubmed-like on every engine count (many hours).
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

from hwforge.graphs import PRESETS, normalized_adjacency, synthetic_graph  # noqa: E402
from hwforge.graphs.planetoid import planetoid_graph  # noqa: E402
from hwforge.ir.quant import to_fixed  # noqa: E402
from hwforge.rtl.gcn import Csr, SnfConfig, build_program, reference, simulate  # noqa: E402
from hwforge.rtl.gcn.program import D  # noqa: E402

FEATURES = 256
FRAC_X, FRAC_ADJ, FRAC_OUT = 8, 14, 8
SEED = 0
LATENCY = 3
STALL_PROB = 0.0
TILE_COUNTS = (2, 4, 8)
CANDIDATES = (1, 4)
CHUNK = 4
HW = dict(ways=4, cache_banks=4, mshrs=4, feat_bits=16, acc_bits=32, lanes=32, max_row_lines=8, max_chunk=16,
          max_tiles=8)
PAPER = {1: 1.46, 8: 1.73}
PUBMED_SCALE = 4
ROW_LINES = FEATURES * HW["feat_bits"] // 512
WIDTHS = tuple(range(1, ROW_LINES))           # static widths run besides `none` (= width ROW_LINES)

GRAPHS = ("cora", "citeseer")
CACHES = (16, 64, 256)
ENGINES = (1, 2, 4, 8)
BUSES = (128, 512)


def points(mode: str) -> list[tuple[str, int, int, int]]:
    """(graph, cache KiB, engines, bus bits) of each mode."""
    if mode == "quick":
        return [("cora", 64, 1, 512)]
    pts = [(g, kb, e, bus) for g in GRAPHS for bus in BUSES for kb in CACHES for e in ENGINES]
    if mode == "full":
        return pts + [("pubmed", kb, e, bus) for bus in BUSES for kb in CACHES for e in ENGINES]
    return pts + [(f"pubmed/{PUBMED_SCALE}", kb, 1, 512) for kb in CACHES]


@cache
def graph(name: str):
    """(Csr of Â in Q2.14, features Q8.8, bias at 22 fraction bits, directed edges without self loops)."""
    if name in ("cora", "citeseer"):
        g = planetoid_graph(name).graph
    else:
        base, _, scale = name.partition("/")
        ps = PRESETS[f"{base}-like"]
        k = int(scale or 1)
        g = synthetic_graph(ps.nodes // k, ps.edges // k // 2 * 2, SEED, name=name)
    a = normalized_adjacency(g)
    csr = Csr(a.indptr, a.indices, to_fixed(a.values, FRAC_ADJ, 16))
    rng = np.random.default_rng([SEED, 7])
    x = to_fixed(rng.uniform(-4.0, 4.0, (g.num_nodes, FEATURES)), FRAC_X, 16)
    bias = to_fixed(rng.uniform(-1.0, 1.0, FEATURES), FRAC_X + FRAC_ADJ, 32)
    return csr, x, bias, g.num_edges


def config(task: dict) -> SnfConfig:
    policy, setting = task["policy"], task["setting"]
    return SnfConfig(engines=task["engines"], cache_kb=task["cache_kb"], bus_width=task["bus"], **HW,
                     policy=policy, slice_lines=setting if policy == "static" else 1,
                     tiles=setting if policy == "tiling" else 1, candidates=CANDIDATES, chunk=CHUNK,
                     active_engines=0)


def roofline(cfg: SnfConfig, csr: Csr, row_lines: int, nbias: int, total_bytes: int, cycles: int) -> dict:
    """Compute and memory bounds of one run (see the module doc for the formulas)."""
    compute = -(-csr.nnz * row_lines * (cfg.elems_per_line // cfg.lanes) // cfg.engines)
    bb = cfg.bus_bytes
    min_bytes = 2 * csr.n * row_lines * 64 + (csr.n + 1 + csr.nnz) * bb + nbias * bb
    bound = max(compute, -(-min_bytes // bb))
    bound_moved = max(compute, -(-total_bytes // bb))
    return {"compute_cycles": compute, "min_bytes": min_bytes, "bound_cycles": bound,
            "bound_moved_cycles": bound_moved, "of_bound": cycles / bound,
            "bw_util": total_bytes / cycles / bb}


def run_one(task: dict) -> dict:
    """One simulation: build the program, run it, check it bit-exactly, return the measurements."""
    name = task["graph"]
    csr, x, bias, edges = graph(name)
    cfg = config(task)
    q = dict(frac_x=FRAC_X, frac_adj=FRAC_ADJ, frac_out=FRAC_OUT, relu=True)
    prog = build_program(cfg, csr, x, bias, **q)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gcn_snf_") as tmp:
        res = simulate(cfg, prog, seed=SEED, stall_prob=STALL_PROB, latency=LATENCY, work_dir=tmp)
    wall = time.monotonic() - start
    ref = reference(cfg, csr, x, bias, **q)
    exact = bool(np.array_equal(res.outputs, ref))
    label = (f"{name} cache={task['cache_kb']}KiB engines={task['engines']} bus={task['bus']} "
             f"policy={task['policy']}" + (f"/{task['setting']}" if task["setting"] else ""))
    if not exact:
        bad = int(np.count_nonzero(res.outputs != ref))
        raise SystemExit(f"MISMATCH: {label}: {bad} of {ref.size} outputs differ from the reference")
    by_class = res.bytes_by_class()
    total = sum(by_class.values())
    print(f"  {label}: {res.cycles} cycles, hit {res.hit_rate:.3f}, {wall:.1f} s", file=sys.stderr, flush=True)
    return {
        **task, "nodes": csr.n, "edges": edges, "nnz": csr.nnz, "features": FEATURES,
        "row_bytes": prog.row_lines * 64, "working_set_bytes": csr.n * prog.row_lines * 64, "exact": exact,
        "cycles": res.cycles, "hit_rate": res.hit_rate, "cache_hits": res.counters["cache_hits"],
        "cache_misses": res.counters["cache_misses"], "bytes": by_class, "bytes_total": total,
        "psum_rows_spilled": sum(prog.meta["psum_spills"]),
        "rounds": [(r["tile"], r["start"], r["width"], r["cycles"]) for r in res.log],
        "roofline": roofline(cfg, csr, prog.row_lines, prog.words[D.NBIAS], total, res.cycles),
        "sim_seconds": round(wall, 2),
    }


def tasks_for(pts: list[tuple[str, int, int, int]]) -> list[dict]:
    runs = [("none", None), ("dynamic", None), *(("static", w) for w in WIDTHS),
            *(("tiling", t) for t in TILE_COUNTS)]
    return [{"graph": g, "cache_kb": kb, "engines": e, "bus": bus, "policy": p, "setting": s}
            for g, kb, e, bus in pts for p, s in runs]


def _cost(t: dict) -> float:
    """Rough relative simulation cost, to start the longest runs first."""
    n = graph(t["graph"])[0].nnz
    rounds = ROW_LINES / t["setting"] if t["policy"] == "static" else t["setting"] if t["policy"] == "tiling" else 3
    return n * (1 + t["engines"] / 2) * (512 / t["bus"]) * (1 + rounds / 4)


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarise(results: list[dict]) -> tuple[list[dict], dict]:
    points_: dict[tuple, dict] = {}
    for r in results:
        points_.setdefault((r["graph"], r["cache_kb"], r["engines"], r["bus"]), {})[(r["policy"], r["setting"])] = r
    summary = []
    for (name, kb, e, bus), runs in points_.items():
        sweep = {w: runs[("static", w)] for w in WIDTHS}
        sweep[ROW_LINES] = runs[("none", None)]       # static at the full row = the `none` program
        best_w = min(sweep, key=lambda w: (sweep[w]["cycles"], w))
        tiles = {t: runs[("tiling", t)] for t in TILE_COUNTS}
        best_t = min(tiles, key=lambda t: (tiles[t]["cycles"], t))
        none, dyn, tiling = runs[("none", None)], runs[("dynamic", None)], tiles[best_t]
        base_name, base = min((("tiling", tiling), ("none", none)), key=lambda kv: kv[1]["cycles"])
        ws = none["working_set_bytes"]
        summary.append({
            "graph": name, "cache_kb": kb, "engines": e, "bus": bus, "working_set_bytes": ws,
            "ws_over_cache": ws / (kb * 1024), "in_geomean": ws > kb * 1024,
            "none": none, "tiling": tiling, "dynamic": dyn, "oracle": sweep[best_w], "oracle_width": best_w,
            "tiling_tiles": best_t, "tiling_cycles": {t: tiles[t]["cycles"] for t in TILE_COUNTS},
            "tiling_psum_over_out": {t: tiles[t]["bytes"]["psum"] / tiles[t]["bytes"]["outputs"]
                                     for t in TILE_COUNTS},
            "sweep_cycles": {w: sweep[w]["cycles"] for w in sorted(sweep)},
            "dynamic_trajectory": [w for _, _, w, _ in dyn["rounds"]],
            "best_baseline": base_name, "best_baseline_cycles": base["cycles"],
            "speedup_dynamic_over_baseline": base["cycles"] / dyn["cycles"],
            "speedup_oracle_over_baseline": base["cycles"] / sweep[best_w]["cycles"],
            "dynamic_over_oracle": dyn["cycles"] / sweep[best_w]["cycles"],
        })
    order = {g: i for i, g in enumerate(GRAPHS)}
    summary.sort(key=lambda s: (order.get(s["graph"], 9), s["bus"], s["cache_kb"], s["engines"]))
    geo = {}
    for e in ENGINES:
        sel = [s for s in summary if s["engines"] == e and s["in_geomean"]]
        if sel:
            geo[e] = {"points": [f"{s['graph']}@{s['cache_kb']}KiB/{s['bus']}b" for s in sel],
                      "speedup_dynamic_over_baseline": _geomean([s["speedup_dynamic_over_baseline"] for s in sel]),
                      "speedup_oracle_over_baseline": _geomean([s["speedup_oracle_over_baseline"] for s in sel]),
                      "dynamic_over_oracle": _geomean([s["dynamic_over_oracle"] for s in sel]),
                      "paper": PAPER.get(e)}
    return summary, geo


def _kib(b: int) -> str:
    return f"{b / 1024:,.0f}"


def print_tables(summary: list[dict], geo: dict, note: str) -> None:
    header = ("graph", "budget KiB", "bus", "eng", "policy", "setting", "cycles", "vs best base", "hit",
              "topo KiB", "feat KiB", "psum KiB", "out KiB", "total KiB", "compute", "bound", "bound@moved",
              "of bound", "BW", "exact")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for s in summary:
        for pol in ("none", "tiling", "oracle", "dynamic"):
            r = s[pol]
            if pol == "tiling":
                setting = f"T={s['tiling_tiles']} (" + " ".join(f"{t}:{c / 1000:.0f}k"
                                                                 for t, c in s["tiling_cycles"].items()) + ")"
            elif pol == "dynamic":
                setting = "widths " + ",".join(map(str, s["dynamic_trajectory"]))
            elif pol == "oracle":
                setting = f"w={s['oracle_width']} (" + " ".join(f"{w}:{c / 1000:.0f}k"
                                                                for w, c in s["sweep_cycles"].items()) + ")"
            else:
                setting = "whole row (= GCNAX-style)"
            b, rf = r["bytes"], r["roofline"]
            print(f"| {s['graph']} | {s['cache_kb']} | {s['bus']} | {s['engines']} | {pol} | {setting} | "
                  f"{r['cycles']:,} | {s['best_baseline_cycles'] / r['cycles']:.2f} | {r['hit_rate']:.3f} | "
                  f"{_kib(b['topology'])} | {_kib(b['features'])} | {_kib(b['psum'])} | {_kib(b['outputs'])} | "
                  f"{_kib(r['bytes_total'])} | {rf['compute_cycles']:,} | {rf['bound_cycles']:,} | "
                  f"{rf['bound_moved_cycles']:,} | {rf['of_bound']:.2f} | {rf['bw_util']:.2f} | "
                  f"{'yes' if r['exact'] else 'NO'} |")
    print()
    header = ("graph", "budget KiB", "bus", "eng", "best baseline", "dynamic cycles", "oracle cycles (w)",
              "SnF/baseline", "oracle/baseline", "dynamic/oracle", "tiling psum/out (T=2,4,8)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for s in summary:
        base = s["best_baseline"] + (f" T={s['tiling_tiles']}" if s["best_baseline"] == "tiling" else "")
        print(f"| {s['graph']} | {s['cache_kb']} | {s['bus']} | {s['engines']} | {base} "
              f"{s['best_baseline_cycles']:,} | {s['dynamic']['cycles']:,} | {s['oracle']['cycles']:,} "
              f"({s['oracle_width']}) | {s['speedup_dynamic_over_baseline']:.2f}x | "
              f"{s['speedup_oracle_over_baseline']:.2f}x | {s['dynamic_over_oracle']:.3f} | "
              + " ".join(f"{v:.1f}" for v in s["tiling_psum_over_out"].values()) + " |")
    print()
    for e, g in geo.items():
        paper = f" (paper: {g['paper']:.2f}x)" if g["paper"] else ""
        print(f"Geomean SnF-dynamic speedup over the best fair baseline, {e} engine{'s' if e > 1 else ''}: "
              f"{g['speedup_dynamic_over_baseline']:.2f}x{paper}; oracle over baseline "
              f"{g['speedup_oracle_over_baseline']:.2f}x; dynamic/oracle cycles {g['dynamic_over_oracle']:.3f} "
              f"[{', '.join(g['points'])}]")
    print(note)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    add_output_options(parser, "gcn_snf", "Cora, 1 engine, 64 KiB, 512-bit bus (a few minutes)", quick_group=mode)
    mode.add_argument("--full", action="store_true", help="adds unscaled pubmed-like on every point (many hours)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="simulations run in parallel (default 2)")
    parser.add_argument("--graphs", type=lambda s: tuple(s.split(",")), help="only these graphs (needs --out)")
    parser.add_argument("--caches", type=_ints, help="only these SRAM budgets in KiB (needs --out)")
    parser.add_argument("--engines", type=_ints, help="only these engine counts (needs --out)")
    parser.add_argument("--buses", type=_ints, help="only these bus widths (needs --out)")
    args = parser.parse_args()
    m = "quick" if args.quick else "full" if args.full else "default"
    pts = points(m)
    subset = any(v is not None for v in (args.graphs, args.caches, args.engines, args.buses))
    if subset:
        if args.out is None:
            parser.error("a subset run (--graphs/--caches/--engines/--buses) is not the published set: give --out")
        pts = [p for p in pts if (args.graphs is None or p[0] in args.graphs)
               and (args.caches is None or p[1] in args.caches) and (args.engines is None or p[2] in args.engines)
               and (args.buses is None or p[3] in args.buses)]
        if not pts:
            parser.error("the filters leave no point")
    start = time.monotonic()
    tasks = sorted(tasks_for(pts), key=_cost, reverse=True)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_one, tasks))
    summary, geo = summarise(results)
    wall = time.monotonic() - start
    what = {"quick": "Quick subset: Cora, 1 engine, 64 KiB, 512-bit bus.",
            "default": f"Cora and CiteSeer at every point, pubmed-like/{PUBMED_SCALE} on 1 engine at 512 bits.",
            "full": "Cora, CiteSeer and unscaled pubmed-like at every point."}[m]
    if subset:
        names = ", ".join(f"{g}@{kb}KiB/{e}e/{b}b" for g, kb, e, b in pts)
        what = f"Subset of the {m} set: {len(pts)} points ({names})."
    note = (f"{what} Latency {LATENCY}, stall_prob {STALL_PROB}; {len(results)} simulations, all bit-exact; "
            f"wall time {wall / 60:.1f} min with --jobs {args.jobs}.")
    print_tables(summary, geo, note)
    settings = {"mode": m, "subset": subset, "features": FEATURES,
                "formats": {"adjacency": "Q2.14", "features": "Q8.8", "accumulator": "int32 (22 fraction bits)"},
                "seed": SEED, "latency": LATENCY, "stall_prob": STALL_PROB, "tile_counts": list(TILE_COUNTS),
                "candidates": list(CANDIDATES), "chunk": CHUNK, "hardware": HW, "note": note,
                "wall_seconds": round(wall, 1)}
    policies = ("none", "tiling", "dynamic", "oracle")
    summary_out = [{k: v for k, v in s.items() if k not in policies}
                   | {p: {"cycles": s[p]["cycles"], "roofline": s[p]["roofline"]} for p in policies}
                   for s in summary]
    write_results(output_path(args), {"settings": settings, "runs": results, "summary": summary_out,
                                      "geomean": {str(e): g for e, g in geo.items()}})


if __name__ == "__main__":
    main()
