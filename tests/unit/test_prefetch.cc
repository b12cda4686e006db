// The loader on a prefetch thread (core/nc_prefetch.h): the same batches as the loader
// alone, a per-batch state that resumes a fresh loader exactly after that batch (although the
// producer ran ahead), errors after the ready batches, stop while the producer waits, bad input.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "nc_err.h"
#include "nc_loader.h"
#include "nc_prefetch.h"
}

namespace {
const int32_t BOS = 500;

struct Src {  // documents i = BOS, then (i*7+k) % 499, lengths 2..120
  uint64_t i = 0, limit = UINT64_MAX;
  static size_t len(uint64_t i) { return 2 + (size_t)((i * 2654435761u) % 119); }
  static int next(void *ctx, int32_t **ids, size_t *n, nc_doc_pos *pos) {
    Src *s = (Src *)ctx;
    if (s->i >= s->limit) return NC_ENOTFOUND;
    size_t L = len(s->i);
    *ids = (int32_t *)malloc(L * sizeof(int32_t));
    (*ids)[0] = BOS;
    for (size_t k = 1; k < L; k++) (*ids)[k] = (int32_t)((s->i * 7 + k) % 499);
    *n = L;
    *pos = nc_doc_pos{0, s->i++};
    return NC_OK;
  }
  static int seek(void *ctx, nc_doc_pos p) {
    ((Src *)ctx)->i = p.b;
    return NC_OK;
  }
  static nc_doc_pos tell(void *ctx) { return nc_doc_pos{0, ((Src *)ctx)->i}; }
  nc_doc_source iface() { return nc_doc_source{this, next, seek, tell}; }
};

const int B = 3, T = 50, BUF = 16;

std::vector<std::vector<int32_t>> direct(int n, uint64_t limit = UINT64_MAX) {
  Src s;
  s.limit = limit;
  nc_loader *l;
  EXPECT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s.iface(), &l), NC_OK);
  std::vector<std::vector<int32_t>> out;
  std::vector<int32_t> in(B * T), tg(B * T);
  for (int k = 0; k < n && nc_loader_next(l, in.data(), tg.data()) == NC_OK; k++) {
    std::vector<int32_t> both(in);
    both.insert(both.end(), tg.begin(), tg.end());
    out.push_back(both);
  }
  nc_loader_free(l);
  return out;
}
}  // namespace

TEST(Prefetch, SameBatchesAndExactStatePerBatch) {
  const int N = 30;
  auto want = direct(N + 10);
  Src s;
  nc_loader *l;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s.iface(), &l), NC_OK);
  nc_prefetch *p;
  ASSERT_EQ(nc_prefetch_start(l, B, T, 4, &p), NC_OK);
  std::vector<int32_t> in(B * T), tg(B * T);
  nc_loader_state st = {};
  nc_loader_state saved = {};
  for (int k = 0; k < N; k++) {
    ASSERT_EQ(nc_prefetch_next(p, in.data(), tg.data(), &st), NC_OK);
    std::vector<int32_t> both(in);
    both.insert(both.end(), tg.begin(), tg.end());
    ASSERT_EQ(both, want[k]) << "batch " << k;
    if (k == 17) {  // keep the state after batch 17 (the producer is up to 4 batches further)
      char *j = nc_loader_state_to_json(&st);
      ASSERT_EQ(nc_loader_state_from_json(j, &saved), NC_OK);
      free(j);
    }
  }
  nc_prefetch_stop(p);
  nc_loader_free(l);
  nc_loader_state_free(&st);
  // a fresh loader restored from that state continues with batch 18
  Src s2;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s2.iface(), &l), NC_OK);
  ASSERT_EQ(nc_loader_restore(l, &saved), NC_OK);
  nc_loader_state_free(&saved);
  ASSERT_EQ(nc_prefetch_start(l, B, T, 2, &p), NC_OK);
  for (int k = 18; k < N + 10; k++) {
    ASSERT_EQ(nc_prefetch_next(p, in.data(), tg.data(), nullptr), NC_OK);
    std::vector<int32_t> both(in);
    both.insert(both.end(), tg.begin(), tg.end());
    ASSERT_EQ(both, want[k]) << "resumed batch " << k;
  }
  nc_prefetch_stop(p);
  nc_loader_free(l);
}

TEST(Prefetch, ErrorComesAfterTheReadyBatchesAndSticks) {
  const uint64_t LIMIT = 40;
  auto want = direct(1000, LIMIT);
  ASSERT_GT(want.size(), 3u);
  Src s;
  s.limit = LIMIT;
  nc_loader *l;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s.iface(), &l), NC_OK);
  nc_prefetch *p;
  ASSERT_EQ(nc_prefetch_start(l, B, T, 8, &p), NC_OK);
  std::vector<int32_t> in(B * T), tg(B * T);
  size_t got = 0;
  int rc;
  while ((rc = nc_prefetch_next(p, in.data(), tg.data(), nullptr)) == NC_OK) got++;
  EXPECT_EQ(rc, NC_ENOTFOUND);
  EXPECT_EQ(got, want.size());
  EXPECT_EQ(nc_prefetch_next(p, in.data(), tg.data(), nullptr), NC_ENOTFOUND);
  nc_prefetch_stop(p);
  nc_loader_free(l);
}

TEST(Prefetch, StopWhileFullAndBadArguments) {
  Src s;
  nc_loader *l;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s.iface(), &l), NC_OK);
  nc_prefetch *p = nullptr;
  EXPECT_EQ(nc_prefetch_start(nullptr, B, T, 2, &p), NC_EINVAL);
  EXPECT_EQ(nc_prefetch_start(l, 0, T, 2, &p), NC_EINVAL);
  EXPECT_EQ(nc_prefetch_start(l, B, T, 0, &p), NC_EINVAL);
  EXPECT_EQ(nc_prefetch_start(l, B, T, 65, &p), NC_EINVAL);
  ASSERT_EQ(nc_prefetch_start(l, B, T, 3, &p), NC_OK);
  std::vector<int32_t> in(B * T), tg(B * T);
  ASSERT_EQ(nc_prefetch_next(p, in.data(), tg.data(), nullptr), NC_OK);
  EXPECT_EQ(nc_prefetch_next(p, nullptr, tg.data(), nullptr), NC_EINVAL);
  nc_prefetch_stop(p);  // the producer is blocked on a full ring: stop must not hang
  nc_prefetch_stop(nullptr);
  nc_loader_free(l);
}
