/* nc_pool.h — a fixed pool of worker threads with a bounded FIFO queue. Handlers of methods
 * flagged `slow` run here so completion-queue threads never block.
 */
#ifndef NC_POOL_H
#define NC_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_pool nc_pool;

/* Starts `threads` workers (1..256) with room for `queue_cap` waiting tasks (>= 1).
 * NC_OK, NC_EINVAL, NC_ENOMEM or NC_EINTERNAL (thread creation failed). */
int nc_pool_create(int threads, int queue_cap, nc_pool **out);

/* Queues fn(arg). NC_OK, or NC_EBUSY when the queue is full, or NC_ESTATE after
 * nc_pool_stop (fn is then not run; the caller keeps ownership of arg). */
int nc_pool_submit(nc_pool *p, void (*fn)(void *arg), void *arg);

/* Tasks queued or running right now. */
size_t nc_pool_pending(nc_pool *p);

/* Refuses new tasks, runs every queued task, joins the workers. Idempotent. */
void nc_pool_stop(nc_pool *p);

/* Stops (if needed) and frees. NULL is a no-op. */
void nc_pool_free(nc_pool *p);

#ifdef __cplusplus
}
#endif
#endif /* NC_POOL_H */
