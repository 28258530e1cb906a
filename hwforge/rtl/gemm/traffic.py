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

from hwforge.rtl.gemm.program import DESC_WORDS, F, Program, resident


def _row_words(first: int, length: int, per_word: int) -> int:
    """Words a row of ``length`` elements starting at element ``first`` touches."""
    return (first + length - 1) // per_word - first // per_word + 1 if length else 0


def _gathered_words(indices: list[int], per_word: int) -> int:
    """One-word reads of a gathered tile: a new read whenever an index leaves the word read last."""
    reads, last = 0, None
    for i in indices:
        if i < 0:
            continue
        if i // per_word != last:
            reads, last = reads + 1, i // per_word
    return reads


def layer_traffic(prog: Program, layer: int) -> dict[str, int]:
    """Words per traffic class of one layer (descriptor included, header not)."""
    cfg = prog.cfg
    pw, R, C = cfg.per_word, cfg.rows, cfg.cols
    d = prog.words[1 + DESC_WORDS * layer: 1 + DESC_WORDS * (layer + 1)]
    M, K, N = d[F.M], d[F.K], d[F.N]
    gather = bool(d[F.FLAGS] & 2)
    words = {"features": 0, "weights": 0, "outputs": d[F.OUT_WORDS], "control": DESC_WORDS}

    def signed(v: int) -> int:
        return v - (1 << 32) if v & 0x80000000 else v

    def load_a(m0: int, rows: int, k0: int, ks: int) -> None:
        if gather:
            table = [signed(prog.words[d[F.GATHER] + (m0 + i) * K + k0 + j]) for i in range(rows) for j in range(ks)]
            words["control"] += len(table)
            words["features"] += _gathered_words(table, pw)
            return
        words["features"] += sum(_row_words((m0 + i) * d[F.SRC_STRIDE] + k0, ks, pw) for i in range(rows))

    def load_b(n0: int, cols: int, k0: int, ks: int, bias: bool) -> None:
        words["weights"] += sum(_row_words((n0 + i) * K + k0, ks, pw) for i in range(cols)) + (cols if bias else 0)

    if cfg.dataflow == "os":
        keep = resident(cfg, K, N)
        for m0 in range(0, M, R):
            load_a(m0, min(R, M - m0), 0, K)
            if m0 == 0 or not keep:
                for n0 in range(0, N, C):
                    load_b(n0, min(C, N - n0), 0, K, True)
        return words
    step = d[F.M_TILE]
    for m0 in range(0, M, step):
        rows = min(step, M - m0)
        for n0 in range(0, N, C):
            for k0 in range(0, K, R):
                ks = min(R, K - k0)
                load_b(n0, min(C, N - n0), k0, ks, k0 == 0)
                load_a(m0, rows, k0, ks)
    return words


def program_traffic(prog: Program) -> dict[str, int]:
    """Bytes per traffic class of a whole program run (what ``GemmCore(classes=True)`` counts)."""
    nb = prog.cfg.bus_width // 8
    total = {"features": 0, "weights": 0, "outputs": 0, "control": 1}
    for i in range(len(prog.plans)):
        for cls, n in layer_traffic(prog, i).items():
            total[cls] += n
    return {cls: n * nb for cls, n in total.items()}
