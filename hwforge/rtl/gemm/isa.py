"""The instructions and tokens that join the gemm accelerator's units (decoupled access/execute).

Why: one controller that loads, computes and stores in turn leaves the array idle whenever memory is busy. The
accelerator is instead split, in the manner of VTA and Gemmini, into units that each run their own instruction
queue: `GemmSequencer` walks a layer's tile loops and issues instructions to the `LoadUnit` (operand tiles and
biases into on-chip buffers), the `ComputeUnit` (one fold of the systolic array), the `PostUnit` (bias-added
accumulators requantised into the output staging buffer) and the `StoreUnit` (staged rows written back). Every
buffer the units share has two banks, and each unit waits for *tokens* before it touches one:

====================  =================  ==========================  =====
semaphore             pushed by          popped by                   init
====================  =================  ==========================  =====
``a_ready``           load (A tile in)   compute (first fold of it)  0
``a_free``            compute (last)     load (before writing A)     2
``b_ready``           load (B + bias)    compute (every fold)        0
``b_free``            compute            load (before writing B)     2
``acc_ready``         compute            post                        0
``acc_free``          post               compute                     2
``st_ready``          post (row block)   store                       0
``st_free``           store              post (first fold of block)  2
====================  =================  ==========================  =====

With two banks and an initial count of two free tokens, a producer runs up to one tile ahead of its consumer:
fold i+1's operands load while fold i streams, and fold i-1 is requantised and written back meanwhile. Bank
numbers are chosen by the sequencer (each buffer's bank alternates), so a unit never needs to know another's
progress, only its tokens.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

#: Instruction-queue depths. The sequencer emits in program order and stops at a full queue, so the compute and
#: post queues hold a row block of folds: the next row block's A tile is then issued while this block streams.
QUEUE_DEPTH = {"load": 4, "compute": 16, "post": 16, "store": 2}

#: Load targets: the A operand buffer, the B (weight) buffer, the bias registers.
LOAD_A, LOAD_B, LOAD_BIAS = range(3)

#: Tile dimensions (rows, row lengths, buffer entries) are at most 65,536 (`GemmConfig.op_depth`'s limit).
DIM = 17

#: Bias slots per column lane: two banks, or one per column block of a layer whose weights stay resident.
BIAS_SLOTS = 64
BIAS_BITS = 6

LOAD_LAYOUT = data.StructLayout({
    "target": 2,        # LOAD_A / LOAD_B / LOAD_BIAS
    "dest": DIM + 1,    # where the tile goes: element offset in each buffer lane (a multiple of per_word), or the
                        # bias slot
    "base": 32,         # word address of the region (operands) or of the first bias word
    "first": 32,        # element index, within ``base``, of row 0's first element
    "rows": DIM,        # rows of the tile (bias: 1)
    "row_len": DIM,     # elements per row (bias: words)
    "stride": 32,       # elements between consecutive rows' first elements
    "cross": 1,         # WS activations: element j of a row goes to lane j, entry = row
    "gather": 1,        # rows come through the gather table (element indices, -1 = zero)
    "gbase": 32,        # word address of row 0's gather entries
    "gstride": 32,      # words between consecutive rows' gather entries
    "pop_free": 1,      # wait for (and take) a free token of the target's buffer before writing
    "push_ready": 1,    # give a ready token when the tile is in
})

COMPUTE_LAYOUT = data.StructLayout({
    "t_len": DIM,       # stream length T: K (OS) or the chunk's rows (WS)
    "ks": DIM,          # WS: valid rows of the weight tile (K block); OS: unused
    "aoff": DIM + 1, "boff": DIM + 1,  # element offsets of the A and B tiles in their buffers' lanes
    "bslot": BIAS_BITS,  # bias slot of the B tile
    "accbank": 1,
    "pop_b": 1,         # take a ``b_ready`` token (every fold, or only the first row block when B stays resident)
    "push_b_free": 1,   # give the B bank back at the end (not when B stays resident for the whole layer)
    "accumulate": 1,    # WS: add the accumulator buffer's partial sums (K block > 0); else add the bias
    "pop_a": 1,         # first fold on this A tile: take an ``a_ready`` token
    "push_a_free": 1,   # last fold on this A tile: give its bank back
    "pop_acc_free": 1,  # first fold into this accumulator bank
    "push_acc_ready": 1,  # last fold into it: the post unit may requantise
})

POST_LAYOUT = data.StructLayout({
    "rows": DIM, "cols": 6,  # valid rows and columns of the accumulator tile
    "accbank": 1, "stbank": 1,
    "col0": DIM,        # first output column (element offset in each staged row)
    "npad": DIM,        # elements per staged row (a whole number of memory words)
    "pop_st_free": 1,   # first tile of a row block: take a free staging bank
    "push_st_ready": 1,  # last tile of a row block: the store unit may write it back
})

STORE_LAYOUT = data.StructLayout({
    "stbank": 1,
    "dst": 32,          # word address of the row block's first output word
    "words": 32,        # words to write (rows x words per row)
})


class Semaphore(wiring.Component):
    """A counting semaphore of tokens: ``push`` adds one, ``pop`` takes one (only while ``avail``).

    A counter is all a token queue between two in-order units needs: the tokens carry no data, since both sides
    agree on the order of the tiles they stand for.
    """

    def __init__(self, init: int, maximum: int = 7):
        self.init = init
        self.maximum = maximum
        super().__init__({"push": In(1), "pop": In(1), "avail": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        count = Signal(range(self.maximum + 1), init=self.init)
        m.d.sync += count.eq(count + self.push - self.pop)
        m.d.comb += self.avail.eq(count != 0)
        return m


TOKENS = ("a_ready", "a_free", "b_ready", "b_free", "acc_ready", "acc_free", "st_ready", "st_free")
TOKEN_INIT = {name: (2 if name.endswith("_free") else 0) for name in TOKENS}
