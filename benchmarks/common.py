"""What every benchmark script shares: the ``--quick`` / ``--out`` options and where the results JSON goes.

``benchmarks/results/NAME.json`` are the published results the README's tables and figures come from, so only a
full (non-quick) run may write them by default.  A ``--quick`` run is a smoke test of the script on a subset; it
writes ``benchmarks/results/quick/NAME.json`` instead (git-ignored), so trying a benchmark never changes a
published number.  ``--out PATH`` sends either mode's JSON to ``PATH``.

Scripts import this module as ``common`` (``python benchmarks/NAME.py`` puts ``benchmarks/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_RESULTS = RESULTS / "quick"


def add_output_options(parser: argparse.ArgumentParser, name: str, quick_help: str,
                       quick_group: argparse._MutuallyExclusiveGroup | None = None) -> None:
    """Add ``--quick`` (to ``quick_group`` if given, e.g. one shared with ``--full``) and ``--out`` to ``parser``.

    ``name`` is the benchmark's results name (``NAME.json``); :func:`output_path` reads it back from the parsed
    arguments.  ``--json`` is kept as a hidden alias of ``--out``: it was the option's name before quick runs got
    their own directory.
    """
    published, quick = _rel(RESULTS / f"{name}.json"), _rel(QUICK_RESULTS / f"{name}.json")
    (quick_group or parser).add_argument("--quick", action="store_true",
                                         help=f"{quick_help}; writes {quick}, not the published {published}")
    parser.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help=f"where to write the results JSON (default: {published}, or {quick} with --quick)")
    parser.add_argument("--json", type=Path, dest="out", help=argparse.SUPPRESS)
    parser.set_defaults(results_name=name)


def output_path(args: argparse.Namespace) -> Path:
    """The results JSON for parsed ``args``: ``--out``, else the quick or the published default."""
    if args.out is not None:
        return args.out
    return (QUICK_RESULTS if args.quick else RESULTS) / f"{args.results_name}.json"


def write_results(path: Path, data: dict[str, Any], indent: int = 2) -> Path:
    """Write ``data`` as JSON to ``path`` (through ``path.tmp``, so an interrupted run leaves the old file whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def _rel(path: Path) -> str:
    """``path`` relative to the repository root, for help texts that should not show this machine's paths."""
    return str(path.relative_to(RESULTS.parents[1]))
