"""The LOCALUT DPU kernel emitter: DPU C from templates/localut_dpu.c.j2 plus every DPU's arguments and MRAM data.

Work is split across DPUs by `hwforge.upmem.dpu_kernel.grid`, the common rule: output channels (weight rows) in
contiguous blocks, and the activation rows too when channels per DPU would be few; every DPU gets the whole
table. Inside a DPU, per tile of activation rows and per group, each tile row's slice is built in its own WRAM
slot by one tasklet (unless the slot already holds it), then the tasklets share out work items (part of the
tile x block of output rows) and accumulate ``slice[widx]`` (algorithm: `hwforge.upmem.lutgemm`; design and why:
docs/localut.md). The per-(row, group) work is thus done once per DPU rather than once per tasklet, which is what
made the first version slower than the baselines on small layers. The WRAM working set (slices, accumulators,
work-item tables, joint sub-tables, per-tasklet buffers) must fit in 64 KB minus the tasklet stacks and the
runtime's own data, else `ConfigError` names the scheme, p and bits.
"""

from __future__ import annotations

from functools import cache
from math import comb
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.generated import header
from hwforge.upmem.dpu_kernel import DpuKernel, grid
from hwforge.upmem.lut import ADT_ENTRY_BYTES, MAX_P, MRAM_BYTES, LutLayout, build_lut, lut_layout
from hwforge.upmem.lutgemm import check_operands, weight_indices

WRAM_BYTES = 64 * 1024
STACK_BYTES = 1024  # per tasklet (the SDK's default stack), reserved out of WRAM
RUNTIME_BYTES = 1024  # barrier, __host block, cycle counter, runtime variables
ROW_BLOCK_MAX = 256  # rows per tasklet pass: 1 KB of accumulators, at most 1 KB of indices per DMA
TILE_MAX = 64  # activation rows per tile (= slices in WRAM) at most
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
    """Expansion entries per DMA piece (activation-canonical, joint): one tasklet expands a whole slice, so pieces
    are as large as the 256-byte source buffer allows (a multiple of 8 entries), capped at the slice."""
    if scheme not in EXPANDING:
        return 0
    src = lay.ridx_bytes if scheme == "joint" else lay.entry_bytes
    return max(8, min(256 // src, _ceil(1 << (p * wbits), 8)))


def nr_perms(scheme: str, lay: LutLayout, p: int, wbits: int) -> int:
    """Weight sort permutations (= columns per slice) of weight-canonical, 0 for the other schemes."""
    if scheme != "weight-canonical":
        return 0
    col = _ceil(comb((1 << wbits) + p - 1, p) * lay.entry_bytes, 8)
    return lay.slice_bytes // col


def per_tasklet_wram(scheme: str, row_block: int, lay: LutLayout, xchunk: int) -> int:
    """WRAM one tasklet owns: weight indices of a row block, the activation window and the scheme's buffers (an
    expanding scheme's descriptor and DMA piece)."""
    extra = 0
    if scheme in EXPANDING:
        extra = 16 + _ceil(xchunk * (lay.ridx_bytes if scheme == "joint" else lay.entry_bytes), 8)
    return row_block * lay.widx_bytes + 16 + extra


def wram_budget(nr_tasklets: int, stack_bytes: int = STACK_BYTES) -> int:
    """WRAM left for the kernel's buffers after the tasklet stacks and the runtime."""
    return WRAM_BYTES - nr_tasklets * stack_bytes - RUNTIME_BYTES


def _wram(scheme: str, lay: LutLayout, p: int, wbits: int, nr_tasklets: int, row_block: int, tile: int = 1,
          chunk_rows: int | None = None, items: int = 1, builders: int = 1) -> int:
    """Shared: one slice and tag per tile row, the tile x chunk accumulators, the work-item tables (4 uint32
    each), weight-canonical's permutation table, joint's sub-table per builder (each tasklet that builds slices
    builds them alone); plus every tasklet's own buffers."""
    chunk_rows = row_block if chunk_rows is None else chunk_rows
    per = per_tasklet_wram(scheme, row_block, lay, x_chunk(scheme, lay, p, wbits, nr_tasklets))
    shared = tile * (lay.slice_bytes + 4 + 4 * chunk_rows) + 16 * items + 8 * nr_perms(scheme, lay, p, wbits)
    return shared + builders * lay.sub_bytes + nr_tasklets * per


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


def _layout(scheme: str, lay: LutLayout, p: int, wbits: int, abits: int, nr_tasklets: int, m: int, rows: int,
            budget: int, tile: int | None, builders: int) -> tuple[int, int, int, int, int]:
    """The DPU's schedule: ``(row_block, blocks_per_chunk, row_blocks, tile, tile_parts)``.

    Output rows go in blocks of ``row_block`` (a multiple of 8); a chunk of blocks shares the WRAM accumulators;
    the tile is the activation rows whose slices sit in WRAM together (one each), at most `TILE_MAX` and M; the
    tile's rows are split into ``tile_parts`` parts, and (parts x blocks) work items are dealt to the tasklets.
    Among the layouts that fit WRAM (the whole DPU in one chunk if possible, since every chunk builds the slices
    again; then the largest tile) it takes the one whose busiest tasklet does the least lookup work per group
    (`_work`): a DPU with few output rows splits the tile, and the item count is kept close to a multiple of the
    tasklets so that no tasklet gets one item more than the others.
    """
    if tile is not None and tile < 1:
        raise ConfigError(f"LOCALUT kernel: tile must be >= 1, got {tile}")
    best = None
    for row_block in range(8, min(ROW_BLOCK_MAX, _ceil(rows, 8)) + 1, 8):
        row_blocks = -(-rows // row_block)
        for cb in range(row_blocks, 0, -1):
            tops = [tile] if tile is not None else range(min(m, TILE_MAX), 0, -1)
            top = next((t for t in tops
                        if _wram(scheme, lay, p, wbits, nr_tasklets, row_block, t, cb * row_block, t * cb,
                                 builders) <= budget),
                       0)
            if top:
                break
        if not top:
            continue
        chunks = -(-row_blocks // cb)
        for parts in range(1, top + 1):
            ms = -(-top // parts)
            if -(-top // ms) != parts:
                continue
            work = _work(nr_tasklets, m, rows, row_block, cb, chunks, top, parts)
            key = (chunks, -min(top, nr_tasklets), work, parts * cb, row_block)
            if best is None or key < best[0]:
                best = (key, (row_block, cb, row_blocks, top, parts))
    if best is None:
        if tile is not None:
            raise ConfigError(f"LOCALUT {scheme} p={p} wbits={wbits} abits={abits}: a tile of {tile} rows (slices) "
                              f"needs {_wram(scheme, lay, p, wbits, nr_tasklets, 8, tile)} B of WRAM, "
                              f"{budget} B available")
        wram = _wram(scheme, lay, p, wbits, nr_tasklets, 8)
        raise ConfigError(f"LOCALUT {scheme} p={p} wbits={wbits} abits={abits}: WRAM working set {wram} B "
                          f"(slice {lay.slice_bytes} B, sub-table {lay.sub_bytes} B) exceeds the {budget} B "
                          f"left after {nr_tasklets} stacks; use a smaller p (max_p) or fewer tasklets")
    return best[1]


def _work(nr_tasklets: int, m: int, rows: int, row_block: int, cb: int, chunks: int, tile: int, parts: int) -> int:
    """Estimated instructions of the busiest tasklet over the whole kernel, per group: its work items' lookups
    (52 instructions per 8 rows, as the template counts them) and per-item overhead, plus its slice keys."""
    ms = -(-tile // parts)
    per_item = ms * (-(-min(row_block, rows) // 8) * 52 + 6) + 40
    items = -(-(parts * cb) // nr_tasklets)
    return -(-m // tile) * chunks * (items * per_item + -(-tile // nr_tasklets) * 40)


def localut_kernel(wc: np.ndarray, w_levels: np.ndarray, ac: np.ndarray, wbits: int, abits: int, p: int,
                   scheme: str, nr_dpus: int, nr_tasklets: int = 16, fault: str | None = None,
                   stack_bytes: int = STACK_BYTES, tile: int | None = None) -> DpuKernel:
    """Emit the LOCALUT LUT-GEMM kernel for ``y = ac @ w_levels[wc].T`` (wc [N, K], ac [M, K] codes).

    ``tile``: activation rows per tile, i.e. slices held in WRAM (one per tile row); default: see `_layout`.
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
    (n, k), m_all = wc.shape, ac.shape[0]
    if nr_dpus < 1:
        raise ConfigError(f"LOCALUT kernel: nr_dpus must be >= 1, got {nr_dpus}")
    cells = grid(m_all, n, nr_dpus)  # the baselines' rule: channel blocks, activation rows when channels are few
    shards, m_shards = [(c[2], c[3]) for c in cells], [(c[0], c[1]) for c in cells]
    m = max(c for _, c in m_shards)  # activation rows of the busiest DPU
    # joint: as many builders as have room for their own sub-table (at least one; max_p checks that it fits)
    for builders in range(nr_tasklets, 0, -1) if scheme == "joint" else [nr_tasklets]:
        try:
            row_block, cb, row_blocks, mt, tparts = _layout(scheme, lay, p, wbits, abits, nr_tasklets, m,
                                                            max(c for _, c in shards), budget, tile, builders)
            break
        except ConfigError:
            if builders == 1 or scheme != "joint":
                raise
    chunk_rows = cb * row_block
    nr_chunks = -(-row_blocks // cb)
    row_pad = nr_chunks * chunk_rows
    item_ms = -(-mt // tparts)
    slice_entries = lay.slice_bytes // lay.entry_bytes
    items = [(mp * item_ms, b * row_block, mp * item_ms * slice_entries, mp * item_ms * chunk_rows + b * row_block)
             for mp in range(tparts) for b in range(cb)]
    wram = _wram(scheme, lay, p, wbits, nr_tasklets, row_block, mt, chunk_rows, len(items), builders)
    lut = build_lut(scheme, p, wbits, abits, lv)
    groups = -(-k // p)
    k_row = _ceil(groups * p, 8)
    acts = []
    for m0, mc in m_shards:
        act = np.zeros(m * k_row + 16, dtype=np.uint8)  # +16: the last group's 16-byte window stays in bounds
        act[:mc * k_row].reshape(mc, k_row)[:, :k] = ac[m0:m0 + mc]
        acts.append(act.tobytes())
    widx_all = weight_indices(lut, wc)  # [G, N]
    out_bytes = m * row_pad * 4
    common = {"hwf_lut": lut.image}
    if lut.adt is not None:
        common["hwf_adt"] = lut.adt_image
    if lut.rlut is not None:
        common["hwf_rlut"] = lut.rlut_image
    if lut.perms is not None:
        perm = np.zeros((len(lut.perms), 8), dtype=np.uint8)
        perm[:, :p] = lut.perms
        common["hwf_perm"] = perm.tobytes()
    widx_bytes = groups * row_pad * lut.widx_dtype.itemsize
    mram = sum(len(v) for v in common.values()) + len(acts[0]) + widx_bytes + out_bytes
    if mram > MRAM_BYTES:
        raise ConfigError(f"LOCALUT {scheme} p={p} wbits={wbits} abits={abits}: {mram} B of MRAM per DPU "
                          f"exceeds {MRAM_BYTES} B; use more DPUs or a smaller p")
    dpu_args, inputs = [], []
    for (_, mc), (start, count), act in zip(m_shards, shards, acts, strict=True):
        buf = np.zeros((groups, row_pad), dtype=lut.widx_dtype.newbyteorder("<"))
        buf[:, :count] = widx_all[:, start:start + count]
        dpu_args.append({"m_rows": mc, "n_groups": groups, "n_rows": count, "row_base": start})
        inputs.append({**common, "hwf_act": act, "hwf_widx": buf.tobytes()})
    xchunk = x_chunk(scheme, lay, p, wbits, nr_tasklets)
    config = {"kernel": "localut", "scheme": scheme, "p": p, "wbits": wbits, "abits": abits, "dpus": nr_dpus,
              "tasklets": nr_tasklets, "m": m_all, "n": n, "k": k, "fault": fault or "none",
              "stack_bytes": stack_bytes, "tile": "auto" if tile is None else tile}
    source = _env().get_template("localut_dpu.c.j2").render(
        header=header("hwforge.upmem.lutkernel.localut_kernel", config),
        scheme=scheme, p=p, wbits=wbits, abits=abits, nr_tasklets=nr_tasklets, args=ARGS, fault=fault,
        entry_t=_C_INT[lay.entry_bytes], widx_t=_C_UINT[lay.widx_bytes], expand=scheme in EXPANDING,
        rlut=scheme == "joint", xsrc_t=_C_UINT[lay.ridx_bytes] if scheme == "joint" else _C_INT[lay.entry_bytes],
        x_src_bytes=lay.ridx_bytes if scheme == "joint" else lay.entry_bytes, x_chunk=xchunk,
        nw_p=1 << (p * wbits), wmask=(1 << wbits) - 1, mt=mt, chunk_rows=chunk_rows, nr_chunks=nr_chunks,
        items=items, item_ms=item_ms, entry_bytes=lay.entry_bytes, builders=builders,
        k_row=k_row, row_block=row_block, slice_bytes=lay.slice_bytes, sub_bytes=lay.sub_bytes,
        col_bytes=lut.col_entries * lay.entry_bytes, nr_perms=0 if lut.perms is None else len(lut.perms),
        rlut_row_bytes=lay.rlut_row_bytes, act_bytes=len(acts[0]), widx_bytes=widx_bytes,
        lut_bytes=len(lut.image), adt_bytes=len(lut.adt_image), rlut_bytes=len(lut.rlut_image),
        perm_bytes=len(common.get("hwf_perm", b"")), out_bytes=out_bytes)
    meta = {"kernel": "localut", "scheme": scheme, "p": p, "wbits": wbits, "abits": abits, "m": m_all, "m_dpu": m,
            "n": n, "k": k,
            "groups": groups, "k_row": k_row, "row_pad": row_pad, "row_block": row_block, "row_blocks": row_blocks,
            "chunk_rows": chunk_rows, "chunks": nr_chunks, "tile": mt, "tile_parts": tparts, "items": len(items),
            "builders": builders,
            "shards": shards, "m_shards": m_shards, "fault": fault, "wram_bytes": wram, "wram_budget": budget,
            "mram_bytes": mram,
            "lut_entries": lut.entries, "lut_table_bytes": lut.table_bytes, "lut_image_bytes": len(lut.image),
            "reorder_bytes": lut.reorder_bytes, "slice_bytes": lay.slice_bytes, "sub_bytes": lay.sub_bytes,
            "entry_bytes": lay.entry_bytes, "widx_bytes": lay.widx_bytes, "x_chunk": xchunk,
            "adt_entry_bytes": ADT_ENTRY_BYTES, "cycles_symbol": "hwf_cycles",
            # identical on every DPU: a host may broadcast them
            "broadcast_symbols": sorted([*common, *(["hwf_act"] if len(set(acts)) == 1 else [])]),
            "weight_bytes_per_dpu": widx_bytes, "lookups": m_all * n * groups}
    return DpuKernel(name=f"localut-{scheme}-p{p}", dpu_source=source, nr_tasklets=nr_tasklets, args=ARGS,
                     dpu_args=tuple(dpu_args), mram_inputs=tuple(inputs), output_symbol="hwf_out",
                     output_bytes=out_bytes, meta=meta)


def decode_localut_output(kernel: DpuKernel, raw: bytes | list[bytes]) -> np.ndarray:
    """The DPUs' ``hwf_out`` bytes (DPU 0 first, ``output_bytes`` each, or one bytes object per DPU) -> y [M, N]
    int32."""
    if not isinstance(raw, (bytes, bytearray)):
        raw = b"".join(raw)
    meta = kernel.meta
    if len(raw) != kernel.output_bytes * kernel.nr_dpus:
        raise ConfigError(f"{kernel.name}: expected {kernel.output_bytes * kernel.nr_dpus} output bytes, "
                          f"got {len(raw)}")
    per = np.frombuffer(raw, dtype="<i4").reshape(kernel.nr_dpus, meta["m_dpu"], meta["row_pad"])
    y = np.zeros((meta["m"], meta["n"]), dtype=np.int32)
    for d, ((m0, mc), (start, count)) in enumerate(zip(meta["m_shards"], meta["shards"], strict=True)):
        y[m0:m0 + mc, start:start + count] = per[d, :mc, :count]
    return y

