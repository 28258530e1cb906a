"""The host link of one device, emulated by a shared-memory file with two slots.

Each slot holds one subgroup's gradient going down (dense, or top-k int32 indices followed by the values) and the
updated parameters coming back. Two slots let the host fill the next subgroup's gradient while the device is
still updating the current one. Both ends map the same pages; the bytes a transfer places in a slot are what
the counters record.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

SLOTS = 2
DTYPES = {"fp32": np.float32, "fp16": np.float16}


class Link:
    """Views into the shared slots; ``create`` on the host, ``open`` in the worker."""

    def __init__(self, path: Path, cap: int, kmax: int, mode: str) -> None:
        self.path, self.cap, self.kmax = Path(path), cap, kmax
        self.grad_bytes = _align(max(cap * 4, kmax * 8))
        self.slot_bytes = self.grad_bytes + cap * 4
        self.mem = np.memmap(self.path, dtype=np.uint8, mode=mode, shape=(SLOTS * self.slot_bytes,))

    @classmethod
    def create(cls, device: int, cap: int, kmax: int) -> Link:
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
        fd, name = tempfile.mkstemp(prefix=f"hwforge-offload-dev{device:02d}-", suffix=".link", dir=shm)
        os.close(fd)
        link = cls.__new__(cls)
        link.path, link.cap, link.kmax = Path(name), cap, kmax
        link.grad_bytes = _align(max(cap * 4, kmax * 8))
        link.slot_bytes = link.grad_bytes + cap * 4
        with open(name, "r+b") as f:
            f.truncate(SLOTS * link.slot_bytes)
        link.mem = np.memmap(name, dtype=np.uint8, mode="r+", shape=(SLOTS * link.slot_bytes,))
        return link

    def unlink(self) -> None:
        """Remove the name (both mappings stay valid), so a crash leaves nothing behind in /dev/shm."""
        self.path.unlink(missing_ok=True)

    def dense(self, slot: int, n: int, dtype: str) -> np.ndarray:
        base = slot * self.slot_bytes
        return self.mem[base: base + n * np.dtype(DTYPES[dtype]).itemsize].view(DTYPES[dtype])

    def topk(self, slot: int, k: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
        base = slot * self.slot_bytes
        idx = self.mem[base: base + 4 * k].view(np.int32)
        vals = self.mem[base + 4 * k: base + 4 * k + k * np.dtype(DTYPES[dtype]).itemsize].view(DTYPES[dtype])
        return idx, vals

    def param(self, slot: int, n: int) -> np.ndarray:
        base = slot * self.slot_bytes + self.grad_bytes
        return self.mem[base: base + 4 * n].view(np.float32)


def _align(n: int) -> int:
    return (n + 63) // 64 * 64
