/* nc_gemv.h — matrix-times-few-vectors kernels for decoding, with bf16 weight copies.
 *
 * Decoding one token per row multiplies every weight matrix by only a few vectors, so it is
 * bound by how fast the weights stream from memory (perf.md: M=1 sgemm reaches 8-19 GFLOP/s).
 * These kernels read weights once per call as bf16 (half the bytes of fp32) and convert to fp32
 * in registers; all accumulation is fp32. Layout follows PyTorch Linear weights: W is [O, K]
 * row-major (O outputs, K inputs), so y[b, o] = sum_k x[b, k] * W[o, k].
 *
 * bf16 = the top 16 bits of an IEEE fp32; conversion from fp32 rounds to nearest even (NaN
 * stays NaN). Accuracy: each weight carries a relative error <= 2^-9; tests bound the effect on
 * outputs against the fp32 reference.
 *
 * Every fast kernel has a plain C reference (nc_*_ref) that tests compare with; the fast path is
 * chosen at run time (AVX2+FMA when the CPU has it, else the reference).
 */
#ifndef NC_GEMV_H
#define NC_GEMV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest number of vectors per call. */
#define NC_GEMV_MAX_B 64

/* fp32 -> bf16 with round-to-nearest-even, n values. */
void nc_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/* bf16 -> fp32, n values. */
void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/* y[b*ldy + o] = sum_k x[b*ldx + k] * W[o*K + k]  for b < B (1..NC_GEMV_MAX_B), o < O.
 * W: bf16 [O, K]; x: fp32 [B, ldx>=K]; y: fp32 [B, ldy>=O] (overwritten).
 * `threads` > 1 splits the output rows over that many OpenMP threads (0 = library default).
 * Returns 0, or NC_EINVAL for bad sizes / NULL pointers. */
int nc_gemv_bf16(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y, int ldy,
                 int threads);

/* The readable reference of nc_gemv_bf16 (single thread, scalar). */
int nc_gemv_bf16_ref(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y,
                     int ldy);

/* 1 when the AVX2 path is in use on this CPU. */
int nc_gemv_has_avx2(void);

#ifdef __cplusplus
}
#endif
#endif /* NC_GEMV_H */
