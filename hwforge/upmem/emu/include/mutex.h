/* hwforge emulation of the UPMEM DPU runtime: mutex.h. MUTEX_INIT(name) defines a mutex; mutex_lock/unlock. */
#ifndef HWF_DPU_MUTEX_H
#define HWF_DPU_MUTEX_H

#include <stdint.h>

typedef struct hwf_mutex {
    uint8_t locked;
    uint8_t owner;
    uint8_t waiters;
    uint8_t grants;
} *mutex_id_t;

#define MUTEX_INIT(_name) \
    static struct hwf_mutex __hwf_mutex_##_name = {0, 0, 0, 0}; \
    mutex_id_t _name = &__hwf_mutex_##_name
#define MUTEX_GET(_name) (_name)

void hwf_mutex_lock(mutex_id_t mutex, const char *file, int line);
void hwf_mutex_unlock(mutex_id_t mutex, const char *file, int line);
#define mutex_lock(m) hwf_mutex_lock((m), __FILE__, __LINE__)
#define mutex_unlock(m) hwf_mutex_unlock((m), __FILE__, __LINE__)

#endif /* HWF_DPU_MUTEX_H */
