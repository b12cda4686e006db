/* nc_optim_polar.c — Polar Express orthogonalisation (Amsel et al. 2025, as in nanochat's
 * optim.py): the readable reference and the sgemm path. See nc_optim.h. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_optim.h"

const double nc_polar_express_coeffs[5][3] = {
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};

static int bad_args(const float *X, int rows, int cols, int steps) {
  return !X || rows < 1 || cols < 1 || steps < 1 || steps > 5 ||
         (int64_t)rows * cols > (1LL << 31);
}

/* X /= |X|_F * 1.01 + 1e-6 (the norm accumulated in double). */
static void normalise(float *X, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)X[i] * X[i];
  float denom = (float)sqrt(s) * 1.01f + 1e-6f;
  for (int64_t i = 0; i < n; i++) X[i] = X[i] / denom;
}

/* ------------------------------------------------------------------ reference */

int nc_polar_express_ref(float *X, int rows, int cols, int steps) {
  if (bad_args(X, rows, cols, steps)) return NC_EINVAL;
  const int tall = rows > cols;
  const int s = tall ? cols : rows; /* the Gram matrix is s x s */
  float *A = malloc(sizeof(float) * (size_t)s * s), *Bm = malloc(sizeof(float) * (size_t)s * s);
  float *Y = malloc(sizeof(float) * (size_t)rows * cols);
  if (!A || !Bm || !Y) {
    free(A); free(Bm); free(Y);
    return NC_ENOMEM;
  }
  normalise(X, (int64_t)rows * cols);
  for (int it = 0; it < steps; it++) {
    const double a = nc_polar_express_coeffs[it][0], b = nc_polar_express_coeffs[it][1],
                 c = nc_polar_express_coeffs[it][2];
    /* A = X X^T (wide) or X^T X (tall) */
    for (int i = 0; i < s; i++)
      for (int j = 0; j < s; j++) {
        double acc = 0;
        if (tall)
          for (int r = 0; r < rows; r++) acc += (double)X[(size_t)r * cols + i] * X[(size_t)r * cols + j];
        else
          for (int k = 0; k < cols; k++) acc += (double)X[(size_t)i * cols + k] * X[(size_t)j * cols + k];
        A[(size_t)i * s + j] = (float)acc;
      }
    /* B = b A + c A A */
    for (int i = 0; i < s; i++)
      for (int j = 0; j < s; j++) {
        double acc = 0;
        for (int k = 0; k < s; k++) acc += (double)A[(size_t)i * s + k] * A[(size_t)k * s + j];
        Bm[(size_t)i * s + j] = (float)(b * A[(size_t)i * s + j] + c * acc);
      }
    /* Y = a X + X B (tall) or a X + B X (wide) */
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) {
        double acc = 0;
        if (tall)
          for (int k = 0; k < cols; k++) acc += (double)X[(size_t)i * cols + k] * Bm[(size_t)k * s + j];
        else
          for (int k = 0; k < rows; k++) acc += (double)Bm[(size_t)i * s + k] * X[(size_t)k * cols + j];
        Y[(size_t)i * cols + j] = (float)(a * X[(size_t)i * cols + j] + acc);
      }
    memcpy(X, Y, sizeof(float) * (size_t)rows * cols);
  }
  free(A);
  free(Bm);
  free(Y);
  return NC_OK;
}

/* ------------------------------------------------------------------ sgemm path */

size_t nc_polar_express_work_floats(int rows, int cols) {
  size_t s = (size_t)(rows > cols ? cols : rows);
  return (size_t)rows * cols + 2 * s * s;
}

/* Gram matrix G [s, s] = X X^T (wide) or X^T X (tall): ssyrk fills the upper triangle (half
 * the flops of sgemm), mirrored to the lower one. */
static void gram(float *G, const float *X, int rows, int cols, int tall) {
  const int s = tall ? cols : rows, k = tall ? rows : cols;
  cblas_ssyrk(CblasRowMajor, CblasUpper, tall ? CblasTrans : CblasNoTrans, s, k, 1.0f, X, cols,
              0.0f, G, s);
  for (int i = 0; i < s; i++)
    for (int j = 0; j < i; j++) G[(size_t)i * s + j] = G[(size_t)j * s + i];
}

int nc_polar_express(float *X, int rows, int cols, int steps, float *work) {
  if (bad_args(X, rows, cols, steps) || !work) return NC_EINVAL;
  const int tall = rows > cols;
  const int s = tall ? cols : rows;
  const size_t n = (size_t)rows * cols, ss = (size_t)s * s;
  float *Y = work, *A = work + n, *Bm = A + ss;
  normalise(X, (int64_t)n);
  for (int it = 0; it < steps; it++) {
    const float a = (float)nc_polar_express_coeffs[it][0], b = (float)nc_polar_express_coeffs[it][1],
                c = (float)nc_polar_express_coeffs[it][2];
    gram(A, X, rows, cols, tall);
    /* B = c A A^T + b A (A is symmetric, so A A = A A^T: ssyrk again) */
    memcpy(Bm, A, sizeof(float) * ss);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, s, s, c, A, s, b, Bm, s);
    for (int i = 0; i < s; i++)
      for (int j = 0; j < i; j++) Bm[(size_t)i * s + j] = Bm[(size_t)j * s + i];
    /* Y = a X + X B (tall) or a X + B X (wide) */
    memcpy(Y, X, sizeof(float) * n);
    if (tall)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, cols, 1.0f, X, cols, Bm,
                  s, a, Y, cols);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, rows, 1.0f, Bm, s, X,
                  cols, a, Y, cols);
    memcpy(X, Y, sizeof(float) * n);
  }
  return NC_OK;
}
