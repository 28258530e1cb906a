"""The repository's documentation stands on its own: nothing points outside the repo, and every repo path that
docs/ARCHITECTURE.md names exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"

# Documents that live outside the repository (a user who clones hwforge does not have them). Spelled in pieces so
# that this file does not match itself.
OUTSIDE = ("../" + "shared", "DESIGN" + ".md", "shared/" + "TOOLCHAIN.md")

PATH_PREFIXES = ("hwforge/", "tests/", "benchmarks/", "docs/", "examples/")


def _repo_files() -> list[Path]:
    """Files git tracks, plus new files not yet added that git would not ignore (they are about to be tracked)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    names = sorted({name for name in out.decode().split("\0") if name})
    return [REPO / name for name in names if (REPO / name).is_file()]  # deleted-but-tracked files are skipped


def test_no_file_refers_to_documents_outside_the_repo() -> None:
    offenders = []
    for path in _repo_files():
        data = path.read_bytes()
        for needle in OUTSIDE:
            if needle.encode() in data:
                line = data[:data.index(needle.encode())].count(b"\n") + 1
                offenders.append(f"{path.relative_to(REPO)}:{line}: {needle}")
    assert not offenders, "references to documents outside the repo:\n" + "\n".join(offenders)


def test_architecture_paths_exist() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    paths = sorted({m for m in re.findall(r"`([^`\s]+)`", text) if m.startswith(PATH_PREFIXES)})
    assert len(paths) > 30, "docs/ARCHITECTURE.md should map the repository with repo paths"
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, "docs/ARCHITECTURE.md names paths that do not exist: " + ", ".join(missing)
