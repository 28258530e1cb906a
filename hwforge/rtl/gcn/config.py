"""Parameters of the Slice-and-Forge (`snf`) aggregation accelerator.

`SnfConfig` mixes two kinds of settings, kept apart so that one Verilator build serves every policy:

- *hardware* (elaboration time): ``engines``, ``cache_kb``, ``ways``, ``feat_bits``, ``acc_bits``,
  ``bus_width``, ``lanes``, ``max_row_lines``, ``max_chunk``, ``max_tiles``; `hw_key` lists them.
- *program* (run time, written into the descriptor by `build_program`): ``policy``, ``slice_lines``,
  ``tiles``, ``candidates``, ``chunk``, ``active_engines``.

Every check happens here with a message that names the option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from hwforge.errors import ConfigError

LINE_BYTES = 64
LINE_BITS = 8 * LINE_BYTES
POLICIES = ("none", "tiling", "static", "dynamic")
MAX_CANDIDATES = 8
HW_FIELDS = ("engines", "cache_kb", "ways", "feat_bits", "acc_bits", "bus_width", "lanes", "max_row_lines",
             "max_chunk", "max_tiles")


def _pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


@dataclass(frozen=True)
class SnfConfig:
    """One `SnfAccelerator` instance plus the run-time policy its programs use.

    Hardware:
    - ``engines``: aggregation engines (1..8), each with its own graph reader, feature fetcher, MAC lanes,
      accumulator memory and output writer.
    - ``cache_kb``: shared feature cache size in KiB (power of two, 1..1024); 64-byte lines.
    - ``ways``: associativity (1, 2, 4 or 8; true LRU). ``cache_kb*16/ways`` sets must be >= 1.
    - ``feat_bits``: feature / edge-value / output bits (8 or 16, signed fixed point).
    - ``acc_bits``: accumulator bits (16..32; two's-complement wrap, as the golden model).
    - ``bus_width``: memory data bits (32, 64 or 128).
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

    engines: int = 1
    cache_kb: int = 8
    ways: int = 4
    feat_bits: int = 16
    acc_bits: int = 32
    bus_width: int = 32
    lanes: int = 16
    max_row_lines: int = 8
    max_chunk: int = 16
    max_tiles: int = 8
    policy: str = "dynamic"
    slice_lines: int = 1
    tiles: int = 4
    candidates: tuple[int, ...] = (1, 2, 4)
    chunk: int = 4
    active_engines: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"snf: {name}={getattr(self, name)!r} {why}")

        def need_int(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise bad(name, f"must be an integer in {lo}..{hi}")

        need_int("engines", 1, 8)
        need_int("cache_kb", 1, 1024)
        if not _pow2(self.cache_kb):
            raise bad("cache_kb", "must be a power of two")
        if self.ways not in (1, 2, 4, 8):
            raise bad("ways", "must be 1, 2, 4 or 8")
        if self.feat_bits not in (8, 16):
            raise bad("feat_bits", "must be 8 or 16")
        need_int("acc_bits", 16, 32)   # wraps (CONTRACTS); 32-bit partial sums bound it
        if self.bus_width not in (32, 64, 128):
            raise bad("bus_width", "must be 32, 64 or 128")
        need_int("lanes", 1, self.elems_per_line)
        if self.lanes % self.per_word or self.elems_per_line % self.lanes:
            raise bad("lanes", f"must be a multiple of {self.per_word} (elements per bus word) dividing "
                               f"{self.elems_per_line} (elements per 64-byte line)")
        need_int("max_row_lines", 1, 64)
        need_int("max_chunk", 1, 256)
        need_int("max_tiles", 1, 64)
        if self.policy not in POLICIES:
            raise bad("policy", f"is unknown; choose one of {', '.join(POLICIES)}")
        need_int("slice_lines", 1, self.max_row_lines)
        need_int("tiles", 1, self.max_tiles)
        cands = self.candidates
        if (not isinstance(cands, tuple) or not 1 <= len(cands) <= MAX_CANDIDATES
                or not all(isinstance(c, int) and 1 <= c <= self.max_row_lines for c in cands)):
            raise ConfigError(f"snf: candidates={cands!r} must be 1..{MAX_CANDIDATES} slice widths in "
                              f"1..max_row_lines={self.max_row_lines} lines")
        need_int("chunk", 1, self.max_chunk)
        need_int("active_engines", 0, self.engines)

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
        """Build a config from ``--set key=value`` strings; errors name the key and say what is allowed.

        ``candidates`` is a comma-separated list of slice widths in lines, e.g. ``candidates=4,2,1``.
        """
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, object] = {}
        for key, raw in options.items():
            if key not in known:
                raise ConfigError(f"snf: unknown option {key!r}; known options: {', '.join(sorted(known))}")
            text = str(raw).strip()
            if key == "policy":
                kwargs[key] = text.lower()
                continue
            try:
                if key == "candidates":
                    kwargs[key] = tuple(int(t, 0) for t in text.split(",") if t.strip())
                else:
                    kwargs[key] = int(text, 0)
            except ValueError:
                raise ConfigError(f"snf: option {key}={raw!r} is not an integer"
                                  + (" list" if key == "candidates" else "")) from None
        return cls(**kwargs)  # type: ignore[arg-type]


def hardware_config(hw: dict) -> SnfConfig:
    """A config from hardware fields only (program fields set to values every hardware accepts)."""
    return SnfConfig(**hw, policy="none", slice_lines=1, tiles=1, candidates=(1,), chunk=1, active_engines=0)
