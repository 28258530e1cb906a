/* hwforge emulation of the UPMEM DPU runtime: barrier.h.
 *
 * BARRIER_INIT(name, count) defines a global barrier for `count` tasklets; barrier_wait(&name) blocks until `count`
 * tasklets have arrived. Under emulation the tasklets are threads; if every running tasklet of a DPU is blocked the
 * emulator reports a deadlock instead of hanging.
 */
#ifndef HWF_DPU_BARRIER_H
#define HWF_DPU_BARRIER_H

#include <stdint.h>

typedef struct barrier_t {
    uint8_t initial_count;
    uint8_t waiting;
    uint16_t generation;
} barrier_t;

#define BARRIER_INIT(_name, _count) barrier_t _name = {(uint8_t)(_count), 0, 0}

void hwf_barrier_wait(barrier_t *barrier, const char *file, int line);
#define barrier_wait(barrier) hwf_barrier_wait((barrier), __FILE__, __LINE__)

#endif /* HWF_DPU_BARRIER_H */
