"""Analytical compute cycles (SCALE-Sim) and what the RTL's ``compute_cycles`` counter reports.

SCALE-Sim (Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN Accelerators
using SCALE-Sim", ISPASS 2020) models an R x C array running an Sr x T x Sc GEMM as
``folds = ceil(Sr / R) * ceil(Sc / C)`` folds of ``2R + C + T - 2`` cycles each, with
``(Sr, Sc, T) = (M, N, K)`` for output-stationary and ``(K, N, M)`` for weight-stationary.

The RTL matches it exactly, offset 0 per fold:

- OS fold: ``T + R + C - 2`` cycles until the last PE's last MAC (skewed A from the left, B from the top), then
  ``R`` drain cycles shifting accumulators out of the bottom edge: ``2R + C + T - 2``.
- WS fold: ``R`` cycles preloading weights down the columns, then ``T + R + C - 2`` cycles until the bottom
  of the last column has its last partial sum: ``2R + C + T - 2``.

``compute_cycles`` counts exactly these cycles (two pipeline-priming cycles per fold, the synchronous buffer
read and the array's edge registers, are not counted). One deviation, by construction: WS splits M into chunks
of ``m_tile`` rows when M exceeds the buffers (`LayerPlan.m_tile`), each chunk being its own set of folds with
``T = chunk rows``;
`rtl_compute_cycles` accounts for that and equals `fold_cycles_formula` whenever ``m_tile >= M``.
"""

from __future__ import annotations

from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.program import DESC_WORDS, Program


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def fold_cycles_formula(cfg: GemmConfig, M: int, K: int, N: int) -> tuple[int, int]:
    """SCALE-Sim's ``(folds, compute cycles)`` for an M x K x N GEMM on ``cfg``'s array and dataflow."""
    R, C = cfg.rows, cfg.cols
    sr, sc, t = (M, N, K) if cfg.dataflow == "os" else (K, N, M)
    folds = _ceil(sr, R) * _ceil(sc, C)
    return folds, folds * (2 * R + C + t - 2)


def rtl_compute_cycles(cfg: GemmConfig, M: int, K: int, N: int, m_tile: int | None = None) -> tuple[int, int]:
    """``(folds, compute_cycles)`` the RTL reports for one layer, including WS M-chunking."""
    if cfg.dataflow == "os" or m_tile is None or m_tile >= M:
        return fold_cycles_formula(cfg, M, K, N)
    folds = cycles = 0
    for m0 in range(0, M, m_tile):
        f, c = fold_cycles_formula(cfg, min(m_tile, M - m0), K, N)
        folds += f
        cycles += c
    return folds, cycles


def minimum_bytes(cfg: GemmConfig, M: int, K: int, N: int, a_elements: int | None = None) -> int:
    """Bytes a perfect memory system moves for one layer: every distinct A element (``a_elements``, e.g. the
    source tensor of an im2col gather; default ``M*K``), the weights and the output once each, in the array's
    memory containers, and the int32 bias."""
    a = M * K if a_elements is None else a_elements
    return (a + N * K + M * N) * (cfg.container_bits // 8) + 4 * N


def roofline_cycles(cfg: GemmConfig, M: int, K: int, N: int, m_tile: int | None = None,
                    a_elements: int | None = None) -> int:
    """The bound of one layer: ``max(compute cycles, minimum_bytes / bus bytes per cycle)``.

    The compute term is this configuration's own fold count (`rtl_compute_cycles`), so where WS must split M into
    chunks because its buffers are shallow the bound includes that cost; `fold_cycles_formula` is the unchunked
    array bound. Measured cycles over this bound is the figure of merit.
    """
    _, compute = rtl_compute_cycles(cfg, M, K, N, m_tile)
    return max(compute, _ceil(minimum_bytes(cfg, M, K, N, a_elements), cfg.bus_width // 8))


def predict_layer_cycles(prog: Program, layer: int, latency: int = 1, stall_prob: float = 0.0) -> int:
    """Predicted total cycles of one layer, descriptor fetch to the last output write, on a memory with
    ``latency`` cycles and request/response back-pressure of probability ``stall_prob`` each cycle.

    An event model of the accelerator's in-order units (`hwforge.rtl.gemm.core`), replaying the layer's loop nest
    (`traffic.layer_schedule`):

    - the sequencer emits instructions in program order and stops at a full queue (`isa.QUEUE_DEPTH`), so a load
      is issued no earlier than the compute and post instructions before it fit their queues;
    - the load unit's issue stage sends a tile's reads once the previous tile's are out and its two-deep queue has
      room (freed when the unpacker *takes* an instruction); words stream no faster than one DMA engine sustains,
      ``min(1, reads_in_flight / (latency + 3))`` a cycle (the DMA's credit overhead and the arbiter's request
      FIFO) derated by the stalls, and past ``reads_in_flight``
      words only as the unpacker frees credits; the unpacker writes a word (or gathered element) a cycle, and
      takes a tile only once the bank it overwrites is free (two banks per operand; resident weights never wait);
    - a fold starts when its tiles are in, the array is free and an accumulator bank is free, and streams
      ``2R + C + T - 2`` cycles (`fold_cycles_formula`'s term) plus `compute.FOLD_OVERHEAD` (buffer read and
      edge register, the cells' product register);
    - the requantiser takes one output a cycle; the store unit writes a finished row block a word a cycle;
    - the layer finishes no earlier than all its words cross the shared port (the bandwidth bound).

    Its error against the RTL is measured by ``benchmarks/gemm.py`` and bounded in the tests, not assumed.
    """
    from hwforge.rtl.gemm.core import ARBITER_BUFFERS
    from hwforge.rtl.gemm.load import GATHER_QUEUE
    from hwforge.rtl.gemm.traffic import layer_schedule, schedule_words
    from hwforge.rtl.lib.dma import CREDIT_OVERHEAD

    # a request waits one cycle in the arbiter's request FIFO: every round trip is that much longer
    latency = latency + (1 if ARBITER_BUFFERS else 0)
    sched = layer_schedule(prog, layer)
    port = 1.0 - stall_prob                                                 # words a cycle the memory accepts
    t = _Timeline(prog.cfg, sched, port)
    rate = min(1.0, prog.cfg.reads_in_flight / (latency + CREDIT_OVERHEAD)) * port   # one DMA engine
    rif = prog.cfg.reads_in_flight
    start = DESC_WORDS / port + latency + 4                                # the sequencer reads the descriptor
    t.compute = t.post = t.store = start

    # a tile overwrites the bank of the tile two before it in the same buffer: wait for that tile's last fold
    users: dict[int, list[int]] = {}
    for f, fold in enumerate(sched.folds):
        users.setdefault(fold.a_load, []).append(f)
        users.setdefault(fold.b_load, []).append(f)
    waits_for: dict[int, int] = {}
    for buf in ("a", "b"):
        if buf == "b" and sched.resident:
            continue
        seq = [i for i, ld in enumerate(sched.loads) if ld.buf == buf]
        for j in range(2, len(seq)):
            ready = seq[j - 2] if buf == "a" else _tile_ready(sched.loads, seq[j - 2])
            if users.get(ready):
                waits_for[seq[j]] = max(users[ready])

    load_end: list[float] = []
    taken: list[float] = []                  # when the unpacker takes each load from its queue
    unpacked = issue_end = start
    for i, ld in enumerate(sched.loads):
        t.run_folds_before(i, load_end)
        issue = max(issue_end, taken[i - 2] + 1 if i >= 2 else start, t.emitted(ld.folds_before))
        take = unpacked
        if i in waits_for:
            t.run_folds_through(waits_for[i], load_end)
            take = max(take, t.fold_end[waits_for[i]])
        taken.append(take)
        begin = max(take, issue + latency + 3)
        words = max(ld.words, ld.index_words)
        unpack = ld.cycles
        if ld.index_words:      # a gathered element waits in a queue of GATHER_QUEUE for its word to return
            unpack = ld.cycles / min(1.0, GATHER_QUEUE / (latency + _GATHER_TURN))
        end = max(begin + max(unpack, (ld.words + ld.index_words) / port), issue + latency + 3 + words / rate)
        if words > rif:
            end = max(end, begin + words - rif + latency + CREDIT_OVERHEAD + 1)
        load_end.append(end)
        issue_end = max(issue + words / rate, begin + words - rif if words > rif else 0.0)
        unpacked = end + 1
    t.run_folds_through(len(sched.folds) - 1, load_end)
    makespan = max(t.store_end) if t.store_end else t.compute
    words = sum(schedule_words(sched).values())
    return int(round(max(makespan, DESC_WORDS / port + words / port + latency))) + 2


#: Cycles a gathered element's queue entry is held beyond the memory latency (index to read, read to unpack).
_GATHER_TURN = 4


def _tile_ready(loads, i: int) -> int:
    """A B tile is ready after its bias when one follows it."""
    return i + 1 if i + 1 < len(loads) and loads[i + 1].buf == "bias" else i


class _Timeline:
    """The compute, post and store units of `predict_layer_cycles`: when each fold, requantisation and row-block
    write-back begins and ends, advanced fold by fold in program order."""

    def __init__(self, cfg: GemmConfig, sched, port: float):
        from hwforge.rtl.gemm.compute import FOLD_OVERHEAD
        from hwforge.rtl.gemm.isa import QUEUE_DEPTH
        from hwforge.rtl.lib.requant import PIPELINED_LATENCY

        self.sched, self.port, self.requant_latency = sched, port, PIPELINED_LATENCY
        self.fill = 2 * cfg.rows + cfg.cols - 2
        self.fold_overhead = FOLD_OVERHEAD
        self.depth = QUEUE_DEPTH
        self.fold_begin: list[float] = []
        self.fold_end: list[float] = []
        self.post_begin: list[float] = []
        self.post_end: list[float] = []
        self.store_begin: list[float] = []
        self.store_end: list[float] = [0.0] * len(sched.stores)
        self.last_fold_of_block = {fold.store: f for f, fold in enumerate(sched.folds)}
        self.posts_before = [0]                 # post instructions among the first f folds, for every f
        for fold in sched.folds:
            self.posts_before.append(self.posts_before[-1] + bool(fold.outputs))
        self.compute = self.post = self.store = 0.0

    def emitted(self, folds: int) -> float:
        """Earliest time the sequencer is past ``folds`` compute instructions (and their posts and stores):
        each had to wait for a free slot in its queue."""
        when = 0.0
        f = folds - 1 - self.depth["compute"]
        if 0 <= f < len(self.fold_begin):
            when = self.fold_begin[f]
        p = self.posts_before[folds] - 1 - self.depth["post"]
        if 0 <= p < len(self.post_begin):
            when = max(when, self.post_begin[p])
        blocks = self.sched.folds[folds - 1].store if folds else 0
        s = blocks - 1 - self.depth["store"]
        if 0 <= s < len(self.store_begin):
            when = max(when, self.store_begin[s])
        return when

    def run_folds_before(self, load: int, load_end: list[float]) -> None:
        """Run every fold whose tiles come from loads before ``load``."""
        folds = self.sched.folds
        while len(self.fold_end) < len(folds) and max(folds[len(self.fold_end)].a_load,
                                                      folds[len(self.fold_end)].b_load) < load:
            self._fold(len(self.fold_end), load_end)

    def run_folds_through(self, last: int, load_end: list[float]) -> None:
        while len(self.fold_end) <= last:
            self._fold(len(self.fold_end), load_end)

    def _fold(self, f: int, load_end: list[float]) -> None:
        fold = self.sched.folds[f]
        # + 2: the load's last write passes the core's write register, then its ready token is taken
        begin = max(self.compute, load_end[fold.a_load] + 2, load_end[fold.b_load] + 2)
        if len(self.post_end) >= 2:            # two accumulator banks: the post two tiles back must be done
            begin = max(begin, self.post_end[-2])
        self.fold_begin.append(begin)
        self.fold_end.append(begin + fold.t_len + self.fill + self.fold_overhead)
        self.compute = self.fold_end[f]
        if not fold.outputs:
            return
        p_begin = max(self.fold_end[f], self.post)
        blk = fold.store
        if blk >= 2:                            # two staging banks
            p_begin = max(p_begin, self.store_end[blk - 2])
        end = p_begin + fold.outputs + 1
        if self.last_fold_of_block[blk] == f:
            end += self.requant_latency + 1
            s_begin = max(end, self.store)
            self.store_begin.append(s_begin)
            self.store_end[blk] = s_begin + self.sched.stores[blk] / self.port + 2
            self.store = self.store_end[blk]
        self.post_begin.append(p_begin)
        self.post_end.append(end)
        self.post = end


def predict_program_cycles(prog: Program, latency: int = 1, stall_prob: float = 0.0) -> list[int]:
    """`predict_layer_cycles` for every layer of ``prog`` (the header word and start/done, a few cycles per run,
    are not included)."""
    return [predict_layer_cycles(prog, i, latency, stall_prob) for i in range(len(prog.plans))]
