/* hwforge emulation of the UPMEM DPU runtime: alloc.h (incremental WRAM heap).
 *
 * The heap is what remains of the 64 KB WRAM after globals and NR_TASKLETS stacks. mem_alloc returns 8-byte
 * aligned buffers; there is no free; mem_reset empties the heap. Exhausting the heap is a DPU fault.
 */
#ifndef HWF_DPU_ALLOC_H
#define HWF_DPU_ALLOC_H

#include <stddef.h>

void *hwf_mem_alloc(size_t size, const char *file, int line);
void hwf_mem_reset(void);
#define mem_alloc(size) hwf_mem_alloc((size), __FILE__, __LINE__)
#define mem_reset() hwf_mem_reset()

#endif /* HWF_DPU_ALLOC_H */
