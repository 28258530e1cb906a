"""Combinatorics behind the LOCALUT tables: packing, multisets and their ranks, permutation and composition counts.

Kept apart from `hwforge.upmem.lut` so the table layouts there read as layouts; everything here is exact integer
arithmetic on small arrays and is checked against enumeration in tests/upmem/test_lut.py.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from math import comb

import numpy as np


def pad8(nbytes: int) -> int:
    """Round up to the 8-byte DMA granularity (at least 8)."""
    return max(8, (nbytes + 7) // 8 * 8)


def unpack(keys: np.ndarray | int, p: int, bits: int) -> np.ndarray:
    """Packed keys -> codes [..., p] (element i at bits i*bits)."""
    keys = np.asarray(keys, dtype=np.int64)
    shifts = np.arange(p, dtype=np.int64) * bits
    return (keys[..., None] >> shifts) & ((1 << bits) - 1)


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes [..., p] -> packed keys (element i at bits i*bits)."""
    codes = np.asarray(codes, dtype=np.int64)
    shifts = np.arange(codes.shape[-1], dtype=np.int64) * bits
    return (codes << shifts).sum(axis=-1)


@lru_cache(maxsize=64)
def multisets(n: int, m: int) -> np.ndarray:
    """All multisets of size m over range(n), as sorted tuples in lexicographic order: [C(n+m-1, m), m]."""
    return np.array(list(itertools.combinations_with_replacement(range(n), m)), dtype=np.int64).reshape(-1, m)


@lru_cache(maxsize=64)
def _multiset_rank_table(n: int, m: int) -> np.ndarray:
    """Rank lookup: sorted tuple packed in base n (element 0 most significant) -> lexicographic rank."""
    ms = multisets(n, m)
    radix = n ** np.arange(m - 1, -1, -1, dtype=np.int64)
    table = np.full(n**m, -1, dtype=np.int64)
    table[(ms * radix).sum(axis=1)] = np.arange(len(ms))
    return table


def multiset_rank(sorted_codes: np.ndarray, n: int) -> np.ndarray:
    """Lexicographic rank of sorted rows [..., m] among multisets of size m over range(n)."""
    m = sorted_codes.shape[-1]
    if m == 0:
        return np.zeros(sorted_codes.shape[:-1], dtype=np.int64)
    radix = n ** np.arange(m - 1, -1, -1, dtype=np.int64)
    return _multiset_rank_table(n, m)[(sorted_codes * radix).sum(axis=-1)]


def block_rank(codes: np.ndarray, bounds: np.ndarray, n: int) -> np.ndarray:
    """Position of each row of ``codes`` [R, p] in a joint sub-table whose runs of equal activations start where
    ``bounds`` [p] is 1: the mixed-radix number (first run most significant) of each run's multiset rank."""
    starts = [int(s) for s in np.flatnonzero(bounds)] + [codes.shape[1]]
    idx = np.zeros(len(codes), dtype=np.int64)
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        idx = idx * comb(n + e - s - 1, e - s) + multiset_rank(np.sort(codes[:, s:e], axis=1), n)
    return idx


def eulerian_prefix(p: int, k: int) -> int:
    """Permutations of p elements with fewer than k descents: the distinct stable sort permutations of length-p
    vectors over k values (the columns of a weight-canonical slice)."""
    row = [1]  # Eulerian numbers A(n, d) for n = 1
    for n in range(2, p + 1):
        row = [(d + 1) * (row[d] if d < len(row) else 0) + (n - d) * (row[d - 1] if d >= 1 else 0)
               for d in range(n)]
    return sum(row[:k])


def compositions(p: int, k: int) -> int:
    """Compositions of p into at most k parts: the run-length patterns of a sorted length-p vector over k values
    (the rows of the joint scheme's reordering LUT)."""
    return sum(comb(p - 1, r - 1) for r in range(1, min(p, k) + 1))
