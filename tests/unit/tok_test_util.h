// tok_test_util.h — helpers shared by the tokenizer tests.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "nc_err.h"
#include "nc_tok_internal.h"
#include "nc_tokenizer.h"
}

namespace toktest {

inline std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string shakespeare() {
  static std::string s = read_file(std::string(NC_SHARED_DATA) + "/tinyshakespeare/input.txt");
  return s;
}

// Ranks 0..255 = the single bytes (identity), then `extra`; pointers stay valid while `extra` does.
struct Ranks {
  std::vector<const uint8_t *> toks;
  std::vector<uint32_t> lens;
  explicit Ranks(const std::vector<std::string> &extra = {}) {
    static uint8_t bytes[256];
    for (int i = 0; i < 256; i++) {
      bytes[i] = (uint8_t)i;
      toks.push_back(bytes + i);
      lens.push_back(1);
    }
    for (auto &e : extra) {
      toks.push_back((const uint8_t *)e.data());
      lens.push_back((uint32_t)e.size());
    }
  }
  int32_t n() const { return (int32_t)toks.size(); }
};

// A tokenizer of Ranks(extra) with the given pattern (NULL = nanochat) and nanochat's specials
// after the ranks (when `specials`).
inline nc_tokenizer *make_tok(const std::vector<std::string> &extra, const char *pattern = nullptr,
                              bool specials = true, nc_tok_dialect d = NC_TOK_DIALECT_RUST) {
  Ranks r(extra);
  std::vector<nc_tok_special> sp;
  if (specials)
    for (int i = 0; i < NC_TOK_N_SPECIALS_NANOCHAT; i++)
      sp.push_back({NC_TOK_SPECIALS_NANOCHAT[i], strlen(NC_TOK_SPECIALS_NANOCHAT[i]), r.n() + i});
  nc_tokenizer *t = nullptr;
  char msg[256];
  int rc = nc_tok_create(pattern, d, r.toks.data(), r.lens.data(), r.n(), sp.data(), (int)sp.size(), &t,
                         msg, sizeof msg);
  EXPECT_EQ(rc, NC_OK) << msg;
  return t;
}

// Documents from a vector of strings.
struct Docs {
  std::vector<std::string> v;
  size_t i = 0;
  static int next(void *ctx, const char **text, size_t *len) {
    Docs *d = (Docs *)ctx;
    if (d->i >= d->v.size()) return 0;
    *text = d->v[d->i].data();
    *len = d->v[d->i].size();
    d->i++;
    return 1;
  }
};

// Splits `s` into documents at blank lines.
inline std::vector<std::string> paragraphs(const std::string &s, size_t max_bytes = SIZE_MAX) {
  std::vector<std::string> out;
  size_t pos = 0, used = 0;
  while (pos < s.size() && used < max_bytes) {
    size_t e = s.find("\n\n", pos);
    if (e == std::string::npos) e = s.size();
    else e += 2;
    out.push_back(s.substr(pos, e - pos));
    used += e - pos;
    pos = e;
  }
  return out;
}

inline nc_tokenizer *train(const std::vector<std::string> &docs, int vocab, int threads = 1,
                           nc_tok_train_stats *st = nullptr, const char *pattern = nullptr) {
  Docs d{docs};
  nc_tok_train_opts o{};
  o.vocab_size = vocab;
  o.threads = threads;
  o.pattern = pattern;
  nc_tokenizer *t = nullptr;
  char msg[256];
  int rc = nc_tok_train(&o, Docs::next, &d, &t, st, msg, sizeof msg);
  EXPECT_EQ(rc, NC_OK) << msg;
  return t;
}

// A tokenizer trained on the first 300 KB of tinyshakespeare (vocab 1024), built once.
inline const nc_tokenizer *shakes_tok() {
  static nc_tokenizer *t = train(paragraphs(shakespeare(), 300000), 1024);
  return t;
}

inline std::vector<int32_t> enc(const nc_tokenizer *t, const std::string &s, int flags = 0) {
  std::vector<int32_t> ids(s.size() + 2);
  long n = nc_tok_encode(t, s.data(), s.size(), flags, ids.data(), ids.size());
  EXPECT_GE(n, 0) << nc_strerror((int)n);
  ids.resize(n < 0 ? 0 : (size_t)n);
  return ids;
}

inline std::string dec(const nc_tokenizer *t, const std::vector<int32_t> &ids, bool raw = false) {
  long n = raw ? nc_tok_decode_bytes(t, ids.data(), ids.size(), nullptr, 0)
               : nc_tok_decode(t, ids.data(), ids.size(), nullptr, 0);
  EXPECT_GE(n, 0);
  std::string s((size_t)(n < 0 ? 0 : n), '\0');
  long m = raw ? nc_tok_decode_bytes(t, ids.data(), ids.size(), &s[0], s.size())
               : nc_tok_decode(t, ids.data(), ids.size(), &s[0], s.size());
  EXPECT_EQ(m, n);
  return s;
}

// The regex chunks of `s` (internal splitter).
inline std::vector<std::string> chunks(const nc_tokenizer *t, const std::string &s) {
  nc_tok_ctx c;
  EXPECT_EQ(nc_tok__ctx_init(t, &c), NC_OK);
  std::vector<std::string> out;
  size_t pos = 0, ms, me;
  for (;;) {
    int rc = nc_tok__next_chunk(t, &c, (const uint8_t *)s.data(), s.size(), &pos, &ms, &me);
    EXPECT_GE(rc, 0);
    if (rc <= 0) break;
    out.push_back(s.substr(ms, me - ms));
  }
  nc_tok__ctx_free(&c);
  return out;
}

// Deterministic pseudo-random numbers (splitmix64).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return (uint32_t)(next() % n); }
};

// Random valid UTF-8: a mix of ASCII words, whitespace runs, digits, accents, CJK, emoji.
inline std::string random_text(Rng &r, size_t n) {
  static const char *pieces[] = {"the", " cat", "'s", " ", "  ", "\n", "\r\n", "\t", "123", "9",
                                 "é", "e\xcc\x81", "日本語", "🙂", "👍🏽", "<|bos|>", "!!", "...",
                                 "\xc2\xa0", "\xe2\x80\xa8", "Ω", "ß", "ǅ", "\xef\xbb\xbf", "\xc2\x85",
                                 "x", "QUICK", "don't", "WE'LL", "١٢٣", "\xf0\x9d\x9f\x98"};
  std::string s;
  while (s.size() < n) s += pieces[r.below(sizeof pieces / sizeof pieces[0])];
  return s;
}

}  // namespace toktest
