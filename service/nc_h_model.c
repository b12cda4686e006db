/* nc_h_model.c — Model.Status (from the engine's hook, nc_app.model), Model.Load /
 * Model.Unload (nc_serving.h: validate fully, then swap atomically), Model.Sample /
 * Model.SampleStream (raw completions: <|bos|> + the prompt's ordinary tokens, num_samples
 * sharing one prefill in the engine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanochat/v1/model.pb-c.h"
#include "nc_call.h"
#include "nc_err.h"
#include "nc_gen.h"
#include "nc_serving.h"

static int reply_status(nc_call *c) {
  nc_app *app = nc_call_app(c);
  nc_model_info mi;
  memset(&mi, 0, sizeof mi);
  if (app->model.info) app->model.info(app->model.arg, &mi);
  Nanochat__V1__ModelStatus st = NANOCHAT__V1__MODEL_STATUS__INIT;
  Nanochat__V1__ModelConfig cfg = NANOCHAT__V1__MODEL_CONFIG__INIT;
  st.has_loaded = true;
  st.loaded = mi.loaded;
  st.has_slots_total = st.has_slots_in_use = st.has_queue_depth = true;
  st.slots_total = mi.slots_total;
  st.slots_in_use = mi.slots_in_use;
  st.queue_depth = mi.queue_depth;
  if (mi.loaded) {
    st.has_phase = true;
    st.phase = (Nanochat__V1__Phase)mi.phase;
    st.model_tag = mi.model_tag;
    st.has_step = true;
    st.step = mi.step;
    st.device = mi.device;
    nc_model_info_config(&mi, &cfg);
    st.config = &cfg;
    st.has_parameters = st.has_memory_bytes = st.has_loaded_ms = true;
    st.parameters = mi.parameters;
    st.memory_bytes = mi.memory_bytes;
    st.loaded_ms = mi.loaded_ms;
    st.sha256 = mi.sha256;
  }
  return nc_call_reply(c, &st.base);
}

int nc_h_model_status(nc_call *c, const ProtobufCMessage *req) {
  (void)req;
  return reply_status(c);
}

int nc_h_model_load(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__ModelLoadRequest *r = (const void *)req;
  nc_app *app = nc_call_app(c);
  if (!app->serving) return nc_call_finish(c, NC_ENOTREADY, "serving is not set up");
  const char *dev = r->device ? r->device : "";
  if (!strcmp(dev, "cuda"))
    return nc_call_finish(c, NC_ESTATE, "device: cuda is not available (this server's engine runs on the CPU)");
  if (dev[0] && strcmp(dev, "auto") != 0 && strcmp(dev, "cpu") != 0)
    return nc_call_finish(c, NC_EINVAL, "device: must be auto, cpu or cuda");
  nc_load_spec sp;
  sp.phase = r->phase ? (int)r->phase : NANOCHAT__V1__PHASE__PHASE_SFT;
  sp.tag = r->model_tag;
  sp.step = r->has_step ? r->step : -1;
  char msg[512];
  int rc = nc_serving_load(app->serving, &sp, msg, sizeof msg);
  if (rc) return nc_call_finish(c, rc, "%s", msg);
  return reply_status(c);
}

int nc_h_model_unload(nc_call *c, const ProtobufCMessage *req) {
  (void)req;
  nc_app *app = nc_call_app(c);
  if (app->serving) nc_serving_unload(app->serving);
  return reply_status(c);
}

/* ---- Model.Sample / Model.SampleStream ----------------------------------------------------- */

static void sample_finalize(nc_gen *g) {
  nc_call *c = nc_gen_call(g);
  if (*(const bool *)nc_gen_user(g)) { /* streamed: every delta and finish went out */
    nc_call_finish(c, NC_OK, NULL);
    return;
  }
  int n = nc_gen_n_samples(g);
  char **samples = calloc((size_t)n, sizeof *samples);
  if (!samples) {
    nc_call_finish(c, NC_ENOMEM, "out of memory");
    return;
  }
  Nanochat__V1__Usage usage = NANOCHAT__V1__USAGE__INIT;
  usage.has_prompt_tokens = usage.has_completion_tokens = usage.has_forced_tokens = true;
  usage.prompt_tokens = (uint32_t)nc_gen_prompt_tokens(g);
  for (int i = 0; i < n; i++) {
    const nc_gen_out *o = nc_gen_result(g, i);
    samples[i] = o->text.p ? o->text.p : "";
    usage.completion_tokens += (uint32_t)o->completion_tokens;
    usage.forced_tokens += (uint32_t)o->forced_tokens;
  }
  Nanochat__V1__SampleResponse resp = NANOCHAT__V1__SAMPLE_RESPONSE__INIT;
  resp.n_samples = (size_t)n;
  resp.samples = samples;
  resp.has_num_samples = true;
  resp.num_samples = n;
  resp.usage = &usage;
  nc_call_reply(c, &resp.base);
  free(samples);
}

static int sample_run(nc_call *c, const Nanochat__V1__SampleRequest *r, bool stream) {
  nc_app *app = nc_call_app(c);
  nc_served *b = app->serving ? nc_serving_acquire(app->serving) : NULL;
  if (!b) return nc_call_finish(c, NC_ESTATE, "no model loaded");
  const nc_tokenizer *tok = nc_served_tokenizer(b);
  const char *prompt = r->prompt ? r->prompt : "";
  size_t len = strlen(prompt);
  int32_t *ids = malloc((len + 2) * sizeof *ids);
  long n = ids ? nc_tok_encode(tok, prompt, len, NC_TOK_PREPEND_BOS, ids, len + 1) : NC_ENOMEM;
  nc_engine_stats st;
  nc_engine_get_stats(nc_served_engine(b), &st);
  int rc = NC_OK;
  char err[256] = "";
  if (n < 0) {
    rc = (int)n;
    snprintf(err, sizeof err, "prompt: cannot encode (%s)", nc_strerror(rc));
  } else if (n + r->max_tokens > st.context) {
    rc = NC_EINVAL;
    snprintf(err, sizeof err, "prompt of %ld tokens + max_tokens %d exceeds the context of %d tokens", n,
             r->max_tokens, st.context);
  } else if (r->num_samples > st.slots_total) {
    rc = NC_EINVAL;
    snprintf(err, sizeof err, "num_samples: %d exceeds the %d generation slots of this server", r->num_samples,
             st.slots_total);
  }
  bool *streamed = rc ? NULL : malloc(sizeof *streamed);
  nc_gen *g = NULL;
  if (!rc && !streamed) rc = NC_ENOMEM;
  if (rc) {
    free(ids);
    free(streamed);
    nc_served_release(b);
    return nc_call_finish(c, rc, "%s", err[0] ? err : "out of memory");
  }
  *streamed = stream;
  if (nc_gen_create(c, b, NC_GENK_SAMPLE, stream, r->num_samples, sample_finalize, false, &g) != NC_OK) {
    free(ids);
    free(streamed);
    return nc_call_finish(c, NC_ENOMEM, "out of memory");
  }
  nc_gen_set_user(g, streamed, free);
  nc_gen_params p = nc_gen_params_default();
  p.mode = NC_GEN_RAW;
  p.max_tokens = r->max_tokens;
  p.sampling.temperature = r->temperature;
  p.sampling.top_k = r->top_k;
  p.sampling.top_p = r->top_p;
  p.sampling.min_p = 0;
  p.seed = r->has_seed ? r->seed : nc_random_seed();
  p.tools = 1; /* nanochat's engine runs its tool state machine in every mode */
  p.num_samples = r->num_samples;
  rc = r->include_prompt ? nc_gen_prefix(g, prompt, len) : NC_OK;
  if (!rc) rc = nc_gen_start(g, ids, (int)n, &p, err, sizeof err);
  else snprintf(err, sizeof err, "out of memory");
  free(ids);
  if (rc) return nc_call_finish(c, rc, "%s", err);
  return NC_OK;
}

int nc_h_model_sample(nc_call *c, const ProtobufCMessage *req) { return sample_run(c, (const void *)req, false); }
int nc_h_model_sample_stream(nc_call *c, const ProtobufCMessage *req) {
  return sample_run(c, (const void *)req, true);
}
