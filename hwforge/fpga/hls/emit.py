"""Optimizer IR -> Vitis HLS C++ kernel, XRT host program, Makefile and link.cfg (Jinja2 templates beside
this module).

Why the emitter walks the IR instead of the `OptimizerSpec`: the IR is the verified, bit-exact model, so one
C++ statement per IR node (in the IR's topological order) makes the kernel compute exactly what the
interpreter computes, and any optimizer the lowering can express needs no emitter change.

Memory interface: every vector the kernel reads or writes is an ``m_axi`` port of its own bundle (they all
stream at the same time); a read-modify-write vector (param, optimizer states) has an input and an output port
that the host binds to the same buffer. Beats carry ``LANES`` = 16 elements (512 bits of float32, 256 bits of
float16), so buffers are padded by the host to whole beats; ``n`` counts real elements.

Every C++ file starts with the generated-file header (`hwforge.generated`, `generated_header`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
import numpy as np

from hwforge.errors import ConfigError, UnsupportedOpError
from hwforge.generated import header
from hwforge.ir import Graph

LANES = 16
DEFAULT_CHUNK = 4096
MAX_CHUNK = 16384
FAULTS = ("none", "no_bias_correction", "drop_tail")
SUPPORTED_OPS = ("ew_add", "ew_sub", "ew_mul", "ew_div", "ew_sqrt", "ew_fma", "ew_select", "ew_cast")


@dataclass(frozen=True)
class HlsOptions:
    """Code-generation choices; ``fault`` deliberately breaks the kernel so tests can see verification fail."""

    chunk: int = DEFAULT_CHUNK
    dataflow: bool = False
    fault: str = "none"
    platform: str = "xilinx_u2_gen3x4_xdma_gc_2_202110_1"
    memory: str = "DDR"

    def __post_init__(self) -> None:
        if not (LANES <= self.chunk <= MAX_CHUNK and self.chunk % LANES == 0):
            raise ConfigError(f"chunk={self.chunk}: must be a multiple of {LANES} between {LANES} and {MAX_CHUNK}")
        if self.fault not in FAULTS:
            raise ConfigError(f"fault={self.fault!r}: expected one of {', '.join(FAULTS)}")
        if self.memory not in ("DDR", "HBM"):
            raise ConfigError(f"memory={self.memory!r}: expected DDR or HBM")


@dataclass
class Port:
    """One pointer argument of the kernel."""

    arg: str
    ctype: str  # element type of the pointer (f32x16, f16x16, int, float, fp16_t)
    const: bool
    bundle: str
    buffer: str  # host buffer it belongs to (in/out ports of one vector share it)
    doc: str
    wide: bool = True


@dataclass(frozen=True)
class Operand:
    """A value a statement reads; the template spells it (``kind``: vec, beat, scalar, const, var, one)."""

    kind: str
    name: str = ""


@dataclass(frozen=True)
class Statement:
    """One IR node as one C++ declaration; the template turns ``op`` and ``args`` into the expression."""

    ctype: str  # float or fp16_t
    var: str
    op: str
    args: tuple[Operand, ...]
    node: str  # the IR node name, for the comment


@dataclass
class KernelModel:
    """Everything the templates need, derived from the graph (names are C identifiers)."""

    name: str
    graph_name: str
    ports: list[Port]
    scalars: list[str]
    rmw: list[str]  # vectors read and written back (param, states)
    read_only: list[str]  # dense vectors only read (the gradient)
    write_only: list[str]  # vectors only written (the fp16 copy)
    beat_in: list[tuple[str, str]]  # (name, beat type) of every beat the update reads
    beat_out: list[tuple[str, str, Operand]]  # (name, beat type, source value) of every beat it writes
    topk_name: str | None  # the dense gradient beat decompressed from top-k pairs
    topk_ctype: str | None  # C type of the top-k values
    constants: list[tuple[str, str, str]]  # (name, float literal, IR node)
    statements: list[Statement]  # one per IR node, in the IR's order
    options: HlsOptions
    csim_params: list[tuple[str, str, str]] = field(default_factory=list)
    csim_wide: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def topk(self) -> bool:
        return self.topk_name is not None

    @property
    def in_ports(self) -> list[Port]:
        return [p for p in self.ports if p.wide and p.const]

    @property
    def out_ports(self) -> list[Port]:
        return [p for p in self.ports if p.wide and not p.const]

    @property
    def read_only_half(self) -> bool:
        return any(t == "f16x16" for n, t in self.beat_in if n in self.read_only)

    @property
    def dense_in(self) -> list[tuple[str, str]]:
        return [(n, t) for n, t in self.beat_in if n != self.topk_name]


def c_ident(name: str) -> str:
    """IR node names may contain '.' and '-'; C identifiers may not."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def float_literal(value: float) -> str:
    """Shortest decimal that reads back as the same float32, with an ``f`` suffix."""
    x = np.float32(value)
    text = (np.format_float_positional(x, unique=True, trim="0") if x == 0 or 1e-4 <= abs(x) < 1e7
            else np.format_float_scientific(x, unique=True, trim="0"))
    return text + "f"


def kernel_model(graph: Graph, options: HlsOptions) -> KernelModel:
    """Classify the graph's inputs and outputs into ports and turn its nodes into per-lane statements."""
    if any(not o.startswith("out.") for o in graph.outputs):
        raise UnsupportedOpError(f"graph '{graph.name}': outputs must be named out.<vector>")
    outputs = {o[len("out."):]: graph[o].inputs[0] for o in graph.outputs}
    vectors = [i for i in graph.inputs if graph[i].type.rank == 1]
    scalars = [i for i in graph.inputs if graph[i].type.rank == 0]
    for name in vectors + scalars + list(outputs):
        if c_ident(name) != name:
            raise UnsupportedOpError(f"graph '{graph.name}': kernel argument {name!r} is not a C identifier")
    scatter = [n for n in graph.nodes() if n.op == "scatter"]
    if len(scatter) > 1:
        raise UnsupportedOpError(f"graph '{graph.name}': one scatter (top-k gradient) per kernel is supported")
    skip: set[str] = set()
    topk_name = topk_ctype = None
    if scatter:
        s = scatter[0]
        idx, vals, like = (graph[i] for i in s.inputs)
        if vals.op == "ew_cast":
            skip.add(vals.name)
            vals = graph[vals.inputs[0]]
        if (idx.op, vals.op, idx.name, vals.name) != ("input", "input", "grad_indices", "grad_values"):
            raise UnsupportedOpError(f"node '{s.name}' (scatter): expects the inputs grad_indices and grad_values")
        topk_name, topk_ctype = c_ident(s.name), ("float" if vals.type.dtype == "f32" else "fp16_t")
        skip |= {idx.name, vals.name}
    if options.fault == "no_bias_correction" and "bc2_sqrt" not in scalars:
        raise ConfigError("fault=no_bias_correction needs an Adam/AdamW kernel (the others have no bias correction)")

    def wide(dtype: str) -> str:
        return "f32x16" if dtype == "f32" else "f16x16"

    rmw = [v for v in vectors if v in outputs and v not in skip]
    reads = [v for v in vectors if v not in outputs and v not in skip]
    writes = [o for o in outputs if o not in vectors]
    ports: list[Port] = []
    for v in rmw:
        ports.append(Port(f"{v}_in", "f32x16", True, "", v, f"{v} (read)"))
        ports.append(Port(f"{v}_out", "f32x16", False, "", v, f"{v} (written back; same buffer as {v}_in)"))
    for v in reads:
        ports.append(Port(v, wide(graph[v].type.dtype), True, "", v, f"{v} ({graph[v].type.dtype})"))
    if topk_name:
        ports.append(Port("grad_indices", "int", True, "", "grad_indices", "top-k indices (int32, ascending)",
                          wide=False))
        ports.append(Port("grad_values", topk_ctype, True, "", "grad_values", "top-k values", wide=False))
    for o in writes:
        dtype = graph[outputs[o]].type.dtype
        ports.append(Port(o, wide(dtype), False, "", o, f"{o} ({dtype}, written)"))
    for i, p in enumerate(ports):
        p.bundle = f"gmem{i}"

    def ref(src: str) -> Operand:
        node = graph[src]
        if node.op == "input" and node.type.rank == 1:
            return Operand("beat", c_ident(src))
        if node.op == "input":
            no_bc = options.fault == "no_bias_correction" and src == "bc2_sqrt"
            return Operand("one") if no_bc else Operand("scalar", src)
        if node.op == "fconst":
            return Operand("const", c_ident(src))
        if node.op == "scatter":
            return Operand("beat", topk_name)
        return Operand("var", c_ident(src))

    constants, statements = [], []
    for node in graph.nodes():
        if node.op in ("input", "output", "scatter") or node.name in skip:
            continue
        if node.op == "fconst":
            constants.append((c_ident(node.name), float_literal(node.attrs["value"]), node.name))
            continue
        if node.op not in SUPPORTED_OPS:
            raise UnsupportedOpError(f"node '{node.name}' ({node.op}): the HLS emitter has no C++ for this op")
        ctype = "fp16_t" if node.type.dtype == "f16" else "float"
        statements.append(Statement(ctype, c_ident(node.name), node.op, tuple(ref(i) for i in node.inputs),
                                    node.name))
    beat_in = [(v, "f32x16") for v in rmw] + [(v, wide(graph[v].type.dtype)) for v in reads]
    if topk_name:
        beat_in.append((topk_name, "f32x16"))
    beat_out = [(v, "f32x16", ref(outputs[v])) for v in rmw]
    beat_out += [(o, wide(graph[outputs[o]].type.dtype), ref(outputs[o])) for o in writes]
    model = KernelModel(c_ident(graph.name), graph.name, ports, scalars, rmw, reads, writes, beat_in, beat_out,
                        topk_name, topk_ctype, constants, statements, options)
    elem = {"f32x16": "float", "f16x16": "fp16_t"}
    model.csim_params = [(v, "", "float*") for v in rmw] + [(v, "", "const void*") for v in reads]
    if topk_name:
        model.csim_params += [("grad_indices", "", "const int*"), ("grad_values", "", "const void*")]
    model.csim_params += [(o, "", "void*") for o in writes]
    model.csim_wide = [(name, ctype, elem[ctype]) for name, ctype in beat_in if name != topk_name]
    model.csim_wide += [(o, ctype, elem[ctype]) for o, ctype, _ in beat_out if o in writes]
    return model


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("hwforge.fpga.hls", "templates"),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["repr"] = lambda v: repr(float(v))
    env.filters["float_literal"] = float_literal
    return env


def _banks(model: KernelModel) -> dict[str, str]:
    """Memory bank of every host buffer: all in DDR[0] (SmartSSD has one DDR bank) or one HBM channel each."""
    buffers = list(dict.fromkeys(p.buffer for p in model.ports))
    if model.options.memory == "DDR":
        return {b: "DDR[0]" for b in buffers}
    return {b: f"HBM[{i}]" for i, b in enumerate(buffers)}


def generated_header(graph: Graph, options: HlsOptions, spec: Any = None) -> str:
    """The generated-file header of the C++ files (`hwforge.generated`): the HLS options, the IR graph and,
    when known, the optimizer spec (every hyperparameter)."""
    config: dict[str, Any] = {"hls": dataclasses.asdict(options), "graph": graph.name}
    if spec is not None:
        config["optimizer"] = json.loads(spec.to_json())
    return header("hwforge.fpga.hls.emit", config)


def _context(graph: Graph, options: HlsOptions, spec: Any = None) -> dict[str, Any]:
    model = kernel_model(graph, options)
    return {"k": model, "LANES": LANES, "chunk_beats": options.chunk // LANES, "banks": _banks(model),
            "header": generated_header(graph, options, spec)}


def kernel_source(graph: Graph, options: HlsOptions | None = None, spec: Any = None) -> tuple[str, str, str]:
    """(kernel name, header text, kernel C++ text): what the C simulation compiles. With ``spec`` (the
    OptimizerSpec the graph was lowered from) the files are exactly those `render` puts in an artifact."""
    ctx = _context(graph, options or HlsOptions(), spec)
    env = _env()
    return (ctx["k"].name, env.get_template("kernel.h.j2").render(**ctx),
            env.get_template("kernel.cpp.j2").render(**ctx))


def render(graph: Graph, spec: Any, options: HlsOptions | None = None) -> dict[str, str]:
    """All generated files keyed by artifact path: ``hls/<kernel>.{h,cpp}``, ``host/host.cpp``, ``Makefile``,
    ``link.cfg``. ``spec`` (an OptimizerSpec) supplies the host program's per-step scalar formulas."""
    ctx = {**_context(graph, options or HlsOptions(), spec), "spec": spec}
    env = _env()
    name = ctx["k"].name
    return {
        f"hls/{name}.h": env.get_template("kernel.h.j2").render(**ctx),
        f"hls/{name}.cpp": env.get_template("kernel.cpp.j2").render(**ctx),
        "host/host.cpp": env.get_template("host.cpp.j2").render(**ctx),
        "Makefile": env.get_template("Makefile.j2").render(**ctx),
        "link.cfg": env.get_template("link.cfg.j2").render(**ctx),
    }
