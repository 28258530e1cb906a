"""Integer op references against independent, loop-based numpy definitions (exactness, CONTRACTS.md)."""

import numpy as np
import pytest
import torch

from hwforge.ir import Graph, TensorType, interpret, interpret_all
from hwforge.ir import quant as q


def requant_py(acc: int, m: int, s: int, relu: bool, bits: int) -> int:
    v = (acc * m + (1 << (s - 1))) >> s
    v = max(v, 0) if relu else v
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def conv_loops(x, w, b, stride, pad):
    """Direct convolution by kernel offsets (no im2col), int64."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    acc = np.zeros((n, o, oh, ow), np.int64) + b.astype(np.int64)[None, :, None, None]
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]
            acc += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.int64))
    return acc


def qconv_graph(x_shape, w, b, stride, pad, attrs):
    g = Graph("qc")
    o, _, kh, kw = w.shape
    oh = (x_shape[2] + 2 * pad[0] - kh) // stride[0] + 1
    ow = (x_shape[3] + 2 * pad[1] - kw) // stride[1] + 1
    g.add("x", "input", [], {}, TensorType(x_shape, "int8"))
    g.add_constant("w", w, "int8")
    g.add_constant("b", b, "int32")
    g.add("c", "qconv2d", ["x", "w", "b"], {**attrs, "stride": list(stride), "padding": list(pad)},
          TensorType((x_shape[0], o, oh, ow), "int8"))
    g.add("output", "output", ["c"], {}, TensorType((x_shape[0], o, oh, ow), "int8"))
    g.verify()
    return g


@pytest.mark.parametrize("stride,pad", [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 1), (0, 2))])
def test_qconv2d_equals_direct_convolution(stride, pad):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (3, 4, 7, 6), dtype=np.int64).astype(np.int8)
    w = rng.integers(-128, 128, (5, 4, 3, 3), dtype=np.int64).astype(np.int8)
    b = rng.integers(-5000, 5000, (5,), dtype=np.int64).astype(np.int32)
    attrs = {"multiplier": 40000, "shift": 22, "relu": True, "acc_bits": 32, "out_bits": 8,
             "in_scale": 1.0, "w_scale": 1.0, "out_scale": 1.0}
    got = interpret(qconv_graph(x.shape, w, b, stride, pad, attrs), {"x": x})["output"]
    assert got.dtype == torch.int8
    acc = conv_loops(x, w, b, stride, pad)
    want = np.vectorize(lambda a: requant_py(int(a), 40000, 22, True, 8))(acc)
    np.testing.assert_array_equal(got.numpy(), want)
    # and im2col + int_matmul + requantize gives the same, per the contract
    rows = q.im2col(x, 3, 3, stride, pad)
    mm = q.requantize(q.int_matmul(rows, w.reshape(5, -1), b, 32), 40000, 22, True, 8)
    np.testing.assert_array_equal(mm.reshape(3, *got.shape[2:], 5).transpose(0, 3, 1, 2), want)


def test_accumulator_wraps_at_acc_bits():
    x = np.full((1, 4), 127, np.int8)
    w = np.full((1, 4), 127, np.int8)
    b = np.zeros(1, np.int32)
    g = Graph("wrap")
    g.add("x", "input", [], {}, TensorType((1, 4), "int8"))
    g.add_constant("w", w, "int8")
    g.add_constant("b", b, "int32")
    attrs = {"multiplier": 1 << 15, "shift": 15, "relu": False, "acc_bits": 16, "out_bits": 16,
             "in_scale": 1.0, "w_scale": 1.0, "out_scale": 1.0}
    g.add("fc", "qlinear", ["x", "w", "b"], attrs, TensorType((1, 1), "int16"))
    g.add("output", "output", ["fc"], {}, TensorType((1, 1), "int16"))
    g.verify()
    acc = 4 * 127 * 127  # 64516 wraps in 16 bits to 64516 - 65536
    assert interpret(g, {"x": x})["output"].item() == acc - 65536


def test_quantize_dequantize_match_torch_round_half_even():
    g = Graph("qd")
    g.add("x", "input", [], {}, TensorType((6,), "f32"))
    g.add("q", "quantize", ["x"], {"scale": 0.5, "bits": 4}, TensorType((6,), "int4"))
    g.add("d", "dequantize", ["q"], {"scale": 0.5}, TensorType((6,), "f32"))
    g.add("output", "output", ["d"], {}, TensorType((6,), "f32"))
    g.verify()
    x = np.array([0.25, 0.75, -0.25, 100.0, -100.0, 1.3], np.float32)
    vals = interpret_all(g, {"x": x})
    want = torch.clamp(torch.round(torch.from_numpy(x) / 0.5), -8, 7)
    np.testing.assert_array_equal(vals["q"].numpy(), want.numpy().astype(np.int8))
    np.testing.assert_array_equal(vals["output"].numpy(), want.numpy() * np.float32(0.5))
