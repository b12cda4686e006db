/* nc_serving.h — the served model: one reference-counted bundle {model, engine, tokenizer
 * reference, checkpoint identity}, swapped atomically by Model.Load / Model.Unload.
 *
 * Model of operation
 *   The holder (nc_serving) has at most one CURRENT bundle (nc_served). A handler takes a
 *   reference for its whole call (nc_serving_acquire ... nc_served_release), so every call
 *   sees one model from start to end, never a mix. nc_serving_load builds a complete new
 *   bundle OUTSIDE the holder's lock (tag/step resolution, SHA-256, header + config + tensor
 *   set validation, vocab check against the tokenizer, every weight read and checked for
 *   NaN/Inf, the engine created) and only then swaps the current pointer under the lock; on
 *   any failure nothing changes and the old model keeps serving. The replaced bundle is freed
 *   when its last reference goes: calls still running on it finish on the old model.
 *
 * Checkpoints live under <data_dir>/checkpoints/ in nanochat's layout (nc_checkpoint.h):
 *   checkpoints/{base,chatsft,chatrl}_checkpoints/<tag>/model_<step:06d>.safetensors
 *   Tag default (nanochat load_model): among the phase's tags that hold at least one complete
 *   step, the largest d<N> (name starting with 'd' and digits; ties by name), else the most
 *   recently modified. Step default: the largest complete step (meta_<S>.json written).
 *   When the store has metadata for (phase, tag, step) with a SHA-256, the file must match it
 *   (faults.md §3.4 step 5); a file without metadata still loads when named (its own hash is
 *   reported).
 *
 * Freeing: a bundle whose last reference is released is never freed on the releasing thread
 *   (that may be the engine's scheduler thread or a completion-queue thread): it is handed to
 *   the holder's service thread, which frees the engine (live requests finish CANCELLED) and
 *   the model. The same thread runs other blocking follow-up work (nc_serving_defer), e.g.
 *   LMDB session appends when a generation ends.
 *
 * Threads: every function may be called from any thread, except nc_serving_free (once, after
 *   the server stopped). The model hooks (nc_serving_ready / nc_serving_info) are fast and
 *   non-blocking, for the dispatch gate, Health.Check and Model.Status.
 *
 * Errors (NC_E*, message in msg): NC_ENOTFOUND (no such phase dir / tag / step),
 *   NC_ESTATE (no tokenizer loaded, tokenizer without nanochat's specials, vocab mismatch),
 *   NC_EINVAL / NC_ECORRUPT (a corrupt or invalid file, naming the problem; hash mismatch
 *   and NaN/Inf weights are NC_ECORRUPT), NC_EPERM (a symlink), NC_ENOTSUP (device "cuda"),
 *   NC_ENOMEM, NC_EIO.
 */
#ifndef NC_SERVING_H
#define NC_SERVING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nc_app.h"
#include "nc_engine.h"
#include "nc_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct nc_tokholder;
struct nc_store;

typedef struct nc_serving nc_serving;
typedef struct nc_served nc_served;

typedef struct nc_serving_opts {
  const char *data_dir;               /* trusted; checkpoints under <data_dir>/checkpoints */
  struct nc_tokholder *tokenizers;    /* borrowed; outlives the holder */
  struct nc_store *store;             /* borrowed, may be NULL (no metadata hash check) */
  int slots;                          /* engine KV slots, 1..NC_ENGINE_MAX_SLOTS */
  int queue_limit;                    /* engine admission queue, 0..NC_ENGINE_MAX_QUEUE */
  int prefill_chunk;                  /* 0 = engine default */
  int threads;                        /* engine OpenMP threads, 0 = default */
  nc_decode_weights weights;          /* engine precision (NC_DECODE_AUTO = fastest) */
  nc_engine_kv kv;                    /* KV cache precision (NC_ENGINE_KV_AUTO: nc_engine.h) */
} nc_serving_opts;

/* Creates the holder (nothing loaded) and starts its service thread. NC_OK, NC_EINVAL,
 * NC_ENOMEM, NC_EINTERNAL. */
int nc_serving_create(const nc_serving_opts *o, nc_serving **out, char *msg, size_t msglen);

/* Unloads, waits (up to 30 s) until every bundle was released and freed, stops the thread,
 * frees the holder. Call after the server stopped (no call holds a reference). NULL ok. */
void nc_serving_free(nc_serving *s);

/* What to load. phase: 1 base, 2 sft, 3 rl (Nanochat__V1__Phase). */
typedef struct nc_load_spec {
  int phase;
  const char *tag;                    /* NULL or "" = the default rule above */
  int64_t step;                       /* < 0 = latest complete step */
} nc_load_spec;

/* Resolves, validates, builds and swaps in a new bundle (see above). NC_OK or an error with
 * a message; on error the current bundle is unchanged. Blocking (disk, CPU): worker threads
 * and startup only. */
int nc_serving_load(nc_serving *s, const nc_load_spec *spec, char *msg, size_t msglen);

/* Stops serving: the current bundle (if any) is detached; calls holding it finish on it.
 * Returns true when a model was loaded. */
bool nc_serving_unload(nc_serving *s);

/* Parses a startup spec: "latest" (rl, else sft, else base: the first phase that has a
 * complete checkpoint, default tag and step) or "PHASE[/TAG[/STEP]]" with PHASE base|sft|rl.
 * NC_OK or NC_EINVAL. `tag` receives the tag ("" = default); for "latest" *phase = 0. */
int nc_serving_parse_spec(const char *text, int *phase, char tag[65], int64_t *step);

/* Loads a startup spec (see nc_serving_parse_spec). */
int nc_serving_load_text(nc_serving *s, const char *text, char *msg, size_t msglen);

/* Tag and step resolution alone (exposed for tests): fills tag_out and *step_out for
 * (phase, tag, step) under <data_dir>/checkpoints. NC_OK, NC_ENOTFOUND, NC_EINVAL, NC_EPERM. */
int nc_serving_resolve(const char *data_dir, int phase, const char *tag, int64_t step,
                       char tag_out[65], int64_t *step_out, char *msg, size_t msglen);

/* "base" / "sft" / "rl" for phases 1..3 (nc_ckpt_dir_open's names), NULL otherwise; and the
 * directory under <data_dir>/checkpoints ("base_checkpoints", ...). */
const char *nc_serving_phase_name(int phase);
const char *nc_serving_phase_dir(int phase);

/* ---- references ------------------------------------------------------------------------ */

/* The current bundle with a reference, or NULL when nothing is loaded. Non-blocking. */
nc_served *nc_serving_acquire(nc_serving *s);
/* Gives a reference back (NULL ok); never frees on the calling thread. */
void nc_served_release(nc_served *b);

/* Checkpoint identity of a bundle (immutable while the bundle lives). */
typedef struct nc_served_id {
  int phase;                          /* 1..3 */
  char tag[65];
  int64_t step;
  char sha256[65];
  char path[256];                     /* model file relative to the data dir */
  int64_t loaded_ms;                  /* Unix ms */
  const char *meta_json;              /* the file's "meta" JSON, or NULL */
} nc_served_id;

nc_engine *nc_served_engine(const nc_served *b);
/* The model: read-only for generation; nc_model_forward (Eval.Loss) only under
 * nc_served_eval_trylock (one evaluation at a time; the engine never writes the model). */
nc_model *nc_served_model(const nc_served *b);
const nc_tokenizer *nc_served_tokenizer(const nc_served *b);
const nc_special_ids *nc_served_specials(const nc_served *b);
const nc_served_id *nc_served_identity(const nc_served *b);
/* NC_OK (then call nc_served_eval_unlock) or NC_EBUSY when an evaluation runs on it. */
int nc_served_eval_trylock(nc_served *b);
void nc_served_eval_unlock(nc_served *b);

/* Snapshot for Model.Status / Health (out zeroed by the caller). */
void nc_served_info(nc_served *b, nc_model_info *out);

/* The ModelConfig message of a snapshot (strings point into mi). */
struct Nanochat__V1__ModelConfig;
void nc_model_info_config(const nc_model_info *mi, struct Nanochat__V1__ModelConfig *out);

/* nc_app model hooks (arg = the nc_serving). */
bool nc_serving_ready(void *arg);
void nc_serving_info(void *arg, nc_model_info *out);

/* ---- the service thread ------------------------------------------------------------------ */

/* Intrusive task node, owned by the caller (e.g. embedded in per-call state). */
typedef struct nc_serving_task {
  struct nc_serving_task *next;
  void (*fn)(void *arg);
  void *arg;
} nc_serving_task;

/* Runs fn(arg) soon on the service thread (FIFO). Never fails; t must stay valid until fn
 * runs. fn may block (LMDB, disk) and may call nc_call_* functions. */
void nc_serving_defer(nc_serving *s, nc_serving_task *t, void (*fn)(void *arg), void *arg);

/* The holder of a bundle. */
nc_serving *nc_served_holder(const nc_served *b);

#ifdef __cplusplus
}
#endif
#endif /* NC_SERVING_H */
