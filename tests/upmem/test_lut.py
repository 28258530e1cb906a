"""LOCALUT tables: entry-count formulas against brute force, every entry against the dot product, sizes, errors."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError
from hwforge.upmem.lut import (
    SCHEMES,
    brute_force_count,
    build_lut,
    canonical_key,
    entry_count,
    entry_dtype,
    lut_layout,
    reduction_factor,
    table_configs,
    table_summary,
)
from hwforge.upmem.lutmath import compositions, eulerian_prefix, unpack

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def odd_levels(wbits: int) -> np.ndarray:
    return 2 * np.arange(1 << wbits) - ((1 << wbits) - 1)


@st.composite
def small_config(draw, max_configs: int = 4096):
    """(p, wbits, abits) whose full table has at most ``max_configs`` entries (brute force stays fast)."""
    wbits = draw(st.integers(1, 3))
    abits = draw(st.integers(1, 3))
    p_max = max(p for p in range(1, 9) if (1 << (wbits + abits)) ** p <= max_configs or p == 1)
    return draw(st.integers(1, p_max)), wbits, abits


@SETTINGS
@given(small_config(), st.sampled_from(SCHEMES))
def test_entry_count_formula_matches_brute_force(cfg, scheme):
    p, wbits, abits = cfg
    assert entry_count(scheme, p, wbits, abits) == brute_force_count(scheme, p, wbits, abits)


@SETTINGS
@given(small_config(), st.sampled_from(SCHEMES), st.data())
def test_every_entry_is_the_dot_product_of_a_distinct_canonical_configuration(cfg, scheme, data):
    p, wbits, abits = cfg
    levels = np.array(data.draw(st.lists(st.integers(-40, 40), min_size=1 << wbits, max_size=1 << wbits)))
    lut = build_lut(scheme, p, wbits, abits, levels)
    configs = table_configs(scheme, p, wbits, abits)
    assert lut.entries == len(configs) == entry_count(scheme, p, wbits, abits)
    np.testing.assert_array_equal(lut.values.astype(np.int64), (levels[configs[:, 0]] * configs[:, 1]).sum(axis=1))
    keys = {canonical_key(scheme, tuple(w), tuple(a)) for w, a in configs.tolist()}
    assert len(keys) == len(configs)  # no entry stored twice, and each is canonical...
    brute = {canonical_key(scheme, w, a) for w in itertools.product(range(1 << wbits), repeat=p)
             for a in itertools.product(range(1 << abits), repeat=p)}
    assert keys == brute  # ...and every configuration has its entry


@SETTINGS
@given(small_config(max_configs=1024), st.sampled_from(SCHEMES))
def test_streaming_lookup_equals_dot_product_for_every_pair(cfg, scheme):
    """Through the MRAM images: the slice built for the activations, indexed by the weight's static index."""
    p, wbits, abits = cfg
    levels = odd_levels(wbits)
    lut = build_lut(scheme, p, wbits, abits, levels)
    wv = unpack(np.arange(1 << (p * wbits)), p, wbits)
    for akey, a in enumerate(unpack(np.arange(1 << (p * abits)), p, abits)):
        np.testing.assert_array_equal(lut.slice(akey)[lut.weight_index], (levels[wv] * a).sum(axis=1))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("p,wbits,abits", [(1, 1, 1), (3, 2, 2), (4, 1, 2), (2, 4, 3), (5, 1, 1)])
def test_layout_sizes_match_the_built_images(scheme, p, wbits, abits):
    levels = odd_levels(wbits)
    lut = build_lut(scheme, p, wbits, abits, levels)
    lay = lut_layout(scheme, p, wbits, abits, levels)
    assert lay == lut.layout
    assert lay.image_bytes == len(lut.image) and len(lut.image) % 8 == 0
    assert lay.rlut_bytes == len(lut.rlut_image) and lay.adt_bytes == len(lut.adt_image)
    assert lay.widx_bytes == lut.widx_dtype.itemsize
    assert lut.table_bytes == lut.entries * lut.dtype.itemsize <= lay.image_bytes
    assert int(lut.weight_index.max()) < lut.slice_entries
    if scheme == "weight-canonical":
        assert len(lut.perms) == eulerian_prefix(p, 1 << wbits)
    if scheme in ("activation-canonical", "joint"):
        assert lut.adt[:, 1].max() == (lay.sub_bytes or lay.slice_bytes)  # the largest sub-table sizes the buffer
        assert (lut.adt[:, 0] % 8 == 0).all() and (lut.adt[:, 1] % 8 == 0).all()  # DMA-aligned sub-tables
    if scheme == "joint":
        assert len(lut.rlut) == compositions(p, 1 << abits)


def test_611x_reduction_is_joint_p7_with_three_bits():
    for wbits, abits in ((1, 2), (2, 1)):
        assert entry_count("joint", 7, wbits, abits) == comb(14, 7) == 3432
        assert reduction_factor("joint", 7, wbits, abits) == pytest.approx(8**7 / comb(14, 7))
        assert round(reduction_factor("joint", 7, wbits, abits)) == 611


def test_formulas_and_reductions():
    assert entry_count("full", 4, 2, 2) == 2**16
    assert entry_count("weight-canonical", 4, 2, 2) == comb(7, 4) * 4**4 == 8960
    assert entry_count("activation-canonical", 4, 2, 2) == 4**4 * comb(7, 4) == 8960
    assert entry_count("joint", 4, 2, 2) == comb(19, 4) == 3876
    assert reduction_factor("full", 4, 2, 2) == 1.0
    for p in range(1, 9):
        for wbits, abits in ((1, 1), (2, 2), (4, 4)):
            assert entry_count("joint", p, wbits, abits) <= entry_count("weight-canonical", p, wbits, abits)
            assert entry_count("joint", p, wbits, abits) <= entry_count("activation-canonical", p, wbits, abits)


@pytest.mark.parametrize("p,wbits", [(1, 1), (3, 2), (4, 1), (2, 4), (5, 2)])
def test_weight_reordering_lut_sorts_every_weight_vector(p, wbits):
    from hwforge.upmem.lut import weight_reordering_lut
    from hwforge.upmem.lutmath import multisets

    canon, q, perms = weight_reordering_lut(p, wbits)
    w = unpack(np.arange(1 << (p * wbits)), p, wbits)
    ordered = np.take_along_axis(w, perms[q], axis=1)
    np.testing.assert_array_equal(ordered, np.sort(w, axis=1))  # the permutation sorts...
    np.testing.assert_array_equal(multisets(1 << wbits, p)[canon], ordered)  # ...onto the canonical row
    assert len(perms) == eulerian_prefix(p, 1 << wbits)


def test_class_counts_match_enumeration():
    for p in range(1, 6):
        for k in range(1, 5):
            vecs = list(itertools.product(range(k), repeat=p))
            perms = {tuple(sorted(range(p), key=v.__getitem__)) for v in vecs}
            runs = {tuple(len(list(g)) for _, g in itertools.groupby(sorted(v))) for v in vecs}
            assert len(perms) == eulerian_prefix(p, k)
            assert len(runs) == compositions(p, k)


def test_entry_width_follows_the_value_range():
    assert entry_dtype(4, odd_levels(2), 2) == np.int8  # |4 * 3 * 3| = 36
    assert entry_dtype(8, odd_levels(4), 4) == np.int16  # 8 * 15 * 15 = 1800
    assert entry_dtype(2, np.array([0, 70000]), 1) == np.int32
    assert entry_dtype(1, np.array([-128, 127]), 1) == np.int8
    assert entry_dtype(1, np.array([-129, 0]), 1) == np.int16
    lut = build_lut("joint", 3, 4, 4, odd_levels(4))  # 3 * 15 * 15 = 675
    assert lut.dtype == np.int16 and lut.table_bytes == 2 * comb(256 + 2, 3)


@pytest.mark.parametrize("args, match", [
    (("nope", 2, 1, 1), "scheme 'nope' unknown"),
    (("joint", 0, 1, 1), "p=0 outside"),
    (("joint", 9, 1, 1), "p=9 outside"),
    (("full", 2, 5, 1), "wbits=5 outside"),
    (("full", 2, 1, 0), "abits=0 outside"),
])
def test_bad_configurations_raise(args, match):
    with pytest.raises(ConfigError, match=match):
        entry_count(*args)


def test_bad_levels_and_oversized_tables_raise():
    with pytest.raises(ConfigError, match="w_levels must be 4 integers"):
        build_lut("full", 2, 2, 2, np.array([1, 2, 3]))
    with pytest.raises(ConfigError, match="full table for p=8, wbits=4, abits=4 needs .* MRAM"):
        build_lut("full", 8, 4, 4, odd_levels(4))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_summary_matches_the_built_table(scheme):
    levels = odd_levels(2)
    lut = build_lut(scheme, 3, 2, 2, levels)
    s = table_summary(scheme, 3, 2, 2, levels)
    assert s["entries"] == lut.entries and s["table_bytes"] == lut.table_bytes
    assert s["image_bytes"] == len(lut.image) and s["reorder_bytes"] == lut.reorder_bytes
    assert s["slice_bytes"] == lut.slice_entries * lut.dtype.itemsize
