"""Run SCALE-Sim (the ``scalesim`` package) on a single GEMM layer and compare it to the fold formula.

It lives in the package (not in ``benchmarks/``) because both ``benchmarks/gemm.py`` and the test suite
use it.  Two entry points (and ``python -m hwforge.rtl.gemm.scalesim ROWS COLS DATAFLOW M K N`` for one run):

* :func:`scalesim_cycles` runs SCALE-Sim in-process (as a library, not a subprocess) for one GEMM
  ``C[M, N] = A[M, K] @ B[K, N]`` on a ``rows x cols`` systolic array with dataflow ``"os"``, ``"ws"``
  or ``"is"``, and returns the numbers of SCALE-Sim's ``COMPUTE_REPORT.csv``.  All of SCALE-Sim's input
  files (config ``.cfg``, GEMM topology ``.csv``, empty layout ``.csv``) and its reports are written
  under ``workdir``; its prints, progress bars and warnings are swallowed.  ``None`` is returned, with
  the reason on stderr, when ``scalesim`` is not importable or the simulation fails (the benchmark then
  leaves the column empty); :class:`ScaleSimVersionError` is raised when the installed SCALE-Sim is not
  one the NumPy-2 patch below was written for.
* :func:`fold_formula_cycles` is the analytical model of the SCALE-Sim paper (Samajdar et al.,
  ISPASS 2020)::

      cycles = (2*R + C + T - 2) * ceil(Sr / R) * ceil(Sc / C)

How SCALE-Sim sees a GEMM
-------------------------
A GEMM topology row (``input_type_gemm=True`` / ``mnk_inputs``) is ``name, M, N, K,`` and
``topologies.load_arrays_gemm`` turns it into a convolution with an ``M x K`` ifmap, a ``1 x K`` filter,
one channel and ``N`` filters.  So SCALE-Sim's M is the output rows (ofmap pixels), N the output
columns (filters) and K the reduction length (window size) -- the same letters as ``A[M, K] @ B[K, N]``
here.  The operand matrices are ifmap ``M x K``, filter ``K x N``, ofmap ``M x N``, and the compute
classes (``compute/systolic_compute_{os,ws,is}.py``) set:

====  ======  ======  =====
df    Sr      Sc      T
====  ======  ======  =====
os    M       N       K
ws    K       N       M
is    K       M       N
====  ======  ======  =====

which is also what :func:`fold_formula_cycles` uses.

Which report number is which
----------------------------
SCALE-Sim 3.0.0's ``COMPUTE_REPORT.csv`` columns (``single_layer_sim.calc_report_data``):

* ``Total Cycles (incl. prefetch)`` -- span of the DRAM traffic (first DRAM read to last DRAM write),
  i.e. including the SRAM prefetch from DRAM; SCALE-Sim's verbose log calls this "Total cycles".
  Returned as ``total_cycles_incl_prefetch``.
* ``Total Cycles`` -- ``memory_system.get_total_compute_cycles()`` = the (0-based) cycle at which the
  last OFMAP demand row is serviced, *including* stall cycles (the verbose log calls this "Compute
  cycles").  Returned as ``total_cycles``.
* ``Stall Cycles`` -- memory stalls.  Returned as ``stall_cycles``; ``compute_cycles`` is
  ``total_cycles - stall_cycles``.
* ``Overall Util %`` -- ``100 * M*N*K / (total_cycles * rows * cols)``.  Returned as ``utilization_pct``.
  ``Mapping Efficiency %`` and ``Compute Util %`` are returned as ``mapping_efficiency_pct`` and
  ``compute_util_pct``.

The run uses ``InterfaceBandwidth = CALC`` (SCALE-Sim's bandwidth-estimation mode, whose read buffers
never stall) and SRAMs sized to hold every operand, so ``stall_cycles == 0`` and
``compute_cycles == total_cycles``.

Measured relation to the fold formula
-------------------------------------
Measured with scalesim 3.0.0 / NumPy 2.4 on 4x4, 4x8 and 8x4 arrays for all 64 shapes with M, K, N each
in {4, 7, 16, 33} and every dataflow (576 runs, all with zero stalls and SCALE-Sim's Sr/Sc/T as in the
table above).  With ``F = ceil(Sr / R) * ceil(Sc / C)`` folds and ``R = rows``, the relation is exact
for every case:

* ``ws``: ``compute_cycles == fold_formula_cycles(...) - 1`` exactly (SCALE-Sim's per-fold cost is
  exactly ``2R + C + T - 2``; the single missing cycle is because it reports the 0-based index of the
  last serviced cycle, not a count).
* ``os``: ``compute_cycles == fold_formula_cycles(...) - R * F - 1`` exactly, i.e. SCALE-Sim charges
  ``R + C + T - 2`` per fold: it does not model the ``R``-cycle drain of the stationary outputs that
  the paper's formula includes (the OFMAP demand of a fold is ``T - 1`` idle rows + ``R`` output rows,
  skewed over ``C`` columns), plus the same global ``-1``.
* ``is``: same as ``ws`` (``fold_formula_cycles(...) - 1``).

``tests/bench/test_scalesim_runner.py`` checks these relations.  It is part of the default test suite
(``scalesim`` is in the ``test`` extra), because SCALE-Sim is the external reference for the ``gemm`` cycle
model: a missing or unsupported ``scalesim`` fails those tests instead of skipping them.

The NumPy 2 patch
-----------------
SCALE-Sim 3.0.0 does not run on NumPy >= 2.4.  ``double_buffered_scratchpad.service_memory_requests``
(``scalesim/memory/double_buffered_scratchpad_mem.py``) ends with::

    self.total_cycles = int(max(ofmap_serviced_cycles))

where ``ofmap_serviced_cycles`` is a list of 1-element arrays, so ``max`` returns a 1-element array and
``int()`` of an array with ``ndim > 0`` -- deprecated since NumPy 1.25 -- raises ``TypeError`` from 2.4 on.
:func:`numpy2_patch` is the whole workaround: while a simulation runs it puts a ``max`` into that one
module's globals (shadowing the builtin for that module only) which turns the result of exactly that call
form -- one positional list argument, the only such ``max`` call in the module -- into a NumPy scalar, and
passes every other call to the builtin unchanged; afterwards the module is as it was.  Before patching it
checks that the installed ``scalesim`` is a version the patch was written for (:data:`PATCHED_VERSIONS`) and
that the patched line is still in the source, and raises :class:`ScaleSimVersionError` otherwise: a newer
SCALE-Sim may have fixed the line or moved it, and then the patch must be re-checked, not applied blindly.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import importlib.metadata
import inspect
import io
import math
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

DATAFLOWS = ("os", "ws", "is")

_CONFIG_TEMPLATE = """\
[general]
run_name = {run_name}

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {sram_kb}
FilterSramSzkB = {sram_kb}
OfmapSramSzkB = {sram_kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = 10
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
"""

# COMPUTE_REPORT.csv header -> returned key.  "Total Cycles (incl. prefetch)" only exists in scalesim >= 3.
_REPORT_COLUMNS = {
    "Total Cycles (incl. prefetch)": "total_cycles_incl_prefetch",
    "Total Cycles": "total_cycles",
    "Stall Cycles": "stall_cycles",
    "Overall Util %": "utilization_pct",
    "Mapping Efficiency %": "mapping_efficiency_pct",
    "Compute Util %": "compute_util_pct",
}
_INT_KEYS = {"total_cycles_incl_prefetch", "total_cycles", "stall_cycles"}


def _log(msg: str) -> None:
    print(f"hwforge.rtl.gemm.scalesim: {msg}", file=sys.stderr)


def _check_args(rows: int, cols: int, dataflow: str, M: int, K: int, N: int) -> None:
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")
    for name, val in (("rows", rows), ("cols", cols), ("M", M), ("K", K), ("N", N)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")


def spatio_temporal_dims(dataflow: str, M: int, K: int, N: int) -> tuple[int, int, int]:
    """(Sr, Sc, T) of SCALE-Sim's mapping of ``A[M, K] @ B[K, N]`` for ``dataflow`` (see module docstring)."""
    if dataflow == "os":
        return M, N, K
    if dataflow == "ws":
        return K, N, M
    if dataflow == "is":
        return K, M, N
    raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")


def fold_formula_cycles(rows: int, cols: int, dataflow: str, M: int, K: int, N: int) -> int:
    """SCALE-Sim paper's analytical cycle count ``(2R + C + T - 2) * ceil(Sr / R) * ceil(Sc / C)``.

    ``R, C = rows, cols``; ``(Sr, Sc, T)`` come from :func:`spatio_temporal_dims`.
    """
    _check_args(rows, cols, dataflow, M, K, N)
    sr, sc, t = spatio_temporal_dims(dataflow, M, K, N)
    folds = math.ceil(sr / rows) * math.ceil(sc / cols)
    return (2 * rows + cols + t - 2) * folds


# SCALE-Sim releases :func:`numpy2_patch` was written for and checked against (see the module docstring).
PATCHED_VERSIONS = ("3.0.0",)
# The one statement the patch is for, as it appears in the patched method's source.
_PATCHED_LINE = "self.total_cycles = int(max(ofmap_serviced_cycles))"


class ScaleSimVersionError(RuntimeError):
    """The installed ``scalesim`` is not one :func:`numpy2_patch` was written for."""


def check_scalesim_version(mem_module: ModuleType, version: str | None = None) -> str:
    """Return the installed ``scalesim`` version; raise :class:`ScaleSimVersionError` if the patch does not fit it.

    Two checks, because either alone can be fooled: the distribution's version must be in
    :data:`PATCHED_VERSIONS`, and the patched statement must still be in
    ``double_buffered_scratchpad.service_memory_requests`` (an edited or differently packaged install).
    ``version`` overrides the installed version (for tests).
    """
    installed = version if version is not None else importlib.metadata.version("scalesim")
    if installed not in PATCHED_VERSIONS:
        raise ScaleSimVersionError(
            f"scalesim {installed} is installed, but hwforge's NumPy-2 patch for SCALE-Sim was written for "
            f"{', '.join(PATCHED_VERSIONS)} (see {__name__}); install scalesim=={PATCHED_VERSIONS[-1]} or re-check "
            "the patch against the new version and add it to PATCHED_VERSIONS")
    source = inspect.getsource(mem_module.double_buffered_scratchpad.service_memory_requests)
    if _PATCHED_LINE not in source:
        raise ScaleSimVersionError(f"scalesim {installed}: {mem_module.__name__} no longer contains "
                                   f"{_PATCHED_LINE!r}; re-check the NumPy-2 patch in {__name__}")
    return installed


def _patched_max(*args: Any, **kwargs: Any) -> Any:
    """``max`` for SCALE-Sim's scratchpad module: the ``max(list_of_1_element_arrays)`` call gives a scalar.

    Only the form of the patched call -- exactly one positional argument that is a list, no keywords -- is
    touched, and only when the builtin's result is a 1-element array; every other call is the builtin's.
    """
    result = builtins.max(*args, **kwargs)
    if len(args) == 1 and not kwargs and isinstance(args[0], list):
        if getattr(result, "size", None) == 1 and getattr(result, "ndim", 0) > 0:
            return result.reshape(-1)[0]
    return result


@contextlib.contextmanager
def numpy2_patch(mem_module: ModuleType, version: str | None = None) -> Iterator[None]:
    """While the block runs, patch SCALE-Sim's one NumPy-2-incompatible ``max`` call (see the module docstring).

    ``mem_module`` is ``scalesim.memory.double_buffered_scratchpad_mem``.  Raises
    :class:`ScaleSimVersionError` before touching anything if the installed SCALE-Sim is not a version the
    patch was written for.  The module's globals are restored afterwards, also when the block raises.
    """
    check_scalesim_version(mem_module, version)
    namespace = vars(mem_module)
    had, old = "max" in namespace, namespace.get("max")
    namespace["max"] = _patched_max
    try:
        yield
    finally:
        if had:
            namespace["max"] = old
        else:
            namespace.pop("max", None)


def _read_compute_report(path: Path) -> dict[str, Any]:
    with path.open(newline="") as fh:
        rows = [[cell.strip() for cell in row] for row in csv.reader(fh) if any(c.strip() for c in row)]
    if len(rows) < 2:
        raise RuntimeError(f"{path} has no data row")
    header, data = rows[0], rows[1]
    out: dict[str, Any] = {}
    for col, key in _REPORT_COLUMNS.items():
        if col in header:
            raw = data[header.index(col)]
            out[key] = int(float(raw)) if key in _INT_KEYS else float(raw)
    missing = {"total_cycles", "stall_cycles", "utilization_pct"} - out.keys()
    if missing:
        raise RuntimeError(f"{path}: missing columns for {sorted(missing)}; header={header}")
    return out


def scalesim_cycles(rows: int, cols: int, dataflow: str, M: int, K: int, N: int, workdir: Path) -> dict | None:
    """Run SCALE-Sim for ``C[M, N] = A[M, K] @ B[K, N]`` on a ``rows x cols`` array; return its compute report.

    Returns a dict with ``total_cycles``, ``compute_cycles`` (= total - stall), ``stall_cycles`` and
    ``utilization_pct`` (SCALE-Sim's "Overall Util %"), plus ``total_cycles_incl_prefetch``,
    ``mapping_efficiency_pct``, ``compute_util_pct`` when the report has them, and SCALE-Sim's own
    ``sr``/``sc``/``t`` when they can be read from the simulator.  See the module docstring for what each
    number means and how they relate to :func:`fold_formula_cycles`.  Returns ``None`` (reason on stderr)
    if ``scalesim`` is missing or the run fails.  Raises ``ValueError`` for invalid arguments and
    :class:`ScaleSimVersionError` (outside the swallowed failures: it needs a code change, not a retry) if the
    installed SCALE-Sim is not one :func:`numpy2_patch` was written for.
    """
    _check_args(rows, cols, dataflow, M, K, N)
    try:
        import scalesim.memory.double_buffered_scratchpad_mem as mem_module
        from scalesim.scale_sim import scalesim
    except Exception as exc:  # ImportError, or a broken install
        _log(f"scalesim package not importable ({type(exc).__name__}: {exc}); skipping")
        return None
    check_scalesim_version(mem_module)

    workdir = Path(workdir).resolve()
    run_name = f"gemm_{dataflow}_{rows}x{cols}_M{M}_K{K}_N{N}"
    # Word size is 1 byte: size every SRAM to hold the largest operand twice over (double buffering).
    sram_kb = max(64, math.ceil(2 * max(M * K, K * N, M * N) / 1024) + 1)
    captured = io.StringIO()
    sim: Any = None
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        cfg_path = workdir / f"{run_name}.cfg"
        topo_path = workdir / f"{run_name}_topo.csv"
        layout_path = workdir / f"{run_name}_layout.csv"
        cfg_path.write_text(
            _CONFIG_TEMPLATE.format(run_name=run_name, rows=rows, cols=cols, sram_kb=sram_kb, dataflow=dataflow)
        )
        topo_path.write_text(f"Layer, M, N, K,\ngemm, {M}, {N}, {K},\n")
        layout_path.write_text("Layer name,\n")  # no custom layout; scalesim still opens the file
        report_path = workdir / run_name / "COMPUTE_REPORT.csv"
        report_path.unlink(missing_ok=True)

        with (
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured),
            warnings.catch_warnings(),
            numpy2_patch(mem_module),
        ):
            warnings.simplefilter("ignore")
            sim = scalesim(
                save_disk_space=True,  # no per-layer trace CSVs
                verbose=False,  # no banner, no tqdm
                config=str(cfg_path),
                topology=str(topo_path),
                layout=str(layout_path),
                input_type_gemm=True,
            )
            sim.run_scale(top_path=str(workdir))
        result = _read_compute_report(report_path)
    except (Exception, SystemExit) as exc:  # scalesim calls exit() on bad input files
        _log(f"SCALE-Sim run {run_name} failed: {type(exc).__name__}: {exc}")
        tail = captured.getvalue()[-2000:]
        if tail:
            _log(f"captured scalesim output (tail):\n{tail}")
        _log(traceback.format_exc(limit=3))
        return None

    result["compute_cycles"] = result["total_cycles"] - result["stall_cycles"]
    with contextlib.suppress(Exception):
        compute = sim.runner.single_layer_sim_object_list[0].compute_system
        result.update(sr=int(compute.Sr), sc=int(compute.Sc), t=int(compute.T))
    return result


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", type=int)
    ap.add_argument("cols", type=int)
    ap.add_argument("dataflow", choices=DATAFLOWS)
    ap.add_argument("M", type=int)
    ap.add_argument("K", type=int)
    ap.add_argument("N", type=int)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = scalesim_cycles(ns.rows, ns.cols, ns.dataflow, ns.M, ns.K, ns.N, Path(tmp))
    print(res)
    print("fold_formula_cycles:", fold_formula_cycles(ns.rows, ns.cols, ns.dataflow, ns.M, ns.K, ns.N))
