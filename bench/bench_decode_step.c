/* bench_decode_step.c — one batched decode step (nc_decoder_step) at several batch sizes, the
 * decoder alone (no engine, no sampling), for one depth and precision. Reference in the same
 * run: batch 1 (the bandwidth-bound case every larger batch is compared with), and the step's
 * matmuls alone (the GEMV kernels on the same shapes, bf16-dot or bf16 as the decoder), so the
 * rest of the step (norms, attention, softcap, per-row work) shows as the difference.
 *
 *   bench_decode_step --depth 8 [--vocab 32768] [--threads 2] [--batches 1,4,16] [--ctx 128]
 *                     [--steps 32] [--reps 3] [--weights auto|bf16_dot|bf16|f32] [--matmul 1|0]
 *                     [--kv bf16|f32]
 *
 * Every row starts from the same --ctx-token prompt prefilled in its own cache; a rep times
 * `steps` steps (medians of per-step times, then the median over reps). Weights are random
 * (nc_model_init_weights; speed does not depend on values). Prints one JSON object:
 * per batch ms/step, tok/s, GFLOP/s of the matmuls (2 * weights * rows / time), the matmuls'
 * own ms and the ratio tok/s(B) / tok/s(1); then the CPU's bf16 dot-product peak on 1 and on
 * --threads threads (register-only VDPBF16PS chains), the ceiling of a compute-bound batch.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nc_decode.h"
#include "nc_err.h"
#include "nc_gemv.h"
#include "nc_model.h"
#include "nc_model_config.h"

#define MAX_BATCHES 8

/* matmul shapes of one decode step: per layer qkv, proj, fc, mproj; then the head */
typedef struct shape { int O, K, times; } shape;

static double time_matmuls(const shape *sh, int ns, int B, int dot, int steps) {
  size_t wmax = 0;
  int kmax = 0, omax = 0;
  for (int i = 0; i < ns; i++) {
    size_t n = nc_gemv_bf16_packed_size(sh[i].O, sh[i].K);
    if (n > wmax) wmax = n;
    if (sh[i].K > kmax) kmax = sh[i].K;
    if (sh[i].O > omax) omax = sh[i].O;
  }
  /* one distinct weight buffer per matrix instance, like the decoder (caches see the real
   * footprint) */
  int inst = 0;
  for (int i = 0; i < ns; i++) inst += sh[i].times;
  uint16_t **W = calloc((size_t)inst, sizeof *W);
  int *ws = calloc((size_t)inst, sizeof *ws);
  int q = 0;
  for (int i = 0; i < ns; i++)
    for (int t = 0; t < sh[i].times; t++, q++) {
      size_t n = nc_gemv_bf16_packed_size(sh[i].O, sh[i].K);
      W[q] = aligned_alloc(64, (n * 2 + 63) / 64 * 64);
      for (size_t j = 0; j < n; j++) W[q][j] = (uint16_t)(0x3c00 + (j * 2654435761u >> 20) % 512);
      ws[q] = i;
    }
  float *x = calloc((size_t)B * kmax, sizeof(float)), *y = calloc((size_t)B * omax, sizeof(float));
  uint16_t *xb = calloc((size_t)B * kmax, sizeof(uint16_t));
  for (int i = 0; i < B * kmax; i++) x[i] = 0.01f * (float)(i % 97);
  nc_f32_to_bf16(x, xb, (size_t)B * kmax);
  double *dt = malloc(sizeof(double) * (size_t)steps);
  for (int s = 0; s < steps; s++) {
    double t0 = nc_bench_now();
    for (int j = 0; j < inst; j++) {
      const shape *h = &sh[ws[j]];
      if (dot) nc_gemv_bf16dp_packed(W[j], h->O, h->K, xb, h->K, B, y, h->O, 0, 0);
      else nc_gemv_bf16_packed(W[j], h->O, h->K, x, h->K, B, y, h->O, 0, 0);
    }
    dt[s] = nc_bench_now() - t0;
  }
  double med = nc_bench_median(dt, steps);
  for (int j = 0; j < inst; j++) free(W[j]);
  free(W);
  free(ws);
  free(x);
  free(y);
  free(xb);
  free(dt);
  return med;
}

/* The CPU's bf16 dot-product peak (GFLOP/s) on `threads` threads: 16 independent VDPBF16PS
 * accumulator chains on registers only (no memory traffic) for ~0.2 s per thread; 0 without
 * AVX512_BF16. The bound a compute-bound batch can approach. */
#define NC_PEAK_ITERS 12000000L
__attribute__((target("avx512f,avx512bf16"))) static double peak_one(void) {
  __m512 a[16];
  for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
  __m512bh w = (__m512bh)_mm512_set1_epi32(0x3f803f80), x = w;
  const double t0 = nc_bench_now();
  for (long n = 0; n < NC_PEAK_ITERS; n++) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_dpbf16_ps(a[i], w, x);
    __asm__ volatile("" : "+v"(w), "+v"(x)); /* keep the operands opaque */
  }
  const double t = nc_bench_now() - t0;
  float sink = 0, tmp[16];
  for (int i = 0; i < 16; i++) {
    _mm512_storeu_ps(tmp, a[i]);
    sink += tmp[0];
  }
  __asm__ volatile("" : : "x"(sink));
  return (double)NC_PEAK_ITERS * 16 * 64 / t * 1e-9; /* 32 multiply-adds per instruction */
}

static double dot_peak(int threads) {
  if (!nc_gemv_bf16dp_available()) return 0;
  double tot = 0;
#pragma omp parallel num_threads(threads) reduction(+ : tot)
  tot += peak_one();
  return tot;
}

int main(int argc, char **argv) {
  int depth = 8, vocab = 32768, threads = 2, ctx = 128, steps = 32, reps = 3, matmul = 1;
  int batches[MAX_BATCHES] = {1, 4, 16}, nb = 3;
  nc_decode_weights w = NC_DECODE_AUTO;
  nc_kv_dtype kvt = NC_KV_BF16;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--depth")) depth = atoi(v);
    else if (!strcmp(k, "--vocab")) vocab = atoi(v);
    else if (!strcmp(k, "--threads")) threads = atoi(v);
    else if (!strcmp(k, "--ctx")) ctx = atoi(v);
    else if (!strcmp(k, "--steps")) steps = atoi(v);
    else if (!strcmp(k, "--reps")) reps = atoi(v);
    else if (!strcmp(k, "--matmul")) matmul = atoi(v);
    else if (!strcmp(k, "--batches")) {
      nb = 0;
      for (const char *p = v; *p && nb < MAX_BATCHES;) {
        batches[nb++] = atoi(p);
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
      }
    } else if (!strcmp(k, "--kv")) {
      kvt = !strcmp(v, "f32") ? NC_KV_F32 : NC_KV_BF16;
    } else if (!strcmp(k, "--weights")) {
      w = !strcmp(v, "f32") ? NC_DECODE_F32 : !strcmp(v, "bf16") ? NC_DECODE_BF16
          : !strcmp(v, "bf16_dot") ? NC_DECODE_BF16_DOT : NC_DECODE_AUTO;
    } else {
      fprintf(stderr, "unknown option %s\n", k);
      return 2;
    }
  }
  int bmax = 1;
  for (int i = 0; i < nb; i++) {
    if (batches[i] < 1 || batches[i] > NC_DECODE_MAX_ROWS || steps < 1 || reps < 1 || ctx < 1) {
      fprintf(stderr, "bad batch/steps/reps/ctx\n");
      return 2;
    }
    if (batches[i] > bmax) bmax = batches[i];
  }
  omp_set_num_threads(threads);
  char msg[256];
  nc_model_config cfg;
  if (nc_model_config_from_depth(depth, 64, 128, 2048, vocab, &cfg, msg, sizeof msg)) {
    fprintf(stderr, "config: %s\n", msg);
    return 1;
  }
  nc_model *m;
  if (nc_model_create(&cfg, &m, msg, sizeof msg)) {
    fprintf(stderr, "model: %s\n", msg);
    return 1;
  }
  nc_model_init_weights(m, 1);
  if (w == NC_DECODE_AUTO) w = nc_decoder_fastest_weights(m);
  const int tmax = ctx + steps * reps + 2;
  nc_decoder *d;
  if (nc_decoder_create(m, w, bmax, ctx, tmax, &d)) {
    fprintf(stderr, "decoder\n");
    return 1;
  }
  const int C = cfg.n_embd, L = cfg.n_layer, Hkv = cfg.n_kv_head, D = C / cfg.n_head;
  const int QKV = C + 2 * Hkv * D, F = 4 * C;
  const shape sh[5] = {{QKV, C, L}, {C, C, L}, {F, C, L}, {C, F, L}, {vocab, C, 1}};
  const double wts = (double)L * ((double)QKV * C + (double)C * C + 2.0 * F * C) + (double)vocab * C;
  nc_kvcache **kcs = calloc((size_t)bmax, sizeof *kcs);
  int32_t *prompt = malloc(sizeof(int32_t) * (size_t)ctx), *ids = malloc(sizeof(int32_t) * (size_t)bmax);
  float *lg = malloc(sizeof(float) * (size_t)bmax * vocab);
  for (int i = 0; i < ctx; i++) prompt[i] = (int32_t)((i * 7919 + 13) % vocab);
  for (int b = 0; b < bmax; b++) {
    if (nc_kvcache_create_ex(m, 1, tmax, kvt, &kcs[b])) return 1;
    ids[b] = (int32_t)((b * 31 + 5) % vocab);
  }
  double *dt = malloc(sizeof(double) * (size_t)steps), *rep = malloc(sizeof(double) * (size_t)reps);
  const char *names[] = {"f32", "bf16", "bf16_dot"};
  printf("{\"bench\":\"decode_step\",\"depth\":%d,\"n_embd\":%d,\"vocab\":%d,\"threads\":%d,"
         "\"ctx\":%d,\"weights\":\"%s\",\"kv\":\"%s\",\"weight_bytes\":%lld,\"gflop_per_row\":%.4f,\"batches\":[",
         depth, C, vocab, threads, ctx, names[w], kvt == NC_KV_BF16 ? "bf16" : "f32", (long long)nc_decoder_weight_bytes(d),
         2.0 * wts * 1e-9);
  double tok1 = 0;
  for (int bi = 0; bi < nb; bi++) {
    const int B = batches[bi];
    for (int r = 0; r < reps; r++) {
      for (int b = 0; b < B; b++) {
        nc_kvcache_reset(kcs[b]);
        if (nc_decoder_prefill(d, kcs[b], prompt, ctx, NULL)) return 1;
      }
      for (int s = 0; s < steps; s++) {
        double t0 = nc_bench_now();
        if (nc_decoder_step(d, kcs, ids, B, lg)) return 1;
        dt[s] = nc_bench_now() - t0;
      }
      rep[r] = nc_bench_median(dt, steps);
    }
    const double step = nc_bench_median(rep, reps);
    const double mm = w == NC_DECODE_F32 || !matmul ? 0 : time_matmuls(sh, 5, B, w == NC_DECODE_BF16_DOT, steps);
    const double tok = B / step;
    if (bi == 0) tok1 = tok;
    printf("%s{\"batch\":%d,\"step_ms\":%.3f,\"tok_s\":%.1f,\"gflop_s\":%.1f,\"matmul_ms\":%.3f,"
           "\"matmul_gflop_s\":%.1f,\"vs_first\":%.2f}",
           bi ? "," : "", B, step * 1e3, tok, 2.0 * wts * B / step * 1e-9, mm * 1e3,
           mm > 0 ? 2.0 * wts * B / mm * 1e-9 : 0.0, tok / tok1);
    fflush(stdout);
  }
  const double pk1 = dot_peak(1), pkt = threads > 1 ? dot_peak(threads) : pk1;
  printf("],\"dot_peak_gflop_s\":{\"1\":%.1f,\"%d\":%.1f}}\n", pk1, threads, pkt);
  for (int b = 0; b < bmax; b++) nc_kvcache_free(kcs[b]);
  nc_decoder_free(d);
  nc_model_free(m);
  free(kcs);
  free(prompt);
  free(ids);
  free(lg);
  free(dt);
  free(rep);
  return 0;
}
