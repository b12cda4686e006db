// Best-fit packing loader (core/nc_loader.h): packing invariants, equality with a plain
// reference implementation of nanochat's algorithm, exact resume, finite sources, state JSON.
#include <gtest/gtest.h>
#include <cstdlib>
#include <cstring>
#include <vector>
extern "C" {
#include "nc_err.h"
#include "nc_loader.h"
}

namespace {
const int32_t BOS = 1000;

// Document i: BOS then len(i)-1 tokens (i % 997, ...). Lengths spread over 2..300.
size_t doc_len(uint64_t i) { return 2 + (size_t)((i * 2654435761u) % 299); }
std::vector<int32_t> make_doc(uint64_t i) {
  std::vector<int32_t> d(doc_len(i));
  d[0] = BOS;
  for (size_t k = 1; k < d.size(); k++) d[k] = (int32_t)((i * 31 + k) % 997);
  return d;
}

struct FakeSource {
  uint64_t next_i = 0;
  uint64_t limit = UINT64_MAX;  // finite sources stop here
  static int next(void *ctx, int32_t **ids, size_t *n, nc_doc_pos *pos) {
    auto *s = (FakeSource *)ctx;
    if (s->next_i >= s->limit) return NC_ENOTFOUND;
    auto d = make_doc(s->next_i);
    *ids = (int32_t *)malloc(d.size() * sizeof(int32_t));
    memcpy(*ids, d.data(), d.size() * sizeof(int32_t));
    *n = d.size();
    *pos = nc_doc_pos{0, s->next_i};
    s->next_i++;
    return NC_OK;
  }
  static int seek(void *ctx, nc_doc_pos p) {
    ((FakeSource *)ctx)->next_i = p.b;
    return NC_OK;
  }
  static nc_doc_pos tell(void *ctx) { return nc_doc_pos{0, ((FakeSource *)ctx)->next_i}; }
  nc_doc_source iface() { return nc_doc_source{this, next, seek, tell}; }
};

// Plain reference of nanochat's bestfit loop (list.pop / min by length, first among equals).
std::vector<std::vector<int32_t>> reference_rows(int nrows, int T, int buffer_size) {
  std::vector<std::vector<int32_t>> buf, rows;
  uint64_t next = 0;
  for (int r = 0; r < nrows; r++) {
    std::vector<int32_t> row;
    while ((int)row.size() < T + 1) {
      while ((int)buf.size() < buffer_size) buf.push_back(make_doc(next++));
      int remaining = T + 1 - (int)row.size();
      int best = -1, best_len = 0;
      for (int i = 0; i < (int)buf.size(); i++)
        if ((int)buf[i].size() <= remaining && (int)buf[i].size() > best_len) { best = i; best_len = (int)buf[i].size(); }
      if (best >= 0) {
        row.insert(row.end(), buf[best].begin(), buf[best].end());
        buf.erase(buf.begin() + best);
      } else {
        int s = 0;
        for (int i = 1; i < (int)buf.size(); i++) if (buf[i].size() < buf[s].size()) s = i;
        row.insert(row.end(), buf[s].begin(), buf[s].begin() + remaining);
        buf.erase(buf.begin() + s);
      }
    }
    rows.push_back(row);
  }
  return rows;
}

struct Loader {
  nc_loader *l = nullptr;
  ~Loader() { nc_loader_free(l); }
};
}  // namespace

TEST(Loader, MatchesReferenceAndInvariants) {
  const int B = 4, T = 128, BUF = 50, STEPS = 20;
  FakeSource src;
  Loader L;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, src.iface(), &L.l), NC_OK);
  auto ref = reference_rows(B * STEPS, T, BUF);
  std::vector<int32_t> in(B * T), tg(B * T);
  for (int s = 0; s < STEPS; s++) {
    ASSERT_EQ(nc_loader_next(L.l, in.data(), tg.data()), NC_OK);
    for (int b = 0; b < B; b++) {
      const auto &row = ref[s * B + b];
      EXPECT_EQ(in[b * T], BOS) << "row must start with BOS";
      for (int t = 0; t < T; t++) {
        ASSERT_EQ(in[b * T + t], row[t]) << s << " " << b << " " << t;
        ASSERT_EQ(tg[b * T + t], row[t + 1]) << s << " " << b << " " << t;
      }
    }
  }
  uint64_t placed, cropped;
  nc_loader_stats(L.l, &placed, &cropped);
  EXPECT_EQ(placed, (uint64_t)B * STEPS * (T + 1));  // no padding: every slot holds a doc token
  EXPECT_GT(cropped, 0u);
}

TEST(Loader, RowsAreWholeDocsPlusOneCroppedTail) {
  const int T = 64;
  FakeSource src;
  Loader L;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{1, T, 20}, src.iface(), &L.l), NC_OK);
  std::vector<int32_t> in(T), tg(T);
  for (int s = 0; s < 30; s++) {
    ASSERT_EQ(nc_loader_next(L.l, in.data(), tg.data()), NC_OK);
    std::vector<int32_t> row(in);
    row.push_back(tg[T - 1]);
    // split the row at BOS tokens: every segment but the last must be a complete document
    std::vector<size_t> starts;
    for (size_t i = 0; i < row.size(); i++) if (row[i] == BOS) starts.push_back(i);
    ASSERT_FALSE(starts.empty());
    EXPECT_EQ(starts[0], 0u);
    for (size_t k = 0; k + 1 < starts.size(); k++) {
      size_t len = starts[k + 1] - starts[k];
      bool matches_some_doc = false;
      // a complete document has content (i*31+k)%997 for k>=1; recover i from its length family
      for (uint64_t i = 0; i < 2000 && !matches_some_doc; i++) {
        if (doc_len(i) != len) continue;
        auto d = make_doc(i);
        matches_some_doc = std::equal(d.begin(), d.end(), row.begin() + starts[k]);
      }
      EXPECT_TRUE(matches_some_doc) << "segment " << k << " of step " << s << " is not a whole document";
    }
  }
}

TEST(Loader, ResumeIsExact) {
  const int B = 2, T = 100, BUF = 30;
  std::vector<int32_t> in(B * T), tg(B * T);
  FakeSource s1;
  Loader a;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s1.iface(), &a.l), NC_OK);
  for (int i = 0; i < 7; i++) ASSERT_EQ(nc_loader_next(a.l, in.data(), tg.data()), NC_OK);
  nc_loader_state st;
  ASSERT_EQ(nc_loader_save(a.l, &st), NC_OK);
  char *json = nc_loader_state_to_json(&st);
  ASSERT_NE(json, nullptr);
  nc_loader_state st2;
  ASSERT_EQ(nc_loader_state_from_json(json, &st2), NC_OK);
  free(json);
  EXPECT_EQ(st2.n_buffered, st.n_buffered);
  nc_loader_state_free(&st);

  FakeSource s2;  // a fresh source, as after a process restart
  Loader b;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, BUF}, s2.iface(), &b.l), NC_OK);
  ASSERT_EQ(nc_loader_restore(b.l, &st2), NC_OK);
  nc_loader_state_free(&st2);
  std::vector<int32_t> in2(B * T), tg2(B * T);
  for (int i = 0; i < 10; i++) {
    ASSERT_EQ(nc_loader_next(a.l, in.data(), tg.data()), NC_OK);
    ASSERT_EQ(nc_loader_next(b.l, in2.data(), tg2.data()), NC_OK);
    ASSERT_EQ(in, in2) << "batch " << i;
    ASSERT_EQ(tg, tg2) << "batch " << i;
  }
}

TEST(Loader, FiniteSourceRunsOut) {
  FakeSource src;
  src.limit = 10;
  Loader L;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{1, 64, 4}, src.iface(), &L.l), NC_OK);
  std::vector<int32_t> in(64), tg(64);
  int ok = 0, rc;
  while ((rc = nc_loader_next(L.l, in.data(), tg.data())) == NC_OK && ok < 1000) ok++;
  EXPECT_EQ(rc, NC_ENOTFOUND);
  EXPECT_GT(ok, 0);
  EXPECT_LT(ok, 50);
}

TEST(Loader, BadConfigAndStateRejected) {
  FakeSource src;
  nc_loader *l = nullptr;
  EXPECT_EQ(nc_loader_create(nc_loader_cfg{0, 8, 4}, src.iface(), &l), NC_EINVAL);
  EXPECT_EQ(nc_loader_create(nc_loader_cfg{1, 0, 4}, src.iface(), &l), NC_EINVAL);
  EXPECT_EQ(nc_loader_create(nc_loader_cfg{1, 8, 0}, src.iface(), &l), NC_EINVAL);
  nc_doc_source bad = src.iface();
  bad.seek = nullptr;
  EXPECT_EQ(nc_loader_create(nc_loader_cfg{1, 8, 4}, bad, &l), NC_EINVAL);
  nc_loader_state st;
  EXPECT_EQ(nc_loader_state_from_json("{", &st), NC_EINVAL);
  EXPECT_EQ(nc_loader_state_from_json("{\"next\":[1],\"buffered\":[]}", &st), NC_EINVAL);
  EXPECT_EQ(nc_loader_state_from_json("{\"next\":[1,2],\"buffered\":[[1,-2]]}", &st), NC_EINVAL);
  EXPECT_EQ(nc_loader_state_from_json("{\"next\":[1,2],\"next\":[1,2],\"buffered\":[]}", &st), NC_EINVAL);
  ASSERT_EQ(nc_loader_state_from_json("{\"next\":[1,2],\"buffered\":[[3,4]]}", &st), NC_OK);
  EXPECT_EQ(st.n_buffered, 1u);
  EXPECT_EQ(st.buffered[0].b, 4u);
  nc_loader_state_free(&st);
}
