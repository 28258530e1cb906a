"""The DPU cost model: formulas, bounds, tasklet scaling, transfers and the per-layer breakdown."""

from __future__ import annotations

import math

import pytest

from hwforge.errors import ConfigError
from hwforge.upmem import cost
from hwforge.upmem.cost import (
    balanced_cycles,
    cycles_from_tasklets,
    dpu_cycles,
    layer_time,
    tasklet_instructions,
    transfer_seconds,
)


def test_instruction_and_dma_formulas() -> None:
    counts = {"alu": 10, "mul8": 3, "mul32": 2, "wram_load": 4, "wram_store": 5, "branch": 6}
    assert tasklet_instructions(counts) == 10 + 3 + 4 + 5 + 6 + 2 * cost.MUL32_INSTRUCTIONS
    dma = {"dma_reads": 2, "dma_read_bytes": 2048, "dma_writes": 1, "dma_write_bytes": 8}
    assert cost.tasklet_dma_cycles(dma) == 2 * 77 + 61 + 0.5 * (2048 + 8)
    one = cycles_from_tasklets([{"alu": 10, "dma_reads": 2, "dma_read_bytes": 2048}])
    assert one["bound"] == "chain" and one["cycles"] == 11 * 10 + 2 * 77 + 1024


def test_revolver_pipeline_needs_11_tasklets() -> None:
    total = {"alu": 110_000}
    cycles = [balanced_cycles(total, t)["cycles"] for t in range(1, 25)]
    assert cycles[0] == 11 * 110_000  # one tasklet issues every 11 cycles
    assert all(a > b for a, b in zip(cycles[:10], cycles[1:11], strict=True))  # strictly better up to 11
    assert cycles[10] == 110_000 and set(cycles[10:]) == {110_000}  # 11+ tasklets: one instruction per cycle
    assert balanced_cycles(total, 16)["bound"] == "issue"


def test_mram_bandwidth_bound_and_overlap() -> None:
    # 16 tasklets, each one 2,048-byte read: the MRAM bank (2 B/cycle) is the bottleneck.
    r = cycles_from_tasklets([{"dma_reads": 1, "dma_read_bytes": 2048}] * 16)
    assert r["bound"] == "mram" and r["cycles"] == 16 * 1024
    # Compute and DMA overlap: adding a little compute to other tasklets does not add cycles.
    mixed = cycles_from_tasklets([{"dma_reads": 1, "dma_read_bytes": 2048}] * 8 + [{"alu": 100}] * 8)
    assert mixed["cycles"] == max(8 * 1024, 11 * 100, 77 + 1024)
    with pytest.raises(ConfigError):
        balanced_cycles(total={"alu": 1}, nr_tasklets=25)


def _stats() -> dict:
    fast = {"alu": 100}
    slow = {"alu": 1000, "dma_reads": 4, "dma_read_bytes": 4096}
    return {
        "nr_tasklets": 2,
        "launches": [
            {"launch": 0, "dpus": [{"dpu": 0, "tasklets": [fast, fast]}, {"dpu": 1, "tasklets": [slow, fast]}]},
            {"launch": 1, "dpus": [{"dpu": 0, "tasklets": [slow, slow]}, {"dpu": 1, "tasklets": [fast, fast]}]},
        ],
        "transfers": [
            {"direction": "to_dpu", "kind": "push", "symbol": "A", "nr_dpus": 2, "bytes_per_dpu": 1 << 20,
             "bytes": 2 << 20, "after_launch": 0},
            {"direction": "to_dpu", "kind": "broadcast", "symbol": "args", "nr_dpus": 2, "bytes_per_dpu": 8,
             "bytes": 16, "after_launch": 1},
            {"direction": "from_dpu", "kind": "push", "symbol": "C", "nr_dpus": 2, "bytes_per_dpu": 4096,
             "bytes": 8192, "after_launch": 1},
            {"direction": "from_dpu", "kind": "serial", "symbol": "C", "nr_dpus": 1, "bytes_per_dpu": 4096,
             "bytes": 4096, "after_launch": 2},
        ],
    }


def test_dpu_cycles_take_the_slowest_dpu_per_launch() -> None:
    slow = 11 * 1000 + 4 * 77 + 0.5 * 4096
    r = dpu_cycles(_stats(), 2)
    assert [p["critical_dpu"] for p in r["per_launch"]] == [1, 0]
    assert [p["cycles"] for p in r["per_launch"]] == [slow, slow]
    assert r["cycles"] == 2 * slow
    assert r["per_dpu"] == [1100 + slow, slow + 1100]
    assert dpu_cycles(_stats(), 2, launch=1)["cycles"] == slow
    with pytest.raises(ConfigError, match="2 tasklets, not 16"):
        dpu_cycles(_stats(), 16)
    with pytest.raises(ConfigError, match="launch 5"):
        dpu_cycles(_stats(), 2, launch=5)


def test_transfer_bandwidths() -> None:
    mb = 1 << 20
    assert transfer_seconds("to_dpu", "serial", 1, mb) == pytest.approx(mb / 0.33e9)
    assert transfer_seconds("from_dpu", "serial", 1, mb) == pytest.approx(mb / 0.12e9)
    assert transfer_seconds("to_dpu", "push", 64, mb) == pytest.approx(64 * mb / 6.68e9)
    assert transfer_seconds("from_dpu", "push", 64, mb) == pytest.approx(64 * mb / 4.74e9)
    assert transfer_seconds("to_dpu", "broadcast", 64, mb) == pytest.approx(64 * mb / 16.88e9)
    # More DPUs in parallel: more aggregate bandwidth, each rank on its own (ranks run concurrently).
    per_byte = [transfer_seconds("to_dpu", "push", n, mb) / (n * mb) for n in (1, 2, 8, 32, 64)]
    assert all(a > b for a, b in zip(per_byte, per_byte[1:], strict=False))
    assert transfer_seconds("to_dpu", "push", 256, mb) == transfer_seconds("to_dpu", "push", 64, mb)


def test_layer_time_breakdown() -> None:
    s = _stats()
    slow = 11 * 1000 + 4 * 77 + 0.5 * 4096
    first = layer_time(s, 2, launch=0)
    assert first["host_to_dpu_bytes"] == 2 << 20 and first["dpu_to_host_bytes"] == 8192
    assert first["kernel_s"] == pytest.approx(slow / 350e6)
    assert first["host_to_dpu_s"] == pytest.approx(transfer_seconds("to_dpu", "push", 2, 1 << 20))
    assert first["total_s"] == pytest.approx(first["host_to_dpu_s"] + first["kernel_s"] + first["dpu_to_host_s"])
    second = layer_time(s, 2, launch=1, freq_hz=425e6)
    assert second["host_to_dpu_bytes"] == 16 and second["dpu_to_host_bytes"] == 4096
    assert second["kernel_s"] == pytest.approx(slow / 425e6)
    whole = layer_time(s, 2)
    assert whole["host_to_dpu_bytes"] == (2 << 20) + 16 and whole["dpu_to_host_bytes"] == 8192 + 4096
    assert whole["cycles"] == 2 * slow and math.isclose(whole["kernel_s"], 2 * slow / 350e6)
