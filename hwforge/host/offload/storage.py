"""One emulated storage device's directory: versioned raw fp32 state files and an atomic manifest.

Commit protocol (what makes a SIGKILL at any instant harmless):
- Step t never overwrites step t-1: it writes new files ``sg<s>.v<t>.<name>.f32`` (to a ``.tmp`` name, renamed into
  place), so the last committed version is intact whatever happens to step t.
- When all of a device's subgroups are written for step t, the device's ``manifest.json`` is replaced atomically
  (write to a temporary name, ``os.replace``): the device-level ack.
- The trainer then replaces the global ``commit.json`` (step t, data position, RNG states): the step is done.
- Version t-1 is deleted only when step t+1 begins, i.e. after the global record for t is durable.
- On restart every device rolls back to the global commit c: deletes temporary files and versions > c, checks
  that every subgroup's version-c files are complete, and rewrites its manifest to c.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.errors import ConfigError

_FILE = re.compile(r"^sg(\d{5})\.v(\d{8})\.([a-z0-9_]+)\.f32$")


def atomic_write_bytes(path: Path, data: bytes | memoryview, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` so that a reader sees either the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_json(path: Path, obj: Any, fsync: bool = False) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), fsync)


class DeviceStore:
    """Files of one device: ``<root>/dev<i>/sg<s>.v<step>.<name>.f32`` (raw little-endian float32)."""

    def __init__(self, root: Path, device: int, fsync: bool = False) -> None:
        self.device = device
        self.dir = Path(root) / f"dev{device:02d}"
        self.fsync = fsync
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, sg: int, version: int, name: str) -> Path:
        return self.dir / f"sg{sg:05d}.v{version:08d}.{name}.f32"

    def read_into(self, sg: int, version: int, name: str, out: np.ndarray) -> int:
        """Read one file straight into the preallocated buffer ``out`` (no allocation); returns bytes read."""
        path = self.path(sg, version, name)
        view = memoryview(out).cast("B")
        with open(path, "rb", buffering=0) as f:
            got = f.readinto(view)
        if got != out.nbytes:
            raise ConfigError(f"offload storage: {path} holds {got} bytes, expected {out.nbytes}")
        return got

    def write(self, sg: int, version: int, name: str, data: np.ndarray) -> int:
        """Write one state file atomically (temporary name, then rename); returns bytes written."""
        atomic_write_bytes(self.path(sg, version, name), memoryview(np.ascontiguousarray(data, np.float32)),
                           self.fsync)
        return data.nbytes

    def write_manifest(self, step: int, sizes: dict[int, int], names: tuple[str, ...]) -> None:
        """The device-level ack of ``step``: every listed file exists with the listed size."""
        files = {str(sg): {name: n * 4 for name in names} for sg, n in sorted(sizes.items())}
        atomic_write_json(self.dir / "manifest.json", {"device": self.device, "step": step, "files": files},
                          self.fsync)

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.dir / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else None

    def versions(self) -> dict[int, set[int]]:
        """``{version: {subgroups}}`` of the complete state files present."""
        out: dict[int, set[int]] = {}
        for p in self.dir.iterdir():
            m = _FILE.match(p.name)
            if m:
                out.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
        return out

    def gc(self, keep_from: int) -> None:
        """Delete versions older than ``keep_from`` (called once the global commit of ``keep_from`` is durable)."""
        for p in list(self.dir.iterdir()):
            m = _FILE.match(p.name)
            if m and int(m.group(2)) < keep_from:
                p.unlink()

    def rollback(self, step: int, sizes: dict[int, int], names: tuple[str, ...]) -> None:
        """Return the device to global commit ``step``: drop later and partial files, check ``step`` is whole."""
        for p in list(self.dir.iterdir()):
            m = _FILE.match(p.name)
            if p.name.endswith(".tmp") or (m and int(m.group(2)) > step):
                p.unlink()
        for sg, n in sizes.items():
            for name in names:
                path = self.path(sg, step, name)
                if not path.exists() or path.stat().st_size != n * 4:
                    raise ConfigError(f"offload storage: {path} is missing or truncated; the checkpoint at step "
                                      f"{step} is damaged")
        self.write_manifest(step, sizes, names)
