"""Build and run a `mem_tb.v.j2` testbench on Verilator through cocotb's runner, with a build cache.

Verilator builds take tens of seconds, so build directories are keyed by the sha256 of everything that
affects the binary (`build_key`: all Verilog text, the testbench included; the build arguments and recipe; the
Verilator version and root; cocotb, whose runner writes the Makefile and whose libraries are linked in; the g++
Verilator compiles with) under a cache root (``$HWFORGE_BUILD_CACHE`` or ``~/.cache/hwforge/verilator``). A
finished build leaves a ``.complete`` marker; later runs skip straight to the simulation, and a file lock keeps
concurrent processes from building the same directory twice. Run-time settings (memory image, seed, stalls,
latency) are plusargs, so they never cause a rebuild.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from hwforge.buildcache import cache_root, digest, locked, tool_version
from hwforge.errors import MissingToolError
from hwforge.generated import header
from hwforge.toolchain import activate_verilator, cxx_compiler, verilator_version

TB_NAME = "hwforge_tb"
BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-initial", "0"]
TEST_MODULE = "hwforge.rtl.tb.cocotb_mem_tb"
DEFAULT_DEPTH = 1 << 22
#: Bump when `build` changes in a way the key does not show (other runner arguments, extra build steps).
BUILD_RECIPE = "1"


def default_cache_dir() -> Path:
    """Where Verilator builds live, one directory per `build_key`."""
    return cache_root() / "verilator"


def render_mem_tb(dut: str, counters: list[str], bus_width: int, depth: int = DEFAULT_DEPTH) -> str:
    """The wrapper Verilog for a DUT with ``start``/``done``/``mem`` ports and 32-bit counter outputs."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("hwforge.rtl.tb", "."), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    config = {"dut": dut, "counters": list(counters), "bus_width": bus_width, "depth": depth, "name": TB_NAME}
    return env.get_template("mem_tb.v.j2").render(
        name=TB_NAME, dut=dut, counters=counters, bus_width=bus_width, depth=depth,
        addr_bits=max(1, (depth - 1).bit_length()), payload_width=33 + bus_width,
        header=header("hwforge.rtl.tb.verilator.render_mem_tb", config))


def build_key(sources: dict[str, str], root: Path) -> str:
    """sha256 of everything a Verilator build of ``sources`` depends on (see the module docstring)."""
    import cocotb

    parts: list[str | bytes] = ["verilator-build", BUILD_RECIPE, TB_NAME, " ".join(BUILD_ARGS), str(root),
                                verilator_version(), f"cocotb {cocotb.__version__} {Path(cocotb.__file__).parent}",
                                tool_version(cxx_compiler(), "--version")]
    for name in sorted(sources):
        parts += [name, sources[name]]
    return digest(*parts)


def build(sources: dict[str, str], cache_dir: Path | None = None) -> Path:
    """Build (or reuse) the Verilator model for ``sources`` (file name -> Verilog text); return its dir."""
    root = activate_verilator()
    from cocotb_tools.runner import get_runner

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    build_dir = cache / build_key(sources, root)[:24]
    with locked(cache / (build_dir.name + ".lock")):
        if (build_dir / ".complete").exists():
            return build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in sorted(sources.items()):
            p = build_dir / name
            p.write_text(text)
            paths.append(p)
        runner = get_runner("verilator")
        try:
            runner.build(sources=paths, hdl_toplevel=TB_NAME, build_dir=build_dir, build_args=BUILD_ARGS,
                         always=True, log_file=build_dir / "build.log")
        except SystemExit as e:  # the runner exits on tool failures
            raise MissingToolError(f"verilator build failed in {build_dir} (see build.log): {e}") from None
        (build_dir / ".complete").write_text("ok\n")
    return build_dir


@dataclass
class TbRun:
    """Outcome of one simulation: counters, flags and the dumped memory words."""

    result: dict
    dump: list[int]
    work_dir: Path


def _read_hex(path: Path) -> list[int]:
    words = []
    for line in path.read_text().split("\n"):
        line = line.strip()
        if not line or line.startswith("//") or line.startswith("@"):
            continue
        words.extend(int(tok, 16) for tok in line.split() if not tok.startswith("//"))
    return words


def run_mem_tb(build_dir: Path, mem_hex: Path, counters: list[str], *, dump_range: tuple[int, int],
               seed: int = 0, stall_prob: float = 0.0, latency: int = 1, timeout_cycles: int = 10_000_000,
               work_dir: Path | None = None) -> TbRun:
    """Run the built testbench once on ``mem_hex``; returns counters and the dumped memory range."""
    activate_verilator()
    from cocotb_tools.runner import get_runner

    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="hwforge_sim_"))
    work.mkdir(parents=True, exist_ok=True)
    result_path = work / "result.json"
    dump_path = work / "mem_dump.hex"
    for p in (result_path, dump_path):
        p.unlink(missing_ok=True)
    plusargs = [f"+mem={Path(mem_hex).resolve()}", f"+dump={dump_path}", f"+result={result_path}",
                f"+seed={int(seed)}", f"+latency={int(latency)}",
                f"+stall_permille={round(float(stall_prob) * 1000)}", f"+dump_lo={dump_range[0]}",
                f"+dump_hi={dump_range[1]}", f"+timeout_cycles={int(timeout_cycles)}",
                f"+counters={','.join(counters)}"]
    runner = get_runner("verilator")
    runner.test(test_module=TEST_MODULE, hdl_toplevel=TB_NAME, hdl_toplevel_lang="verilog", build_dir=build_dir,
                test_dir=work,
                plusargs=plusargs, log_file=work / "sim.log", extra_env={"COCOTB_RESOLVE_X": "ZEROS"})
    if not result_path.exists():
        raise MissingToolError(f"simulation produced no result (see {work / 'sim.log'})")
    result = json.loads(result_path.read_text())
    dump = _read_hex(dump_path) if dump_path.exists() else []
    return TbRun(result, dump, work)


def simulate_image(kind: str, sources: dict[str, str], program, counters: list[str], *, seed: int,
                   stall_prob: float, latency: int, timeout_cycles: int, cache_dir: str | Path | None = None,
                   work_dir: str | Path | None = None) -> tuple[TbRun, int]:
    """Build (cached) and run one accelerator on ``program``'s memory image: the part every accelerator's
    ``simulate`` shares. ``program`` has ``size``, ``write_hex(path)`` and ``output_range()``.

    Returns the run and the first dumped word's address. Raises `ConfigError` for an image larger than the
    simulated memory or a bad ``stall_prob``, and `VerificationError` on a timeout or an out-of-range access
    (then the scratch directory is kept for inspection; otherwise a scratch directory is removed, since the dump
    is already in memory)."""
    import shutil

    from hwforge.errors import ConfigError, VerificationError

    if program.size > DEFAULT_DEPTH:
        raise ConfigError(f"{kind}: program of {program.size} words exceeds the simulated memory ({DEFAULT_DEPTH})")
    if not 0.0 <= stall_prob < 1.0:
        raise ConfigError(f"{kind}: stall_prob must be in [0, 1), got {stall_prob}")
    build_dir = build(sources, Path(cache_dir) if cache_dir else None)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"hwforge_{kind}_"))
    work.mkdir(parents=True, exist_ok=True)
    program.write_hex(work / "program.hex")
    lo, hi = program.output_range()
    run = run_mem_tb(build_dir, work / "program.hex", counters, dump_range=(lo, hi), seed=seed,
                     stall_prob=stall_prob, latency=latency, timeout_cycles=timeout_cycles, work_dir=work)
    if run.result.get("timed_out") or run.result.get("mem_error"):
        what = "timed out" if run.result.get("timed_out") else "accessed memory out of range"
        raise VerificationError(f"{kind} simulation {what} (see {work})")
    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return run, lo
