"""Transfer handler: fixed subgroup buffers with prefetch (load next while updating current) and deferred
write-back (optimizer states go back to storage after the updated parameters have been returned).

The same handler serves a SmartUpdate device worker (storage <-> FPGA memory inside the device) and the
baseline host (storage <-> host memory across the shared link); only the update between ``acquire`` and
``release`` differs. Buffers are allocated once, for the largest subgroup, and reused: memory stays bounded
whatever the model size, as on an FPGA board with fixed DRAM.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from hwforge.errors import InternalError
from hwforge.host.offload.storage import DeviceStore


@dataclass
class BufferSet:
    """Parameter and optimizer-state buffers of one subgroup in flight."""

    param: np.ndarray
    states: dict[str, np.ndarray]
    sg: int = -1
    n: int = 0
    bytes_read: int = 0
    load_s: float = 0.0

    def views(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Views of the first ``n`` elements: what the updater works on, in place."""
        return self.param[: self.n], {k: v[: self.n] for k, v in self.states.items()}


@dataclass
class HandlerStats:
    load_s: float = 0.0
    write_s: float = 0.0
    wait_load_s: float = 0.0
    wait_write_s: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class TransferHandler:
    """Loads subgroups of one device into ``nbuf`` fixed buffer sets and writes them back behind the updater."""

    def __init__(self, store: DeviceStore, sizes: dict[int, int], state_names: tuple[str, ...],
                 nbuf: int = 3, overlap: bool = True) -> None:
        self.store, self.sizes, self.state_names, self.overlap = store, sizes, state_names, overlap
        cap = max(sizes.values()) if sizes else 1
        nbuf = nbuf if overlap else 1
        self._sets = [BufferSet(np.zeros(cap, np.float32), {k: np.zeros(cap, np.float32) for k in state_names})
                      for _ in range(nbuf)]
        self._free: queue.Queue[BufferSet] = queue.Queue()
        for bs in self._sets:
            self._free.put(bs)
        self._cv = threading.Condition()
        self._written: dict[int, int] = {}
        self._ready: dict[int, BufferSet] = {}
        self._error: BaseException | None = None
        self._pending_writes = 0
        self._closed = False
        self._loads: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._writes: queue.Queue[tuple[BufferSet, int] | None] = queue.Queue()
        self.stats = HandlerStats()
        if overlap:
            for target in (self._load_loop, self._write_loop):
                threading.Thread(target=target, daemon=True).start()

    def reset(self, version: int) -> None:
        """All subgroups are stored at ``version`` (after init or rollback)."""
        with self._cv:
            self._written = dict.fromkeys(self.sizes, version)

    def schedule(self, version: int, sgs: list[int]) -> None:
        """Start loading ``sgs`` (their ``version`` files) in order; returns at once when overlapping."""
        if self.overlap:
            for sg in sgs:
                self._loads.put((sg, version))
        else:
            self._serial = list(sgs)
            self._serial_version = version

    def acquire(self, sg: int) -> BufferSet:
        """The loaded buffers of ``sg`` (waits for the prefetch if it has not finished)."""
        if not self.overlap:
            bs = self._free.get_nowait()
            self._load(bs, sg, self._serial_version)
            return bs
        t0 = time.perf_counter()
        with self._cv:
            while sg not in self._ready and self._error is None:
                self._cv.wait()
            self._raise()
            bs = self._ready.pop(sg)
        self.stats.wait_load_s += time.perf_counter() - t0
        return bs

    def release(self, bs: BufferSet, version: int) -> None:
        """Hand the updated buffers back: written to storage as ``version`` (now, or later when overlapping)."""
        if not self.overlap:
            self._write(bs, version)
            self._free.put(bs)
            return
        with self._cv:
            self._pending_writes += 1
        self._writes.put((bs, version))

    def drain(self) -> None:
        """Wait until every deferred write-back has reached storage."""
        t0 = time.perf_counter()
        with self._cv:
            while self._pending_writes and self._error is None:
                self._cv.wait()
            self._raise()
        self.stats.wait_write_s += time.perf_counter() - t0

    def _raise(self) -> None:
        if self._error is not None:
            raise InternalError(f"offload transfer handler of device {self.store.device}: {self._error}")

    def _load(self, bs: BufferSet, sg: int, version: int) -> None:
        t0 = time.perf_counter()
        bs.sg, bs.n = sg, self.sizes[sg]
        p, st = bs.views()
        nbytes = self.store.read_into(sg, version, "param", p)
        for k in self.state_names:
            nbytes += self.store.read_into(sg, version, k, st[k])
        bs.bytes_read, bs.load_s = nbytes, time.perf_counter() - t0
        self.stats.load_s += bs.load_s
        self.stats.bytes_read += nbytes

    def _write(self, bs: BufferSet, version: int) -> None:
        t0 = time.perf_counter()
        p, st = bs.views()
        nbytes = self.store.write(bs.sg, version, "param", p)
        for k in self.state_names:
            nbytes += self.store.write(bs.sg, version, k, st[k])
        self.stats.write_s += time.perf_counter() - t0
        self.stats.bytes_written += nbytes
        with self._cv:
            self._written[bs.sg] = version
            self._cv.notify_all()

    def _load_loop(self) -> None:
        while True:
            item = self._loads.get()
            if item is None:
                return
            sg, version = item
            try:
                bs = None
                while bs is None:  # a handler closed mid-step (failed step) must not leave this thread blocked
                    if self._closed:
                        return
                    try:
                        bs = self._free.get(timeout=0.1)
                    except queue.Empty:
                        pass
                with self._cv:  # the previous step's write-back of this subgroup must be on storage first
                    while self._written.get(sg, -1) < version and self._error is None and not self._closed:
                        self._cv.wait()
                if self._closed:
                    return
                self._load(bs, sg, version)
                with self._cv:
                    self._ready[sg] = bs
                    self._cv.notify_all()
            except BaseException as exc:  # noqa: BLE001  (reported to the updater thread)
                self._fail(exc)
                return

    def _write_loop(self) -> None:
        while True:
            item = self._writes.get()
            if item is None:
                return
            bs, version = item
            try:
                self._write(bs, version)
                self._free.put(bs)
                with self._cv:
                    self._pending_writes -= 1
                    self._cv.notify_all()
            except BaseException as exc:  # noqa: BLE001
                self._fail(exc)
                return

    def _fail(self, exc: BaseException) -> None:
        with self._cv:
            self._error = exc
            self._cv.notify_all()

    def close(self) -> None:
        """Stop the loader and writer threads (after `drain`, nothing is lost)."""
        self._closed = True
        with self._cv:
            self._cv.notify_all()
        self._loads.put(None)
        self._writes.put(None)
