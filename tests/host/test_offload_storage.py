"""Device storage commit protocol and the transfer handler, without worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwforge.errors import ConfigError
from hwforge.host.offload.storage import DeviceStore
from hwforge.host.offload.transfer import TransferHandler

NAMES = ("exp_avg",)
SIZES = {0: 5, 2: 3, 4: 5}


def _store(tmp_path: Path) -> DeviceStore:
    store = DeviceStore(tmp_path, 0)
    for sg, n in SIZES.items():
        store.write(sg, 0, "param", np.arange(n, dtype=np.float32) + sg)
        store.write(sg, 0, "exp_avg", np.zeros(n, np.float32))
    store.write_manifest(0, SIZES, ("param", *NAMES))
    return store


@pytest.mark.parametrize("overlap", [True, False])
def test_handler_updates_through_fixed_buffers(tmp_path: Path, overlap: bool) -> None:
    store = _store(tmp_path)
    h = TransferHandler(store, SIZES, NAMES, nbuf=2, overlap=overlap)
    h.reset(0)
    buffers = {id(b.param) for b in h._sets}
    for step in (1, 2, 3):
        h.schedule(step - 1, sorted(SIZES))
        for sg in sorted(SIZES):
            bs = h.acquire(sg)
            p, st = bs.views()
            assert len(p) == SIZES[sg] and id(bs.param) in buffers  # a view of a preallocated buffer
            st["exp_avg"] += 1
            p += st["exp_avg"]
            h.release(bs, step)
        h.drain()
    h.close()
    assert {id(b.param) for b in h._sets} == buffers and len(buffers) == (2 if overlap else 1)
    for sg, n in SIZES.items():
        out = np.empty(n, np.float32)
        store.read_into(sg, 3, "param", out)
        assert np.array_equal(out, np.arange(n, dtype=np.float32) + sg + 6)  # +1 +2 +3
    assert h.stats.bytes_read == h.stats.bytes_written == 3 * sum(SIZES.values()) * 4 * 2


def test_rollback_drops_uncommitted_versions_and_checks_the_committed_one(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write(0, 1, "param", np.ones(5, np.float32))  # a step-1 write that was never committed
    (store.dir / "sg00002.v00000001.param.f32.tmp").write_bytes(b"half")  # a write cut off by a kill
    store.rollback(0, SIZES, ("param", *NAMES))
    assert store.versions() == {0: set(SIZES)}
    assert not list(store.dir.glob("*.tmp")) and store.read_manifest()["step"] == 0
    store.path(4, 0, "exp_avg").write_bytes(b"\0" * 8)  # truncated: the checkpoint is damaged
    with pytest.raises(ConfigError, match=r"sg00004\.v00000000\.exp_avg\.f32 is missing or truncated"):
        store.rollback(0, SIZES, ("param", *NAMES))


def test_gc_keeps_the_committed_version(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for sg, n in SIZES.items():
        store.write(sg, 1, "param", np.ones(n, np.float32))
        store.write(sg, 1, "exp_avg", np.ones(n, np.float32))
    store.gc(1)
    assert store.versions() == {1: set(SIZES)}
