// Bits per byte (core/nc_eval.h): the formula on handcrafted numbers, and the end-to-end
// evaluation on a tiny model against a direct computation from per-token losses.
#include <gtest/gtest.h>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>
extern "C" {
#include "nc_err.h"
#include "nc_eval.h"
}

TEST(Bpb, FormulaCountsOnlyBytesOfRealTargets) {
  // vocab 4: token 0 = 1 byte, 1 = 3 bytes, 2 = special (0 bytes), 3 = 2 bytes
  int32_t tb[4] = {1, 3, 0, 2};
  float losses[5] = {1.0f, 2.0f, 100.0f, 4.0f, 50.0f};
  int32_t targets[5] = {0, 1, 2, 3, -1};
  nc_bpb_acc acc = {};
  ASSERT_EQ(nc_bpb_add(&acc, losses, targets, 5, tb, 4), NC_OK);
  EXPECT_EQ(acc.bytes, 6u);
  EXPECT_EQ(acc.tokens, 3u);
  EXPECT_DOUBLE_EQ(acc.nats, 7.0);
  EXPECT_NEAR(nc_bpb_value(&acc), 7.0 / (std::log(2.0) * 6.0), 1e-12);
  nc_bpb_acc empty = {};
  EXPECT_TRUE(std::isinf(nc_bpb_value(&empty)));
  int32_t bad[1] = {4};
  EXPECT_EQ(nc_bpb_add(&acc, losses, bad, 1, tb, 4), NC_EINVAL);
  int32_t bad2[1] = {-2};
  EXPECT_EQ(nc_bpb_add(&acc, losses, bad2, 1, tb, 4), NC_EINVAL);
}

namespace {
struct Src {
  uint64_t i = 0;
  static int next(void *c, int32_t **ids, size_t *n, nc_doc_pos *pos) {
    auto *s = (Src *)c;
    size_t len = 5 + (s->i * 7) % 23;
    *ids = (int32_t *)malloc(len * sizeof(int32_t));
    (*ids)[0] = 0;  // BOS
    for (size_t k = 1; k < len; k++) (*ids)[k] = (int32_t)(1 + (s->i * 13 + k * 5) % 60);
    *n = len;
    *pos = nc_doc_pos{0, s->i++};
    return NC_OK;
  }
  static int seek(void *c, nc_doc_pos p) { ((Src *)c)->i = p.b; return NC_OK; }
  static nc_doc_pos tell(void *c) { return nc_doc_pos{0, ((Src *)c)->i}; }
};
}  // namespace

TEST(Bpb, EvalMatchesDirectComputation) {
  nc_model_config cfg = nc_model_config_default();
  cfg.sequence_len = 16;
  cfg.vocab_size = 64;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.n_kv_head = 2;
  cfg.n_embd = 32;
  strcpy(cfg.window_pattern, "L");
  nc_model *m = nullptr;
  char msg[128];
  ASSERT_EQ(nc_model_create(&cfg, &m, msg, sizeof msg), NC_OK) << msg;
  nc_model_init_weights(m, 1);
  std::vector<int32_t> tb(64);
  for (int i = 0; i < 64; i++) tb[i] = i == 0 ? 0 : 1 + i % 4;  // id 0 plays BOS: 0 bytes
  const int B = 2, T = 16, STEPS = 3;

  Src s1, s2;
  nc_loader *l1 = nullptr, *l2 = nullptr;
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, 8}, nc_doc_source{&s1, Src::next, Src::seek, Src::tell}, &l1), NC_OK);
  ASSERT_EQ(nc_loader_create(nc_loader_cfg{B, T, 8}, nc_doc_source{&s2, Src::next, Src::seek, Src::tell}, &l2), NC_OK);
  nc_bpb_acc acc;
  ASSERT_EQ(nc_eval_bpb(m, l1, B, T, STEPS, tb.data(), &acc, nullptr, nullptr), NC_OK);

  double nats = 0, bytes = 0;
  std::vector<int32_t> in(B * T), tg(B * T);
  std::vector<float> losses(B * T);
  for (int s = 0; s < STEPS; s++) {
    ASSERT_EQ(nc_loader_next(l2, in.data(), tg.data()), NC_OK);
    ASSERT_EQ(nc_model_forward(m, in.data(), tg.data(), B, T, nullptr, losses.data(), nullptr), NC_OK);
    for (int i = 0; i < B * T; i++)
      if (tg[i] >= 0 && tb[tg[i]] > 0) { nats += losses[i]; bytes += tb[tg[i]]; }
  }
  EXPECT_NEAR(nc_bpb_value(&acc), nats / (std::log(2.0) * bytes), 1e-9);
  EXPECT_GT(nc_bpb_value(&acc), 0.0);
  nc_loader_free(l1);
  nc_loader_free(l2);
  nc_model_free(m);
}
