/* nc_h_eval_loss.c — Eval.Loss: bits per byte of the served model (specs §8.1, nc_eval.h).
 *
 * Data: the split ("val" default, or "train") of <data-dir>/corpus (scripts/build-corpus) or of
 * <data-dir>/datasets/<dataset.name>, read once (no wrap-around), each document tokenized with
 * the served model's tokenizer and prefixed with <|bos|>, packed by nanochat's BOS-aligned
 * best-fit loader into device_batch_size rows of sequence_len + 1 tokens; `steps` batches (fewer
 * when the split runs out). bpb = Σ loss of targets with token_bytes > 0 / (ln 2 · Σ bytes).
 *
 * Where it runs: on the worker pool (the method is `slow`), synchronously, on the SERVED
 * bundle's model through nc_model_forward — the model's own workspace, which the engine never
 * touches (the engine decodes from its own decoder and only reads the parameters), so
 * generation keeps running concurrently (the two share the CPU). One evaluation per model at a
 * time (RESOURCE_EXHAUSTED otherwise). Bounds: device_batch_size × sequence_len <=
 * NC_EVAL_MAX_BATCH_TOKENS and steps × that <= NC_EVAL_MAX_TOKENS; a client cancel or the
 * deadline stops between batches. The result is also stored (LMDB "evals", "bpb/<split>").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanochat/v1/eval.pb-c.h"
#include "nanochat/v1/train.pb-c.h"
#include "nc_call.h"
#include "nc_corpus.h"
#include "nc_err.h"
#include "nc_eval.h"
#include "nc_log.h"
#include "nc_serving.h"
#include "nc_store.h"

#define NC_EVAL_MAX_BATCH_TOKENS (1 << 16)
#define NC_EVAL_MAX_TOKENS (1ll << 26)

static int call_cancelled(void *arg) { return nc_call_is_cancelled(arg); }

static void store_result(nc_store *st, nc_served *b, const char *what, double bpb, uint64_t tokens, uint64_t bytes) {
  const nc_served_id *id = nc_served_identity(b);
  Nanochat__V1__JobEvent__MetricsEntry m[3];
  Nanochat__V1__JobEvent__MetricsEntry *mp[3];
  const char *keys[3] = {"bits_per_byte", "tokens", "bytes"};
  double vals[3] = {bpb, (double)tokens, (double)bytes};
  for (int i = 0; i < 3; i++) {
    nanochat__v1__job_event__metrics_entry__init(&m[i]);
    m[i].key = (char *)keys[i];
    m[i].has_value = true;
    m[i].value = vals[i];
    mp[i] = &m[i];
  }
  Nanochat__V1__CheckpointInfo ci = NANOCHAT__V1__CHECKPOINT_INFO__INIT;
  ci.has_phase = ci.has_step = true;
  ci.phase = (Nanochat__V1__Phase)id->phase;
  ci.tag = (char *)id->tag;
  ci.step = id->step;
  ci.path = (char *)id->path;
  ci.sha256 = (char *)id->sha256;
  Nanochat__V1__JobEvent ev = NANOCHAT__V1__JOB_EVENT__INIT;
  ev.has_kind = true;
  ev.kind = NANOCHAT__V1__EVENT_KIND__EVENT_EVAL;
  ev.n_metrics = 3;
  ev.metrics = mp;
  ev.checkpoint = &ci;
  ev.message = (char *)what;
  if (nc_store_eval_put(st, &ev) != NC_OK)
    nc_log(NC_LOG_WARN, "eval.loss: result not stored: %s", nc_store_last_error());
}

static int run(nc_call *c, nc_app *app, nc_served *b, const Nanochat__V1__EvalLossRequest *r) {
  const char *split = r->split && r->split[0] ? r->split : "val";
  if (strcmp(split, "val") != 0 && strcmp(split, "train") != 0)
    return nc_call_finish(c, NC_EINVAL, "split: must be val or train");
  const nc_model_config *cfg = nc_model_get_config(nc_served_model(b));
  int B = r->device_batch_size, T = cfg->sequence_len;
  if ((int64_t)B * T > NC_EVAL_MAX_BATCH_TOKENS)
    return nc_call_finish(c, NC_EINVAL, "device_batch_size: %d rows of %d tokens exceed %d tokens per batch", B, T,
                          NC_EVAL_MAX_BATCH_TOKENS);
  if ((int64_t)B * T * r->steps > NC_EVAL_MAX_TOKENS)
    return nc_call_finish(c, NC_EINVAL, "steps: %d batches of %d tokens exceed the budget of %lld tokens", r->steps,
                          B * T, (long long)NC_EVAL_MAX_TOKENS);
  const char *name = r->dataset ? r->dataset->name : NULL;
  char dir[NC_CONFIG_STR + 64];
  if (nc_corpus_resolve(app->cfg->data_dir, name, dir, sizeof dir) != NC_OK)
    return nc_call_finish(c, NC_EINVAL, "dataset.name: not a dataset name");
  nc_corpus_opts co = {.dir = dir, .split = split};
  nc_corpus *corpus = NULL;
  char err[512];
  int rc = nc_corpus_open(&co, &corpus, err, sizeof err);
  if (rc == NC_ENOTFOUND)
    return nc_call_finish(c, NC_ESTATE, "dataset: no %s text in %s%s", split, name && name[0] ? "datasets/" : "corpus",
                          name && name[0] ? name : " (build it with scripts/build-corpus)");
  if (rc) return nc_call_finish(c, rc, "dataset: cannot read it");
  const nc_tokenizer *tok = nc_served_tokenizer(b);
  int32_t vocab = nc_tok_vocab_size(tok);
  int32_t *tb = malloc((size_t)vocab * sizeof *tb);
  nc_tok_iface ti = nc_tok_chat_iface(tok);
  nc_corpus_source cs = {corpus, &ti, nc_served_specials(b)->bos, 0};
  nc_loader *ld = NULL;
  nc_loader_cfg lc = {B, T, 1000};
  rc = tb ? nc_tok_token_bytes(tok, tb, (size_t)vocab) : NC_ENOMEM;
  if (!rc) rc = nc_loader_create(lc, nc_corpus_doc_source(&cs), &ld);
  nc_bpb_acc acc;
  memset(&acc, 0, sizeof acc);
  bool locked = false;
  if (!rc) rc = nc_served_eval_trylock(b);
  if (!rc) {
    locked = true;
    rc = nc_eval_bpb(nc_served_model(b), ld, B, T, r->steps, tb, &acc, call_cancelled, c);
  }
  if (locked) nc_served_eval_unlock(b); /* before replying: the client's next call may follow at once */
  nc_loader_free(ld);
  nc_corpus_close(corpus);
  free(tb);
  if (rc == NC_EBUSY) return nc_call_finish(c, rc, "an evaluation is already running on this model");
  if (rc == NC_ENOTFOUND)
    return nc_call_finish(c, NC_ESTATE, "dataset: the %s split has fewer than %d tokens (one batch)", split, B * T + 1);
  if (rc) return nc_call_finish(c, rc, "evaluation failed: %s", nc_strerror(rc));
  double bpb = nc_bpb_value(&acc);
  char what[96];
  snprintf(what, sizeof what, "bpb/%s%s%s", name && name[0] ? name : "", name && name[0] ? "/" : "", split);
  if (app->store) store_result(app->store, b, what, bpb, acc.tokens, acc.bytes);
  const nc_served_id *id = nc_served_identity(b);
  Nanochat__V1__EvalLossResponse resp = NANOCHAT__V1__EVAL_LOSS_RESPONSE__INIT;
  resp.has_bits_per_byte = resp.has_tokens = resp.has_bytes = resp.has_model_step = resp.has_phase = true;
  resp.bits_per_byte = bpb;
  resp.split = (char *)split;
  resp.tokens = acc.tokens;
  resp.bytes = acc.bytes;
  resp.model_tag = (char *)id->tag;
  resp.model_step = id->step;
  resp.phase = (Nanochat__V1__Phase)id->phase;
  return nc_call_reply(c, &resp.base);
}

int nc_h_eval_loss(nc_call *c, const ProtobufCMessage *req) {
  nc_app *app = nc_call_app(c);
  nc_served *b = app->serving ? nc_serving_acquire(app->serving) : NULL;
  if (!b) return nc_call_finish(c, NC_ESTATE, "no model loaded");
  int rc = run(c, app, b, (const void *)req);
  nc_served_release(b);
  return rc;
}
