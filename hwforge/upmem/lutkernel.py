"""The LOCALUT DPU kernel emitter: DPU C from templates/localut_dpu.c.j2 plus every DPU's arguments and MRAM data.

Output channels (weight rows) are sharded across DPUs in contiguous blocks; every DPU gets all activation rows and
the whole table. Inside a DPU, tasklet ``t`` owns a contiguous range of rows and processes it ``ROW_BLOCK`` rows at
a time; for each activation row and group all tasklets build the group's slice in a shared WRAM slot (unless it is
cached there), then each looks up its own rows (algorithm: `hwforge.upmem.lutgemm`; design: docs/localut.md). The
WRAM working set is the cached slices and their tags, the joint sub-table buffer and per tasklet the accumulators,
weight indices and small DMA buffers; it must fit in 64 KB minus the tasklet stacks and the runtime's own data,
else `ConfigError` names the scheme, p and bits.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.upmem.kernel import DpuKernel
from hwforge.upmem.lut import ADT_ENTRY_BYTES, MAX_P, MRAM_BYTES, LutLayout, build_lut, lut_layout
from hwforge.upmem.lutgemm import check_operands, weight_indices

WRAM_BYTES = 64 * 1024
STACK_BYTES = 1024  # per tasklet (the SDK's default stack), reserved out of WRAM
RUNTIME_BYTES = 1024  # barrier, __host block, cycle counter, runtime variables
ROW_BLOCK_MAX = 256  # rows per tasklet pass: 1 KB of accumulators, at most 1 KB of indices per DMA
SLOTS_MAX = 64  # slices cached in WRAM at most
EXPANDING = ("activation-canonical", "joint")  # schemes whose slice the DPU expands from a canonical sub-table
FAULTS = ("skip_last_group", "slice_off_by_one")
ARGS = (("uint32_t", "m_rows"), ("uint32_t", "n_groups"), ("uint32_t", "n_rows"), ("uint32_t", "row_base"))
_C_INT = {1: "int8_t", 2: "int16_t", 4: "int32_t"}
_C_UINT = {1: "uint8_t", 2: "uint16_t", 4: "uint32_t"}


@cache
def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _ceil(x: int, q: int) -> int:
    return -(-x // q) * q


def x_chunk(scheme: str, lay: LutLayout, p: int, wbits: int, nr_tasklets: int) -> int:
    """Expansion entries per work piece (activation-canonical, joint): at most 256 source bytes, a multiple of 8
    entries (8-byte DMA), and small enough that every tasklet gets a piece when the slice is small."""
    if scheme not in EXPANDING:
        return 0
    src = lay.ridx_bytes if scheme == "joint" else lay.entry_bytes
    share = _ceil(-(-(1 << (p * wbits)) // nr_tasklets), 8)
    return max(8, min(256 // src, share))


def per_tasklet_wram(scheme: str, row_block: int, lay: LutLayout, xchunk: int) -> int:
    """WRAM one tasklet owns: accumulators, weight indices, the activation window and the scheme's DMA buffers."""
    extra = {"full": 0, "weight-canonical": 8}.get(scheme, 0)
    if scheme in EXPANDING:
        extra = 16 + _ceil(xchunk * (lay.ridx_bytes if scheme == "joint" else lay.entry_bytes), 8)
    return row_block * (4 + lay.widx_bytes) + 16 + extra


def wram_budget(nr_tasklets: int, stack_bytes: int = STACK_BYTES) -> int:
    """WRAM left for the kernel's buffers after the tasklet stacks and the runtime."""
    return WRAM_BYTES - nr_tasklets * stack_bytes - RUNTIME_BYTES


def _wram(scheme: str, lay: LutLayout, p: int, wbits: int, nr_tasklets: int, row_block: int, slots: int = 1) -> int:
    per = per_tasklet_wram(scheme, row_block, lay, x_chunk(scheme, lay, p, wbits, nr_tasklets))
    return lay.wram_bytes + (slots - 1) * lay.slice_bytes + 4 * slots + nr_tasklets * per


def wram_bytes(scheme: str, p: int, wbits: int, abits: int, nr_tasklets: int, row_block: int = 8,
               w_levels: np.ndarray | None = None) -> int:
    """The kernel's WRAM working set (shared slice and sub-table buffers plus every tasklet's buffers)."""
    return _wram(scheme, lut_layout(scheme, p, wbits, abits, w_levels), p, wbits, nr_tasklets, row_block)


def fits(scheme: str, p: int, wbits: int, abits: int, nr_tasklets: int = 16, stack_bytes: int = STACK_BYTES,
         w_levels: np.ndarray | None = None, mram_table_budget: int = MRAM_BYTES // 2) -> bool:
    """True when the smallest row block fits WRAM and table, reordering LUT and ADT fit ``mram_table_budget``
    bytes of MRAM (the default leaves half the MRAM for weights, activations and outputs)."""
    lay = lut_layout(scheme, p, wbits, abits, w_levels)
    return (_wram(scheme, lay, p, wbits, nr_tasklets, 8) <= wram_budget(nr_tasklets, stack_bytes)
            and lay.mram_bytes <= mram_table_budget)


def max_p(wbits: int, abits: int, scheme: str, nr_tasklets: int = 16, stack_bytes: int = STACK_BYTES,
          w_levels: np.ndarray | None = None, mram_table_budget: int = MRAM_BYTES // 2) -> int:
    """Largest packing degree p (1..MAX_P) whose kernel fits WRAM and MRAM; ConfigError when not even p=1 fits."""
    best = 0
    for p in range(1, MAX_P + 1):
        if fits(scheme, p, wbits, abits, nr_tasklets, stack_bytes, w_levels, mram_table_budget):
            best = p
        else:
            break  # every structure grows with p
    if best == 0:
        raise ConfigError(f"LOCALUT {scheme}: no p fits WRAM/MRAM for wbits={wbits}, abits={abits}, "
                          f"{nr_tasklets} tasklets")
    return best


def shard_rows(n: int, nr_dpus: int) -> list[tuple[int, int]]:
    """Contiguous blocks of output channels, ``(start, count)`` per DPU; at most ``n`` DPUs get work."""
    if nr_dpus < 1:
        raise ConfigError(f"LOCALUT kernel: nr_dpus must be >= 1, got {nr_dpus}")
    per = -(-n // min(nr_dpus, n))
    return [(s, min(per, n - s)) for s in range(0, n, per)]


def localut_kernel(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int, p: int,
                   scheme: str, nr_dpus: int, nr_tasklets: int = 16, fault: str | None = None,
                   stack_bytes: int = STACK_BYTES, slots: int | None = None) -> DpuKernel:
    """Emit the LOCALUT LUT-GEMM kernel for ``y = ac @ w_levels[wc].T`` (wc [N, K], ac [M, K] codes).

    ``slots``: slices cached in WRAM (a power of two); default: as many as the WRAM left after the row buffers
    holds, at most `SLOTS_MAX` and at most the number of distinct activation groups ``2**(p*abits)``.
    ``fault`` injects a deliberate bug (``skip_last_group``, ``slice_off_by_one``) so tests can prove the
    verification catches it.
    """
    if not 1 <= nr_tasklets <= 24:
        raise ConfigError(f"LOCALUT kernel: nr_tasklets must be 1..24, got {nr_tasklets}")
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"LOCALUT kernel: unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    check_operands(wc, w_levels, ac, wbits, abits)
    lv = np.asarray(w_levels, dtype=np.int64)
    lay = lut_layout(scheme, p, wbits, abits, lv)
    budget = wram_budget(nr_tasklets, stack_bytes)
    wc, ac = np.asarray(wc, dtype=np.int64), np.asarray(ac, dtype=np.int64)
    (n, k), m = wc.shape, ac.shape[0]
    shards = shard_rows(n, nr_dpus)
    rows_per_tasklet = -(-max(c for _, c in shards) // nr_tasklets)
    row_block = min(ROW_BLOCK_MAX, _ceil(rows_per_tasklet, 8))
    while row_block > 8 and _wram(scheme, lay, p, wbits, nr_tasklets, row_block) > budget:
        row_block -= 8
    wram = _wram(scheme, lay, p, wbits, nr_tasklets, row_block)
    if wram > budget:
        raise ConfigError(f"LOCALUT {scheme} p={p} wbits={wbits} abits={abits}: WRAM working set {wram} B "
                          f"(slice {lay.slice_bytes} B, sub-table {lay.sub_bytes} B) exceeds the {budget} B "
                          f"left after {nr_tasklets} stacks; use a smaller p (max_p) or fewer tasklets")
    slots = _slots(scheme, lay, p, wbits, abits, nr_tasklets, row_block, budget, slots)
    wram = _wram(scheme, lay, p, wbits, nr_tasklets, row_block, slots)
    lut = build_lut(scheme, p, wbits, abits, lv)
    row_blocks = -(-rows_per_tasklet // row_block)
    row_pad = nr_tasklets * row_block * row_blocks
    groups = -(-k // p)
    k_row = _ceil(groups * p, 8)
    act = np.zeros(m * k_row + 16, dtype=np.uint8)  # +16: the last group's 16-byte window stays in bounds
    act[:m * k_row].reshape(m, k_row)[:, :k] = ac
    widx_all = weight_indices(lut, wc)  # [G, N]
    out_bytes = m * row_pad * 4
    common = {"hwf_act": act.tobytes(), "hwf_lut": lut.image}
    if lut.adt is not None:
        common["hwf_adt"] = lut.adt_image
    if lut.rlut is not None:
        common["hwf_rlut"] = lut.rlut_image
    if lut.perms is not None:
        perm = np.zeros((len(lut.perms), 8), dtype=np.uint8)
        perm[:, :p] = lut.perms
        common["hwf_perm"] = perm.tobytes()
    widx_bytes = groups * row_pad * lut.widx_dtype.itemsize
    mram = sum(len(v) for v in common.values()) + widx_bytes + out_bytes
    if mram > MRAM_BYTES:
        raise ConfigError(f"LOCALUT {scheme} p={p} wbits={wbits} abits={abits}: {mram} B of MRAM per DPU "
                          f"exceeds {MRAM_BYTES} B; use more DPUs or a smaller p")
    dpu_args, inputs = [], []
    for start, count in shards:
        buf = np.zeros((groups, row_pad), dtype=lut.widx_dtype.newbyteorder("<"))
        buf[:, :count] = widx_all[:, start:start + count]
        dpu_args.append({"m_rows": m, "n_groups": groups, "n_rows": count, "row_base": start})
        inputs.append({**common, "hwf_widx": buf.tobytes()})
    xchunk = x_chunk(scheme, lay, p, wbits, nr_tasklets)
    source = _env().get_template("localut_dpu.c.j2").render(
        scheme=scheme, p=p, wbits=wbits, abits=abits, nr_tasklets=nr_tasklets, args=ARGS, fault=fault,
        entry_t=_C_INT[lay.entry_bytes], widx_t=_C_UINT[lay.widx_bytes], expand=scheme in EXPANDING,
        rlut=scheme == "joint", xsrc_t=_C_UINT[lay.ridx_bytes] if scheme == "joint" else _C_INT[lay.entry_bytes],
        x_src_bytes=lay.ridx_bytes if scheme == "joint" else lay.entry_bytes, x_chunk=xchunk,
        nw_p=1 << (p * wbits), wmask=(1 << wbits) - 1, slots=slots,
        k_row=k_row, row_block=row_block, row_blocks=row_blocks, slice_bytes=lay.slice_bytes, sub_bytes=lay.sub_bytes,
        col_bytes=lut.col_entries * lay.entry_bytes, nr_perms=0 if lut.perms is None else len(lut.perms),
        rlut_row_bytes=lay.rlut_row_bytes, act_bytes=len(common["hwf_act"]), widx_bytes=widx_bytes,
        lut_bytes=len(lut.image), adt_bytes=len(lut.adt_image), rlut_bytes=len(lut.rlut_image),
        perm_bytes=len(common.get("hwf_perm", b"")), out_bytes=out_bytes)
    meta = {"kernel": "localut", "scheme": scheme, "p": p, "wbits": wbits, "abits": abits, "m": m, "n": n, "k": k,
            "groups": groups, "k_row": k_row, "row_pad": row_pad, "row_block": row_block, "row_blocks": row_blocks,
            "shards": shards, "fault": fault, "wram_bytes": wram, "wram_budget": budget, "mram_bytes": mram,
            "lut_entries": lut.entries, "lut_table_bytes": lut.table_bytes, "lut_image_bytes": len(lut.image),
            "reorder_bytes": lut.reorder_bytes, "slice_bytes": lay.slice_bytes, "sub_bytes": lay.sub_bytes,
            "entry_bytes": lay.entry_bytes, "widx_bytes": lay.widx_bytes, "x_chunk": xchunk, "slots": slots,
            "adt_entry_bytes": ADT_ENTRY_BYTES, "cycles_symbol": "hwf_cycles",
            "broadcast_symbols": sorted(common),  # identical on every DPU: a host may broadcast them
            "weight_bytes_per_dpu": widx_bytes, "lookups": m * n * groups}
    return DpuKernel(name=f"localut-{scheme}-p{p}", dpu_source=source, nr_tasklets=nr_tasklets, args=ARGS,
                     dpu_args=tuple(dpu_args), mram_inputs=tuple(inputs), output_symbol="hwf_out",
                     output_bytes=out_bytes, meta=meta)


def _slots(scheme: str, lay: LutLayout, p: int, wbits: int, abits: int, nr_tasklets: int, row_block: int,
           budget: int, slots: int | None) -> int:
    """The slice cache size: checked when given, else the largest power of two that fits (see localut_kernel)."""
    if slots is not None:
        if slots < 1 or slots & (slots - 1):
            raise ConfigError(f"LOCALUT kernel: slots must be a power of two >= 1, got {slots}")
        need = _wram(scheme, lay, p, wbits, nr_tasklets, row_block, slots)
        if need > budget:
            raise ConfigError(f"LOCALUT {scheme} p={p} wbits={wbits} abits={abits}: {slots} cached slices need "
                              f"{need} B of WRAM, {budget} B available")
        return slots
    slots = 1
    while (slots * 2 <= min(SLOTS_MAX, 1 << (p * abits))
           and _wram(scheme, lay, p, wbits, nr_tasklets, row_block, slots * 2) <= budget):
        slots *= 2
    return slots


def decode_localut_output(kernel: DpuKernel, raw: bytes | list[bytes]) -> np.ndarray:
    """The DPUs' ``hwf_out`` bytes (DPU 0 first, ``output_bytes`` each, or one bytes object per DPU) -> y [M, N]
    int32."""
    if not isinstance(raw, (bytes, bytearray)):
        raw = b"".join(raw)
    meta = kernel.meta
    if len(raw) != kernel.output_bytes * kernel.nr_dpus:
        raise ConfigError(f"{kernel.name}: expected {kernel.output_bytes * kernel.nr_dpus} output bytes, "
                          f"got {len(raw)}")
    per = np.frombuffer(raw, dtype="<i4").reshape(kernel.nr_dpus, meta["m"], meta["row_pad"])
    y = np.zeros((meta["m"], meta["n"]), dtype=np.int32)
    for d, (start, count) in enumerate(meta["shards"]):
        y[:, start:start + count] = per[d, :, :count]
    return y

