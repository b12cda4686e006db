/* nc_loader.h — nanochat's BOS-aligned best-fit packing data loader (specs §5.1).
 *
 * Documents (already tokenized, each starting with <|bos|>) come from a document source. The
 * loader keeps a buffer of at least `buffer_size` documents and builds rows of T+1 tokens:
 * repeatedly it places the LARGEST buffered document that fits entirely in what is left of the
 * row (the first one in buffer order among equals); when none fits, it takes the SHORTEST
 * buffered document (first among equals) and crops it to fill the row exactly, discarding the
 * rest of that document. Every row therefore starts with <|bos|> and has no padding.
 * inputs = row[0..T), targets = row[1..T].
 *
 * Resume: every document carries the source position it was read from. The loader state is
 * the source position to read next plus the positions of the documents still in the buffer,
 * in buffer order; restoring re-reads those documents, so a resumed loader yields exactly the
 * batches an uninterrupted one would (stronger than nanochat, which drops its buffer).
 *
 * Threading: none inside; the trainer may run the loader on its own thread to overlap
 * tokenization with compute (see nc_loader_prefetch_*).
 */
#ifndef NC_LOADER_H
#define NC_LOADER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a document comes from (e.g. shard index + document index in the shard). */
typedef struct nc_doc_pos {
  uint64_t a, b;
} nc_doc_pos;

/* A source of tokenized documents. */
typedef struct nc_doc_source {
  void *ctx;
  /* Read the document at the current position and advance. On NC_OK, *ids is a malloc'ed
   * array of *n tokens (n >= 1, ids[0] == BOS) that the loader takes ownership of, and *pos is
   * where it was read from. Sources are endless (they wrap around, counting epochs) or return
   * NC_ENOTFOUND at the end. Other negative codes are errors. */
  int (*next)(void *ctx, int32_t **ids, size_t *n, nc_doc_pos *pos);
  /* Position the source so that the next call to next() reads the document at `pos`. */
  int (*seek)(void *ctx, nc_doc_pos pos);
  /* The position the next call to next() would read. */
  nc_doc_pos (*tell)(void *ctx);
} nc_doc_source;

typedef struct nc_loader_cfg {
  int B;           /* rows per batch, >= 1 */
  int T;           /* tokens per row (inputs), >= 1; rows hold T+1 */
  int buffer_size; /* documents kept buffered (nanochat: 1000), >= 1 */
} nc_loader_cfg;

typedef struct nc_loader nc_loader;

/* Create a loader over `src` (borrowed; must outlive the loader). NC_OK / NC_EINVAL / NC_ENOMEM. */
int nc_loader_create(nc_loader_cfg cfg, nc_doc_source src, nc_loader **out);
void nc_loader_free(nc_loader *l);

/* Fill the next batch: inputs and targets are caller arrays of B*T int32 each, row-major [B,T].
 * Returns NC_OK, NC_ENOTFOUND when a finite source ran out before the batch was full, or the
 * source's error. */
int nc_loader_next(nc_loader *l, int32_t *inputs, int32_t *targets);

/* Tokens that were cropped away so far, and tokens placed, for statistics. */
void nc_loader_stats(const nc_loader *l, uint64_t *placed, uint64_t *cropped);

/* Resume state. `buffered` is owned by the state; release with nc_loader_state_free. */
typedef struct nc_loader_state {
  nc_doc_pos next;      /* source position to read next */
  nc_doc_pos *buffered; /* positions of buffered documents, in buffer order */
  size_t n_buffered;
} nc_loader_state;

/* Capture the state after the last batch returned. NC_OK / NC_ENOMEM. */
int nc_loader_save(const nc_loader *l, nc_loader_state *st);
/* Restore a state: empties the buffer, re-reads the buffered documents through
 * seek()+next(), then seeks to st->next. NC_OK or the source's error. */
int nc_loader_restore(nc_loader *l, const nc_loader_state *st);
void nc_loader_state_free(nc_loader_state *st);

/* Serialise a state as compact JSON text (malloc'ed, caller frees) and parse it back. */
char *nc_loader_state_to_json(const nc_loader_state *st);
int nc_loader_state_from_json(const char *json, nc_loader_state *st);

#ifdef __cplusplus
}
#endif
#endif /* NC_LOADER_H */
