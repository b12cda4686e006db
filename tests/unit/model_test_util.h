// model_test_util.h — shared helpers for the model tests (tiny configs, random params,
// random token batches, error metrics). Header-only, C++.
#pragma once

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "nc_err.h"
#include "nc_model.h"
#include "nc_model_config.h"
#include "nc_model_layout.h"
}

namespace nct {

// A tiny config: depth L, width C, head_dim 16 (H = C/16), Hkv kv heads, T, vocab V.
inline nc_model_config tiny(int L, int C, int Hkv, int T, int V, const char *pattern,
                            int short_window) {
  nc_model_config c = nc_model_config_default();
  c.n_layer = L;
  c.n_embd = C;
  c.n_head = C / 16;
  c.n_kv_head = Hkv;
  c.sequence_len = T;
  c.vocab_size = V;
  snprintf(c.window_pattern, sizeof c.window_pattern, "%s", pattern);
  c.short_window = short_window;
  return c;
}

// Random parameters with every tensor non-trivial (unlike nanochat's init, where c_proj is
// zero and gradients of many tensors vanish), so a gradient check exercises every path.
template <typename R>
std::vector<R> random_params(const nc_model_config &cfg, uint64_t seed) {
  nc_model_layout lay;
  nc_model_layout_compute(&cfg, &lay);
  std::vector<R> p((size_t)lay.total);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  double s = 1.0 / std::sqrt((double)cfg.n_embd);
  for (auto &x : p) x = (R)(u(g) * s * 1.5);
  const int L = cfg.n_layer;
  for (int i = 0; i < L; i++) {
    p[lay.resid_lambdas + i] = (R)(1.1 + 0.1 * u(g));
    p[lay.x0_lambdas + i] = (R)(0.2 + 0.1 * u(g));
  }
  p[lay.smear_lambda] = (R)(0.5 + 0.2 * u(g));
  p[lay.backout_lambda] = (R)(0.3 + 0.1 * u(g));
  for (int i = 0; i < 24; i++) p[lay.smear_gate + i] = (R)(0.5 * u(g));
  int64_t Vp = nc_model_config_padded_vocab(&cfg);
  for (int64_t i = 0; i < Vp * cfg.n_embd; i++) {
    p[lay.wte + i] = (R)u(g);
    p[lay.lm_head + i] = (R)(u(g) * 4.0 * s);  // logits of O(1..10): softcap active
  }
  for (int i = 0; i < L; i++) {
    const nc_layer_layout &ly = lay.layer[i];
    if (ly.ve_gate >= 0) {
      for (int j = 0; j < cfg.n_kv_head * 12; j++) p[ly.ve_gate + j] = (R)(0.5 * u(g));
      int64_t kv = nc_model_config_kv_dim(&cfg);
      for (int64_t j = 0; j < Vp * kv; j++) p[ly.value_embed + j] = (R)(u(g) * 0.5);
    }
  }
  return p;
}

inline std::vector<int32_t> random_ids(int n, int V, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int32_t> v(n);
  for (auto &x : v) x = (int32_t)(g() % (uint64_t)V);
  return v;
}

// A model with random_params weights (m == nullptr when creation failed) and its full
// (no-cache) forward, the reference the KV-cache paths are compared with.
struct ModelFixture {
  nc_model_config cfg;
  nc_model *m = nullptr;
  explicit ModelFixture(nc_model_config c, uint64_t seed = 21) : cfg(c) {
    if (nc_model_create(&cfg, &m, nullptr, 0) != NC_OK) {
      m = nullptr;
      return;
    }
    std::vector<double> p = random_params<double>(cfg, seed);
    float *buf = nc_model_param_buffer(m, nullptr);
    for (size_t i = 0; i < p.size(); i++) buf[i] = (float)p[i];
  }
  ~ModelFixture() { nc_model_free(m); }
  ModelFixture(const ModelFixture &) = delete;
  ModelFixture &operator=(const ModelFixture &) = delete;
  // logits [T, V] of one sequence; NaN everywhere if the forward failed
  std::vector<float> full_logits(const std::vector<int32_t> &ids) {
    std::vector<float> lg(ids.size() * cfg.vocab_size);
    if (!m || nc_model_forward(m, ids.data(), nullptr, 1, (int)ids.size(), nullptr, nullptr, lg.data()) != NC_OK)
      std::fill(lg.begin(), lg.end(), NAN);
    return lg;
  }
};

// Names of the tensors in layout order, with their [offset, offset + numel) ranges.
struct Span {
  std::string name;
  int64_t off, n;
};
inline std::vector<Span> spans(const nc_model_config &cfg) {
  nc_model_layout lay;
  nc_model_layout_compute(&cfg, &lay);
  std::vector<Span> s;
  int64_t C = cfg.n_embd, Vp = nc_model_config_padded_vocab(&cfg), KV = nc_model_config_kv_dim(&cfg);
  s.push_back({"resid_lambdas", lay.resid_lambdas, cfg.n_layer});
  s.push_back({"x0_lambdas", lay.x0_lambdas, cfg.n_layer});
  s.push_back({"smear_lambda", lay.smear_lambda, 1});
  s.push_back({"backout_lambda", lay.backout_lambda, 1});
  s.push_back({"transformer.wte.weight", lay.wte, Vp * C});
  for (int i = 0; i < cfg.n_layer; i++) {
    const nc_layer_layout &ly = lay.layer[i];
    std::string p = "transformer.h." + std::to_string(i) + ".";
    s.push_back({p + "attn.c_q.weight", ly.c_q, C * C});
    s.push_back({p + "attn.c_k.weight", ly.c_k, KV * C});
    s.push_back({p + "attn.c_v.weight", ly.c_v, KV * C});
    s.push_back({p + "attn.c_proj.weight", ly.c_proj, C * C});
    if (ly.ve_gate >= 0) s.push_back({p + "attn.ve_gate.weight", ly.ve_gate, cfg.n_kv_head * 12});
    s.push_back({p + "mlp.c_fc.weight", ly.c_fc, 4 * C * C});
    s.push_back({p + "mlp.c_proj.weight", ly.mlp_c_proj, 4 * C * C});
  }
  s.push_back({"lm_head.weight", lay.lm_head, Vp * C});
  s.push_back({"smear_gate.weight", lay.smear_gate, 24});
  for (int i = 0; i < cfg.n_layer; i++)
    if (lay.layer[i].value_embed >= 0)
      s.push_back({"value_embeds." + std::to_string(i) + ".weight", lay.layer[i].value_embed, Vp * KV});
  return s;
}

// max |a - b| / max(max |b|, floor) over a range: a relative error w.r.t. the tensor scale.
template <typename A, typename B>
double rel_err(const A *a, const B *b, int64_t n, double floor_ = 1e-30) {
  double md = 0, mb = 0;
  for (int64_t i = 0; i < n; i++) {
    md = std::max(md, std::fabs((double)a[i] - (double)b[i]));
    mb = std::max(mb, std::fabs((double)b[i]));
  }
  return md / std::max(mb, floor_);
}

}  // namespace nct
