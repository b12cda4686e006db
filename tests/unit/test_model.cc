// The fast fp32 model (nc_model) against the reference (nc_model_ref): loss, logits and the
// gradient of every tensor on tiny configs (short windows, VE layers, GQA, padded vocab,
// ignored targets, per-token weights), plus parameters, init, accumulation, workspace reuse,
// thread counts, bad input, and a behavioural overfitting test.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "model_test_util.h"

extern "C" {
#include "nc_err.h"
#include "nc_model.h"
#include "nc_model_ref.h"
}

namespace {

struct ModelPtr {
  nc_model *m = nullptr;
  explicit ModelPtr(const nc_model_config &c) {
    char msg[128];
    EXPECT_EQ(nc_model_create(&c, &m, msg, sizeof msg), NC_OK) << msg;
  }
  ~ModelPtr() { nc_model_free(m); }
};

void load(nc_model *m, const std::vector<double> &p) {
  int64_t n;
  float *buf = nc_model_param_buffer(m, &n);
  ASSERT_EQ((size_t)n, p.size());
  for (int64_t i = 0; i < n; i++) buf[i] = (float)p[i];
}

struct Case {
  const char *name;
  nc_model_config cfg;
  int B, T;
  bool ignore_some, weighted;
};

const Case kCases[] = {
    {"L2_window4_VE", nct::tiny(2, 32, 2, 16, 64, "SSSL", 4), 2, 16, false, false},
    {"L3_GQA", nct::tiny(3, 64, 2, 16, 128, "SSL", 5), 2, 16, true, false},
    {"L4_padded_weighted", nct::tiny(4, 48, 1, 16, 100, "SL", 3), 1, 16, true, true},
    // T=80 > attention block (64): several query blocks, window 70 crosses block edges
    {"L2_T80_blocks", nct::tiny(2, 32, 1, 80, 64, "S", 70), 2, 80, true, false},
};

void compare_with_reference(const Case &k, int threads) {
  omp_set_num_threads(threads);
  const int N = k.B * k.T, V = k.cfg.vocab_size;
  std::vector<double> p = nct::random_params<double>(k.cfg, 99);
  std::vector<int32_t> idx = nct::random_ids(N, V, 5), tg = nct::random_ids(N, V, 6);
  idx[2] = idx[0];
  if (k.ignore_some) tg[1] = tg[N - 2] = -1;
  std::vector<double> wd(N);
  std::vector<float> wf(N);
  for (int i = 0; i < N; i++) wf[i] = (float)(wd[i] = 0.02 * ((i % 5) - 2));
  std::vector<double> gref(p.size()), lref((size_t)N * V);
  double loss_ref = 0;
  ASSERT_EQ(nc_ref_model_f64(&k.cfg, p.data(), idx.data(), tg.data(),
                             k.weighted ? wd.data() : nullptr, k.B, k.T, &loss_ref, lref.data(),
                             gref.data()),
            NC_OK);
  ModelPtr mp(k.cfg);
  load(mp.m, p);
  nc_model_zero_grad(mp.m);
  float loss = 0;
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(),
                                      k.weighted ? wf.data() : nullptr, k.B, k.T, 1.0f, &loss),
            NC_OK);
  EXPECT_NEAR(loss, loss_ref, 1e-5 * std::max(1.0, std::fabs(loss_ref))) << k.name;
  int64_t ng;
  const float *g = nc_model_grad_buffer(mp.m, &ng);
  for (const auto &sp : nct::spans(k.cfg)) {
    // floor 3e-3: with L=2 the backout gradient is ~1e-7 (backout at the last layer is
    // rescaled away by the final RMSNorm), i.e. fp32 noise (3.1e-7 seen with gcc 12 on Zen 5);
    // this masks only absolute errors < 6e-7, far below any real gradient (>= 1e-3 here)
    double e = nct::rel_err(g + sp.off, gref.data() + sp.off, sp.n, 3e-3);
    EXPECT_LT(e, 2e-4) << k.name << " threads=" << threads << " grad " << sp.name;
  }
  // evaluation forward: logits, per-token losses, mean loss
  std::vector<float> logits((size_t)N * V), losses(N);
  float eloss = 0;
  ASSERT_EQ(nc_model_forward(mp.m, idx.data(), tg.data(), k.B, k.T, &eloss, losses.data(),
                             logits.data()),
            NC_OK);
  EXPECT_LT(nct::rel_err(logits.data(), lref.data(), (int64_t)N * V), 1e-5) << k.name;
  if (!k.weighted) {
    EXPECT_NEAR(eloss, loss, 1e-5 * std::max(1.0f, std::fabs(loss)));
  }
  for (int i = 0; i < N; i++) {
    if (tg[i] < 0) {
      EXPECT_EQ(losses[i], 0.0f);
    }
  }
}

TEST(Model, MatchesReferenceOneThread) {
  for (const Case &k : kCases) compare_with_reference(k, 1);
}

TEST(Model, MatchesReferenceTwoThreads) {
  for (const Case &k : kCases) compare_with_reference(k, 2);
}

// Large enough (N*C, N*KV > NC_PAR_MIN, attention and head work above their thresholds) that
// every multi-threaded path of the model runs, incl. the VE/smear/embedding scatter-adds.
TEST(Model, MatchesReferenceMediumTwoThreads) {
  compare_with_reference({"medium", nct::tiny(2, 128, 8, 128, 256, "SL", 40), 8, 128, true, false}, 2);
}

TEST(Model, ParamsNamesKindsShapesContiguous) {
  nc_model_config c = nct::tiny(4, 64, 2, 16, 100, "SSSL", 0);
  ModelPtr mp(c);
  int n = 0;
  nc_param *ps = nc_model_params(mp.m, &n);
  const nc_model_layout *lay = nc_model_get_layout(mp.m);
  ASSERT_EQ(n, lay->n_tensors);
  int64_t np;
  float *base = nc_model_param_buffer(mp.m, &np);
  float *gbase = nc_model_grad_buffer(mp.m, &np);
  int64_t off = 0, total = 0;
  std::map<std::string, const nc_param *> by;
  for (int i = 0; i < n; i++) {
    EXPECT_EQ(ps[i].data, base + off) << ps[i].name;  // packed back to back
    EXPECT_EQ(ps[i].grad, gbase + off) << ps[i].name;
    int64_t prod = 1;
    for (int d = 0; d < ps[i].ndim; d++) prod *= ps[i].shape[d];
    EXPECT_EQ(prod, ps[i].numel);
    off += ps[i].numel;
    total += ps[i].numel;
    by[ps[i].name] = &ps[i];
  }
  EXPECT_EQ(total, np);
  EXPECT_EQ(total, nc_model_config_param_counts(&c).total);
  auto kind = [&](const char *nm) { return by.count(nm) ? (int)by[nm]->kind : -1; };
  EXPECT_EQ(kind("transformer.wte.weight"), NC_PK_WTE);
  EXPECT_EQ(kind("lm_head.weight"), NC_PK_LM_HEAD);
  EXPECT_EQ(kind("value_embeds.1.weight"), NC_PK_VALUE_EMBED);
  EXPECT_EQ(kind("value_embeds.3.weight"), NC_PK_VALUE_EMBED);
  EXPECT_EQ(kind("value_embeds.0.weight"), -1);
  EXPECT_EQ(kind("transformer.h.1.attn.ve_gate.weight"), NC_PK_MATRIX);
  EXPECT_EQ(kind("transformer.h.0.attn.ve_gate.weight"), -1);
  EXPECT_EQ(kind("transformer.h.3.mlp.c_proj.weight"), NC_PK_MATRIX);
  EXPECT_EQ(kind("resid_lambdas"), NC_PK_RESID_LAMBDAS);
  EXPECT_EQ(kind("x0_lambdas"), NC_PK_X0_LAMBDAS);
  EXPECT_EQ(kind("smear_gate.weight"), NC_PK_GATE_SCALAR);
  EXPECT_EQ(kind("smear_lambda"), NC_PK_GATE_SCALAR);
  EXPECT_EQ(kind("backout_lambda"), NC_PK_GATE_SCALAR);
  // shapes in PyTorch layout
  const nc_param *q = by["transformer.h.2.attn.c_k.weight"];
  EXPECT_EQ(q->ndim, 2);
  EXPECT_EQ(q->shape[0], 32);  // Hkv * D
  EXPECT_EQ(q->shape[1], 64);
  EXPECT_EQ(by["transformer.h.0.mlp.c_proj.weight"]->shape[1], 256);
  EXPECT_EQ(by["transformer.wte.weight"]->shape[0], 128);  // padded vocab
  EXPECT_EQ(by["smear_gate.weight"]->shape[0], 1);
  EXPECT_EQ(by["smear_gate.weight"]->shape[1], 24);
  EXPECT_EQ(by["transformer.h.1.attn.ve_gate.weight"]->shape[0], 2);
  EXPECT_EQ(by["transformer.h.1.attn.ve_gate.weight"]->shape[1], 12);
  EXPECT_EQ(by["smear_lambda"]->ndim, 1);
  EXPECT_EQ(by["smear_lambda"]->shape[0], 1);
  // state-dict order: own parameters first, then transformer, lm_head, smear_gate, VEs
  EXPECT_STREQ(ps[0].name, "resid_lambdas");
  EXPECT_STREQ(ps[4].name, "transformer.wte.weight");
  EXPECT_STREQ(ps[5].name, "transformer.h.0.attn.c_q.weight");
  EXPECT_STREQ(ps[n - 1].name, "value_embeds.3.weight");
}

double mean_of(const float *p, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += p[i];
  return s / n;
}
double std_of(const float *p, int64_t n) {
  double m = mean_of(p, n), s = 0;
  for (int64_t i = 0; i < n; i++) s += (p[i] - m) * (p[i] - m);
  return std::sqrt(s / n);
}

TEST(Model, InitMatchesNanochat) {
  nc_model_config c = nct::tiny(4, 128, 8, 64, 4096, "SSSL", 0);
  ModelPtr mp(c);
  nc_model_init_weights(mp.m, 42);
  int n;
  nc_param *ps = nc_model_params(mp.m, &n);
  const double s = std::sqrt(3.0 / 128);
  for (int i = 0; i < n; i++) {
    const nc_param &p = ps[i];
    std::string nm = p.name;
    float lo = 1e30f, hi = -1e30f;
    for (int64_t j = 0; j < p.numel; j++) {
      lo = std::min(lo, p.data[j]);
      hi = std::max(hi, p.data[j]);
    }
    if (nm == "transformer.wte.weight") {
      EXPECT_NEAR(std_of(p.data, p.numel), 0.8, 0.01);
      EXPECT_NEAR(mean_of(p.data, p.numel), 0.0, 0.01);
    } else if (nm == "lm_head.weight") {
      EXPECT_NEAR(std_of(p.data, p.numel), 0.001, 1.5e-5);
    } else if (nm.find("c_q") != std::string::npos || nm.find("c_k") != std::string::npos ||
               nm.find("c_v") != std::string::npos || nm.find("value_embeds") == 0) {
      EXPECT_GE(lo, -s);
      EXPECT_LE(hi, s);
      EXPECT_NEAR(std_of(p.data, p.numel), s / std::sqrt(3.0), 0.05 * s) << nm;
    } else if (nm.find("c_fc") != std::string::npos) {
      EXPECT_GE(lo, -0.4 * s);
      EXPECT_LE(hi, 0.4 * s);
      EXPECT_GT(hi, 0.35 * s);
    } else if (nm.find("c_proj") != std::string::npos) {
      EXPECT_EQ(lo, 0.0f) << nm;
      EXPECT_EQ(hi, 0.0f) << nm;
    } else if (nm.find("ve_gate") != std::string::npos || nm == "smear_gate.weight") {
      EXPECT_GE(lo, 0.0f) << nm;
      EXPECT_LE(hi, 0.02f) << nm;
      EXPECT_GT(hi, 0.01f) << nm;
    }
  }
  const nc_model_layout *lay = nc_model_get_layout(mp.m);
  float *P = nc_model_param_buffer(mp.m, nullptr);
  for (int i = 0; i < 4; i++) {
    EXPECT_FLOAT_EQ(P[lay->resid_lambdas + i], (float)(1.15 - 0.10 * i / 3));
    EXPECT_FLOAT_EQ(P[lay->x0_lambdas + i], (float)(0.20 - 0.15 * i / 3));
  }
  EXPECT_EQ(P[lay->smear_lambda], 0.0f);
  EXPECT_EQ(P[lay->backout_lambda], 0.2f);
}

TEST(Model, InitIsDeterministicPerSeed) {
  nc_model_config c = nct::tiny(2, 32, 2, 16, 64, "L", 0);
  ModelPtr a(c), b(c), d(c);
  nc_model_init_weights(a.m, 7);
  nc_model_init_weights(b.m, 7);
  nc_model_init_weights(d.m, 8);
  int64_t n;
  float *pa = nc_model_param_buffer(a.m, &n), *pb = nc_model_param_buffer(b.m, nullptr),
        *pd = nc_model_param_buffer(d.m, nullptr);
  EXPECT_EQ(memcmp(pa, pb, sizeof(float) * n), 0);
  EXPECT_NE(memcmp(pa, pd, sizeof(float) * n), 0);
}

TEST(Model, GradientsAccumulateAndScale) {
  nc_model_config c = nct::tiny(2, 32, 2, 16, 64, "SL", 4);
  ModelPtr mp(c);
  load(mp.m, nct::random_params<double>(c, 3));
  std::vector<int32_t> idx = nct::random_ids(32, 64, 1), tg = nct::random_ids(32, 64, 2);
  int64_t n;
  nc_model_zero_grad(mp.m);
  float l1, l2;
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 2, 16, 1.0f, &l1), NC_OK);
  const float *g0 = nc_model_grad_buffer(mp.m, &n);
  std::vector<float> g1(g0, g0 + n);
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 2, 16, 0.5f, &l2), NC_OK);
  EXPECT_EQ(l1, l2);  // loss is reported unscaled
  const float *g = nc_model_grad_buffer(mp.m, nullptr);
  double md = 0, mx = 0;
  for (int64_t i = 0; i < n; i++) {
    md = std::max(md, (double)std::fabs(g[i] - 1.5f * g1[i]));
    mx = std::max(mx, (double)std::fabs(g1[i]));
  }
  EXPECT_LT(md / mx, 1e-5);
  nc_model_zero_grad(mp.m);
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(g[i], 0.0f);
}

TEST(Model, WorkspaceReuseAcrossShapes) {
  nc_model_config c = nct::tiny(3, 64, 2, 32, 128, "SSL", 6);
  ModelPtr mp(c);
  load(mp.m, nct::random_params<double>(c, 4));
  std::vector<int32_t> idx = nct::random_ids(4 * 32, 128, 1), tg = nct::random_ids(4 * 32, 128, 2);
  float small1, big, small2, ev;
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 1, 20, 1.0f, &small1), NC_OK);
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 4, 32, 1.0f, &big), NC_OK);
  ASSERT_EQ(nc_model_forward(mp.m, idx.data(), tg.data(), 4, 32, &ev, nullptr, nullptr), NC_OK);
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 1, 20, 1.0f, &small2), NC_OK);
  EXPECT_EQ(small1, small2);
  EXPECT_NEAR(ev, big, 1e-6 * std::fabs(big));
}

TEST(Model, RejectsBadInputWithoutTouchingGradients) {
  nc_model_config c = nct::tiny(2, 32, 2, 16, 64, "L", 0);
  ModelPtr mp(c);
  load(mp.m, nct::random_params<double>(c, 5));
  nc_model_zero_grad(mp.m);
  std::vector<int32_t> idx = nct::random_ids(32, 64, 1), tg = nct::random_ids(32, 64, 2);
  float loss;
  auto fb = [&](int B, int T) {
    return nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, B, T, 1.0f, &loss);
  };
  idx[7] = 64;
  EXPECT_EQ(fb(2, 16), NC_EINVAL);
  idx[7] = -1;
  EXPECT_EQ(fb(2, 16), NC_EINVAL);
  idx[7] = 0;
  tg[3] = -2;
  EXPECT_EQ(fb(2, 16), NC_EINVAL);
  tg[3] = 64;
  EXPECT_EQ(fb(2, 16), NC_EINVAL);
  tg[3] = 0;
  EXPECT_EQ(fb(0, 16), NC_EINVAL);
  EXPECT_EQ(fb(2, 0), NC_EINVAL);
  EXPECT_EQ(fb(1, 161), NC_EINVAL);  // > 10 * sequence_len
  EXPECT_EQ(nc_model_forward_backward(mp.m, idx.data(), nullptr, nullptr, 2, 16, 1.0f, &loss), NC_EINVAL);
  EXPECT_EQ(nc_model_forward_backward(mp.m, nullptr, tg.data(), nullptr, 2, 16, 1.0f, &loss), NC_EINVAL);
  EXPECT_EQ(nc_model_forward(mp.m, idx.data(), nullptr, 1 << 20, 16, &loss, nullptr, nullptr), NC_EINVAL);
  int64_t n;
  const float *g = nc_model_grad_buffer(mp.m, &n);
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(g[i], 0.0f);
  EXPECT_EQ(fb(2, 16), NC_OK);
}

TEST(Model, CreateRejectsInvalidConfig) {
  nc_model_config c = nct::tiny(2, 32, 2, 16, 64, "L", 0);
  c.n_kv_head = 3;
  nc_model *m = (nc_model *)0x1;
  char msg[128] = {0};
  EXPECT_EQ(nc_model_create(&c, &m, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(msg).find("n_kv_head"), std::string::npos);
  nc_model_free(nullptr);
}

TEST(Model, LongerThanSequenceLenForwardWorks) {
  // nanochat allows T up to its 10x rotary cache; the rope table grows on demand and the
  // L layers slide with window sequence_len (consistency with decoding: test_model_cache)
  nc_model_config c = nct::tiny(2, 32, 2, 16, 64, "SL", 4);
  ModelPtr mp(c);
  load(mp.m, nct::random_params<double>(c, 6));
  const int T = 160;
  std::vector<int32_t> idx = nct::random_ids(T, 64, 1), tg = nct::random_ids(T, 64, 2);
  float loss = -1;
  ASSERT_EQ(nc_model_forward(mp.m, idx.data(), tg.data(), 1, T, &loss, nullptr, nullptr), NC_OK);
  EXPECT_TRUE(std::isfinite(loss));
  ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 1, T, 1.0f, &loss), NC_OK);
  EXPECT_TRUE(std::isfinite(loss));
}

// A tiny model with nanochat's init must learn a fixed batch: catches sign errors and
// broken gradient flow that a relative comparison could not (plain Adam in the test).
TEST(Model, OverfitsFixedBatch) {
  omp_set_num_threads(2);
  nc_model_config c = nct::tiny(2, 64, 4, 32, 128, "SL", 8);
  ModelPtr mp(c);
  nc_model_init_weights(mp.m, 1);
  std::vector<int32_t> idx = nct::random_ids(2 * 32, 128, 11);
  std::vector<int32_t> tg(idx.begin() + 1, idx.end());
  tg.push_back(idx[0]);
  int64_t n;
  float *P = nc_model_param_buffer(mp.m, &n);
  const float *G = nc_model_grad_buffer(mp.m, nullptr);
  std::vector<float> m1(n, 0), m2(n, 0);
  float first = 0, last = 0;
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.99f;
  for (int step = 1; step <= 150; step++) {
    nc_model_zero_grad(mp.m);
    float loss;
    ASSERT_EQ(nc_model_forward_backward(mp.m, idx.data(), tg.data(), nullptr, 2, 32, 1.0f, &loss), NC_OK);
    if (step == 1) first = loss;
    last = loss;
    for (int64_t i = 0; i < n; i++) {
      m1[i] = b1 * m1[i] + (1 - b1) * G[i];
      m2[i] = b2 * m2[i] + (1 - b2) * G[i] * G[i];
      float mh = m1[i] / (1 - std::pow(b1, step)), vh = m2[i] / (1 - std::pow(b2, step));
      P[i] -= lr * mh / (std::sqrt(vh) + 1e-8f);
    }
  }
  EXPECT_NEAR(first, std::log(128.0), 0.05);  // tiny lm_head: uniform predictions
  EXPECT_LT(last, 0.1f) << "first " << first;
}

}  // namespace
