"""Model loading: MODEL as the CLI sees it (`load_model`: a zoo name, ``path/to/file.py:function`` or a
``torch.export`` ``.pt2`` file) -> `LoadedModel`, the float IR plus its example, calibration and test data.

`call_user_file` imports a user's Python file and calls one function in it (targets with their own kind of
input, such as the `smartupdate` target's optimizers, use it too). ``.pt2`` archives are checked before loading
so that nothing is ever unpickled. The ATen -> IR lowering itself is in `aten_lowering`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwforge.compiler.frontend.aten_lowering import from_exported, from_torch, one_line
from hwforge.errors import ConfigError
from hwforge.ir import Graph, graph_to_json


@dataclass
class LoadedModel:
    """A model ready for the pipeline: float IR plus the data to calibrate and check it."""

    name: str
    graph: Graph
    module: torch.nn.Module | None
    example_inputs: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray]
    test_set: tuple[np.ndarray, np.ndarray] | None
    source_hash: str


def _named_inputs(graph: Graph, tensors: tuple) -> dict[str, np.ndarray]:
    if len(tensors) != len(graph.inputs):
        raise ConfigError(f"model '{graph.name}' takes {len(graph.inputs)} inputs, got {len(tensors)} examples")
    return {
        n: np.ascontiguousarray(torch.as_tensor(t).detach().cpu().numpy())
        for n, t in zip(graph.inputs, tensors, strict=True)
    }


def load_model(spec: str) -> LoadedModel:
    """Resolve MODEL as the CLI sees it: a zoo name, ``path/to/file.py:function`` or a ``.pt2`` file."""
    from hwforge import zoo

    if spec in zoo.names():
        m = zoo.get(spec)
        graph = m.graph if m.graph is not None else from_torch(m.module, tuple(
            torch.from_numpy(np.array(v)) for v in m.example_inputs.values()), m.name)
        return LoadedModel(m.name, graph, m.module, dict(m.example_inputs), dict(m.calibration), m.test_set,
                           m.source_hash)
    path_part, _, func = spec.rpartition(":")
    if path_part.endswith(".py") and func:
        return _load_py(Path(path_part), func)
    if spec.endswith(".pt2"):
        return _load_pt2(Path(spec))
    raise ConfigError(
        f"unknown model '{spec}': not a zoo model ({', '.join(zoo.names())}), "
        "not path/to/file.py:function, not a .pt2 file"
    )


def call_user_file(path: Path, func: str, what: str = "model") -> tuple[Any, str]:
    """Import ``path`` as a fresh module and call ``func()``: (its result, sha256 of the file). Anything the
    user's code raises becomes one ConfigError line naming the file (``what`` says what the file should hold)."""
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    source = path.read_bytes()
    mod_name = f"hwforge_user_{what}_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    try:
        mspec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(mspec)
        sys.modules[mod_name] = module
        mspec.loader.exec_module(module)
    except Exception as e:  # user code can raise anything while importing
        sys.modules.pop(mod_name, None)
        raise ConfigError(f"{path}: error while importing: {type(e).__name__}: {one_line(e)}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ConfigError(f"{path} has no function '{func}'")
    try:
        result = fn()
    except Exception as e:
        raise ConfigError(f"{path}:{func}() failed: {type(e).__name__}: {one_line(e)}") from None
    return result, hashlib.sha256(source).hexdigest()


def _load_py(path: Path, func: str) -> LoadedModel:
    result, digest = call_user_file(path, func)
    ready = _ready_graph(path, func, result, digest)
    if ready is not None:
        return ready
    if (
        not isinstance(result, (tuple, list))
        or len(result) != 2
        or not isinstance(result[0], torch.nn.Module)
    ):
        raise ConfigError(
            f"{path}:{func}() must return (torch.nn.Module, example_inputs), (hwforge.ir.Graph, example_inputs) "
            f"or a zoo model with a graph (e.g. hwforge.zoo.gcn_from_graph_file), got {type(result).__name__}"
        )
    net, examples = result
    examples = (examples,) if isinstance(examples, (torch.Tensor, np.ndarray)) else tuple(examples)
    if not examples or not all(isinstance(x, (torch.Tensor, np.ndarray)) for x in examples):
        raise ConfigError(f"{path}:{func}() example_inputs must be a tensor or a tuple of tensors")
    examples = tuple(torch.as_tensor(x) for x in examples)
    graph = from_torch(net, examples, path.stem)
    inputs = _named_inputs(graph, examples)
    return LoadedModel(path.stem, graph, net, inputs, dict(inputs), None, digest)


def _ready_graph(path: Path, func: str, result: Any, digest: str) -> LoadedModel | None:
    """A user function may return a model already in the IR (GCNs: their structure is data, not code): a zoo
    model whose ``graph`` is set, or ``(Graph, example_inputs)`` with examples a dict by input name or a
    tuple in input order. None when ``result`` is neither (the torch path handles it)."""
    from hwforge.zoo import ZooModel

    if isinstance(result, ZooModel) and result.graph is not None:
        result.graph.verify()
        h = hashlib.sha256((digest + result.source_hash).encode()).hexdigest()
        return LoadedModel(result.name, result.graph, None, dict(result.example_inputs), dict(result.calibration),
                           result.test_set, h)
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], Graph)):
        return None
    graph, examples = result
    graph.verify()
    if isinstance(examples, dict):
        if sorted(examples) != sorted(graph.inputs):
            raise ConfigError(f"{path}:{func}() examples are for {sorted(examples)}, the graph takes {graph.inputs}")
        examples = tuple(examples[n] for n in graph.inputs)
    examples = (examples,) if isinstance(examples, (torch.Tensor, np.ndarray)) else tuple(examples)
    inputs = _named_inputs(graph, examples)
    h = hashlib.sha256(digest.encode())  # the graph's content too: its data may come from files, not the source
    h.update(graph_to_json(graph).encode())
    for key in sorted(graph.constants):
        h.update(np.ascontiguousarray(graph.constants[key]).tobytes())
    return LoadedModel(graph.name, graph, None, inputs, dict(inputs), None, h.hexdigest())


def _check_pt2_archive(path: Path) -> None:
    """Refuse archives that torch.export.load would unpickle (weights_only=False paths): no pickle, ever."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n.endswith("archive_format") for n in names):
                raise ConfigError(f"{path} is not a torch.export archive")
            for n in names:
                if re.search(r"(weights|constants)_config\.json$", n):
                    config = json.loads(zf.read(n)).get("config", {})
                    if any(isinstance(v, dict) and v.get("use_pickle") for v in config.values()):
                        raise ConfigError(f"{path} stores pickled tensors; hwforge does not load pickle")
                if re.search(r"/(custom_obj|opaque_obj)", n):
                    raise ConfigError(f"{path} contains pickled objects; hwforge does not load pickle")
                if n.endswith(".pt"):  # example inputs / legacy constants: must load without pickle
                    torch.load(io.BytesIO(zf.read(n)), weights_only=True)
    except ConfigError:
        raise
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable torch.export .pt2 archive: {one_line(e)[:200]}") from None
    except Exception as e:  # weights_only unpickler rejects non-tensor content with various errors
        raise ConfigError(f"{path}: unsafe or unreadable content: {type(e).__name__}: {one_line(e)[:200]}") from None


def _load_pt2(path: Path) -> LoadedModel:
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    _check_pt2_archive(path)
    try:
        ep = torch.export.load(str(path))
    except Exception as e:
        raise ConfigError(f"{path}: cannot load .pt2: {type(e).__name__}: {one_line(e)[:200]}") from None
    graph = from_exported(ep, path.stem)
    examples = getattr(ep, "example_inputs", None)
    if examples and not examples[1] and examples[0]:
        tensors = tuple(examples[0])
    else:  # no stored examples: deterministic random ones of the traced shapes
        gen = torch.Generator().manual_seed(0)
        tensors = tuple(torch.randn(graph[n].type.shape, generator=gen) for n in graph.inputs)
    inputs = _named_inputs(graph, tensors)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedModel(path.stem, graph, None, inputs, dict(inputs), None, digest)
