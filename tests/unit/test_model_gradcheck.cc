// Finite-difference gradient checks of the double-precision reference model (nc_model_ref),
// for every parameter tensor of tiny configs: windows shorter than T, value-embedding layers,
// GQA, padded vocab, ignored targets and per-token loss weights. Central differences in
// double with h = 1e-5 have truncation + rounding error around 1e-9 relative, so the 1e-5
// tolerance cannot be met by a wrong gradient (a wrong sign, factor or missing term is O(1)).
// The fast fp32 model is compared against this same reference in test_model.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "model_test_util.h"

extern "C" {
#include "nc_err.h"
#include "nc_model_ref.h"
}

namespace {

struct Case {
  const char *name;
  nc_model_config cfg;
  int B, T;
  bool ignore_some;   // some targets = -1
  bool weighted;      // per-token loss weights
};

double loss_at(const Case &k, std::vector<double> &p, const std::vector<int32_t> &idx,
               const std::vector<int32_t> &tg, const std::vector<double> *w) {
  double loss = 0;
  int rc = nc_ref_model_f64(&k.cfg, p.data(), idx.data(), tg.data(), w ? w->data() : nullptr,
                            k.B, k.T, &loss, nullptr, nullptr);
  EXPECT_EQ(rc, NC_OK);
  return loss;
}

void run_case(const Case &k) {
  const int N = k.B * k.T, V = k.cfg.vocab_size;
  std::vector<double> p = nct::random_params<double>(k.cfg, 1234);
  std::vector<int32_t> idx = nct::random_ids(N, V, 7), tg = nct::random_ids(N, V, 8);
  // repeated tokens exercise the scatter-add of wte / value-embedding gradients
  idx[3] = idx[1];
  idx[N - 1] = idx[1];
  if (k.ignore_some) {
    tg[0] = -1;
    tg[5] = -1;
  }
  std::vector<double> w;
  if (k.weighted) {
    w.resize(N);
    for (int i = 0; i < N; i++) w[i] = 0.01 * ((i % 7) - 3);
  }
  std::vector<double> grad(p.size());
  double loss = 0;
  ASSERT_EQ(nc_ref_model_f64(&k.cfg, p.data(), idx.data(), tg.data(),
                             k.weighted ? w.data() : nullptr, k.B, k.T, &loss, nullptr,
                             grad.data()),
            NC_OK);
  ASSERT_TRUE(std::isfinite(loss));
  const double h = 1e-5;
  for (const auto &sp : nct::spans(k.cfg)) {
    // up to 12 coordinates per tensor: the largest-gradient ones plus a spread of others
    std::vector<int64_t> pick;
    std::vector<int64_t> order(sp.n);
    for (int64_t i = 0; i < sp.n; i++) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + std::min<int64_t>(6, sp.n), order.end(),
                      [&](int64_t a, int64_t b) {
                        return std::fabs(grad[sp.off + a]) > std::fabs(grad[sp.off + b]);
                      });
    for (int64_t i = 0; i < std::min<int64_t>(6, sp.n); i++) pick.push_back(order[i]);
    for (int64_t i = 0; i < 6 && sp.n > 6; i++) pick.push_back((i * 7919 + 13) % sp.n);
    double gmax = 0;
    for (int64_t i = 0; i < sp.n; i++) gmax = std::max(gmax, std::fabs(grad[sp.off + i]));
    // every tensor must actually receive gradient in these configs (except padded rows)
    EXPECT_GT(gmax, 1e-8) << k.name << " " << sp.name << " has an all-zero gradient";
    for (int64_t j : pick) {
      int64_t o = sp.off + j;
      double save = p[o];
      p[o] = save + h;
      double lp = loss_at(k, p, idx, tg, k.weighted ? &w : nullptr);
      p[o] = save - h;
      double lm = loss_at(k, p, idx, tg, k.weighted ? &w : nullptr);
      p[o] = save;
      double fd = (lp - lm) / (2 * h);
      // floor: with L=2 the backout layer is the last layer, whose output is rescaled away by the
      // final RMSNorm, so that gradient is only ~1e-7 (eps-level) and FD noise is ~1e-11.
      double err = std::fabs(fd - grad[o]) / std::max(gmax, 1e-4);
      EXPECT_LT(err, 1e-5) << k.name << " " << sp.name << "[" << j << "] fd=" << fd
                           << " analytic=" << grad[o];
    }
  }
}

TEST(ModelGradcheck, TwoLayersShortWindowVE) {
  // L=2: layer 1 has VE (last layer), layer 0 is S with window 4 < T=16.
  run_case({"L2", nct::tiny(2, 32, 2, 16, 64, "SSSL", 4), 2, 16, false, false});
}

TEST(ModelGradcheck, ThreeLayersGQA) {
  // GQA: 4 query heads share 2 kv heads; VE on layers 0 and 2; windows 5, 5, full.
  run_case({"GQA", nct::tiny(3, 64, 2, 16, 128, "SSL", 5), 2, 16, true, false});
}

TEST(ModelGradcheck, FourLayersPaddedVocabWeighted) {
  // vocab 100 padded to 128; pattern SL; per-token weights (RL-style loss) incl. negatives.
  run_case({"L4", nct::tiny(4, 48, 1, 16, 100, "SL", 3), 1, 16, true, true});
}

TEST(ModelGradcheck, AllTargetsIgnoredGivesZeroLossAndGradient) {
  nc_model_config cfg = nct::tiny(2, 32, 2, 16, 64, "L", 0);
  std::vector<double> p = nct::random_params<double>(cfg, 1), g(p.size(), 1.0);
  std::vector<int32_t> idx = nct::random_ids(16, 64, 2), tg(16, -1);
  double loss = 1;
  ASSERT_EQ(nc_ref_model_f64(&cfg, p.data(), idx.data(), tg.data(), nullptr, 1, 16, &loss,
                             nullptr, g.data()),
            NC_OK);
  EXPECT_EQ(loss, 0.0);
  for (double x : g) ASSERT_EQ(x, 0.0);
}

TEST(ModelGradcheck, RejectsOutOfRangeIds) {
  nc_model_config cfg = nct::tiny(2, 32, 2, 16, 64, "L", 0);
  std::vector<double> p = nct::random_params<double>(cfg, 1);
  std::vector<int32_t> idx = nct::random_ids(16, 64, 2), tg = nct::random_ids(16, 64, 3);
  double loss;
  idx[4] = 64;
  EXPECT_EQ(nc_ref_model_f64(&cfg, p.data(), idx.data(), tg.data(), nullptr, 1, 16, &loss,
                             nullptr, nullptr),
            NC_EINVAL);
  idx[4] = 0;
  tg[2] = -2;
  EXPECT_EQ(nc_ref_model_f64(&cfg, p.data(), idx.data(), tg.data(), nullptr, 1, 16, &loss,
                             nullptr, nullptr),
            NC_EINVAL);
}

}  // namespace
