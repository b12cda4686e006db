/* nc_serving.c — the served-model holder: references, the atomic swap, the service thread,
 * status snapshots (see nc_serving.h). Loading is in nc_serving_load.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nanochat/v1/common.pb-c.h"
#include "nc_err.h"
#include "nc_log.h"
#include "nc_serving_int.h"

/* ---- the service thread ------------------------------------------------------------------ */

static void *service_main(void *arg) {
  nc_serving *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->head && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    nc_serving_task *t = s->head;
    if (!t) break; /* stop, queue drained */
    s->head = t->next;
    if (!s->head) s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    t->fn(t->arg);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

void nc_serving_defer(nc_serving *s, nc_serving_task *t, void (*fn)(void *arg), void *arg) {
  t->next = NULL;
  t->fn = fn;
  t->arg = arg;
  pthread_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = t;
  else s->head = t;
  s->tail = t;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int nc_serving_create(const nc_serving_opts *o, nc_serving **out, char *msg, size_t msglen) {
  *out = NULL;
  if (!o || !o->data_dir || !o->tokenizers || o->slots < 1 || o->slots > NC_ENGINE_MAX_SLOTS ||
      o->queue_limit < 0 || o->queue_limit > NC_ENGINE_MAX_QUEUE || o->prefill_chunk < 0 ||
      o->threads < 0) {
    snprintf(msg, msglen, "bad serving options (slots 1..%d, queue 0..%d)", NC_ENGINE_MAX_SLOTS,
             NC_ENGINE_MAX_QUEUE);
    return NC_EINVAL;
  }
  nc_serving *s = calloc(1, sizeof *s);
  if (!s || !(s->data_dir = strdup(o->data_dir))) {
    free(s);
    snprintf(msg, msglen, "out of memory");
    return NC_ENOMEM;
  }
  s->o = *o;
  s->o.data_dir = s->data_dir;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->idle_cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
    pthread_cond_destroy(&s->idle_cv);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->data_dir);
    free(s);
    snprintf(msg, msglen, "cannot start the serving thread");
    return NC_EINTERNAL;
  }
  *out = s;
  return NC_OK;
}

void nc_serving_free(nc_serving *s) {
  if (!s) return;
  nc_serving_unload(s);
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += 30;
  pthread_mutex_lock(&s->mu);
  while (s->live > 0)
    if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &dl) == ETIMEDOUT) break;
  int leaked = s->live;
  s->stop = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  if (leaked) {
    /* a reference is still held somewhere: leave the holder allocated rather than free
     * memory a live bundle points to */
    nc_log(NC_LOG_WARN, "serving: %d model bundle(s) still referenced at exit", leaked);
    return;
  }
  pthread_cond_destroy(&s->idle_cv);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s->data_dir);
  free(s);
}

/* ---- references -------------------------------------------------------------------------------- */

static void free_task(void *arg) {
  nc_served *b = arg;
  nc_serving *s = b->holder;
  nc_served_destroy(b);
  pthread_mutex_lock(&s->mu);
  if (--s->live == 0) pthread_cond_broadcast(&s->idle_cv);
  pthread_mutex_unlock(&s->mu);
}

void nc_served_destroy(nc_served *b) {
  if (!b) return;
  nc_engine_free(b->engine);   /* live requests finish CANCELLED (none: references hold them) */
  nc_model_free(b->model);
  nc_tokref_put(b->tokref);
  free(b->meta);
  pthread_mutex_destroy(&b->eval_mu);
  free(b);
}

void nc_served_release(nc_served *b) {
  if (!b) return;
  if (atomic_fetch_sub(&b->refs, 1) == 1) nc_serving_defer(b->holder, &b->free_task, free_task, b);
}

nc_served *nc_serving_acquire(nc_serving *s) {
  pthread_mutex_lock(&s->mu);
  nc_served *b = s->current;
  if (b) atomic_fetch_add(&b->refs, 1);
  pthread_mutex_unlock(&s->mu);
  return b;
}

int nc_serving_load(nc_serving *s, const nc_load_spec *spec, char *msg, size_t msglen) {
  char tag[65];
  int64_t step;
  int rc = nc_serving_resolve(s->data_dir, spec->phase, spec->tag, spec->step, tag, &step, msg, msglen);
  if (rc) return rc;
  nc_served *b = NULL;
  pthread_mutex_lock(&s->mu);
  s->live++; /* counted before it exists, so nc_serving_free waits for a load in progress */
  pthread_mutex_unlock(&s->mu);
  rc = nc_serving_build(s, spec->phase, tag, step, &b, msg, msglen);
  pthread_mutex_lock(&s->mu);
  nc_served *old = NULL;
  if (rc == NC_OK) {
    old = s->current;
    s->current = b;
  } else if (--s->live == 0) {
    pthread_cond_broadcast(&s->idle_cv);
  }
  pthread_mutex_unlock(&s->mu);
  if (rc) return rc;
  nc_served_release(old);
  nc_log(NC_LOG_INFO, "model: serving %s/%s step %lld (%llu parameters, %d slots)",
         nc_serving_phase_name(spec->phase), tag, (long long)step,
         (unsigned long long)b->parameters, s->o.slots);
  return NC_OK;
}

bool nc_serving_unload(nc_serving *s) {
  pthread_mutex_lock(&s->mu);
  nc_served *old = s->current;
  s->current = NULL;
  pthread_mutex_unlock(&s->mu);
  if (old) nc_log(NC_LOG_INFO, "model: unloaded");
  nc_served_release(old);
  return old != NULL;
}

/* ---- accessors ---------------------------------------------------------------------------------- */

nc_engine *nc_served_engine(const nc_served *b) { return b->engine; }
nc_model *nc_served_model(const nc_served *b) { return b->model; }
const nc_tokenizer *nc_served_tokenizer(const nc_served *b) { return nc_tokref_tok(b->tokref); }
const nc_special_ids *nc_served_specials(const nc_served *b) { return &b->sp; }
const nc_served_id *nc_served_identity(const nc_served *b) { return &b->id; }
nc_serving *nc_served_holder(const nc_served *b) { return b->holder; }

int nc_served_eval_trylock(nc_served *b) {
  return pthread_mutex_trylock(&b->eval_mu) == 0 ? NC_OK : NC_EBUSY;
}

void nc_served_eval_unlock(nc_served *b) { pthread_mutex_unlock(&b->eval_mu); }

/* ---- status -------------------------------------------------------------------------------------- */

void nc_served_info(nc_served *b, nc_model_info *mi) {
  mi->loaded = true;
  mi->phase = b->id.phase;
  snprintf(mi->model_tag, sizeof mi->model_tag, "%s", b->id.tag);
  mi->step = b->id.step;
  snprintf(mi->device, sizeof mi->device, "cpu");
  snprintf(mi->sha256, sizeof mi->sha256, "%s", b->id.sha256);
  mi->sequence_len = (uint32_t)b->cfg.sequence_len;
  mi->vocab_size = (uint32_t)b->cfg.vocab_size;
  mi->n_layer = (uint32_t)b->cfg.n_layer;
  mi->n_head = (uint32_t)b->cfg.n_head;
  mi->n_kv_head = (uint32_t)b->cfg.n_kv_head;
  mi->n_embd = (uint32_t)b->cfg.n_embd;
  snprintf(mi->window_pattern, sizeof mi->window_pattern, "%s", b->cfg.window_pattern);
  mi->parameters = b->parameters;
  mi->memory_bytes = b->memory_bytes;
  nc_engine_stats st;
  nc_engine_get_stats(b->engine, &st);
  mi->slots_total = (uint32_t)st.slots_total;
  mi->slots_in_use = (uint32_t)st.slots_in_use;
  mi->queue_depth = (uint32_t)st.queue_depth;
  mi->loaded_ms = b->id.loaded_ms;
}

void nc_model_info_config(const nc_model_info *mi, Nanochat__V1__ModelConfig *cfg) {
  nanochat__v1__model_config__init(cfg);
  cfg->has_sequence_len = cfg->has_vocab_size = cfg->has_n_layer = true;
  cfg->has_n_head = cfg->has_n_kv_head = cfg->has_n_embd = true;
  cfg->sequence_len = mi->sequence_len;
  cfg->vocab_size = mi->vocab_size;
  cfg->n_layer = mi->n_layer;
  cfg->n_head = mi->n_head;
  cfg->n_kv_head = mi->n_kv_head;
  cfg->n_embd = mi->n_embd;
  cfg->window_pattern = (char *)mi->window_pattern;
}

bool nc_serving_ready(void *arg) {
  nc_serving *s = arg;
  pthread_mutex_lock(&s->mu);
  bool ready = s->current != NULL;
  pthread_mutex_unlock(&s->mu);
  return ready;
}

void nc_serving_info(void *arg, nc_model_info *out) {
  nc_served *b = nc_serving_acquire(arg);
  if (!b) return;
  nc_served_info(b, out);
  nc_served_release(b);
}

/* ---- startup specs ------------------------------------------------------------------------------- */

int nc_serving_parse_spec(const char *text, int *phase, char tag[65], int64_t *step) {
  *phase = 0;
  tag[0] = 0;
  *step = -1;
  if (!text || !text[0]) return NC_EINVAL;
  if (strcmp(text, "latest") == 0) return NC_OK;
  char buf[160];
  if (strlen(text) >= sizeof buf) return NC_EINVAL;
  snprintf(buf, sizeof buf, "%s", text);
  char *p2 = strchr(buf, '/'), *p3 = NULL;
  if (p2) {
    *p2++ = 0;
    p3 = strchr(p2, '/');
    if (p3) *p3++ = 0;
  }
  for (int ph = 1; ph <= 3; ph++)
    if (strcmp(buf, nc_serving_phase_name(ph)) == 0) *phase = ph;
  if (!*phase) return NC_EINVAL;
  if (p2) {
    if (strlen(p2) > 64) return NC_EINVAL;
    snprintf(tag, 65, "%s", p2);
  }
  if (p3) {
    char *end;
    errno = 0;
    long long v = strtoll(p3, &end, 10);
    if (errno || end == p3 || *end || v < 0 || v > 999999999LL) return NC_EINVAL;
    *step = v;
  }
  return NC_OK;
}

int nc_serving_load_text(nc_serving *s, const char *text, char *msg, size_t msglen) {
  int phase;
  char tag[65];
  int64_t step;
  if (nc_serving_parse_spec(text, &phase, tag, &step) != NC_OK) {
    snprintf(msg, msglen, "expected latest or PHASE[/TAG[/STEP]] with PHASE base, sft or rl");
    return NC_EINVAL;
  }
  if (phase) {
    nc_load_spec sp = {phase, tag, step};
    return nc_serving_load(s, &sp, msg, msglen);
  }
  int rc = NC_ENOTFOUND;
  for (int ph = 3; ph >= 1; ph--) { /* latest: the most-trained phase that has a checkpoint */
    char t[65];
    int64_t st;
    if (nc_serving_resolve(s->data_dir, ph, NULL, -1, t, &st, msg, msglen) != NC_OK) continue;
    nc_load_spec sp = {ph, t, st};
    return nc_serving_load(s, &sp, msg, msglen);
  }
  snprintf(msg, msglen, "no complete checkpoint under checkpoints/ for any phase");
  return rc;
}
