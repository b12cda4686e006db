/* nc_prefetch.h — runs an nc_loader on its own thread, so tokenization and packing of the
 * next micro-batches overlap the model's compute (nanochat overlaps them with the GPU).
 *
 * The producer thread fills a ring of `depth` batches; each batch carries the loader state
 * captured right after it was produced (nc_loader_save), so the consumer can checkpoint the
 * exact state "after the last batch I consumed" although the loader has run ahead: restoring
 * that state into a fresh loader yields exactly the batches that followed (exact resume).
 * Batches come out in the loader's order; the thread changes nothing about their content.
 *
 * Ownership: the loader (and the document source under it) is BORROWED and used only by the
 * producer thread from nc_prefetch_start until nc_prefetch_stop returns; the caller must not
 * touch it in between. Restore the loader's state before starting.
 * Threading: one consumer thread calls nc_prefetch_next; nc_prefetch_stop may be called from
 * the consumer thread only. Errors: NC_OK or negative NC_E* codes.
 */
#ifndef NC_PREFETCH_H
#define NC_PREFETCH_H

#include <stdint.h>

#include "nc_loader.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_prefetch nc_prefetch;

/* Starts the producer over `l` whose batches are B x T (the loader's configuration).
 * depth: batches buffered ahead, 1..64. NC_OK, NC_EINVAL, NC_ENOMEM, NC_EIO (thread). */
int nc_prefetch_start(nc_loader *l, int B, int T, int depth, nc_prefetch **out);

/* Blocks until the next batch is ready and copies it into inputs/targets (B*T each). When
 * state is non-NULL, the loader state after this batch replaces *state (the old one is
 * freed with nc_loader_state_free; start with a zeroed state). Returns NC_OK, or the
 * loader's error (e.g. NC_ENOTFOUND: a finite source ran out) once the batches produced
 * before the error were consumed; after an error every later call returns it again. */
int nc_prefetch_next(nc_prefetch *p, int32_t *inputs, int32_t *targets, nc_loader_state *state);

/* Stops the producer (it finishes the batch it is building), joins it and frees everything.
 * Batches not consumed are dropped. NULL ok. */
void nc_prefetch_stop(nc_prefetch *p);

#ifdef __cplusplus
}
#endif
#endif /* NC_PREFETCH_H */
