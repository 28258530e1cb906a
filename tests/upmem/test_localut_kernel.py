"""The LOCALUT DPU kernel compiled and run on the host-side UPMEM emulation, bit-exact to the integer GEMM."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError
from hwforge.upmem import DpuFaultError, build_emulation, run_emulation
from hwforge.upmem.dpu_kernel import grid, host_source, kernel_files
from hwforge.upmem.lut import SCHEMES, build_lut, lut_layout
from hwforge.upmem.lutgemm import int_gemm, lut_gemm
from hwforge.upmem.lutkernel import RUNTIME_BYTES, decode_localut_output, fits, localut_kernel, max_p, wram_budget


def odd_levels(wbits: int) -> np.ndarray:
    return 2 * np.arange(1 << wbits) - ((1 << wbits) - 1)


def operands(wbits: int, abits: int, n: int, k: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    wc = rng.integers(0, 1 << wbits, (n, k))
    ac = rng.integers(0, 1 << abits, (m, k))
    ac[:, -1] = (1 << abits) - 1  # the last, partial group always contributes
    wc[:, -1] = (1 << wbits) - 1
    return wc, ac


def run_kernel(kernel, tmp_path: Path) -> tuple[np.ndarray, object]:
    """Write the kernel's data files, build DPU and generic host program, run, decode hwf_out."""
    for name, data in kernel_files(kernel).items():
        (tmp_path / name).write_bytes(data)
    build = build_emulation(kernel.dpu_source, host_source(), kernel.nr_tasklets)
    # the emitter's WRAM accounting is the program's: globals = buffers + __host block, cycles, barrier
    assert kernel.meta["wram_bytes"] <= build.wram_globals_bytes <= kernel.meta["wram_bytes"] + RUNTIME_BYTES
    run = run_emulation(build, [build.dpu_binary, tmp_path, tmp_path / "out.bin"], tmp_path)
    assert run.returncode == 0, run.stderr
    return decode_localut_output(kernel, (tmp_path / "out.bin").read_bytes()), run


# (scheme, wbits, abits, p, nr_dpus, nr_tasklets, N): K = 29 is never a multiple of p; N leaves padded rows
CASES = [
    ("full", 2, 2, 3, 3, 5, 45),
    ("full", 2, 1, 6, 2, 3, 20),  # 4 KB slices: two DMA chunks dealt to different tasklets
    ("weight-canonical", 2, 1, 3, 2, 4, 33),
    ("weight-canonical", 1, 1, 7, 1, 3, 17),  # 121 sort permutations, one column each
    ("activation-canonical", 1, 3, 4, 3, 4, 40),
    ("activation-canonical", 3, 2, 2, 1, 3, 16),  # 64-entry slice expanded in 3 pieces
    ("joint", 2, 2, 3, 2, 5, 37),
    ("joint", 2, 2, 6, 1, 4, 24),  # 4096-entry slice, uint16 reordering LUT: expansion in 16 pieces
]


@pytest.mark.parametrize("scheme, wbits, abits, p, nr_dpus, nr_tasklets, n", CASES)
def test_kernel_matches_integer_gemm(tmp_path, scheme, wbits, abits, p, nr_dpus, nr_tasklets, n):
    wc, ac = operands(wbits, abits, n, 29, 3, seed=p + n)
    levels = odd_levels(wbits)
    kernel = localut_kernel(wc, levels, ac, wbits, abits, p, scheme, nr_dpus=nr_dpus, nr_tasklets=nr_tasklets)
    assert kernel.nr_dpus == nr_dpus and kernel.meta["row_pad"] % 8 == 0
    y, run = run_kernel(kernel, tmp_path)
    ref = int_gemm(wc, levels, ac)
    np.testing.assert_array_equal(y, ref)
    lut = build_lut(scheme, p, wbits, abits, levels)
    y_model, stats = lut_gemm(lut, wc, ac, tile=kernel.meta["tile"], chunks=kernel.meta["chunks"])
    np.testing.assert_array_equal(y_model, ref)
    totals = [d["total"] for d in run.stats["dpus"]]
    assert len(totals) == nr_dpus
    tiles = -(-3 // kernel.meta["tile"])
    for d, total in enumerate(totals):
        rows = kernel.meta["shards"][d][1]
        lookups = 3 * kernel.meta["groups"] * rows  # every real row, group and activation row
        assert total["wram_load"] >= 3 * lookups  # index, entry, accumulator
        # two barriers per group (slices built, slices no longer read) per tile and chunk, plus first and last
        chunks = -(-rows // kernel.meta["chunk_rows"])
        assert total["barrier_waits"] == nr_tasklets * (2 + 2 * tiles * chunks * kernel.meta["groups"])


@settings(max_examples=6, deadline=None, derandomize=True)
@given(st.sampled_from(SCHEMES), st.integers(1, 3), st.integers(1, 3), st.integers(1, 8), st.integers(1, 3),
       st.integers(1, 6), st.integers(1, 40), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_kernel_random_configurations(scheme, wbits, abits, p, nr_dpus, nr_tasklets, n, k, seed):
    if not fits(scheme, p, wbits, abits, nr_tasklets, mram_table_budget=4 << 20):
        p = max_p(wbits, abits, scheme, nr_tasklets, mram_table_budget=4 << 20)
    rng = np.random.default_rng(seed)
    levels = rng.integers(-20, 21, 1 << wbits)
    wc, ac = rng.integers(0, 1 << wbits, (n, k)), rng.integers(0, 1 << abits, (2, k))
    kernel = localut_kernel(wc, levels, ac, wbits, abits, p, scheme, nr_dpus=nr_dpus, nr_tasklets=nr_tasklets)
    assert kernel.nr_dpus == len(grid(2, n, nr_dpus))
    with tempfile.TemporaryDirectory() as tmp:
        y, _ = run_kernel(kernel, Path(tmp))
    np.testing.assert_array_equal(y, int_gemm(wc, levels, ac))


@pytest.mark.parametrize("scheme", ["full", "joint"])
def test_few_channels_split_activation_rows(tmp_path, scheme):
    """5 channels over 4 DPUs: the DPUs split the 21 activation rows (the baselines' `grid` rule) and each holds all
    channels; the decoded output is still the whole GEMM."""
    wc, ac = operands(2, 2, 5, 29, 21, seed=3)
    levels = odd_levels(2)
    kernel = localut_kernel(wc, levels, ac, 2, 2, 3, scheme, nr_dpus=4, nr_tasklets=5)
    assert kernel.meta["m_shards"] == [(0, 6), (6, 6), (12, 6), (18, 3)] and kernel.meta["shards"] == [(0, 5)] * 4
    assert "hwf_act" not in kernel.meta["broadcast_symbols"]
    y, _ = run_kernel(kernel, tmp_path)
    np.testing.assert_array_equal(y, int_gemm(wc, levels, ac))


def test_kernel_with_several_row_blocks(tmp_path):
    """300 rows on one tasklet: two 256-row blocks (one chunk of accumulators when it fits WRAM)."""
    wc, ac = operands(2, 2, 300, 10, 2, seed=5)
    levels = odd_levels(2)
    kernel = localut_kernel(wc, levels, ac, 2, 2, 3, "joint", nr_dpus=1, nr_tasklets=1)
    assert kernel.meta["row_blocks"] == 2 and kernel.meta["chunks"] == 1 and kernel.meta["row_block"] % 8 == 0
    y, _ = run_kernel(kernel, tmp_path)
    np.testing.assert_array_equal(y, int_gemm(wc, levels, ac))


def test_slot_keeps_a_repeated_slice(tmp_path):
    """A tile row whose next group has the same activations reuses its slot's slice: the kernel's slice DMAs are
    exactly the model's builds (full scheme, one 16-byte DMA per slice)."""
    levels = odd_levels(2)
    wc = np.random.default_rng(2).integers(0, 4, (16, 24))
    ac = np.tile(np.repeat(np.arange(4), 6), (3, 1))  # groups of p=2: keys 0, 0, 0, 5, 5, 5, 10, ... (4 changes)
    lut = build_lut("full", 2, 2, 2, levels)
    for tile, builds in ((1, 12), (2, 12), (3, 12)):
        kernel = localut_kernel(wc, levels, ac, 2, 2, 2, "full", nr_dpus=1, nr_tasklets=2, tile=tile)
        assert kernel.meta["tile"] == tile and kernel.meta["chunks"] == 1
        assert lut_gemm(lut, wc, ac, tile=tile)[1].slice_streams == builds
        y, run = run_kernel(kernel, tmp_path)
        np.testing.assert_array_equal(y, int_gemm(wc, levels, ac))
        total = run.stats["dpus"][0]["total"]
        groups, parts = 12, kernel.meta["tile_parts"]
        blocks, per_part = kernel.meta["items"] // parts, -(-tile // parts)
        windows = 3 * groups  # one 16-byte activation window per row and group
        # one index DMA (row_block bytes) per group and work item that holds rows of the tile (the last may be short)
        widx = groups * blocks * sum(-(-min(tile, 3 - m0) // per_part) for m0 in range(0, 3, tile))
        assert total["dma_reads"] == windows + widx + builds
        assert total["dma_read_bytes"] == 16 * windows + kernel.meta["row_block"] * widx + 16 * builds
    with pytest.raises(ConfigError, match="tile must be >= 1"):
        localut_kernel(wc, levels, ac, 2, 2, 2, "full", nr_dpus=1, nr_tasklets=2, tile=0)
    with pytest.raises(ConfigError, match="a tile of 4096 rows"):
        localut_kernel(wc, levels, ac, 2, 2, 2, "full", nr_dpus=1, nr_tasklets=2, tile=4096)


def test_kernel_with_custom_levels_and_one_tasklet(tmp_path):
    wc, ac = operands(3, 2, 9, 13, 2, seed=7)
    levels = np.array([-7, 0, 3, 100, -100, 5, 9, 1])  # 2 * 3 * 100 > 127: int16 entries
    kernel = localut_kernel(wc, levels, ac, 3, 2, 2, "joint", nr_dpus=1, nr_tasklets=1)
    assert kernel.meta["entry_bytes"] == 2
    y, _ = run_kernel(kernel, tmp_path)
    np.testing.assert_array_equal(y, int_gemm(wc, levels, ac))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("fault", ["skip_last_group", "slice_off_by_one"])
def test_broken_kernels_are_caught(tmp_path, scheme, fault):
    wc, ac = operands(2, 2, 24, 29, 2, seed=11)
    levels = odd_levels(2)
    kernel = localut_kernel(wc, levels, ac, 2, 2, 3, scheme, nr_dpus=2, nr_tasklets=4, fault=fault)
    assert "FAULT INJECTED" in kernel.dpu_source
    try:
        y, _ = run_kernel(kernel, tmp_path)
    except DpuFaultError:
        return  # the emulator caught an out-of-bounds DMA
    assert not np.array_equal(y, int_gemm(wc, levels, ac))


def test_wram_overflow_names_scheme_p_and_bits():
    wc, ac = operands(4, 1, 8, 8, 1)
    levels = odd_levels(4)
    p = max_p(4, 1, "full", nr_tasklets=16)
    localut_kernel(wc, levels, ac, 4, 1, p, "full", nr_dpus=1, nr_tasklets=16)  # fits
    with pytest.raises(ConfigError, match=rf"LOCALUT full p={p + 1} wbits=4 abits=1: WRAM working set"):
        localut_kernel(wc, levels, ac, 4, 1, p + 1, "full", nr_dpus=1, nr_tasklets=16)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_max_p_is_the_largest_fitting_p(scheme):
    for wbits, abits in ((1, 1), (2, 2), (4, 2), (3, 4)):
        p = max_p(wbits, abits, scheme, nr_tasklets=16)
        assert fits(scheme, p, wbits, abits, 16)
        assert p == 8 or not fits(scheme, p + 1, wbits, abits, 16)
        lay = lut_layout(scheme, p, wbits, abits)
        assert lay.wram_bytes < wram_budget(16)
    assert max_p(2, 2, scheme, nr_tasklets=1) >= max_p(2, 2, scheme, nr_tasklets=24)


def test_emission_is_deterministic_and_well_formed():
    wc, ac = operands(2, 2, 30, 20, 2)
    a = localut_kernel(wc, odd_levels(2), ac, 2, 2, 3, "joint", nr_dpus=2, nr_tasklets=4)
    b = localut_kernel(wc, odd_levels(2), ac, 2, 2, 3, "joint", nr_dpus=2, nr_tasklets=4)
    assert a.dpu_source == b.dpu_source and a.mram_inputs == b.mram_inputs and a.dpu_args == b.dpu_args
    assert "__host dpu_args_t DPU_INPUT_ARGUMENTS;" in a.dpu_source
    assert {"hwf_act", "hwf_widx", "hwf_lut", "hwf_adt", "hwf_rlut"} == set(a.mram_inputs[0])
    assert "expand(&hwf_rlut[desc[2] * RLUT_ROW_BYTES], order, sl, sub);" in a.dpu_source
    assert a.output_symbol == "hwf_out" and a.output_bytes == 2 * a.meta["row_pad"] * 4
    for c_type, name in a.args:
        assert f"{c_type} {name};" in a.dpu_source


@pytest.mark.parametrize("kwargs, match", [
    ({"nr_tasklets": 25}, "nr_tasklets must be 1..24"),
    ({"fault": "nope"}, "unknown fault"),
    ({"nr_dpus": 0}, "nr_dpus must be >= 1"),
])
def test_bad_kernel_options_raise(kwargs, match):
    wc, ac = operands(2, 2, 8, 8, 1)
    opts = {"nr_dpus": 1, "nr_tasklets": 4, **kwargs}
    with pytest.raises(ConfigError, match=match):
        localut_kernel(wc, odd_levels(2), ac, 2, 2, 2, "full", **opts)
