/* nc_model_check — runs the C model on a deterministic batch and writes everything a
 * reference implementation needs to check it: the weights, the batch, the logits, the loss,
 * the per-token losses and every gradient. Used by tests/parity/test_model_parity.py
 * (PyTorch) and useful for debugging numerics.
 *
 *   nc_model_check --config '<model_config JSON>' --out DIR [--seed S] [--noise X]
 *                  [--B 2] [--T 16] [--ignore K] [--weighted 0|1] [--threads N]
 *
 * Weights: nanochat init (seed S) plus uniform noise of scale X on every tensor, so that no
 * gradient path is trivially zero (nanochat's init zeroes c_proj). The batch: ids and targets
 * drawn from the same seed, every K-th target set to -1 (K = 0: none), optional per-token
 * loss weights.
 *
 * Output in DIR: params.f32 (the flat parameter buffer), grads.f32 (the flat gradient buffer),
 * logits.f32 [B*T, V], losses.f32 [B*T], idx.i32, targets.i32, weights.f32 (if weighted), and
 * manifest.json {config, B, T, loss, eval_loss, weighted, tensors: [{name, offset, shape}]}.
 * All binary files are raw little-endian arrays. Exit status 0 on success.
 */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nc_err.h"
#include "nc_model.h"
#include "nc_model_config.h"
#include "nc_sample.h"

static int write_raw(const char *dir, const char *name, const void *p, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(p, 1, bytes, f);
  int rc = fclose(f);
  return (w == bytes && rc == 0) ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *cfg_json = NULL, *out = NULL;
  unsigned long long seed = 1;
  double noise = 0.05;
  int B = 2, T = 16, ignore = 0, weighted = 0, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--config")) cfg_json = v;
    else if (!strcmp(k, "--out")) out = v;
    else if (!strcmp(k, "--seed")) seed = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--noise")) noise = atof(v);
    else if (!strcmp(k, "--B")) B = atoi(v);
    else if (!strcmp(k, "--T")) T = atoi(v);
    else if (!strcmp(k, "--ignore")) ignore = atoi(v);
    else if (!strcmp(k, "--weighted")) weighted = atoi(v);
    else if (!strcmp(k, "--threads")) threads = atoi(v);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (!cfg_json || !out || B < 1 || T < 2 || (int64_t)B * T > 65536 || threads < 1) {
    fprintf(stderr, "usage: nc_model_check --config JSON --out DIR [--seed S] [--noise X] "
                    "[--B n] [--T n] [--ignore k] [--weighted 0|1] [--threads n]\n");
    return 2;
  }
  omp_set_num_threads(threads);
  nc_model_config cfg;
  char msg[256];
  if (nc_model_config_from_json_string(cfg_json, strlen(cfg_json), &cfg, msg, sizeof msg)) {
    fprintf(stderr, "config: %s\n", msg);
    return 2;
  }
  if (mkdir(out, 0755) != 0 && errno != EEXIST) {
    perror("mkdir");
    return 1;
  }
  nc_model *m;
  if (nc_model_create(&cfg, &m, msg, sizeof msg)) {
    fprintf(stderr, "create: %s\n", msg);
    return 1;
  }
  nc_model_init_weights(m, seed);
  int64_t np;
  float *P = nc_model_param_buffer(m, &np);
  nc_rng r;
  nc_rng_seed(&r, seed ^ 0x5eedULL);
  for (int64_t i = 0; i < np; i++) P[i] += (float)(noise * (2.0 * nc_rng_uniform(&r) - 1.0));
  const int64_t N = (int64_t)B * T;
  const int V = cfg.vocab_size;
  int32_t *idx = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
  float *w = malloc(sizeof(float) * (size_t)N), *losses = malloc(sizeof(float) * (size_t)N);
  float *logits = malloc(sizeof(float) * (size_t)N * V);
  if (!idx || !tg || !w || !losses || !logits) return 1;
  for (int64_t i = 0; i < N; i++) {
    idx[i] = (int32_t)(nc_rng_next(&r) % (uint64_t)V);
    tg[i] = (int32_t)(nc_rng_next(&r) % (uint64_t)V);
    if (ignore > 0 && i % ignore == ignore - 1) tg[i] = -1;
    w[i] = (float)(0.1 * (2.0 * nc_rng_uniform(&r) - 1.0));
  }
  float loss = 0, eval_loss = 0;
  nc_model_zero_grad(m);
  int rc = nc_model_forward_backward(m, idx, tg, weighted ? w : NULL, B, T, 1.0f, &loss);
  if (!rc) rc = nc_model_forward(m, idx, tg, B, T, &eval_loss, losses, logits);
  if (rc) {
    fprintf(stderr, "model: %s\n", nc_strerror(rc));
    return 1;
  }
  const float *G = nc_model_grad_buffer(m, NULL);
  int bad = 0;
  bad |= write_raw(out, "params.f32", P, sizeof(float) * (size_t)np);
  bad |= write_raw(out, "grads.f32", G, sizeof(float) * (size_t)np);
  bad |= write_raw(out, "logits.f32", logits, sizeof(float) * (size_t)N * V);
  bad |= write_raw(out, "losses.f32", losses, sizeof(float) * (size_t)N);
  bad |= write_raw(out, "idx.i32", idx, sizeof(int32_t) * (size_t)N);
  bad |= write_raw(out, "targets.i32", tg, sizeof(int32_t) * (size_t)N);
  if (weighted) bad |= write_raw(out, "weights.f32", w, sizeof(float) * (size_t)N);
  char path[4096];
  snprintf(path, sizeof path, "%s/manifest.json", out);
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  char *cj = nc_model_config_to_json_string(&cfg);
  fprintf(f, "{\"config\":%s,\"B\":%d,\"T\":%d,\"loss\":%.9g,\"eval_loss\":%.9g,\"weighted\":%d,"
             "\"tensors\":[", cj ? cj : "null", B, T, (double)loss, (double)eval_loss, weighted);
  free(cj);
  int n;
  nc_param *ps = nc_model_params(m, &n);
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s{\"name\":\"%s\",\"offset\":%lld,\"shape\":[", i ? "," : "", ps[i].name,
            (long long)(ps[i].data - P));
    for (int d = 0; d < ps[i].ndim; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)ps[i].shape[d]);
    fprintf(f, "]}");
  }
  fprintf(f, "]}\n");
  bad |= fclose(f) != 0;
  free(idx);
  free(tg);
  free(w);
  free(losses);
  free(logits);
  nc_model_free(m);
  if (bad) {
    fprintf(stderr, "write failed\n");
    return 1;
  }
  return 0;
}
