"""Put an accelerator on a board that has no external memory: its memory port is served from block RAM.

The boards of the open flow (ULX3S, iCEBreaker) are used here only to prove that a design synthesises, fits,
places and routes, and to measure its resources and clock rate. So the SoC is deliberately minimal: the
accelerator's memory port (`hwforge.rtl.lib.MemPortSignature`) is answered by one on-chip `Memory` that holds
the program and data image, the accelerator is started once after reset, and the only outputs are eight LEDs.
The LEDs show `done` and a running checksum of every word the accelerator writes; without an observable
result, synthesis would prove the whole data path dead and remove it, and the resource report would be empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hwforge.errors import ConfigError
from hwforge.rtl.lib import MemPortSignature

#: Read responses the SoC may have outstanding (in the read pipeline or waiting in the response FIFO).
#: Two keeps one read per cycle flowing while the accelerator is ready; four leaves room for a slow consumer.
RESPONSE_DEPTH = 4


def _silence(elaboratable: object) -> None:
    """Tell Amaranth an elaboratable is dropped on purpose (after a ConfigError), so it does not warn.

    The attribute is name-mangled inside Amaranth's `MustUse`; spelled as an attribute inside our class,
    Python would mangle it a second time, hence the string.
    """
    setattr(elaboratable, _MUSTUSE_SILENCE, True)


_MUSTUSE_SILENCE = "_MustUse__silence"


def _image_to_ints(image_words: Sequence[int] | np.ndarray, data_width: int) -> list[int]:
    """Check the image and make it plain unsigned ints (numpy ints and negatives become two's complement)."""
    if isinstance(image_words, np.ndarray):
        image_words = image_words.reshape(-1).tolist()
    words = [int(w) for w in image_words]
    lo, hi = -(1 << (data_width - 1)), 1 << data_width
    for i, w in enumerate(words):
        if not lo <= w < hi:
            raise ConfigError(f"memory image word {i} = {w} does not fit in {data_width} bits")
    mask = (1 << data_width) - 1
    return [w & mask for w in words]


def _check_accelerator(acc: object, data_width: int) -> None:
    """Fail early, with the contract spelled out, if `acc` is not a hwforge accelerator top."""
    sig = getattr(acc, "signature", None)
    if not isinstance(acc, wiring.Component) or sig is None:
        raise ConfigError(f"accelerator factory returned {type(acc).__name__}, "
                          "not an amaranth wiring.Component")
    members = sig.members
    expected = {"start": wiring.In(1), "done": wiring.Out(1)}
    for name, member in expected.items():
        if name not in members or members[name] != member:
            raise ConfigError(f"accelerator {type(acc).__name__} needs a member `{name}: {member!r}` "
                              "(see docs/CONTRACTS.md)")
    mem = members["mem"] if "mem" in members else None
    if (mem is None or not mem.is_signature or mem.flow != wiring.Out
            or not isinstance(mem.signature, MemPortSignature)):
        raise ConfigError(f"accelerator {type(acc).__name__} needs a member "
                          "`mem: Out(MemPortSignature(...))`")
    if mem.signature.data_width != data_width:
        raise ConfigError(f"accelerator memory port is {mem.signature.data_width} bits wide, "
                          f"but the SoC was asked for data_width={data_width}")


class OnChipMemorySoC(wiring.Component):
    """An accelerator, an on-chip memory initialised with an image, a start pulse after reset, and LEDs.

    Parameters
    ----------
    accelerator_factory:
        Called once (here, not at elaboration) so that tests can reach the instance as ``soc.accelerator``.
    image_words:
        Initial memory contents from word address 0: program, inputs and weights.
    data_width:
        Word width of the memory and of the accelerator's memory port.
    depth:
        Memory size in words; defaults to the image size. Rounded up to a power of two so that an address is
        simply truncated (addresses wrap), which costs no logic and is defined in simulation and on silicon.
        Give room here for everything the accelerator writes beyond the image.

    Memory protocol: one request accepted per cycle while fewer than `RESPONSE_DEPTH` reads are outstanding;
    a read's data arrives two cycles after it was accepted at the earliest, in request order, and waits in a
    FIFO while ``resp.ready`` is low; a write updates memory at the end of the cycle it is accepted in, so a
    later read sees it. ``req.ready`` depends only on registers, never combinationally on ``resp.ready``, so
    no accelerator can close a combinational loop through the SoC.

    Ports: ``leds`` (bit 0 = done, bits 1..7 = the checksum folded to seven bits), plus ``done``,
    ``checksum`` (rotate-left-and-XOR of every written word, in order) and ``writes`` (count of writes)
    for simulation.
    """

    def __init__(self, accelerator_factory: Callable[[], wiring.Component],
                 image_words: Sequence[int] | np.ndarray, data_width: int, *, depth: int | None = None):
        self.data_width = data_width
        try:
            self.image = _image_to_ints(image_words, data_width)
            if depth is not None and depth < len(self.image):
                raise ConfigError(f"memory depth {depth} is smaller than the image ({len(self.image)} words)")
        except ConfigError:
            _silence(self)
            raise
        want = max(len(self.image), depth or 0, 2)
        self.depth = 1 << (want - 1).bit_length()
        self.accelerator = accelerator_factory()
        try:
            _check_accelerator(self.accelerator, data_width)
        except ConfigError:
            # Neither object will be elaborated; keep Amaranth from warning that they were never used.
            _silence(self)
            _silence(self.accelerator)
            raise
        self.memory = Memory(shape=unsigned(data_width), depth=self.depth, init=self.image)
        super().__init__({
            "leds": Out(8),
            "done": Out(1),
            "checksum": Out(data_width),
            "writes": Out(32),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        dw = self.data_width
        abits = (self.depth - 1).bit_length()
        m.submodules.accelerator = acc = self.accelerator
        m.submodules.memory = mem = self.memory
        m.submodules.resp_fifo = fifo = SyncFIFO(width=dw, depth=RESPONSE_DEPTH)
        rd = mem.read_port()
        wr = mem.write_port()
        req, resp = acc.mem.req, acc.mem.resp

        # Start once: the first cycle out of reset.
        started = Signal()
        m.d.sync += started.eq(1)
        m.d.comb += acc.start.eq(~started)

        # Credits: a read is accepted only if its response is guaranteed a place in the FIFO.
        inflight = Signal()  # a read accepted last cycle whose data is on the read port now
        m.d.comb += req.ready.eq(fifo.level + inflight < RESPONSE_DEPTH)
        accept = Signal()
        m.d.comb += accept.eq(req.valid & req.ready)
        addr = req.payload.addr[:abits]
        m.d.comb += [
            rd.addr.eq(addr),
            rd.en.eq(1),
            wr.addr.eq(addr),
            wr.data.eq(req.payload.wdata),
            wr.en.eq(accept & req.payload.write),
        ]
        m.d.sync += inflight.eq(accept & ~req.payload.write)
        m.d.comb += [
            fifo.w_data.eq(rd.data),
            fifo.w_en.eq(inflight),
            resp.payload.eq(fifo.r_data),
            resp.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(resp.ready),
        ]

        # Observability: fold every written word into a checksum so synthesis keeps the whole data path.
        with m.If(wr.en):
            m.d.sync += [
                self.checksum.eq(self.checksum.rotate_left(1) ^ req.payload.wdata),
                self.writes.eq(self.writes + 1),
            ]
        folded = 0
        for lo in range(0, dw, 7):
            folded = self.checksum[lo:lo + 7] ^ folded
        m.d.comb += [
            self.done.eq(acc.done),
            self.leds[0].eq(acc.done),
            self.leds[1:].eq(folded),
        ]
        return m


def checksum_of(words: Sequence[int], data_width: int) -> int:
    """The value `OnChipMemorySoC.checksum` reaches after the given writes (for checking a simulation)."""
    mask = (1 << data_width) - 1
    chk = 0
    for w in words:
        chk = (((chk << 1) | (chk >> (data_width - 1))) & mask) ^ (w & mask)
    return chk
