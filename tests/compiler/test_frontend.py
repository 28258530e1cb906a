"""torch.export frontend: zoo models, ATen variants, unsupported ops, model specs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwforge.compiler import from_torch, load_model
from hwforge.errors import ConfigError, UnsupportedOpError
from hwforge.ir import interpret

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_interpreter_matches_eager_on_zoo(loaded, name):
    m = loaded[name]
    x, _ = m.test_set
    with torch.no_grad():
        eager = m.module(torch.from_numpy(np.array(x))).numpy()
    ours = interpret(m.graph, {"x": x})["output"].numpy()  # whole test split: batch differs from the trace
    np.testing.assert_allclose(ours, eager, rtol=1e-6, atol=1e-6)
    assert set(m.example_inputs) == {"x"} and m.example_inputs["x"].shape[0] == 32
    assert len(m.source_hash) == 64


def test_zoo_graph_names_follow_modules(loaded):
    ops = {n.name: n.op for n in loaded["cnn-digits"].graph.nodes()}
    assert ops["conv1"] == "conv2d" and ops["fc"] == "linear" and ops["flatten"] == "flatten"
    assert ops["conv1.weight"] == "constant"


class Misc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 6)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        y = x.view(x.shape[0], 3, 4).reshape(-1, 12)
        return torch.relu(self.drop(self.fc(y)) + 1.5)


def test_view_dropout_scalar_add_and_batch_independence():
    torch.manual_seed(0)
    net = Misc().eval()
    g = from_torch(net, (torch.randn(2, 12),), "misc")
    assert "dropout" not in {n.op for n in g.nodes()}
    x = torch.randn(7, 12)
    np.testing.assert_allclose(interpret(g, {"x": x})["output"].numpy(), net(x).detach().numpy(), atol=1e-6)


def test_decomposed_export_addmm_and_convolution():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).eval()
    x = torch.randn(2, 1, 4, 4)
    ep = torch.export.export(net, (x,)).run_decompositions()
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "aten.addmm.default" in targets and "aten.convolution.default" in targets
    from hwforge.compiler import from_exported

    g = from_exported(ep, "dec")
    assert {n.op for n in g.nodes()} >= {"linear", "conv2d", "reshape"}
    np.testing.assert_allclose(interpret(g, {g.inputs[0]: x})["output"].numpy(), net(x).detach().numpy(), atol=1e-6)


def test_unsupported_op_names_op_and_source(monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(UnsupportedOpError) as info:
        load_model("examples/unsupported_op.py:build")
    msg = str(info.value)
    assert "aten.sigmoid" in msg and "model.act" in msg and "examples/unsupported_op.py:" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "content,func,match",
    [
        (None, "build", "does not exist"),
        ("def build():\n    return 1\n", "build", r"must return \(torch.nn.Module, example_inputs\)"),
        ("def other():\n    pass\n", "build", "has no function 'build'"),
        ("import nonexistent_module_xyz\n", "build", "error while importing: ModuleNotFoundError"),
        ("def build():\n    raise RuntimeError('boom')\n", "build", r"build\(\) failed: RuntimeError: boom"),
    ],
)
def test_bad_python_specs(tmp_path, content, func, match):
    path = tmp_path / "m.py"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match) as info:
        load_model(f"{path}:{func}")
    assert "\n" not in str(info.value)


def test_unknown_spec():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        load_model("nope")


def test_pt2_round_trip_and_malformed(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 4), nn.ReLU()).eval()
    x = torch.randn(3, 8)
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(path))
    m = load_model(str(path))
    assert m.module is None and len(m.source_hash) == 64
    np.testing.assert_allclose(interpret(m.graph, m.example_inputs)["output"].numpy(), net(x).detach().numpy(),
                               atol=1e-6)
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(ConfigError, match="bad.pt2") as info:
        load_model(str(bad))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt2"))


def test_pt2_refuses_non_export_zip_and_pickled_weights(tmp_path):
    import json
    import zipfile

    z = tmp_path / "other.pt2"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/readme.txt", "hi")
    with pytest.raises(ConfigError, match="not a torch.export archive"):
        load_model(str(z))
    p = tmp_path / "pickled.pt2"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("m/archive_format", "pt2")
        zf.writestr("m/data/weights/model_weights_config.json",
                    json.dumps({"config": {"w": {"path_name": "weight_0", "use_pickle": True}}}))
    with pytest.raises(ConfigError, match="does not load pickle"):
        load_model(str(p))
