/* bench_engine.c — inference speed of the C engine for one model depth: prefill tok/s,
 * batch-1 decode tok/s (fp32, bf16 and bf16-dot weights; decoder alone), aggregate
 * tok/s with several concurrent streams through the engine, and the bf16-vs-fp32 accuracy check.
 * --weights is the engine's precision for the stream runs (auto: the fastest the CPU has); the
 * decoder alone is timed at every precision available, each checked against fp32.
 * Prints one JSON object. bench/bench_engine.py runs this and the PyTorch reference with the
 * same weights side by side.
 *
 *   bench_engine --depth 8 [--vocab 32768] [--seq 2048] [--threads 2] [--prompt 256]
 *                [--gen 64] [--streams 1,4,16] [--stream-prompt 64] [--reps 5]
 *                [--weights auto|bf16_dot|bf16|f32] [--dump DIR] [--seed 1]
 *
 * Weights: nanochat's init (seed) with attn.c_proj, mlp.c_proj drawn like c_q and lm_head from
 * N(0, 2/sqrt(C)), so every matrix is non-trivial and logits are O(1) (nanochat's init zeroes
 * the projections, which would make the accuracy check meaningless; speed does not depend on
 * the values). --dump DIR writes params.f32 + manifest.json (config, tensor names, offsets,
 * shapes; the layout of core/bin/nc_model_check) and prompt.i32 for the PyTorch side.
 *
 * Timing: median over `reps` of prefill of the whole prompt (one chunk) from an empty cache, per
 * precision (top-level prefill_tok_s: the engine's precision);
 * decode = median per-token time over `gen` greedy steps after that prefill. Streams: S
 * requests (prompts of --stream-prompt tokens, greedy, `gen` tokens each) submitted at once to an
 * engine with S slots; aggregate = completion tokens / wall time from submit to the last token
 * (prefills included), steady = tokens / time once every stream has its first token (means), and
 * steady_median = S / the median time between two tokens of one stream then (every step gives
 * each stream one token): comparable with the medians above on a machine shared with others.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nc_decode.h"
#include "nc_engine.h"
#include "bench_util.h"
#include "nc_err.h"
#include "nc_gemv.h"
#include "nc_kernels.h"
#include "nc_model.h"
#include "nc_model_config.h"
#include "nc_sample.h"


static int argmax(const float *v, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[b]) b = i;
  return b;
}

/* ------------------------------------------------------------------ weights and dump */

static void bench_weights(nc_model *m, uint64_t seed) {
  nc_model_init_weights(m, seed);
  const nc_model_config *c = nc_model_get_config(m);
  const nc_model_layout *ly = nc_model_get_layout(m);
  float *P = nc_model_param_buffer(m, NULL);
  const int64_t C = c->n_embd, Vp = nc_model_config_padded_vocab(c);
  nc_rng r;
  nc_rng_seed(&r, seed ^ 0x5eed);
  const double s = sqrt(3.0 / (double)C);
  for (int l = 0; l < c->n_layer; l++) {
    for (int64_t i = 0; i < C * C; i++) P[ly->layer[l].c_proj + i] = (float)(s * (2 * nc_rng_uniform(&r) - 1));
    for (int64_t i = 0; i < 4 * C * C; i++)
      P[ly->layer[l].mlp_c_proj + i] = (float)(0.5 * s * (2 * nc_rng_uniform(&r) - 1));
  }
  const double sh = 2.0 / sqrt((double)C) * sqrt(3.0); /* uniform with std 2/sqrt(C) */
  for (int64_t i = 0; i < Vp * C; i++) P[ly->lm_head + i] = (float)(sh * (2 * nc_rng_uniform(&r) - 1));
}

static int dump(nc_model *m, const int32_t *prompt, int n, const char *dir) {
  char path[4096];
  mkdir(dir, 0755);
  int64_t np;
  const float *P = nc_model_param_buffer(m, &np);
  snprintf(path, sizeof path, "%s/params.f32", dir);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(P, sizeof(float), (size_t)np, f) != (size_t)np) return -1;
  fclose(f);
  snprintf(path, sizeof path, "%s/prompt.i32", dir);
  f = fopen(path, "wb");
  if (!f || fwrite(prompt, sizeof(int32_t), (size_t)n, f) != (size_t)n) return -1;
  fclose(f);
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  f = fopen(path, "w");
  if (!f) return -1;
  char *cj = nc_model_config_to_json_string(nc_model_get_config(m));
  fprintf(f, "{\"config\":%s,\"tensors\":[", cj ? cj : "null");
  free(cj);
  int nt;
  nc_param *ps = nc_model_params(m, &nt);
  for (int i = 0; i < nt; i++) {
    fprintf(f, "%s{\"name\":\"%s\",\"offset\":%lld,\"shape\":[", i ? "," : "", ps[i].name,
            (long long)(ps[i].data - P));
    for (int d = 0; d < ps[i].ndim; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)ps[i].shape[d]);
    fprintf(f, "]}");
  }
  fprintf(f, "]}\n");
  return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ decoder-level timing */

typedef struct dec_result {
  double prefill_tok_s, decode_tok_s, decode_ms;
  int32_t *tokens; /* gen greedy tokens */
} dec_result;

static int time_decoder(nc_model *m, nc_decode_weights w, const int32_t *prompt, int P, int gen,
                        int reps, dec_result *out) {
  const int V = nc_model_get_config(m)->vocab_size;
  nc_decoder *d;
  nc_kvcache *kc;
  if (nc_decoder_create(m, w, 1, P, P + gen + 1, &d)) return -1;
  if (nc_kvcache_create(m, 1, P + gen + 1, &kc)) return -1;
  float *lg = malloc(sizeof(float) * (size_t)V);
  double *pt = malloc(sizeof(double) * (size_t)(reps + 1)), *dt = malloc(sizeof(double) * (size_t)gen);
  out->tokens = malloc(sizeof(int32_t) * (size_t)gen);
  for (int r = 0; r <= reps; r++) { /* rep 0 is warm-up */
    nc_kvcache_reset(kc);
    double t0 = nc_bench_now();
    if (nc_decoder_prefill(d, kc, prompt, P, lg)) return -1;
    pt[r] = nc_bench_now() - t0;
  }
  int32_t tok = argmax(lg, V);
  for (int i = 0; i < gen; i++) {
    out->tokens[i] = tok;
    nc_kvcache *rows[1] = {kc};
    double t0 = nc_bench_now();
    if (nc_decoder_step(d, rows, &tok, 1, lg)) return -1;
    dt[i] = nc_bench_now() - t0;
    tok = argmax(lg, V);
  }
  out->prefill_tok_s = P / nc_bench_median(pt + 1, reps);
  out->decode_ms = nc_bench_median(dt, gen) * 1e3;
  out->decode_tok_s = 1e3 / out->decode_ms;
  nc_kvcache_free(kc);
  nc_decoder_free(d);
  free(lg);
  free(pt);
  free(dt);
  return 0;
}

/* A reduced precision `w` against fp32: teacher-forced over the fp32 greedy tokens (max |logit
 * diff|, argmax agreement), and the common prefix of the two free-running greedy sequences. */
static void accuracy(nc_model *m, nc_decode_weights w, const int32_t *prompt, int P,
                     const int32_t *ref, const int32_t *own, int gen, double *max_diff, int *agree,
                     int *prefix) {
  const int V = nc_model_get_config(m)->vocab_size;
  nc_decoder *d32, *d16;
  nc_kvcache *a, *b;
  nc_decoder_create(m, NC_DECODE_F32, 1, P, P + gen + 1, &d32);
  nc_decoder_create(m, w, 1, P, P + gen + 1, &d16);
  nc_kvcache_create(m, 1, P + gen + 1, &a);
  nc_kvcache_create(m, 1, P + gen + 1, &b);
  float *la = malloc(sizeof(float) * (size_t)V), *lb = malloc(sizeof(float) * (size_t)V);
  nc_decoder_prefill(d32, a, prompt, P, la);
  nc_decoder_prefill(d16, b, prompt, P, lb);
  *max_diff = 0;
  *agree = 0;
  for (int i = 0; i < gen; i++) {
    for (int v = 0; v < V; v++) {
      double e = fabs((double)la[v] - lb[v]);
      if (e > *max_diff) *max_diff = e;
    }
    *agree += argmax(la, V) == argmax(lb, V);
    nc_kvcache *ra[1] = {a}, *rb[1] = {b};
    nc_decoder_step(d32, ra, &ref[i], 1, la);
    nc_decoder_step(d16, rb, &ref[i], 1, lb);
  }
  *prefix = 0;
  while (*prefix < gen && ref[*prefix] == own[*prefix]) (*prefix)++;
  free(la);
  free(lb);
  nc_kvcache_free(a);
  nc_kvcache_free(b);
  nc_decoder_free(d32);
  nc_decoder_free(d16);
}

/* ------------------------------------------------------------------ engine streams */

static long fake_encode(void *c, const char *t, size_t n, int32_t *out, size_t cap) {
  (void)c;
  for (size_t i = 0; i < n && i < cap; i++) out[i] = (unsigned char)t[i];
  return (long)n;
}
static long fake_decode(void *c, const int32_t *ids, size_t n, char *out, size_t cap) {
  (void)c;
  for (size_t i = 0; i < n && i < cap; i++) out[i] = (char)(32 + ids[i] % 95); /* printable ASCII */
  return (long)n;
}

typedef struct stream_state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, started;
  long tokens;
  double t_all_started, t_last;
  long tokens_at_all_started;
  int n;
  double *first; /* per stream */
  double *gaps;  /* stream 0's inter-token times once every stream decodes */
  int ngaps, capgaps;
  double t_prev0;
} stream_state;

typedef struct stream_arg {
  stream_state *st;
  int i;
  int seen;
} stream_arg;

static int stream_cb(void *user, const nc_gen_event *ev) {
  stream_arg *a = user;
  stream_state *s = a->st;
  pthread_mutex_lock(&s->mu);
  double t = nc_bench_now();
  if (ev->kind == NC_GEN_TOKEN) {
    s->tokens++;
    s->t_last = t;
    if (a->i == 0) {
      if (s->started == s->n && s->t_prev0 > 0 && s->ngaps < s->capgaps) s->gaps[s->ngaps++] = t - s->t_prev0;
      s->t_prev0 = t;
    }
    if (!a->seen) {
      a->seen = 1;
      s->first[a->i] = t;
      if (++s->started == s->n) {
        s->t_all_started = t;
        s->tokens_at_all_started = s->tokens;
      }
    }
  } else if (ev->last) {
    s->done++;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int run_streams(nc_model *m, nc_decode_weights w, int threads, int S, int P, int gen, double *agg,
                       double *steady, double *steady_med, long *ntok) {
  const int V = nc_model_get_config(m)->vocab_size;
  nc_engine_config c = nc_engine_config_default();
  c.slots = S;
  c.queue_limit = 0;
  c.context = P + gen + 1;
  c.weights = w;
  c.threads = threads;
  c.tok = (nc_tok_iface){NULL, fake_encode, fake_decode};
  c.sp = (nc_special_ids){V - 9, V - 8, V - 7, V - 6, V - 5, V - 4, V - 3, V - 2, V - 1};
  nc_engine *e;
  char msg[256];
  if (nc_engine_create(m, &c, &e, msg, sizeof msg)) {
    fprintf(stderr, "engine: %s\n", msg);
    return -1;
  }
  stream_state st;
  memset(&st, 0, sizeof st);
  pthread_mutex_init(&st.mu, NULL);
  pthread_cond_init(&st.cv, NULL);
  st.n = S;
  st.first = calloc((size_t)S, sizeof(double));
  st.capgaps = gen;
  st.gaps = calloc((size_t)gen, sizeof(double));
  stream_arg *args = calloc((size_t)S, sizeof(stream_arg));
  int32_t *prompt = malloc(sizeof(int32_t) * (size_t)P);
  nc_gen_params p = nc_gen_params_default();
  p.mode = NC_GEN_RAW;
  p.max_tokens = gen;
  p.sampling.temperature = 0.0f;
  p.tools = 0;
  double t0 = nc_bench_now();
  for (int i = 0; i < S; i++) {
    for (int k = 0; k < P; k++) prompt[k] = (int32_t)((1000003u * (unsigned)(k + 1) + 7919u * (unsigned)i) % (unsigned)(V - 9));
    args[i].st = &st;
    args[i].i = i;
    if (nc_engine_submit(e, prompt, P, &p, stream_cb, &args[i], NULL, msg, sizeof msg)) {
      fprintf(stderr, "submit: %s\n", msg);
      return -1;
    }
  }
  pthread_mutex_lock(&st.mu);
  while (st.done < S) pthread_cond_wait(&st.cv, &st.mu);
  pthread_mutex_unlock(&st.mu);
  *ntok = st.tokens;
  *agg = st.tokens / (st.t_last - t0);
  *steady = st.t_last > st.t_all_started
                ? (st.tokens - st.tokens_at_all_started) / (st.t_last - st.t_all_started)
                : 0.0;
  /* every step delivers one token per stream: S / median step time */
  *steady_med = st.ngaps > 0 ? S / nc_bench_median(st.gaps, st.ngaps) : 0.0;
  nc_engine_free(e);
  free(st.first);
  free(st.gaps);
  free(args);
  free(prompt);
  return 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
  int depth = 8, vocab = 32768, seq = 2048, threads = 2, P = 256, gen = 64, reps = 5, SP = 64;
  uint64_t seed = 1;
  const char *streams = "1,4,16", *weights = "auto", *dump_dir = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--depth")) depth = atoi(v);
    else if (!strcmp(k, "--vocab")) vocab = atoi(v);
    else if (!strcmp(k, "--seq")) seq = atoi(v);
    else if (!strcmp(k, "--threads")) threads = atoi(v);
    else if (!strcmp(k, "--prompt")) P = atoi(v);
    else if (!strcmp(k, "--gen")) gen = atoi(v);
    else if (!strcmp(k, "--reps")) reps = atoi(v);
    else if (!strcmp(k, "--stream-prompt")) SP = atoi(v);
    else if (!strcmp(k, "--streams")) streams = v;
    else if (!strcmp(k, "--weights")) weights = v;
    else if (!strcmp(k, "--dump")) dump_dir = v;
    else if (!strcmp(k, "--seed")) seed = strtoull(v, NULL, 10);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (threads < 1 || P < 1 || gen < 2 || reps < 1 || SP < 1 || P + gen >= 10 * seq) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  const nc_decode_weights w = !strcmp(weights, "f32")        ? NC_DECODE_F32
                              : !strcmp(weights, "bf16")     ? NC_DECODE_BF16
                              : !strcmp(weights, "bf16_dot") ? NC_DECODE_BF16_DOT
                                                             : NC_DECODE_AUTO;
  omp_set_num_threads(threads);
  nc_blas_single_thread();
  nc_model_config cfg;
  char msg[200];
  if (nc_model_config_from_depth(depth, 64, 128, seq, vocab, &cfg, msg, sizeof msg)) {
    fprintf(stderr, "config: %s\n", msg);
    return 2;
  }
  nc_model *m;
  if (nc_model_create(&cfg, &m, msg, sizeof msg)) {
    fprintf(stderr, "create: %s\n", msg);
    return 1;
  }
  bench_weights(m, seed);
  int32_t *prompt = malloc(sizeof(int32_t) * (size_t)P);
  for (int k = 0; k < P; k++) prompt[k] = (int32_t)((2654435761u * (unsigned)(k + 1)) % (unsigned)vocab);
  if (dump_dir && dump(m, prompt, P, dump_dir)) {
    fprintf(stderr, "dump to %s failed\n", dump_dir);
    return 1;
  }
  /* decoder alone at every precision the CPU has; the first is fp32, the reference */
  static const char *names[] = {"f32", "bf16", "bf16_dot"};
  const nc_decode_weights prec[] = {NC_DECODE_F32, NC_DECODE_BF16, NC_DECODE_BF16_DOT};
  const int nprec = nc_decoder_fastest_weights(m) == NC_DECODE_BF16_DOT ? 3 : 2;
  dec_result r[3];
  for (int i = 0; i < nprec; i++)
    if (time_decoder(m, prec[i], prompt, P, gen, reps, &r[i])) {
      fprintf(stderr, "decoder %s failed\n", names[i]);
      return 1;
    }
  const nc_decode_weights ew = w == NC_DECODE_AUTO ? nc_decoder_fastest_weights(m) : w;
  printf("{\"impl\":\"nanochat-c\",\"depth\":%d,\"n_embd\":%d,\"vocab\":%d,\"threads\":%d,"
         "\"prompt\":%d,\"gen\":%d,\"engine_weights\":\"%s\",\"blas_core\":\"%s\",\"gemv_avx2\":%d,"
         "\"bf16_dot_available\":%d,\"prefill_tok_s\":%.1f,\"decode\":{",
         depth, cfg.n_embd, vocab, threads, P, gen, names[ew], nc_blas_corename(),
         nc_gemv_has_avx2(), nprec == 3, r[ew == NC_DECODE_F32 ? 0 : ew == NC_DECODE_BF16 ? 1 : 2].prefill_tok_s);
  for (int i = 0; i < nprec; i++) {
    nc_decoder *pd;
    int64_t wb = 0;
    if (!nc_decoder_create(m, prec[i], 1, 1, 8, &pd)) {
      wb = nc_decoder_weight_bytes(pd);
      nc_decoder_free(pd);
    }
    printf("%s\"%s\":{\"prefill_tok_s\":%.1f,\"tok_s\":%.1f,\"ms\":%.3f,\"weight_bytes\":%lld,"
           "\"weight_gb_s\":%.1f",
           i ? "," : "", names[i], r[i].prefill_tok_s, r[i].decode_tok_s, r[i].decode_ms,
           (long long)wb, wb / (r[i].decode_ms * 1e-3) / 1e9);
    if (i > 0) {
      double max_diff;
      int agree, prefix;
      accuracy(m, prec[i], prompt, P, r[0].tokens, r[i].tokens, gen, &max_diff, &agree, &prefix);
      printf(",\"accuracy_vs_f32\":{\"max_abs_logit_diff\":%.5f,\"teacher_forced_argmax_agree\":%d,"
             "\"steps\":%d,\"greedy_common_prefix\":%d}",
             max_diff, agree, gen, prefix);
    }
    printf("}");
  }
  printf("},\"greedy_tokens_f32\":[");
  for (int i = 0; i < gen; i++) printf("%s%d", i ? "," : "", r[0].tokens[i]);
  printf("],\"streams\":[");
  char *list = strdup(streams);
  int first = 1;
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    int S = atoi(tok);
    if (S < 1 || S > NC_ENGINE_MAX_SLOTS) continue;
    double agg = 0, steady = 0, med = 0;
    long ntok = 0;
    if (run_streams(m, ew, threads, S, SP, gen, &agg, &steady, &med, &ntok)) return 1;
    printf("%s{\"streams\":%d,\"tokens\":%ld,\"aggregate_tok_s\":%.1f,\"steady_tok_s\":%.1f,"
           "\"steady_median_tok_s\":%.1f}",
           first ? "" : ",", S, ntok, agg, steady, med);
    fflush(stdout);
    first = 0;
  }
  free(list);
  printf("]}\n");
  for (int i = 0; i < nprec; i++) free(r[i].tokens);
  free(prompt);
  nc_model_free(m);
  return 0;
}
