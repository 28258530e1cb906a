"""The `hwforge` command line (docs/ARCHITECTURE.md, "The commands").

Every verb takes ``--json``: it then prints exactly one JSON object on stdout and sends logs to stderr.
Exit codes: 0 success, 1 verification mismatch, 2 bad input or missing tool (one line on stderr, no
traceback), 3 internal error (set HWFORGE_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hwforge.errors import HwforgeError
from hwforge.tables import metrics_table, records_table, rows_table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
out = Console(highlight=False)
log = Console(stderr=True, highlight=False, soft_wrap=True)  # one message, one line: never wrap paths

JsonFlag = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]


def _emit_json(obj: dict[str, Any]) -> None:
    from hwforge.compiler.artifact import dumps_json

    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


def _run(as_json: bool, body: Callable[[], Any], render: Callable[[Any], None]) -> None:
    """Run a verb: map errors to exit codes, print JSON or a human rendering.

    ``body`` returns a dict or a typed result with ``to_dict`` (`hwforge.compiler.results`); ``--json`` prints
    that dict, and a result whose ``passed`` is False exits 1."""
    try:
        result = body()
    except HwforgeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if as_json:
            _emit_json({"ok": False, "error": message, "exit_code": exc.exit_code})
        log.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except typer.Exit:
        raise
    except Exception as exc:  # an internal bug: say so and exit 3
        if os.environ.get("HWFORGE_DEBUG"):
            traceback.print_exc()
        message = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
        if as_json:
            _emit_json({"ok": False, "error": message, "exit_code": 3})
        log.print(message, markup=False, soft_wrap=True)
        raise typer.Exit(3) from None
    data = result.to_dict() if hasattr(result, "to_dict") else result
    code = 1 if data.get("passed") is False else 0
    if as_json:
        _emit_json(data)
    else:
        render(result)
    if code:
        raise typer.Exit(code)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    out.print(rows_table(title, columns, rows))


@app.command()
def targets(as_json: JsonFlag = False,
            options: Annotated[bool, typer.Option("--options", help="Also list every target's --set options.")] = False,
            markdown: Annotated[bool, typer.Option("--markdown", help="Print the options tables in Markdown.")] = False,
            ) -> None:
    """List compilation targets, their status and (with --options or --json) their --set options."""
    from hwforge.compiler.driver import CompileOptions
    from hwforge.compiler.targets import targets as all_targets
    from hwforge.options import options_table_markdown

    def body() -> dict[str, Any]:
        return {"targets": [{"name": t.name, "status": t.status, "description": t.description,
                             "hardware": t.hardware, "verified_by": t.verified_by, "options": t.describe_options()}
                            for t in all_targets()],
                "compile_options": CompileOptions.describe()}

    def render(r: dict[str, Any]) -> None:
        if markdown:
            for t in all_targets():
                if t.options_type is not None:
                    out.print(f"`{t.name}` options (`--set`):\n\n{options_table_markdown(t.options_type)}",
                              markup=False, highlight=False)
            out.print(f"Options of every target:\n\n{options_table_markdown(CompileOptions)}", markup=False,
                      highlight=False)
            return
        _table("targets", ["name", "status", "description"],
               [[t["name"], t["status"], t["description"]] for t in r["targets"]])
        if options:
            for t in r["targets"]:
                if t["options"]:
                    _table(f"{t['name']} options (--set key=value)", ["key", "type", "default", "allowed", "meaning"],
                           [_option_row(o) for o in t["options"]])
            _table("options of every target", ["key", "type", "default", "allowed", "meaning"],
                   [_option_row(o) for o in r["compile_options"]])

    _run(as_json, body, render)


def _option_row(o: dict[str, Any]) -> list[Any]:
    from hwforge.options import allowed_text

    default = ",".join(map(str, o["default"])) if isinstance(o["default"], list) else o["default"]
    return [o["name"], o["type"], default, allowed_text(o["allowed"]), o["help"]]


@app.command()
def zoo(as_json: JsonFlag = False) -> None:
    """List the built-in models."""
    from hwforge import zoo as zoo_pkg

    def body() -> dict[str, Any]:
        return {"models": [{"name": m.name, "description": m.description} for m in zoo_pkg.list_models()],
                "optimizers": [{"name": o.name, "description": o.description}
                               for o in zoo_pkg.list_optimizers()]}

    def render(r: dict[str, Any]) -> None:
        _table("zoo", ["name", "description"], [[m["name"], m["description"]] for m in r["models"]])
        _table("optimizers (target smartupdate)", ["name", "description"],
               [[o["name"], o["description"]] for o in r["optimizers"]])

    _run(as_json, body, render)


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """List every external tool with its version, or what is missing and how to get it."""
    from hwforge import toolchain

    def body() -> dict[str, Any]:
        return {"tools": [{"name": t.name, "purpose": t.purpose, "found": t.found, "path": t.path,
                           "version": t.version, "install": t.install_hint} for t in toolchain.tools()]}

    _run(as_json, body, lambda r: _table(
        "toolchain", ["tool", "purpose", "status"],
        [[t["name"], t["purpose"], t["version"] or "found" if t["found"] else f"missing: {t['install']}"]
         for t in r["tools"]]))


@app.command()
def inspect(model: Annotated[str, typer.Argument(help="zoo name, file.py:function, or .pt2 file")],
            target: Annotated[str | None, typer.Option(help="show the IR after this target's passes")] = None,
            sets: Annotated[list[str] | None, typer.Option("--set", help="target option key=value")] = None,
            as_json: JsonFlag = False) -> None:
    """Print a model's IR, one node a line (after a target's passes with --target)."""

    def body() -> dict[str, Any]:
        from hwforge.compiler import Calibration, load_model, run_pipeline
        from hwforge.compiler.driver import split_sets
        from hwforge.compiler.targets import get_target
        from hwforge.ir import print_graph

        passes: list[str] = []
        if target:  # a target may take its own kind of MODEL (smartupdate: an optimizer)
            tgt = get_target(target)
            options, _ = split_sets(tgt, sets or [])
            own = tgt.load_own(model, options)
            if own is not None:
                return {"model": own.name, "target": target, "nodes": len(own.graph), "passes": passes,
                        "ir": print_graph(own.graph)}
        loaded = load_model(model)
        graph = loaded.graph
        if target:
            result = run_pipeline(graph, tgt.passes(options), Calibration(dict(loaded.calibration)))
            graph, passes = result.graph, result.passes
        return {"model": loaded.name, "target": target, "nodes": len(list(graph.nodes())), "passes": passes,
                "ir": print_graph(graph)}

    _run(as_json, body, lambda r: out.print(r["ir"], markup=False, highlight=False))


@app.command("compile")
def compile_cmd(model: Annotated[str, typer.Argument(help="zoo name, file.py:function, or .pt2 file")],
                target: Annotated[str, typer.Option("--target", "-t", help="compilation target")],
                output: Annotated[Path | None, typer.Option("-o", "--output", help="artifact directory")] = None,
                sets: Annotated[list[str] | None, typer.Option("--set", help="option key=value")] = None,
                dump_ir: Annotated[Path | None, typer.Option(help="write the IR after each pass here")] = None,
                as_json: JsonFlag = False) -> None:
    """Compile MODEL for a target into an artifact directory."""

    def body() -> dict[str, Any]:
        from hwforge.compiler.driver import compile_model

        out_dir = output or Path(f"{Path(model).stem.split(':')[0]}-{target}")
        return compile_model(model, target, out_dir, sets or [], dump_ir=dump_ir)

    def render(r: Any) -> None:
        out.print(f"wrote {r.artifact} (target {r.target})")
        for title, rows in r.report.tables():
            out.print(records_table(title, rows))

    _run(as_json, body, render)


def _artifact(directory: Path) -> tuple[Any, dict[str, Any]]:
    from hwforge.compiler.artifact import read_manifest
    from hwforge.compiler.targets import get_target

    manifest = read_manifest(directory)
    return get_target(manifest["target"]), manifest


@app.command()
def verify(artifact: Annotated[Path, typer.Argument(help="artifact directory from `hwforge compile`")],
           seed: Annotated[int, typer.Option(help="seed for stalls and memory latency")] = 0,
           as_json: JsonFlag = False) -> None:
    """Run the artifact on its simulator and compare with the PyTorch reference (exit 1 on mismatch)."""

    def body() -> dict[str, Any]:
        from hwforge.compiler.artifact import write_report

        tgt, manifest = _artifact(artifact)
        start = time.monotonic()
        result = tgt.verify(artifact, manifest, seed)
        result.wall_seconds = round(time.monotonic() - start, 2)
        write_report(artifact, "verify", result.to_dict())
        return result

    def render(r: Any) -> None:
        status = "[green]PASSED[/green]" if r.passed else "[red]FAILED[/red]"
        out.print(f"{status}: {r.mismatches} mismatches against the reference (seed {r.seed})")
        summary = r.summary()
        if summary:
            _table("hardware", list(summary), [list(summary.values())])
        for name, o in r.to_dict()["outputs"].items():
            _table(f"output {name}", list(o), [[f"{v:.4g}" for v in o.values()]])

    _run(as_json, body, render)


@app.command()
def build(artifact: Annotated[Path, typer.Argument(help="artifact directory")],
          board: Annotated[str, typer.Option(help="ulx3s-85f or icebreaker")] = "ulx3s-85f",
          clock_mhz: Annotated[float | None, typer.Option(
              help="clock the design from a PLL at this frequency and time it there (ECP5 boards)")] = None,
          as_json: JsonFlag = False) -> None:
    """Build the deployable binary: a bitstream for RTL targets."""

    def body() -> dict[str, Any]:
        from hwforge.compiler.artifact import write_report

        tgt, manifest = _artifact(artifact)
        log.print(tgt.build_message.format(artifact=artifact, board=board))
        start = time.monotonic()
        result = {"ok": True, **tgt.build(artifact, manifest, board, clock_mhz=clock_mhz)}
        result["wall_seconds"] = round(time.monotonic() - start, 1)
        write_report(artifact, "build", result)
        return result

    _run(as_json, body, lambda r: out.print(metrics_table("build", r)))


@app.command()
def report(artifact: Annotated[Path, typer.Argument(help="artifact directory")],
           plot: Annotated[Path | None, typer.Option(help="write a PNG of cycles per layer")] = None,
           as_json: JsonFlag = False) -> None:
    """Show resources, cycles and traffic recorded for an artifact."""

    def body() -> dict[str, Any]:
        from hwforge.compiler.report import collect_report

        return collect_report(artifact, plot)

    def render(r: dict[str, Any]) -> None:
        from hwforge.compiler.report import render_report

        render_report(r, out)

    _run(as_json, body, render)


@app.command()
def demo(workdir: Annotated[Path | None, typer.Option(help="where to write the artifact")] = None,
         as_json: JsonFlag = False) -> None:
    """Compile the digits MLP to `gemm`, verify it on Verilator, print accuracy, cycles and bytes."""

    def body() -> dict[str, Any]:
        from hwforge.compiler.demo import run_demo

        if workdir is not None:
            return run_demo(workdir, log)
        with tempfile.TemporaryDirectory(prefix="hwforge-demo-") as tmp:
            return run_demo(Path(tmp) / "mlp-digits-gemm", log)

    def render(r: dict[str, Any]) -> None:
        from hwforge.compiler.demo import render_demo

        render_demo(r, out)

    _run(as_json, body, render)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
