/* hwforge host-side emulation of the UPMEM DPU runtime: attributes.h
 *
 * Written from the documented behaviour of the UPMEM SDK (no SDK code). Under emulation every memory is host
 * memory, so the MRAM address-space qualifier is empty and MRAM variables live in dedicated ELF sections of the
 * DPU shared object; the emulator knows those sections' bounds and checks every DMA against them.
 */
#ifndef HWF_DPU_ATTRIBUTES_H
#define HWF_DPU_ATTRIBUTES_H

#define DEPRECATED __attribute__((deprecated))
#define __NO_RETURN _Noreturn
#define __weak __attribute__((weak))
#define __section(s) __attribute__((section(s)))
#define __aligned(a) __attribute__((aligned(a)))
#define __used __attribute__((used))
#define __noinline __attribute__((noinline))
#define __keep __attribute__((used))

/* A pointer into MRAM. On a DPU an address-space qualifier; on the host, nothing. */
#define __mram_ptr
/* DMA buffers must be 8-byte aligned. */
#define __dma_aligned __attribute__((aligned(8)))
/* MRAM variable whose content is loaded with the program (section hwf_mram of the DPU .so). */
#define __mram __attribute__((section(".data.hwf_mram"), aligned(8), used))
/* MRAM variable without initial content (nobits section hwf_mram_noinit: no file space, no copy). */
#define __mram_noinit __attribute__((section(".bss.hwf_mram_noinit"), aligned(8), used))
/* WRAM variable the host may read and write by name (dpu_copy_to/dpu_push_xfer). */
#define __host __attribute__((section(".data.hwf_host"), aligned(8), used))
/* Atomic-bit variables are WRAM bytes under emulation. */
#define __atomic_bit

#endif /* HWF_DPU_ATTRIBUTES_H */
