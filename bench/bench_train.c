/* bench_train.c — training throughput of the C model (one config, one thread count), and the
 * sgemm GFLOP/s of OpenBLAS at the model's own matmul shapes (the physical limit).
 * Prints one JSON object. bench/bench_train.py runs this and the PyTorch reference side by
 * side and reports ratios.
 *
 *   bench_train --depth 8 [--threads 2] [--seq 512] [--tokens 8192] [--vocab 32768]
 *               [--pattern L] [--steps 6] [--warmup 2] [--optim none|sgd|muon|adamw] [--sgemm 1]
 *
 * muon: nanochat's MuonAdamW (nc_optim) with GPT.setup_optimizer's defaults, as the PyTorch
 * side uses (bench_train.py); adamw: plain AdamW on every parameter.
 *
 * Timing: median (and best) wall time of `steps` optimizer steps (forward + backward +
 * update) after `warmup` steps, and the best process CPU time of a step (tok_per_cpu_s: with
 * one thread a load-independent measure of the work on a shared machine); FLOPs per token are nanochat's estimate_flops (nc_model_config_flops_per_
 * token), so tok/s * flops/token is comparable with the PyTorch run and with the sgemm rate.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "nc_err.h"
#include "nc_kernels.h"
#include "nc_model.h"
#include "nc_model_config.h"
#include "nc_optim.h"

static double cpu_now(void) { /* CPU time of the whole process (all threads) */
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}


/* GFLOP/s of nc_gemm (OpenMP split, single-threaded OpenBLAS inside) on one shape, per
 * second of wall time (returned) and per second of process CPU time (*cpu_rate) */
static double gemm_rate(int ta, int tb, int M, int N, int K, double *cpu_rate) {
  float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
  float *C = malloc(sizeof(float) * (size_t)M * N);
  if (!A || !B || !C) {
    free(A); free(B); free(C);
    *cpu_rate = 0;
    return 0;
  }
  for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((i * 7) % 13) * 0.01f;
  for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)((i * 5) % 11) * 0.01f;
  memset(C, 0, sizeof(float) * (size_t)M * N);
  int lda = ta ? M : K, ldb = tb ? K : N;
  nc_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
  double best = 0;
  *cpu_rate = 0;
  for (int r = 0; r < 3; r++) {
    double t0 = nc_bench_now(), c0 = cpu_now();
    int it = 0;
    while (nc_bench_now() - t0 < 0.4) {
      nc_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
      it++;
    }
    double g = 2.0 * M * N * K * it / (nc_bench_now() - t0) / 1e9;
    double gc = 2.0 * M * N * K * it / (cpu_now() - c0) / 1e9;
    if (g > best) best = g;
    if (gc > *cpu_rate) *cpu_rate = gc;
  }
  free(A); free(B); free(C);
  return best;
}

int main(int argc, char **argv) {
  int depth = 4, threads = 1, seq = 512, tokens = 8192, vocab = 32768, steps = 6, warmup = 2;
  int do_sgemm = 1;
  const char *pattern = "L", *optim = "sgd";
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--depth")) depth = atoi(v);
    else if (!strcmp(k, "--threads")) threads = atoi(v);
    else if (!strcmp(k, "--seq")) seq = atoi(v);
    else if (!strcmp(k, "--tokens")) tokens = atoi(v);
    else if (!strcmp(k, "--vocab")) vocab = atoi(v);
    else if (!strcmp(k, "--pattern")) pattern = v;
    else if (!strcmp(k, "--steps")) steps = atoi(v);
    else if (!strcmp(k, "--warmup")) warmup = atoi(v);
    else if (!strcmp(k, "--optim")) optim = v;
    else if (!strcmp(k, "--sgemm")) do_sgemm = atoi(v);
    else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  if (steps < 1 || steps > 1000 || warmup < 0 || threads < 1 || seq < 2 || tokens < seq) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  omp_set_num_threads(threads);
  nc_blas_single_thread();
  nc_model_config cfg;
  char msg[200];
  if (nc_model_config_from_depth(depth, 64, 128, seq, vocab, &cfg, msg, sizeof msg)) {
    fprintf(stderr, "config: %s\n", msg);
    return 2;
  }
  snprintf(cfg.window_pattern, sizeof cfg.window_pattern, "%s", pattern);
  nc_model *m;
  if (nc_model_create(&cfg, &m, msg, sizeof msg)) {
    fprintf(stderr, "create: %s\n", msg);
    return 1;
  }
  nc_model_init_weights(m, 1);
  const int B = tokens / seq;
  int32_t *idx = malloc(sizeof(int32_t) * (size_t)tokens), *tg = malloc(sizeof(int32_t) * (size_t)tokens);
  uint64_t s = 88172645463325252ULL;
  for (int i = 0; i < tokens; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    idx[i] = (int32_t)(s % (uint64_t)vocab);
  }
  for (int i = 0; i < tokens; i++) tg[i] = idx[(i + 1) % tokens];
  int64_t np;
  float *P = nc_model_param_buffer(m, &np);
  float *G = nc_model_grad_buffer(m, NULL);
  int use_sgd = !strcmp(optim, "sgd");
  nc_optim *opt = NULL;
  if (!strcmp(optim, "muon") || !strcmp(optim, "adamw")) {
    int n;
    nc_param *ps = nc_model_params(m, &n);
    nc_optim_cfg oc = !strcmp(optim, "muon") ? nc_optim_cfg_muonadamw(cfg.n_embd)
                                             : nc_optim_cfg_adamw(1e-3, 0.0);
    if (nc_optim_create(ps, n, &oc, &opt, msg, sizeof msg)) {
      fprintf(stderr, "optim: %s\n", msg);
      return 1;
    }
  } else if (!use_sgd && strcmp(optim, "none")) {
    fprintf(stderr, "unknown --optim %s\n", optim);
    return 2;
  }
  double *dt = malloc(sizeof(double) * (size_t)steps);
  double *fb = malloc(sizeof(double) * (size_t)steps);
  double *op = malloc(sizeof(double) * (size_t)steps);
  double *cpu = malloc(sizeof(double) * (size_t)steps);
  float loss = 0, first = 0;
  for (int it = 0; it < warmup + steps; it++) {
    double t0 = nc_bench_now(), c0 = cpu_now();
    nc_model_zero_grad(m);
    if (nc_model_forward_backward(m, idx, tg, NULL, B, seq, 1.0f, &loss)) {
      fprintf(stderr, "forward_backward failed\n");
      return 1;
    }
    double t1 = nc_bench_now();
    if (use_sgd) {
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < np; i++) P[i] -= 1e-3f * G[i];
    }
    if (opt && nc_optim_step(opt, NULL)) {
      fprintf(stderr, "optimizer step failed\n");
      return 1;
    }
    double t2 = nc_bench_now();
    if (it == 0) first = loss;
    if (it >= warmup) {
      dt[it - warmup] = t2 - t0;
      fb[it - warmup] = t1 - t0;
      op[it - warmup] = t2 - t1;
      cpu[it - warmup] = cpu_now() - c0;
    }
  }
  double best = dt[0], cbest = cpu[0];
  for (int i = 1; i < steps; i++) {
    best = dt[i] < best ? dt[i] : best;
    cbest = cpu[i] < cbest ? cpu[i] : cbest;
  }
  double step = nc_bench_median(dt, steps), fbm = nc_bench_median(fb, steps);
  int64_t fpt = nc_model_config_flops_per_token(&cfg);
  double tps = tokens / step;
  double achieved = tps * (double)fpt / 1e9;
  printf("{\"impl\":\"nanochat-c\",\"depth\":%d,\"n_embd\":%d,\"threads\":%d,\"seq\":%d,"
         "\"tokens_per_step\":%d,\"vocab\":%d,\"window_pattern\":\"%s\",\"optim\":\"%s\","
         "\"params\":%lld,\"flops_per_token\":%lld,\"step_ms\":%.1f,\"fwd_bwd_ms\":%.1f,\"optim_ms\":%.1f,"
         "\"tok_per_s\":%.1f,\"tok_per_s_best\":%.1f,\"tok_per_cpu_s\":%.1f,\"gflops\":%.1f,\"loss_first\":%.4f,\"loss_last\":%.4f,"
         "\"blas_core\":\"%s\"",
         depth, cfg.n_embd, threads, seq, tokens, vocab, cfg.window_pattern, optim,
         (long long)np, (long long)fpt, step * 1e3, fbm * 1e3, nc_bench_median(op, steps) * 1e3, tps, tokens / best, tokens / cbest, achieved, first, loss,
         nc_blas_corename());
  if (do_sgemm) {
    /* the model's big shapes: forward x W^T, backward dY W and dY^T X, lm_head block */
    const int N = tokens, C = cfg.n_embd, F = 4 * C, QKV = 3 * C;
    struct { const char *name; int ta, tb, M, N, K; } sh[] = {
        {"qkv_fwd", 0, 1, N, QKV, C},  {"fc_fwd", 0, 1, N, F, C},
        {"proj_fwd", 0, 1, N, C, F},   {"fc_dx", 0, 0, N, C, F},
        {"fc_dw", 1, 0, F, C, N},      {"head_fwd", 0, 1, 512, vocab, C},
    };
    int ns = (int)(sizeof sh / sizeof sh[0]);
    double sum = 0, csum = 0;
    printf(",\"sgemm\":{");
    for (int i = 0; i < ns; i++) {
      double gc, g = gemm_rate(sh[i].ta, sh[i].tb, sh[i].M, sh[i].N, sh[i].K, &gc);
      sum += g;
      csum += gc;
      printf("%s\"%s\":%.1f", i ? "," : "", sh[i].name, g);
    }
    double plateau = sum / ns;
    printf("},\"sgemm_plateau_gflops\":%.1f,\"sgemm_plateau_cpu_gflops\":%.1f,"
           "\"frac_of_sgemm\":%.3f", plateau, csum / ns, achieved / plateau);
  }
  printf("}\n");
  free(dt);
  free(fb);
  free(op);
  free(cpu);
  nc_optim_free(opt);
  free(idx);
  free(tg);
  nc_model_free(m);
  return 0;
}
