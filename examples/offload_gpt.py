"""Train a small GPT with its optimizer step offloaded to emulated storage devices, four ways, and compare.

    python examples/offload_gpt.py [--steps 20] [--batch 8] [--devices 2] [--topk 0.01] [--threads 1] [--json F]

(a) torch.optim.AdamW in memory; (b) ZeRO-Infinity-style baseline offload (host reads parameters and optimizer
states from storage, updates with torch, writes them back); (c) SmartUpdate (Smart-Infinity): each device's
worker updates its subgroups with the natively compiled HLS kernel, only gradients go down and parameters come
back; (d) SmartUpdate with top-k gradient compression (1 % of each subgroup's gradient elements, int32 index +
fp32 value each) with error feedback: the unsent remainder is kept on the host and added to the next step's
gradient (``--no-error-feedback`` turns that off).

The model is a 4-layer, 256-wide character-level GPT (3.2 M parameters) on the seeded synthetic corpus of
`hwforge.zoo.gpt`; every run starts from the same initial weights, sees the same batches and the same learning
rate schedule (linear warm-up over 10 steps, then 1e-3). (a) and (b) are
bit-identical; (c) differs from (a) by float rounding only (torch's CPU sqrt is not always correctly rounded);
(d) trains on a compressed gradient, so its loss curve is shown beside the others.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from hwforge.host import OffloadConfig, OffloadTrainer
from hwforge.tables import rows_table
from hwforge.zoo.gpt import CharData, corpus, gpt_model

MODEL = {"d_model": 256, "n_layer": 4, "n_head": 4, "ctx": 64}
OPT = {"lr": 1e-3, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}
WARMUP = 10


def lr_at(step: int) -> float:
    """Linear warm-up over the first WARMUP steps (passed to every run as its per-step learning rate)."""
    return OPT["lr"] * min(1.0, (step + 1) / WARMUP)


def run(name: str, data: CharData, steps: int, batch: int, offload: OffloadConfig | None) -> dict:
    """Train from the same seed; returns losses, final flat weights, seconds per step and byte counters."""
    model = gpt_model(len(data.vocab), seed=0, **MODEL)
    losses: list[float] = []
    start = time.perf_counter()
    if offload is None:
        opt = torch.optim.AdamW(model.parameters(), **OPT)
        for t in range(steps):
            opt.param_groups[0]["lr"] = lr_at(t)
            opt.zero_grad()
            loss = model.loss(*data.batch(t, batch, MODEL["ctx"]))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        counters = None
    else:
        with OffloadTrainer(model, offload) as trainer:
            begin = trainer.resume()
            start = time.perf_counter()  # per-step time excludes starting the workers and the initial upload
            for t in range(begin.step, steps):
                x, y = data.batch(t, batch, MODEL["ctx"])
                losses.append(trainer.step(lambda m, x=x, y=y: m.loss(x, y), lr=lr_at(t),
                                           user_state={"position": t + 1}))
            counters = trainer.counters.to_dict()
    seconds = time.perf_counter() - start
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {"name": name, "losses": losses, "weights": weights, "s_per_step": seconds / steps, "counters": counters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (default 20: about a minute)")
    parser.add_argument("--batch", type=int, default=8, help="sequences of 64 characters per step")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for forward/backward (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--topk", type=float, default=0.01, help="fraction of gradient elements sent in (d)")
    parser.add_argument("--no-error-feedback", action="store_true")
    parser.add_argument("--storage", type=Path, default=None, help="parent of the device directories (default: temp)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = CharData(corpus())
    with tempfile.TemporaryDirectory(dir=args.storage) as tmp:
        def cfg(tag: str, mode: str, **kw) -> OffloadConfig:
            return OffloadConfig(Path(tmp) / tag, mode=mode, devices=args.devices, optimizer="adamw",
                                 optimizer_params=OPT, subgroup_size=1 << 19, **kw)

        runs = [run("(a) torch AdamW in memory", data, args.steps, args.batch, None),
                run("(b) baseline offload", data, args.steps, args.batch, cfg("b", "baseline")),
                run("(c) SmartUpdate", data, args.steps, args.batch, cfg("c", "smartupdate")),
                run(f"(d) SmartUpdate top-{args.topk:g}", data, args.steps, args.batch,
                    cfg("d", "smartupdate", topk=args.topk, error_feedback=not args.no_error_feedback))]
    ref = runs[0]["weights"]
    numel = ref.numel()
    marks = sorted({0, args.steps // 4, args.steps // 2, (3 * args.steps) // 4, args.steps - 1})
    rows = []
    for r in runs:
        c = r["counters"]
        diff = (r["weights"] - ref).abs().max().item()
        ldiff = max(abs(a - b) for a, b in zip(r["losses"], runs[0]["losses"], strict=True))
        rows.append([r["name"], *[f"{r['losses'][i]:.4f}" for i in marks], f"{diff:.2e}", f"{ldiff:.1e}",
                     f"{c['host_bytes_per_param_step']:.2f}" if c else "-", f"{r['s_per_step']:.3f}"])
    console = Console(width=160)
    console.print(rows_table(f"GPT {numel / 1e6:.2f} M params, {args.steps} steps, batch {args.batch}x{MODEL['ctx']}, "
                             f"{args.devices} devices: loss at step",
                             ["run", *[str(i + 1) for i in marks], "max |w - w(a)|", "max |loss - loss(a)|",
                              "host B/param/step", "s/step"],
                             rows))
    console.print(f"error feedback in (d): {'off' if args.no_error_feedback else 'on'}; (b) == (a) bit for bit: "
                  f"{torch.equal(runs[1]['weights'], ref)}")
    if args.json:
        args.json.write_text(json.dumps({"params": numel, "steps": args.steps, "devices": args.devices,
                                         "runs": [{k: v for k, v in r.items() if k != "weights"}
                                                  | {"max_abs_diff_vs_a": (r["weights"] - ref).abs().max().item()}
                                                  for r in runs]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
