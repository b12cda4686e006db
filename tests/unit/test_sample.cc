// Token sampling (core/nc_sample.h): greedy, top-k, top-p, min-p, seeds, non-finite logits.
#include <gtest/gtest.h>
#include <cmath>
#include <limits>
#include <random>
#include <vector>
extern "C" {
#include "nc_err.h"
#include "nc_sample.h"
}

struct Sampler {
  nc_sampler *s = nullptr;
  explicit Sampler(int v) { EXPECT_EQ(nc_sampler_create(v, &s), NC_OK); }
  ~Sampler() { nc_sampler_free(s); }
};

static nc_sampling params(float t, int k, float p = 1.0f, float minp = 0.0f) {
  nc_sampling sp = {t, k, p, minp};
  return sp;
}

TEST(Sample, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler S(8);
  std::vector<float> l = {0, 3, 1, 3, -2, 0, 0, 2.5};
  int tok = -1;
  ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(0, 0), nullptr, &tok), NC_OK);
  EXPECT_EQ(tok, 1);
}

TEST(Sample, TopK1IsArgmax) {
  Sampler S(100);
  std::vector<float> l(100);
  for (int i = 0; i < 100; i++) l[i] = std::sin(i * 1.7f);
  int best = 0;
  for (int i = 1; i < 100; i++)
    if (l[i] > l[best]) best = i;
  nc_rng r;
  nc_rng_seed(&r, 7);
  for (int i = 0; i < 50; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(1.0f, 1), &r, &tok), NC_OK);
    EXPECT_EQ(tok, best);
  }
}

TEST(Sample, TopKOnlyDrawsFromTheKLargest) {
  Sampler S(1000);
  std::vector<float> l(1000, 0.0f);
  l[10] = 5; l[500] = 4.9f; l[999] = 4.8f; l[3] = 4.7f;
  nc_rng r;
  nc_rng_seed(&r, 1);
  int seen[1000] = {0};
  for (int i = 0; i < 3000; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(1.0f, 3), &r, &tok), NC_OK);
    seen[tok]++;
  }
  EXPECT_GT(seen[10], 0);
  EXPECT_GT(seen[500], 0);
  EXPECT_GT(seen[999], 0);
  EXPECT_EQ(seen[3], 0);
  EXPECT_EQ(seen[10] + seen[500] + seen[999], 3000);
}

// Frequencies follow softmax(l / T) (bounded sample count; loose 5-sigma bounds).
TEST(Sample, FrequenciesFollowSoftmaxWithTemperature) {
  Sampler S(4);
  std::vector<float> l = {1.0f, 2.0f, 0.0f, -1.0f};
  const float T = 0.7f;
  double z = 0, p[4];
  for (int i = 0; i < 4; i++) z += std::exp(l[i] / T);
  for (int i = 0; i < 4; i++) p[i] = std::exp(l[i] / T) / z;
  nc_rng r;
  nc_rng_seed(&r, 42);
  const int N = 20000;
  int cnt[4] = {0};
  for (int i = 0; i < N; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(T, 0), &r, &tok), NC_OK);
    cnt[tok]++;
  }
  for (int i = 0; i < 4; i++) {
    double sd = std::sqrt(N * p[i] * (1 - p[i]));
    EXPECT_NEAR(cnt[i], N * p[i], 5 * sd + 1) << i;
  }
}

TEST(Sample, TopPKeepsSmallestSetReachingMass) {
  Sampler S(4);
  // probabilities at T=1: ~[0.643, 0.237, 0.087, 0.032]
  std::vector<float> l = {3.0f, 2.0f, 1.0f, 0.0f};
  nc_rng r;
  nc_rng_seed(&r, 3);
  int seen[4] = {0};
  for (int i = 0; i < 4000; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(1.0f, 0, 0.85f), &r, &tok), NC_OK);
    seen[tok]++;
  }
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
  EXPECT_EQ(seen[2], 0);
  EXPECT_EQ(seen[3], 0);
  // a tiny top_p is greedy
  for (int i = 0; i < 100; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(1.0f, 0, 1e-6f), &r, &tok), NC_OK);
    EXPECT_EQ(tok, 0);
  }
}

TEST(Sample, MinPDropsUnlikelyTokens) {
  Sampler S(4);
  std::vector<float> l = {3.0f, 2.0f, 1.0f, 0.0f};  // relative probs 1, .37, .135, .05
  nc_rng r;
  nc_rng_seed(&r, 5);
  int seen[4] = {0};
  for (int i = 0; i < 4000; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(1.0f, 0, 1.0f, 0.2f), &r, &tok), NC_OK);
    seen[tok]++;
  }
  EXPECT_GT(seen[1], 0);
  EXPECT_EQ(seen[2], 0);
  EXPECT_EQ(seen[3], 0);
}

TEST(Sample, SameSeedSameTokens) {
  Sampler S(300);
  std::vector<float> l(300);
  for (int i = 0; i < 300; i++) l[i] = std::cos(i * 0.37f) * 3;
  for (auto sp : {params(0.8f, 50), params(1.0f, 0), params(0.6f, 50, 0.9f, 0.05f)}) {
    nc_rng a, b, c;
    nc_rng_seed(&a, 99);
    nc_rng_seed(&b, 99);
    nc_rng_seed(&c, 100);
    std::vector<int> ta, tb, tc;
    for (int i = 0; i < 200; i++) {
      int x, y, z;
      ASSERT_EQ(nc_sampler_sample(S.s, l.data(), sp, &a, &x), NC_OK);
      ASSERT_EQ(nc_sampler_sample(S.s, l.data(), sp, &b, &y), NC_OK);
      ASSERT_EQ(nc_sampler_sample(S.s, l.data(), sp, &c, &z), NC_OK);
      ta.push_back(x); tb.push_back(y); tc.push_back(z);
    }
    EXPECT_EQ(ta, tb);
    EXPECT_NE(ta, tc);
  }
}

TEST(Sample, NonFiniteLogitsAreAnError) {
  Sampler S(4);
  nc_rng r;
  nc_rng_seed(&r, 1);
  int tok = 12345;
  std::vector<float> nan_l = {0, std::numeric_limits<float>::quiet_NaN(), 1, 2};
  std::vector<float> inf_l = {0, 1, std::numeric_limits<float>::infinity(), 2};
  std::vector<float> ninf_l = {0, 1, -std::numeric_limits<float>::infinity(), 2};
  EXPECT_EQ(nc_sampler_sample(S.s, nan_l.data(), params(0, 0), &r, &tok), NC_ERANGE);
  EXPECT_EQ(nc_sampler_sample(S.s, nan_l.data(), params(1, 50), &r, &tok), NC_ERANGE);
  EXPECT_EQ(nc_sampler_sample(S.s, inf_l.data(), params(1, 0), &r, &tok), NC_ERANGE);
  EXPECT_EQ(nc_sampler_sample(S.s, ninf_l.data(), params(0.5f, 2), &r, &tok), NC_ERANGE);
  EXPECT_EQ(tok, 12345);
}

TEST(Sample, BadParametersRejected) {
  Sampler S(4);
  std::vector<float> l = {0, 1, 2, 3};
  nc_rng r;
  nc_rng_seed(&r, 1);
  int tok;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(-0.1f, 0), &r, &tok), NC_EINVAL);
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(nan, 0), &r, &tok), NC_EINVAL);
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(1, -1), &r, &tok), NC_EINVAL);
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(1, 0, 0.0f), &r, &tok), NC_EINVAL);
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(1, 0, 1.5f), &r, &tok), NC_EINVAL);
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(1, 0, 1.0f, 2.0f), &r, &tok), NC_EINVAL);
  EXPECT_EQ(nc_sampler_sample(S.s, l.data(), params(1, 0), nullptr, &tok), NC_EINVAL);
  nc_sampler *bad = nullptr;
  EXPECT_EQ(nc_sampler_create(0, &bad), NC_EINVAL);
  EXPECT_EQ(bad, nullptr);
}

TEST(Sample, TopKLargerThanVocabMeansAll) {
  Sampler S(5);
  std::vector<float> l = {0, 0, 0, 0, 0};
  nc_rng r;
  nc_rng_seed(&r, 11);
  int seen[5] = {0};
  for (int i = 0; i < 2000; i++) {
    int tok;
    ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(1.0f, 200), &r, &tok), NC_OK);
    seen[tok]++;
  }
  for (int i = 0; i < 5; i++) EXPECT_GT(seen[i], 250) << i;
}

// The vectorised greedy scan equals the plain loop (first index of the maximum, NC_ERANGE for
// any non-finite logit) for vocab sizes around its 32-wide blocks, with ties (few distinct
// values, +0 / -0) and a NaN / +inf / -inf placed in the blocks or the tail.
TEST(Sample, GreedyScanMatchesPlainLoop) {
  std::mt19937 g(5);
  const float bad[3] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()};
  for (int V : {1, 7, 31, 32, 33, 63, 64, 95, 100, 1000, 32768}) {
    Sampler S(V);
    for (int trial = 0; trial < 40; trial++) {
      std::vector<float> l(V);
      const int distinct = 1 + trial % 5;
      for (auto &v : l) v = (float)((int)(g() % distinct) - 2) * (trial % 2 ? 1.0f : -0.0f) - 7.0f * (trial % 3 == 0);
      if (trial % 7 == 3) l[g() % V] = 1e30f;
      int want = 0;
      for (int i = 1; i < V; i++)
        if (l[i] > l[want]) want = i;
      int tok = -1;
      ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(0, 0), nullptr, &tok), NC_OK);
      ASSERT_EQ(tok, want) << "V " << V << " trial " << trial;
      const int at = trial % 4 == 0 ? V - 1 : (int)(g() % V);
      l[at] = bad[trial % 3];
      tok = 12345;
      ASSERT_EQ(nc_sampler_sample(S.s, l.data(), params(0, 0), nullptr, &tok), NC_ERANGE) << "V " << V << " at " << at;
      ASSERT_EQ(tok, 12345);
    }
  }
}
