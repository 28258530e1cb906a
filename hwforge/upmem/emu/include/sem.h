/* hwforge emulation of the UPMEM DPU runtime: sem.h (counting semaphores).
 *
 * SEMAPHORE_INIT(name, value) defines a semaphore; sem_take blocks while the count is 0, then decrements it;
 * sem_give increments it and wakes one waiter. A take that no running tasklet can satisfy is reported as a deadlock.
 */
#ifndef HWF_DPU_SEM_H
#define HWF_DPU_SEM_H

#include <stdint.h>

typedef struct sem_t {
    uint8_t count;
    uint8_t waiters;
    uint8_t grants;
    uint8_t pad;
} sem_t;

#define SEMAPHORE_INIT(_name, _value) sem_t _name = {(uint8_t)(_value), 0, 0, 0}

void hwf_sem_take(sem_t *sem, const char *file, int line);
void hwf_sem_give(sem_t *sem, const char *file, int line);
#define sem_take(sem) hwf_sem_take((sem), __FILE__, __LINE__)
#define sem_give(sem) hwf_sem_give((sem), __FILE__, __LINE__)

#endif /* HWF_DPU_SEM_H */
