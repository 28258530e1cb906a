"""Program (memory image) of the snf accelerator, its builder, the bit-exact golden model and traffic models.

Memory is an array of ``bus_width``-bit words addressed by word; scalar fields take one word (low 32 bits).
Features and outputs are packed little-endian, ``per_word`` signed ``feat_bits`` containers per word, and
every feature row is padded to whole 64-byte lines (``row_lines`` lines, ``row_lines * words_per_line``
words), so a slice of ``w`` lines starting at line ``s`` of row ``v`` is the word range
``base + (v*row_lines + s)*words_per_line + [0, w*words_per_line)``.

Layout::

    word 0 ..              descriptor (`D`, `desc_words` words)
    ...                    bias: row_lines*elems_per_line words, one int32 each (fraction bits fx+fa)
    per tile t             indptr_t: N+1 words, the row pointer in the low INDPTR_BITS bits and row v's tile
                           flags (B_SKIP, B_LOAD, B_SPILL, all 0 unless tiling) above it in word v+1;
                           edges_t: one word per edge, index in the low half of the word and the edge value
                           (signed feat_bits) in the high half
    X (line aligned)       features, N rows of row_lines lines
    PSUM                   (tiling only) N rows of row_lines*elems_per_line 32-bit partial sums (sign-extended,
                           bus_width/32 per word), written and read only for the rows the flags name
    out_lo: OUT            outputs, N rows, same layout as X
    LOG                    tuner / round log: 4 words per round: round, tile<<16 | start_line, width, cycles

The dump range `Program.output_range` covers OUT and LOG.

Rounds: for every tile (1 unless the policy is ``tiling``) the controller walks the feature row in slices;
round ``r`` uses ``CAND[r]`` lines while ``r < NCAND`` and afterwards the best candidate measured so far
(or ``SLICE`` when ``NCAND = 0``), clamped to the lines left. Each round re-streams that tile's topology.

Policy ``tiling`` (the GCNAX / EnGN-style baseline, as implemented here): the *source* vertices are split into
``tiles`` equal contiguous ranges (`tile_bounds`, fixed offline); tile t's topology is the sub-CSR of the
edges whose source lies in range t (CSR order kept). Tiles run one after another, whole feature rows (no
slicing), so only one source range competes for the cache at a time. Partial sums move only for the rows a
tile touches (`tile_flags`): a row with edges in tile t reloads its accumulators first if it had edges in an
earlier tile (B_LOAD) and spills them at the end if it has edges in a later tile (B_SPILL), otherwise it writes
its output; a row without edges in tile t is skipped (B_SKIP), except that a row without any edge writes its
output (the requantised bias) in the last tile. A row whose edges fall in k tiles therefore moves k-1 spills and
k-1 reloads of ``row_lines*elems_per_line*4`` bytes, which is at most one write per tile (plus one read per later
tile) for the rows the tile touches, and zero for k = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir.quant import qrange, requantize, wrap
from hwforge.rtl.gcn.cache import set_index
from hwforge.rtl.gcn.config import MAX_CANDIDATES, SnfConfig

LOG_WORDS = 4
INDPTR_BITS = 29
"""Row-pointer bits of an indptr word (edges per tile < 2**29); the tile flags sit in the 3 bits above."""
B_SKIP, B_LOAD, B_SPILL = 0, 1, 2
"""Tile-flag bits (above INDPTR_BITS) of row v's flags in indptr word v+1: skip the row in this tile, reload its
partial sums before the tile's edges, spill them after (instead of writing the output)."""


class D(IntEnum):
    """Descriptor fields (word offsets)."""

    N = 0            # vertices
    ROW_LINES = 1    # feature row length in 64-byte lines
    X = 2            # word address of the features
    OUT = 3          # word address of the outputs
    BIAS = 4         # word address of the bias words
    NBIAS = 5        # bias words (= row_lines * elems_per_line)
    SHIFT = 6        # requantisation shift fx + fa - fo
    RELU = 7         # 1: ReLU
    CHUNK = 8        # destination rows per chunk
    ACTIVE = 9       # engines used (1..engines)
    NCAND = 10       # tuner candidates (0 = no tuning)
    SLICE = 11       # slice width in lines when not tuning
    LOG = 12         # word address of the round log
    TILES = 13       # vertex tiles (topology copies)
    PSUM = 14        # word address of the partial-sum region (tiling)
    CAND = 16        # CAND + i: candidate slice width i (lines), i < 8
    TOPO = 24        # TOPO + 2t: indptr address of tile t, TOPO + 2t + 1: edge-word address of tile t


def desc_words(cfg: SnfConfig) -> int:
    return int(D.TOPO) + 2 * cfg.max_tiles


@dataclass
class Csr:
    """A CSR adjacency with fixed-point edge values (``values`` raw ints, ``frac_adj`` fraction bits)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        self.indptr = np.asarray(self.indptr, dtype=np.int64)
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.int64)
        n = self.indptr.size - 1
        if n < 1 or self.indptr[0] != 0 or np.any(np.diff(self.indptr) < 0):
            raise ConfigError("snf: indptr must start at 0 and never decrease")
        if self.indices.size != self.indptr[-1] or self.values.size != self.indices.size:
            raise ConfigError(f"snf: CSR has indptr[-1]={int(self.indptr[-1])} but {self.indices.size} indices "
                              f"and {self.values.size} values")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            raise ConfigError("snf: CSR column index out of range")

    @property
    def n(self) -> int:
        return int(self.indptr.size - 1)

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    def source_tile(self, lo: int, hi: int) -> Csr:
        """The edges whose source (column) lies in ``[lo, hi)``, CSR order kept."""
        keep = (self.indices >= lo) & (self.indices < hi)
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        counts = np.bincount(rows[keep], minlength=self.n)
        return Csr(np.concatenate([[0], np.cumsum(counts)]), self.indices[keep], self.values[keep])


@dataclass
class Program:
    """Memory image plus where to find outputs and the round log in a dump."""

    cfg: SnfConfig
    words: list[int]
    n: int
    features: int
    row_lines: int
    out_addr: int
    log_addr: int
    log_rounds: int
    tiles: list[Csr] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.words)

    def output_range(self) -> tuple[int, int]:
        return self.out_addr, self.log_addr + LOG_WORDS * self.log_rounds

    def hex_text(self) -> str:
        digits = self.cfg.bus_width // 4
        return "".join(f"{w:0{digits}x}\n" for w in self.words)

    def write_hex(self, path: str | Path) -> None:
        Path(path).write_text(self.hex_text())

    def read_outputs(self, dumped, base: int = 0) -> np.ndarray:
        """The N x F output matrix (int64) from dumped words; ``dumped[0]`` is the word at ``base``."""
        cfg = self.cfg
        rw = self.row_lines * cfg.words_per_line
        lo = self.out_addr - base
        words = [int(w) for w in dumped[lo:lo + self.n * rw]]
        if lo < 0 or len(words) != self.n * rw:
            raise ConfigError("snf: memory dump does not cover the output region")
        return unpack(cfg, words).reshape(self.n, -1)[:, :self.features].copy()

    def read_log(self, dumped, base: int = 0) -> list[dict]:
        """Round records ``{round, tile, start, width, cycles}`` the controller wrote (the tuner trajectory)."""
        out = []
        lo = self.log_addr - base
        for r in range(self.log_rounds):
            w = [int(x) & 0xFFFFFFFF for x in dumped[lo + LOG_WORDS * r: lo + LOG_WORDS * (r + 1)]]
            if len(w) < LOG_WORDS or w[2] == 0:
                break
            out.append({"round": w[0], "tile": w[1] >> 16, "start": w[1] & 0xFFFF, "width": w[2],
                        "cycles": w[3]})
        return out


def pack(cfg: SnfConfig, values: np.ndarray) -> list[int]:
    cb, pw = cfg.feat_bits, cfg.per_word
    v = [int(x) & ((1 << cb) - 1) for x in np.asarray(values).reshape(-1)]
    v += [0] * (-len(v) % pw)
    return [sum(v[i + j] << (cb * j) for j in range(pw)) for i in range(0, len(v), pw)]


def unpack(cfg: SnfConfig, words) -> np.ndarray:
    cb, pw = cfg.feat_bits, cfg.per_word
    a = np.asarray([int(w) for w in words], dtype=object)
    out = np.empty((a.size, pw), dtype=np.int64)
    for j in range(pw):
        c = np.asarray([(int(w) >> (cb * j)) & ((1 << cb) - 1) for w in a], dtype=np.int64)
        out[:, j] = np.where(c >> (cb - 1), c - (1 << cb), c)
    return out.reshape(-1)


def row_lines_for(cfg: SnfConfig, features: int) -> int:
    return -(-features // cfg.elems_per_line)


def tile_bounds(n: int, tiles: int) -> list[tuple[int, int]]:
    """Source-vertex ranges of the ``tiles`` vertex tiles: equal contiguous ranges of ceil(n/tiles)."""
    ts = -(-n // tiles)
    return [(t * ts, min(n, (t + 1) * ts)) for t in range(tiles) if t * ts < n] or [(0, n)]


def tile_flags(tiles: list[Csr]) -> np.ndarray:
    """T x N flags (bit B_SKIP / B_LOAD / B_SPILL) of the rows in each tile; all zero for a single tile."""
    touched = np.stack([np.diff(c.indptr) > 0 for c in tiles])
    t_count = touched.shape[0]
    some = touched.any(axis=0)
    first = np.argmax(touched, axis=0)
    last = t_count - 1 - np.argmax(touched[::-1], axis=0)
    ts = np.arange(t_count)[:, None]
    active = touched | (~some & (ts == t_count - 1))
    load = active & some & (ts > first)
    spill = active & some & (ts < last)
    return ((~active).astype(np.int64) << B_SKIP) | (load.astype(np.int64) << B_LOAD) | \
        (spill.astype(np.int64) << B_SPILL)


def _align(words: list[int], k: int) -> None:
    words.extend([0] * (-len(words) % k))


def build_program(cfg: SnfConfig, csr: Csr, x: np.ndarray, bias: np.ndarray | None = None, *,
                  frac_x: int = 8, frac_adj: int = 8, frac_out: int = 8, relu: bool = False) -> Program:
    """Lay out descriptor, bias, topology (per tile), features and output/log regions (see module doc).

    ``x`` is N x F raw fixed-point features (``frac_x`` fraction bits); ``csr.values`` carry ``frac_adj``;
    ``bias`` (F int32, at ``frac_x + frac_adj`` fraction bits) may be None (zeros).
    """
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != csr.n:
        raise ConfigError(f"snf: features must be N x F with N={csr.n}, got shape {x.shape}")
    n, f = x.shape
    lo, hi = qrange(cfg.feat_bits)
    for name, arr in (("features", x), ("edge values", csr.values)):
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ConfigError(f"snf: {name} do not fit in signed {cfg.feat_bits} bits")
    bias = np.zeros(f, np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(-1)
    if bias.shape != (f,):
        raise ConfigError(f"snf: bias must have F={f} entries, got {bias.shape}")
    shift = frac_x + frac_adj - frac_out
    if not 0 <= shift <= 47:
        raise ConfigError(f"snf: requantisation shift frac_x+frac_adj-frac_out = {shift} must be 0..47")
    row_lines = row_lines_for(cfg, f)
    if row_lines > cfg.max_row_lines:
        raise ConfigError(f"snf: F={f} needs {row_lines} lines per row but max_row_lines={cfg.max_row_lines}")
    if cfg.bus_width == 32 and n > 1 << 16:
        raise ConfigError("snf: a 32-bit bus packs 16-bit vertex indices; N must be <= 65536")
    wpl, epl = cfg.words_per_line, cfg.elems_per_line
    tiles = tile_bounds(n, cfg.tiles) if cfg.policy == "tiling" else [(0, n)]
    tcsr = [csr.source_tile(a, b) for a, b in tiles] if len(tiles) > 1 else [csr]

    dw = desc_words(cfg)
    words: list[int] = [0] * dw
    desc = [0] * dw
    desc[D.N], desc[D.ROW_LINES], desc[D.SHIFT], desc[D.RELU] = n, row_lines, shift, int(bool(relu))
    desc[D.CHUNK], desc[D.ACTIVE], desc[D.TILES] = cfg.chunk, cfg.n_active, len(tcsr)
    if cfg.policy == "dynamic":
        cands = [min(c, row_lines) for c in cfg.candidates]
        desc[D.NCAND], desc[D.SLICE] = len(cands), cands[-1]
        for i, c in enumerate(cands[:MAX_CANDIDATES]):
            desc[D.CAND + i] = c
    else:
        desc[D.SLICE] = min(cfg.slice_lines, row_lines) if cfg.policy == "static" else row_lines

    desc[D.BIAS] = len(words)
    nbias = row_lines * epl
    desc[D.NBIAS] = nbias
    words.extend(int(b) & 0xFFFFFFFF for b in np.pad(bias, (0, nbias - f)))
    half = cfg.bus_width // 2
    flags = tile_flags(tcsr)
    if csr.nnz >= 1 << INDPTR_BITS:
        raise ConfigError(f"snf: at most 2**{INDPTR_BITS}-1 edges")
    for t, c in enumerate(tcsr):
        desc[D.TOPO + 2 * t] = len(words)
        words.append(int(c.indptr[0]))
        words.extend(int(p) | (int(fl) << INDPTR_BITS) for p, fl in zip(c.indptr[1:], flags[t], strict=True))
        desc[D.TOPO + 2 * t + 1] = len(words)
        words.extend(int(i) | ((int(v) & ((1 << cfg.feat_bits) - 1)) << half)
                     for i, v in zip(c.indices, c.values, strict=True))
    _align(words, wpl)
    desc[D.X] = len(words)
    xp = np.zeros((n, row_lines * epl), np.int64)
    xp[:, :f] = x
    words.extend(pack(cfg, xp))
    if len(tcsr) > 1:
        _align(words, wpl)
        desc[D.PSUM] = len(words)
        words.extend([0] * (n * row_lines * epl // cfg.psum_per_word))
    _align(words, wpl)
    out_addr = desc[D.OUT] = len(words)
    words.extend([0] * (n * row_lines * wpl))
    log_addr = desc[D.LOG] = len(words)
    log_rounds = len(tcsr) * row_lines
    words.extend([0] * (LOG_WORDS * log_rounds))
    words[:dw] = desc
    meta = {"frac_x": frac_x, "frac_adj": frac_adj, "frac_out": frac_out, "relu": bool(relu), "shift": shift,
            "psum_loads": [int(v) for v in ((flags >> B_LOAD) & 1).sum(axis=1)],
            "psum_spills": [int(v) for v in ((flags >> B_SPILL) & 1).sum(axis=1)]}
    return Program(cfg, words, n, f, row_lines, out_addr, log_addr, log_rounds, tcsr, meta)


def reference(cfg: SnfConfig, csr: Csr, x: np.ndarray, bias: np.ndarray | None = None, *, frac_x: int = 8,
              frac_adj: int = 8, frac_out: int = 8, relu: bool = False) -> np.ndarray:
    """The output the hardware must produce: ``requant(wrap(bias + sum_e adj[e] * X[idx[e]]))`` per row."""
    x = np.asarray(x, dtype=np.int64)
    n, f = x.shape
    rows = np.repeat(np.arange(n), np.diff(csr.indptr))
    acc = np.zeros((n, f), np.int64)
    np.add.at(acc, rows, csr.values[:, None] * x[csr.indices])
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)[None, :]
    acc = wrap(acc, cfg.acc_bits)
    return requantize(acc, 1, frac_x + frac_adj - frac_out, bool(relu), cfg.feat_bits)


# ---------------------------------------------------------------------------------------------------------
# Traffic and cache models (what the counters must read, given the rounds the controller ran)
# ---------------------------------------------------------------------------------------------------------


def planned_rounds(prog: Program) -> list[tuple[int, int, int]]:
    """(tile, start_line, width) of every round for the non-tuning policies (the tuner's come from the log)."""
    cfg = prog.cfg
    if cfg.policy == "dynamic":
        raise ConfigError("snf: dynamic rounds depend on measurements; read them from the log")
    width = prog.words[D.SLICE]
    out = []
    for t in range(len(prog.tiles)):
        s = 0
        while s < prog.row_lines:
            w = min(width, prog.row_lines - s)
            out.append((t, s, w))
            s += w
    return out


def expected_traffic(prog: Program, rounds: list[tuple[int, int, int]]) -> dict[str, int]:
    """Exact bytes per class and feature-line accesses for the given rounds (tile, start, width)."""
    cfg = prog.cfg
    bb, n, chunk = cfg.bus_bytes, prog.n, cfg.chunk
    nchunks = -(-n // chunk)
    topo = sum((n + nchunks + prog.tiles[t].nnz) * bb for t, _, _ in rounds)
    lines = sum(prog.tiles[t].nnz * w for t, _, w in rounds)
    per_line = cfg.elems_per_line // cfg.psum_per_word     # psum words per line of one row
    spills, loads = prog.meta["psum_spills"], prog.meta["psum_loads"]
    psum_w = sum(spills[t] * w * per_line for t, _, w in rounds)
    psum_r = sum(loads[t] * w * per_line for t, _, w in rounds)
    return {
        "bytes_topology": topo,
        "line_accesses": lines,
        "bytes_outputs": n * prog.row_lines * cfg.words_per_line * bb,
        "bytes_psum": (psum_w + psum_r) * bb,
        "bytes_weights": prog.words[D.NBIAS] * bb,
        "bytes_control": (desc_words(cfg) + LOG_WORDS * len(rounds)) * bb,
    }


def cache_model(prog: Program, rounds: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(hits, misses) of the shared LRU cache when one engine runs ``rounds`` (exact for one engine)."""
    cfg = prog.cfg
    sets, ways, rl = cfg.sets, cfg.ways, prog.row_lines
    lru: list[list[int]] = [[] for _ in range(sets)]   # most recent last
    hits = misses = 0
    for t, s, w in rounds:
        c = prog.tiles[t]
        for u in c.indices:
            for j in range(w):
                la = int(u) * rl + s + j
                st, tag = set_index(la, sets), la // sets
                lst = lru[st]
                if tag in lst:
                    hits += 1
                    lst.remove(tag)
                else:
                    misses += 1
                    if len(lst) == ways:
                        lst.pop(0)
                lst.append(tag)
    return hits, misses
