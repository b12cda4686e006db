/* nc_attention.c — see nc_attention.h. */
#include "nc_attention.h"
#include "nc_par.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nc_vmath.h"

static int64_t max_end(const nc_attn *a) {
  int64_t m = 0;
  for (int b = 0; b < a->B; b++) {
    int64_t e = (a->pos0 ? a->pos0[b] : 0) + a->T;
    if (e > m) m = e;
  }
  return m;
}

/* largest key range of one query block */
static int64_t max_keys(const nc_attn *a) {
  int64_t e = max_end(a);
  int64_t w = (int64_t)a->window + NC_ATTN_BLOCK;
  return e < w ? e : w;
}

size_t nc_attn_workspace_floats(const nc_attn *a, int nthreads) {
  /* per thread: S [BLOCK, maxk], dP [BLOCK, maxk], delta [BLOCK] */
  return (size_t)nthreads * (2 * (size_t)NC_ATTN_BLOCK * (size_t)max_keys(a) + NC_ATTN_BLOCK);
}

/* key range [jlo, jhi) of the queries at positions [p_first, p_last] */
static inline void key_range(int64_t p_first, int64_t p_last, int window, int64_t *jlo,
                             int64_t *jhi) {
  int64_t lo = p_first - window;
  *jlo = lo < 0 ? 0 : lo;
  *jhi = p_last + 1;
}

typedef struct fwd_job {
  const nc_attn *a;
  float *work;
  size_t per_thread;
  int nqb, rep;
} fwd_job;

/* One task: query block qb of head h of sequence b, with scratch slot `worker`. */
static void fwd_task(void *ctx, int task, int worker) {
  const fwd_job *j = ctx;
  const nc_attn *a = j->a;
  const int nqb = j->nqb, rep = j->rep, D = a->D;
  float *S = j->work + (size_t)worker * j->per_thread; /* S [nq, nk] */
  const int qb = (int)(task % nqb);
  const int h = (int)((task / nqb) % a->H);
  const int b = (int)(task / ((int64_t)nqb * a->H));
  const int g = h / rep;
  const int64_t p0 = a->pos0 ? a->pos0[b] : 0;
  const int t0 = qb * NC_ATTN_BLOCK, t1 = t0 + NC_ATTN_BLOCK < a->T ? t0 + NC_ATTN_BLOCK : a->T;
  const int nq = t1 - t0;
  int64_t jlo, jhi;
  key_range(p0 + t0, p0 + t1 - 1, a->window, &jlo, &jhi);
  const int nk = (int)(jhi - jlo);
  const float *Q = a->q + b * a->q_bs + (int64_t)t0 * a->q_ts + (int64_t)h * D;
  const float *K = a->k + b * a->kv_bs + jlo * a->kv_ts + (int64_t)g * D;
  const float *Vv = a->v + b * a->kv_bs + jlo * a->kv_ts + (int64_t)g * D;
  float *Y = a->y + b * a->y_bs + (int64_t)t0 * a->y_ts + (int64_t)h * D;
  /* S = scale * Q K^T : [nq, D] x [D, nk]  (one query: sgemv, no packing) */
  if (nq == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, nk, D, a->scale, K, (int)a->kv_ts, Q, 1, 0.0f, S, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, a->scale, Q, (int)a->q_ts,
                K, (int)a->kv_ts, 0.0f, S, nk);
  for (int i = 0; i < nq; i++) {
    const int64_t p = p0 + t0 + i;
    int64_t lo = p - a->window < jlo ? jlo : p - a->window;
    const int c0 = (int)(lo - jlo), c1 = (int)(p - jlo) + 1; /* valid columns [c0, c1) */
    float *s = S + (size_t)i * nk;
    float m = nc_vmax(s + c0, c1 - c0);
    double sum = nc_exp_affine_sum(s + c0, c1 - c0, 1.0f, m);
    float inv = (float)(1.0 / sum);
    for (int c = c0; c < c1; c++) s[c] *= inv;
    if (c0 > 0) memset(s, 0, sizeof(float) * (size_t)c0);
    if (c1 < nk) memset(s + c1, 0, sizeof(float) * (size_t)(nk - c1));
    if (a->lse) a->lse[((int64_t)b * a->H + h) * a->T + t0 + i] = m + (float)log(sum);
  }
  /* Y = P V : [nq, nk] x [nk, D] */
  if (nq == 1)
    cblas_sgemv(CblasRowMajor, CblasTrans, nk, D, 1.0f, Vv, (int)a->kv_ts, S, 1, 0.0f, Y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, S, nk, Vv,
                (int)a->kv_ts, 0.0f, Y, (int)a->y_ts);
}

static fwd_job fwd_setup(const nc_attn *a, float *work, int64_t *ntask, double *work_est) {
  fwd_job j = {a, work, 2 * (size_t)NC_ATTN_BLOCK * (size_t)max_keys(a) + NC_ATTN_BLOCK,
               (a->T + NC_ATTN_BLOCK - 1) / NC_ATTN_BLOCK, a->H / a->Hkv};
  *ntask = (int64_t)a->B * a->H * j.nqb;
  *work_est = (double)a->B * a->H * a->T * (double)max_keys(a) * a->D;
  return j;
}

void nc_attn_fwd(const nc_attn *a, float *work) {
  int64_t ntask;
  double work_est;
  const fwd_job j = fwd_setup(a, work, &ntask, &work_est);
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1 && work_est > 4e6)
  for (int64_t task = 0; task < ntask; task++) fwd_task((void *)&j, (int)task, omp_get_thread_num());
}

void nc_attn_fwd_pool(const nc_attn *a, float *work, int threads) {
  int64_t ntask;
  double work_est;
  const fwd_job j = fwd_setup(a, work, &ntask, &work_est);
  nc_par_run(ntask > 1 && work_est > 4e6 ? threads : 1, (int)ntask, fwd_task, (void *)&j);
}

void nc_attn_bwd(const nc_attn *a, const float *dy, float *dq, float *dk, float *dv,
                 float *work) {
  const int nqb = (a->T + NC_ATTN_BLOCK - 1) / NC_ATTN_BLOCK;
  const int64_t ntask = (int64_t)a->B * a->Hkv;
  const int rep = a->H / a->Hkv, D = a->D;
  const int64_t mk = max_keys(a);
  const size_t per_thread = 2 * (size_t)NC_ATTN_BLOCK * (size_t)mk + NC_ATTN_BLOCK;
  /* one task per (sequence, kv head): it owns dk/dv of that head, so no two threads write
   * the same gradient rows */
  const double work_est = (double)a->B * a->H * a->T * (double)mk * D;
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1 && work_est > 4e6)
  for (int64_t task = 0; task < ntask; task++) {
    float *P = work + (size_t)omp_get_thread_num() * per_thread; /* P [nq, nk]  */
    float *dP = P + (size_t)NC_ATTN_BLOCK * mk;                   /* dP [nq, nk] */
    float *delta = dP + (size_t)NC_ATTN_BLOCK * mk;               /* delta [nq]  */
    const int g = (int)(task % a->Hkv), b = (int)(task / a->Hkv);
    float *dKb = dk + b * a->kv_bs + (int64_t)g * D;
    float *dVb = dv + b * a->kv_bs + (int64_t)g * D;
    for (int j = 0; j < a->T; j++) {
      memset(dKb + (int64_t)j * a->kv_ts, 0, sizeof(float) * (size_t)D);
      memset(dVb + (int64_t)j * a->kv_ts, 0, sizeof(float) * (size_t)D);
    }
    for (int h = g * rep; h < (g + 1) * rep; h++) {
      for (int qb = 0; qb < nqb; qb++) {
        const int t0 = qb * NC_ATTN_BLOCK;
        const int t1 = t0 + NC_ATTN_BLOCK < a->T ? t0 + NC_ATTN_BLOCK : a->T;
        const int nq = t1 - t0;
        int64_t jlo, jhi;
        key_range(t0, t1 - 1, a->window, &jlo, &jhi);
        const int nk = (int)(jhi - jlo);
        const float *Q = a->q + b * a->q_bs + (int64_t)t0 * a->q_ts + (int64_t)h * D;
        const float *K = a->k + b * a->kv_bs + jlo * a->kv_ts + (int64_t)g * D;
        const float *Vv = a->v + b * a->kv_bs + jlo * a->kv_ts + (int64_t)g * D;
        const float *Y = a->y + b * a->y_bs + (int64_t)t0 * a->y_ts + (int64_t)h * D;
        const float *dY = dy + b * a->y_bs + (int64_t)t0 * a->y_ts + (int64_t)h * D;
        float *dQ = dq + b * a->q_bs + (int64_t)t0 * a->q_ts + (int64_t)h * D;
        const float *L = a->lse + ((int64_t)b * a->H + h) * a->T + t0;
        /* P = exp(scale Q K^T - lse) on the valid range, 0 elsewhere */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, a->scale, Q,
                    (int)a->q_ts, K, (int)a->kv_ts, 0.0f, P, nk);
        /* dP = dY V^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, dY, (int)a->y_ts,
                    Vv, (int)a->kv_ts, 0.0f, dP, nk);
        for (int i = 0; i < nq; i++) {
          const int64_t p = t0 + i;
          int64_t lo = p - a->window < jlo ? jlo : p - a->window;
          const int c0 = (int)(lo - jlo), c1 = (int)(p - jlo) + 1;
          float *pr = P + (size_t)i * nk, *dpr = dP + (size_t)i * nk;
          const float *yr = Y + (int64_t)i * a->y_ts, *dyr = dY + (int64_t)i * a->y_ts;
          float dl = 0;
          for (int d = 0; d < D; d++) dl += dyr[d] * yr[d];
          delta[i] = dl;
          nc_exp_affine_sum(pr + c0, c1 - c0, 1.0f, L[i]);
          if (c0 > 0) {
            memset(pr, 0, sizeof(float) * (size_t)c0);
            memset(dpr, 0, sizeof(float) * (size_t)c0);
          }
          if (c1 < nk) {
            memset(pr + c1, 0, sizeof(float) * (size_t)(nk - c1));
            memset(dpr + c1, 0, sizeof(float) * (size_t)(nk - c1));
          }
          for (int c = c0; c < c1; c++) dpr[c] = pr[c] * (dpr[c] - dl); /* dS / scale */
        }
        /* dQ = scale dS K ; dK += scale dS^T Q ; dV += P^T dY */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, a->scale, dP, nk, K,
                    (int)a->kv_ts, 0.0f, dQ, (int)a->q_ts);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, a->scale, dP, nk, Q,
                    (int)a->q_ts, 1.0f, dKb + jlo * a->kv_ts, (int)a->kv_ts);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1.0f, P, nk, dY,
                    (int)a->y_ts, 1.0f, dVb + jlo * a->kv_ts, (int)a->kv_ts);
      }
    }
  }
}
