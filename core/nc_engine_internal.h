/* nc_engine_internal.h — state shared by nc_engine.c (API, queue, scheduler loop) and
 * nc_engine_rows.c (per-row sampling, tools, text, finishing). Internal to core/.
 *
 * Locking: `mu` guards everything marked [mu]: the queue, the new-request list, slot ownership,
 * the live list, counters and `shutdown`. Everything marked [sched] belongs to the scheduler
 * thread alone (no lock); callbacks are called with `mu` NOT held.
 */
#ifndef NC_ENGINE_INTERNAL_H
#define NC_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "nc_engine.h"
#include "nc_utf8.h"

enum { ROW_FREE = 0, ROW_WAIT, ROW_READY, ROW_FEED };

typedef struct eng_req {
  uint64_t id;
  int32_t *prompt;
  int n_prompt;
  nc_gen_params p;
  nc_gen_callback cb;
  void *user;
  atomic_int cancel;        /* set by nc_engine_cancel or a callback's return value     */
  uint64_t admit_seq;       /* [mu] admission order (prefill FIFO)                       */
  int slot[NC_ENGINE_MAX_SLOTS]; /* [mu] slot of each sample once admitted            */
  int prefilled;            /* [sched] prompt tokens in sample 0's cache                 */
  int n_live;               /* [sched] samples not finished yet                          */
  struct eng_req *qnext;    /* [mu] waiting queue, or the new-request list               */
  struct eng_req *lnext, *lprev; /* [mu] live list (every request not yet forgotten)    */
} eng_req;

typedef struct eng_row {      /* [sched] one KV slot */
  eng_req *r;                 /* NULL when free */
  int sample, state;
  nc_kvcache *kc;
  nc_tool_row tool;
  nc_rng rng;
  nc_utf8_stream u8;
  int n_gen;
  int32_t next_in;            /* token to feed at the next decode step (ROW_FEED) */
  const float *lg;            /* logits to sample from (ROW_READY)                */
} eng_row;

struct nc_engine {
  const nc_model *m;
  nc_engine_config cfg;
  int V;
  nc_decoder *dec;            /* [sched] */
  nc_sampler *sampler;        /* [sched] */
  eng_row rows[NC_ENGINE_MAX_SLOTS];
  float *step_logits;         /* [sched] [slots, V] decode output      */
  float *prefill_logits;      /* [sched] [slots, V] by a request's slot 0 */
  char *tokbuf, *textbuf;     /* [sched] one token's bytes / its text  */
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int shutdown;               /* [mu] */
  eng_req *q_head, *q_tail;   /* [mu] waiting for slots (FIFO)        */
  int q_len;                  /* [mu] */
  eng_req *new_head, *new_tail; /* [mu] admitted, rows not set up yet */
  eng_req *live;              /* [mu] */
  eng_req *owner[NC_ENGINE_MAX_SLOTS]; /* [mu] slot ownership         */
  int slots_used, requests_active; /* [mu] */
  uint64_t next_id, admit_seq;     /* [mu] */
  nc_engine_stats st;              /* [mu] counters                   */
};

/* nc_engine_rows.c */

/* Sets up the rows of a newly admitted request (scheduler, mu held). */
void nc_eng_rows_setup(nc_engine *e, eng_req *r);
/* Finishes one sample: DONE event (last when it is the request's final one), frees its slot,
 * and when the request is complete forgets and frees it. Scheduler thread, mu NOT held. */
void nc_eng_finish_row(nc_engine *e, int slot, nc_finish why, int err, const char *msg);
/* Finishes every live sample of a request (scheduler, mu NOT held). */
void nc_eng_finish_request(nc_engine *e, eng_req *r, nc_finish why, int err, const char *msg);
/* Delivers a DONE event for a request that never got slots and frees it (mu NOT held). */
void nc_eng_drop_queued(nc_engine *e, eng_req *r);
/* Step 3 of an iteration: sample / force / deliver / stop every ROW_READY row. */
void nc_eng_emit(nc_engine *e);

/* nc_engine.c */

/* Admits queued requests while slots are free (mu held). */
void nc_eng_admit_locked(nc_engine *e);
/* Unlinks a finished request from the live list and counts it (mu held). */
void nc_eng_forget_locked(nc_engine *e, eng_req *r);
void nc_eng_req_free(eng_req *r);

#endif /* NC_ENGINE_INTERNAL_H */
