/* nc_optim_check — trains the C model for a few optimizer steps on a fixed batch and writes
 * everything a reference implementation needs to check the optimizer and the checkpoint
 * format: checkpoints (safetensors, nc_checkpoint.h) before and after every step, and per
 * step the batch, loss, logits and every gradient. Used by tests/parity/test_optim_parity.py.
 *
 *   nc_optim_check --out DIR (--config '<model_config JSON>' | --init FILE.safetensors)
 *       [--seed S] [--noise X] [--B 2] [--T 16] [--steps 2] [--threads 1]
 *       [--optim muonadamw|adamw] [--bf16 0|1]
 *       MuonAdamW: [--unembedding-lr 0.004] [--embedding-lr 0.2] [--matrix-lr 0.02]
 *                  [--scalar-lr 0.5] [--weight-decay 0]
 *       AdamW:     [--lr 1e-3] [--adamw-wd 0.01]
 *       schedule:  [--num-iterations N (0: constant lrm 1, momentum 0.95)] [--warmup 40]
 *                  [--warmdown-ratio 0.65] [--final-lr-frac 0.05]
 *
 * Weights: --init loads a model file (e.g. written by PyTorch); otherwise nanochat init
 * (seed S) plus uniform noise of scale X on every tensor. The batch is drawn from the seed.
 * Output in DIR: ckpt/ with model_/optim_/meta_ files for steps 0..K (step s = after s
 * optimizer steps; --bf16 stores wte/value embeds as BF16), step_<s>.safetensors (s < K):
 * "idx", "targets" (I32 [B,T]), "loss" (F32 [1]), "logits" (F32 [B,T,V]), "grad.<name>",
 * and manifest.json {B, T, steps, schedule: [{lrm, momentum, weight_decay}]}.
 * Exit status 0 on success.
 */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_model.h"
#include "nc_optim.h"
#include "nc_safetensors.h"
#include "nc_sample.h"

typedef struct args {
  const char *config, *init, *out, *optim;
  unsigned long long seed;
  double noise, ulr, elr, mlr, slr, wd, lr, awd, warmdown, final_frac;
  int B, T, steps, threads, bf16, num_iter, warmup;
} args;

static int parse(int argc, char **argv, args *a) {
  *a = (args){.optim = "muonadamw", .seed = 1, .noise = 0.05, .ulr = 0.004, .elr = 0.2,
              .mlr = 0.02, .slr = 0.5, .lr = 1e-3, .awd = 0.01, .warmdown = 0.65,
              .final_frac = 0.05, .B = 2, .T = 16, .steps = 2, .threads = 1, .warmup = 40};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--config")) a->config = v;
    else if (!strcmp(k, "--init")) a->init = v;
    else if (!strcmp(k, "--out")) a->out = v;
    else if (!strcmp(k, "--optim")) a->optim = v;
    else if (!strcmp(k, "--seed")) a->seed = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--noise")) a->noise = atof(v);
    else if (!strcmp(k, "--unembedding-lr")) a->ulr = atof(v);
    else if (!strcmp(k, "--embedding-lr")) a->elr = atof(v);
    else if (!strcmp(k, "--matrix-lr")) a->mlr = atof(v);
    else if (!strcmp(k, "--scalar-lr")) a->slr = atof(v);
    else if (!strcmp(k, "--weight-decay")) a->wd = atof(v);
    else if (!strcmp(k, "--lr")) a->lr = atof(v);
    else if (!strcmp(k, "--adamw-wd")) a->awd = atof(v);
    else if (!strcmp(k, "--warmdown-ratio")) a->warmdown = atof(v);
    else if (!strcmp(k, "--final-lr-frac")) a->final_frac = atof(v);
    else if (!strcmp(k, "--B")) a->B = atoi(v);
    else if (!strcmp(k, "--T")) a->T = atoi(v);
    else if (!strcmp(k, "--steps")) a->steps = atoi(v);
    else if (!strcmp(k, "--threads")) a->threads = atoi(v);
    else if (!strcmp(k, "--bf16")) a->bf16 = atoi(v);
    else if (!strcmp(k, "--num-iterations")) a->num_iter = atoi(v);
    else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return -1;
    }
  }
  if (!a->out || (!a->config == !a->init) || a->B < 1 || a->T < 2 || (int64_t)a->B * a->T > 65536 ||
      a->steps < 0 || a->steps > 100 || a->threads < 1) {
    fprintf(stderr, "usage: nc_optim_check --out DIR (--config JSON | --init FILE) [options]\n");
    return -1;
  }
  return 0;
}

static nc_model *make_model(const args *a) {
  nc_model *m = NULL;
  nc_st_error err = {0};
  char msg[256];
  if (a->init) {
    nc_st_file *f;
    nc_model_config cfg;
    if (nc_st_open(a->init, &f, &err) || nc_ckpt_check_model(f, &cfg, &err) ||
        nc_ckpt_model_from_file(f, &cfg, NULL, &m, &err)) {
      fprintf(stderr, "init %s: %s: %s\n", a->init, nc_st_errkind_name(err.kind), err.msg);
      m = NULL;
    }
    nc_st_close(f);
    return m;
  }
  nc_model_config cfg;
  if (nc_model_config_from_json_string(a->config, strlen(a->config), &cfg, msg, sizeof msg) ||
      nc_model_create(&cfg, &m, msg, sizeof msg)) {
    fprintf(stderr, "config: %s\n", msg);
    return NULL;
  }
  nc_model_init_weights(m, a->seed);
  int64_t np;
  float *P = nc_model_param_buffer(m, &np);
  nc_rng r;
  nc_rng_seed(&r, a->seed ^ 0x5eedULL);
  for (int64_t i = 0; i < np; i++) P[i] += (float)(a->noise * (2.0 * nc_rng_uniform(&r) - 1.0));
  return m;
}

/* step_<s>.safetensors: the batch, loss, logits and every gradient. */
static int write_step(const char *dir, int s, nc_model *m, const int32_t *idx, const int32_t *tg,
                      int B, int T, float loss, const float *logits) {
  int n;
  nc_param *ps = nc_model_params(m, &n);
  nc_st_tensor *t = calloc((size_t)n + 4, sizeof *t);
  char *names = malloc((size_t)n * 80);
  if (!t || !names) return -1;
  const int V = nc_model_get_config(m)->vocab_size;
  t[0] = (nc_st_tensor){"idx", NC_DT_I32, 2, {B, T}, idx, 0};
  t[1] = (nc_st_tensor){"targets", NC_DT_I32, 2, {B, T}, tg, 0};
  t[2] = (nc_st_tensor){"loss", NC_DT_F32, 1, {1}, &loss, 0};
  t[3] = (nc_st_tensor){"logits", NC_DT_F32, 3, {B, T, V}, logits, 0};
  for (int i = 0; i < n; i++) {
    snprintf(names + (size_t)i * 80, 80, "grad.%s", ps[i].name);
    t[4 + i] = (nc_st_tensor){names + (size_t)i * 80, NC_DT_F32, ps[i].ndim, {0}, ps[i].grad, 0};
    for (int d = 0; d < ps[i].ndim; d++) t[4 + i].shape[d] = ps[i].shape[d];
  }
  char path[64];
  snprintf(path, sizeof path, "step_%d.safetensors", s);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  nc_st_error err;
  int rc = dfd < 0 ? -1 : nc_st_write(dfd, path, t, n + 4, NULL, 0, NULL, NULL, &err);
  if (rc) fprintf(stderr, "write %s: %s\n", path, dfd < 0 ? "no dir" : err.msg);
  if (dfd >= 0) close(dfd);
  free(t);
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  args a;
  if (parse(argc, argv, &a)) return 2;
  omp_set_num_threads(a.threads);
  if (mkdir(a.out, 0755) != 0 && errno != EEXIST) {
    perror("mkdir");
    return 1;
  }
  nc_model *m = make_model(&a);
  if (!m) return 1;
  const nc_model_config *cfg = nc_model_get_config(m);
  int n;
  nc_param *ps = nc_model_params(m, &n);
  nc_optim_cfg oc;
  if (!strcmp(a.optim, "adamw")) {
    oc = nc_optim_cfg_adamw(a.lr, a.awd);
  } else {
    oc = nc_optim_cfg_muonadamw(cfg->n_embd);
    oc.unembedding_lr = a.ulr;
    oc.embedding_lr = a.elr;
    oc.matrix_lr = a.mlr;
    oc.scalar_lr = a.slr;
    oc.weight_decay = a.wd;
  }
  nc_optim *o;
  char msg[256];
  if (nc_optim_create(ps, n, &oc, &o, msg, sizeof msg)) {
    fprintf(stderr, "optim: %s\n", msg);
    return 1;
  }
  char ckdir[4096];
  snprintf(ckdir, sizeof ckdir, "%s/ckpt", a.out);
  nc_ckpt_dir *d;
  nc_st_error err = {0};
  if (nc_ckpt_dir_open_path(ckdir, 1, &d, &err)) {
    fprintf(stderr, "ckpt dir: %s\n", err.msg);
    return 1;
  }
  nc_ckpt_save_opts so = {.bf16_embeddings = a.bf16};
  const int B = a.B, T = a.T, V = cfg->vocab_size;
  const int64_t N = (int64_t)B * T;
  int32_t *idx = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
  float *logits = malloc(sizeof(float) * (size_t)N * V);
  if (!idx || !tg || !logits) return 1;
  nc_rng r;
  nc_rng_seed(&r, a.seed ^ 0xba7c4ULL);
  for (int64_t i = 0; i < N; i++) {
    idx[i] = (int32_t)(nc_rng_next(&r) % (uint64_t)V);
    tg[i] = (int32_t)(nc_rng_next(&r) % (uint64_t)V);
  }
  FILE *man = NULL;
  char path[4200];
  snprintf(path, sizeof path, "%s/manifest.json", a.out);
  if (!(man = fopen(path, "w"))) return 1;
  fprintf(man, "{\"B\":%d,\"T\":%d,\"steps\":%d,\"schedule\":[", B, T, a.steps);
  int rc = nc_ckpt_save(d, 0, m, o, NULL, &so, NULL, &err);
  for (int s = 0; s < a.steps && !rc; s++) {
    float loss = 0;
    nc_model_zero_grad(m);
    rc = nc_model_forward_backward(m, idx, tg, NULL, B, T, 1.0f, &loss);
    if (!rc) rc = nc_model_forward(m, idx, tg, B, T, NULL, NULL, logits);
    if (!rc) rc = write_step(a.out, s, m, idx, tg, B, T, loss, logits);
    double lrm = 1.0, mom = 0.95, wd = a.wd;
    if (a.num_iter > 0) {
      lrm = nc_lr_multiplier(s, a.num_iter, a.warmup, a.warmdown, a.final_frac);
      mom = nc_muon_momentum(s, a.num_iter, a.warmdown);
      wd = nc_muon_weight_decay(s, a.num_iter, a.wd);
    }
    nc_optim_set_schedule(o, lrm, mom, wd);
    fprintf(man, "%s{\"lrm\":%.17g,\"momentum\":%.17g,\"weight_decay\":%.17g}", s ? "," : "", lrm,
            mom, wd);
    if (!rc) rc = nc_optim_step(o, NULL);
    if (!rc) rc = nc_ckpt_save(d, s + 1, m, o, NULL, &so, NULL, &err);
    if (rc) fprintf(stderr, "step %d: %s (%s)\n", s, nc_strerror(rc), err.msg);
  }
  fprintf(man, "]}\n");
  fclose(man);
  free(idx);
  free(tg);
  free(logits);
  nc_ckpt_dir_close(d);
  nc_optim_free(o);
  nc_model_free(m);
  return rc ? 1 : 0;
}
