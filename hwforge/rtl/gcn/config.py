"""Parameters of the Slice-and-Forge (`snf`) aggregation accelerator.

`SnfConfig` mixes two kinds of settings, kept apart so that one Verilator build serves every policy:

- *hardware* (elaboration time): ``engines``, ``cache_kb``, ``ways``, ``cache_banks``, ``mshrs``,
  ``feat_bits``, ``acc_bits``, ``bus_width``, ``lanes``, ``max_row_lines``, ``max_chunk``, ``max_tiles``;
  `hw_key` lists them.
- *program* (run time, written into the descriptor by `build_program`): ``policy``, ``slice_lines``,
  ``tiles``, ``candidates``, ``chunk``, ``active_engines``.

Every check happens here with a message that names the option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from hwforge.options import OptionError, Options, option

LINE_BYTES = 64
LINE_BITS = 8 * LINE_BYTES
POLICIES = ("none", "tiling", "static", "dynamic")
MAX_CANDIDATES = 8
LINES_IN_FLIGHT = 8
"""Feature lines one engine may have requested but not yet consumed: the fetcher's credit limit and the depth of
the per-engine reorder buffer in the cache (deep enough to cover a miss at one line per cycle)."""
HW_FIELDS = ("engines", "cache_kb", "ways", "cache_banks", "mshrs", "feat_bits", "acc_bits", "bus_width", "lanes",
             "max_row_lines", "max_chunk", "max_tiles")


def _pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


@dataclass(frozen=True)
class SnfConfig(Options):
    """One `SnfAccelerator` instance plus the run-time policy its programs use.

    Hardware:
    - ``engines``: aggregation engines (1..8), each with its own graph reader, feature fetcher, MAC lanes,
      accumulator memory and output writer.
    - ``cache_kb``: shared feature cache size in KiB (power of two, 1..1024); 64-byte lines.
    - ``ways``: associativity (1, 2, 4 or 8; true LRU). ``cache_kb*16/ways`` sets must be >= 1.
    - ``cache_banks``: banks of the cache (1, 2, 4 or 8; at most the number of sets); sets are interleaved
      across banks by the low bits of the set index, each bank looks up one request per cycle.
    - ``mshrs``: misses in flight per bank (1..16); a request to a line whose fill is in flight merges into
      that miss instead of reading memory again, and hits are answered while misses are outstanding.
    - ``feat_bits``: feature / edge-value / output bits (8 or 16, signed fixed point).
    - ``acc_bits``: accumulator bits (16..32; two's-complement wrap, as the golden model).
    - ``bus_width``: memory data bits (32 to 512; 512 = one 64-byte line per bus word).
    - ``lanes``: MACs per engine (elements per cycle); a multiple of ``bus_width/feat_bits`` dividing the
      elements per line.
    - ``max_row_lines``: largest feature row in 64-byte lines (sizes the accumulator and bias memories).
    - ``max_chunk``: largest chunk of destination rows dealt to one engine at a time.
    - ``max_tiles``: largest vertex-tile count the descriptor can hold (policy ``tiling``).

    Program (no rebuild needed to change these):
    - ``policy``: ``none`` (one slice = whole row), ``static`` (``slice_lines`` lines per slice),
      ``dynamic`` (try ``candidates`` on the first rounds, keep the fastest per line) or ``tiling``
      (``tiles`` source-vertex tiles, whole rows, partial sums spilled to memory).
    - ``chunk``: destination rows per chunk (1..max_chunk); chunks are dealt round-robin to engines.
    - ``active_engines``: engines the program uses (0 = all).
    """

    OWNER: ClassVar[str] = "snf"
    LOWER_CASE: ClassVar[tuple[str, ...]] = ("policy",)

    engines: int = option(1, "aggregation engines", lo=1, hi=8, kind="hardware")
    cache_kb: int = option(8, "shared feature cache KiB (power of two), 64-byte lines, true LRU", lo=1, hi=1024,
                           kind="hardware")
    ways: int = option(4, "cache associativity", choices=(1, 2, 4, 8), kind="hardware")
    cache_banks: int = option(1, "feature cache banks (sets interleaved by the low set-index bits, one lookup per "
                                 "bank per cycle)", choices=(1, 2, 4, 8), kind="hardware")
    mshrs: int = option(2, "feature-cache misses in flight per bank (MSHRs; requests to a line in flight merge)",
                        lo=1, hi=16, kind="hardware")
    feat_bits: int = option(16, "feature, edge-value and output bits (signed fixed point)", choices=(8, 16),
                            kind="hardware")
    acc_bits: int = option(32, "accumulator bits (two's-complement wrap)", lo=16, hi=32, kind="hardware")
    bus_width: int = option(32, "memory data bits", choices=(32, 64, 128, 256, 512), kind="hardware")
    lanes: int = option(16, "MACs per engine: a multiple of the elements per bus word dividing the elements per "
                            "line", lo=1, hi=64, kind="hardware")
    max_row_lines: int = option(8, "largest feature row in 64-byte lines", lo=1, hi=64, kind="hardware")
    max_chunk: int = option(16, "largest chunk of destination rows dealt to one engine", lo=1, hi=256,
                            kind="hardware")
    max_tiles: int = option(8, "largest vertex-tile count (policy tiling)", lo=1, hi=64, kind="hardware")
    policy: str = option("dynamic", "none (whole rows), static (slice_lines per slice), dynamic (try the candidates "
                                    "on the first rounds, keep the fastest per line), tiling (source-vertex tiles, "
                                    "the GCNAX/EnGN-style baseline)", choices=POLICIES, kind="program")
    slice_lines: int = option(1, "lines per slice (policy static)", lo=1, hi=64, kind="program")
    tiles: int = option(4, "source-vertex tiles (policy tiling)", lo=1, hi=64, kind="program")
    candidates: tuple[int, ...] = option((1, 2, 4), "slice widths in lines the dynamic tuner tries",
                                         kind="program")
    chunk: int = option(4, "destination rows per chunk, dealt round-robin to engines", lo=1, hi=256,
                        kind="program")
    active_engines: int = option(0, "engines the program uses (0 = all)", lo=0, hi=8, kind="program")

    def __post_init__(self) -> None:
        self.check_fields()

        def bad(name: str, why: str) -> OptionError:
            return OptionError(self.OWNER, name, getattr(self, name), why)

        if not _pow2(self.cache_kb):
            raise bad("cache_kb", "must be a power of two")
        if self.cache_banks > self.sets:
            raise bad("cache_banks", f"must be at most the number of sets ({self.sets} = cache_kb*16/ways)")
        if self.lanes > self.elems_per_line or self.lanes % self.per_word or self.elems_per_line % self.lanes:
            raise bad("lanes", f"must be a multiple of {self.per_word} (elements per bus word) dividing "
                               f"{self.elems_per_line} (elements per 64-byte line)")
        # program fields bounded by the hardware they run on
        for name, limit, lo in (("slice_lines", "max_row_lines", 1), ("tiles", "max_tiles", 1),
                                ("chunk", "max_chunk", 1), ("active_engines", "engines", 0)):
            if getattr(self, name) > getattr(self, limit):
                raise bad(name, f"must be in {lo}..{limit}={getattr(self, limit)}")
        cands = self.candidates
        if not 1 <= len(cands) <= MAX_CANDIDATES or not all(1 <= c <= self.max_row_lines for c in cands):
            raise bad("candidates", f"must be 1..{MAX_CANDIDATES} slice widths in 1..max_row_lines="
                                    f"{self.max_row_lines} lines")

    # ---- derived sizes ---------------------------------------------------------------------------------
    @property
    def bus_bytes(self) -> int:
        return self.bus_width // 8

    @property
    def per_word(self) -> int:
        """Feature elements per memory word."""
        return self.bus_width // self.feat_bits

    @property
    def words_per_line(self) -> int:
        return LINE_BITS // self.bus_width

    @property
    def elems_per_line(self) -> int:
        return LINE_BITS // self.feat_bits

    @property
    def psum_per_word(self) -> int:
        """32-bit partial sums per memory word (tiling spills)."""
        return self.bus_width // 32

    @property
    def cache_lines(self) -> int:
        return self.cache_kb * 1024 // LINE_BYTES

    @property
    def sets(self) -> int:
        return self.cache_lines // self.ways

    @property
    def max_features(self) -> int:
        return self.max_row_lines * self.elems_per_line

    @property
    def n_active(self) -> int:
        return self.active_engines or self.engines

    def hw_key(self) -> dict:
        """The fields that change the generated hardware (everything else lives in the program)."""
        return {k: getattr(self, k) for k in HW_FIELDS}

    def hardware(self) -> SnfConfig:
        """This configuration with minimal program-only fields (one build per hardware)."""
        return hardware_config(self.hw_key())

    def replace(self, **changes) -> SnfConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_options(cls, options: dict[str, str]) -> SnfConfig:
        """Build a config from ``--set key=value`` strings (`Options.from_sets`); ``candidates`` is a
        comma-separated list of slice widths in lines, e.g. ``candidates=4,2,1``."""
        return cls.from_sets(options)


def hardware_config(hw: dict) -> SnfConfig:
    """A config from hardware fields only (program fields set to values every hardware accepts)."""
    return SnfConfig(**hw, policy="none", slice_lines=1, tiles=1, candidates=(1,), chunk=1, active_engines=0)
