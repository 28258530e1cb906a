"""DPU cost model: cycles and end-to-end time of an emulated UPMEM run, from the emulator's counts.

The emulator counts what a kernel does (``HWF_COUNT`` kinds, DMA calls and bytes per tasklet, host<->DPU transfers);
this module turns those counts into DPU cycles and seconds with published UPMEM figures. It is an analytical
model, not a cycle simulator: it is meant to rank kernels (LUT vs MAC vs bit-serial) and to show which bound
dominates, not to predict a hardware run to the percent.

Sources (all numbers are constants below, with their origin):

- [PrIM] J. Gómez-Luna, I. El Hajj, I. Fernandez, C. Giannoula, G. F. Oliveira, O. Mutlu, "Benchmarking a New
  Paradigm: Experimental Analysis and Characterization of a Real Processing-in-Memory System", IEEE Access 10
  (2022); arXiv:2105.03814. Section 2 (DPU architecture: 14-stage pipeline, dispatch from one thread every 11
  cycles), Section 3.1 (arithmetic throughput), Section 3.2 (MRAM-WRAM DMA latency model ``alpha + beta * size``),
  Section 3.4 (CPU-DPU and DPU-CPU transfer bandwidth).
- [SDK] UPMEM SDK documentation, "DPU chip characteristics": v1A 350 MHz, v1B 400 MHz, WRAM 64 KB, 24 tasklets.

Model, per DPU and launch, with ``I_t`` the instructions of tasklet t and ``D_t`` its DMA latency:

    I_t      = alu + mul8 + wram_load + wram_store + branch + MUL32_INSTRUCTIONS * mul32
    D_t      = DMA_READ_ALPHA * dma_reads + DMA_WRITE_ALPHA * dma_writes + DMA_BETA * (read + write bytes)
    issue    = sum_t I_t                               (the pipeline dispatches at most one instruction a cycle)
    chain    = max_t (REVOLVER_CYCLES * I_t + D_t)     (a tasklet issues at most every 11 cycles and waits for
                                                        its own DMAs)
    mram     = DMA_BETA * sum_t bytes_t                (the MRAM bank moves 2 bytes a cycle, shared by tasklets)
    cycles   = max(issue, chain, mram)                 (overlap rule: the three bounds overlap perfectly)

A launch takes the cycles of its slowest DPU (all DPUs start together and the host waits for all).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from hwforge.errors import ConfigError

#: DPU clock [SDK: v1A nominal 350 MHz; PrIM's 2,556-DPU system runs at 350 MHz]. Other parts: 400 MHz [SDK v1B];
#: 425 MHz for newer modules as stated in the LOCALUT issue (not verified here). Pass ``freq_hz`` to change it.
DPU_FREQ_HZ = 350e6
#: Pipeline depth [PrIM Sec. 2.2: 14 stages].
PIPELINE_STAGES = 14
#: One thread can dispatch only every 11 cycles, so at least 11 tasklets fill the pipeline [PrIM Sec. 2.2 and
#: Key Observation 1: arithmetic throughput saturates at 11 tasklets].
REVOLVER_CYCLES = 11
#: MRAM<->WRAM DMA latency in cycles = alpha + beta * bytes [PrIM Sec. 3.2.1, Eq. 1 and Fig. 6: alpha ~ 77 cycles
#: for mram_read, ~ 61 for mram_write, beta = 0.5 cycles/byte, i.e. at most 2 B/cycle = 700 MB/s at 350 MHz;
#: measured 628 MB/s read and 633 MB/s write with 2,048-byte transfers].
DMA_READ_ALPHA = 77
DMA_WRITE_ALPHA = 61
DMA_BETA = 0.5
#: Instructions per 32-bit multiply: the DPU multiplies 8x8 bits in hardware; a 32-bit multiply is a software
#: routine of mul_step instructions. Derived from [PrIM Sec. 3.1.2, Fig. 5]: 10.27 MOPS for INT32 MUL against
#: 58.56 MOPS for INT32 ADD with 16 tasklets at 350 MHz, i.e. 350/10.27 = 34 instructions per multiply loop
#: iteration vs 350/58.56 = 6 per add iteration, so a multiply costs about 34 - 6 + 1 = 29 instructions.
MUL32_INSTRUCTIONS = 29
#: Host<->DPU transfer bandwidths in bytes/s [PrIM Sec. 3.4, Fig. 10, 32 MB per DPU]: serial (one DPU)
#: CPU-DPU 0.33 GB/s and DPU-CPU 0.12 GB/s; parallel transfers to the 64 DPUs of one rank 6.68 GB/s CPU-DPU and
#: 4.74 GB/s DPU-CPU; broadcast to a rank 16.88 GB/s.
SERIAL_TO_DPU_BPS = 0.33e9
SERIAL_FROM_DPU_BPS = 0.12e9
RANK_PARALLEL_TO_DPU_BPS = 6.68e9
RANK_PARALLEL_FROM_DPU_BPS = 4.74e9
RANK_BROADCAST_BPS = 16.88e9
#: DPUs per rank [PrIM Sec. 2.1: 64 DPUs per rank, 8 chips of 8 DPUs].
DPUS_PER_RANK = 64

INSTRUCTION_KINDS = ("alu", "mul8", "wram_load", "wram_store", "branch")


def tasklet_instructions(counts: Mapping[str, int]) -> float:
    """DPU instructions of one tasklet: each counted operation is one instruction, a 32-bit multiply 29."""
    return sum(counts.get(k, 0) for k in INSTRUCTION_KINDS) + MUL32_INSTRUCTIONS * counts.get("mul32", 0)


def tasklet_dma_cycles(counts: Mapping[str, int]) -> float:
    """Latency of one tasklet's DMA calls, ``alpha + beta * bytes`` each (it waits for every one)."""
    return (DMA_READ_ALPHA * counts.get("dma_reads", 0) + DMA_WRITE_ALPHA * counts.get("dma_writes", 0)
            + DMA_BETA * (counts.get("dma_read_bytes", 0) + counts.get("dma_write_bytes", 0)))


def cycles_from_tasklets(tasklets: Iterable[Mapping[str, int]]) -> dict:
    """Cycles of one DPU launch from per-tasklet counts, with the three bounds and which one dominates."""
    rows = list(tasklets)
    if not rows:
        raise ConfigError("cost model: a DPU launch needs at least one tasklet's counts")
    instr = [tasklet_instructions(c) for c in rows]
    dma = [tasklet_dma_cycles(c) for c in rows]
    nbytes = sum(c.get("dma_read_bytes", 0) + c.get("dma_write_bytes", 0) for c in rows)
    bounds = {
        "issue": float(sum(instr)),
        "chain": max(REVOLVER_CYCLES * i + d for i, d in zip(instr, dma, strict=True)),
        "mram": DMA_BETA * nbytes,
    }
    bound = max(bounds, key=lambda k: bounds[k])
    return {"cycles": math.ceil(round(bounds[bound], 6)), "bound": bound, "bounds": bounds, "instructions": sum(instr),
            "dma_cycles": sum(dma), "dma_bytes": nbytes, "nr_tasklets": len(rows)}


def balanced_cycles(total: Mapping[str, int], nr_tasklets: int) -> dict:
    """What-if: cycles when ``total`` counts are split evenly over ``nr_tasklets`` tasklets (1..24)."""
    if not 1 <= nr_tasklets <= 24:
        raise ConfigError(f"cost model: nr_tasklets = {nr_tasklets}, a DPU runs 1..24 tasklets")
    share = {k: v / nr_tasklets for k, v in total.items()}
    return cycles_from_tasklets([share] * nr_tasklets)


def _launches(stats: dict, launch: int | None) -> list[dict]:
    launches = stats.get("launches", [])
    if not launches:
        raise ConfigError("cost model: the stats hold no DPU launch")
    if launch is None:
        return launches
    if not 0 <= launch < len(launches):
        raise ConfigError(f"cost model: launch {launch} not in the stats (0..{len(launches) - 1})")
    return [launches[launch]]


def dpu_cycles(stats: dict, nr_tasklets: int, launch: int | None = None) -> dict:
    """DPU cycles of the emulated run (or of one launch): per launch the slowest DPU, summed over launches.

    ``nr_tasklets`` must match the run (it is checked against the stats, to catch stats from another build).
    Returns ``cycles``, ``per_launch`` (cycles, critical DPU, its bound and bounds) and ``per_dpu`` cycles.
    """
    if stats.get("nr_tasklets") not in (None, nr_tasklets):
        raise ConfigError(f"cost model: stats are from {stats['nr_tasklets']} tasklets, not {nr_tasklets}")
    per_launch, per_dpu = [], {}
    for rec in _launches(stats, launch):
        results = {d["dpu"]: cycles_from_tasklets(d["tasklets"]) for d in rec["dpus"]}
        critical = max(results, key=lambda d: (results[d]["cycles"], -d))
        per_launch.append({"launch": rec.get("launch"), "cycles": results[critical]["cycles"],
                           "critical_dpu": critical, "bound": results[critical]["bound"],
                           "bounds": results[critical]["bounds"]})
        for d, r in results.items():
            per_dpu[d] = per_dpu.get(d, 0) + r["cycles"]
    return {"cycles": sum(p["cycles"] for p in per_launch), "per_launch": per_launch,
            "per_dpu": [per_dpu[d] for d in sorted(per_dpu)]}


def transfer_seconds(direction: str, kind: str, nr_dpus: int, bytes_per_dpu: int) -> float:
    """Time of one host<->DPU transfer: serial (one DPU), parallel push, or broadcast, by rank.

    Ranks transfer concurrently (the host library drives every rank at once), so a transfer takes the time of its
    fullest rank. Within a rank, a parallel transfer of n DPUs gets ``serial * n**g`` bytes/s with g fitted through
    the serial and the full-rank figures (1 DPU -> serial, 64 DPUs -> rank bandwidth).
    """
    to_dpu = direction == "to_dpu"
    serial = SERIAL_TO_DPU_BPS if to_dpu else SERIAL_FROM_DPU_BPS
    n = min(max(1, nr_dpus), DPUS_PER_RANK)
    if kind == "serial" or n == 1:
        return bytes_per_dpu * n / serial
    if kind == "broadcast" and to_dpu:
        rank = RANK_BROADCAST_BPS  # PrIM counts every DPU's copy in the broadcast bandwidth
    else:
        rank = RANK_PARALLEL_TO_DPU_BPS if to_dpu else RANK_PARALLEL_FROM_DPU_BPS
    g = math.log(rank / serial) / math.log(DPUS_PER_RANK)
    return bytes_per_dpu * n / (serial * n ** g)


def layer_time(stats: dict, nr_tasklets: int, launch: int | None = None, freq_hz: float = DPU_FREQ_HZ) -> dict:
    """End-to-end time of one layer (a launch) or of the whole run: host->DPU + kernel + DPU->host, in seconds.

    A transfer belongs to launch i when it goes to the DPUs before launch i (``after_launch == i``) or comes back
    after it and before the next launch (``after_launch == i + 1``); with ``launch=None`` every transfer and launch
    counts. ``freq_hz`` sets the DPU clock. Fixed per-call software overheads of transfers are not modelled.
    """
    cyc = dpu_cycles(stats, nr_tasklets, launch)
    h2d = d2h = 0.0
    h2d_bytes = d2h_bytes = 0
    for t in stats.get("transfers", []):
        after = t["after_launch"]
        if launch is not None and after != (launch if t["direction"] == "to_dpu" else launch + 1):
            continue
        secs = transfer_seconds(t["direction"], t["kind"], t["nr_dpus"], t["bytes_per_dpu"])
        if t["direction"] == "to_dpu":
            h2d += secs
            h2d_bytes += t["bytes"]
        else:
            d2h += secs
            d2h_bytes += t["bytes"]
    kernel = cyc["cycles"] / freq_hz
    return {"host_to_dpu_s": h2d, "kernel_s": kernel, "dpu_to_host_s": d2h, "total_s": h2d + kernel + d2h,
            "cycles": cyc["cycles"], "freq_hz": freq_hz, "host_to_dpu_bytes": h2d_bytes,
            "dpu_to_host_bytes": d2h_bytes, "per_launch": cyc["per_launch"]}
