/* nc_engine_rows.c — per-row work of the engine's scheduler: sampling, the tool state machine,
 * stop rules, UTF-8-safe text deltas, and finishing samples/requests. See nc_engine.h. */
#include <stdlib.h>
#include <string.h>

#include "nc_engine_internal.h"
#include "nc_err.h"

void nc_eng_rows_setup(nc_engine *e, eng_req *r) {
  r->prefilled = 0;
  r->n_live = r->p.num_samples;
  for (int i = 0; i < r->p.num_samples; i++) {
    eng_row *w = &e->rows[r->slot[i]];
    w->r = r;
    w->sample = i;
    w->state = ROW_WAIT;
    nc_kvcache_reset(w->kc);
    nc_tool_row_init(&w->tool, r->p.tools != 0);
    nc_rng_seed(&w->rng, r->p.seed + (uint64_t)i);
    nc_utf8_init(&w->u8);
    w->n_gen = 0;
    w->next_in = 0;
    w->lg = NULL;
  }
}

static nc_gen_event done_event(const eng_req *r, int sample, nc_finish why, int err,
                               const char *msg) {
  nc_gen_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = NC_GEN_DONE;
  ev.request_id = r->id;
  ev.sample = sample;
  ev.finish = why;
  ev.error = why == NC_FINISH_ERROR ? err : 0;
  ev.message = msg ? msg : "";
  ev.prompt_tokens = r->n_prompt;
  ev.text = "";
  return ev;
}

void nc_eng_finish_row(nc_engine *e, int slot, nc_finish why, int err, const char *msg) {
  eng_row *w = &e->rows[slot];
  eng_req *r = w->r;
  if (!r) return;
  nc_gen_event ev = done_event(r, w->sample, why, err, msg);
  ev.text_len = nc_utf8_flush(&w->u8, e->textbuf);
  ev.text = e->textbuf;
  ev.completion_tokens = w->n_gen;
  ev.tool_calls = w->tool.tool_calls;
  ev.last = r->n_live == 1;
  w->r = NULL;
  w->state = ROW_FREE;
  r->n_live--;
  /* the slot is free and the counters are final before the callback sees DONE */
  pthread_mutex_lock(&e->mu);
  e->owner[slot] = NULL;
  e->slots_used--;
  if (r->n_live == 0) {
    e->requests_active--;
    nc_eng_forget_locked(e, r);
  }
  nc_eng_admit_locked(e);
  pthread_mutex_unlock(&e->mu);
  (void)r->cb(r->user, &ev);
  if (r->n_live == 0) nc_eng_req_free(r);
}

void nc_eng_finish_request(nc_engine *e, eng_req *r, nc_finish why, int err, const char *msg) {
  /* the last finish_row frees r: collect the slots first */
  int slots[NC_ENGINE_MAX_SLOTS], n = 0;
  for (int i = 0; i < r->p.num_samples; i++)
    if (e->rows[r->slot[i]].r == r) slots[n++] = r->slot[i];
  for (int i = 0; i < n; i++) nc_eng_finish_row(e, slots[i], why, err, msg);
}

void nc_eng_drop_queued(nc_engine *e, eng_req *r) {
  nc_gen_event ev = done_event(r, 0, NC_FINISH_CANCELLED, 0, "");
  ev.last = 1;
  pthread_mutex_lock(&e->mu);
  nc_eng_forget_locked(e, r);
  pthread_mutex_unlock(&e->mu);
  (void)r->cb(r->user, &ev);
  nc_eng_req_free(r);
}

/* Decodes one token to bytes and pushes them through the row's UTF-8 stream; the valid delta is
 * e->textbuf[0 .. *len). NC_OK or the tokenizer's error. */
static int token_text(nc_engine *e, eng_row *w, int32_t tok, size_t *len) {
  long nb = e->cfg.tok.decode(e->cfg.tok.ctx, &tok, 1, e->tokbuf, NC_ENGINE_MAX_TOKEN_BYTES);
  if (nb < 0) return (int)nb;
  if (nb > NC_ENGINE_MAX_TOKEN_BYTES) return NC_EFULL;
  *len = nc_utf8_push(&w->u8, e->tokbuf, (size_t)nb, e->textbuf);
  return NC_OK;
}

/* Samples, forces, delivers and stops one ROW_READY row. */
static void emit_row(nc_engine *e, int slot, uint64_t *ntok) {
  eng_row *w = &e->rows[slot];
  eng_req *r = w->r;
  const nc_special_ids *sp = &e->cfg.sp;
  int sampled = 0, forced = 0;
  int rc = nc_sampler_sample(e->sampler, w->lg, r->p.sampling, &w->rng, &sampled);
  if (rc) {
    nc_eng_finish_row(e, slot, NC_FINISH_ERROR, rc,
                      rc == NC_ERANGE ? "non-finite logits" : "sampling failed");
    return;
  }
  const int32_t tok = nc_tool_row_choose(&w->tool, sampled, &forced);
  if ((rc = nc_tool_row_feed(&w->tool, &e->cfg.tok, sp, tok))) {
    nc_eng_finish_row(e, slot, NC_FINISH_ERROR, rc, "tool call: tokenizer error");
    return;
  }
  const int stop = r->p.mode == NC_GEN_CHAT ? (tok == sp->assistant_end || tok == sp->bos)
                                            : tok == sp->bos;
  if (stop) {
    nc_eng_finish_row(e, slot, NC_FINISH_STOP, 0, "");
    return;
  }
  size_t len = 0;
  if ((rc = token_text(e, w, tok, &len))) {
    nc_eng_finish_row(e, slot, NC_FINISH_ERROR, rc, "token decode failed");
    return;
  }
  nc_gen_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = NC_GEN_TOKEN;
  ev.request_id = r->id;
  ev.sample = w->sample;
  ev.token = tok;
  ev.forced = forced;
  ev.text = e->textbuf;
  ev.text_len = len;
  w->n_gen++;
  (*ntok)++;
  if (r->cb(r->user, &ev)) atomic_store(&r->cancel, 1);
  if (atomic_load(&r->cancel)) {
    nc_eng_finish_request(e, r, NC_FINISH_CANCELLED, 0, "");
  } else if (w->n_gen >= r->p.max_tokens || w->kc->seqlens[0] >= w->kc->t_max) {
    nc_eng_finish_row(e, slot, NC_FINISH_LENGTH, 0, "");
  } else {
    w->state = ROW_FEED;
    w->next_in = tok;
  }
}

void nc_eng_emit(nc_engine *e) {
  uint64_t ntok = 0;
  for (int s = 0; s < e->cfg.slots; s++) {
    eng_row *w = &e->rows[s];
    if (!w->r || w->state != ROW_READY) continue;
    if (atomic_load(&w->r->cancel)) {
      nc_eng_finish_request(e, w->r, NC_FINISH_CANCELLED, 0, "");
      continue;
    }
    emit_row(e, s, &ntok);
  }
  pthread_mutex_lock(&e->mu);
  e->st.tokens_generated += ntok;
  pthread_mutex_unlock(&e->mu);
}
