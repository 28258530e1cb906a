"""The artifact directory that `hwforge compile` writes and every other verb reads.

Why a class instead of writing files directly: the contract (docs/ARCHITECTURE.md, "Artifacts") is that an
artifact is all-or-nothing and byte-identical for the same inputs. `ArtifactWriter` stages every file in a
temporary sibling directory, writes `manifest.json` last (with each file's sha256), and renames the staging
directory into place, so a crash or a bad option never leaves half an artifact, and nothing time- or
path-dependent enters a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.errors import ConfigError

SCHEMA = 1
MANIFEST = "manifest.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps_json(obj: Any) -> str:
    """Canonical JSON for files inside artifacts: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def npy_bytes(array: np.ndarray) -> bytes:
    """`.npy` bytes of an array (no pickle, so object arrays are refused)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class ArtifactWriter:
    """Collects an artifact's files in memory-order and commits them atomically to ``out_dir``."""

    def __init__(self, out_dir: Path, target: str):
        self.out_dir = Path(out_dir)
        self.target = target
        self._files: dict[str, bytes] = {}

    def add_bytes(self, relpath: str, data: bytes) -> None:
        if relpath in self._files:
            raise ValueError(f"artifact file {relpath} written twice")
        if relpath == MANIFEST or relpath.startswith("/") or ".." in Path(relpath).parts:
            raise ValueError(f"invalid artifact path {relpath!r}")
        self._files[relpath] = data

    def add_text(self, relpath: str, text: str) -> None:
        self.add_bytes(relpath, text.encode())

    def add_json(self, relpath: str, obj: Any) -> None:
        self.add_text(relpath, dumps_json(obj))

    def add_npy(self, relpath: str, array: np.ndarray) -> None:
        self.add_bytes(relpath, npy_bytes(array))

    def add_tree(self, prefix: str, directory: Path) -> None:
        """Add every file below ``directory`` (sorted) under ``prefix``."""
        for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            rel = path.relative_to(directory).as_posix()
            self.add_bytes(f"{prefix}/{rel}" if prefix else rel, path.read_bytes())

    def commit(self, manifest_fields: dict[str, Any]) -> Path:
        """Write everything plus the manifest into a staging dir, then move it to ``out_dir``."""
        files = {name: {"sha256": sha256_bytes(data), "bytes": len(data)}
                 for name, data in sorted(self._files.items())}
        manifest = {"schema": SCHEMA, "target": self.target, **manifest_fields, "files": files}
        parent = self.out_dir.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        if self.out_dir.exists() and not (self.out_dir / MANIFEST).exists() and any(self.out_dir.iterdir()):
            raise ConfigError(f"{self.out_dir}: exists and is not a hwforge artifact; refusing to overwrite it")
        staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", dir=parent))
        try:
            for name, data in self._files.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            (staging / MANIFEST).write_text(dumps_json(manifest))
            os.chmod(staging, 0o755)
            if self.out_dir.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.old.", dir=parent))
                os.replace(self.out_dir, trash / "old")
                os.replace(staging, self.out_dir)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(staging, self.out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.out_dir


def read_manifest(artifact_dir: Path, check_hashes: bool = True) -> dict[str, Any]:
    """Load and validate an artifact's manifest; a missing, foreign or tampered artifact is a ConfigError."""
    path = Path(artifact_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{artifact_dir}: not a hwforge artifact (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: malformed manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise ConfigError(f"{path}: unsupported artifact schema {manifest.get('schema')!r}, expected {SCHEMA}")
    for key in ("target", "files", "options"):
        if key not in manifest:
            raise ConfigError(f"{path}: manifest has no {key!r}")
    if check_hashes:
        for name, meta in manifest["files"].items():
            file = Path(artifact_dir) / name
            if not file.is_file():
                raise ConfigError(f"{artifact_dir}: artifact file {name} is missing")
            if sha256_bytes(file.read_bytes()) != meta["sha256"]:
                raise ConfigError(f"{artifact_dir}: artifact file {name} was modified (sha256 mismatch)")
    return manifest


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read array ({exc})") from None


def write_report(artifact_dir: Path, name: str, obj: Any) -> Path:
    """Write ``reports/NAME.json`` after compile time (verify/build results, not in the manifest)."""
    path = Path(artifact_dir) / "reports" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps_json(obj))
    os.replace(tmp, path)
    return path
