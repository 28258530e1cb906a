/* hwforge operation counts for the DPU cost model.
 *
 * HWF_COUNT(kind, n) adds n operations of a kind to the calling tasklet's counters under hwforge's emulation
 * (HWFORGE_EMULATION defined) and compiles to nothing with the real UPMEM SDK. This header has no other
 * dependency, so it can ship beside a DPU program built for hardware.
 *   HWF_ALU        add, sub, logic, shift, compare: one instruction each
 *   HWF_MUL8       8x8-bit multiply: one instruction
 *   HWF_MUL32      32-bit multiply (software on a DPU: a mul_step sequence)
 *   HWF_WRAM_LOAD  WRAM load
 *   HWF_WRAM_STORE WRAM store
 *   HWF_BRANCH     loop/branch overhead
 */
#ifndef HWFORGE_COUNT_H
#define HWFORGE_COUNT_H

enum hwf_count_kind {
    HWF_ALU = 0,
    HWF_MUL8 = 1,
    HWF_MUL32 = 2,
    HWF_WRAM_LOAD = 3,
    HWF_WRAM_STORE = 4,
    HWF_BRANCH = 5,
    HWF_NR_COUNT_KINDS = 6
};

#ifdef HWFORGE_EMULATION
void hwf_count(int kind, unsigned long long n);
#define HWF_COUNT(kind, n) hwf_count((kind), (unsigned long long)(n))
#else
#define HWF_COUNT(kind, n) ((void)0)
#endif

#endif /* HWFORGE_COUNT_H */
