"""GCN and ResGCN graphs built directly in the IR (the graph structure is data, so there is nothing to trace).

GCN layer (Kipf & Welling, = torch_geometric ``GCNConv`` with normalize=True, add_self_loops=True):
``H' = act(Â (H W^T) + b)``, emitted as ``linear(H, W)`` (combination, no bias) then
``spmm(., Â, b, relu)`` (aggregation); Â is one set of CSR constants (``adj.indptr``, ``adj.indices``,
``adj.values``) shared by every layer.

ResGCN (DeepGCNs' pre-activation "res+" block): a head GCN layer, then ``depth`` blocks
``h = h + conv(relu(norm(h)))`` with norm an inference BatchNorm folded to a per-channel ``affine`` (ReLU
fused), then ``relu(norm(h))`` and a linear classifier. ``depth`` counts residual blocks, so the network has
``depth + 1`` graph convolutions. Weights are seeded (Glorot uniform, small uniform biases, BatchNorm gamma
near 1 and beta near 0) or given (a trained state dict, `resgcn_weight_names`). Either way the BatchNorm
statistics are measured on the model's own features (the whole graph is one batch, as in full-graph training
with batch statistics), so activations stay in a bounded range at any depth (which the fixed-point format
relies on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from hwforge.errors import ConfigError
from hwforge.graphs import GraphData, normalized_adjacency
from hwforge.ir import Graph, TensorType

BN_EPS = 1e-5


def _glorot(rng: np.random.Generator, out_f: int, in_f: int) -> np.ndarray:
    bound = np.sqrt(6.0 / (in_f + out_f))
    return rng.uniform(-bound, bound, (out_f, in_f)).astype(np.float32)


def _bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-0.1, 0.1, n).astype(np.float32)


class _Builder:
    """Adds GCN pieces to an IR graph and mirrors the float forward pass in numpy (for BatchNorm folding)."""

    def __init__(self, name: str, graph: GraphData, features: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != graph.num_nodes:
            raise ConfigError(f"features {features.shape} do not match a graph of {graph.num_nodes} nodes")
        self.g = Graph(name)
        adj = normalized_adjacency(graph)
        self.adj = adj
        self.g.add("x", "input", [], {}, TensorType(features.shape, "f32"))
        self.g.add_constant("adj.indptr", adj.indptr.astype(np.int32), "int32")
        self.g.add_constant("adj.indices", adj.indices.astype(np.int32), "int32")
        self.g.add_constant("adj.values", adj.values, "f32")
        self.val = features  # numpy value of the node most recently built

    def _aggregate(self, h: np.ndarray) -> np.ndarray:
        rows = np.repeat(np.arange(len(self.adj.indptr) - 1), np.diff(self.adj.indptr))
        out = np.zeros_like(h)
        np.add.at(out, rows, self.adj.values[:, None] * h[self.adj.indices])
        return out

    def conv(self, name: str, src: str, x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool) -> str:
        """One GCN layer: ``linear`` (no bias) then ``spmm`` with bias and optional ReLU."""
        n, out_f = x.shape[0], w.shape[0]
        self.g.add_constant(f"{name}.weight", w, "f32")
        self.g.add_constant(f"{name}.bias", b, "f32")
        self.g.add(f"{name}.lin", "linear", [src, f"{name}.weight"], {}, TensorType((n, out_f), "f32"))
        adj = ["adj.indptr", "adj.indices", "adj.values"]
        self.g.add(name, "spmm", [f"{name}.lin", *adj, f"{name}.bias"], {"relu": relu}, TensorType((n, out_f), "f32"))
        y = self._aggregate(x @ w.T) + b
        self.val = np.maximum(y, 0) if relu else y
        return name

    def norm_relu(self, name: str, src: str, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> str:
        """BatchNorm with statistics measured on ``x`` (biased variance, as BatchNorm normalises a batch) and
        gamma/beta, folded to ``affine`` + ReLU."""
        mean, var = x.mean(axis=0), x.var(axis=0)
        scale = (gamma / np.sqrt(var + BN_EPS)).astype(np.float32)
        shift = (beta - mean * scale).astype(np.float32)
        self.g.add_constant(f"{name}.scale", scale, "f32")
        self.g.add_constant(f"{name}.shift", shift, "f32")
        self.g.add(name, "affine", [src, f"{name}.scale", f"{name}.shift"], {"relu": True},
                   TensorType(x.shape, "f32"))
        self.val = np.maximum(x * scale + shift, 0)
        return name

    def finish(self, src: str) -> Graph:
        self.g.add("output", "output", [src], {}, self.g[src].type)
        self.g.verify()
        return self.g


def gcn_graph(graph: GraphData, features: np.ndarray, hidden: int | Sequence[int] = 16, classes: int = 4,
              layers: int = 2, seed: int = 0, weights: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
              name: str | None = None) -> Graph:
    """A ``layers``-deep GCN (ReLU between layers, logits out) over ``graph`` as a float IR graph.

    ``weights`` (one ``(W [out, in], b [out])`` per layer) overrides the seeded Glorot initialisation.
    """
    if layers < 1:
        raise ConfigError(f"a GCN needs at least one layer, got {layers}")
    hid = [hidden] * (layers - 1) if isinstance(hidden, int) else list(hidden)
    if len(hid) != layers - 1:
        raise ConfigError(f"{layers} layers need {layers - 1} hidden widths, got {hid}")
    b = _Builder(name or f"gcn-{graph.name}", graph, features)
    widths = [b.val.shape[1], *hid, classes]
    rng = np.random.default_rng(seed)
    src, x = "x", b.val
    for i in range(layers):
        w, bias = weights[i] if weights is not None else (_glorot(rng, widths[i + 1], widths[i]),
                                                           _bias(rng, widths[i + 1]))
        src = b.conv(f"conv{i + 1}", src, x, np.asarray(w, np.float32), np.asarray(bias, np.float32), i < layers - 1)
        x = b.val
    return b.finish(src)


def resgcn_weight_names(depth: int) -> list[str]:
    """The keys of a ResGCN state dict for `resgcn_graph`'s ``weights``, in network order: ``conv0``, then per
    block ``block<i>.norm`` (BatchNorm gamma as ``.weight``, beta as ``.bias``) and ``block<i>.conv``, then
    ``norm_out`` and ``classifier``; every one with ``.weight`` and ``.bias`` (linear weights ``[out, in]``)."""
    layers = ["conv0", *(f"block{i}.{part}" for i in range(1, depth + 1) for part in ("norm", "conv")),
              "norm_out", "classifier"]
    return [f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")]


def resgcn_graph(graph: GraphData, features: np.ndarray, depth: int, hidden: int = 16, classes: int = 4,
                 seed: int = 0, name: str | None = None, weights: Mapping[str, np.ndarray] | None = None) -> Graph:
    """A ResGCN with ``depth`` pre-activation residual blocks (the issue's range is 4..56) of width ``hidden``.

    ``weights`` (keys `resgcn_weight_names`, float arrays of the shapes ``depth``, ``hidden``, ``classes`` and
    the feature width imply) overrides the seeded initialisation; BatchNorm statistics are measured either way.
    """
    if depth < 1 or hidden < 1:
        raise ConfigError(f"ResGCN needs depth >= 1 and hidden >= 1, got depth {depth}, hidden {hidden}")
    b = _Builder(name or f"resgcn-{graph.name}-d{depth}", graph, features)
    rng = np.random.default_rng(seed)
    f = b.val.shape[1]
    if weights is not None:
        missing = [k for k in resgcn_weight_names(depth) if k not in weights]
        if missing:
            raise ConfigError(f"ResGCN weights lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")

    def param(key: str, shape: tuple[int, ...], seeded: Callable[[], np.ndarray]) -> np.ndarray:
        if weights is None:
            return seeded()
        w = np.asarray(weights[key], dtype=np.float32)
        if w.shape != shape:
            raise ConfigError(f"ResGCN weight {key} has shape {w.shape}, expected {shape}")
        return w

    def linear(layer: str, out_f: int, in_f: int) -> tuple[np.ndarray, np.ndarray]:
        w = param(f"{layer}.weight", (out_f, in_f), lambda: _glorot(rng, out_f, in_f))
        return w, param(f"{layer}.bias", (out_f,), lambda: _bias(rng, out_f))

    def norm(layer: str, src: str, x: np.ndarray) -> str:
        gamma = param(f"{layer}.weight", (hidden,),
                      lambda: (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        beta = param(f"{layer}.bias", (hidden,), lambda: (0.1 * rng.standard_normal(hidden)).astype(np.float32))
        return b.norm_relu(layer, src, x, gamma, beta)

    h = b.conv("conv0", "x", b.val, *linear("conv0", hidden, f), relu=False)
    hv = b.val
    for i in range(1, depth + 1):
        t = norm(f"block{i}.norm", h, hv)
        t = b.conv(f"block{i}.conv", t, b.val, *linear(f"block{i}.conv", hidden, hidden), relu=False)
        hv = hv + b.val
        h = b.g.add(f"block{i}", "add", [h, t], {}, TensorType(hv.shape, "f32")).name
    t = norm("norm_out", h, hv)
    cw, cb = linear("classifier", classes, hidden)
    b.g.add_constant("classifier.weight", cw, "f32")
    b.g.add_constant("classifier.bias", cb, "f32")
    b.g.add("classifier", "linear", [t, "classifier.weight", "classifier.bias"], {},
            TensorType((graph.num_nodes, classes), "f32"))
    return b.finish("classifier")
