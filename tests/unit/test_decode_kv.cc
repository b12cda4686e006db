// bf16 KV caches (nc_kvcache_create_ex, core/nc_model.h) in the decoder (core/nc_decode.h):
// chunked prefill into a bf16 cache gives the same function as one prefill; the accuracy of
// bf16 keys/values against fp32 ones (documented check, numbers in README); a step may mix
// fp32 and bf16 caches and every row stays bit-identical to decoding it alone; cache copies
// and the API's refusals (bad dtype, dtype mismatch, nc_model_forward_cached on bf16).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "decode_test_util.h"
#include "model_test_util.h"

extern "C" {
#include "nc_decode.h"
#include "nc_err.h"
#include "nc_model.h"
}

namespace {

using Fixture = nct::ModelFixture;

using nct::Cache;
using nct::Dec;

// 3 layers, windows S/S/L with sequence_len 32 (short windows of 8 slide during the test).
nc_model_config cfg_small() { return nct::tiny(3, 64, 2, 32, 96, "SSL", 6); }

TEST(DecodeKv, CreateAndCopyRules) {
  Fixture f(cfg_small());
  nc_kvcache *c = (nc_kvcache *)0x1;
  EXPECT_EQ(nc_kvcache_create_ex(f.m, 1, 8, (nc_kv_dtype)2, &c), NC_EINVAL);
  EXPECT_EQ(c, nullptr);
  ASSERT_EQ(nc_kvcache_create_ex(f.m, 1, 8, NC_KV_BF16, &c), NC_OK);
  EXPECT_EQ(c->dtype, NC_KV_BF16);
  EXPECT_EQ(c->k, nullptr);
  EXPECT_EQ(c->v, nullptr);
  EXPECT_NE(c->k16, nullptr);
  EXPECT_NE(c->v16, nullptr);
  nc_kvcache_free(c);
  Cache a(f.m, 20, NC_KV_BF16), b(f.m, 20, NC_KV_BF16), w(f.m, 20, NC_KV_F32);
  Dec d(f.m, NC_DECODE_F32, 2, 16, 20);
  const int V = f.cfg.vocab_size;
  std::vector<int32_t> ids = nct::random_ids(12, V, 8);
  ASSERT_EQ(nc_decoder_prefill(d.d, a.c, ids.data(), 10, nullptr), NC_OK);
  EXPECT_EQ(nc_kvcache_copy(w.c, a.c), NC_EINVAL);  // element types differ
  EXPECT_EQ(nc_kvcache_copy(a.c, w.c), NC_EINVAL);
  ASSERT_EQ(nc_kvcache_copy(b.c, a.c), NC_OK);
  EXPECT_EQ(b.c->seqlens[0], 10);
  nc_kvcache *rows[2] = {a.c, b.c};
  int32_t next[2] = {ids[10], ids[10]};
  std::vector<float> lg(2 * V);
  ASSERT_EQ(nc_decoder_step(d.d, rows, next, 2, lg.data()), NC_OK);
  EXPECT_EQ(0, memcmp(lg.data(), lg.data() + V, sizeof(float) * V));
  // the training model's cached forward reads fp32 caches only
  Cache x(f.m, 20, NC_KV_BF16);
  EXPECT_EQ(nc_model_forward_cached(f.m, x.c, ids.data(), 1, 4, lg.data(), 1), NC_EINVAL);
  EXPECT_EQ(x.c->seqlens[0], 0);
}

// Prefill in chunks of every size (GEMV chunks of <= 8 tokens, sgemm chunks above; windows
// shorter than the prompt) then decode: the logits follow the fp32 full forward within the
// bf16-cache tolerance, and every chunking agrees with the one-chunk prefill much more closely.
TEST(DecodeKv, ChunkedPrefillIntoBf16CacheIsOneFunction) {
  omp_set_num_threads(2);
  Fixture f(cfg_small());
  const int T = 30, P = 20, V = f.cfg.vocab_size;
  std::vector<int32_t> ids = nct::random_ids(T, V, 3);
  std::vector<float> full = f.full_logits(ids);
  Dec d(f.m, NC_DECODE_F32, 1, P, T);
  std::vector<std::vector<float>> runs;
  for (int chunk : {P, 1, 3, 7, 9, 16}) {
    Cache kc(f.m, T, NC_KV_BF16);
    std::vector<float> lg(V), all;
    for (int t = 0; t < P; t += chunk) {
      int n = std::min(chunk, P - t);
      ASSERT_EQ(nc_decoder_prefill(d.d, kc.c, &ids[t], n, lg.data()), NC_OK);
      EXPECT_LT(nct::rel_err(lg.data(), &full[(size_t)(t + n - 1) * V], V), 2e-2) << "chunk " << chunk << " at " << t;
    }
    all.insert(all.end(), lg.begin(), lg.end());
    for (int t = P; t < T; t++) {
      nc_kvcache *rows[1] = {kc.c};
      ASSERT_EQ(nc_decoder_step(d.d, rows, &ids[t], 1, lg.data()), NC_OK);
      EXPECT_LT(nct::rel_err(lg.data(), &full[(size_t)t * V], V), 2e-2) << "position " << t;
      all.insert(all.end(), lg.begin(), lg.end());
    }
    runs.push_back(all);
  }
  for (size_t i = 1; i < runs.size(); i++)
    EXPECT_LT(nct::rel_err(runs[i].data(), runs[0].data(), (int64_t)runs[0].size()), 5e-3) << "run " << i;
}

// The documented accuracy check of bf16 keys/values: the same decoder (fp32 weights, so only
// the cache differs), teacher-forced over the same tokens with an fp32 and a bf16 cache.
TEST(DecodeKv, Bf16CacheAccuracyAgainstFp32Cache) {
  omp_set_num_threads(2);
  nc_model_config c = nct::tiny(4, 128, 8, 64, 512, "SSSL", 16);
  Fixture f(c, 5);
  const int V = c.vocab_size, P = 8, N = 56;
  Dec d(f.m, NC_DECODE_F32, 1, 16, 64);
  const nct::Agreement r = nct::compare_decoding(f.m, V, d.d, NC_KV_F32, d.d, NC_KV_BF16, P, N);
  const double max_diff = r.max_diff;
  const int agree = r.agree, total = r.total;
  printf("bf16 KV cache vs fp32 cache: max |logit diff| %.4f, argmax agreement %d/%d\n", max_diff,
         agree, total);
  EXPECT_GT(max_diff, 0.0);  // the caches really differ
  EXPECT_LT(max_diff, 0.25);
  EXPECT_GE(agree, total * 9 / 10);
}

// One step may carry fp32 and bf16 caches (the engine never mixes them, the decoder allows it):
// each row is bit-identical to the same row decoded alone with its own cache type. head_dim 16
// runs the AVX-512 bf16 attention on CPUs that have it, head_dim 24 the 8-lane one.
TEST(DecodeKv, MixedCachesInOneStepBitIdenticalToAlone) {
 nc_model_config d24 = nct::tiny(2, 48, 1, 32, 96, "SL", 6);  // head_dim 24: the 8-lane kernels
 d24.n_head = 2;
 for (nc_model_config cfg : {cfg_small(), d24}) {
  Fixture f(cfg);
  const int V = f.cfg.vocab_size, R = 4, tmax = 32, steps = 5;
  Dec d(f.m, nc_decoder_fastest_weights(f.m), 4, 16, tmax);
  std::vector<std::vector<int32_t>> seq;
  for (int r = 0; r < R; r++) seq.push_back(nct::random_ids(5 + 2 * r + steps, V, 60 + r));
  auto kv_of = [](int r) { return r % 2 ? NC_KV_BF16 : NC_KV_F32; };
  std::vector<std::vector<float>> alone(R);
  omp_set_num_threads(1);
  for (int r = 0; r < R; r++) {
    Cache kc(f.m, tmax, kv_of(r));
    ASSERT_EQ(nc_decoder_prefill(d.d, kc.c, seq[r].data(), 5 + 2 * r, nullptr), NC_OK);
    for (int s = 0; s < steps; s++) {
      std::vector<float> lg(V);
      nc_kvcache *rows[1] = {kc.c};
      ASSERT_EQ(nc_decoder_step(d.d, rows, &seq[r][5 + 2 * r + s], 1, lg.data()), NC_OK);
      alone[r].insert(alone[r].end(), lg.begin(), lg.end());
    }
  }
  omp_set_num_threads(2);
  std::vector<Cache *> caches;
  for (int r = 0; r < R; r++) {
    caches.push_back(new Cache(f.m, tmax, kv_of(r)));
    ASSERT_EQ(nc_decoder_prefill(d.d, caches[r]->c, seq[r].data(), 5 + 2 * r, nullptr), NC_OK);
  }
  for (int s = 0; s < steps; s++) {
    std::vector<nc_kvcache *> rows;
    std::vector<int32_t> ids;
    for (int r = 0; r < R; r++) {
      rows.push_back(caches[r]->c);
      ids.push_back(seq[r][5 + 2 * r + s]);
    }
    std::vector<float> lg((size_t)R * V);
    ASSERT_EQ(nc_decoder_step(d.d, rows.data(), ids.data(), R, lg.data()), NC_OK);
    for (int r = 0; r < R; r++)
      ASSERT_EQ(0, memcmp(&lg[(size_t)r * V], &alone[r][(size_t)s * V], sizeof(float) * V))
          << "head_dim " << cfg.n_embd / cfg.n_head << " row " << r << " step " << s;
  }
  for (auto *c : caches) delete c;
 }
}

}  // namespace
