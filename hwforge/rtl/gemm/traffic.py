"""Memory traffic of a gemm program, replayed from its descriptors exactly as the accelerator's units move it.

The accelerator's memory counters split bytes into `hwforge.rtl.gemm.core.TRAFFIC_CLASSES`; `program_traffic`
predicts every class from the memory image alone (the same loop nest as `hwforge.rtl.gemm.sequencer`):

- ``control``: the header word, each layer's descriptor, and gather-table words (one per gathered element);
- ``features``: A reads. Contiguous rows read every word their elements touch; gathered elements read one word
  per run of indices that fall into the same word (`hwforge.rtl.gemm.load`'s coalescing), none for -1;
- ``weights``: weight rows (OS: once per row block, or once per layer when resident; WS: per K block) and one
  bias word per output column each time a weight tile with a bias is loaded;
- ``outputs``: every output word, written once.

Benchmarks and reports put this beside the minimum a perfect memory system moves (`cycles.roofline_cycles`):
the ratio is the reuse the loop order gives away.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwforge.rtl.gemm.program import DESC_WORDS, F, Program, resident


def _row_words(first: int, length: int, per_word: int) -> int:
    """Words a row of ``length`` elements starting at element ``first`` touches."""
    return (first + length - 1) // per_word - first // per_word + 1 if length else 0


def _row_cycles(first: int, length: int, per_word: int, cross: bool) -> int:
    """Cycles the load unit's unpacker spends on one contiguous row (`hwforge.rtl.gemm.load`): each cycle writes
    the elements of the current memory word that fit. Across lanes (``cross``) that is the rest of the word; along
    a lane also only up to the end of the buffer word, so a row that does not start on a word boundary takes two
    cycles for most memory words."""
    cycles, done, off, slot = 0, 0, first % per_word, 0
    while done < length:
        count = min(per_word - off, length - done, per_word if cross else per_word - slot)
        cycles, done = cycles + 1, done + count
        off, slot = (off + count) % per_word, (slot + count) % per_word
    return cycles


def _gathered_words(indices: list[int], per_word: int) -> int:
    """One-word reads of a gathered tile: a new read whenever an index leaves the word read last."""
    reads, last = 0, None
    for i in indices:
        if i < 0:
            continue
        if i // per_word != last:
            reads, last = reads + 1, i // per_word
    return reads


@dataclass(frozen=True)
class Load:
    """One load instruction as the load unit runs it."""

    buf: str            # what it fills: "a" or "b" (operand tiles, double-buffered) or "bias"
    cls: str            # traffic class of its operand words: "features" or "weights"
    words: int          # operand (or bias) words read
    index_words: int    # gather-table words read (control class)
    cycles: int         # unpack cycles at one word (or gathered element) a cycle
    folds_before: int   # compute instructions the sequencer emits before this load


@dataclass(frozen=True)
class Fold:
    """One compute instruction and what it waits for."""

    t_len: int          # stream length T
    outputs: int        # elements it finishes (rows x cols), 0 while WS still accumulates
    a_load: int         # index (in `LayerSchedule.loads`) of the A tile it streams
    b_load: int         # index of the last load of its B tile (the bias, when one follows)
    store: int          # index of the row block (`LayerSchedule.stores`) its outputs belong to


@dataclass(frozen=True)
class LayerSchedule:
    """What the units do for one layer, in issue order: the loads, the folds and the row blocks."""

    loads: list[Load]
    folds: list[Fold]
    stores: list[int]                 # words per stored row block, in order
    resident: bool = False            # OS weights loaded once into their own slots (no bank reuse)


def layer_schedule(prog: Program, layer: int) -> LayerSchedule:
    """Replay the sequencer's loop nest for one layer from its descriptor (see the module docstring)."""
    cfg = prog.cfg
    pw, R, C = cfg.per_word, cfg.rows, cfg.cols
    d = prog.words[1 + DESC_WORDS * layer: 1 + DESC_WORDS * (layer + 1)]
    M, K, N = d[F.M], d[F.K], d[F.N]
    gather = bool(d[F.FLAGS] & 2)
    loads: list[Load] = []
    folds: list[Fold] = []
    stores: list[int] = []

    def signed(v: int) -> int:
        return v - (1 << 32) if v & 0x80000000 else v

    def load_a(m0: int, rows: int, k0: int, ks: int) -> None:
        if gather:
            table = [signed(prog.words[d[F.GATHER] + (m0 + i) * K + k0 + j]) for i in range(rows) for j in range(ks)]
            loads.append(Load("a", "features", _gathered_words(table, pw), len(table), len(table), len(folds)))
            return
        spans = [((m0 + i) * d[F.SRC_STRIDE] + k0, ks) for i in range(rows)]
        words = sum(_row_words(f, n, pw) for f, n in spans)
        cycles = sum(_row_cycles(f, n, pw, cfg.dataflow == "ws") for f, n in spans)
        loads.append(Load("a", "features", words, 0, cycles, len(folds)))

    def load_b(n0: int, cols: int, k0: int, ks: int, bias: bool) -> None:
        spans = [((n0 + i) * K + k0, ks) for i in range(cols)]
        words = sum(_row_words(f, n, pw) for f, n in spans)
        cycles = sum(_row_cycles(f, n, pw, False) for f, n in spans)
        loads.append(Load("b", "weights", words, 0, cycles, len(folds)))
        if bias:
            loads.append(Load("bias", "weights", cols, 0, cols, len(folds)))

    if cfg.dataflow == "os":
        keep = resident(cfg, K, N)
        kept: list[int] = []     # resident weights: the bias load (last of each B tile) per column block
        for m0 in range(0, M, R):
            rows = min(R, M - m0)
            load_a(m0, rows, 0, K)
            a = len(loads) - 1
            for j, n0 in enumerate(range(0, N, C)):
                cols = min(C, N - n0)
                if m0 == 0 or not keep:
                    load_b(n0, cols, 0, K, True)
                    kept.append(len(loads) - 1)
                folds.append(Fold(K, rows * cols, a, kept[j] if keep else len(loads) - 1, len(stores)))
            stores.append(rows * d[F.DST_WORDS])
        return LayerSchedule(loads, folds, stores, keep)
    step = d[F.M_TILE]
    for m0 in range(0, M, step):
        rows = min(step, M - m0)
        for n0 in range(0, N, C):
            cols = min(C, N - n0)
            for k0 in range(0, K, R):
                ks = min(R, K - k0)
                load_b(n0, cols, k0, ks, k0 == 0)
                b = len(loads) - 1
                load_a(m0, rows, k0, ks)
                folds.append(Fold(rows, rows * cols if k0 + R >= K else 0, len(loads) - 1, b, len(stores)))
        stores.append(rows * d[F.DST_WORDS])
    return LayerSchedule(loads, folds, stores)


def layer_traffic(prog: Program, layer: int) -> dict[str, int]:
    """Words per traffic class of one layer (descriptor included, header not)."""
    return schedule_words(layer_schedule(prog, layer))


def schedule_words(sched: LayerSchedule) -> dict[str, int]:
    """Words per traffic class that one layer's schedule moves (descriptor included)."""
    words = {"features": 0, "weights": 0, "outputs": sum(sched.stores), "control": DESC_WORDS}
    for ld in sched.loads:
        words[ld.cls] += ld.words
        words["control"] += ld.index_words
    return words


def program_traffic(prog: Program) -> dict[str, int]:
    """Bytes per traffic class of a whole program run (what ``GemmCore(classes=True)`` counts)."""
    nb = prog.cfg.bus_width // 8
    total = {"features": 0, "weights": 0, "outputs": 0, "control": 1}
    for i in range(len(prog.plans)):
        for cls, n in layer_traffic(prog, i).items():
            total[cls] += n
    return {cls: n * nb for cls, n in total.items()}
