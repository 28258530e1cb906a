"""Host-side emulation of the UPMEM SDK: build DPU C and host C with gcc and run them, with DMA-rule checks.

The UPMEM SDK cannot be installed here, so hwforge ships its own implementation of the SDK headers (DPU side:
defs.h, mram.h, barrier.h, mutex.h, sem.h, alloc.h, perfcounter.h, attributes.h, plus hwforge_count.h; host side:
dpu.h) and of the host library (``emu/src/hwf_runtime.c`` for the DPU side, ``emu/src/hwf_host.c`` for the host
API). The same DPU C and host C that target a real UPMEM system compile against them with gcc:

- the DPU program becomes a shared object (``-DNR_TASKLETS=n -DHWFORGE_EMULATION -fPIC -shared``) with a small stub
  that tells the host library where its memories are; a linker-script fragment gathers ``__host``, ``__mram`` and
  ``__mram_noinit`` variables into their own sections, and the MRAM heap fills the rest of the 64 MB MRAM;
- the host program links the emulated host library and gets ``-DDPU_BINARY="<path of the .so>"``;
- ``dpu_load`` gives every DPU its own copy of the program, ``dpu_launch`` runs each DPU's tasklets as threads.

Builds are cached under ``cache_root()/upmem-emu/<sha256>`` (key: both sources, tasklets, defines, the flags and
recipe, the emulator's own C sources and headers, the gcc version; `hwforge.buildcache` helpers), so a test that
runs the same kernel twice compiles once. The WRAM size of the DPU program's globals is measured from the ELF
sections of its object file and checked against 64 KB when loaded.
See docs/upmem_emulation.md for the rules checked and the differences from hardware.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hwforge.buildcache import cache_root, digest, iter_files, locked, tool_version
from hwforge.errors import ConfigError, MissingToolError, VerificationError
from hwforge.toolchain import c_compiler, which

#: Tools of the real UPMEM SDK that ``hwforge build`` needs for DPU binaries.
SDK_TOOLS = ("dpu-upmem-dpurte-clang", "dpu-pkg-config")
MAX_TASKLETS = 24
MRAM_BYTES = 64 << 20
FAULT_PREFIX = "hwforge-dpu-fault:"
CFLAGS = ["-std=gnu11", "-O2", "-g0", "-Wall", "-Wno-unused-function", "-Wno-unused-variable"]
#: Extra flags for DPU code: position-independent; no common symbols (every global gets a section); only the ABI
#: alignment for data, so WRAM globals measure close to their DPU size (x86 would align big arrays to 32); signed
#: overflow wraps and byte buffers may be read as words (what DPU kernels rely on), whatever gcc's optimiser does.
DPU_CFLAGS = ["-DHWFORGE_EMULATION", "-fPIC", "-fno-common", "-malign-data=abi", "-fwrapv", "-fno-strict-aliasing"]
_HOST_LIBRARY = ("hwf_runtime", "hwf_host")  # emu/src/*.c linked into every host program
_BUILD_ABI = "1"  # bump when the build recipe changes in a way the hashed files do not show


class DpuFaultError(VerificationError):
    """The emulated DPU broke a hardware rule (DMA, WRAM, tasklets) or crashed; the message is the fault line.

    ``stats`` holds the counts written up to the fault (with ``"fault"`` set), or {} when none were written.
    """

    def __init__(self, message: str, stats: dict | None = None) -> None:
        super().__init__(message)
        self.stats = stats or {}


@dataclass(frozen=True)
class EmulationBuild:
    """A compiled DPU program and host program, ready for `run_emulation`."""

    build_dir: Path
    dpu_binary: Path
    host_binary: Path
    nr_tasklets: int
    wram_globals_bytes: int
    mram_variables_bytes: int
    key: str


@dataclass
class EmulationRun:
    """Outcome of one host-program run: exit status, output, and the emulator's counts (``stats``)."""

    returncode: int
    stdout: str
    stderr: str
    stats: dict = field(default_factory=dict)


def emu_dir() -> Path:
    """Directory of the emulation headers (``include``) and C sources (``src``) shipped with hwforge."""
    return Path(str(resources.files("hwforge.upmem.emu")))


def include_dir() -> Path:
    """``-I`` directory with the emulated SDK headers (DPU side and host side)."""
    return emu_dir() / "include"


def find_sdk() -> dict[str, str] | None:
    """Paths of the real UPMEM SDK tools when all are on PATH, else None."""
    found = {tool: which(tool) for tool in SDK_TOOLS}
    if any(path is None for path in found.values()):
        return None
    return {tool: str(path) for tool, path in found.items()}


def missing_sdk_tools() -> list[str]:
    """Names of the UPMEM SDK tools not on PATH (empty when a real DPU build is possible)."""
    return [tool for tool in SDK_TOOLS if which(tool) is None]


def _gcc() -> str:
    if which("gcc") is None and which("cc") is None:
        raise MissingToolError("gcc not found on PATH: the UPMEM emulation compiles DPU and host C with gcc")
    return c_compiler()


def _emu_files() -> list[Path]:
    root = emu_dir()
    return sorted(p for sub in ("include", "src") for p in (root / sub).iterdir() if p.is_file())


def _toolchain_parts(gcc: str) -> list[str | bytes]:
    """What every emulation build depends on besides its own sources: the recipe, the gcc that compiles it,
    the common flags and the emulator's own C sources and headers."""
    return [_BUILD_ABI, tool_version(gcc, "--version"), " ".join(CFLAGS), *iter_files(_emu_files(), emu_dir())]


def _define_flags(defines: dict[str, str] | None) -> list[str]:
    flags = []
    for name, value in sorted((defines or {}).items()):
        if not name.isidentifier():
            raise ConfigError(f"build_emulation: define {name!r} is not a C identifier")
        if name in ("NR_TASKLETS", "DPU_BINARY", "HWFORGE_EMULATION"):
            raise ConfigError(f"build_emulation: {name} is set by the emulation build; pass nr_tasklets instead"
                              if name == "NR_TASKLETS" else f"build_emulation: {name} is set by the emulation build")
        flags.append(f"-D{name}" if value is None or value == "" else f"-D{name}={value}")
    return flags


def elf_section_sizes(obj: Path) -> dict[str, int]:
    """WRAM and MRAM bytes of a relocatable x86-64 ELF object, from its section headers.

    WRAM: every allocated, non-executable section except MRAM sections, notes and unwind tables (data, bss, rodata,
    ``__host`` variables), laid out one after another at their alignment. MRAM: the ``__mram`` and ``__mram_noinit``
    sections. x86-64 aligns arrays of 16 bytes or more to 16, so the WRAM figure can exceed the DPU's by a few bytes
    per section.
    """
    data = obj.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ConfigError(f"{obj} is not a 64-bit ELF object")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = headers[shstrndx][4]

    def name_of(off: int) -> str:
        end = data.index(b"\0", strtab_off + off)
        return data[strtab_off + off:end].decode()

    wram = mram = 0
    for h in headers:
        name, flags, size, align = name_of(h[0]), h[2], h[5], max(1, h[8])
        if not flags & 0x2 or flags & 0x4:  # SHF_ALLOC, not SHF_EXECINSTR
            continue
        if name.startswith((".data.hwf_mram", ".bss.hwf_mram")):
            mram = (mram + align - 1) // align * align + size
        elif not name.startswith((".eh_frame", ".note", ".comment", ".group")):
            wram = (wram + align - 1) // align * align + size
    return {"wram": wram, "mram": mram}


def _run(cmd: list[str], what: str, cwd: Path) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    if out.returncode != 0:
        first = next((line for line in out.stderr.splitlines() if "error" in line), out.stderr.strip()[:300])
        (cwd / f"{what.replace(' ', '_')}.log").write_text(" ".join(cmd) + "\n" + out.stderr)
        raise ConfigError(f"{what} does not compile: {first.strip()} (log in {cwd})")


def build_emulation(dpu_source: str, host_source: str, nr_tasklets: int, out_dir: Path | None = None,
                    defines: dict[str, str] | None = None) -> EmulationBuild:
    """Compile the DPU program to a shared object and the host program to an executable, or reuse a cached build.

    Both sources are compiled with ``-DNR_TASKLETS=n`` and ``defines``; the host program also gets
    ``-DDPU_BINARY="<absolute path of the .so>"``. ``out_dir`` fixes the build directory (default: the cache).
    Raises ConfigError for more than 24 tasklets, C that does not compile, or MRAM variables above 64 MB.
    """
    if not 1 <= int(nr_tasklets) <= MAX_TASKLETS:
        raise ConfigError(f"nr_tasklets = {nr_tasklets}: a DPU runs 1..{MAX_TASKLETS} tasklets")
    gcc = _gcc()
    flags = _define_flags(defines)
    key = digest("upmem-emu", *_toolchain_parts(gcc), " ".join(DPU_CFLAGS), dpu_source, host_source,
                 str(int(nr_tasklets)), "\0".join(flags))[:24]
    build_dir = Path(out_dir) if out_dir else cache_root() / "upmem-emu" / key
    build_dir = build_dir.resolve()
    with locked(build_dir.parent / (build_dir.name + ".lock")):
        meta_path = build_dir / "build.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("key") == key and (build_dir / "dpu.so").exists() and (build_dir / "host").exists():
                return _as_build(build_dir, meta)
        build_dir.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)
        meta = _compile(gcc, build_dir, dpu_source, host_source, int(nr_tasklets), flags)
        meta["key"] = key
        meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return _as_build(build_dir, meta)


def _compile(gcc: str, bdir: Path, dpu_source: str, host_source: str, nr_tasklets: int,
             flags: list[str]) -> dict:
    inc = include_dir()
    src = emu_dir() / "src"
    (bdir / "dpu.c").write_text(dpu_source)
    (bdir / "host.c").write_text(host_source)
    common = [*CFLAGS, f"-DNR_TASKLETS={nr_tasklets}", *flags, f"-I{inc}"]
    dpu_flags = [*common, *DPU_CFLAGS]
    _run([gcc, *dpu_flags, "-c", "dpu.c", "-o", "dpu.o"], "DPU program", bdir)
    sizes = elf_section_sizes(bdir / "dpu.o")
    heap = MRAM_BYTES - sizes["mram"]
    if heap < 8:
        raise ConfigError(f"MRAM overflow: the DPU program's MRAM variables take {sizes['mram']} bytes "
                          f"> {MRAM_BYTES} bytes of MRAM")
    _run([gcc, *dpu_flags, f"-I{src}", f"-DHWF_WRAM_GLOBALS_BYTES={sizes['wram']}u",
          f"-DHWF_MRAM_HEAP_BYTES={heap // 8 * 8}ull", "-c", str(src / "hwf_dpu_stub.c"), "-o", "stub.o"],
         "DPU stub", bdir)
    _run([gcc, "-shared", "-o", "dpu.so", "dpu.o", "stub.o", f"-Wl,-T,{src / 'hwf_mram.ld'}", "-Wl,-Bsymbolic",
          "-Wl,-z,now"], "DPU program link", bdir)
    dpu_binary = (bdir / "dpu.so").resolve()
    _run([gcc, *common, f'-DDPU_BINARY="{dpu_binary}"', "-pthread", "host.c", *map(str, _host_library(gcc)), "-o",
          "host", f"-Wl,--dynamic-list={src / 'hwf_exports.list'}", "-ldl"], "host program", bdir)
    return {"nr_tasklets": nr_tasklets, "wram_globals_bytes": sizes["wram"], "mram_variables_bytes": sizes["mram"]}


def _host_library(gcc: str) -> list[Path]:
    """The emulated host library (DPU runtime + host API) as object files, compiled once per version and gcc."""
    lib_dir = cache_root() / "upmem-emu" / f"lib-{digest('upmem-emu-lib', *_toolchain_parts(gcc))[:24]}"
    objs = [lib_dir / f"{name}.o" for name in _HOST_LIBRARY]
    with locked(lib_dir.parent / (lib_dir.name + ".lock")):
        if not all(o.exists() for o in objs):
            lib_dir.mkdir(parents=True, exist_ok=True)
            src = emu_dir() / "src"
            for name, obj in zip(_HOST_LIBRARY, objs, strict=True):
                _run([gcc, *CFLAGS, "-pthread", f"-I{include_dir()}", f"-I{src}", "-c", str(src / f"{name}.c"),
                      "-o", f"{name}.o.tmp"], "emulated host library", lib_dir)
                (lib_dir / f"{name}.o.tmp").rename(obj)
    return objs


def _as_build(bdir: Path, meta: dict) -> EmulationBuild:
    return EmulationBuild(build_dir=bdir, dpu_binary=bdir / "dpu.so", host_binary=bdir / "host",
                          nr_tasklets=meta["nr_tasklets"], wram_globals_bytes=meta["wram_globals_bytes"],
                          mram_variables_bytes=meta["mram_variables_bytes"], key=meta["key"])


def run_emulation(build: EmulationBuild, args: list[str], cwd: Path, timeout: float = 600,
                  env: dict[str, str] | None = None) -> EmulationRun:
    """Run the host program in ``cwd``; return its status, output and the emulator's stats.

    Raises DpuFaultError when the emulator reports a fault (its one line is the message) or the run times out.
    A non-zero exit without a fault (e.g. the host program's own check failed) is returned, not raised.
    """
    cwd = Path(cwd)
    with tempfile.TemporaryDirectory(prefix="hwforge_emu_") as tmp:
        stats_path = Path(tmp) / "stats.json"
        run_env = {**os.environ, **(env or {}), "HWFORGE_DPU_STATS": str(stats_path), "TMPDIR": tmp}
        try:
            out = subprocess.run([str(build.host_binary), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                                 timeout=timeout, env=run_env, check=False)
        except subprocess.TimeoutExpired:
            raise DpuFaultError(f"hwforge-dpu-fault: host program {build.host_binary} timed out after {timeout:g} s "
                                "(a tasklet loops forever or the host waits)") from None
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    fault = next((line.strip() for line in out.stderr.splitlines() if line.startswith(FAULT_PREFIX)), None)
    if fault:
        raise DpuFaultError(fault, stats)
    if out.returncode < 0:
        raise DpuFaultError(f"{FAULT_PREFIX} host program killed by signal {-out.returncode}: "
                            f"{out.stderr.strip()[-300:]}", stats)
    if stats:
        stats["dpus"] = dpu_totals(stats)
    return EmulationRun(returncode=out.returncode, stdout=out.stdout, stderr=out.stderr, stats=stats)


def dpu_totals(stats: dict) -> list[dict]:
    """Per-DPU counts summed over all launches: ``[{"dpu": d, "tasklets": [{kind: n}], "total": {kind: n}}]``."""
    kinds = stats.get("counters", [])
    per: dict[int, list[dict[str, int]]] = {}
    for launch in stats.get("launches", []):
        for rec in launch["dpus"]:
            rows = per.setdefault(rec["dpu"], [])
            for t, counts in enumerate(rec["tasklets"]):
                if t >= len(rows):
                    rows.append(dict.fromkeys(kinds, 0))
                for k in kinds:
                    rows[t][k] += counts.get(k, 0)
    return [{"dpu": d, "tasklets": rows, "total": {k: sum(r[k] for r in rows) for k in kinds}}
            for d, rows in sorted(per.items())]


def copy_headers(dest: Path) -> list[Path]:
    """Copy ``hwforge_count.h`` (the only hwforge header a real SDK build needs) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "hwforge_count.h"
    shutil.copyfile(include_dir() / "hwforge_count.h", target)
    return [target]
