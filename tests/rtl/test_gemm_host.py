"""Pure-Python parts of the gemm target: configuration, program format, golden model, cycle formula."""

from __future__ import annotations

import numpy as np
import pytest
from gemm_cases import OS_CFG, WS_CFG, conv_net, mlp

from hwforge.errors import ConfigError
from hwforge.ir.quant import int_matmul, requantize
from hwforge.rtl.gemm import (
    DESC_WORDS,
    F,
    GemmConfig,
    GemmLayer,
    build_program,
    fold_cycles_formula,
    pack,
    reference,
    rtl_compute_cycles,
    unpack,
)
from hwforge.rtl.gemm.program import resident


def test_from_options_parses_and_defaults():
    cfg = GemmConfig.from_options({"rows": "8", "cols": "0x4", "dataflow": "WS", "width": "16",
                                   "acc_width": "40"})
    assert (cfg.rows, cfg.cols, cfg.dataflow, cfg.width, cfg.acc_width) == (8, 4, "ws", 16, 40)
    assert cfg.bus_width == 32 and cfg.per_word == 2


@pytest.mark.parametrize("opts, needle", [
    ({"colz": "4"}, "colz"),
    ({"rows": "four"}, "rows"),
    ({"rows": "0"}, "rows"),
    ({"cols": "33"}, "cols"),
    ({"dataflow": "foo"}, "dataflow"),
    ({"width": "12"}, "width"),
    ({"acc_width": "16"}, "acc_width"),
    ({"acc_width": "64"}, "acc_width"),
    ({"bus_width": "48"}, "bus_width"),
    ({"op_depth": "2", "rows": "8"}, "op_depth"),
    ({"out_depth": "8", "rows": "4"}, "out_depth"),
    ({"out_depth": "1022"}, "out_depth"),
])
def test_from_options_errors_name_the_key(opts, needle):
    with pytest.raises(ConfigError, match=needle):
        GemmConfig.from_options(opts)


def test_layer_validation():
    with pytest.raises(ConfigError, match="bias"):
        GemmLayer(np.ones((2, 3)), np.ones(3), multiplier=1, shift=0)
    with pytest.raises(ConfigError, match="multiplier"):
        GemmLayer(np.ones((2, 3)), np.ones(2), multiplier=1 << 16, shift=0)
    with pytest.raises(ConfigError, match="a_gather"):
        GemmLayer(np.ones((2, 3)), np.ones(2), multiplier=1, shift=0, a_gather=np.zeros((4, 2)))


def test_program_errors():
    cfg = GemmConfig(rows=2, cols=2, op_depth=4, out_depth=16)
    ok = GemmLayer(np.ones((2, 4)), np.zeros(2), multiplier=1, shift=0)
    with pytest.raises(ConfigError, match="K=5 exceeds op_depth"):
        build_program(cfg, [GemmLayer(np.ones((2, 5)), np.zeros(2), multiplier=1, shift=0)], np.ones(5))
    with pytest.raises(ConfigError, match="reshaped"):
        build_program(cfg, [ok], np.ones(6))
    with pytest.raises(ConfigError, match="8-bit"):
        build_program(cfg, [ok], np.full(4, 300))
    with pytest.raises(ConfigError, match="out_depth"):
        build_program(cfg, [GemmLayer(np.ones((9, 4)), np.zeros(9), multiplier=1, shift=0)], np.ones(4))
    with pytest.raises(ConfigError, match="outside its source"):
        build_program(cfg, [GemmLayer(np.ones((2, 4)), np.zeros(2), multiplier=1, shift=0,
                                      a_gather=np.full((1, 4), 9))], np.ones(4))


@pytest.mark.parametrize("width, bus", [(4, 32), (8, 64), (16, 32), (16, 128)])
def test_pack_roundtrip(width, bus):
    cfg = GemmConfig(width=width, acc_width=2 * width + 8, bus_width=bus)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    v = np.random.default_rng(width).integers(lo, hi + 1, 37)
    words = pack(cfg, v)
    assert len(words) == -(-37 // cfg.per_word)
    assert all(0 <= w < 1 << bus for w in words)
    np.testing.assert_array_equal(unpack(cfg, words)[:37], v)


def test_resident_weights_exactly_when_every_column_block_fits():
    """OS keeps a layer's weights on chip when ceil(N/C) blocks of K (padded to words) fit both banks."""
    cfg = GemmConfig(rows=4, cols=4, width=8, dataflow="os", op_depth=64, bus_width=32)   # banks: 2 x 64
    assert resident(cfg, 64, 8) and not resident(cfg, 64, 9)          # 2 blocks of 64 fit, 3 do not
    assert resident(cfg, 31, 16) and not resident(cfg, 33, 16)        # K=31 pads to 32: 4 x 32 = 128
    assert not resident(GemmConfig(rows=4, cols=4, width=8, dataflow="ws", op_depth=64), 4, 4)
    assert not resident(GemmConfig(rows=1, cols=1, width=8, dataflow="os", op_depth=256), 1, 65)  # 64 bias slots


def test_program_layout_and_readback():
    layers, x = mlp(0)
    prog = build_program(OS_CFG, layers, x)
    assert prog.words[0] == 2
    d1 = prog.words[1 + DESC_WORDS: 1 + 2 * DESC_WORDS]
    assert (d1[F.M], d1[F.K], d1[F.N]) == (5, 5, 4)
    assert d1[F.SRC] == prog.plans[0].dst and d1[F.SRC_STRIDE] == 8  # padded rows of layer 0's output
    assert d1[F.FLAGS] == 1 | 4 and prog.plans[0].dst_words == 2   # ReLU, weights resident
    # read_outputs inverts the output packing (fake the hardware by packing the reference)
    refs = reference(OS_CFG, layers, x)
    mem = list(prog.words)
    for p, r in zip(prog.plans, refs, strict=True):
        padded = np.zeros((p.m, p.dst_words * OS_CFG.per_word), np.int64)
        padded[:, :p.n] = r
        mem[p.dst:p.dst + p.m * p.dst_words] = pack(OS_CFG, padded)
    lo, hi = prog.output_range()
    for a, b in zip(prog.read_outputs(mem[lo:hi], base=lo), refs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_reference_matches_quant_semantics():
    layers, x = conv_net(1)
    outs = reference(OS_CFG, layers, x)
    assert [o.shape for o in outs] == [(16, 3), (1, 5), (1, 3)]
    # conv via explicit zero-padded im2col; then NCHW flatten of the NHWC-stored output
    xi = x.reshape(2, 4, 4)
    xp = np.pad(xi, ((0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, y:y + 3, z:z + 3].reshape(-1) for y in range(4) for z in range(4)])
    acc = int_matmul(cols, layers[0].weight, layers[0].bias, 32)
    y0 = requantize(acc, layers[0].multiplier, layers[0].shift, True, 8)
    np.testing.assert_array_equal(outs[0], y0)
    flat = y0.T.reshape(1, -1)  # (c, h*w) -> NCHW flatten
    y1 = requantize(int_matmul(flat, layers[1].weight, layers[1].bias, 32), layers[1].multiplier,
                    layers[1].shift, True, 8)
    np.testing.assert_array_equal(outs[1], y1)


def test_reference_accumulator_wraps():
    cfg = GemmConfig(width=8, acc_width=17)
    layer = GemmLayer(np.full((1, 8), 127), np.zeros(1), multiplier=1, shift=0)
    out = reference(cfg, [layer], np.full(8, 127))[0]
    wrapped = ((127 * 127 * 8 + (1 << 16)) % (1 << 17)) - (1 << 16)
    assert out[0, 0] == max(-128, min(127, wrapped))


@pytest.mark.parametrize("cfg", [OS_CFG, WS_CFG])
def test_fold_formula(cfg):
    R, C = cfg.rows, cfg.cols
    folds, cycles = fold_cycles_formula(cfg, 5, 7, 5)
    if cfg.dataflow == "os":
        assert folds == -(-5 // R) * -(-5 // C) and cycles == folds * (2 * R + C + 7 - 2)
    else:
        assert folds == -(-7 // R) * -(-5 // C) and cycles == folds * (2 * R + C + 5 - 2)
    assert rtl_compute_cycles(cfg, 5, 7, 5, m_tile=5) == (folds, cycles)
    f2, c2 = rtl_compute_cycles(cfg, 5, 7, 5, m_tile=3)
    if cfg.dataflow == "ws":
        assert f2 == 2 * folds and c2 == fold_cycles_formula(cfg, 3, 7, 5)[1] + fold_cycles_formula(cfg, 2, 7, 5)[1]


def test_emit_is_deterministic_and_faults_validated():
    from amaranth.back import verilog

    from hwforge.generated import strip_header
    from hwforge.rtl.gemm import GemmAccelerator
    from hwforge.rtl.gemm.sim import emit_rtlil, emit_verilog

    cfg = GemmConfig(rows=1, cols=2, op_depth=8, out_depth=8)
    a = verilog.convert(GemmAccelerator(cfg), name="gemm_accel", emit_src=False)
    b = verilog.convert(GemmAccelerator(cfg), name="gemm_accel", emit_src=False)
    assert a == b and "module gemm_accel" in a
    assert emit_verilog(cfg).startswith("// Generated by hwforge") and strip_header(emit_verilog(cfg)) == a
    assert emit_verilog(cfg, "flip_acc_bit") != a
    assert "module \\gemm_accel" in emit_rtlil(cfg) or "gemm_accel" in emit_rtlil(cfg)
    with pytest.raises(ConfigError, match="unknown fault"):
        emit_verilog(cfg, "melt")


def test_gather_helpers_match_torch_semantics():
    """conv2d_gather + flatten_gather reproduce a strided, padded, batched conv and NCHW flatten."""
    from hwforge.rtl.gemm.gather import conv2d_gather, flatten_gather

    rng = np.random.default_rng(5)
    bsz, c, h, w, o = 2, 3, 5, 4, 2
    x = rng.integers(-9, 10, (bsz, c, h, w))
    wt = rng.integers(-9, 10, (o, c, 3, 2))
    g = conv2d_gather(bsz, c, h, w, 3, 2, stride=(2, 1), padding=(1, 1))
    a = np.where(g < 0, 0, x.reshape(-1)[np.clip(g, 0, None)])
    y = a @ wt.reshape(o, -1).T                      # rows (b, oy, ox), channels last
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = (h + 2 - 3) // 2 + 1, (w + 2 - 2) + 1
    direct = np.zeros((bsz, o, oh, ow), np.int64)
    for yy in range(oh):
        for xx in range(ow):
            patch = xp[:, :, 2 * yy:2 * yy + 3, xx:xx + 2].reshape(bsz, -1)
            direct[:, :, yy, xx] = patch @ wt.reshape(o, -1).T
    np.testing.assert_array_equal(y.reshape(bsz, oh, ow, o).transpose(0, 3, 1, 2), direct)
    f = flatten_gather(bsz, o, oh, ow)
    np.testing.assert_array_equal(y.reshape(-1)[f], direct.reshape(bsz, -1))
    # the same conv reading an NHWC-stored source
    gn = conv2d_gather(bsz, c, h, w, 3, 2, stride=(2, 1), padding=(1, 1), layout="nhwc")
    xn = x.transpose(0, 2, 3, 1).reshape(-1)
    np.testing.assert_array_equal(np.where(gn < 0, 0, xn[np.clip(gn, 0, None)]), a)


def test_fixed_point_accumulator_config():
    """16-bit operands may accumulate in 32 bits (the fixed-point contract); narrower stays an error."""
    assert GemmConfig(width=16, acc_width=32).acc_width == 32
    for width, acc in ((16, 31), (8, 16), (4, 8)):
        with pytest.raises(ConfigError, match="acc_width"):
            GemmConfig(width=width, acc_width=acc)


def test_reference_is_the_fixed_point_combination():
    from gemm_cases import COMB_CFG, COMB_SHIFT, fixed_point_layer

    from hwforge.ir.quant import qmatmul_fixed_int

    for relu in (False, True):
        layers, x = fixed_point_layer(4, relu=relu)
        w, b = layers[0].weight, layers[0].bias
        want = qmatmul_fixed_int(x, w, b, COMB_SHIFT, relu, 32, 16)
        np.testing.assert_array_equal(reference(COMB_CFG, layers, x)[0], want)
    assert np.abs(x @ w.T).max() >= 1 << 31
