"""ATen lowering: a ``torch.export`` program -> float IR graph (`from_exported`), and `from_torch`, which exports
an ``nn.Module`` first. Loading MODEL specs (zoo names, ``file.py:function``, ``.pt2``) is in `model_loading`.

Lowering works on the exported ATen graph before decomposition, where ``aten.linear``/``aten.conv2d`` are
still whole ops; decomposed programs (``addmm``, ``t``, ``convolution``, ``view``) are handled too. Any ATen
call whose tensor arguments are all parameters/constants is evaluated at compile time (constant folding), so
``addmm(b, x, t(W))`` becomes ``linear(x, W, b)`` with no transpose op in the IR.

Node naming: a call made by a leaf module gets the module's path as its name (``fc1``, ``layers.0``) when that
module makes exactly one lowered call, so IR listings read like the model; otherwise the export node name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hwforge.errors import ConfigError, UnsupportedOpError
from hwforge.ir import Graph, TensorType
from hwforge.ir.graph import Node

_TORCH_DIR = os.path.dirname(torch.__file__)
_IDENTITY = {
    "aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default",
    "aten.clone.default", "aten.contiguous.default", "aten.detach.default", "aten.alias.default",
    "aten.lift_fresh_copy.default", "aten._to_copy.default",
}
_IGNORED = {"aten._assert_tensor_metadata.default", "aten._assert_scalar.default", "aten.sym_constrain_range.default"}
_DTYPES = {torch.float32: "f32", torch.float16: "f16"}


def one_line(e: object) -> str:
    """An exception's message on one line (for ConfigError messages)."""
    return " ".join(str(e).split())


# --------------------------------------------------------------------------------------------- locations
def where(fx_node: torch.fx.Node) -> str:
    """``model.act (examples/unsupported_op.py:12)``: module path and the user's source line, if known."""
    stack = fx_node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    loc = "model" + (f".{path}" if path else "")
    trace = fx_node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    user = [(f, ln) for f, ln in frames if not os.path.abspath(f).startswith(_TORCH_DIR)]
    if user:
        f, ln = user[-1]
        try:
            rel = os.path.relpath(f)
            f = rel if not rel.startswith("..") else f
        except ValueError:
            pass
        loc += f" ({f}:{ln})"
    return loc


def _module_path(fx_node: torch.fx.Node) -> str:
    stack = fx_node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def _tensor_type(fx_node: torch.fx.Node) -> TensorType:
    val = fx_node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise UnsupportedOpError(f"non-tensor value from {fx_node.target} at {where(fx_node)}")
    if val.dtype not in _DTYPES:
        raise UnsupportedOpError(f"unsupported dtype {val.dtype} from {fx_node.target} at {where(fx_node)}")
    return TensorType(tuple(int(d) for d in val.shape), _DTYPES[val.dtype])


# -------------------------------------------------------------------------------------------- the lowering
class _Lowering:
    """One pass over an ExportedProgram's graph, building the IR graph."""

    def __init__(self, ep: torch.export.ExportedProgram, name: str) -> None:
        self.ep = ep
        self.g = Graph(name)
        self.env: dict[str, str] = {}  # fx node name -> IR node name (for traced values)
        self.consts: dict[str, torch.Tensor] = {}  # fx node name -> compile-time tensor (params, folded)
        self.const_nodes: dict[str, str] = {}  # fx node name -> IR constant node (materialised lazily)
        self.const_names: dict[str, str] = {}  # fx node name -> preferred IR name (parameter FQN)
        self.names: dict[str, str] = {}

    def run(self) -> Graph:
        sig = self.ep.graph_signature
        kinds = {spec.arg.name: spec for spec in sig.input_specs}
        gm = self.ep.graph_module
        self._plan_names(gm)
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                self._placeholder(node, kinds[node.name])
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                self._outputs(node)
            elif node.op == "get_attr":
                self.consts[node.name] = getattr(gm, node.target).detach()
            else:  # pragma: no cover - export graphs contain only the kinds above
                raise UnsupportedOpError(f"unsupported graph node kind {node.op} at {where(node)}")
        self.g.eliminate_dead_code()
        self.g.verify()
        return self.g

    def _plan_names(self, gm: torch.fx.GraphModule) -> None:
        """Name lowered calls after their module when the module makes exactly one of them."""
        calls = [n for n in gm.graph.nodes if n.op == "call_function" and str(n.target) not in _IDENTITY | _IGNORED]
        counts: dict[str, int] = {}
        for n in calls:
            counts[_module_path(n)] = counts.get(_module_path(n), 0) + 1
        for n in calls:
            path = _module_path(n)
            self.names[n.name] = path if path and counts[path] == 1 else n.name

    def _placeholder(self, node: torch.fx.Node, spec: Any) -> None:
        kind = spec.kind.name
        if kind == "USER_INPUT":
            self.g.add(self.g.unique_name(node.name), "input", [], {}, _tensor_type(node))
            self.env[node.name] = self.g.inputs[-1]
            return
        target = spec.target
        if kind in ("PARAMETER", "BUFFER"):
            value = self.ep.state_dict[target] if target in self.ep.state_dict else self.ep.constants[target]
        elif kind == "CONSTANT_TENSOR":
            value = self.ep.constants[target]
        else:
            raise UnsupportedOpError(f"unsupported input kind {kind} ('{target}')")
        self.consts[node.name] = value.detach()
        self.const_names[node.name] = target

    def _const(self, fx_name: str, where_: torch.fx.Node) -> str:
        """IR constant node for a compile-time tensor (created on first use)."""
        if fx_name not in self.const_nodes:
            t = self.consts[fx_name]
            if t.dtype not in _DTYPES:
                raise UnsupportedOpError(f"unsupported constant dtype {t.dtype} at {where(where_)}")
            arr = np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy())
            name = self.g.unique_name(self.const_names.get(fx_name, fx_name))
            self.g.add_constant(name, arr, "f32", key=name)
            self.const_nodes[fx_name] = name
        return self.const_nodes[fx_name]

    def _value(self, arg: Any, ctx: torch.fx.Node) -> str:
        """IR name for a tensor argument (traced value, or a constant materialised now)."""
        if isinstance(arg, torch.fx.Node):
            if arg.name in self.env:
                return self.env[arg.name]
            if arg.name in self.consts:
                return self._const(arg.name, ctx)
        raise UnsupportedOpError(f"unsupported argument {arg!r} of {ctx.target} at {where(ctx)}")

    def _emit(self, fx_node: torch.fx.Node, op: str, inputs: list[str], attrs: dict[str, Any]) -> None:
        name = self.g.unique_name(self.names.get(fx_node.name, fx_node.name))
        node = Node(name, op, inputs, attrs, _tensor_type(fx_node))
        node.meta["source"] = where(fx_node)
        self.g.add_node(node)
        self.env[fx_node.name] = name

    def _call(self, node: torch.fx.Node) -> None:
        target = str(node.target)
        if target in _IGNORED:
            return
        tensor_args = [a for a in node.all_input_nodes]
        if tensor_args and all(a.name in self.consts for a in tensor_args):
            self._fold(node)
            return
        if target in _IDENTITY:
            self.env[node.name] = self._value(node.args[0], node)
            return
        handler = _HANDLERS.get(target)
        if handler is None:
            raise UnsupportedOpError(f"unsupported op {target} at {where(node)}")
        handler(self, node)

    def _fold(self, node: torch.fx.Node) -> None:
        def sub(a: Any) -> Any:
            return self.consts[a.name] if isinstance(a, torch.fx.Node) else a

        args = torch.fx.node.map_aggregate(node.args, sub)
        kwargs = torch.fx.node.map_aggregate(node.kwargs, sub)
        with torch.no_grad():
            value = node.target(*args, **kwargs)
        if not isinstance(value, torch.Tensor):
            raise UnsupportedOpError(f"unsupported op {node.target} (non-tensor result) at {where(node)}")
        self.consts[node.name] = value

    def _outputs(self, node: torch.fx.Node) -> None:
        results = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
        for i, r in enumerate(results):
            src = self._value(r, node)
            name = self.g.unique_name("output" if i == 0 else f"output_{i}")
            self.g.add(name, "output", [src], {}, self.g[src].type)


# ---------------------------------------------------------------------------------------------- handlers
def _arg(node: torch.fx.Node, i: int, key: str, default: Any) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


def _pair(v: Any) -> list[int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return [int(x) for x in (v * 2 if len(v) == 1 else v)]


def _linear(lo: _Lowering, n: torch.fx.Node) -> None:
    ins = [lo._value(n.args[0], n), lo._value(n.args[1], n)]
    bias = _arg(n, 2, "bias", None)
    if bias is not None:
        ins.append(lo._value(bias, n))
    lo._emit(n, "linear", ins, {})


def _addmm(lo: _Lowering, n: torch.fx.Node) -> None:
    """addmm(b, x, m) = x @ m + b = linear(x, m.T, b) when m is a compile-time constant."""
    bias, x, m = n.args[:3]
    if n.kwargs.get("beta", 1) != 1 or n.kwargs.get("alpha", 1) != 1:
        raise UnsupportedOpError(f"unsupported op {n.target} with alpha/beta at {where(n)}")
    if not isinstance(m, torch.fx.Node) or m.name not in lo.consts:
        raise UnsupportedOpError(f"unsupported op {n.target} with a non-constant matrix at {where(n)}")
    lo.consts[m.name + ".T"] = lo.consts[m.name].t().contiguous()
    lo.const_names[m.name + ".T"] = lo.const_names.get(m.name, m.name) + ".T"
    ins = [lo._value(x, n), lo._const(m.name + ".T", n)]
    if bias is not None:
        ins.append(lo._value(bias, n))
    lo._emit(n, "linear", ins, {})


def _mm(lo: _Lowering, n: torch.fx.Node) -> None:
    x, m = n.args[:2]
    if not isinstance(m, torch.fx.Node) or m.name not in lo.consts:
        raise UnsupportedOpError(f"unsupported op {n.target} with a non-constant matrix at {where(n)}")
    lo.consts[m.name + ".T"] = lo.consts[m.name].t().contiguous()
    lo.const_names[m.name + ".T"] = lo.const_names.get(m.name, m.name) + ".T"
    lo._emit(n, "linear", [lo._value(x, n), lo._const(m.name + ".T", n)], {})


def _conv(lo: _Lowering, n: torch.fx.Node) -> None:
    target = str(n.target)
    if target == "aten.convolution.default":
        x, w, b, stride, padding, dilation, transposed, _, groups = n.args[:9]
        if transposed:
            raise UnsupportedOpError(f"unsupported op {target} (transposed) at {where(n)}")
    else:
        x, w = n.args[:2]
        b = _arg(n, 2, "bias", None)
        stride, padding = _arg(n, 3, "stride", 1), _arg(n, 4, "padding", 0)
        dilation, groups = _arg(n, 5, "dilation", 1), _arg(n, 6, "groups", 1)
    if not isinstance(x, torch.fx.Node) or x.meta["val"].dim() != 4:
        raise UnsupportedOpError(f"unsupported op {target} (only 2-D NCHW convolution) at {where(n)}")
    ins = [lo._value(x, n), lo._value(w, n)] + ([lo._value(b, n)] if b is not None else [])
    attrs = {"stride": _pair(stride), "padding": _pair(padding)}
    if _pair(dilation) != [1, 1]:
        attrs["dilation"] = _pair(dilation)
    if int(groups) != 1:
        attrs["groups"] = int(groups)
    lo._emit(n, "conv2d", ins, attrs)


def _relu(lo: _Lowering, n: torch.fx.Node) -> None:
    lo._emit(n, "relu", [lo._value(n.args[0], n)], {})


def _add(lo: _Lowering, n: torch.fx.Node) -> None:
    a, b = n.args[:2]
    alpha = n.kwargs.get("alpha", 1)
    ins = []
    for i, v in enumerate((a, b)):
        if isinstance(v, torch.fx.Node):
            if i == 1 and alpha != 1:
                if v.name not in lo.consts:
                    raise UnsupportedOpError(f"unsupported op {n.target} with alpha={alpha} at {where(n)}")
                lo.consts[v.name + ".alpha"] = lo.consts[v.name] * alpha
                ins.append(lo._const(v.name + ".alpha", n))
            else:
                ins.append(lo._value(v, n))
        elif isinstance(v, (int, float)):
            key = f"{n.name}.scalar{i}"
            lo.consts[key] = torch.tensor(float(v) * (alpha if i == 1 else 1), dtype=torch.float32)
            ins.append(lo._const(key, n))
        else:
            raise UnsupportedOpError(f"unsupported argument {v!r} of {n.target} at {where(n)}")
    lo._emit(n, "add", ins, {})


def _flatten(lo: _Lowering, n: torch.fx.Node) -> None:
    lo._emit(n, "flatten", [lo._value(n.args[0], n)],
             {"start_dim": int(_arg(n, 1, "start_dim", 0)), "end_dim": int(_arg(n, 2, "end_dim", -1))})


def _reshape(lo: _Lowering, n: torch.fx.Node) -> None:
    """view/reshape; a kept leading (batch) dimension becomes -1 so the graph runs on any batch size."""
    src = n.args[0]
    in_shape = tuple(src.meta["val"].shape)
    out_shape = [int(d) for d in _tensor_type(n).shape]
    if out_shape and in_shape and out_shape[0] == in_shape[0]:
        out_shape[0] = -1
    lo._emit(n, "reshape", [lo._value(src, n)], {"shape": out_shape})


_HANDLERS: dict[str, Callable[[_Lowering, torch.fx.Node], None]] = {
    "aten.linear.default": _linear,
    "aten.addmm.default": _addmm,
    "aten.mm.default": _mm,
    "aten.conv2d.default": _conv,
    "aten.convolution.default": _conv,
    "aten.relu.default": _relu,
    "aten.relu_.default": _relu,
    "aten.add.Tensor": _add,
    "aten.add_.Tensor": _add,
    "aten.flatten.using_ints": _flatten,
    "aten.view.default": _reshape,
    "aten.reshape.default": _reshape,
    "aten._unsafe_view.default": _reshape,
}


# -------------------------------------------------------------------------------------------- entry points
def from_exported(ep: torch.export.ExportedProgram, name: str) -> Graph:
    """Lower an ExportedProgram to a float IR graph (verified)."""
    return _Lowering(ep, name).run()


def from_torch(module: torch.nn.Module, example_inputs: tuple, name: str) -> Graph:
    """Export ``module`` (in eval mode) with ``torch.export`` and lower it to a float IR graph.

    Raises UnsupportedOpError naming the ATen op and its source location for anything hwforge cannot lower.
    """
    module.eval()
    inputs = tuple(torch.tensor(x) if isinstance(x, np.ndarray) else x for x in example_inputs)
    try:
        ep = torch.export.export(module, inputs)
    except Exception as e:  # torch raises many types; the user needs one line saying export failed
        raise ConfigError(f"torch.export failed for '{name}': {type(e).__name__}: {one_line(e)[:300]}") from None
    return from_exported(ep, name)
