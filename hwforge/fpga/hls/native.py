"""`NativeUpdater`: the generated HLS kernel compiled by g++ (C simulation) and called through ctypes.

Why ctypes on the kernel itself: the updater the storage-offloaded trainer runs on the host is then the very
code that goes to the FPGA (same C++ file, only the beat types differ), so the trainer exercises and verifies
the hardware's arithmetic. ctypes.CDLL releases the GIL during the call, so worker threads update in parallel.

Libraries are cached under ``cache_root()/hls/<sha256 of source, flags and g++ version>``
(``$HWFORGE_BUILD_CACHE``, as the Verilator builds), built into a temporary file and renamed, under a file
lock, so concurrent processes never see half a library. A ``build.json`` beside the library records the
kernel's source hash and code-generation options; `NativeUpdater.load` re-derives the source from the spec and
refuses a library built for another one.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.buildcache import cache_root, digest, locked, tool_version
from hwforge.errors import ConfigError, MissingToolError
from hwforge.fpga.hls.emit import HlsOptions, kernel_model, kernel_source
from hwforge.ir.optim_lowering import lower_optimizer

CXXFLAGS = ("-std=c++17", "-O2", "-ffp-contract=off", "-fno-strict-aliasing", "-shared", "-fPIC")
#: Bump when `compile_kernel` builds differently in a way the key does not show.
BUILD_RECIPE = "1"


@functools.cache
def cxxflags() -> tuple[str, ...]:
    """`CXXFLAGS`, plus ``-mfma -mf16c`` when this CPU has them: fmaf and fp16 conversions become single
    instructions (about 4x faster) with bit-identical results (both are correctly rounded either way, and
    ``-ffp-contract=off`` still forbids contracting anything else). The flags are part of the cache key."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return CXXFLAGS
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return CXXFLAGS + (("-mfma", "-mf16c") if {"fma", "f16c"} <= flags else ())


def hls_cache_dir() -> Path:
    return cache_root() / "hls"


def source_digest(name: str, header: str, source: str) -> str:
    """The build key: kernel text, compiler flags and the g++ that compiles them (`hwforge.buildcache`)."""
    from hwforge.toolchain import cxx_compiler

    return digest("hls-native", BUILD_RECIPE, name, header, source, " ".join(cxxflags()),
                  tool_version(cxx_compiler(), "--version"))


def compile_kernel(name: str, header: str, source: str, cache_dir: Path | None = None,
                   meta: Mapping[str, Any] | None = None) -> Path:
    """g++-compile a kernel (header + source) into a shared library, reusing a cached build; return its path."""
    from hwforge.toolchain import which

    gxx = which("g++")
    if gxx is None:
        raise MissingToolError("g++: not found; the smartupdate C simulation needs gcc/g++ (install them from "
                               "your OS packages)")
    digest = source_digest(name, header, source)
    build_dir = Path(cache_dir) if cache_dir else hls_cache_dir()
    build_dir = build_dir / digest[:24]
    lib = build_dir / f"lib{name}.so"
    with locked(build_dir.parent / f"{build_dir.name}.lock"):
        if lib.exists():
            return lib
        build_dir.mkdir(parents=True, exist_ok=True)
        (build_dir / f"{name}.h").write_text(header)
        (build_dir / f"{name}.cpp").write_text(source)
        fd, tmp = tempfile.mkstemp(prefix=f".lib{name}.", suffix=".so", dir=build_dir)
        os.close(fd)
        proc = subprocess.run([gxx, *cxxflags(), "-o", tmp, str(build_dir / f"{name}.cpp")],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise ConfigError(f"g++ failed on the generated kernel {build_dir / (name + '.cpp')}: {first}")
        (build_dir / "build.json").write_text(json.dumps({"kernel": name, "source_sha256": digest,
                                                          "cxxflags": list(cxxflags()), **(meta or {})},
                                                         sort_keys=True, indent=1) + "\n")
        os.replace(tmp, lib)
    return lib


def _vector(x: Any, what: str, dtype: type, n: int | None = None, writeable: bool = False) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.dtype(dtype) or x.ndim != 1:
        got = f"{x.dtype}[{', '.join(map(str, x.shape))}]" if isinstance(x, np.ndarray) else type(x).__name__
        raise ConfigError(f"{what} must be a 1-D numpy {np.dtype(dtype).name} array, got {got}")
    if n is not None and x.shape[0] != n:
        raise ConfigError(f"{what} has {x.shape[0]} elements, param has {n}")
    if not x.flags.c_contiguous or (writeable and not x.flags.writeable):
        raise ConfigError(f"{what} must be C-contiguous{' and writeable' if writeable else ''}")
    return x


class NativeUpdater:
    """The optimizer kernel for one `OptimizerSpec`, compiled and loaded; `step` updates numpy arrays in place."""

    def __init__(self, library_path: Path, spec: Any, options: HlsOptions) -> None:
        self.spec = spec
        self.options = options
        self.library_path = Path(library_path)
        self._model = kernel_model(lower_optimizer(spec, 1), options)
        self._lib = ctypes.CDLL(str(self.library_path))  # CDLL: the GIL is released during calls
        self._fn = getattr(self._lib, f"hwforge_csim_{self._model.name}")
        argtypes: list[Any] = [ctypes.c_void_p] * len(self._model.csim_params)
        if self._model.topk:
            argtypes.append(ctypes.c_uint)
        argtypes += [ctypes.c_float] * len(self._model.scalars) + [ctypes.c_uint]
        self._fn.argtypes = argtypes
        self._fn.restype = ctypes.c_int

    # -------------------------------------------------------------------------------------- construction
    @classmethod
    def build(cls, spec: Any, cache_dir: str | os.PathLike | None = None,
              options: HlsOptions | None = None) -> NativeUpdater:
        """Emit the HLS C++ for ``spec``, g++-compile it (cached by source sha256) and load it."""
        options = options or HlsOptions()
        name, header, source = kernel_source(lower_optimizer(spec, 1), options, spec)
        meta = {"spec": json.loads(spec.to_json()), "options": dataclasses.asdict(options)}
        lib = compile_kernel(name, header, source, Path(cache_dir) if cache_dir else None, meta)
        return cls(lib, spec, options)

    @classmethod
    def from_source(cls, spec: Any, name: str, header: str, source: str, options: HlsOptions,
                    cache_dir: str | os.PathLike | None = None) -> NativeUpdater:
        """Compile and load given kernel text (an artifact's own ``hls/`` files) for ``spec``."""
        lib = compile_kernel(name, header, source, Path(cache_dir) if cache_dir else None,
                             {"spec": json.loads(spec.to_json()), "options": dataclasses.asdict(options)})
        return cls(lib, spec, options)

    @classmethod
    def load(cls, library_path: str | os.PathLike, spec: Any) -> NativeUpdater:
        """Load a library `build` produced (e.g. in another process); it must have been built for ``spec``."""
        path = Path(library_path)
        meta_path = path.parent / "build.json"
        try:
            meta = json.loads(meta_path.read_text())
            options = HlsOptions(**meta["options"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}: not a NativeUpdater library (no readable {meta_path.name}: {e})") from None
        name, header, source = kernel_source(lower_optimizer(spec, 1), options, spec)
        if not path.is_file() or source_digest(name, header, source) != meta.get("source_sha256"):
            raise ConfigError(f"{path} was not built for this optimizer spec ({spec.kind}, "
                              f"grad_format={spec.grad_format}, half_copy={spec.half_copy}) with this machine's "
                              "compiler flags; rebuild it with NativeUpdater.build")
        return cls(path, spec, options)

    # ----------------------------------------------------------------------------------------------- use
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.spec.state_names)

    def step(self, param: np.ndarray, states: Mapping[str, np.ndarray], grad: Any, step: int,
             loss_scale: float = 1.0, lr: float | None = None) -> np.ndarray | None:
        """One optimizer step on ``param`` and ``states`` in place; returns the fp16 copy when ``half_copy``."""
        spec = self.spec
        _vector(param, "param", np.float32, writeable=True)
        n = param.shape[0]
        if n < 1 or n >= 2**31:
            raise ConfigError(f"param must have 1 .. 2**31-1 elements, got {n}")
        if set(states) != set(self.state_names):
            raise ConfigError(f"states must have exactly the keys {self.state_names}, got {tuple(sorted(states))}")
        arrays = [param] + [_vector(states[s], f"state {s!r}", np.float32, n, True) for s in self.state_names]
        gdtype = np.float16 if spec.grad_dtype == "f16" else np.float32
        extra: list[Any] = []
        if spec.topk:
            if not (isinstance(grad, tuple) and len(grad) == 2):
                raise ConfigError(f"grad_format={spec.grad_format}: grad must be (indices int32, values)")
            idx = _vector(np.ascontiguousarray(grad[0]), "top-k indices", np.int32)
            vals = _vector(np.ascontiguousarray(grad[1]), "top-k values", gdtype, idx.shape[0])
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ConfigError(f"top-k indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
            if idx.size > 1 and np.any(idx[1:] < idx[:-1]):  # the kernel walks ascending indices
                order = np.argsort(idx, kind="stable")
                idx, vals = idx[order], vals[order]
            arrays += [idx, vals]
            extra = [idx.shape[0]]
        else:
            arrays.append(_vector(grad, "grad", gdtype, n))
        half = np.empty(n, dtype=np.float16) if spec.half_copy else None
        if half is not None:
            arrays.append(half)
        scalars = spec.host_scalars(step, lr=lr, loss_scale=loss_scale)
        rc = self._fn(*[a.ctypes.data for a in arrays], *extra, *scalars.values(), n)
        if rc != 0:
            raise ConfigError(f"kernel {self._model.name} returned {rc}")
        return half
