// nc_model_config: depth rule, parameter counts and FLOPs against the numbers in
// specs/nanochat.md §2.2 (computed from the pinned nanochat GPT), windows, VE layers,
// validation limits (faults.md row 29) and the JSON form of nanochat's meta model_config.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "nc_err.h"
#include "nc_model_config.h"
#include "nc_model_layout.h"
}

namespace {

nc_model_config depth(int d, int seq = 2048, int vocab = 32768) {
  nc_model_config c;
  char msg[128];
  EXPECT_EQ(nc_model_config_from_depth(d, 64, 128, seq, vocab, &c, msg, sizeof msg), NC_OK) << msg;
  return c;
}

struct Row {
  int d, C, H;
  long long total, scaling;
  int ve_layers;
  double flops;
};

// specs/nanochat.md §2.2 (vocab 32768, T = 2048, SSSL)
const Row kTable[] = {
    {4, 256, 2, 36700242LL, 11534384LL, 2, 8.02e7},
    {6, 384, 3, 73531538LL, 23199852LL, 3, 1.68e8},
    {12, 768, 6, 286261730LL, 110100912LL, 6, 7.60e8},
    {20, 1280, 10, 896533746LL, 435160240LL, 10, 2.89e9},
    {24, 1536, 12, 1384122122LL, 729810624LL, 12, 4.78e9},
    {26, 1664, 13, 1681786938LL, 918423532LL, 13, 5.99e9},
    {32, 2048, 16, 2818575450LL, 1677724672LL, 16, 1.08e10},
};

TEST(ModelConfig, DepthTableShapesParamsFlops) {
  for (const Row &r : kTable) {
    nc_model_config c = depth(r.d);
    EXPECT_EQ(c.n_embd, r.C) << r.d;
    EXPECT_EQ(c.n_head, r.H) << r.d;
    EXPECT_EQ(c.n_kv_head, r.H) << r.d;
    EXPECT_EQ(nc_model_config_head_dim(&c), 128);
    EXPECT_STREQ(c.window_pattern, "SSSL");
    nc_param_counts p = nc_model_config_param_counts(&c);
    EXPECT_EQ(p.total, r.total) << r.d;
    EXPECT_EQ(p.scaling, r.scaling) << r.d;
    int ve = 0;
    for (int i = 0; i < c.n_layer; i++) ve += nc_model_config_has_ve(&c, i);
    EXPECT_EQ(ve, r.ve_layers) << r.d;
    double f = (double)nc_model_config_flops_per_token(&c);
    EXPECT_NEAR(f / r.flops, 1.0, 0.006) << r.d << " flops " << f;
  }
}

TEST(ModelConfig, FlopsExactD4) {
  // 6 * (36,700,242 - wte 8,388,608 - VE 16,777,216 - scalars 34) + 12*2*128*(3*512 + 2048)
  nc_model_config c = depth(4);
  EXPECT_EQ(nc_model_config_flops_per_token(&c), 6LL * 11534384 + 3072LL * (3 * 512 + 2048));
}

TEST(ModelConfig, FlopsPerfAnchorT512FullWindows) {
  // specs/perf.md: 75.5 M / 153.4 M / 276.8 M FLOPs/token at T=512 with window pattern L
  const double want[] = {75.5e6, 153.4e6, 276.8e6};
  const int ds[] = {4, 6, 8};
  for (int i = 0; i < 3; i++) {
    nc_model_config c = depth(ds[i], 512);
    strcpy(c.window_pattern, "L");
    EXPECT_NEAR((double)nc_model_config_flops_per_token(&c) / want[i], 1.0, 0.001) << ds[i];
  }
}

TEST(ModelConfig, WindowsSSSLLastLayerFull) {
  nc_model_config c = depth(12);
  // S = ceil(2048/4/128)*128 = 512; layers 3, 7, 11 are L; last layer forced L
  for (int i = 0; i < 12; i++) {
    int want = (i % 4 == 3 || i == 11) ? 2048 : 512;
    EXPECT_EQ(nc_model_config_window(&c, i), want) << i;
  }
  c.sequence_len = 1000;  // floor(1000/4)=250 -> ceil(250/128)*128 = 256
  EXPECT_EQ(nc_model_config_window(&c, 0), 256);
  c.sequence_len = 512;
  EXPECT_EQ(nc_model_config_window(&c, 0), 128);
  c.short_window = 7;  // explicit override for tiny test models
  EXPECT_EQ(nc_model_config_window(&c, 0), 7);
  EXPECT_EQ(nc_model_config_window(&c, 11), 512);
  strcpy(c.window_pattern, "sl");  // lower case accepted (nanochat upper-cases)
  EXPECT_EQ(nc_model_config_window(&c, 0), 7);
  EXPECT_EQ(nc_model_config_window(&c, 1), 512);
  EXPECT_EQ(nc_model_config_window(&c, 2), 7);
}

TEST(ModelConfig, ValueEmbeddingLayersAlternateEndingAtLast) {
  nc_model_config c = depth(4);
  EXPECT_FALSE(nc_model_config_has_ve(&c, 0));
  EXPECT_TRUE(nc_model_config_has_ve(&c, 1));
  EXPECT_FALSE(nc_model_config_has_ve(&c, 2));
  EXPECT_TRUE(nc_model_config_has_ve(&c, 3));
  c.n_layer = 3;
  EXPECT_TRUE(nc_model_config_has_ve(&c, 0));
  EXPECT_FALSE(nc_model_config_has_ve(&c, 1));
  EXPECT_TRUE(nc_model_config_has_ve(&c, 2));
  EXPECT_EQ(nc_model_config_backout_layer(&c), 1);
}

TEST(ModelConfig, PaddedVocab) {
  nc_model_config c = depth(4, 2048, 100);
  EXPECT_EQ(nc_model_config_padded_vocab(&c), 128);
  c.vocab_size = 128;
  EXPECT_EQ(nc_model_config_padded_vocab(&c), 128);
  c.vocab_size = 65;
  EXPECT_EQ(nc_model_config_padded_vocab(&c), 128);
}

TEST(ModelConfig, DepthRuleRoundsUpToHeadDim) {
  nc_model_config c;
  ASSERT_EQ(nc_model_config_from_depth(3, 64, 128, 512, 1000, &c, nullptr, 0), NC_OK);
  EXPECT_EQ(c.n_embd, 256);  // ceil(192/128)*128
  EXPECT_EQ(c.n_head, 2);
  ASSERT_EQ(nc_model_config_from_depth(2, 32, 16, 16, 64, &c, nullptr, 0), NC_OK);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(nc_model_config_from_depth(0, 64, 128, 512, 1000, &c, nullptr, 0), NC_EINVAL);
  EXPECT_EQ(nc_model_config_from_depth(1000, 64, 128, 512, 1000, &c, nullptr, 0), NC_EINVAL);
  EXPECT_EQ(nc_model_config_from_depth(4, 64, 0, 512, 1000, &c, nullptr, 0), NC_EINVAL);
  EXPECT_EQ(nc_model_config_from_depth(4, 64, 7, 512, 1000, &c, nullptr, 0), NC_EINVAL);
}

void expect_invalid(nc_model_config c, const char *needle) {
  char msg[160] = {0};
  EXPECT_EQ(nc_model_config_validate(&c, msg, sizeof msg), NC_EINVAL) << needle;
  EXPECT_NE(std::string(msg).find(needle), std::string::npos) << msg;
  nc_model_layout lay;
  EXPECT_EQ(nc_model_layout_compute(&c, &lay), NC_EINVAL);
}

TEST(ModelConfig, ValidateRejectsAbsurdConfigs) {
  nc_model_config ok = depth(4);
  EXPECT_EQ(nc_model_config_validate(&ok, nullptr, 0), NC_OK);
  nc_model_config c = ok;
  c.n_layer = 1000000000;
  expect_invalid(c, "n_layer");
  c = ok; c.n_layer = 0; expect_invalid(c, "n_layer");
  c = ok; c.n_layer = 257; expect_invalid(c, "n_layer");
  c = ok; c.vocab_size = 2147483647; expect_invalid(c, "vocab_size");
  c = ok; c.vocab_size = (1 << 20) + 1; expect_invalid(c, "vocab_size");
  c = ok; c.n_embd = 250; expect_invalid(c, "even");  // 250 / 2 heads = 125: odd head_dim
  c = ok; c.n_embd = 255; expect_invalid(c, "divisible");
  c = ok; c.n_head = 0; expect_invalid(c, "n_head");
  c = ok; c.n_kv_head = 0; expect_invalid(c, "n_kv_head");
  c = ok; c.n_kv_head = 3; expect_invalid(c, "n_kv_head");
  c = ok; c.n_head = 4; c.n_kv_head = 3; expect_invalid(c, "n_kv_head");
  c = ok; c.sequence_len = 65537; expect_invalid(c, "sequence_len");
  c = ok; c.sequence_len = 1; expect_invalid(c, "sequence_len");
  c = ok; c.n_embd = 16; c.n_head = 1; c.n_kv_head = 1; expect_invalid(c, "n_embd");
  c = ok; c.n_embd = 1 << 20; expect_invalid(c, "n_embd");
  c = ok; c.n_embd = 2048 * 2; c.n_head = 2; c.n_kv_head = 2; expect_invalid(c, "head_dim");
  c = ok; c.window_pattern[0] = 0; expect_invalid(c, "empty");
  c = ok; strcpy(c.window_pattern, "SXL"); expect_invalid(c, "invalid char");
  c = ok; memset(c.window_pattern, 'S', sizeof c.window_pattern); expect_invalid(c, "NUL");
  c = ok; c.short_window = -1; expect_invalid(c, "short_window");
  EXPECT_EQ(nc_model_config_validate(nullptr, nullptr, 0), NC_EINVAL);
}

TEST(ModelConfig, JsonRoundTripUsesNanochatKeys) {
  nc_model_config c = depth(6);
  char *s = nc_model_config_to_json_string(&c);
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(s,
               "{\"sequence_len\":2048,\"vocab_size\":32768,\"n_layer\":6,\"n_head\":3,"
               "\"n_kv_head\":3,\"n_embd\":384,\"window_pattern\":\"SSSL\"}");
  nc_model_config d;
  ASSERT_EQ(nc_model_config_from_json_string(s, strlen(s), &d, nullptr, 0), NC_OK);
  EXPECT_EQ(memcmp(&c, &d, sizeof c), 0);
  free(s);
  c.short_window = 4;
  s = nc_model_config_to_json_string(&c);
  EXPECT_NE(std::string(s).find("\"short_window\":4"), std::string::npos);
  ASSERT_EQ(nc_model_config_from_json_string(s, strlen(s), &d, nullptr, 0), NC_OK);
  EXPECT_EQ(d.short_window, 4);
  free(s);
}

TEST(ModelConfig, JsonMissingWindowPatternMeansL) {
  const char *j =
      "{\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,"
      "\"n_embd\":64,\"extra_key\":true}";
  nc_model_config c;
  ASSERT_EQ(nc_model_config_from_json_string(j, strlen(j), &c, nullptr, 0), NC_OK);
  EXPECT_STREQ(c.window_pattern, "L");
  EXPECT_EQ(c.short_window, 0);
}

TEST(ModelConfig, JsonRejectsBadInput) {
  nc_model_config c;
  char msg[160];
  const char *bad[] = {
      "",
      "[]",
      "{",
      "{\"sequence_len\":512}",
      "{\"sequence_len\":\"512\",\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64}",
      "{\"sequence_len\":512.5,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64}",
      "{\"sequence_len\":512,\"vocab_size\":4294967296,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64}",
      "{\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":1000000000,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64}",
      "{\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":3,\"n_kv_head\":3,\"n_embd\":64}",
      "{\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64,\"window_pattern\":7}",
      "{\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64,\"window_pattern\":\"\"}",
      "{\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64,\"window_pattern\":\"S\\u0000L\"}",
      "{\"sequence_len\":512,\"sequence_len\":512,\"vocab_size\":1000,\"n_layer\":2,\"n_head\":2,\"n_kv_head\":2,\"n_embd\":64}",
  };
  for (const char *j : bad) {
    EXPECT_EQ(nc_model_config_from_json_string(j, strlen(j), &c, msg, sizeof msg), NC_EINVAL) << j;
  }
  EXPECT_EQ(nc_model_config_from_json_string(nullptr, 0, &c, msg, sizeof msg), NC_EINVAL);
}

TEST(ModelConfig, LayoutCoversEveryParameterOnce) {
  nc_model_config c = depth(4, 2048, 1000);
  c.n_kv_head = 1;
  nc_model_layout lay;
  ASSERT_EQ(nc_model_layout_compute(&c, &lay), NC_OK);
  EXPECT_EQ(lay.total, nc_model_config_param_counts(&c).total);
  // 4 scalars + wte + 4 layers * 6 + 2 ve_gates + lm_head + smear_gate + 2 value embeds
  EXPECT_EQ(lay.n_tensors, 4 + 1 + 24 + 2 + 1 + 1 + 2);
  // c_q, c_k, c_v adjacent (fused QKV weight)
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(lay.layer[i].c_k, lay.layer[i].c_q + 256 * 256);
    EXPECT_EQ(lay.layer[i].c_v, lay.layer[i].c_k + 128 * 256);
  }
  EXPECT_EQ(lay.resid_lambdas, 0);
  EXPECT_EQ(lay.layer[3].value_embed + 1024 * 128, lay.total);
}

}  // namespace
