"""`Node` and `Graph`: the data structure every pass reads and writes.

A graph is a DAG of nodes held in a networkx ``DiGraph`` (edge producer -> consumer). Node names are the
value names (SSA style): a node produces exactly one tensor, and ``Node.inputs`` lists producer names in
argument order. Iteration is ``lexicographical_topological_sort``, so the order depends only on structure and
names, never on insertion history: two graphs with the same content print and serialise identically.

Weights are not stored in attributes (which must stay plain JSON): a ``constant`` node carries
``{"key": k}`` and the array lives in ``Graph.constants[k]``.
"""

from __future__ import annotations

import copy as _copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from hwforge.errors import IRError
from hwforge.ir.types import TensorType, plain_json

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass
class Node:
    """One operation producing one tensor of type ``type``."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any]
    type: TensorType
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Free-form, non-serialised information (e.g. the source location a frontend came from)."""

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


class Graph:
    """A named DAG of `Node`s plus the constant arrays its ``constant`` nodes refer to."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self._g: nx.DiGraph = nx.DiGraph()
        self._nodes: dict[str, Node] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.constants: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------------------------- access
    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __getitem__(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise IRError(f"graph '{self.name}' has no node '{name}'") from None

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, name: str) -> Node:
        return self[name]

    def nodes(self) -> list[Node]:
        """All nodes in deterministic topological order (producers before consumers, ties by name)."""
        try:
            order = list(nx.lexicographical_topological_sort(self._g, key=self._order_key))
        except nx.NetworkXUnfeasible:
            raise IRError(f"graph '{self.name}' has a cycle") from None
        return [self._nodes[n] for n in order]

    def _order_key(self, name: str) -> str:
        """Ties go to graph inputs first, then by name: listings start with the interface."""
        return ("0" if self._nodes[name].op == "input" else "1") + name

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def users(self, name: str) -> list[str]:
        """Names of the nodes that consume ``name`` (sorted, each once)."""
        return sorted(self._g.successors(name))

    def input_types(self, node: Node) -> list[TensorType]:
        return [self[i].type for i in node.inputs]

    def constant_value(self, name: str) -> np.ndarray:
        """The array behind constant node ``name``."""
        n = self[name]
        if n.op != "constant":
            raise IRError(f"node '{name}' ({n.op}) is not a constant")
        return self.constants[n.attrs["key"]]

    def unique_name(self, base: str) -> str:
        """``base`` if free, else ``base_1``, ``base_2``, ... (deterministic)."""
        if base not in self._nodes:
            return base
        i = 1
        while f"{base}_{i}" in self._nodes:
            i += 1
        return f"{base}_{i}"

    # --------------------------------------------------------------------------------------------- building
    def add_node(self, node: Node) -> Node:
        """Add ``node``; its producers must already exist. Attributes are normalised to plain JSON."""
        if not isinstance(node.name, str) or not _NAME_RE.match(node.name):
            raise IRError(f"invalid node name {node.name!r}")
        if node.name in self._nodes:
            raise IRError(f"duplicate node name '{node.name}'")
        for src in node.inputs:
            if src not in self._nodes:
                raise IRError(f"node '{node.name}' ({node.op}): input '{src}' does not exist")
        try:
            node.attrs = plain_json(dict(node.attrs), "attributes")
        except ValueError as e:
            raise IRError(f"node '{node.name}' ({node.op}): {e}") from None
        node.inputs = list(node.inputs)
        self._nodes[node.name] = node
        self._g.add_node(node.name)
        for src in node.inputs:
            self._g.add_edge(src, node.name)
        if node.op == "input":
            self.inputs.append(node.name)
        elif node.op == "output":
            self.outputs.append(node.name)
        return node

    def add(
        self, name: str, op: str, inputs: list[str], attrs: dict[str, Any] | None, type: TensorType
    ) -> Node:
        """Shorthand for ``add_node(Node(...))``."""
        return self.add_node(Node(name, op, list(inputs), dict(attrs or {}), type))

    def add_constant(self, name: str, value: np.ndarray, dtype: str, key: str | None = None) -> Node:
        """Add a ``constant`` node and its array (stored under ``key``, default the node name)."""
        key = key or name
        arr = np.ascontiguousarray(value)
        self.constants[key] = arr
        return self.add(name, "constant", [], {"key": key}, TensorType(arr.shape, dtype))

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of ``old`` read ``new`` instead (output nodes included)."""
        if new not in self._nodes:
            raise IRError(f"replacement node '{new}' does not exist")
        for user in self.users(old):
            if user == new:
                continue
            n = self._nodes[user]
            n.inputs = [new if i == old else i for i in n.inputs]
            self._g.remove_edge(old, user)
            self._g.add_edge(new, user)

    def replace_node(self, name: str, node: Node) -> Node:
        """Redefine node ``name`` in place (new op/inputs/attrs/type); consumers keep reading it.

        ``node.name`` may differ, in which case consumers are moved to the new name.
        """
        old = self[name]
        if node.name != name:
            self.add_node(node)
            self.replace_uses(name, node.name)
            self.remove_node(name)
            return node
        if old.op != node.op and {old.op, node.op} & {"input", "output"}:
            raise IRError(f"node '{name}': cannot change op between {old.op} and {node.op} in place")
        for src in node.inputs:
            if src not in self._nodes or src == name:
                raise IRError(f"node '{name}' ({node.op}): input '{src}' does not exist")
        for src in list(self._g.predecessors(name)):
            self._g.remove_edge(src, name)
        node.attrs = plain_json(dict(node.attrs), "attributes")
        self._nodes[name] = node
        for src in node.inputs:
            self._g.add_edge(src, name)
        return node

    def remove_node(self, name: str, *, force: bool = False) -> None:
        """Delete a node. It must have no users unless ``force`` (then users are left dangling: a bug)."""
        if name not in self._nodes:
            raise IRError(f"graph '{self.name}' has no node '{name}'")
        users = self.users(name)
        if users and not force:
            raise IRError(f"cannot remove node '{name}': still used by {', '.join(users)}")
        node = self._nodes.pop(name)
        self._g.remove_node(name)
        if node.op == "input":
            self.inputs.remove(name)
        elif node.op == "output":
            self.outputs.remove(name)

    def eliminate_dead_code(self) -> None:
        """Remove nodes no output depends on (inputs stay: they are the interface) and unused constants."""
        live: set[str] = set(self.inputs)
        for out in self.outputs:
            live.add(out)
            live |= nx.ancestors(self._g, out)
        dead = set(self._nodes) - live
        for node in reversed(self.nodes()):  # consumers first, so every removal leaves no users behind
            if node.name in dead:
                self.remove_node(node.name)
        used = {n.attrs["key"] for n in self._nodes.values() if n.op == "constant"}
        self.constants = {k: v for k, v in self.constants.items() if k in used}

    def copy(self, name: str | None = None) -> Graph:
        """Deep copy: passes work on a copy so that they never change their input graph."""
        g = Graph(self.name if name is None else name)
        g._g = self._g.copy()
        g._nodes = {
            k: Node(n.name, n.op, list(n.inputs), _copy.deepcopy(n.attrs), n.type, dict(n.meta))
            for k, n in self._nodes.items()
        }
        g.inputs = list(self.inputs)
        g.outputs = list(self.outputs)
        g.constants = {k: np.array(v, copy=True) for k, v in self.constants.items()}
        return g

    # ----------------------------------------------------------------------------------------- verification
    def verify(self) -> None:
        """Check structure and run every op's verifier; raise IRError naming the first bad node and op."""
        from hwforge.ir.ops import verify_node  # late import: ops imports graph

        if not nx.is_directed_acyclic_graph(self._g):
            raise IRError(f"graph '{self.name}' has a cycle")
        if not self.outputs:
            raise IRError(f"graph '{self.name}' has no output node")
        for node in self.nodes():
            verify_node(self, node)
        for out in self.outputs:
            if self.users(out):
                raise IRError(f"node '{out}' (output): outputs cannot have users")

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} nodes, inputs={self.inputs}, outputs={self.outputs})"
