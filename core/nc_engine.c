/* nc_engine.c — engine API, admission queue and the scheduler loop. See nc_engine.h; per-row
 * work (sampling, tools, text, finishing) is in nc_engine_rows.c. */
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_engine_internal.h"
#include "nc_err.h"
#include "nc_model_internal.h"

#define DEFAULT_CHUNK 128

static void set_msg(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t len, const char *fmt, ...) {
  if (!msg || !len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, len, fmt, ap);
  va_end(ap);
}

nc_engine_config nc_engine_config_default(void) {
  nc_engine_config c;
  memset(&c, 0, sizeof c);
  c.slots = 4;
  c.queue_limit = 64;
  c.weights = NC_DECODE_AUTO;
  c.kv = NC_ENGINE_KV_AUTO;
  return c;
}

nc_gen_params nc_gen_params_default(void) {
  nc_gen_params p;
  memset(&p, 0, sizeof p);
  p.mode = NC_GEN_CHAT;
  p.max_tokens = 256;
  p.sampling = nc_sampling_default();
  p.seed = 42;
  p.tools = 1;
  p.num_samples = 1;
  return p;
}

int nc_engine_context(const nc_engine *e) { return e ? e->cfg.context : 0; }

/* ------------------------------------------------------------------ queue (mu held) */

static int free_slots_locked(const nc_engine *e) { return e->cfg.slots - e->slots_used; }

static void claim_locked(nc_engine *e, eng_req *r) {
  int k = 0;
  for (int s = 0; s < e->cfg.slots && k < r->p.num_samples; s++)
    if (!e->owner[s]) {
      e->owner[s] = r;
      r->slot[k++] = s;
    }
  e->slots_used += r->p.num_samples;
  e->requests_active++;
  r->admit_seq = ++e->admit_seq;
  r->qnext = NULL;
  if (e->new_tail) e->new_tail->qnext = r;
  else e->new_head = r;
  e->new_tail = r;
}

void nc_eng_admit_locked(nc_engine *e) {
  while (e->q_head && e->q_head->p.num_samples <= free_slots_locked(e)) {
    eng_req *r = e->q_head;
    e->q_head = r->qnext;
    if (!e->q_head) e->q_tail = NULL;
    e->q_len--;
    claim_locked(e, r);
  }
}

void nc_eng_forget_locked(nc_engine *e, eng_req *r) {
  if (r->lprev) r->lprev->lnext = r->lnext;
  else e->live = r->lnext;
  if (r->lnext) r->lnext->lprev = r->lprev;
  e->st.requests_finished++;
}

void nc_eng_req_free(eng_req *r) {
  if (!r) return;
  free(r->prompt);
  free(r);
}

/* ------------------------------------------------------------------ create / free */

static int check_config(const nc_model *m, const nc_engine_config *c, char *msg, size_t len) {
  if (c->slots < 1 || c->slots > NC_ENGINE_MAX_SLOTS) {
    set_msg(msg, len, "slots must be 1..%d (got %d)", NC_ENGINE_MAX_SLOTS, c->slots);
    return NC_EINVAL;
  }
  if (c->queue_limit < 0 || c->queue_limit > NC_ENGINE_MAX_QUEUE) {
    set_msg(msg, len, "queue_limit must be 0..%d (got %d)", NC_ENGINE_MAX_QUEUE, c->queue_limit);
    return NC_EINVAL;
  }
  const int64_t cap = 10LL * m->cfg.sequence_len;
  if (c->context < 0 || c->context > cap) {
    set_msg(msg, len, "context must be 0..%lld (got %d)", (long long)cap, c->context);
    return NC_EINVAL;
  }
  if (c->prefill_chunk < 0 || c->prefill_chunk > 65536) {
    set_msg(msg, len, "prefill_chunk must be 0..65536 (got %d)", c->prefill_chunk);
    return NC_EINVAL;
  }
  if (c->weights != NC_DECODE_F32 && c->weights != NC_DECODE_BF16 &&
      c->weights != NC_DECODE_BF16_DOT && c->weights != NC_DECODE_AUTO) {
    set_msg(msg, len, "unknown weight precision %d", (int)c->weights);
    return NC_EINVAL;
  }
  if (c->kv != NC_ENGINE_KV_AUTO && c->kv != NC_ENGINE_KV_BF16 && c->kv != NC_ENGINE_KV_F32) {
    set_msg(msg, len, "unknown KV cache precision %d", (int)c->kv);
    return NC_EINVAL;
  }
  if (c->threads < 0 || c->threads > 1024) {
    set_msg(msg, len, "threads must be 0..1024 (got %d)", c->threads);
    return NC_EINVAL;
  }
  if (!c->tok.encode || !c->tok.decode) {
    set_msg(msg, len, "tokenizer interface incomplete");
    return NC_EINVAL;
  }
  const int32_t *sp = &c->sp.bos;
  for (int i = 0; i < 9; i++)
    if (sp[i] < 0 || sp[i] >= m->V) {
      set_msg(msg, len, "special token id %d out of the vocabulary (%d)", (int)sp[i], m->V);
      return NC_EINVAL;
    }
  return NC_OK;
}

static void *scheduler_main(void *arg);

int nc_engine_create(const nc_model *m, const nc_engine_config *cfg, nc_engine **out, char *msg,
                     size_t msglen) {
  set_msg(msg, msglen, "%s", "");
  if (!out) return NC_EINVAL;
  *out = NULL;
  if (!m || !cfg) {
    set_msg(msg, msglen, "model and config are required");
    return NC_EINVAL;
  }
  int rc = check_config(m, cfg, msg, msglen);
  if (rc) return rc;
  nc_engine *e = calloc(1, sizeof *e);
  if (!e) return NC_ENOMEM;
  e->m = m;
  e->cfg = *cfg;
  if (!e->cfg.context) e->cfg.context = m->cfg.sequence_len;
  if (!e->cfg.prefill_chunk) e->cfg.prefill_chunk = DEFAULT_CHUNK;
  if (e->cfg.weights == NC_DECODE_AUTO) e->cfg.weights = nc_decoder_fastest_weights(m);
  if (e->cfg.prefill_chunk > e->cfg.context) e->cfg.prefill_chunk = e->cfg.context;
  e->V = m->V;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  const int S = e->cfg.slots;
  rc = nc_decoder_create(m, e->cfg.weights, S, e->cfg.prefill_chunk, e->cfg.context, &e->dec);
  if (!rc) rc = nc_sampler_create(e->V, &e->sampler);
  if (e->cfg.kv == NC_ENGINE_KV_AUTO)
    e->cfg.kv = e->cfg.weights == NC_DECODE_F32 ? NC_ENGINE_KV_F32 : NC_ENGINE_KV_BF16;
  const nc_kv_dtype kvt = e->cfg.kv == NC_ENGINE_KV_F32 ? NC_KV_F32 : NC_KV_BF16;
  for (int s = 0; s < S && !rc; s++)
    rc = nc_kvcache_create_ex(m, 1, e->cfg.context, kvt, &e->rows[s].kc);
  if (!rc) {
    e->step_logits = malloc(sizeof(float) * (size_t)S * e->V);
    e->prefill_logits = malloc(sizeof(float) * (size_t)S * e->V);
    e->tokbuf = malloc(NC_ENGINE_MAX_TOKEN_BYTES);
    e->textbuf = malloc(NC_UTF8_PUSH_CAP(NC_ENGINE_MAX_TOKEN_BYTES));
    if (!e->step_logits || !e->prefill_logits || !e->tokbuf || !e->textbuf) rc = NC_ENOMEM;
  }
  if (!rc && pthread_create(&e->thread, NULL, scheduler_main, e) != 0) rc = NC_ENOMEM;
  if (rc) {
    set_msg(msg, msglen, "engine allocation failed: %s", nc_strerror(rc));
    nc_engine_free(e);
    return rc;
  }
  e->thread_started = 1;
  *out = e;
  return NC_OK;
}

void nc_engine_free(nc_engine *e) {
  if (!e) return;
  if (e->thread_started) {
    pthread_mutex_lock(&e->mu);
    e->shutdown = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
  }
  for (int s = 0; s < NC_ENGINE_MAX_SLOTS; s++) nc_kvcache_free(e->rows[s].kc);
  nc_decoder_free(e->dec);
  nc_sampler_free(e->sampler);
  free(e->step_logits);
  free(e->prefill_logits);
  free(e->tokbuf);
  free(e->textbuf);
  pthread_cond_destroy(&e->cv);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

/* ------------------------------------------------------------------ submit / cancel / stats */

static int check_params(const nc_engine *e, const int32_t *prompt, int n, const nc_gen_params *p,
                        char *msg, size_t len) {
  if (!prompt || n < 1) {
    set_msg(msg, len, "empty prompt");
    return NC_EINVAL;
  }
  for (int i = 0; i < n; i++)
    if (prompt[i] < 0 || prompt[i] >= e->V) {
      set_msg(msg, len, "prompt token %d at %d is out of the vocabulary (%d)", (int)prompt[i], i, e->V);
      return NC_EINVAL;
    }
  if (p->mode != NC_GEN_CHAT && p->mode != NC_GEN_RAW) {
    set_msg(msg, len, "unknown mode %d", (int)p->mode);
    return NC_EINVAL;
  }
  if (p->num_samples < 1 || p->num_samples > e->cfg.slots) {
    set_msg(msg, len, "num_samples must be 1..%d (the engine's slots), got %d", e->cfg.slots,
            p->num_samples);
    return NC_EINVAL;
  }
  if (p->max_tokens < 1) {
    set_msg(msg, len, "max_tokens must be >= 1 (got %d)", p->max_tokens);
    return NC_EINVAL;
  }
  if ((int64_t)n + p->max_tokens > e->cfg.context) {
    set_msg(msg, len, "prompt of %d tokens + max_tokens %d exceeds the context of %d tokens", n,
            p->max_tokens, e->cfg.context);
    return NC_EINVAL;
  }
  const nc_sampling *s = &p->sampling;
  if (!(s->temperature >= 0.0f) || !isfinite(s->temperature) || s->top_k < 0 ||
      !(s->top_p > 0.0f && s->top_p <= 1.0f) || !(s->min_p >= 0.0f && s->min_p <= 1.0f)) {
    set_msg(msg, len, "bad sampling parameters (temperature >= 0, top_k >= 0, top_p in (0, 1], "
                      "min_p in [0, 1])");
    return NC_EINVAL;
  }
  return NC_OK;
}

int nc_engine_submit(nc_engine *e, const int32_t *prompt, int n_prompt, const nc_gen_params *p,
                     nc_gen_callback cb, void *user, uint64_t *id, char *msg, size_t msglen) {
  set_msg(msg, msglen, "%s", "");
  if (id) *id = 0;
  if (!e || !p || !cb) {
    set_msg(msg, msglen, "engine, params and callback are required");
    return NC_EINVAL;
  }
  int rc = check_params(e, prompt, n_prompt, p, msg, msglen);
  if (rc) return rc;
  eng_req *r = calloc(1, sizeof *r);
  if (!r) return NC_ENOMEM;
  r->prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
  if (!r->prompt) {
    free(r);
    return NC_ENOMEM;
  }
  memcpy(r->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
  r->n_prompt = n_prompt;
  r->p = *p;
  r->cb = cb;
  r->user = user;
  atomic_init(&r->cancel, 0);
  pthread_mutex_lock(&e->mu);
  if (e->shutdown) {
    pthread_mutex_unlock(&e->mu);
    nc_eng_req_free(r);
    set_msg(msg, msglen, "engine is shutting down");
    return NC_ENOTREADY;
  }
  /* FIFO: a request may take free slots only when nobody is waiting before it */
  if (!e->q_head && p->num_samples <= free_slots_locked(e)) {
    claim_locked(e, r);
  } else if (e->q_len < e->cfg.queue_limit) {
    r->qnext = NULL;
    if (e->q_tail) e->q_tail->qnext = r;
    else e->q_head = r;
    e->q_tail = r;
    e->q_len++;
  } else {
    int q = e->q_len;
    pthread_mutex_unlock(&e->mu);
    nc_eng_req_free(r);
    set_msg(msg, msglen, "all %d slots busy and %d requests queued (queue limit)", e->cfg.slots, q);
    return NC_EBUSY;
  }
  r->id = ++e->next_id;
  r->lnext = e->live;
  if (e->live) e->live->lprev = r;
  e->live = r;
  if (id) *id = r->id;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  return NC_OK;
}

int nc_engine_cancel(nc_engine *e, uint64_t id) {
  if (!e || !id) return NC_ENOTFOUND;
  int rc = NC_ENOTFOUND;
  pthread_mutex_lock(&e->mu);
  for (eng_req *r = e->live; r; r = r->lnext)
    if (r->id == id) {
      atomic_store(&r->cancel, 1);
      rc = NC_OK;
      pthread_cond_signal(&e->cv);
      break;
    }
  pthread_mutex_unlock(&e->mu);
  return rc;
}

void nc_engine_get_stats(nc_engine *e, nc_engine_stats *st) {
  if (!st) return;
  memset(st, 0, sizeof *st);
  if (!e) return;
  pthread_mutex_lock(&e->mu);
  *st = e->st;
  st->slots_total = e->cfg.slots;
  st->slots_in_use = e->slots_used;
  st->queue_depth = e->q_len;
  st->queue_limit = e->cfg.queue_limit;
  st->requests_active = e->requests_active;
  st->context = e->cfg.context;
  st->weights = e->cfg.weights;
  st->kv = e->cfg.kv == NC_ENGINE_KV_F32 ? NC_KV_F32 : NC_KV_BF16;
  pthread_mutex_unlock(&e->mu);
}

int nc_engine_render_chat(const nc_engine *e, const nc_chat_msg *msgs, int n, int max_tokens,
                          nc_token_buf *out, char *msg, size_t msglen) {
  set_msg(msg, msglen, "%s", "");
  if (!e || !out) return NC_EINVAL;
  const size_t n0 = out->n;
  int rc = nc_chat_render(&e->cfg.tok, &e->cfg.sp, msgs, n, NC_RENDER_FOR_COMPLETION, 0, out, msg,
                          msglen);
  if (rc) return rc;
  const size_t np = out->n - n0;
  if (max_tokens < 1 || (int64_t)np + max_tokens > e->cfg.context) {
    set_msg(msg, msglen, "prompt of %zu tokens + max_tokens %d exceeds the context of %d tokens",
            np, max_tokens, e->cfg.context);
    if (max_tokens < 1) set_msg(msg, msglen, "max_tokens must be >= 1 (got %d)", max_tokens);
    out->n = n0;
    return NC_EINVAL;
  }
  return NC_OK;
}

/* ------------------------------------------------------------------ scheduler */

static int has_rows(const nc_engine *e) {
  for (int s = 0; s < e->cfg.slots; s++)
    if (e->rows[s].r) return 1;
  return 0;
}

static int queued_cancel_locked(const nc_engine *e) {
  for (const eng_req *r = e->q_head; r; r = r->qnext)
    if (atomic_load(&r->cancel)) return 1;
  return 0;
}

/* One prefill chunk of the oldest request still prefilling. */
static void prefill_one(nc_engine *e, uint64_t *ntok) {
  int best = -1;
  for (int s = 0; s < e->cfg.slots; s++) {
    const eng_row *w = &e->rows[s];
    if (w->r && w->state == ROW_WAIT && w->sample == 0 &&
        (best < 0 || w->r->admit_seq < e->rows[best].r->admit_seq))
      best = s;
  }
  if (best < 0) return;
  eng_row *w = &e->rows[best];
  eng_req *r = w->r;
  const int n = r->n_prompt - r->prefilled < e->cfg.prefill_chunk ? r->n_prompt - r->prefilled
                                                                 : e->cfg.prefill_chunk;
  const int last = r->prefilled + n == r->n_prompt;
  float *lg = e->prefill_logits + (size_t)best * e->V;
  int rc = nc_decoder_prefill(e->dec, w->kc, r->prompt + r->prefilled, n, last ? lg : NULL);
  if (rc) {
    nc_eng_finish_request(e, r, NC_FINISH_ERROR, rc, "prefill failed");
    return;
  }
  *ntok += (uint64_t)n;
  r->prefilled += n;
  if (!last) return;
  for (int i = 0; i < r->p.num_samples; i++) {
    eng_row *x = &e->rows[r->slot[i]];
    if (i > 0 && (rc = nc_kvcache_copy(x->kc, w->kc)) != NC_OK) {
      nc_eng_finish_request(e, r, NC_FINISH_ERROR, rc, "cache copy failed");
      return;
    }
    x->state = ROW_READY;
    x->lg = lg;
  }
}

/* One batched decode step over every row with a token to feed. */
static void decode_step(nc_engine *e, uint64_t *nsteps) {
  nc_kvcache *kcs[NC_ENGINE_MAX_SLOTS];
  int32_t ids[NC_ENGINE_MAX_SLOTS];
  int which[NC_ENGINE_MAX_SLOTS], B = 0;
  for (int s = 0; s < e->cfg.slots; s++) {
    eng_row *w = &e->rows[s];
    if (w->r && w->state == ROW_FEED) {
      kcs[B] = w->kc;
      ids[B] = w->next_in;
      which[B++] = s;
    }
  }
  if (!B) return;
  int rc = nc_decoder_step(e->dec, kcs, ids, B, e->step_logits);
  for (int i = 0; i < B; i++) {
    eng_row *w = &e->rows[which[i]];
    if (rc) {
      nc_eng_finish_row(e, which[i], NC_FINISH_ERROR, rc, "decode step failed");
      continue;
    }
    w->state = ROW_READY;
    w->lg = e->step_logits + (size_t)i * e->V;
  }
  if (!rc) (*nsteps)++;
}

/* Finishes everything (shutdown). */
static void drain_all(nc_engine *e) {
  pthread_mutex_lock(&e->mu);
  eng_req *q = e->q_head, *nw = e->new_head;
  e->q_head = e->q_tail = NULL;
  e->q_len = 0;
  e->new_head = e->new_tail = NULL;
  for (eng_req *r = nw; r; r = r->qnext) nc_eng_rows_setup(e, r);
  pthread_mutex_unlock(&e->mu);
  while (q) {
    eng_req *next = q->qnext;
    nc_eng_drop_queued(e, q);
    q = next;
  }
  for (int s = 0; s < e->cfg.slots; s++)
    if (e->rows[s].r) nc_eng_finish_request(e, e->rows[s].r, NC_FINISH_CANCELLED, 0, "");
}

static void *scheduler_main(void *arg) {
  nc_engine *e = arg;
  /* named before the first parallel region: OpenMP's workers inherit the name, so profilers and
   * bench/bench_serve.py can tell generation CPU from everything else in a server process */
  pthread_setname_np(pthread_self(), "nc-engine");
  /* the decoder's loops run on nc_par's pool with cfg.threads (0 = the OpenMP default); OpenMP
   * itself is set to one thread here, so no libgomp team spins beside the pool (the small
   * kernels then run on this thread) */
  nc_decoder_set_threads(e->dec, e->cfg.threads > 0 ? e->cfg.threads : omp_get_max_threads());
  omp_set_num_threads(1);
  for (;;) {
    eng_req *dropped = NULL;
    pthread_mutex_lock(&e->mu);
    while (!e->shutdown && !e->new_head && !has_rows(e) && !queued_cancel_locked(e))
      pthread_cond_wait(&e->cv, &e->mu);
    if (e->shutdown) {
      pthread_mutex_unlock(&e->mu);
      break;
    }
    /* cancelled requests still in the queue leave it now */
    for (eng_req **pp = &e->q_head; *pp;) {
      eng_req *r = *pp;
      if (atomic_load(&r->cancel)) {
        *pp = r->qnext;
        e->q_len--;
        r->qnext = dropped;
        dropped = r;
      } else {
        pp = &r->qnext;
      }
    }
    e->q_tail = NULL;
    for (eng_req *r = e->q_head; r; r = r->qnext) e->q_tail = r;
    /* newly admitted requests get their rows */
    for (eng_req *r = e->new_head; r; r = r->qnext) nc_eng_rows_setup(e, r);
    e->new_head = e->new_tail = NULL;
    pthread_mutex_unlock(&e->mu);

    while (dropped) {
      eng_req *next = dropped->qnext;
      nc_eng_drop_queued(e, dropped);
      dropped = next;
    }
    /* 1. cancelled running requests free their slots before any compute */
    for (int s = 0; s < e->cfg.slots; s++) {
      eng_req *r = e->rows[s].r;
      if (r && atomic_load(&r->cancel)) nc_eng_finish_request(e, r, NC_FINISH_CANCELLED, 0, "");
    }
    uint64_t ptok = 0, steps = 0;
    prefill_one(e, &ptok); /* 2 */
    nc_eng_emit(e);        /* 3 */
    decode_step(e, &steps); /* 4 */
    pthread_mutex_lock(&e->mu);
    e->st.prefill_tokens += ptok;
    e->st.decode_steps += steps;
    pthread_mutex_unlock(&e->mu);
  }
  drain_all(e);
  return NULL;
}
