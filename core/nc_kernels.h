/* nc_kernels.h — fast fp32 CPU kernels of the nanochat GPT (everything except attention,
 * which lives in nc_attention.h).
 *
 * Each kernel has a readable reference twin in nc_model_ref.h (nc_ref_*_f32) and a unit test
 * comparing the two. Shapes: N token rows, C = n_embd, H/Hkv heads of size D, KV = Hkv*D,
 * V = vocab_size. Row-major everywhere; "ld" is a row stride in floats.
 *
 * Threading: every kernel parallelises itself with OpenMP over omp_get_max_threads()
 * threads and must be called from OUTSIDE an OpenMP parallel region. Matrix products are
 * computed by each OpenMP thread calling OpenBLAS cblas_sgemm on its own slice, so OpenBLAS
 * must run single-threaded: call nc_blas_single_thread() once before using these kernels
 * (nc_model does this for you). This keeps ONE thread pool busy instead of OpenBLAS's
 * pthread pool spinning against OpenMP's (specs/perf.md).
 *
 * None of the kernels allocates memory; the ones that need scratch take a caller-provided
 * workspace whose size a *_workspace_floats() function reports.
 */
#ifndef NC_KERNELS_H
#define NC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Elementwise loops with fewer elements than this run on one thread: on a busy 2-core
 * machine an OpenMP region (and its spin-waiting barrier) costs more than it saves. */
#define NC_PAR_MIN (1 << 16)

/* Puts OpenBLAS in single-threaded mode if it is not (process-wide openblas_set_num_threads(1)).
 * Cheap; safe to call often. */
void nc_blas_single_thread(void);

/* Name of the OpenBLAS kernel family in use (openblas_get_corename), for reports. */
const char *nc_blas_corename(void);

/* C [M, N] = alpha * op(A) @ op(B) + beta * C, row-major (cblas conventions: op(A) is
 * [M, K], op(B) is [K, N]). Parallel: the larger of M and N is split across OpenMP threads,
 * each thread calling single-threaded cblas_sgemm on its slice. */
void nc_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* y [rows, C] = x * rstd, rstd [rows] = 1/sqrt(mean(x^2) + eps). y may alias x. */
void nc_rmsnorm_fwd(float *y, float *rstd, const float *x, int64_t rows, int C, float eps);

/* dx [rows, C] (= or += when accumulate) = rstd * (dy - y * mean(dy * y)).
 * dx may alias dy only when accumulate == 0. */
void nc_rmsnorm_bwd(float *dx, const float *dy, const float *y, const float *rstd,
                    int64_t rows, int C, int accumulate);

/* RoPE (half split, nanochat sign) -> RMSNorm over D -> *1.2, in place on the H query heads
 * (columns [0, H*D)) and Hkv key heads (columns [H*D, (H+Hkv)*D)) of qkv [N, ld].
 * Row n = b*T + t has position (pos0 ? pos0[b] : 0) + t; cos/sin [n_pos, D/2] must cover it.
 * rstd_q [N, H], rstd_k [N, Hkv] (either may be NULL when no backward follows). */
void nc_qk_fwd(float *qkv, int64_t ld, float *rstd_q, float *rstd_k, int64_t N, int T,
               const int32_t *pos0, int H, int Hkv, int D, const float *cos_t,
               const float *sin_t, float eps);

/* Backward of nc_qk_fwd, in place on the q/k columns of dqkv [N, ld]; qkv holds the forward
 * outputs, rstd_* the saved statistics. */
void nc_qk_bwd(float *dqkv, int64_t ld, const float *qkv, const float *rstd_q,
               const float *rstd_k, int64_t N, int T, const int32_t *pos0, int H, int Hkv,
               int D, const float *cos_t, const float *sin_t);

/* Value embedding: gate [N, Hkv] = 3*sigmoid(xn[:, :12] @ wg^T), wg [Hkv, 12];
 * v [N, ld] (kv-head g at columns g*D) += gate[:, g] * ve[idx[n], g*D : g*D+D], ve [*, KV]. */
void nc_ve_fwd(float *v, int64_t ld, float *gate, const float *xn, int C, const int32_t *idx,
               const float *ve, const float *wg, int64_t N, int Hkv, int D);

/* Backward of nc_ve_fwd given dv [N, ldd] (gradient w.r.t. v after the add):
 * dxn [N, C] += (first 12 channels), dwg [Hkv, 12] +=, dve [*, KV] += (scatter by idx). */
void nc_ve_bwd(const float *dv, int64_t ldd, const float *gate, const float *xn, int C,
               const int32_t *idx, const float *ve, const float *wg, float *dxn, float *dwg,
               float *dve, int64_t N, int Hkv, int D);

/* Smear over B rows of T tokens: for t >= 1 (or t == 0 when prev != NULL and T == 1, the
 * KV-cache decode case): sig = sigmoid(sg . xn_t[:24]), x_t = xn_t + lam * sig * xn_{t-1}
 * (xn_{-1} = prev[b]). x [N, C] (may not alias xn), sig [N] (0 where no smear). */
void nc_smear_fwd(float *x, float *sig, const float *xn, const float *prev, int B, int T,
                  int C, const float *sg, float lam);

/* Backward of nc_smear_fwd (prev == NULL, training): dxn [N, C] (=) from dx [N, C];
 * dsg [24] +=, *dlam +=. */
void nc_smear_bwd(float *dxn, const float *dx, const float *xn, const float *sig, int B,
                  int T, int C, const float *sg, float lam, float *dsg, float *dlam);

/* x [N, C] = table[idx[n]] (rows of width C). */
void nc_embed_fwd(float *x, const float *table, const int32_t *idx, int64_t N, int C);
/* dtable[idx[n]] += dx[n] for all n (threads own column slices: no races). */
void nc_embed_bwd(float *dtable, const float *dx, const int32_t *idx, int64_t N, int C);

/* act [n] = relu(h)^2 ; dh [n] = dact * 2 * relu(h) (dh may alias dact). */
void nc_relu2_fwd(float *act, const float *h, int64_t n);
void nc_relu2_bwd(float *dh, const float *dact, const float *h, int64_t n);

/* Scratch needed by nc_head (floats) for row blocks of `rows` rows. */
size_t nc_head_workspace_floats(int rows, int V, int C, int nthreads);
/* Row-block size nc_head uses for a given vocabulary (keeps the logits block ~32 MB). */
int nc_head_block_rows(int V);

/* LM head + softcap + log-softmax + NLL (+ backward), fused over blocks of rows so the
 * [N, V] logits are never materialised:
 *   l = 15 tanh((xf @ W[:V]^T) / 15);  nll[n] = logsumexp(l[n]) - l[n, targets[n]]
 * (nll = 0 where targets[n] == -1, or when targets == NULL).
 * xf [N, C]; W [>= V, C]; logits [N, V] optional copy of l.
 * Backward when dxf != NULL: omega [N] = dLoss/dnll (0 for ignored rows); dxf [N, C] is
 * written (=); dW [V, C] accumulated (+=).
 * work: nc_head_workspace_floats(nc_head_block_rows(V), V, C, omp_get_max_threads()). */
void nc_head(const float *xf, const float *W, int64_t N, int C, int V, const int32_t *targets,
             const float *omega, float *nll, float *logits, float *dxf, float *dW,
             float *work);

#ifdef __cplusplus
}
#endif
#endif /* NC_KERNELS_H */
