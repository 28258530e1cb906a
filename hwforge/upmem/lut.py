"""LOCALUT operation-packed lookup tables: the four storage schemes, their sizes and their MRAM images.

One table entry holds the dot product of ``p`` packed weight/activation pairs,
``T[w, a] = sum_i w_levels[w_i] * a_i`` for weight codes ``w_i in [0, 2**wbits)`` and activation codes
``a_i in [0, 2**abits)``, so one lookup replaces ``p`` multiply-accumulates. A vector is packed little-endian:
element ``i`` sits at bits ``i*bits``. The dot product is invariant when weight and activation positions are permuted
together, which the canonical schemes exploit (docs/localut.md; a reconstruction, not the paper's code):

``full``                 every (w, a): ``2**(p*(wbits+abits))`` entries.
``weight-canonical``     weights sorted (one row per weight multiset): ``C(2**wbits+p-1, p) * 2**(p*abits)``.
``activation-canonical`` activations sorted: ``2**(p*wbits) * C(2**abits+p-1, p)``.
``joint``                one entry per multiset of (w, a) pairs: ``C(2**(wbits+abits)+p-1, p)``.

The DPU needs, per activation group, a WRAM *slice* that it indexes with a static, host-encoded weight index and
reuses for every weight vector of the DPU. ``full``: the slice is one MRAM column. ``weight-canonical``: one column
per distinct weight sort permutation; the host-side reordering LUT gives each weight vector its permutation and
canonical row, so its index is ``perm * column + row``. ``activation-canonical`` and ``joint``: an activation
descriptor table (ADT) gives the group's canonical sub-table and sort order; the DPU streams the sub-table and
*expands* it into a slice indexed by the raw weight vector (joint: through a reordering LUT row that depends only
on the run lengths of the sorted activations).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from math import comb

import numpy as np

from hwforge.errors import ConfigError
from hwforge.upmem.lutmath import (
    block_rank,
    compositions,
    eulerian_prefix,
    multiset_rank,
    multisets,
    pack,
    pad8,
    unpack,
)

SCHEMES = ("full", "weight-canonical", "activation-canonical", "joint")
#: Largest packing degree (activation groups are read in one 16-byte DMA window; 3-bit sort positions in the ADT).
MAX_P = 8
#: MRAM per DPU.
MRAM_BYTES = 64 << 20
#: Bytes of one ADT entry: sub-table byte offset, sub-table bytes, reordering-LUT row, packed sort order.
ADT_ENTRY_BYTES = 16


def check_config(scheme: str, p: int, wbits: int, abits: int) -> None:
    """Raise ConfigError unless (scheme, p, bits) is a configuration the builders handle."""
    if scheme not in SCHEMES:
        raise ConfigError(f"LOCALUT scheme {scheme!r} unknown; choose one of {', '.join(SCHEMES)}")
    if not 1 <= p <= MAX_P:
        raise ConfigError(f"LOCALUT packing p={p} outside 1..{MAX_P}")
    for name, bits in (("wbits", wbits), ("abits", abits)):
        if not 1 <= bits <= 4:
            raise ConfigError(f"LOCALUT {name}={bits} outside 1..4")


def entry_count(scheme: str, p: int, wbits: int, abits: int) -> int:
    """Logical entries of a scheme's table (multiset counts; brute-force checked in the tests)."""
    check_config(scheme, p, wbits, abits)
    nw, na = 1 << wbits, 1 << abits
    if scheme == "full":
        return (nw * na) ** p
    if scheme == "weight-canonical":
        return comb(nw + p - 1, p) * na**p
    if scheme == "activation-canonical":
        return nw**p * comb(na + p - 1, p)
    return comb(nw * na + p - 1, p)


def reduction_factor(scheme: str, p: int, wbits: int, abits: int) -> float:
    """Full-table entries divided by the scheme's entries (joint, p=7, wbits+abits=3: 8**7/C(14,7) = 611.06)."""
    return entry_count("full", p, wbits, abits) / entry_count(scheme, p, wbits, abits)


def canonical_key(scheme: str, w: tuple[int, ...], a: tuple[int, ...]) -> tuple:
    """The canonical configuration a scheme stores for (w, a): the brute-force definition of each scheme."""
    if scheme == "full":
        return (tuple(w), tuple(a))
    if scheme == "joint":
        return tuple(sorted(zip(w, a, strict=True)))
    key = w if scheme == "weight-canonical" else a
    perm = sorted(range(len(w)), key=lambda i: key[i])  # stable sort
    return (tuple(w[i] for i in perm), tuple(a[i] for i in perm))


def brute_force_count(scheme: str, p: int, wbits: int, abits: int) -> int:
    """Distinct canonical configurations over every (w, a): exponential, for small tests only."""
    check_config(scheme, p, wbits, abits)
    ws = list(itertools.product(range(1 << wbits), repeat=p))
    acts = list(itertools.product(range(1 << abits), repeat=p))
    return len({canonical_key(scheme, w, a) for w in ws for a in acts})


def entry_dtype(p: int, w_levels: np.ndarray, abits: int) -> np.dtype:
    """Narrowest of int8/int16/int32 that holds every entry: ``p`` times the extreme single products."""
    lv = np.asarray(w_levels, dtype=np.int64)
    amax = (1 << abits) - 1
    lo = p * min(0, int(lv.min()) * amax)
    hi = p * max(0, int(lv.max()) * amax)
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    raise ConfigError(f"LOCALUT entries span [{lo}, {hi}], beyond int32")


def index_dtype(limit: int) -> np.dtype:
    """Narrowest unsigned type (uint8/16/32) that holds indices below ``limit``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if limit - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ConfigError(f"LOCALUT index range {limit} exceeds uint32")


def _joint_sublengths(p: int, wbits: int, abits: int) -> np.ndarray:
    """Entries of each joint sub-table (one per activation multiset, lexicographic order)."""
    nw, na = 1 << wbits, 1 << abits
    ms = multisets(na, p)
    counts = (ms[:, :, None] == np.arange(na)).sum(axis=1)
    combtab = np.array([comb(nw + c - 1, c) for c in range(p + 1)], dtype=np.int64)
    return combtab[counts].prod(axis=1)


@dataclass(frozen=True)
class LutLayout:
    """Byte sizes of a scheme's structures, computed without building the table (for `max_p` and early checks)."""

    entry_bytes: int
    image_bytes: int  # MRAM table (slices or sub-tables padded to 8 bytes)
    slice_bytes: int  # WRAM slice buffer, indexed by the static weight index
    sub_bytes: int  # WRAM buffer for the canonical sub-table (joint), 0 otherwise
    rlut_row_bytes: int  # MRAM stride of one reordering-LUT row (joint), 0 otherwise
    rlut_bytes: int  # MRAM reordering LUT (joint)
    adt_bytes: int  # MRAM activation descriptor table (activation-canonical, joint)
    widx_bytes: int  # width of one pre-encoded weight index
    ridx_bytes: int  # width of one reordering-LUT entry (joint), 0 otherwise

    @property
    def mram_bytes(self) -> int:
        return self.image_bytes + self.rlut_bytes + self.adt_bytes

    @property
    def wram_bytes(self) -> int:
        return self.slice_bytes + self.sub_bytes


def lut_layout(scheme: str, p: int, wbits: int, abits: int, w_levels: np.ndarray | None = None) -> LutLayout:
    """Sizes of the table, slice, reordering LUT and ADT. Entry width from ``w_levels`` (default: odd levels)."""
    check_config(scheme, p, wbits, abits)
    nw, na = 1 << wbits, 1 << abits
    if w_levels is None:
        w_levels = 2 * np.arange(nw) - (nw - 1)
    width = entry_dtype(p, w_levels, abits).itemsize
    expanded = pad8(nw**p * width)  # a slice over every packed weight vector
    sub = rlut_row = rlut = adt = ridx = 0
    widx = index_dtype(nw**p).itemsize
    if scheme == "full":
        image, slice_bytes = expanded * na**p, expanded
    elif scheme == "weight-canonical":
        col = pad8(comb(nw + p - 1, p) * width)
        image, slice_bytes = col * na**p, col * eulerian_prefix(p, nw)
        widx = index_dtype(slice_bytes // width).itemsize
    elif scheme == "activation-canonical":
        image, slice_bytes, adt = expanded * comb(na + p - 1, p), expanded, na**p * ADT_ENTRY_BYTES
    else:
        lengths = _joint_sublengths(p, wbits, abits)
        padded = np.maximum(8, (lengths * width + 7) // 8 * 8)
        image, slice_bytes, sub = int(padded.sum()), expanded, int(padded.max())
        ridx = index_dtype(int(lengths.max())).itemsize
        rlut_row = pad8(nw**p * ridx)
        rlut, adt = compositions(p, na) * rlut_row, na**p * ADT_ENTRY_BYTES
    return LutLayout(width, image, slice_bytes, sub, rlut_row, rlut, adt, widx, ridx)


@dataclass(frozen=True, eq=False)
class PackedLut:
    """A built table: logical entries, its MRAM image, and the reordering structures the lookup needs.

    ``values`` are the logical entries in table order (`table_configs` lists each one's canonical configuration).
    ``image`` is the MRAM table. ``weight_index[w]`` is the static slice index of packed weight vector ``w``
    (pre-encoded on the host). ``adt[a] = (sub-table byte offset, bytes, reordering row, sort order)`` per packed
    activation vector, the sort order packed 3 bits per position (activation-canonical, joint). ``rlut``
    [compositions, 2**(p*wbits)]: for weights listed in sorted-activation order, the position in the joint sub-table.
    ``perms`` [Q, p]: the weight sort permutations whose activation columns form a weight-canonical slice.
    ``col_entries``: padded column stride in entries (full, weight-canonical, activation-canonical).
    """

    scheme: str
    p: int
    wbits: int
    abits: int
    w_levels: tuple[int, ...]
    dtype: np.dtype
    values: np.ndarray
    image: bytes
    layout: LutLayout
    weight_index: np.ndarray
    widx_dtype: np.dtype
    col_entries: int
    adt: np.ndarray | None
    rlut: np.ndarray | None
    perms: np.ndarray | None

    @property
    def entries(self) -> int:
        return int(self.values.size)

    @property
    def table_bytes(self) -> int:
        """Logical table bytes (entries times entry width), before padding."""
        return self.entries * self.dtype.itemsize

    @property
    def slice_entries(self) -> int:
        return self.layout.slice_bytes // self.dtype.itemsize

    @cached_property
    def rlut_image(self) -> bytes:
        """Reordering-LUT rows, each padded to 8 bytes (joint only)."""
        if self.rlut is None:
            return b""
        stride = self.layout.rlut_row_bytes
        out = bytearray(stride * self.rlut.shape[0])
        for r, data in enumerate(self.rlut):
            raw = data.astype(f"<u{self.layout.ridx_bytes}").tobytes()
            out[r * stride:r * stride + len(raw)] = raw
        return bytes(out)

    @cached_property
    def adt_image(self) -> bytes:
        return b"" if self.adt is None else self.adt.astype("<u4").tobytes()

    @property
    def reorder_bytes(self) -> int:
        """Bytes of the reordering structures: weight-canonical's host-side weight reordering LUT (one combined
        static index per weight vector); the ADT (activation-canonical); ADT plus reordering LUT (joint)."""
        if self.scheme == "weight-canonical":
            return self.weight_index.size * self.widx_dtype.itemsize
        return len(self.rlut_image) + len(self.adt_image)

    def segments(self, akey: int) -> list[tuple[int, int, int]]:
        """The table DMA segments (MRAM byte offset, WRAM byte offset, bytes) activation ``akey`` streams: its
        slice (full, weight-canonical) or its canonical sub-table (activation-canonical, joint)."""
        col_bytes = self.col_entries * self.dtype.itemsize
        if self.scheme == "full":
            return [(akey * col_bytes, 0, col_bytes)]
        if self.scheme == "weight-canonical":
            a = unpack(akey, self.p, self.abits)
            keys = pack(a[self.perms], self.abits)  # the activations reordered like each sorted weight vector
            return [(int(k) * col_bytes, q * col_bytes, col_bytes) for q, k in enumerate(keys)]
        return [(int(self.adt[akey, 0]), 0, int(self.adt[akey, 1]))]

    def rlut_row(self, akey: int) -> np.ndarray | None:
        """The joint reordering row activation ``akey`` uses (None for the other schemes)."""
        return None if self.rlut is None else self.rlut[int(self.adt[akey, 2])]

    def sort_order(self, akey: int) -> np.ndarray:
        """The stable sort order of activation ``akey`` as the ADT holds it (order[i] = i-th smallest position)."""
        packed = int(self.adt[akey, 3])
        return np.array([(packed >> (3 * i)) & 7 for i in range(self.p)], dtype=np.int64)

    def slice(self, akey: int) -> np.ndarray:
        """Activation ``akey``'s WRAM slice, built from the MRAM images exactly as the DPU builds it."""
        raw = bytearray(self.layout.slice_bytes)
        if self.scheme in ("full", "weight-canonical"):
            for src, dst, nbytes in self.segments(akey):
                raw[dst:dst + nbytes] = self.image[src:src + nbytes]
            return np.frombuffer(bytes(raw), dtype=self.dtype.newbyteorder("<"))
        (src, _, nbytes), = self.segments(akey)
        sub = np.frombuffer(self.image[src:src + nbytes], dtype=self.dtype.newbyteorder("<"))
        n = 1 << (self.p * self.wbits)
        x = np.arange(n)  # weights listed in sorted-activation order: x = pack(w[order])
        w = (unpack(x, self.p, self.wbits) << (self.sort_order(akey) * self.wbits)).sum(axis=1)
        out = np.frombuffer(bytes(raw), dtype=self.dtype.newbyteorder("<")).copy()
        row = self.rlut_row(akey)
        out[w] = sub[x] if row is None else sub[row[:n]]
        return out

    def lookup(self, wkey: int, akey: int) -> int:
        """One packed dot product through the streaming path: the slice of ``akey``, the weight's static index."""
        return int(self.slice(akey)[int(self.weight_index[wkey])])


def weight_reordering_lut(p: int, wbits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weight reordering LUT: for every packed weight vector w, the rank of its sorted codes among the weight
    multisets (its canonical row) and the id q of its stable sort permutation; ``perms[q]`` lists the positions in
    sorted order, so ``w[perms[q]]`` is sorted and the activations are reordered alike. Returns (canon, q, perms)."""
    nw = 1 << wbits
    wcodes = unpack(np.arange(nw**p), p, wbits)
    order = np.argsort(wcodes, axis=1, kind="stable")
    perms, q = np.unique(order, axis=0, return_inverse=True)
    return multiset_rank(np.take_along_axis(wcodes, order, axis=1), nw), q.reshape(-1), perms


def table_configs(scheme: str, p: int, wbits: int, abits: int) -> np.ndarray:
    """The canonical configuration (w codes, a codes) of every logical entry, in table order: [entries, 2, p]."""
    check_config(scheme, p, wbits, abits)
    nw, na = 1 << wbits, 1 << abits
    if scheme == "joint":
        out = []
        for a in multisets(na, p):
            _, counts = np.unique(a, return_counts=True)
            for parts in itertools.product(*(multisets(nw, int(c)) for c in counts)):
                out.append((np.concatenate(parts), a))
        return np.array(out, dtype=np.int64).reshape(-1, 2, p)
    if scheme == "full":
        rows, cols = unpack(np.arange(na**p), p, abits), unpack(np.arange(nw**p), p, wbits)
    elif scheme == "weight-canonical":
        rows, cols = unpack(np.arange(na**p), p, abits), multisets(nw, p)
    else:
        rows, cols = multisets(na, p), unpack(np.arange(nw**p), p, wbits)
    a = np.repeat(rows, len(cols), axis=0)
    w = np.tile(cols, (len(rows), 1))
    return np.stack([w, a], axis=1)


def _columns(act_rows: np.ndarray, wvals: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, bytes, int]:
    """Table whose column r is ``act_rows[r] . wvals[c]`` over c, each column padded to 8 bytes."""
    ncol = len(wvals)
    col_entries = pad8(ncol * dtype.itemsize) // dtype.itemsize
    arr = np.zeros((len(act_rows), col_entries), dtype=dtype)
    for start in range(0, len(act_rows), 4096):  # chunked: bounded int64 temporaries for big tables
        arr[start:start + 4096, :ncol] = (act_rows[start:start + 4096] @ wvals.T).astype(dtype)
    return arr[:, :ncol].ravel(), arr.astype(dtype.newbyteorder("<")).tobytes(), col_entries


def _joint(p: int, wbits: int, abits: int, lv: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, bytes, np.ndarray]:
    """Joint table: one sub-table per activation multiset A (lexicographic); within it the product (first run most
    significant) of weight multisets per run of equal activations. Returns values, image, [A, 2] (offset, bytes)."""
    nw, na = 1 << wbits, 1 << abits
    values, chunks, offsets, off = [], [], [], 0
    for a in multisets(na, p):
        vals, counts = np.unique(a, return_counts=True)
        sub = np.zeros(1, dtype=np.int64)
        for v, c in zip(vals, counts, strict=True):
            sub = np.add.outer(sub, int(v) * lv[multisets(nw, int(c))].sum(axis=1)).ravel()
        sub = sub.astype(dtype)
        raw = sub.astype(dtype.newbyteorder("<")).tobytes()
        nbytes = pad8(len(raw))
        values.append(sub)
        chunks.append(raw.ljust(nbytes, b"\0"))
        offsets.append((off, nbytes))
        off += nbytes
    return np.concatenate(values), b"".join(chunks), np.array(offsets, dtype=np.int64)


def build_lut(scheme: str, p: int, wbits: int, abits: int, w_levels: np.ndarray) -> PackedLut:
    """Build a scheme's table, MRAM image and reordering structures; ConfigError when they exceed the MRAM."""
    check_config(scheme, p, wbits, abits)
    nw, na = 1 << wbits, 1 << abits
    lv = np.asarray(w_levels)
    if lv.shape != (nw,) or not np.issubdtype(lv.dtype, np.integer):
        raise ConfigError(f"LOCALUT w_levels must be {nw} integers for wbits={wbits}, got shape {lv.shape}")
    lv = lv.astype(np.int64)
    lay = lut_layout(scheme, p, wbits, abits, lv)
    if lay.mram_bytes > MRAM_BYTES:
        raise ConfigError(f"LOCALUT {scheme} table for p={p}, wbits={wbits}, abits={abits} needs "
                          f"{lay.mram_bytes} bytes of MRAM (table {lay.image_bytes}, reordering LUT {lay.rlut_bytes}, "
                          f"ADT {lay.adt_bytes}); a DPU has {MRAM_BYTES}")
    dtype = entry_dtype(p, lv, abits)
    wcodes = unpack(np.arange(nw**p), p, wbits)
    acodes = unpack(np.arange(na**p), p, abits)
    windex, col = np.arange(nw**p, dtype=np.int64), 0
    adt = rlut = perms = None
    if scheme == "full":
        values, image, col = _columns(acodes, lv[wcodes], dtype)
    elif scheme == "weight-canonical":
        values, image, col = _columns(acodes, lv[multisets(nw, p)], dtype)
        canon, q, perms = weight_reordering_lut(p, wbits)
        windex = q * col + canon
    else:
        order = np.argsort(acodes, axis=1, kind="stable")
        sorted_a = np.take_along_axis(acodes, order, axis=1)
        rank = multiset_rank(sorted_a, na)
        packed_order = (order << (3 * np.arange(p))).sum(axis=1)
        if scheme == "activation-canonical":
            values, image, col = _columns(multisets(na, p), lv[wcodes], dtype)
            col_bytes = col * dtype.itemsize
            adt = np.stack([rank * col_bytes, np.full_like(rank, col_bytes), 0 * rank, packed_order], axis=1)
        else:
            values, image, offsets = _joint(p, wbits, abits, lv, dtype)
            bounds = np.concatenate([np.ones((len(acodes), 1), np.int64), np.diff(sorted_a, axis=1) != 0], axis=1)
            comps, row = np.unique(bounds, axis=0, return_inverse=True)
            adt = np.stack([offsets[rank, 0], offsets[rank, 1], row.reshape(-1), packed_order], axis=1)
            rlut = np.stack([block_rank(wcodes, b, nw) for b in comps])
    widx_dtype = index_dtype(lay.slice_bytes // dtype.itemsize if scheme == "weight-canonical" else nw**p)
    return PackedLut(scheme, p, wbits, abits, tuple(int(x) for x in lv), dtype, values, image, lay, windex,
                     widx_dtype, col, adt, rlut, perms)


def table_summary(scheme: str, p: int, wbits: int, abits: int, w_levels: np.ndarray | None = None) -> dict:
    """Sizes of one scheme from the formulas (no table is built): entries, reduction over ``full``, entry width,
    logical table bytes, MRAM image bytes (padded), reordering bytes, WRAM slice and sub-table buffer bytes."""
    lay = lut_layout(scheme, p, wbits, abits, w_levels)
    entries = entry_count(scheme, p, wbits, abits)
    if scheme == "weight-canonical":
        reorder = (1 << (p * wbits)) * lay.widx_bytes  # host-side: packed weight vector -> (perm, canonical row)
    else:
        reorder = lay.rlut_bytes + lay.adt_bytes
    return {"scheme": scheme, "p": p, "wbits": wbits, "abits": abits, "entries": entries,
            "reduction": reduction_factor(scheme, p, wbits, abits), "entry_bytes": lay.entry_bytes,
            "table_bytes": entries * lay.entry_bytes, "image_bytes": lay.image_bytes, "reorder_bytes": reorder,
            "slice_bytes": lay.slice_bytes, "sub_bytes": lay.sub_bytes, "mram_bytes": lay.mram_bytes,
            "wram_bytes": lay.wram_bytes}


def summary_markdown(configs: list[tuple[int, int, int]]) -> str:
    """A markdown table of `table_summary` for every scheme of each (p, wbits, abits) (docs and reports)."""
    head = ("| p | wbits | abits | scheme | entries | reduction | entry B | table B | MRAM image B | reordering B | "
            "WRAM slice+sub B |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for p, wbits, abits in configs:
        for scheme in SCHEMES:
            s = table_summary(scheme, p, wbits, abits)
            lines.append(f"| {p} | {wbits} | {abits} | {scheme} | {s['entries']:,} | {s['reduction']:.2f} | "
                         f"{s['entry_bytes']} | {s['table_bytes']:,} | {s['image_bytes']:,} | {s['reorder_bytes']:,} | "
                         f"{s['wram_bytes']:,} |")
    return "\n".join(lines)

