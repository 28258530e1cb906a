"""LUT-GEMM: the exact algorithm the LOCALUT DPU kernel runs, in Python, bit-exact to the integer GEMM.

Layer: ``y[m, n] = sum_k w_levels[wc[n, k]] * ac[m, k]`` as int32. K is split into ``G = ceil(K/p)`` groups of
``p`` positions; the last group is padded with weight code 0 and activation 0, whose product is 0 for any weight
level, so padding never changes ``y``. For every activation row ``m`` and group ``g`` the kernel

1. packs the group's activation codes into a key (element i at bits ``i*abits``),
2. unless the key's slice is already in WRAM (the kernel: the row's slot still holds it from the previous group;
   ``lut_gemm(tile=...)`` models that, ``slots=`` a direct-mapped cache), builds it there:
   streams it from MRAM (full, weight-canonical: `PackedLut.segments`), or streams the canonical sub-table the
   ADT names and expands it over every packed weight vector (activation-canonical, joint: `PackedLut.slice`),
3. for each of its output rows ``n`` reads the pre-encoded weight index ``widx[g, n]``, looks up
   ``slice[widx]`` and adds it to the int32 accumulator of ``y[m, n]``.

`lut_gemm` does those steps with the same MRAM images (`PackedLut.image`, ADT, reordering LUT) the DPU receives, so a
mismatch between the DPU C and this model isolates a kernel bug, and a mismatch between this model and
`int_gemm` isolates a table bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwforge.errors import ConfigError
from hwforge.upmem.lut import PackedLut, build_lut
from hwforge.upmem.lutmath import pack


def int_gemm(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray) -> np.ndarray:
    """The reference: ``ac @ w_levels[wc].T`` with int32 two's-complement wrap (what the DPU accumulator does)."""
    acc = np.asarray(ac, dtype=np.int64) @ np.asarray(w_levels, dtype=np.int64)[np.asarray(wc)].T
    return acc.astype(np.int32)


def check_operands(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int) -> None:
    """ConfigError unless wc [N, K] and ac [M, K] are integer codes within their bit widths."""
    wc, ac, lv = np.asarray(wc), np.asarray(ac), np.asarray(w_levels)
    if wc.ndim != 2 or ac.ndim != 2 or wc.shape[1] != ac.shape[1] or 0 in wc.shape or 0 in ac.shape:
        raise ConfigError(f"LOCALUT GEMM needs wc [N, K] and ac [M, K] with the same K > 0, got {wc.shape} "
                          f"and {ac.shape}")
    for name, arr, bits in (("weight", wc, wbits), ("activation", ac, abits)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(f"LOCALUT {name} codes must be integers, got {arr.dtype}")
        if arr.min() < 0 or arr.max() >= 1 << bits:
            raise ConfigError(f"LOCALUT {name} codes must lie in [0, {1 << bits}) for {bits} bits, "
                              f"got [{arr.min()}, {arr.max()}]")
    if lv.shape != (1 << wbits,):
        raise ConfigError(f"LOCALUT w_levels must have {1 << wbits} entries for wbits={wbits}, got {lv.shape}")


def group_codes(codes: np.ndarray, p: int) -> np.ndarray:
    """[R, K] codes -> [R, G, p] with G = ceil(K/p), the tail padded with code 0."""
    codes = np.asarray(codes, dtype=np.int64)
    rows, k = codes.shape
    groups = -(-k // p)
    out = np.zeros((rows, groups * p), dtype=np.int64)
    out[:, :k] = codes
    return out.reshape(rows, groups, p)


def weight_indices(lut: PackedLut, wc: np.ndarray) -> np.ndarray:
    """Pre-encoded static slice index of every (group, output row): [G, N]. For weight-canonical this applies
    the host-side reordering LUT (canonical row and sort permutation); otherwise it is the packed weight vector."""
    keys = pack(group_codes(wc, lut.p), lut.wbits)  # [N, G]
    return lut.weight_index[keys].T.copy()


def activation_keys(ac: np.ndarray, p: int, abits: int) -> np.ndarray:
    """Packed activation key of every (row, group): [M, G]."""
    return pack(group_codes(ac, p), abits)


def slices_for_block(lut: PackedLut, akeys: np.ndarray) -> dict[int, list[tuple[int, int, int]]]:
    """The distinct LUT slices an activation block needs: key -> DMA segments (MRAM offset, WRAM offset, bytes).
    The kernel streams one per (row, group); the count of distinct keys bounds what a slice cache could save."""
    return {int(k): lut.segments(int(k)) for k in np.unique(akeys)}


@dataclass(frozen=True)
class LutGemmStats:
    """What the kernel's algorithm does, counted by the model for one DPU holding all rows in one row block (each
    extra DPU or row-block pass streams the same slices again)."""

    lookups: int  # table lookups = output elements x groups
    slice_streams: int  # slices streamed (at most rows x groups: a repeated slice stays in WRAM)
    slice_bytes: int  # MRAM -> WRAM bytes of those slices
    rlut_bytes: int  # MRAM -> WRAM bytes of joint reordering-LUT rows
    distinct_slices: int  # distinct activation keys in the block


def slot_of(key: int, slots: int) -> int:
    """The WRAM cache slot of a packed activation key (direct-mapped; the kernel's hash)."""
    return (key ^ (key >> 8) ^ (key >> 16) ^ (key >> 24)) & (slots - 1)


def lut_gemm(lut: PackedLut, wc: np.ndarray, ac: np.ndarray, slots: int = 1, tile: int | None = None,
             chunks: int = 1) -> tuple[np.ndarray, LutGemmStats]:
    """Run the LUT-GEMM algorithm on the table's MRAM images; returns (y int32 [M, N], statistics).

    ``tile=None``: row by row with a ``slots``-slice direct-mapped WRAM cache keyed by the activations.
    ``tile=T``: the DPU kernel's schedule: activation rows in tiles of T, per tile (and per output-row chunk, of
    which there are ``chunks``) group by group, slot ``m % T`` holding tile row m's slice, which is rebuilt only when
    the row's key differs from the one the slot holds (from the previous group, chunk or tile)."""
    check_operands(wc, np.array(lut.w_levels), ac, lut.wbits, lut.abits)
    widx = weight_indices(lut, wc)  # [G, N]
    akeys = activation_keys(ac, lut.p, lut.abits)  # [M, G]
    m_rows, groups = akeys.shape
    acc = np.zeros((m_rows, widx.shape[1]), dtype=np.int64)
    slice_bytes = rlut_bytes = streams = 0
    tags: dict[int, tuple[int, np.ndarray]] = {}  # slot -> (key, slice) as the kernel's WRAM holds them
    if tile is None:
        order = [(m, g, slot_of(int(akeys[m, g]), slots), True) for m in range(m_rows) for g in range(groups)]
    else:
        order = [(m, g, m % tile, c == 0) for m0 in range(0, m_rows, tile) for c in range(chunks)
                 for g in range(groups) for m in range(m0, min(m0 + tile, m_rows))]
    for m, g, slot, add in order:
        key = int(akeys[m, g])
        if slot not in tags or tags[slot][0] != key:
            tags[slot] = (key, lut.slice(key))
            slice_bytes += sum(seg[2] for seg in lut.segments(key))
            rlut_bytes += lut.layout.rlut_row_bytes
            streams += 1
        if add:
            acc[m] += tags[slot][1][widx[g]]
    stats = LutGemmStats(lookups=int(acc.size * groups), slice_streams=streams, slice_bytes=slice_bytes,
                         rlut_bytes=rlut_bytes, distinct_slices=len(np.unique(akeys)))
    return acc.astype(np.int32), stats


def lut_gemm_direct(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int, p: int,
                    scheme: str) -> np.ndarray:
    """Build the table and run `lut_gemm`: the one-call form for tests and reports."""
    check_operands(wc, w_levels, ac, wbits, abits)
    return lut_gemm(build_lut(scheme, p, wbits, abits, np.asarray(w_levels)), wc, ac)[0]
