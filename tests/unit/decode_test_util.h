// Shared pieces of the decoder tests (test_decode.cc, test_decode_kv.cc): RAII caches and
// decoders, and the teacher-forced accuracy comparison of two decoding set-ups.
#ifndef NC_DECODE_TEST_UTIL_H
#define NC_DECODE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model_test_util.h"

extern "C" {
#include "nc_decode.h"
#include "nc_err.h"
#include "nc_model.h"
}

namespace nct {

struct Cache {
  nc_kvcache *c = nullptr;
  Cache(nc_model *m, int t, nc_kv_dtype kv = NC_KV_F32) {
    EXPECT_EQ(nc_kvcache_create_ex(m, 1, t, kv, &c), NC_OK);
  }
  ~Cache() { nc_kvcache_free(c); }
};

struct Dec {
  nc_decoder *d = nullptr;
  Dec(nc_model *m, nc_decode_weights w, int rows, int chunk, int t) {
    EXPECT_EQ(nc_decoder_create(m, w, rows, chunk, t, &d), NC_OK);
  }
  ~Dec() { nc_decoder_free(d); }
};

inline int argmax(const float *v, int n) { return (int)(std::max_element(v, v + n) - v); }

struct Agreement {
  double max_diff = 0;  // largest |logit a - logit b| over every step
  int agree = 0, total = 0;  // steps whose argmax agree
};

// Teacher-forced over the same tokens (`seqs` sequences of P prompt + N decoded tokens, seeds
// 100..): decoder `da` with `kva` caches against `db` with `kvb` caches.
inline Agreement compare_decoding(nc_model *m, int V, nc_decoder *da, nc_kv_dtype kva,
                                  nc_decoder *db, nc_kv_dtype kvb, int P, int N, int seqs = 4) {
  Agreement r;
  for (int s = 0; s < seqs; s++) {
    std::vector<int32_t> ids = random_ids(P + N, V, 100 + s);
    Cache a(m, P + N, kva), b(m, P + N, kvb);
    std::vector<float> la(V), lb(V);
    EXPECT_EQ(nc_decoder_prefill(da, a.c, ids.data(), P, la.data()), NC_OK);
    EXPECT_EQ(nc_decoder_prefill(db, b.c, ids.data(), P, lb.data()), NC_OK);
    for (int t = P; t < P + N; t++) {
      nc_kvcache *ra[1] = {a.c}, *rb[1] = {b.c};
      EXPECT_EQ(nc_decoder_step(da, ra, &ids[t], 1, la.data()), NC_OK);
      EXPECT_EQ(nc_decoder_step(db, rb, &ids[t], 1, lb.data()), NC_OK);
      for (int v = 0; v < V; v++) r.max_diff = std::max(r.max_diff, (double)std::fabs(la[v] - lb[v]));
      r.agree += argmax(la.data(), V) == argmax(lb.data(), V);
      r.total++;
    }
  }
  return r;
}

}  // namespace nct

#endif  // NC_DECODE_TEST_UTIL_H
