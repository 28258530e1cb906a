"""Baseline DPU kernels for low-bit GEMM: an integer MAC kernel and a bit-serial T-MAC-style LUT kernel.

Both baselines compute ``y[m, n] = sum_k levels[wc[n, k]] * ac[m, k]`` (int32), the same contract as the
LOCALUT kernel (`hwforge.ir.quant_lowbit.lowbit_matmul_int`), so the three are interchangeable in the
``localut`` target and comparable in the benchmark. Output channels (weight rows) are sharded across DPUs in
contiguous blocks and every DPU gets all activation rows, unless that leaves too few channels per DPU; then the
DPUs also split the activation rows (`hwforge.upmem.dpu_kernel.grid`, the same rule for all three kernels).
Inside a DPU, tasklets share an activation tile in WRAM and split the DPU's channels round-robin. The output is
channel-major (``out[n][M_PAD]`` int32 per DPU) so that a tasklet writes whole 8-byte-aligned blocks;
`decode_output` turns the DPUs' bytes back into ``M x N``.

Both return a `DpuKernel`; the generic host program that runs them (and the LOCALUT kernel) is in
`hwforge.upmem.dpu_kernel`.
"""

from __future__ import annotations

import numpy as np

from hwforge.errors import ConfigError
from hwforge.generated import header
from hwforge.ir.quant_lowbit import bit_linear
from hwforge.upmem.dpu_kernel import DpuKernel, grid, render

WRAM_BYTES = 64 * 1024
STACK_BYTES = 1024          # per tasklet, reserved out of WRAM for stacks (the SDK's default stack size)
RUNTIME_BYTES = 1024        # barriers, __host block, runtime variables
TILE_BUDGET = 16 * 1024     # shared activation tile
TABLE_BUDGET = 24 * 1024    # shared bit-serial tables
MB_MAX = 64                 # activation rows per tile (also bounds the per-tasklet accumulators)
FAULTS = ("drop_last_k_group",)
ARGS = (("uint32_t", "rows_n"), ("uint32_t", "m_rows"), ("uint32_t", "k_len"), ("uint32_t", "pad"))
BITSERIAL_ARGS = (("uint32_t", "rows_n"), ("uint32_t", "m_rows"), ("uint32_t", "k_bytes"), ("uint32_t", "pad"))


def _ceil(x: int, q: int) -> int:
    return -(-x // q) * q


def _check_operands(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int) -> None:
    wc, ac = np.asarray(wc), np.asarray(ac)
    if wc.ndim != 2 or ac.ndim != 2 or wc.shape[1] != ac.shape[1]:
        raise ConfigError(f"kernel operands: weights {wc.shape} and activations {ac.shape} do not match (N x K, M x K)")
    if len(w_levels) != 1 << wbits or (wc.size and (wc.min() < 0 or wc.max() >= 1 << wbits)):
        raise ConfigError(f"kernel operands: weight codes must be {wbits}-bit with a {1 << wbits}-entry level table")
    if ac.size and (ac.min() < 0 or ac.max() >= 1 << abits):
        raise ConfigError(f"kernel operands: activation codes must be unsigned {abits}-bit")
    if np.abs(np.asarray(w_levels, dtype=np.int64)).max() > 127:
        raise ConfigError("kernel operands: weight levels must fit in int8")


def _check_common(nr_tasklets: int, fault: str | None) -> None:
    if not 1 <= nr_tasklets <= 24:
        raise ConfigError(f"tasklets must be 1..24, got {nr_tasklets}")
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


def _wram_check(name: str, wram: int, nr_tasklets: int) -> None:
    limit = WRAM_BYTES - nr_tasklets * STACK_BYTES - RUNTIME_BYTES
    if wram > limit:
        raise ConfigError(f"{name}: working set {wram} B exceeds the {limit} B of WRAM left after "
                          f"{nr_tasklets} stacks; use fewer tasklets or a smaller K")


def _mb(m: int, per_row: int, budget: int) -> int:
    """Activation rows per tile: even (whole 8-byte output writes), <= MB_MAX, within ``budget`` bytes."""
    mb = min(MB_MAX, _ceil(m, 2), (budget // max(per_row, 1)) // 2 * 2)
    return mb


def _msplit(mb: int, rows_max: int, nr_tasklets: int) -> int:
    """Parts per tile so that ``channels x parts`` work items cover the tasklets (parts of an even row count)."""
    msplit = 1
    while rows_max * msplit < nr_tasklets and mb % (4 * msplit) == 0:
        msplit *= 2
    return msplit


def _acts(ac: np.ndarray, m_pad: int, k_pad: int) -> bytes:
    buf = np.zeros((m_pad, k_pad), dtype=np.uint8)
    buf[: ac.shape[0], : ac.shape[1]] = ac
    return buf.tobytes()


def mac_kernel(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int, nr_dpus: int,
               nr_tasklets: int = 16, fault: str | None = None) -> DpuKernel:
    """Integer MAC baseline: decoded int8 weight levels times uint8 activation codes, one multiply per weight."""
    _check_common(nr_tasklets, fault)
    _check_operands(wc, w_levels, ac, wbits, abits)
    wc, ac = np.asarray(wc, dtype=np.int64), np.asarray(ac, dtype=np.int64)
    (n, k), m = wc.shape, ac.shape[0]
    k_pad = _ceil(k, 8)
    cells = grid(m, n, nr_dpus)
    shards, m_shards = [(c[2], c[3]) for c in cells], [(c[0], c[1]) for c in cells]
    m_dpu = max(c for _, c in m_shards)
    mb = _mb(m_dpu, k_pad, TILE_BUDGET)
    if mb < 2:
        raise ConfigError(f"mac kernel: K={k} is too large for one activation tile ({TILE_BUDGET} B)")
    kc = min(k_pad, 512)
    n_pad = _ceil(max(c for _, c in shards), 2)
    m_pad = _ceil(m_dpu, mb)
    msplit = _msplit(mb, max(c for _, c in shards), nr_tasklets)
    wram = mb * k_pad + nr_tasklets * (kc + 4 * (mb // msplit))
    _wram_check("mac kernel", wram, nr_tasklets)
    levels = np.asarray(w_levels, dtype=np.int64)[wc].astype(np.int8)
    dpu_args, inputs = [], []
    for (m0, mc), (start, count) in zip(m_shards, shards, strict=True):
        wbuf = np.zeros((n_pad, k_pad), dtype=np.int8)
        wbuf[:count, :k] = levels[start:start + count]
        dpu_args.append({"rows_n": count, "m_rows": mc, "k_len": k_pad, "pad": 0})
        inputs.append({"weights": wbuf.tobytes(), "acts": _acts(ac[m0:m0 + mc], m_pad, k_pad)})
    config = {"kernel": "mac", "wbits": wbits, "abits": abits, "dpus": nr_dpus, "tasklets": nr_tasklets, "m": m,
              "n": n, "k": k, "fault": fault or "none"}
    source = render("mac.c.j2", args=ARGS, k_pad=k_pad, m_pad=m_pad, n_pad=n_pad, mb=mb, kc=kc, msplit=msplit,
                    fault=fault, header=header("hwforge.upmem.baselines.mac_kernel", config))
    return DpuKernel(
        name="mac", dpu_source=source, nr_tasklets=nr_tasklets, args=ARGS, dpu_args=tuple(dpu_args),
        mram_inputs=tuple(inputs), output_symbol="out", output_bytes=n_pad * m_pad * 4,
        meta={"kernel": "mac", "m": m, "n": n, "k": k, "k_pad": k_pad, "m_pad": m_pad, "n_pad": n_pad, "mb": mb,
              "msplit": msplit, "shards": shards, "m_shards": m_shards, "wbits": wbits, "abits": abits,
              "wram_bytes": wram, "fault": fault,
              "weight_bytes_per_dpu": n_pad * k_pad, "cycles_symbol": "hwf_cycles"})


def _plane_coefficients(w_levels: np.ndarray) -> tuple[int, list[dict]]:
    dec = bit_linear(np.asarray(w_levels))
    if dec is None:
        raise ConfigError("bitserial kernel: the weight level table is not bit-linear (offset + sum of bit weights)")
    offset, coef = dec
    planes = []
    for i, c in enumerate(coef):
        mag = abs(int(c))
        if mag == 0 or mag & (mag - 1):
            raise ConfigError(f"bitserial kernel: bit-plane coefficient {c} is not a power of two")
        planes.append({"index": i, "coef": int(c), "neg": c < 0, "shift": mag.bit_length() - 1})
    return offset, planes


def _index_exprs(g: int) -> tuple[list[str], int]:
    """C expressions that extract each table index from plane byte ``b``, and ALU operations per byte."""
    mask = (1 << g) - 1
    exprs, alu = [], 2  # pointer and loop-counter updates
    for sub in range(8 // g):
        shift = sub * g
        expr, ops = "b", 0
        if shift:
            expr, ops = f"(b >> {shift})", ops + 1
        if shift + g < 8:
            expr, ops = f"({expr} & {mask})", ops + 1
        exprs.append(expr)
        alu += ops + 2  # extraction, address add, accumulate
    return exprs, alu


def bitserial_kernel(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int, nr_dpus: int,
                     nr_tasklets: int = 16, g: int = 4, fault: str | None = None) -> DpuKernel:
    """Bit-serial LUT baseline (T-MAC style): per bit plane, one table look-up per group of ``g`` activations."""
    _check_common(nr_tasklets, fault)
    _check_operands(wc, w_levels, ac, wbits, abits)
    if g not in (2, 4, 8):
        raise ConfigError(f"bitserial kernel: group size g must be 2, 4 or 8, got {g}")
    offset, planes = _plane_coefficients(w_levels)
    wc, ac = np.asarray(wc, dtype=np.int64), np.asarray(ac, dtype=np.int64)
    (n, k), m = wc.shape, ac.shape[0]
    k_pad = _ceil(k, 64)
    tables_per_row = (k_pad // g) << g
    cells = grid(m, n, nr_dpus)
    shards, m_shards = [(c[2], c[3]) for c in cells], [(c[0], c[1]) for c in cells]
    m_dpu = max(c for _, c in m_shards)
    mb = min(_mb(m_dpu, tables_per_row, TABLE_BUDGET), _mb(m_dpu, k_pad, TILE_BUDGET))
    if mb < 2:
        raise ConfigError(f"bitserial kernel: tables for K={k}, g={g} exceed {TABLE_BUDGET} B for two rows; "
                          "use a smaller g")
    n_pad = _ceil(max(c for _, c in shards), 2)
    m_pad = _ceil(m_dpu, mb)
    pb = k_pad // 8
    msplit = _msplit(mb, max(c for _, c in shards), nr_tasklets)
    wram = mb * (k_pad + tables_per_row + 4) + nr_tasklets * (pb + 4 * (mb // msplit))
    _wram_check("bitserial kernel", wram, nr_tasklets)
    bits = np.zeros((n, wbits, k_pad), dtype=np.uint8)
    for i in range(wbits):
        bits[:, i, :k] = (wc >> i) & 1
    packed = np.packbits(bits, axis=2, bitorder="little")  # n x wbits x pb
    dpu_args, inputs = [], []
    for (m0, mc), (start, count) in zip(m_shards, shards, strict=True):
        buf = np.zeros((n_pad, wbits, pb), dtype=np.uint8)
        buf[:count] = packed[start:start + count]
        dpu_args.append({"rows_n": count, "m_rows": mc, "k_bytes": -(-k // 8), "pad": 0})
        inputs.append({"planes": buf.tobytes(), "acts": _acts(ac[m0:m0 + mc], m_pad, k_pad)})
    exprs, alu = _index_exprs(g)
    config = {"kernel": "bitserial", "wbits": wbits, "abits": abits, "g": g, "dpus": nr_dpus, "tasklets": nr_tasklets,
              "m": m, "n": n, "k": k, "fault": fault or "none"}
    source = render("bitserial.c.j2", args=BITSERIAL_ARGS, wbits=wbits, g=g, k_pad=k_pad, m_pad=m_pad,
                    n_pad=n_pad, mb=mb, msplit=msplit, offset=offset, planes=planes, index_expr=exprs, alu_per_byte=alu,
                    fault=fault, header=header("hwforge.upmem.baselines.bitserial_kernel", config))
    return DpuKernel(
        name="bitserial", dpu_source=source, nr_tasklets=nr_tasklets, args=BITSERIAL_ARGS, dpu_args=tuple(dpu_args),
        mram_inputs=tuple(inputs), output_symbol="out", output_bytes=n_pad * m_pad * 4,
        meta={"kernel": "bitserial", "m": m, "n": n, "k": k, "k_pad": k_pad, "m_pad": m_pad, "n_pad": n_pad,
              "mb": mb, "msplit": msplit, "g": g, "shards": shards, "m_shards": m_shards, "wbits": wbits,
              "abits": abits, "wram_bytes": wram,
              "lut_bytes": mb * tables_per_row, "fault": fault, "weight_bytes_per_dpu": n_pad * wbits * pb,
              "cycles_symbol": "hwf_cycles"})


def decode_output(kernel: DpuKernel, raw: bytes) -> np.ndarray:
    """The DPUs' output bytes (DPU 0 first, ``output_bytes`` each) -> ``M x N`` int64 for the baselines."""
    meta = kernel.meta
    m, n, m_pad, n_pad = meta["m"], meta["n"], meta["m_pad"], meta["n_pad"]
    if len(raw) != kernel.output_bytes * kernel.nr_dpus:
        raise ConfigError(f"{kernel.name}: expected {kernel.output_bytes * kernel.nr_dpus} output bytes, "
                          f"got {len(raw)}")
    per = np.frombuffer(raw, dtype="<i4").reshape(kernel.nr_dpus, n_pad, m_pad)
    y = np.zeros((m, n), dtype=np.int64)
    m_shards = meta.get("m_shards", [(0, m)] * len(meta["shards"]))
    for d, ((m0, mc), (start, count)) in enumerate(zip(m_shards, meta["shards"], strict=True)):
        y[m0:m0 + mc, start:start + count] = per[d, :count, :mc].T
    return y


