// engine_test_util.h — helpers for the engine tests: a byte-level fake tokenizer (ids 0..255 =
// bytes, specials 256..264 in nanochat's order), a scripted "bigram" model whose greedy output
// follows a given successor table, and a thread-safe collector of engine events.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "model_test_util.h"

extern "C" {
#include "nc_engine.h"
#include "nc_err.h"
#include "nc_model.h"
#include "nc_utf8.h"
}

namespace ect {

enum { BOS = 256, US, UE, AS, AE, PS, PE, OS, OE, NTOK };
inline const nc_special_ids SP = {BOS, US, UE, AS, AE, PS, PE, OS, OE};
inline const char *kNames[] = {"<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>",
                               "<|assistant_end|>", "<|python_start|>", "<|python_end|>",
                               "<|output_start|>", "<|output_end|>"};

inline long tok_encode(void *, const char *text, size_t len, int32_t *out, size_t cap) {
  for (size_t i = 0; i < len && i < cap; i++) out[i] = (unsigned char)text[i];
  return (long)len;
}
inline long tok_decode(void *, const int32_t *ids, size_t n, char *out, size_t cap) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= NTOK) return NC_EINVAL;
    std::string s = ids[i] < 256 ? std::string(1, (char)ids[i]) : std::string(kNames[ids[i] - 256]);
    for (char c : s) {
      if (w < cap) out[w] = c;
      w++;
    }
  }
  return (long)w;
}
inline nc_tok_iface tok() { return nc_tok_iface{nullptr, tok_encode, tok_decode}; }

inline std::vector<int32_t> bytes(const std::string &s) {
  std::vector<int32_t> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}

// A random tiny model (every tensor non-trivial) over the fake tokenizer's vocabulary.
struct RandomModel : nct::ModelFixture {
  explicit RandomModel(int seq = 96, uint64_t seed = 21)
      : nct::ModelFixture(nct::tiny(2, 64, 2, seq, NTOK, "SL", 8), seed) {}
};

// A model whose greedy continuation of token t is succ[t]: blocks are zero (identity), smear and
// backout off, so the final hidden state is u_t = rmsnorm(wte[t]) (random, nearly orthogonal in
// C = 128 dimensions) and lm_head[v] = 12/C * sum of u_t over the t with succ[t] = v.
struct BigramModel {
  nc_model_config cfg;
  nc_model *m = nullptr;
  explicit BigramModel(const std::map<int, int> &succ, int seq = 128) {
    cfg = nct::tiny(1, 128, 8, seq, NTOK, "L", 0);
    EXPECT_EQ(nc_model_create(&cfg, &m, nullptr, 0), NC_OK);
    float *P = nc_model_param_buffer(m, nullptr);
    const nc_model_layout *ly = nc_model_get_layout(m);
    const int C = cfg.n_embd;
    P[ly->resid_lambdas] = 1.0f;
    std::mt19937_64 g(7);
    std::normal_distribution<double> n(0, 1);
    std::vector<std::vector<double>> u(NTOK, std::vector<double>(C));
    for (int t = 0; t < NTOK; t++) {
      double ss = 0;
      for (int c = 0; c < C; c++) {
        double x = n(g);
        P[ly->wte + (int64_t)t * C + c] = (float)x;
        u[t][c] = x;
        ss += x * x;
      }
      double r = 1.0 / std::sqrt(ss / C);
      for (int c = 0; c < C; c++) u[t][c] *= r;
    }
    for (auto [t, v] : succ)
      for (int c = 0; c < C; c++) P[ly->lm_head + (int64_t)v * C + c] += (float)(12.0 / C * u[t][c]);
  }
  ~BigramModel() { nc_model_free(m); }
};

// Successor table of a script (each token must have one successor).
inline std::map<int, int> chain(const std::vector<int> &s) {
  std::map<int, int> m;
  for (size_t i = 0; i + 1 < s.size(); i++) {
    auto it = m.find(s[i]);
    EXPECT_TRUE(it == m.end() || it->second == s[i + 1]) << "token " << s[i] << " has two successors";
    m[s[i]] = s[i + 1];
  }
  return m;
}

// Python's bytes.decode('utf-8', 'replace'): an independent, plain implementation of the
// maximal-subpart rule (one U+FFFD per invalid subpart) used to check nc_utf8.
inline std::string reference_replace(const std::string &s) {
  std::string out;
  size_t i = 0;
  auto cont = [&](size_t k, int lo, int hi) { return k < s.size() && (unsigned char)s[k] >= lo && (unsigned char)s[k] <= hi; };
  while (i < s.size()) {
    unsigned char c = s[i];
    int n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 1) { out += (char)c; i++; continue; }
    if (n == 0) { out += "\xEF\xBF\xBD"; i++; continue; }
    int lo = 0x80, hi = 0xBF;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    size_t k = i + 1;
    bool ok = true;
    for (int j = 1; j < n; j++, k++) {
      if (!cont(k, j == 1 ? lo : 0x80, j == 1 ? hi : 0xBF)) { ok = false; break; }
    }
    if (ok) out += s.substr(i, n);
    else out += "\xEF\xBF\xBD";
    i = ok ? i + n : k;
  }
  return out;
}

struct Done {
  nc_finish finish;
  int error, prompt_tokens, completion_tokens, tool_calls, last;
  std::string message, text;
};

// Collects the events of one request (all samples). Thread-safe; wait() bounds the time.
struct Gen {
  std::mutex mu;
  std::condition_variable cv;
  int samples = 1;
  std::vector<std::vector<int32_t>> tokens, forced;
  std::vector<std::string> text;
  std::vector<Done> done;
  bool finished = false, deltas_valid = true, events_after_last = false;
  int cancel_at = -1;  // the callback returns non-zero when sample 0 has this many tokens
  std::function<void(const nc_gen_event &)> hook;
  explicit Gen(int n = 1) : samples(n), tokens(n), forced(n), text(n), done() {}

  static int cb(void *user, const nc_gen_event *ev) {
    Gen *r = (Gen *)user;
    std::function<void(const nc_gen_event &)> hook;
    int ret = 0;
    {
      std::lock_guard<std::mutex> l(r->mu);
      if (r->finished) r->events_after_last = true;
      std::string delta(ev->text ? ev->text : "", ev->text_len);
      if (!nc_utf8_valid(delta.data(), delta.size())) r->deltas_valid = false;
      r->text[ev->sample] += delta;
      if (ev->kind == NC_GEN_TOKEN) {
        r->tokens[ev->sample].push_back(ev->token);
        r->forced[ev->sample].push_back(ev->forced);
        if (ev->sample == 0 && (int)r->tokens[0].size() == r->cancel_at) ret = 1;
      } else {
        r->done.push_back(Done{ev->finish, ev->error, ev->prompt_tokens, ev->completion_tokens,
                               ev->tool_calls, ev->last, ev->message, std::string(ev->text, ev->text_len)});
      }
      hook = r->hook;
    }
    if (hook) hook(*ev);
    if (ev->kind == NC_GEN_DONE && ev->last) {
      std::lock_guard<std::mutex> l(r->mu);
      r->finished = true;
      r->cv.notify_all();
    }
    return ret;
  }
  bool wait(double seconds = 60) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::duration<double>(seconds), [&] { return finished; });
  }
  size_t ntok(int s = 0) {
    std::lock_guard<std::mutex> l(mu);
    return tokens[s].size();
  }
};

// An engine plus the Gen collectors of its requests: the engine is freed (its callbacks done)
// before the collectors, even when a test returns early.
struct Engine {
  nc_engine *e = nullptr;
  char msg[256] = {0};
  std::vector<std::unique_ptr<Gen>> gens;
  Engine(nc_model *m, int slots, nc_decode_weights w = NC_DECODE_F32, int queue = 16,
         int context = 0, int chunk = 0, nc_engine_kv kv = NC_ENGINE_KV_AUTO) {
    nc_engine_config c = nc_engine_config_default();
    c.slots = slots;
    c.queue_limit = queue;
    c.context = context;
    c.prefill_chunk = chunk;
    c.weights = w;
    c.kv = kv;
    c.tok = tok();
    c.sp = SP;
    EXPECT_EQ(nc_engine_create(m, &c, &e, msg, sizeof msg), NC_OK) << msg;
  }
  ~Engine() { nc_engine_free(e); }
  Gen &gen(int samples = 1) {
    gens.push_back(std::make_unique<Gen>(samples));
    return *gens.back();
  }
  int submit(const std::vector<int32_t> &prompt, const nc_gen_params &p, Gen *r, uint64_t *id = nullptr) {
    return nc_engine_submit(e, prompt.data(), (int)prompt.size(), &p, Gen::cb, r, id, msg, sizeof msg);
  }
};

inline const std::vector<int32_t> kChatPrompt = {BOS, US, 'q', UE, AS};

inline nc_gen_params greedy(int max_tokens, nc_gen_mode mode = NC_GEN_RAW) {
  nc_gen_params p = nc_gen_params_default();
  p.mode = mode;
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0.0f;
  p.tools = 0;
  return p;
}

inline nc_gen_params sampled(int max_tokens, uint64_t seed, nc_gen_mode mode = NC_GEN_RAW) {
  nc_gen_params p = greedy(max_tokens, mode);
  p.sampling.temperature = 1.0f;
  p.sampling.top_k = 40;
  p.seed = seed;
  return p;
}

}  // namespace ect
