"""The LUT-GEMM model: bit-exact to the integer GEMM for random shapes, bits, p and schemes; slice accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError
from hwforge.upmem.lut import SCHEMES, build_lut
from hwforge.upmem.lutgemm import (
    activation_keys,
    group_codes,
    int_gemm,
    lut_gemm,
    lut_gemm_direct,
    slices_for_block,
    weight_indices,
)


@st.composite
def gemm_case(draw):
    scheme = draw(st.sampled_from(SCHEMES))
    wbits, abits = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    p_max = max(p for p in range(1, 6) if (1 << (wbits + abits)) ** p <= 1 << 12 or p == 1)
    p = draw(st.integers(1, p_max))
    m, n, k = draw(st.integers(1, 4)), draw(st.integers(1, 20)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    slots = draw(st.sampled_from([1, 2, 8, 64]))
    rng = np.random.default_rng(seed)
    levels = rng.integers(-30, 31, size=1 << wbits) if draw(st.booleans()) else \
        2 * np.arange(1 << wbits) - ((1 << wbits) - 1)
    wc = rng.integers(0, 1 << wbits, size=(n, k))
    ac = rng.integers(0, 1 << abits, size=(m, k))
    return scheme, wbits, abits, p, levels, wc, ac, slots


@settings(max_examples=60, deadline=None, derandomize=True)
@given(gemm_case())
def test_lut_gemm_is_bit_exact(case):
    scheme, wbits, abits, p, levels, wc, ac, slots = case
    y, stats = lut_gemm(build_lut(scheme, p, wbits, abits, levels), wc, ac, slots=slots)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, int_gemm(wc, levels, ac))
    groups = -(-wc.shape[1] // p)
    assert stats.distinct_slices <= stats.slice_streams <= ac.shape[0] * groups
    assert stats.lookups == ac.shape[0] * wc.shape[0] * groups


@pytest.mark.parametrize("scheme", SCHEMES)
def test_last_partial_group_counts(scheme):
    """K = 7 with p = 3: the third group holds one real position and two padded ones."""
    levels = np.array([-3, -1, 1, 3])
    wc = np.full((2, 7), 3)
    ac = np.zeros((1, 7), dtype=np.int64)
    ac[0, 6] = 2
    assert group_codes(ac, 3).shape == (1, 3, 3)
    y = lut_gemm_direct(wc, levels, ac, 2, 2, 3, scheme)
    np.testing.assert_array_equal(y, [[6, 6]])


def test_padding_is_neutral_for_any_weight_level():
    """Padded positions have activation 0, so even a level table without a zero level gives the exact result."""
    levels = np.array([7, -5])
    rng = np.random.default_rng(3)
    wc, ac = rng.integers(0, 2, (5, 11)), rng.integers(0, 4, (3, 11))
    for p in (2, 3, 4, 5):
        np.testing.assert_array_equal(lut_gemm_direct(wc, levels, ac, 1, 2, p, "joint"), int_gemm(wc, levels, ac))


def test_slice_streams_and_reuse():
    levels = np.array([-1, 1])
    lut = build_lut("full", 4, 1, 2, levels)
    wc = np.random.default_rng(0).integers(0, 2, (8, 16))
    zero = np.zeros((2, 16), dtype=np.int64)
    _, stats = lut_gemm(lut, wc, zero)
    assert stats.slice_streams == 1 and stats.distinct_slices == 1  # one slice, kept in WRAM for all 8 groups
    assert stats.lookups == 2 * 8 * 4
    ramp = np.arange(16).reshape(1, 16) // 4  # groups (0,0,0,0), (1,1,1,1), ...: four different slices
    _, stats = lut_gemm(lut, wc, ramp)
    assert stats.slice_streams == 4 and stats.slice_bytes == 4 * 16  # 16 int8 entries per column


def test_slices_for_block_lists_the_segments_each_group_needs():
    levels = np.array([-3, -1, 1, 3])
    ac = np.array([[0, 1, 2, 2, 1, 0]])
    keys = activation_keys(ac, 3, 2)
    assert keys.tolist() == [[0 | 1 << 2 | 2 << 4, 2 | 1 << 2 | 0 << 4]]
    joint = slices_for_block(build_lut("joint", 3, 2, 2, levels), keys)
    # both groups hold the multiset {0, 1, 2}: the same joint sub-table, one slice
    assert len({tuple(s) for segs in joint.values() for s in segs}) == 1
    full = slices_for_block(build_lut("full", 3, 2, 2, levels), keys)
    assert len({tuple(s) for segs in full.values() for s in segs}) == 2
    wcan = slices_for_block(build_lut("weight-canonical", 3, 2, 2, levels), keys)
    assert all(len(segs) == 6 for segs in wcan.values())  # 3! sort permutations, one column each


def test_weight_indices_apply_the_reordering_lut():
    levels = np.array([-3, -1, 1, 3])
    lut = build_lut("weight-canonical", 2, 2, 1, levels)
    wc = np.array([[2, 1], [1, 2]])  # same multiset, opposite order: same canonical row, different column
    idx = weight_indices(lut, wc)[0]
    assert idx[0] % lut.col_entries == idx[1] % lut.col_entries
    assert idx[0] // lut.col_entries != idx[1] // lut.col_entries


@pytest.mark.parametrize("wc, ac, match", [
    (np.zeros((2, 3), dtype=np.int64), np.zeros((2, 4), dtype=np.int64), "same K"),
    (np.full((2, 3), 4), np.zeros((1, 3), dtype=np.int64), r"weight codes must lie in \[0, 4\)"),
    (np.zeros((2, 3), dtype=np.int64), np.full((1, 3), -1), "activation codes"),
    (np.zeros((2, 3)), np.zeros((1, 3), dtype=np.int64), "must be integers"),
])
def test_bad_operands_raise(wc, ac, match):
    with pytest.raises(ConfigError, match=match):
        lut_gemm_direct(wc, np.array([-3, -1, 1, 3]), ac, 2, 2, 2, "full")
