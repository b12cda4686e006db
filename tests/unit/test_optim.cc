// Optimizers (core/nc_optim.h): base_train's schedules, nanochat's parameter groups, AdamW and
// Muon steps against independent double-precision references written here, Polar Express
// (sgemm path vs the plain-loop reference, and that it orthogonalises), clipping, state views
// and JSON, thread independence, bad input. PyTorch parity: tests/parity/test_optim_parity.py.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model_test_util.h"
extern "C" {
#include "nc_err.h"
#include "nc_kernels.h"
#include "nc_model.h"
#include "nc_optim.h"
}

namespace {

// Expected values printed by /usr/bin/python3 running base_train.py's functions.
TEST(OptimSchedule, LrMultiplierMatchesBaseTrain) {
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(0, 1000, 40, 0.65, 0.05), 0.025);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(39, 1000, 40, 0.65, 0.05), 1.0);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(40, 1000, 40, 0.65, 0.05), 1.0);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(350, 1000, 40, 0.65, 0.05), 1.0);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(351, 1000, 40, 0.65, 0.05), 0.9985384615384616);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(700, 1000, 40, 0.65, 0.05), 0.4884615384615385);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(1000, 1000, 40, 0.65, 0.05), 0.05);
}

TEST(OptimSchedule, WarmdownUsesPythonHalfToEvenRounding) {
  // round(0.65 * 10) = round(6.5) = 6 in Python (C's round() would give 7)
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(3, 10, 2, 0.65, 0.05), 1.0);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(4, 10, 2, 0.65, 0.05), 1.0);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(5, 10, 2, 0.65, 0.05), 0.8416666666666667);
  EXPECT_DOUBLE_EQ(nc_lr_multiplier(10, 10, 2, 0.65, 0.05), 0.05);
}

TEST(OptimSchedule, MuonMomentumAndWeightDecay) {
  EXPECT_DOUBLE_EQ(nc_muon_momentum(0, 2000, 0.65), 0.85);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(200, 2000, 0.65), 0.9099999999999999);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(399, 2000, 0.65), 0.9697);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(400, 2000, 0.65), 0.97);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(500, 2000, 0.65), 0.97);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(1000, 2000, 0.65), 0.9538461538461538);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(1500, 2000, 0.65), 0.926923076923077);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(2000, 2000, 0.65), 0.9);
  EXPECT_DOUBLE_EQ(nc_muon_momentum(1000, 2000, 0.0), 0.97);  // no warmdown: no decay
  EXPECT_DOUBLE_EQ(nc_muon_weight_decay(300, 1000, 0.28), 0.22228993532094626);
  EXPECT_DOUBLE_EQ(nc_muon_weight_decay(0, 1000, 0.28), 0.28);
  EXPECT_NEAR(nc_muon_weight_decay(1000, 1000, 0.28), 0.0, 1e-17);
}

TEST(OptimSchedule, ScalingRulesAndGradAccum) {
  EXPECT_DOUBLE_EQ(nc_batch_lr_scale(1 << 19, 1 << 19), 1.0);
  EXPECT_DOUBLE_EQ(nc_batch_lr_scale(1 << 18, 1 << 19), std::sqrt(0.5));
  EXPECT_DOUBLE_EQ(nc_batch_lr_scale(1 << 21, 1 << 19), 2.0);
  EXPECT_DOUBLE_EQ(nc_dmodel_lr_scale(256), 1.7320508075688774);
  EXPECT_DOUBLE_EQ(nc_dmodel_lr_scale(768), 1.0);
  EXPECT_DOUBLE_EQ(nc_weight_decay_scaled(0.28, 1 << 18, 1 << 19, 1e9, 5e8), 0.39597979746446665);
  int ga = 0;
  EXPECT_EQ(nc_grad_accum_steps(524288, 32, 2048, 1, &ga), NC_OK);
  EXPECT_EQ(ga, 8);
  EXPECT_EQ(nc_grad_accum_steps(524288, 32, 2048, 8, &ga), NC_OK);
  EXPECT_EQ(ga, 1);
  EXPECT_EQ(nc_grad_accum_steps(524288, 3, 2048, 1, &ga), NC_EINVAL);  // does not divide
  EXPECT_EQ(nc_grad_accum_steps(0, 32, 2048, 1, &ga), NC_EINVAL);
  EXPECT_EQ(nc_grad_accum_steps(524288, 32, 0, 1, &ga), NC_EINVAL);
  EXPECT_EQ(nc_grad_accum_steps(524288, 32, 2048, 1, nullptr), NC_EINVAL);
}

// ------------------------------------------------------------------ a tiny model's groups

struct Model {
  nc_model *m = nullptr;
  nc_param *ps = nullptr;
  int n = 0;
  explicit Model(const nc_model_config &cfg, uint64_t seed = 1) {
    char msg[200];
    EXPECT_EQ(nc_model_create(&cfg, &m, msg, sizeof msg), NC_OK) << msg;
    ps = nc_model_params(m, &n);
    auto p = nct::random_params<float>(cfg, seed);
    int64_t np;
    float *P = nc_model_param_buffer(m, &np);
    std::memcpy(P, p.data(), sizeof(float) * (size_t)np);
    std::mt19937_64 g(seed + 99);
    std::normal_distribution<float> nd(0.f, 0.01f);
    float *G = nc_model_grad_buffer(m, nullptr);
    for (int64_t i = 0; i < np; i++) G[i] = nd(g);
  }
  ~Model() { nc_model_free(m); }
  const nc_param *find(const char *name) const {
    for (int i = 0; i < n; i++)
      if (!std::strcmp(ps[i].name, name)) return &ps[i];
    return nullptr;
  }
};

nc_model_config small_cfg() { return nct::tiny(3, 64, 2, 16, 100, "SSL", 5); }

TEST(Optim, NanochatGroupsLrsAndShapes) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  c.weight_decay = 0.1;
  nc_optim *o;
  char msg[200];
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, msg, sizeof msg), NC_OK) << msg;
  const double dms = std::pow(64.0 / 768.0, -0.5);
  struct Want { const char *label; double lr, b1, b2, wd; int n; } adam[] = {
      {"lm_head", 0.004 * dms, 0.8, 0.96, 0.01, 1},
      {"wte", 0.2 * dms, 0.8, 0.995, 0.001, 1},
      {"value_embeds", 0.1 * dms, 0.8, 0.995, 0.01, 2},
      {"resid_lambdas", 0.005, 0.8, 0.95, 0.05, 1},
      {"x0_lambdas", 0.5, 0.96, 0.95, 0.0, 1},
      {"scalars", 0.2, 0.8, 0.95, 0.0, 3},
  };
  // shapes sorted like Python's sorted({p.shape}): (2,12) ve_gate, (32,64) c_k/c_v,
  // (64,64) c_q/c_proj, (64,256) mlp.c_proj, (256,64) c_fc
  struct Shape { int64_t r, c; int n; } muon[] = {{2, 12, 2}, {32, 64, 6}, {64, 64, 6}, {64, 256, 3}, {256, 64, 3}};
  ASSERT_EQ(nc_optim_n_groups(o), 11);
  int covered = 0;
  for (int g = 0; g < 6; g++) {
    nc_optim_group *G = nc_optim_group_at(o, g);
    EXPECT_EQ(G->kind, NC_GROUP_ADAMW);
    EXPECT_STREQ(G->label, adam[g].label);
    EXPECT_NEAR(G->lr, adam[g].lr, 1e-15);
    EXPECT_EQ(G->initial_lr, G->lr);
    EXPECT_EQ(G->beta1, adam[g].b1);
    EXPECT_EQ(G->beta2, adam[g].b2);
    EXPECT_EQ(G->eps, 1e-10);
    EXPECT_EQ(G->weight_decay, adam[g].wd);
    EXPECT_EQ(G->n_params, adam[g].n);
    covered += G->n_params;
  }
  for (int g = 0; g < 5; g++) {
    nc_optim_group *G = nc_optim_group_at(o, 6 + g);
    EXPECT_EQ(G->kind, NC_GROUP_MUON);
    EXPECT_EQ(G->rows, muon[g].r);
    EXPECT_EQ(G->cols, muon[g].c);
    EXPECT_EQ(G->n_params, muon[g].n) << G->label;
    EXPECT_EQ(G->lr, 0.02);
    EXPECT_EQ(G->momentum, 0.95);
    EXPECT_EQ(G->beta2, 0.9);
    EXPECT_EQ(G->ns_steps, 5);
    EXPECT_EQ(G->weight_decay, 0.1);
    for (int k = 0; k < G->n_params; k++) {
      const nc_param &p = M.ps[G->params[k]];
      EXPECT_EQ(p.kind, NC_PK_MATRIX);
      EXPECT_EQ(p.shape[0], G->rows);
      EXPECT_EQ(p.shape[1], G->cols);
      if (k > 0) {
        EXPECT_LT(G->params[k - 1], G->params[k]);  // module order within a group
      }
    }
    covered += G->n_params;
  }
  EXPECT_EQ(covered, M.n);
  EXPECT_EQ(nc_optim_group_at(o, 11), nullptr);
  EXPECT_EQ(nc_optim_group_at(o, -1), nullptr);
  nc_optim_set_schedule(o, 0.5, 0.9, 0.01);
  EXPECT_NEAR(nc_optim_group_at(o, 0)->lr, 0.002 * dms, 1e-15);
  EXPECT_EQ(nc_optim_group_at(o, 0)->weight_decay, 0.01);  // AdamW wd is not scheduled
  EXPECT_EQ(nc_optim_group_at(o, 6)->lr, 0.01);
  EXPECT_EQ(nc_optim_group_at(o, 6)->momentum, 0.9);
  EXPECT_EQ(nc_optim_group_at(o, 6)->weight_decay, 0.01);
  nc_optim_free(o);
}

// ------------------------------------------------------------------ independent references

double lerp(double a, double b, double w) { return a + w * (b - a); }

void adam_ref(std::vector<double> &p, std::vector<double> &m, std::vector<double> &v,
              const float *g, double lr, double b1, double b2, double eps, double wd, int t) {
  for (size_t i = 0; i < p.size(); i++) {
    p[i] *= 1 - lr * wd;
    m[i] = lerp(m[i], g[i], 1 - b1);
    v[i] = lerp(v[i], (double)g[i] * g[i], 1 - b2);
    p[i] -= lr / (1 - std::pow(b1, t)) * m[i] / (std::sqrt(v[i] / (1 - std::pow(b2, t))) + eps);
  }
}

// Polar Express in double (the same formula as nanochat, written with plain loops).
void polar_ref(std::vector<double> &X, int r, int c, int steps) {
  double nrm = 0;
  for (double x : X) nrm += x * x;
  nrm = std::sqrt(nrm) * 1.01 + 1e-6;
  for (double &x : X) x /= nrm;
  const bool tall = r > c;
  const int s = tall ? c : r;
  std::vector<double> A(s * s), B(s * s), Y(X.size());
  for (int it = 0; it < steps; it++) {
    double a = nc_polar_express_coeffs[it][0], b = nc_polar_express_coeffs[it][1],
           cc = nc_polar_express_coeffs[it][2];
    for (int i = 0; i < s; i++)
      for (int j = 0; j < s; j++) {
        double acc = 0;
        if (tall) for (int k = 0; k < r; k++) acc += X[k * c + i] * X[k * c + j];
        else for (int k = 0; k < c; k++) acc += X[i * c + k] * X[j * c + k];
        A[i * s + j] = acc;
      }
    for (int i = 0; i < s; i++)
      for (int j = 0; j < s; j++) {
        double acc = 0;
        for (int k = 0; k < s; k++) acc += A[i * s + k] * A[k * s + j];
        B[i * s + j] = b * A[i * s + j] + cc * acc;
      }
    for (int i = 0; i < r; i++)
      for (int j = 0; j < c; j++) {
        double acc = 0;
        if (tall) for (int k = 0; k < c; k++) acc += X[i * c + k] * B[k * s + j];
        else for (int k = 0; k < r; k++) acc += B[i * s + k] * X[k * c + j];
        Y[i * c + j] = a * X[i * c + j] + acc;
      }
    X = Y;
  }
}

// One Muon step on one matrix; returns the per-element slack where the cautious mask is
// ambiguous (|X| <= 1e-4 max|X|: its sign is rounding noise).
std::vector<double> muon_ref(std::vector<double> &p, const float *g, std::vector<double> &buf,
                             std::vector<double> &buf2, int r, int c, double mu, double lr,
                             double wd, double beta2) {
  const size_t n = (size_t)r * c;
  std::vector<double> X(n);
  for (size_t i = 0; i < n; i++) {
    buf[i] = lerp(buf[i], g[i], 1 - mu);
    X[i] = lerp(g[i], buf[i], mu);
  }
  polar_ref(X, r, c, 5);
  const bool per_row = r >= c;
  const int red = per_row ? c : r, len = per_row ? r : c;
  std::vector<double> vm(len, 0.0), sc(len);
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) vm[per_row ? i : j] += X[i * c + j] * X[i * c + j] / red;
  double vnorm = 0, vnew = 0;
  for (int j = 0; j < len; j++) {
    vnorm += vm[j] * red;
    buf2[j] = lerp(buf2[j], vm[j], 1 - beta2);
    sc[j] = 1 / std::sqrt(std::max(buf2[j], 1e-10));
    vnew += vm[j] * red * sc[j] * sc[j];
  }
  vnorm = std::sqrt(vnorm);
  vnew = std::sqrt(vnew);
  double lre = lr * std::sqrt(std::max(1.0, (double)r / c)), xmax = 0;
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) {
      X[i * c + j] *= sc[per_row ? i : j] * vnorm / std::max(vnew, 1e-10);
      xmax = std::max(xmax, std::fabs(X[i * c + j]));
    }
  std::vector<double> slack(n, 0.0);
  for (size_t q = 0; q < n; q++) {
    double mask = X[q] * p[q] >= 0 ? 1 : 0;
    if (std::fabs(X[q]) <= 1e-4 * xmax) slack[q] = std::fabs(lre * wd * p[q]);
    p[q] -= lre * X[q] + lre * wd * p[q] * mask;
  }
  return slack;
}

std::vector<double> to_d(const float *x, int64_t n) { return std::vector<double>(x, x + n); }

TEST(Optim, AdamWStepsMatchDoubleReference) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_adamw(3e-3, 0.1);
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_optim_n_groups(o), 1);
  std::vector<std::vector<double>> p(M.n), m(M.n), v(M.n);
  for (int i = 0; i < M.n; i++) {
    p[i] = to_d(M.ps[i].data, M.ps[i].numel);
    m[i].assign(M.ps[i].numel, 0);
    v[i].assign(M.ps[i].numel, 0);
  }
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (int t = 1; t <= 4; t++) {
    for (int i = 0; i < M.n; i++)
      for (int64_t j = 0; j < M.ps[i].numel; j++) M.ps[i].grad[j] = nd(rng);
    ASSERT_EQ(nc_optim_step(o, nullptr), NC_OK);
    EXPECT_EQ(nc_optim_step_count(o), t);
    for (int i = 0; i < M.n; i++) {
      adam_ref(p[i], m[i], v[i], M.ps[i].grad, 3e-3, 0.9, 0.999, 1e-8, 0.1, t);
      EXPECT_LT(nct::rel_err(M.ps[i].data, p[i].data(), M.ps[i].numel), 1e-6) << M.ps[i].name;
    }
  }
  nc_optim_free(o);
}

TEST(Optim, MuonAdamWStepMatchesDoubleReference) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  c.weight_decay = 0.2;
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  nc_optim_set_schedule(o, 0.7, 0.9, 0.15);
  // references for every param: p, and the two state tensors a, b
  struct Ref { std::vector<double> p, a, b; };
  std::vector<Ref> ref(M.n);
  for (int gi = 0; gi < nc_optim_n_groups(o); gi++) {
    const nc_optim_group *G = nc_optim_group_at(o, gi);
    for (int k = 0; k < G->n_params; k++) {
      const nc_param &P = M.ps[G->params[k]];
      Ref &R = ref[G->params[k]];
      R.p = to_d(P.data, P.numel);
      R.a.assign(P.numel, 0);
      R.b.assign(G->kind == NC_GROUP_ADAMW ? P.numel : std::max(G->rows, G->cols), 0);
    }
  }
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd(0.f, 0.02f);
  for (int t = 1; t <= 2; t++) {
    for (int i = 0; i < M.n; i++)
      for (int64_t j = 0; j < M.ps[i].numel; j++) M.ps[i].grad[j] = nd(rng);
    ASSERT_EQ(nc_optim_step(o, nullptr), NC_OK);
    for (int gi = 0; gi < nc_optim_n_groups(o); gi++) {
      const nc_optim_group *G = nc_optim_group_at(o, gi);
      for (int k = 0; k < G->n_params; k++) {
        const nc_param &P = M.ps[G->params[k]];
        Ref &R = ref[G->params[k]];
        std::vector<double> slack(P.numel, 0.0);
        if (G->kind == NC_GROUP_ADAMW)
          adam_ref(R.p, R.a, R.b, P.grad, G->lr, G->beta1, G->beta2, G->eps, G->weight_decay, t);
        else
          slack = muon_ref(R.p, P.grad, R.a, R.b, (int)G->rows, (int)G->cols, G->momentum, G->lr,
                           G->weight_decay, G->beta2);
        double md = 0, mp = 0;
        for (int64_t j = 0; j < P.numel; j++) {
          md = std::max(md, std::fabs(P.data[j] - R.p[j]) - slack[j]);
          mp = std::max(mp, std::fabs(R.p[j]));
        }
        EXPECT_LT(md / mp, 1e-5) << P.name << " step " << t;
      }
    }
  }
  nc_optim_free(o);
}

// ------------------------------------------------------------------ Polar Express

std::vector<float> randn(int64_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = nd(g);
  return v;
}

TEST(PolarExpress, FastPathMatchesReference) {
  nc_blas_single_thread();
  int shapes[][2] = {{7, 13}, {13, 7}, {16, 16}, {64, 256}, {256, 64}, {2, 12}, {1, 12}, {12, 1}};
  for (auto &s : shapes) {
    const int r = s[0], c = s[1];
    auto X = randn((int64_t)r * c, 100 + r * 31 + c);
    auto Y = X;
    std::vector<double> D(X.begin(), X.end());
    std::vector<float> work(nc_polar_express_work_floats(r, c));
    ASSERT_EQ(nc_polar_express(X.data(), r, c, 5, work.data()), NC_OK);
    ASSERT_EQ(nc_polar_express_ref(Y.data(), r, c, 5), NC_OK);
    polar_ref(D, r, c, 5);
    EXPECT_LT(nct::rel_err(X.data(), D.data(), r * c), 1e-4) << r << "x" << c;
    EXPECT_LT(nct::rel_err(Y.data(), D.data(), r * c), 1e-4) << r << "x" << c;
  }
}

// ||G - I||_F / sqrt(s) for the Gram matrix of X (s = min(r, c))
double ortho_err(const std::vector<float> &X, int r, int c) {
  const bool tall = r > c;
  const int s = tall ? c : r;
  double e = 0;
  for (int i = 0; i < s; i++)
    for (int j = 0; j < s; j++) {
      double acc = 0;
      if (tall) for (int k = 0; k < r; k++) acc += (double)X[k * c + i] * X[k * c + j];
      else for (int k = 0; k < c; k++) acc += (double)X[i * c + k] * X[j * c + k];
      double d = acc - (i == j);
      e += d * d;
    }
  return std::sqrt(e / s);
}

TEST(PolarExpress, Orthogonalises) {
  // numpy on the same kind of input: ~0.18-0.20 after 5 steps, ~0.97 after normalisation only
  for (auto s : {std::pair<int, int>{64, 64}, {32, 128}, {128, 32}}) {
    auto X = randn(s.first * s.second, 3);
    auto X1 = X;
    std::vector<float> work(nc_polar_express_work_floats(s.first, s.second));
    ASSERT_EQ(nc_polar_express(X.data(), s.first, s.second, 5, work.data()), NC_OK);
    ASSERT_EQ(nc_polar_express(X1.data(), s.first, s.second, 1, work.data()), NC_OK);
    EXPECT_LT(ortho_err(X, s.first, s.second), 0.3);
    EXPECT_GT(ortho_err(X1, s.first, s.second), 0.5);  // one step is far from orthogonal
  }
}

TEST(PolarExpress, RejectsBadArguments) {
  float x[4] = {1, 2, 3, 4}, w[64];
  EXPECT_EQ(nc_polar_express(x, 2, 2, 0, w), NC_EINVAL);
  EXPECT_EQ(nc_polar_express(x, 2, 2, 6, w), NC_EINVAL);
  EXPECT_EQ(nc_polar_express(x, 0, 2, 5, w), NC_EINVAL);
  EXPECT_EQ(nc_polar_express(nullptr, 2, 2, 5, w), NC_EINVAL);
  EXPECT_EQ(nc_polar_express(x, 2, 2, 5, nullptr), NC_EINVAL);
  EXPECT_EQ(nc_polar_express_ref(x, 2, -1, 5), NC_EINVAL);
}

// ------------------------------------------------------------------ behaviour

// One step of an optimizer with config ca on A and cb on B; every parameter must agree.
void step_both_and_compare(Model &A, Model &B, const nc_optim_cfg &ca, const nc_optim_cfg &cb) {
  nc_optim *oa, *ob;
  ASSERT_EQ(nc_optim_create(A.ps, A.n, &ca, &oa, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_optim_create(B.ps, B.n, &cb, &ob, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_optim_step(oa, nullptr), NC_OK);
  ASSERT_EQ(nc_optim_step(ob, nullptr), NC_OK);
  for (int i = 0; i < A.n; i++)
    EXPECT_LT(nct::rel_err(A.ps[i].data, B.ps[i].data, A.ps[i].numel), 1e-5) << A.ps[i].name;
  nc_optim_free(oa);
  nc_optim_free(ob);
}

TEST(Optim, ReferencePathAgreesWithFastPath) {
  Model A(small_cfg()), B(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  c.weight_decay = 0.1;
  nc_optim_cfg r = c;
  r.reference = 1;
  step_both_and_compare(A, B, c, r);
}

TEST(Optim, ResultsDoNotDependOnThreadCount) {
  nc_model_config cfg = nct::tiny(2, 128, 8, 32, 500, "L", 0);
  Model A(cfg), B(cfg);
  nc_optim_cfg c = nc_optim_cfg_muonadamw(128);
  c.weight_decay = 0.1;
  nc_optim *oa, *ob;
  ASSERT_EQ(nc_optim_create(A.ps, A.n, &c, &oa, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_optim_create(B.ps, B.n, &c, &ob, nullptr, 0), NC_OK);
  int saved = omp_get_max_threads();
  for (int t = 0; t < 2; t++) {
    omp_set_num_threads(1);
    ASSERT_EQ(nc_optim_step(oa, nullptr), NC_OK);
    omp_set_num_threads(2);
    ASSERT_EQ(nc_optim_step(ob, nullptr), NC_OK);
  }
  omp_set_num_threads(saved);
  for (int i = 0; i < A.n; i++)
    EXPECT_EQ(0, std::memcmp(A.ps[i].data, B.ps[i].data, sizeof(float) * A.ps[i].numel)) << A.ps[i].name;
  nc_optim_free(oa);
  nc_optim_free(ob);
}

TEST(Optim, GradClippingScalesToTheNormAndRefusesNonFinite) {
  Model M(small_cfg());
  const double norm = nc_grad_global_norm(M.ps, M.n);
  nc_optim_cfg c = nc_optim_cfg_adamw(1e-3, 0.0);
  c.grad_clip = norm / 4;
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  double got = 0;
  ASSERT_EQ(nc_optim_step(o, &got), NC_OK);
  EXPECT_NEAR(got, norm, 1e-9 * norm);
  EXPECT_NEAR(nc_grad_global_norm(M.ps, M.n), norm / 4, 1e-5 * norm);  // scaled in place
  // below the threshold: gradients untouched
  for (int i = 0; i < M.n; i++)
    for (int64_t j = 0; j < M.ps[i].numel; j++) M.ps[i].grad[j] *= 0.5f;
  std::vector<float> before(M.ps[0].grad, M.ps[0].grad + M.ps[0].numel);
  ASSERT_EQ(nc_optim_step(o, &got), NC_OK);
  EXPECT_EQ(0, std::memcmp(before.data(), M.ps[0].grad, sizeof(float) * before.size()));
  // a NaN gradient: NC_ERANGE, parameters and step count unchanged
  std::vector<float> p0(M.ps[5].data, M.ps[5].data + M.ps[5].numel);
  M.ps[3].grad[0] = NAN;
  EXPECT_EQ(nc_optim_step(o, &got), NC_ERANGE);
  EXPECT_TRUE(std::isnan(got));
  EXPECT_EQ(nc_optim_step_count(o), 2);
  EXPECT_EQ(0, std::memcmp(p0.data(), M.ps[5].data, sizeof(float) * p0.size()));
  nc_optim_free(o);
  // without clipping the norm is not computed
  c.grad_clip = 0;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  M.ps[3].grad[0] = 0.f;
  ASSERT_EQ(nc_optim_step(o, &got), NC_OK);
  EXPECT_EQ(got, -1.0);
  nc_optim_free(o);
}

TEST(Optim, AccumulatedMicroBatchesGiveTheSameStep) {
  // 3 layers: with 2 the backout layer is the last one and backout_lambda's gradient is
  // rounding noise, whose sign AdamW's first step turns into +-lr
  nc_model_config cfg = nct::tiny(3, 32, 2, 16, 64, "L", 0);
  Model A(cfg, 3), B(cfg, 3);
  auto idx = nct::random_ids(4 * 16, 64, 1), tg = nct::random_ids(4 * 16, 64, 2);
  nc_model_zero_grad(A.m);
  ASSERT_EQ(nc_model_forward_backward(A.m, idx.data(), tg.data(), nullptr, 4, 16, 1.0f, nullptr), NC_OK);
  nc_model_zero_grad(B.m);
  for (int h = 0; h < 2; h++)  // two micro-batches of 2 rows, loss / grad_accum
    ASSERT_EQ(nc_model_forward_backward(B.m, idx.data() + h * 32, tg.data() + h * 32, nullptr, 2,
                                        16, 0.5f, nullptr), NC_OK);
  nc_optim_cfg c = nc_optim_cfg_muonadamw(32);
  step_both_and_compare(A, B, c, c);
}

TEST(Optim, TrainsATinyModel) {
  nc_model_config cfg = nct::tiny(2, 32, 2, 16, 64, "L", 0);
  nc_model *m;
  ASSERT_EQ(nc_model_create(&cfg, &m, nullptr, 0), NC_OK);
  nc_model_init_weights(m, 4);
  int n;
  nc_param *ps = nc_model_params(m, &n);
  nc_optim_cfg c = nc_optim_cfg_muonadamw(32);
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(ps, n, &c, &o, nullptr, 0), NC_OK);
  auto idx = nct::random_ids(2 * 16, 64, 7), tg = nct::random_ids(2 * 16, 64, 8);
  float first = 0, loss = 0;
  for (int s = 0; s < 40; s++) {
    nc_model_zero_grad(m);
    ASSERT_EQ(nc_model_forward_backward(m, idx.data(), tg.data(), nullptr, 2, 16, 1.0f, &loss), NC_OK);
    if (s == 0) first = loss;
    nc_optim_set_schedule(o, nc_lr_multiplier(s, 40, 2, 0.5, 0.05), nc_muon_momentum(s, 40, 0.5), 0);
    ASSERT_EQ(nc_optim_step(o, nullptr), NC_OK);
  }
  EXPECT_NEAR(first, std::log(64.0f), 0.2);
  EXPECT_LT(loss, 0.5f * first);
  nc_optim_free(o);
  nc_model_free(m);
}

// ------------------------------------------------------------------ state and JSON

TEST(OptimState, ViewsNamesShapesAndMemory) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  int n;
  const nc_param *v = nc_optim_state(o, &n);
  ASSERT_EQ(n, 2 * M.n);
  std::set<std::string> names;
  for (int i = 0; i < n; i++) {
    names.insert(v[i].name);
    for (int64_t j = 0; j < v[i].numel; j++) ASSERT_EQ(v[i].data[j], 0.f);
    EXPECT_EQ(v[i].grad, nullptr);
  }
  EXPECT_EQ((int)names.size(), n);
  auto find = [&](const std::string &s) -> const nc_param * {
    for (int i = 0; i < n; i++)
      if (s == v[i].name) return &v[i];
    return nullptr;
  };
  const nc_param *a = find("transformer.wte.weight.exp_avg_sq");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape[0], 128);
  EXPECT_EQ(a->shape[1], 64);
  const nc_param *tall = find("transformer.h.0.mlp.c_fc.weight.second_momentum_buffer");
  ASSERT_NE(tall, nullptr);
  EXPECT_EQ(tall->shape[0], 256);
  EXPECT_EQ(tall->shape[1], 1);
  const nc_param *wide = find("transformer.h.0.attn.ve_gate.weight.second_momentum_buffer");
  ASSERT_NE(wide, nullptr);
  EXPECT_EQ(wide->shape[0], 1);
  EXPECT_EQ(wide->shape[1], 12);
  ASSERT_NE(find("transformer.h.2.mlp.c_proj.weight.momentum_buffer"), nullptr);
  // the views tile one allocation without overlap
  std::vector<std::pair<const float *, const float *>> r;
  for (int i = 0; i < n; i++) r.push_back({v[i].data, v[i].data + v[i].numel});
  std::sort(r.begin(), r.end());
  for (size_t i = 1; i < r.size(); i++) EXPECT_EQ(r[i - 1].second, r[i].first);
  // after a step the momentum of a param with a non-zero gradient is non-zero
  ASSERT_EQ(nc_optim_step(o, nullptr), NC_OK);
  const nc_param *mb = find("transformer.h.1.attn.c_q.weight.momentum_buffer");
  double s = 0;
  for (int64_t j = 0; j < mb->numel; j++) s += std::fabs(mb->data[j]);
  EXPECT_GT(s, 0);
  nc_optim_free(o);
}

TEST(OptimState, MetaJsonRoundTripIsExact) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  c.weight_decay = 0.123456789012345;
  nc_optim *o, *o2;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o2, nullptr, 0), NC_OK);
  nc_optim_set_schedule(o, 0.1 / 3, 0.9123, 0.01 / 7);
  ASSERT_EQ(nc_optim_step(o, nullptr), NC_OK);
  ASSERT_EQ(nc_optim_step(o, nullptr), NC_OK);
  char *j = nc_optim_meta_to_json(o);
  ASSERT_NE(j, nullptr);
  char msg[256];
  ASSERT_EQ(nc_optim_meta_from_json(o2, j, strlen(j), msg, sizeof msg), NC_OK) << msg;
  EXPECT_EQ(nc_optim_step_count(o2), 2);
  for (int g = 0; g < nc_optim_n_groups(o); g++) {
    nc_optim_group *a = nc_optim_group_at(o, g), *b = nc_optim_group_at(o2, g);
    EXPECT_EQ(a->lr, b->lr);
    EXPECT_EQ(a->initial_lr, b->initial_lr);
    EXPECT_EQ(a->momentum, b->momentum);
    EXPECT_EQ(a->weight_decay, b->weight_decay);
    EXPECT_EQ(a->beta1, b->beta1);
    EXPECT_EQ(a->beta2, b->beta2);
  }
  free(j);
  nc_optim_free(o);
  nc_optim_free(o2);
}

TEST(OptimState, MetaJsonMismatchChangesNothing) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  char *j = nc_optim_meta_to_json(o);
  std::string s(j);
  free(j);
  auto rejects = [&](std::string bad, const char *what) {
    char msg[256] = "";
    EXPECT_EQ(nc_optim_meta_from_json(o, bad.data(), bad.size(), msg, sizeof msg), NC_EINVAL) << what;
    EXPECT_NE(msg[0], 0) << what;
    EXPECT_EQ(nc_optim_step_count(o), 0);
    EXPECT_EQ(nc_optim_group_at(o, 0)->lr, nc_optim_group_at(o, 0)->initial_lr);
  };
  auto replace = [&](const std::string &a, const std::string &b) {
    std::string t = s;
    size_t p = t.find(a);
    EXPECT_NE(p, std::string::npos) << a;
    if (p != std::string::npos) t.replace(p, a.size(), b);
    return t;
  };
  rejects("{", "not JSON");
  rejects(replace("\"muonadamw\"", "\"adamw\""), "type");
  rejects(replace("\"step\":0", "\"step\":-1"), "negative step");
  rejects(replace("\"lm_head\"", "\"lm_headx\""), "label");
  rejects(replace("\"beta1\":0.80000000000000004", "\"beta1\":1.5"), "beta out of range");
  rejects(replace("[\"transformer.h.0.attn.ve_gate.weight\",", "["), "param list");
  rejects(replace("\"ns_steps\":5", "\"ns_steps\":9"), "ns_steps");
  // a different model (other parameter names / shapes)
  Model M2(nct::tiny(2, 64, 2, 16, 100, "L", 0));
  nc_optim *o2;
  ASSERT_EQ(nc_optim_create(M2.ps, M2.n, &c, &o2, nullptr, 0), NC_OK);
  char msg[256];
  EXPECT_EQ(nc_optim_meta_from_json(o2, s.data(), s.size(), msg, sizeof msg), NC_EINVAL);
  nc_optim_free(o2);
  nc_optim_free(o);
}

// ------------------------------------------------------------------ bad input

TEST(Optim, CreateRejectsBadInput) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  nc_optim *o = (nc_optim *)1;
  char msg[200];
  EXPECT_EQ(nc_optim_create(nullptr, 3, &c, &o, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(o, nullptr);
  EXPECT_EQ(nc_optim_create(M.ps, 0, &c, &o, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_optim_create(M.ps, M.n, nullptr, &o, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &c, nullptr, msg, sizeof msg), NC_EINVAL);
  nc_optim_cfg bad = c;
  bad.model_dim = 0;
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &bad, &o, msg, sizeof msg), NC_EINVAL);
  bad = c;
  bad.matrix_lr = -1;
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &bad, &o, msg, sizeof msg), NC_EINVAL);
  EXPECT_NE(std::string(msg).find("muon"), std::string::npos) << msg;
  bad = c;
  bad.embedding_lr = NAN;
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &bad, &o, msg, sizeof msg), NC_EINVAL);
  bad = c;
  bad.grad_clip = -1;
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &bad, &o, msg, sizeof msg), NC_EINVAL);
  bad = nc_optim_cfg_adamw(1e-3, 0);
  bad.beta1 = 1.0;
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &bad, &o, msg, sizeof msg), NC_EINVAL);
  bad.type = (nc_optim_type)7;
  EXPECT_EQ(nc_optim_create(M.ps, M.n, &bad, &o, msg, sizeof msg), NC_EINVAL);
  std::vector<nc_param> ps(M.ps, M.ps + M.n);
  ps[2].grad = nullptr;
  EXPECT_EQ(nc_optim_create(ps.data(), M.n, &c, &o, msg, sizeof msg), NC_EINVAL);
  ps.assign(M.ps, M.ps + M.n);
  ps[0].kind = NC_PK_MATRIX;  // resid_lambdas is 1-D: Muon cannot take it
  EXPECT_EQ(nc_optim_create(ps.data(), M.n, &c, &o, msg, sizeof msg), NC_EINVAL);
  ps.assign(M.ps, M.ps + M.n);
  ps[0].kind = (nc_param_kind)42;
  EXPECT_EQ(nc_optim_create(ps.data(), M.n, &c, &o, msg, sizeof msg), NC_EINVAL);
  ps.assign(M.ps, M.ps + M.n);
  ps[4].numel += 1;  // inconsistent with its shape
  EXPECT_EQ(nc_optim_create(ps.data(), M.n, &c, &o, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(o, nullptr);
}

TEST(Optim, StepRejectsInvalidHyperparametersWithoutChanges) {
  Model M(small_cfg());
  nc_optim_cfg c = nc_optim_cfg_muonadamw(64);
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(M.ps, M.n, &c, &o, nullptr, 0), NC_OK);
  std::vector<float> p0(M.ps[5].data, M.ps[5].data + M.ps[5].numel);
  auto check = [&](void (*set)(nc_optim_group *), int g) {
    nc_optim_group saved = *nc_optim_group_at(o, g);
    set(nc_optim_group_at(o, g));
    EXPECT_EQ(nc_optim_step(o, nullptr), NC_EINVAL);
    *nc_optim_group_at(o, g) = saved;
    EXPECT_EQ(nc_optim_step_count(o), 0);
    EXPECT_EQ(0, std::memcmp(p0.data(), M.ps[5].data, sizeof(float) * p0.size()));
  };
  check([](nc_optim_group *g) { g->lr = NAN; }, 0);
  check([](nc_optim_group *g) { g->lr = -0.1; }, 1);
  check([](nc_optim_group *g) { g->beta2 = 1.0; }, 2);
  check([](nc_optim_group *g) { g->eps = -1; }, 3);
  check([](nc_optim_group *g) { g->momentum = 1.0; }, 7);
  check([](nc_optim_group *g) { g->ns_steps = 6; }, 7);
  check([](nc_optim_group *g) { g->weight_decay = INFINITY; }, 8);
  EXPECT_EQ(nc_optim_step(nullptr, nullptr), NC_EINVAL);
  EXPECT_EQ(nc_optim_step(o, nullptr), NC_OK);
  nc_optim_free(o);
  nc_optim_free(nullptr);
}

}  // namespace
