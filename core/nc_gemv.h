/* nc_gemv.h — matrix-times-few-vectors kernels for decoding, with fp32 or bf16 weights.
 *
 * Decoding one token per row multiplies every weight matrix by only a few vectors, so it is
 * bound by how fast the weights stream from memory (perf.md: M=1 sgemm reaches 8-19 GFLOP/s).
 * These kernels read each weight once per call (bf16: half the bytes of fp32, converted to
 * fp32 in registers); all accumulation is fp32. Layout follows PyTorch Linear weights: W is
 * [O, K] row-major (O outputs, K inputs), so y[b, o] = sum_k x[b, k] * W[o, k].
 *
 * Batch invariance: every output y[b, o] is computed by the same sequence of floating-point
 * operations whatever B is, whichever other vectors share the call and however the rows are
 * split over threads (one 8-lane accumulator over k in steps of 8, a fixed horizontal sum,
 * then the k % 8 tail in order). So a row decoded alone and the same row decoded in a batch
 * of 16 get bit-identical results: the engine relies on this for "batched decode equals
 * single-row decode" and for seeds that reproduce regardless of server load.
 *
 * bf16 = the top 16 bits of an IEEE fp32; conversion from fp32 rounds to nearest even (NaN
 * stays NaN). Accuracy: each weight carries a relative error <= 2^-9; tests bound the effect on
 * outputs against the fp32 reference.
 *
 * Every fast kernel has a plain C reference (nc_gemv_*_ref) that tests compare with; the fast
 * path is chosen at run time (AVX2+FMA when the CPU has it, else the reference).
 * Threading: `threads` > 1 splits the output rows over that many threads of nc_par's pool
 * (nc_par.h; chunks handed out first come first served; 0 = omp_get_max_threads()). No
 * allocation; the only global state is the kernel family override of nc_gemv_force_isa.
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

/* flags */
#define NC_GEMV_ACCUMULATE 1 /* y += W x instead of y = W x */

/* fp32 -> bf16 with round-to-nearest-even, n values. */
void nc_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/* bf16 -> fp32, n values. */
void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/* y[b*ldy + o] (=, or += with NC_GEMV_ACCUMULATE) sum_k x[b*ldx + k] * W[o*K + k]
 * for b < B (1..NC_GEMV_MAX_B), o < O.
 * W: bf16 or fp32 [O, K]; x: fp32 [B, ldx>=K]; y: fp32 [B, ldy>=O]; x and y must not overlap.
 * `threads` > 1 splits the output rows over that many pool threads (0 = omp_get_max_threads();
 * small matrices always run on one thread).
 * Returns 0, or NC_EINVAL for bad sizes / NULL pointers / unknown flags. */
int nc_gemv_bf16_ex(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y,
                    int ldy, int flags, int threads);
int nc_gemv_f32_ex(const float *W, int O, int K, const float *x, int ldx, int B, float *y,
                   int ldy, int flags, int threads);

/* nc_gemv_bf16_ex with flags 0. */
int nc_gemv_bf16(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y, int ldy,
                 int threads);

/* The readable references (single thread, scalar, y overwritten). */
int nc_gemv_bf16_ref(const uint16_t *W, int O, int K, const float *x, int ldx, int B, float *y,
                     int ldy);
int nc_gemv_f32_ref(const float *W, int O, int K, const float *x, int ldx, int B, float *y,
                    int ldy);

/* Packed bf16 matrices: the layout the decoder keeps its bf16 copies in. Rows are grouped in
 * tiles of 8 (the last tile padded with zero rows) and each tile is stored as K/8 blocks of
 * 8 rows x 8 consecutive k, so a matrix-vector product reads the weights as one sequential
 * stream (about 2x the bandwidth of 8 interleaved row streams on this machine). K must be a
 * multiple of 8. Element (o, k) is at ((o/8 * K/8 + k/8) * 8 + o%8) * 8 + k%8.
 * Results are batch-invariant like the kernels above (not bit-identical to them). */

/* Elements of a packed O x K matrix (0 for bad sizes). */
size_t nc_gemv_bf16_packed_size(int O, int K);
/* Packs fp32 W [O, K] into dst (nc_gemv_bf16_packed_size(O, K) elements), rounding to bf16.
 * NC_OK, or NC_EINVAL (NULL, O < 1, K not a positive multiple of 8). */
int nc_gemv_bf16_pack(const float *W, int O, int K, uint16_t *dst);
/* y (=, or +=) W x with packed W; arguments as nc_gemv_bf16_ex plus K % 8 == 0. */
int nc_gemv_bf16_packed(const uint16_t *Wp, int O, int K, const float *x, int ldx, int B,
                        float *y, int ldy, int flags, int threads);
/* Reference of nc_gemv_bf16_packed (single thread, scalar, y overwritten). */
int nc_gemv_bf16_packed_ref(const uint16_t *Wp, int O, int K, const float *x, int ldx, int B,
                            float *y, int ldy);

/* bf16 activations too: y (=, or +=) W x with packed bf16 W and bf16 x (xb [B, ldx >= K], e.g.
 * from nc_f32_to_bf16), fp32 accumulation by the AVX512_BF16 dot-product instruction
 * (VDPBF16PS: twice the multiply-adds per instruction of fp32 FMA and no weight conversion, for
 * compute-bound batches). Batch-invariant like the others. NC_ENOTSUP when the CPU lacks
 * AVX512_BF16 (nc_gemv_bf16dp_available() == 0), NC_EINVAL for bad arguments or K % 8 != 0.
 * The reference accumulates bf16(x) * bf16(w) in double; the instruction's own rounding of its
 * paired products differs slightly between CPU vendors. */
int nc_gemv_bf16dp_available(void);
int nc_gemv_bf16dp_packed(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx, int B,
                          float *y, int ldy, int flags, int threads);
/* The plain form of nc_gemv_bf16dp_packed (one vector and one 8-row tile at a time, scalar
 * reductions, single thread): the same lane sequence per output as the tiled kernel, which
 * tests compare with it bit for bit. Arguments and errors as nc_gemv_bf16dp_packed. */
int nc_gemv_bf16dp_packed_plain(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx,
                                int B, float *y, int ldy, int flags);
int nc_gemv_bf16dp_packed_ref(const uint16_t *Wp, int O, int K, const uint16_t *xb, int ldx,
                              int B, float *y, int ldy);

/* Kernel families. AUTO (the default) picks the best the CPU has: for packed matrices with
 * B >= 2 AVX-512 when available (bit-identical to AVX2 by construction), else AVX2, else the
 * scalar path. nc_gemv_force_isa selects one process-wide (tests and benchmarks compare the
 * paths); NC_ENOTSUP when the CPU lacks it, NC_EINVAL for an unknown value. Applies to
 * nc_gemv_bf16_packed. */
enum { NC_GEMV_ISA_AUTO = 0, NC_GEMV_ISA_SCALAR = 1, NC_GEMV_ISA_AVX2 = 2, NC_GEMV_ISA_AVX512 = 3 };
int nc_gemv_force_isa(int isa);

/* 1 when the AVX2 path is in use on this CPU. */
int nc_gemv_has_avx2(void);

#ifdef __cplusplus
}
#endif
#endif /* NC_GEMV_H */
