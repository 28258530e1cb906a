"""The MAC and bit-serial baseline DPU kernels on the UPMEM emulation: bit-exact, faults caught, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from hwforge.errors import ConfigError
from hwforge.ir.quant_lowbit import bit_linear, lowbit_matmul_int, odd_levels
from hwforge.upmem import baselines as K
from hwforge.upmem import dpu_kernel as D

pytestmark = pytest.mark.skipif(__import__("shutil").which("gcc") is None, reason="the DPU emulation needs gcc")


def _run(kernel):
    from hwforge.compiler.targets.localut_device import run_kernel

    return run_kernel(kernel)


def twos_complement(bits: int) -> np.ndarray:
    c = np.arange(1 << bits)
    return np.where(c >= 1 << (bits - 1), c - (1 << bits), c).astype(np.int32)


def _operands(seed: int, m: int, k: int, n: int, wbits: int, abits: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << wbits, (n, k)), rng.integers(0, 1 << abits, (m, k))


@pytest.mark.parametrize("name", ["mac", "bitserial"])
@pytest.mark.parametrize("m,k,n,wbits,abits,dpus,tasklets", [
    (37, 100, 19, 2, 2, 2, 16),    # K not a multiple of 8 or 64, M odd, uneven shards
    (37, 100, 19, 2, 2, 6, 16),    # few channels per DPU: 2 channel blocks x 3 blocks of activation rows
    (8, 768, 40, 4, 4, 2, 16),     # a BERT-width K
    (20, 64, 5, 1, 3, 8, 4),       # more DPUs than channels: the DPUs split the activation rows (7 get work)
    (3, 9, 2, 3, 1, 1, 1),         # one tasklet, tiny K (conv1 of the digits CNN)
])
def test_kernels_are_bit_exact(name, m, k, n, wbits, abits, dpus, tasklets) -> None:
    wc, ac = _operands(m * k + n, m, k, n, wbits, abits)
    levels = odd_levels(wbits)
    make = K.mac_kernel if name == "mac" else K.bitserial_kernel
    kernel = make(wc, levels, ac, wbits, abits, dpus, tasklets)
    assert kernel.nr_dpus == len(D.grid(m, n, dpus)) <= dpus
    run = _run(kernel)
    assert np.array_equal(run.output, lowbit_matmul_int(ac, wc, levels))
    # every DPU ran and counted its work: the MAC kernel multiplies, the bit-serial one never does
    totals = [d["total"] for d in run.stats["dpus"]]
    assert len(totals) == kernel.nr_dpus
    assert all(t["dma_read_bytes"] > 0 and t["alu"] > 0 for t in totals)
    assert all((t["mul8"] > 0) == (name == "mac") for t in totals)


@pytest.mark.parametrize("g", [2, 8])
def test_bitserial_group_sizes_and_twos_complement_levels(g: int) -> None:
    wc, ac = _operands(5, 6, 72, 7, 3, 2)
    levels = twos_complement(3)
    assert bit_linear(levels) == (0, [1, 2, -4])
    kernel = K.bitserial_kernel(wc, levels, ac, 3, 2, 2, 8, g=g)
    assert np.array_equal(_run(kernel).output, lowbit_matmul_int(ac, wc, levels))


@pytest.mark.parametrize("name", ["mac", "bitserial"])
def test_fault_is_caught(name: str) -> None:
    wc, ac = _operands(1, 12, 70, 6, 2, 2)
    levels = odd_levels(2)
    make = K.mac_kernel if name == "mac" else K.bitserial_kernel
    good = lowbit_matmul_int(ac, wc, levels)
    bad = _run(make(wc, levels, ac, 2, 2, 2, 16, fault="drop_last_k_group")).output
    assert np.count_nonzero(bad != good) > 0
    # the dropped weights are exactly the last group of 8 (K = 70: columns 64..69); the bit-serial kernel's
    # row-sum term (level offset -3 times sum_k a) still covers every column
    dropped = lowbit_matmul_int(ac[:, :64], wc[:, :64], levels)
    if name == "bitserial":
        dropped = dropped - 3 * ac[:, 64:].sum(axis=1, keepdims=True)
    assert np.array_equal(bad, dropped)


def test_bad_operands_and_options_are_refused() -> None:
    wc, ac = _operands(2, 4, 16, 4, 2, 2)
    lv = odd_levels(2)
    with pytest.raises(ConfigError, match="activation codes"):
        K.mac_kernel(wc, lv, ac + 4, 2, 2, 1)
    with pytest.raises(ConfigError, match="weight codes"):
        K.mac_kernel(wc, lv, ac, 1, 2, 1)
    with pytest.raises(ConfigError, match="do not match"):
        K.mac_kernel(wc, lv, ac[:, :8], 2, 2, 1)
    with pytest.raises(ConfigError, match="not bit-linear"):
        K.bitserial_kernel(wc, np.array([0, 5, -2, 1]), ac, 2, 2, 1)
    with pytest.raises(ConfigError, match="unknown fault"):
        K.mac_kernel(wc, lv, ac, 2, 2, 1, fault="flip")
    with pytest.raises(ConfigError, match="tasklets"):
        K.mac_kernel(wc, lv, ac, 2, 2, 1, nr_tasklets=25)
    big_k = np.zeros((2, 12000), dtype=np.int64)
    with pytest.raises(ConfigError, match="exceed"):
        K.bitserial_kernel(big_k, lv, np.zeros((4, 12000), dtype=np.int64), 2, 2, 1, g=8)


def test_host_files_layout_and_argument_packing() -> None:
    wc, ac = _operands(3, 6, 24, 17, 2, 2)
    kernel = K.mac_kernel(wc, odd_levels(2), ac, 2, 2, 2)
    files = D.kernel_files(kernel)
    layout = files["layout.txt"].decode().splitlines()
    assert layout[:2] == ["nr_dpus 2", "args_bytes 16"]
    assert f"broadcast acts {len(kernel.mram_inputs[0]['acts'])}" in layout   # same on every DPU: stored once
    assert f"symbol weights {len(kernel.mram_inputs[0]['weights'])}" in layout
    assert len(files["weights.bin"]) == 2 * len(kernel.mram_inputs[0]["weights"])
    assert layout[-2:] == [f"output out {kernel.output_bytes}", "cycles hwf_cycles"]
    assert np.frombuffer(files["args.bin"], "<u4").reshape(2, 4).tolist() == [[9, 6, 24, 0], [8, 6, 24, 0]]
    # a uint64 after a uint32 is aligned to 8 and the block rounded up to 8, as the C struct is
    mixed = D.DpuKernel("x", "", 1, (("uint32_t", "a"), ("uint64_t", "b"), ("uint32_t", "c")),
                        ({"a": 1, "b": 2, "c": 3},), ({"s": bytes(8)},), "out", 8)
    packed = D.pack_args(mixed, mixed.dpu_args[0])
    assert len(packed) == 24 and packed[8:16] == (2).to_bytes(8, "little")
    assert packed[16:20] == (3).to_bytes(4, "little")


def test_grid_splits_activation_rows_when_channels_are_few() -> None:
    """One rule for every kernel: channel blocks while each DPU keeps MIN_CHANNELS_PER_DPU, else rows too."""
    assert D.grid(64, 64, 4) == [(0, 64, 0, 16), (0, 64, 16, 16), (0, 64, 32, 16), (0, 64, 48, 16)]
    assert D.grid(64, 10, 4) == [(0, 16, 0, 10), (16, 16, 0, 10), (32, 16, 0, 10), (48, 16, 0, 10)]
    assert D.grid(37, 19, 6) == [(0, 13, 0, 10), (0, 13, 10, 9), (13, 13, 0, 10), (13, 13, 10, 9),
                                 (26, 11, 0, 10), (26, 11, 10, 9)]
    assert D.grid(2, 5, 8) == [(0, 1, 0, 5), (1, 1, 0, 5)]  # never more blocks than rows
    for m, n, d in ((37, 19, 6), (1, 1, 3), (300, 7, 16), (8, 3072, 16)):
        cover = np.zeros((m, n), dtype=int)
        for m0, mc, n0, nc in D.grid(m, n, d):
            cover[m0:m0 + mc, n0:n0 + nc] += 1
        assert (cover == 1).all() and len(D.grid(m, n, d)) <= d
