// Fast kernels (nc_kernels.h, nc_attention.h, nc_vmath.h) against their readable float
// references (nc_model_ref.h) at sizes that take the multi-threaded paths, with 1 and 2
// OpenMP threads. Tolerances are fp32-rounding level: a wrong index, sign or mask fails.
#include <gtest/gtest.h>

#include <cstring>
#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "model_test_util.h"

extern "C" {
#include "nc_attention.h"
#include "nc_kernels.h"
#include "nc_model_ref.h"
#include "nc_vmath.h"
}

namespace {

std::vector<float> randv(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto &x : v) x = d(g);
  return v;
}

class Threads : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    omp_set_num_threads(GetParam());
    nc_blas_single_thread();
  }
};

TEST_P(Threads, Gemm) {
  // shapes above the threading threshold, both split directions, all transposes, beta
  // incl. M <= 4 (decoding: the sgemv path, threaded when the matrix is > 1 MB)
  const int shapes[][3] = {{300, 97, 200}, {70, 520, 160}, {33, 33, 5000}, {1, 3000, 200},
                           {3, 70, 50}, {4, 1100, 300}};
  for (auto &s : shapes) {
    int M = s[0], N = s[1], K = s[2];
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        auto A = randv((size_t)M * K, 1), B = randv((size_t)K * N, 2), C0 = randv((size_t)M * N, 3);
        std::vector<float> C = C0;
        int lda = ta ? M : K, ldb = tb ? K : N;
        nc_gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.0f, C.data(), N);
        double md = 0, mx = 0;
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
              double a = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
              double b = tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
              acc += a * b;
            }
            double want = 0.5 * acc + 2.0 * C0[(size_t)i * N + j];
            md = std::max(md, std::fabs(want - C[(size_t)i * N + j]));
            mx = std::max(mx, std::fabs(want));
          }
        EXPECT_LT(md / mx, 1e-5) << M << "x" << N << "x" << K << " ta" << ta << " tb" << tb;
      }
  }
}

TEST_P(Threads, RmsNormForwardBackward) {
  const int rows = 3000, C = 96;
  auto x = randv((size_t)rows * C, 4, 3.0f), dy = randv((size_t)rows * C, 5);
  std::vector<float> y(x.size()), yr(x.size()), r(rows), rr(rows);
  nc_rmsnorm_fwd(y.data(), r.data(), x.data(), rows, C, FLT_EPSILON);
  nc_ref_rmsnorm_fwd_f32(yr.data(), rr.data(), x.data(), rows, C, FLT_EPSILON);
  EXPECT_LT(nct::rel_err(y.data(), yr.data(), (int64_t)y.size()), 1e-6);
  EXPECT_LT(nct::rel_err(r.data(), rr.data(), rows), 1e-6);
  for (int acc = 0; acc < 2; acc++) {
    std::vector<float> dx(x.size(), 0.25f), dxr(x.size(), 0.25f);
    nc_rmsnorm_bwd(dx.data(), dy.data(), y.data(), r.data(), rows, C, acc);
    nc_ref_rmsnorm_bwd_f32(dxr.data(), dy.data(), y.data(), r.data(), rows, C, acc);
    EXPECT_LT(nct::rel_err(dx.data(), dxr.data(), (int64_t)dx.size()), 1e-5) << acc;
  }
  // in place (y aliases x)
  std::vector<float> z = x;
  nc_rmsnorm_fwd(z.data(), r.data(), z.data(), rows, C, FLT_EPSILON);
  EXPECT_LT(nct::rel_err(z.data(), yr.data(), (int64_t)z.size()), 1e-6);
}

TEST_P(Threads, RopeQkNormForwardBackward) {
  const int B = 3, T = 200, H = 4, Hkv = 2, D = 32, ld = H * D + 2 * Hkv * D + 8;
  const int64_t N = (int64_t)B * T;
  std::vector<float> cs((size_t)T * D / 2), sn((size_t)T * D / 2);
  nc_ref_rope_tables_f32(cs.data(), sn.data(), T, D);
  auto q0 = randv((size_t)N * ld, 6, 2.0f), dq = randv((size_t)N * ld, 7);
  std::vector<float> q = q0, qr = q0, rq(N * H), rk(N * Hkv), rqr(N * H), rkr(N * Hkv);
  nc_qk_fwd(q.data(), ld, rq.data(), rk.data(), N, T, nullptr, H, Hkv, D, cs.data(), sn.data(), FLT_EPSILON);
  nc_ref_qk_fwd_f32(qr.data(), ld, rqr.data(), rkr.data(), N, T, H, Hkv, D, cs.data(), sn.data(), FLT_EPSILON);
  EXPECT_LT(nct::rel_err(q.data(), qr.data(), (int64_t)q.size()), 2e-6);
  EXPECT_LT(nct::rel_err(rq.data(), rqr.data(), N * H), 1e-6);
  EXPECT_LT(nct::rel_err(rk.data(), rkr.data(), N * Hkv), 1e-6);
  // columns past the k heads (the v part) are untouched
  for (int64_t n = 0; n < N; n++)
    for (int c = (H + Hkv) * D; c < ld; c++) ASSERT_EQ(q[n * ld + c], q0[n * ld + c]);
  std::vector<float> d1 = dq, d2 = dq;
  nc_qk_bwd(d1.data(), ld, q.data(), rq.data(), rk.data(), N, T, nullptr, H, Hkv, D, cs.data(), sn.data());
  nc_ref_qk_bwd_f32(d2.data(), ld, qr.data(), rqr.data(), rkr.data(), N, T, H, Hkv, D, cs.data(), sn.data());
  EXPECT_LT(nct::rel_err(d1.data(), d2.data(), (int64_t)d1.size()), 1e-5);
  // positions offset per row (KV-cache decode): row b at pos0[b] equals the full-table row
  std::vector<float> cs2((size_t)(T + 50) * D / 2), sn2((size_t)(T + 50) * D / 2);
  nc_ref_rope_tables_f32(cs2.data(), sn2.data(), T + 50, D);
  int32_t pos0[3] = {0, 17, 50};
  std::vector<float> a = q0, b = q0;
  nc_qk_fwd(a.data(), ld, nullptr, nullptr, N, T, pos0, H, Hkv, D, cs2.data(), sn2.data(), FLT_EPSILON);
  for (int r = 0; r < B; r++) {
    // reference: shift the tables by pos0[r]
    nc_ref_qk_fwd_f32(b.data() + (int64_t)r * T * ld, ld, rqr.data(), rkr.data(), T, T, H, Hkv, D,
                      cs2.data() + (size_t)pos0[r] * D / 2, sn2.data() + (size_t)pos0[r] * D / 2, FLT_EPSILON);
  }
  EXPECT_LT(nct::rel_err(a.data(), b.data(), (int64_t)a.size()), 2e-6);
}

struct AttnCase {
  int B, T, H, Hkv, D, window;
};

TEST_P(Threads, AttentionForwardBackward) {
  const AttnCase cases[] = {
      {2, 200, 4, 2, 16, 1000},  // full causal, T not a multiple of the block
      {2, 200, 4, 4, 16, 37},    // window shorter than a block
      {1, 300, 2, 1, 32, 100},   // GQA, window crossing blocks
      {3, 64, 2, 2, 16, 0},      // window 0: each query sees only itself
      {2, 130, 4, 1, 16, 64},    // window == block
  };
  for (const auto &c : cases) {
    const int QKV = c.H * c.D + 2 * c.Hkv * c.D, HD = c.H * c.D;
    const int64_t N = (int64_t)c.B * c.T;
    auto qkv = randv((size_t)N * QKV, 8, 1.5f), dy = randv((size_t)N * HD, 9);
    std::vector<float> y(N * HD), yr(N * HD), lse((size_t)c.B * c.H * c.T), lser(lse.size());
    const float scale = 1.0f / std::sqrt((float)c.D);
    nc_attn a = {c.B, c.T, c.H, c.Hkv, c.D, c.window, scale, nullptr,
                 qkv.data(), (int64_t)c.T * QKV, QKV,
                 qkv.data() + HD, qkv.data() + HD + c.Hkv * c.D, (int64_t)c.T * QKV, QKV,
                 y.data(), (int64_t)c.T * HD, HD, lse.data()};
    std::vector<float> work(nc_attn_workspace_floats(&a, omp_get_max_threads()));
    nc_attn_fwd(&a, work.data());
    // the pool form (the decoder's prefill) runs the same tasks: the same bits
    std::vector<float> yp(y.size()), lsep(lse.size());
    nc_attn ap = a;
    ap.y = yp.data();
    ap.lse = lsep.data();
    nc_attn_fwd_pool(&ap, work.data(), omp_get_max_threads());
    EXPECT_EQ(0, memcmp(yp.data(), y.data(), sizeof(float) * y.size())) << c.T << " w" << c.window;
    EXPECT_EQ(0, memcmp(lsep.data(), lse.data(), sizeof(float) * lse.size()));
    nc_ref_attn_fwd_f32(yr.data(), lser.data(), qkv.data(), QKV, c.B, c.T, c.H, c.Hkv, c.D, c.window, scale);
    EXPECT_LT(nct::rel_err(y.data(), yr.data(), (int64_t)y.size()), 2e-6) << c.T << " w" << c.window;
    EXPECT_LT(nct::rel_err(lse.data(), lser.data(), (int64_t)lse.size()), 2e-6);
    std::vector<float> dqkv(N * QKV, 7.0f), dqkvr(N * QKV, 7.0f);
    nc_attn_bwd(&a, dy.data(), dqkv.data(), dqkv.data() + HD, dqkv.data() + HD + c.Hkv * c.D, work.data());
    nc_ref_attn_bwd_f32(dqkvr.data(), dy.data(), yr.data(), lser.data(), qkv.data(), QKV, c.B, c.T, c.H, c.Hkv, c.D, c.window, scale);
    EXPECT_LT(nct::rel_err(dqkv.data(), dqkvr.data(), (int64_t)dqkv.size()), 2e-5) << c.T << " w" << c.window;
  }
}

TEST_P(Threads, AttentionOverCacheMatchesFullForward) {
  // queries at positions pos0[b]..pos0[b]+T-1 over a cache holding keys [0, pos0[b]+T):
  // must equal the last T rows of a full forward over pos0[b]+T tokens
  const int H = 4, Hkv = 2, D = 16, QKV = H * D + 2 * Hkv * D, HD = H * D, window = 40;
  const int full = 150, Tq = 7;
  auto qkv = randv((size_t)full * QKV, 10);
  std::vector<float> yfull((size_t)full * HD), lse((size_t)H * full);
  const float scale = 1.0f / std::sqrt((float)D);
  nc_ref_attn_fwd_f32(yfull.data(), lse.data(), qkv.data(), QKV, 1, full, H, Hkv, D, window, scale);
  // cache rows: row 0 at pos 100, row 1 at pos 143 (both end inside `full`)
  const int32_t pos0[2] = {100, 143};
  std::vector<float> q((size_t)2 * Tq * HD), kc((size_t)2 * full * Hkv * D), vc(kc.size());
  for (int b = 0; b < 2; b++) {
    for (int t = 0; t < Tq; t++)
      std::copy_n(&qkv[(size_t)(pos0[b] + t) * QKV], HD, &q[((size_t)b * Tq + t) * HD]);
    for (int j = 0; j < full; j++) {
      std::copy_n(&qkv[(size_t)j * QKV + HD], Hkv * D, &kc[((size_t)b * full + j) * Hkv * D]);
      std::copy_n(&qkv[(size_t)j * QKV + HD + Hkv * D], Hkv * D, &vc[((size_t)b * full + j) * Hkv * D]);
    }
  }
  // poison cache rows at and past each row's end: they must never be read
  for (int b = 0; b < 2; b++)
    for (int j = pos0[b] + Tq; j < full; j++)
      for (int d = 0; d < Hkv * D; d++) kc[((size_t)b * full + j) * Hkv * D + d] = NAN;
  std::vector<float> y((size_t)2 * Tq * HD);
  nc_attn a = {2, Tq, H, Hkv, D, window, scale, pos0,
               q.data(), (int64_t)Tq * HD, HD,
               kc.data(), vc.data(), (int64_t)full * Hkv * D, Hkv * D,
               y.data(), (int64_t)Tq * HD, HD, nullptr};
  std::vector<float> work(nc_attn_workspace_floats(&a, omp_get_max_threads()));
  nc_attn_fwd(&a, work.data());
  for (int b = 0; b < 2; b++)
    EXPECT_LT(nct::rel_err(&y[(size_t)b * Tq * HD], &yfull[(size_t)pos0[b] * HD], (int64_t)Tq * HD), 2e-6) << b;
}

TEST_P(Threads, FusedHeadMatchesReference) {
  // N spans several row blocks; V not a multiple of 16; some ignored rows; large logits so
  // the softcap saturates
  const int C = 48, V = 300;
  const int64_t N = 700;
  auto xf = randv((size_t)N * C, 11), W = randv((size_t)(V + 20) * C, 12, 1.0f);
  std::vector<int32_t> tg = nct::random_ids((int)N, V, 13);
  tg[0] = tg[100] = tg[699] = -1;
  std::vector<float> om(N);
  for (int64_t i = 0; i < N; i++) om[i] = tg[i] < 0 ? 0.0f : 0.001f * (1 + i % 3);
  std::vector<float> nll(N), nllr(N), lg((size_t)N * V), lgr((size_t)N * V);
  std::vector<float> dxf((size_t)N * C, 5.0f), dxfr((size_t)N * C);
  std::vector<float> dW((size_t)V * C, 0.5f), dWr((size_t)V * C, 0.5f);
  std::vector<float> work(nc_head_workspace_floats(nc_head_block_rows(V), V, C, omp_get_max_threads()));
  nc_head(xf.data(), W.data(), N, C, V, tg.data(), om.data(), nll.data(), lg.data(), dxf.data(), dW.data(), work.data());
  nc_ref_head_f32(xf.data(), W.data(), N, C, V, tg.data(), om.data(), nllr.data(), lgr.data(), dxfr.data(), dWr.data());
  double maxl = 0;
  for (float l : lg) maxl = std::max(maxl, (double)std::fabs(l));
  EXPECT_GT(maxl, 14.0);  // softcap is active
  EXPECT_LT(nct::rel_err(lg.data(), lgr.data(), (int64_t)lg.size()), 1e-6);
  EXPECT_LT(nct::rel_err(nll.data(), nllr.data(), N), 1e-5);
  EXPECT_EQ(nll[100], 0.0f);
  EXPECT_LT(nct::rel_err(dxf.data(), dxfr.data(), (int64_t)dxf.size()), 1e-5);
  EXPECT_LT(nct::rel_err(dW.data(), dWr.data(), (int64_t)dW.size()), 1e-5);
  for (int c = 0; c < C; c++) EXPECT_EQ(dxf[100 * C + c], 0.0f);
  // forward only (no targets, no backward): logits still produced
  std::vector<float> lg2((size_t)N * V);
  nc_head(xf.data(), W.data(), N, C, V, nullptr, nullptr, nullptr, lg2.data(), nullptr, nullptr, work.data());
  EXPECT_EQ(lg2, lg);
}

INSTANTIATE_TEST_SUITE_P(OneAndTwo, Threads, ::testing::Values(1, 2));

TEST(VMath, ExpAndTanhAccuracy) {
  // relative error of exp ~1-2 ulp; absolute error of tanh < 2e-7; over wide ranges
  double me = 0, mt = 0;
  std::vector<float> xs;
  for (int i = -200000; i <= 200000; i++) xs.push_back((float)i * 4.3e-4f);  // [-86, 86]
  for (float x : xs) {
    me = std::max(me, std::fabs(nc_expf_s(x) / std::exp((double)x) - 1.0));
    mt = std::max(mt, std::fabs(nc_tanhf_s(x / 4) - std::tanh((double)x / 4)));
  }
  EXPECT_LT(me, 3e-7);
  EXPECT_LT(mt, 2e-7);
  EXPECT_EQ(nc_tanhf_s(1e6f), 1.0f);
  EXPECT_EQ(nc_tanhf_s(-1e6f), -1.0f);
  EXPECT_GT(nc_expf_s(-1000.0f), 0.0f);  // clamped, no denormal/inf surprises
  EXPECT_TRUE(std::isfinite(nc_expf_s(1000.0f)));
  // the vector helpers agree with the scalar definitions (AVX2 path when compiled in)
  std::vector<float> z(1001), zs(1001);
  for (int i = 0; i < 1001; i++) z[i] = zs[i] = (float)(i - 500) * 0.07f;
  double s = nc_softcap_sumexp(z.data(), 1001, 15.0f), ss = 0;
  for (int i = 0; i < 1001; i++) {
    float l = 15.0f * nc_tanhf_s(zs[i] / 15.0f);
    EXPECT_NEAR(z[i], l, 4e-6) << i;  // a few ulp at |l| ~ 12 (FMA vs separate mul/add)
    ss += nc_expf_s(l);
  }
  EXPECT_NEAR(s / ss, 1.0, 1e-6);
  std::vector<float> e(37);
  for (int i = 0; i < 37; i++) e[i] = (float)i * 0.3f - 5.0f;
  EXPECT_EQ(nc_vmax(e.data(), 37), e[36]);
  double se = nc_exp_affine_sum(e.data(), 37, 2.0f, 1.0f), want = 0;
  for (int i = 0; i < 37; i++) {
    double w = std::exp(2.0 * ((double)i * 0.3 - 5.0) - 1.0);
    EXPECT_NEAR(e[i] / w, 1.0, 3e-6);  // includes fp32 rounding of the argument 2x - 1
    want += w;
  }
  EXPECT_NEAR(se / want, 1.0, 3e-6);
}

}  // namespace
