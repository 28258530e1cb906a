/* hwforge emulation of the UPMEM DPU runtime: mram.h (MRAM <-> WRAM DMA).
 *
 * mram_read/mram_write are macros so that a rule violation names the caller's file and line. Rules checked (as the
 * SDK documents them): WRAM and MRAM addresses 8-byte aligned, size a multiple of 8 in [8, 2048], the MRAM range
 * inside this DPU's MRAM variables or MRAM heap, the WRAM range inside this DPU's WRAM (globals, heap or the calling
 * tasklet's stack).
 */
#ifndef HWF_DPU_MRAM_H
#define HWF_DPU_MRAM_H

#include <stdint.h>
#include "attributes.h"

void hwf_mram_read(const void *from, void *to, unsigned int nb_of_bytes, const char *file, int line);
void hwf_mram_write(const void *from, void *to, unsigned int nb_of_bytes, const char *file, int line);
void *hwf_mram_read_unaligned(const void *from, void *buffer, unsigned int nb_of_bytes, const char *file, int line);
void hwf_mram_write_unaligned(const void *from, void *to, unsigned int nb_of_bytes, const char *file, int line);

/* Start of the MRAM not used by MRAM variables; the MRAM heap runs from here to the end of the 64 MB. Keep it as a
 * pointer: 64-bit host addresses do not fit in uint32_t, unlike real MRAM addresses. */
extern __mram_ptr __dma_aligned uint8_t __sys_used_mram_end[];
#define DPU_MRAM_HEAP_POINTER ((__mram_ptr void *)(&__sys_used_mram_end[0]))

#define mram_read(from, to, nb_of_bytes) \
    hwf_mram_read((const void *)(from), (void *)(to), (unsigned int)(nb_of_bytes), __FILE__, __LINE__)
#define mram_write(from, to, nb_of_bytes) \
    hwf_mram_write((const void *)(from), (void *)(to), (unsigned int)(nb_of_bytes), __FILE__, __LINE__)

/* Any MRAM address and size up to 2048. Reads the enclosing 8-byte-aligned block into buffer (which must hold it:
 * up to nb_of_bytes + 16 bytes) and returns where the requested bytes start inside buffer. */
#define mram_read_unaligned(from, buffer, nb_of_bytes) \
    hwf_mram_read_unaligned((const void *)(from), (void *)(buffer), (unsigned int)(nb_of_bytes), __FILE__, __LINE__)
/* Any MRAM address and size up to 2048; the WRAM source must have the same address modulo 8 as the destination. */
#define mram_write_unaligned(from, to, nb_of_bytes) \
    hwf_mram_write_unaligned((const void *)(from), (void *)(to), (unsigned int)(nb_of_bytes), __FILE__, __LINE__)

#endif /* HWF_DPU_MRAM_H */
