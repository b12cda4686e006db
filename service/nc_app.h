/* nc_app.h — the process-wide context every handler can reach (nc_call_app(call)), and the
 * hooks that later modules (inference engine, job manager, sandbox) fill in at startup.
 *
 * main.c owns the one nc_app; it fills every field BEFORE nc_server_start and never changes
 * them afterwards, so handlers read them without locking. The hook functions themselves run
 * on any thread (CQ threads and workers, concurrently) and must be thread-safe and fast (no
 * blocking I/O: they run inside Health.Check and the dispatch gate).
 */
#ifndef NC_APP_H
#define NC_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "nc_config.h"

#ifdef __cplusplus
extern "C" {
#endif

struct nc_server;
struct nc_health;
struct nc_store;   /* LMDB store (service/nc_store.h) */
struct nc_jobs;    /* job manager (service/nc_jobs.h) */
struct nc_sandbox; /* code sandbox (core/nc_sandbox.h) */
struct nc_tokholder; /* the server's tokenizer, hot-reloaded (service/nc_tokref.h) */
struct nc_serving;   /* the served model (service/nc_serving.h) */

/* A snapshot of the served model (copied out, so no lifetime ties to the engine). */
typedef struct nc_model_info {
  bool loaded;
  int phase;                 /* Nanochat__V1__Phase */
  char model_tag[65];
  int64_t step;
  char device[17];           /* "cpu", "cuda" */
  char sha256[65];
  uint32_t sequence_len, vocab_size, n_layer, n_head, n_kv_head, n_embd;
  char window_pattern[65];
  uint64_t parameters;
  uint64_t memory_bytes;
  uint32_t slots_total, slots_in_use, queue_depth;
  int64_t loaded_ms;         /* Unix ms */
} nc_model_info;

/* Engine hooks. All NULL until the inference engine is wired (then both must be set). */
typedef struct nc_model_hooks {
  /* True when a model is loaded and serving. The dispatch gate calls it for every method
   * flagged needs_model and answers FAILED_PRECONDITION "no model loaded" when it returns
   * false. While it is NULL there is no engine to ask and the gate lets such calls through
   * to their handlers, which are then the UNIMPLEMENTED placeholders of nc_h_missing.c; the
   * engine MUST set this hook in the same change that replaces those placeholders. */
  bool (*ready)(void *arg);
  /* Fills *out (zeroed by the caller) for Model.Status and Health.Check's model fields.
   * NULL: "no model loaded". */
  void (*info)(void *arg, nc_model_info *out);
  void *arg;
} nc_model_hooks;

typedef struct nc_app {
  const nc_config *cfg;
  struct nc_server *server;
  struct nc_health *health;
  struct nc_store *store;    /* NULL until the store is wired */
  struct nc_jobs *jobs;      /* NULL until the job manager is wired */
  struct nc_sandbox *sandbox;/* Tools.Execute; NULL = tools disabled */
  /* Tokenizer.Encode/Decode (immutable, thread-safe); NULL = none loaded (FAILED_PRECONDITION) */
  struct nc_tokholder *tokenizers;  /* never NULL while serving; may hold no tokenizer yet */
  nc_model_hooks model;
  /* The served model (Model.*, Chat.*, Checkpoint.Save, Eval.Loss); set together with the
   * `model` hooks (nc_serving_ready / nc_serving_info). */
  struct nc_serving *serving;
  /* Health.Check sandbox_level: a string that stays valid while the server runs, e.g.
   * "ns+seccomp+rlimits+uid" or "unavailable: <why>". NULL hook: reported as
   * "unavailable: sandbox not built yet". */
  const char *(*sandbox_level)(void *arg);
  void *sandbox_arg;
  /* Health.Check jobs_running / jobs_queued. NULL hook: both 0. */
  void (*job_counts)(void *arg, uint32_t *running, uint32_t *queued);
  void *jobs_arg;
  const char *version;       /* e.g. "0.1.0" */
  int64_t started_mono_ms;   /* CLOCK_MONOTONIC ms at startup (uptime) */
} nc_app;

/* CLOCK_MONOTONIC / CLOCK_REALTIME in milliseconds. */
int64_t nc_now_mono_ms(void);
int64_t nc_now_unix_ms(void);

#ifdef __cplusplus
}
#endif
#endif /* NC_APP_H */
