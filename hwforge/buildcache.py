"""Where hwforge keeps its content-addressed build caches, the lock that guards each build, and the pieces every
cache key is made of.

Verilator models, Amaranth conversions, g++-built HLS kernels and the UPMEM emulation binaries are all keyed by a
hash of what they were built from, so any number of processes (pytest workers, benchmark runs) can share one
cache; the lock makes sure two of them never build the same directory at the same time.

A key must cover *everything* that feeds a build, or an edit leaves a stale build in the cache. Two kinds of
input are easy to forget, so they have one shared implementation here:

- Python code: a generator's output depends on every hwforge module it imports, not only on its own package
  (the RTL imports ``hwforge.ir.quant``'s constants, for one). `sources_key` hashes the transitive closure of
  hwforge-internal imports, found statically with `ast` (`module_closure`), so no module has to be imported
  and a module nobody imports (``hwforge.host``) never invalidates a build.
- External tools: `tool_version` (cached per process) is the first line a tool prints for ``--version``.

`digest` combines the parts (length-prefixed, so ``("ab", "c")`` and ``("a", "bc")`` differ).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

#: The ``hwforge`` package directory (of the copy that is running, so a copy on PYTHONPATH hashes itself).
PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGE = PACKAGE_ROOT.name


def cache_root() -> Path:
    """Root of hwforge's build caches: ``$HWFORGE_BUILD_CACHE`` or ``~/.cache/hwforge``."""
    env = os.environ.get("HWFORGE_BUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hwforge"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created with its parents) for the ``with`` body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def digest(*parts: str | bytes) -> str:
    """sha256 (hex) of ``parts``, each length-prefixed so that different splits of the same bytes differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------- Python sources
def module_file(name: str) -> Path | None:
    """Source file of the hwforge module or package ``name`` (``hwforge.ir.quant``), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _package_modules(name: str) -> list[str]:
    """``name`` and, if it is a package, every module below it."""
    path = module_file(name)
    if path is None or path.name != "__init__.py":
        return [name] if path else []
    out = []
    for p in sorted(path.parent.rglob("*.py")):
        rel = p.relative_to(PACKAGE_ROOT).with_suffix("").parts
        mod = ".".join((PACKAGE, *rel[:-1])) if rel[-1] == "__init__" else ".".join((PACKAGE, *rel))
        if module_file(mod) is not None:  # skips directories without __init__.py (not importable as modules)
            out.append(mod)
    return out


def _parents(name: str) -> list[str]:
    """Packages Python imports before ``name`` (their ``__init__`` runs first)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports(name: str, path: Path) -> set[str]:
    """hwforge modules the source of ``name`` imports: ``import``/``from`` statements anywhere (function-local
    and ``TYPE_CHECKING`` ones too: better a needless rebuild than a stale one) and ``importlib.import_module``
    or ``__import__`` calls with a literal name. Names that are not modules resolve to their package."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.add(node.args[0].value)
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m) is not None}


@functools.cache
def module_closure(*roots: str) -> tuple[str, ...]:
    """Sorted names of the hwforge modules that importing ``roots`` can run: the roots (a package root means
    every module in it), every hwforge module they import, transitively, and the packages around each.

    Static, so it misses imports whose module name is computed at run time; hwforge's generators have none.
    """
    todo = [m for root in roots for m in _package_modules(root)]
    if not todo:
        raise ValueError(f"no hwforge module among {roots}")
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue
        todo += _parents(name)
        todo += sorted(_imports(name, path) - seen)
    return tuple(sorted(m for m in seen if module_file(m) is not None))


@functools.cache
def sources_key(*roots: str) -> str:
    """sha256 of the source text of `module_closure(*roots)` (module names and file bytes, sorted): changes
    when, and only when, a module the roots can import changes."""
    parts: list[str | bytes] = []
    for name in module_closure(*roots):
        path = module_file(name)
        assert path is not None
        parts += [name, path.read_bytes()]
    return digest(*parts)


# -------------------------------------------------------------------------------------------- tool versions
def run_version(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120) -> str | None:
    """First line ``argv`` prints (stdout, then stderr), skipping YoWASP's "Preparing..." notices; None if the
    program cannot be run, times out or prints nothing."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                             env=dict(env) if env is not None else None)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = [line for line in (out.stdout + out.stderr).strip().splitlines() if not line.startswith("Preparing")]
    return text[0].strip() if text else None


@functools.cache
def _tool_version(argv: tuple[str, ...], env: frozenset[tuple[str, str]] | None) -> str:
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
    if program is None or not os.access(program, os.X_OK):
        return "missing"
    line = run_version([program, *argv[1:]], None if env is None else {**os.environ, **dict(env)})
    return line or "unknown"


def tool_version(*argv: str, env: Mapping[str, str] | None = None) -> str:
    """What ``argv`` (e.g. ``"g++", "--version"``) says its version is, cached per process: its first output
    line, ``"missing"`` when the program is not found, ``"unknown"`` when it prints nothing or fails to run.
    ``env`` adds to this process's environment for the call."""
    if not argv:
        raise ValueError("tool_version needs a command")
    return _tool_version(tuple(argv), None if env is None else frozenset(env.items()))


def iter_files(paths: Iterable[Path], base: Path) -> list[str | bytes]:
    """``[relative name, bytes, ...]`` of ``paths`` sorted by name, for `digest` (data files a build reads)."""
    parts: list[str | bytes] = []
    for p in sorted(paths, key=lambda p: str(p.relative_to(base))):
        parts += [str(p.relative_to(base)), p.read_bytes()]
    return parts
