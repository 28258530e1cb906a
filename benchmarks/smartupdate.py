"""Benchmark: Smart-Infinity's near-storage optimizer update (SmartUpdate) against ZeRO-Infinity-style offload.

    python benchmarks/smartupdate.py [--quick] [--params 100e6] [--steps 3] [--out PATH]

Writes ``benchmarks/results/smartupdate.json`` (``--quick``: ``benchmarks/results/quick/smartupdate.json``; see
``common.py``).

(i) Host-link bytes per parameter per step, counted by the trainer's byte counters (bytes actually placed in the
    shared-memory links or read from / written to the device directories across the host link), for the
    baseline, SmartUpdate and SmartUpdate + top-k 1 % (int32 index + fp32 value), fp32 transfers and AdamW, beside
    the paper's 32, 8 and ~4.1. Also each device's internal storage<->FPGA bytes.
(ii) Updater throughput on one array of N elements (AdamW): the natively compiled HLS kernel (`NativeUpdater`,
    g++ C-simulation build, one thread) against ``torch.optim.AdamW`` with ``foreach=True`` and ``fused=True`` (CPU,
    1 thread and 2 threads), and a memory-copy ceiling (``np.copyto`` of a large array) measured in the same run.
    Bytes per element: AdamW reads param, grad, exp_avg, exp_avg_sq (16 B) and writes param, exp_avg, exp_avg_sq
    (12 B) = 28 B; a copy reads and writes 4 B each = 8 B. GB/s = those bytes / median seconds of 5 runs.
(iii) Optimizer-side step time (``trainer.step(grads=...)``: forward/backward excluded, gradients are seeded random
    numbers) of baseline and SmartUpdate offload with 1, 2 and 4 devices for a model of ``--params`` parameters
    (default: a 14-layer, 768-wide GPT, 100 M parameters), plus SmartUpdate with the transfer handler off (serial
    load, update, write-back) to measure what overlapping buys. One warm-up step, then the median of ``--steps``.

What this machine can and cannot show: 2 CPU cores shared with other jobs and one disk. The emulated devices'
"storage" is files that the 23 GB page cache holds, so storage bandwidth is memory bandwidth, and K device
workers share 2 cores, so SmartUpdate cannot scale past 2 devices here the way K FPGAs would. The last table is
therefore a link model, not a measurement: the measured bytes per step divided by stated link bandwidths.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import add_output_options, output_path, write_results
from rich.console import Console

from hwforge.fpga import NativeUpdater
from hwforge.host import OffloadConfig, OffloadTrainer
from hwforge.ir import OptimizerSpec
from hwforge.tables import rows_table
from hwforge.zoo.gpt import gpt_model

OPT = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
PAPER = {"baseline": 32.0, "smartupdate": 8.0, "smartupdate+topk": 4.1}
HOST_GBS, DEV_GBS = 16.0, 3.2  # link model: PCIe 3.0 x16 shared host link; PCIe 3.0 x4 per device (SmartSSD)


def flat_model(params: float) -> torch.nn.Module:
    """A GPT whose size is close to ``params``: 768 wide, layers chosen to match (vocab 28, context 1024)."""
    layers = max(1, round((params - 28 * 768 - 1024 * 768) / (12 * 768 * 768 + 13 * 768)))
    return gpt_model(28, seed=0, d_model=768, n_layer=layers, n_head=12, ctx=1024)


def tiny_model(params: float) -> torch.nn.Module:
    width = max(16, int((params / 12 / 2) ** 0.5) // 16 * 16)
    return gpt_model(28, seed=0, d_model=width, n_layer=2, n_head=4, ctx=64)


def grads(numel: int, seed: int) -> torch.Tensor:
    return torch.randn(numel, generator=torch.Generator().manual_seed(seed)) * 1e-3


def bytes_per_param(root: Path) -> list[dict]:
    """(i): two steps of each mode on a ~1 M parameter model; counters from the trainer."""
    out = []
    for label, mode, kw in [("baseline", "baseline", {}), ("smartupdate", "smartupdate", {}),
                            ("smartupdate+topk", "smartupdate", {"topk": 0.01}),
                            ("smartupdate fp16 grads", "smartupdate", {"grad_dtype": "fp16"})]:
        model = tiny_model(1e6)
        cfg = OffloadConfig(root / label.replace(" ", "_"), mode=mode, devices=2, optimizer_params=OPT,
                            subgroup_size=1 << 17, **kw)
        with OffloadTrainer(model, cfg) as tr:
            tr.resume()
            for s in range(2):
                tr.step(grads=grads(tr.layout.numel, s))
            c = tr.counters
            out.append({"mode": label, "params": c.numel, "host_B_per_param_step": round(c.per_param_step("host"), 4),
                        "device_B_per_param_step": round(c.per_param_step("dev"), 4),
                        "paper": PAPER.get(label), "by_phase": c.snapshot()})
    return out


def _median_time(fn, reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(n: int, cache_dir: Path | None) -> list[dict]:
    """(ii): GB/s of one AdamW step over n elements, and the copy ceiling."""
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n, dtype=np.float32)
    g = (rng.standard_normal(n, dtype=np.float32) * 1e-3).astype(np.float32)
    rows = []
    src, dst = np.ones(n * 4, np.float32), np.empty(n * 4, np.float32)
    t = _median_time(lambda: np.copyto(dst, src))
    rows.append({"updater": "memory copy ceiling (np.copyto)", "threads": 1, "bytes_per_elem": 8,
                 "seconds": t, "GB_s": 8 * len(src) / t / 1e9})
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], **OPT)
    spec = OptimizerSpec.from_torch(opt, grad_format="fp32", half_copy=False)
    upd = NativeUpdater.build(spec, cache_dir=cache_dir)
    param, m, v = p0.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    step = [0]

    def native() -> None:
        step[0] += 1
        upd.step(param, {"exp_avg": m, "exp_avg_sq": v}, g, step[0])

    t = _median_time(native)
    rows.append({"updater": "NativeUpdater (HLS C++ via g++ -O2)", "threads": 1, "bytes_per_elem": 28,
                 "seconds": t, "GB_s": 28 * n / t / 1e9})
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for impl in ("foreach", "fused"):
            p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
            p.grad = torch.from_numpy(g)
            o = torch.optim.AdamW([p], **OPT, **{impl: True})
            t = _median_time(o.step)
            rows.append({"updater": f"torch.optim.AdamW({impl}=True)", "threads": threads, "bytes_per_elem": 28,
                         "seconds": t, "GB_s": 28 * n / t / 1e9})
    torch.set_num_threads(2)
    return rows


def step_times(root: Path, params: float, steps: int, quick: bool) -> list[dict]:
    """(iii): optimizer-side step time per mode and device count."""
    out = []
    points = [("baseline", k, True) for k in (1, 2, 4)] + [("smartupdate", k, True) for k in (1, 2, 4)]
    points.append(("smartupdate", 2, False))
    for mode, k, overlap in points:
        model = tiny_model(params) if quick else flat_model(params)
        numel = sum(p.numel() for p in model.parameters())
        cfg = OffloadConfig(root / f"{mode}{k}{overlap}", mode=mode, devices=k, optimizer_params=OPT,
                            subgroup_size=1 << 23, overlap=overlap)
        with OffloadTrainer(model, cfg) as tr:
            t0 = time.perf_counter()
            tr.resume()
            init_s = time.perf_counter() - t0
            times = []
            for s in range(steps + 1):
                g = grads(numel, s)
                t0 = time.perf_counter()
                tr.step(grads=g)
                times.append(time.perf_counter() - t0)
            c = tr.counters
            stats = tr.stats()
            host_b = c.bytes("host", one_off=False) / c.steps
            dev_b = max(c.bytes(f"dev{d}", one_off=False) for d in range(k)) / c.steps if mode == "smartupdate" \
                else host_b / k
            out.append({"mode": mode, "devices": k, "overlap": overlap, "params": numel, "init_s": round(init_s, 2),
                        "step_s": round(statistics.median(times[1:]), 3), "steps_s": [round(x, 3) for x in times],
                        "host_B_per_param_step": round(c.per_param_step("host"), 3),
                        "host_bytes_per_step": host_b, "max_device_bytes_per_step": dev_b,
                        "model_s": max(host_b / HOST_GBS / 1e9, dev_b / DEV_GBS / 1e9),
                        "handler": {d: {k2: round(v, 3) for k2, v in s.items() if k2 != "ok"}
                                    for d, s in stats.items()}})
        shutil.rmtree(cfg.root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_options(parser, "smartupdate", "1 M-parameter model, 1 M-element throughput (~1 min)")
    parser.add_argument("--params", type=float, default=100e6, help="model size for (iii) (default 100e6)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per point in (iii), after 1 warm-up")
    parser.add_argument("--elements", type=int, default=1 << 24, help="array length for (ii) (default 16 M)")
    parser.add_argument("--storage", type=Path, default=None, help="where device directories go (default: temp)")
    args = parser.parse_args()
    if args.quick:
        args.params, args.elements, args.steps = 1e6, 1 << 20, 1
    console = Console(width=180)
    start = time.monotonic()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.storage, prefix="hwforge-smartupdate-") as tmp:
        root = Path(tmp)
        b = bytes_per_param(root)
        console.print(rows_table("(i) bytes per parameter per step, fp32 AdamW, 2 devices",
                                 ["mode", "host link (measured)", "paper", "inside each device (storage<->FPGA)"],
                                 [[r["mode"], f"{r['host_B_per_param_step']:.3f}", r["paper"] or "-",
                                   f"{r['device_B_per_param_step']:.2f}"] for r in b]))
        tp = throughput(args.elements, None)
        console.print(rows_table(f"(ii) updater throughput, AdamW, {args.elements:,} elements (median of 5)",
                                 ["updater", "threads", "B/elem", "ms", "GB/s"],
                                 [[r["updater"], r["threads"], r["bytes_per_elem"], f"{r['seconds'] * 1e3:.1f}",
                                   f"{r['GB_s']:.2f}"] for r in tp]))
        st = step_times(root, args.params, args.steps, args.quick)
    base = {r["devices"]: r["step_s"] for r in st if r["mode"] == "baseline"}
    console.print(rows_table(f"(iii) optimizer-side step time, {st[0]['params'] / 1e6:.1f} M parameters, median of "
                             f"{args.steps} steps after a warm-up (forward/backward excluded)",
                             ["mode", "devices", "transfer handler", "step s", "vs baseline", "host B/param/step",
                              "update s (kernel or torch, summed)", "waited for prefetch s", "init s"],
                             [[r["mode"], r["devices"], "on" if r["overlap"] else "off", f"{r['step_s']:.2f}",
                               f"{base[r['devices']] / r['step_s']:.2f}x", r["host_B_per_param_step"],
                               f"{sum(h.get('update_s', 0) for h in r['handler'].values()):.2f}",
                               f"{sum(h.get('wait_load_s', 0) for h in r['handler'].values()):.2f}",
                               r["init_s"]] for r in st]))
    model_rows = []
    numel = st[0]["params"]
    for k in (1, 2, 4, 10):
        tb = max(32 * numel / HOST_GBS, 32 * numel / k / DEV_GBS) / 1e9
        ts = max(8 * numel / HOST_GBS, 24 * numel / k / DEV_GBS) / 1e9
        tk = max(4.08 * numel / HOST_GBS, 24 * numel / k / DEV_GBS) / 1e9
        model_rows.append([k, f"{tb:.3f}", f"{ts:.3f}", f"{tk:.3f}", f"{tb / ts:.2f}x"])
    console.print(rows_table(f"link model (not measured): transfer time per step from the measured bytes/param, "
                             f"host link {HOST_GBS} GB/s shared, {DEV_GBS} GB/s per device",
                             ["devices", "baseline s", "SmartUpdate s", "SmartUpdate+top-k s", "speedup"], model_rows))
    wall = time.monotonic() - start
    load = [round(x, 1) for x in (*load_start, *os.getloadavg())]
    console.print(f"wall time {wall / 60:.1f} min; load average (1, 5, 15 min) at start {load[:3]}, at end {load[3:]} "
                  f"on {os.cpu_count()} cores (other jobs share the machine)")
    settings = {"quick": args.quick, "params": args.params, "steps": args.steps, "elements": args.elements,
                "optimizer": OPT, "link_model_GBs": {"host": HOST_GBS, "device": DEV_GBS},
                "wall_seconds": round(wall, 1), "load_average": load}
    write_results(output_path(args), {"settings": settings, "bytes_per_param": b, "throughput": tp,
                                                     "step_times": st, "link_model": model_rows}, indent=1)


if __name__ == "__main__":
    main()
