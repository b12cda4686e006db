// KV-cache forward (nc_model_forward_cached): prefill and token-by-token decode reproduce the
// full forward's logits, rows at different positions (cache rows copied through the public
// layout, as an engine would after a batch-1 prefill), sliding windows past sequence_len,
// nanochat's smear rule for chunks, and bad input.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "model_test_util.h"

extern "C" {
#include "nc_err.h"
#include "nc_model.h"
}

namespace {

using Fixture = nct::ModelFixture;

nc_model_config cfg_small() { return nct::tiny(3, 64, 2, 32, 96, "SSL", 6); }

TEST(ModelCache, PrefillThenDecodeMatchesFullForward) {
  omp_set_num_threads(2);
  Fixture f(cfg_small());
  const int T = 30, V = f.cfg.vocab_size, P = 9;
  std::vector<int32_t> ids = nct::random_ids(T, V, 3);
  std::vector<float> full = f.full_logits(ids);
  nc_kvcache *kc;
  ASSERT_EQ(nc_kvcache_create(f.m, 1, T, &kc), NC_OK);
  std::vector<float> lg((size_t)P * V);
  ASSERT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 1, P, lg.data(), 0), NC_OK);
  EXPECT_LT(nct::rel_err(lg.data(), full.data(), (int64_t)P * V), 1e-5);
  EXPECT_EQ(kc->seqlens[0], P);
  for (int t = P; t < T; t++) {
    std::vector<float> one(V);
    ASSERT_EQ(nc_model_forward_cached(f.m, kc, &ids[t], 1, 1, one.data(), 1), NC_OK);
    EXPECT_LT(nct::rel_err(one.data(), &full[(size_t)t * V], V), 1e-5) << "position " << t;
  }
  EXPECT_EQ(kc->seqlens[0], T);
  // the cache is full: one more token is rejected and nothing changes
  std::vector<float> one(V);
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, &ids[0], 1, 1, one.data(), 1), NC_EINVAL);
  EXPECT_EQ(kc->seqlens[0], T);
  nc_kvcache_free(kc);
}

TEST(ModelCache, RowsAtDifferentPositionsViaCopiedCacheRows) {
  Fixture f(cfg_small());
  const int V = f.cfg.vocab_size, tmax = 20;
  std::vector<int32_t> x = nct::random_ids(6, V, 4), y = nct::random_ids(10, V, 5);
  nc_kvcache *a, *b, *c;
  ASSERT_EQ(nc_kvcache_create(f.m, 1, tmax, &a), NC_OK);
  ASSERT_EQ(nc_kvcache_create(f.m, 1, tmax, &b), NC_OK);
  ASSERT_EQ(nc_kvcache_create(f.m, 2, tmax, &c), NC_OK);
  std::vector<float> tmp((size_t)10 * V);
  ASSERT_EQ(nc_model_forward_cached(f.m, a, x.data(), 1, 5, tmp.data(), 1), NC_OK);
  ASSERT_EQ(nc_model_forward_cached(f.m, b, y.data(), 1, 9, tmp.data(), 1), NC_OK);
  // layout [n_layer, B, t_max, Hkv, D]: copy row 0 of a -> row 0 of c, row 0 of b -> row 1
  const size_t row = (size_t)tmax * a->Hkv * a->D;
  for (int l = 0; l < f.cfg.n_layer; l++) {
    memcpy(c->k + (size_t)l * 2 * row, a->k + (size_t)l * row, row * sizeof(float));
    memcpy(c->v + (size_t)l * 2 * row, a->v + (size_t)l * row, row * sizeof(float));
    memcpy(c->k + ((size_t)l * 2 + 1) * row, b->k + (size_t)l * row, row * sizeof(float));
    memcpy(c->v + ((size_t)l * 2 + 1) * row, b->v + (size_t)l * row, row * sizeof(float));
  }
  c->seqlens[0] = 5;
  c->seqlens[1] = 9;
  memcpy(c->prev_emb, a->prev_emb, sizeof(float) * f.cfg.n_embd);
  memcpy(c->prev_emb + f.cfg.n_embd, b->prev_emb, sizeof(float) * f.cfg.n_embd);
  c->has_prev[0] = c->has_prev[1] = 1;
  int32_t next[2] = {x[5], y[9]};
  std::vector<float> lg((size_t)2 * V);
  ASSERT_EQ(nc_model_forward_cached(f.m, c, next, 2, 1, lg.data(), 1), NC_OK);
  std::vector<float> fx = f.full_logits(x), fy = f.full_logits(y);
  EXPECT_LT(nct::rel_err(lg.data(), &fx[(size_t)5 * V], V), 1e-5);
  EXPECT_LT(nct::rel_err(lg.data() + V, &fy[(size_t)9 * V], V), 1e-5);
  EXPECT_EQ(c->seqlens[0], 6);
  EXPECT_EQ(c->seqlens[1], 10);
  nc_kvcache_free(a);
  nc_kvcache_free(b);
  nc_kvcache_free(c);
}

TEST(ModelCache, DecodePastSequenceLenSlidesTheWindows) {
  // sequence_len 16: the L layer's window is 16 (FA3 (16, 0)), so positions >= 17 drop keys;
  // decoding must agree with a full forward of the same length (same window semantics)
  nc_model_config c = nct::tiny(2, 32, 2, 16, 64, "SL", 5);
  Fixture f(c);
  const int T = 45, V = 64;
  std::vector<int32_t> ids = nct::random_ids(T, V, 6);
  std::vector<float> full = f.full_logits(ids);
  nc_kvcache *kc;
  ASSERT_EQ(nc_kvcache_create(f.m, 1, T, &kc), NC_OK);
  std::vector<float> one(V);
  for (int t = 0; t < T; t++) {
    ASSERT_EQ(nc_model_forward_cached(f.m, kc, &ids[t], 1, 1, one.data(), 1), NC_OK);
    EXPECT_LT(nct::rel_err(one.data(), &full[(size_t)t * V], V), 1e-5) << t;
  }
  nc_kvcache_free(kc);
}

TEST(ModelCache, ChunkedPrefillFollowsNanochatSmearRule) {
  // nanochat applies the cached previous embedding only when decoding a single token; a
  // multi-token chunk leaves its first position unsmeared. With smear_lambda = 0 (the init
  // value) chunking is exact; with smear_lambda != 0 the chunk's first logits differ.
  Fixture f(cfg_small());
  const int V = f.cfg.vocab_size;
  std::vector<int32_t> ids = nct::random_ids(12, V, 7);
  float *P = nc_model_param_buffer(f.m, nullptr);
  const nc_model_layout *lay = nc_model_get_layout(f.m);
  for (int lam = 0; lam < 2; lam++) {
    P[lay->smear_lambda] = lam ? 0.7f : 0.0f;
    std::vector<float> full = f.full_logits(ids);
    nc_kvcache *kc;
    ASSERT_EQ(nc_kvcache_create(f.m, 1, 12, &kc), NC_OK);
    std::vector<float> a((size_t)5 * V), b((size_t)7 * V);
    ASSERT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 1, 5, a.data(), 0), NC_OK);
    ASSERT_EQ(nc_model_forward_cached(f.m, kc, ids.data() + 5, 1, 7, b.data(), 0), NC_OK);
    EXPECT_LT(nct::rel_err(a.data(), full.data(), 5 * V), 1e-5);
    double e = nct::rel_err(b.data(), &full[(size_t)5 * V], V);
    if (lam == 0) {
      EXPECT_LT(e, 1e-5);
    } else {
      EXPECT_GT(e, 1e-4);
    }
    nc_kvcache_free(kc);
  }
}

TEST(ModelCache, BadInput) {
  Fixture f(cfg_small());
  nc_kvcache *kc = (nc_kvcache *)0x1;
  EXPECT_EQ(nc_kvcache_create(f.m, 0, 10, &kc), NC_EINVAL);
  EXPECT_EQ(kc, nullptr);
  EXPECT_EQ(nc_kvcache_create(f.m, 1, 0, &kc), NC_EINVAL);
  EXPECT_EQ(nc_kvcache_create(f.m, 1, 10 * 32 + 1, &kc), NC_EINVAL);
  EXPECT_EQ(nc_kvcache_create(f.m, 1 << 30, 320, &kc), NC_EINVAL);
  ASSERT_EQ(nc_kvcache_create(f.m, 2, 10, &kc), NC_OK);
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  std::vector<float> lg((size_t)6 * 96);
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 3, 1, lg.data(), 1), NC_EINVAL);  // B > cache B
  ids[1] = 96;
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 2, 1, lg.data(), 1), NC_EINVAL);
  ids[1] = 2;
  std::vector<int32_t> ids11(11, 1);
  std::vector<float> lg11((size_t)11 * 96);
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, ids11.data(), 1, 11, lg11.data(), 0), NC_EINVAL);  // > t_max
  kc->seqlens[1] = -3;
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 2, 1, lg.data(), 1), NC_EINVAL);
  nc_kvcache_reset(kc);
  EXPECT_EQ(kc->seqlens[1], 0);
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 2, 3, lg.data(), 0), NC_OK);
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, nullptr, 2, 1, lg.data(), 1), NC_EINVAL);
  EXPECT_EQ(nc_model_forward_cached(f.m, kc, ids.data(), 2, 1, nullptr, 1), NC_EINVAL);
  // a cache built for another model shape is refused
  nc_model_config other = nct::tiny(2, 64, 2, 32, 96, "L", 0);
  Fixture g(other);
  EXPECT_EQ(nc_model_forward_cached(g.m, kc, ids.data(), 1, 1, lg.data(), 1), NC_EINVAL);
  nc_kvcache_free(kc);
  nc_kvcache_free(nullptr);
}

}  // namespace
