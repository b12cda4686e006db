// BPE training (nc_tok_train): rustbpe's merge order on handcrafted cases, agreement with a
// naive reference trainer (recount everything every merge), determinism across thread counts,
// exact vocab sizes, every rank reproduced by encoding its bytes, doc cap / char budget,
// invalid UTF-8, early stop, cancellation and bad options.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "tok_test_util.h"

using namespace toktest;

static nc_tokenizer *train_opts(const std::vector<std::string> &docs, nc_tok_train_opts o,
                                nc_tok_train_stats *st = nullptr, int *rc_out = nullptr) {
  Docs d{docs};
  nc_tokenizer *t = nullptr;
  char msg[256] = "";
  int rc = nc_tok_train(&o, Docs::next, &d, &t, st, msg, sizeof msg);
  if (rc_out) *rc_out = rc;
  else EXPECT_EQ(rc, NC_OK) << msg;
  return t;
}

static std::string tok_str(const nc_tokenizer *t, int32_t id) {
  size_t n;
  const uint8_t *p = nc_tok_token(t, id, &n);
  return p ? std::string((const char *)p, n) : std::string("<none>");
}

static nc_tok_train_opts no_specials(int vocab) {
  nc_tok_train_opts o{};
  static const char *none[1] = {nullptr};
  o.vocab_size = vocab;
  o.specials = none;
  o.n_specials = 0;
  return o;
}

TEST(TokTrain, TiesGoToTheSmallestPair) {
  nc_tokenizer *t = train_opts({"ab cd"}, no_specials(259));
  ASSERT_TRUE(t);
  EXPECT_EQ(nc_tok_vocab_size(t), 259);
  EXPECT_EQ(tok_str(t, 256), " c");  // (32, 99) < (97, 98) < (99, 100), all count 1
  EXPECT_EQ(tok_str(t, 257), "ab");  // (97, 98) < (256, 100)
  EXPECT_EQ(tok_str(t, 258), " cd");
  nc_tok_free(t);
}

TEST(TokTrain, HighestWeightedCountFirst) {
  // chunks "xy" x1, " xy" x2, " ab" x2: (x,y) = 3 wins, then ties of 2 in pair order
  nc_tokenizer *t = train_opts({"xy xy xy ab ab"}, no_specials(260));
  ASSERT_TRUE(t);
  EXPECT_EQ(tok_str(t, 256), "xy");
  EXPECT_EQ(tok_str(t, 257), " a");
  EXPECT_EQ(tok_str(t, 258), " xy");
  EXPECT_EQ(tok_str(t, 259), " ab");
  nc_tok_free(t);
}

TEST(TokTrain, OverlappingPairsAndEarlyStop) {
  nc_tok_train_stats st;
  nc_tokenizer *t = train_opts({"aaaa"}, no_specials(300), &st);
  ASSERT_TRUE(t);
  EXPECT_EQ(st.merges, 2);  // aa, then aa+aa; then no pair is left
  EXPECT_EQ(nc_tok_vocab_size(t), 258);
  EXPECT_EQ(tok_str(t, 256), "aa");
  EXPECT_EQ(tok_str(t, 257), "aaaa");
  nc_tok_free(t);
  t = train_opts({"aaa"}, no_specials(300));
  EXPECT_EQ(tok_str(t, 256), "aa");
  EXPECT_EQ(tok_str(t, 257), "aaa");  // [aa, a]
  nc_tok_free(t);
  // with nanochat's specials they follow the last rank
  nc_tok_train_opts o{};
  o.vocab_size = 1000;
  t = train_opts({"aaaa"}, o);
  EXPECT_EQ(nc_tok_vocab_size(t), 258 + 9);
  EXPECT_EQ(nc_tok_special_id(t, "<|bos|>", 7), 258);
  EXPECT_EQ(nc_tok_special_id(t, "<|output_end|>", 14), 266);
  nc_tok_free(t);
}

// The naive trainer: recount every pair after every merge (rustbpe's semantics without the
// incremental bookkeeping). Returns the bytes of ids 256...
static std::vector<std::string> reference_train(const std::vector<std::string> &docs, int n_merges) {
  nc_tokenizer *sp = make_tok({});
  std::map<std::string, int64_t> counts;
  for (auto &d : docs)
    for (auto &c : chunks(sp, d)) counts[c]++;
  nc_tok_free(sp);
  std::vector<std::vector<uint32_t>> words;
  std::vector<int64_t> wc;
  for (auto &kv : counts) {
    words.emplace_back(kv.first.begin(), kv.first.end());
    for (auto &x : words.back()) x &= 0xFF;
    wc.push_back(kv.second);
  }
  std::vector<std::string> tokbytes(256);
  for (int i = 0; i < 256; i++) tokbytes[i] = std::string(1, (char)i);
  for (int m = 0; m < n_merges; m++) {
    std::unordered_map<uint64_t, int64_t> pc;
    for (size_t w = 0; w < words.size(); w++)
      for (size_t i = 0; i + 1 < words[w].size(); i++) pc[((uint64_t)words[w][i] << 32) | words[w][i + 1]] += wc[w];
    uint64_t best = 0;
    int64_t bc = 0;
    for (auto &kv : pc)
      if (kv.second > bc || (kv.second == bc && kv.first < best)) {
        best = kv.first;
        bc = kv.second;
      }
    if (bc <= 0) break;
    uint32_t a = (uint32_t)(best >> 32), b = (uint32_t)best, z = 256 + m;
    tokbytes.push_back(tokbytes[a] + tokbytes[b]);
    for (auto &w : words) {
      std::vector<uint32_t> o;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          o.push_back(z);
          i += 2;
        } else {
          o.push_back(w[i++]);
        }
      }
      w.swap(o);
    }
  }
  return std::vector<std::string>(tokbytes.begin() + 256, tokbytes.end());
}

TEST(TokTrain, AgreesWithNaiveReference) {
  std::vector<std::string> docs = paragraphs(shakespeare().substr(100000), 60000);
  Rng r(3);
  for (int i = 0; i < 40; i++) docs.push_back(random_text(r, 200));  // unicode, \r\n, digits
  const int merges = 300;
  std::vector<std::string> want = reference_train(docs, merges);
  ASSERT_EQ(want.size(), (size_t)merges);
  nc_tok_train_opts o = no_specials(256 + merges);
  o.doc_cap = UINT64_MAX;
  for (int threads : {1, 2}) {
    o.threads = threads;
    nc_tokenizer *t = train_opts(docs, o);
    ASSERT_TRUE(t);
    ASSERT_EQ(nc_tok_n_ranks(t), 256 + merges);
    for (int k = 0; k < merges; k++) ASSERT_EQ(tok_str(t, 256 + k), want[k]) << "merge " << k;
    nc_tok_free(t);
  }
}

TEST(TokTrain, DeterministicAcrossThreadsAndRuns) {
  std::vector<std::string> docs = paragraphs(shakespeare(), 400000);
  std::string files[3];
  int threads[3] = {1, 2, 2};
  for (int i = 0; i < 3; i++) {
    nc_tokenizer *t = train(docs, 2048, threads[i]);
    ASSERT_TRUE(t);
    std::string p = std::string(NC_BINARY_DIR) + "/tok_train_det_" + std::to_string(getpid()) + "_" + std::to_string(i);
    ASSERT_EQ(nc_tok_save(t, p.c_str(), nullptr, 0), NC_OK);
    files[i] = read_file(p);
    unlink(p.c_str());
    nc_tok_free(t);
  }
  EXPECT_FALSE(files[0].empty());
  EXPECT_EQ(files[0], files[1]);
  EXPECT_EQ(files[1], files[2]);
}

TEST(TokTrain, VocabExactAndEveryRankReproduced) {
  nc_tok_train_stats st;
  std::vector<std::string> docs = paragraphs(shakespeare());
  nc_tokenizer *t = train(docs, 4096, 2, &st);
  ASSERT_TRUE(t);
  EXPECT_EQ(nc_tok_vocab_size(t), 4096);
  EXPECT_EQ(nc_tok_n_ranks(t), 4096 - 9);
  EXPECT_EQ(st.merges, 4096 - 9 - 256);
  EXPECT_EQ(st.docs, docs.size());
  EXPECT_EQ(st.bytes, shakespeare().size());
  EXPECT_EQ(st.duplicate_tokens, 0);
  EXPECT_GT(st.unique_chunks, 10000u);
  nc_special_ids sp;
  ASSERT_EQ(nc_tok_nanochat_specials(t, &sp), NC_OK);
  EXPECT_EQ(sp.bos, 4087);
  int checked_text = 0;
  for (int32_t r = 256; r < nc_tok_n_ranks(t); r++) {
    std::string b = tok_str(t, r);
    std::vector<uint32_t> ids(b.size()), work(NC_TOK_WORK(b.size()));
    size_t n = nc_tok__bpe_ref(t, (const uint8_t *)b.data(), b.size(), ids.data(), work.data());
    ASSERT_EQ(n, 1u) << "rank " << r;
    ASSERT_EQ(ids[0], (uint32_t)r);
    if (nc_tok_utf8_valid(b.data(), b.size()) && chunks(t, b).size() == 1) {
      ASSERT_EQ(enc(t, b), std::vector<int32_t>{r});
      checked_text++;
    }
  }
  EXPECT_GT(checked_text, 3000);
  // round trip on text it has not seen
  std::string held = "Friends, Romans, countrymen, lend me your ears; 2024 \xf0\x9f\x99\x82\r\n";
  EXPECT_EQ(dec(t, enc(t, held)), held);
  nc_tok_free(t);
}

TEST(TokTrain, DocCapAndCharBudget) {
  nc_tok_train_stats st;
  nc_tok_train_opts o = no_specials(300);
  o.doc_cap = 5;
  nc_tokenizer *t = train_opts({"abcdefghij", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"}, o, &st);
  ASSERT_TRUE(t);
  EXPECT_EQ(st.chars, 10u);  // 5 code points of each
  EXPECT_EQ(st.bytes, 5u + 10u);
  for (int32_t r = 256; r < nc_tok_n_ranks(t); r++) EXPECT_EQ(tok_str(t, r).find('f'), std::string::npos);
  nc_tok_free(t);
  // the budget: the document that crosses it is the last one used
  o = no_specials(300);
  o.max_chars = 15;
  t = train_opts({"0123456789", "abcdefghij", "KLMNOPQRST"}, o, &st);
  ASSERT_TRUE(t);
  EXPECT_EQ(st.docs, 2u);
  EXPECT_EQ(st.chars, 20u);
  nc_tok_free(t);
}

TEST(TokTrain, InvalidUtf8BecomesReplacement) {
  nc_tok_train_stats st;
  nc_tokenizer *t = train_opts({"ab\xff\xfe" "cd", "\xe2\x82"}, no_specials(270), &st);
  ASSERT_TRUE(t);
  EXPECT_EQ(st.invalid_bytes, 4u);
  EXPECT_EQ(st.bytes, 4u + 3 * 3u);
  bool has_fffd = false;
  for (int32_t r = 256; r < nc_tok_n_ranks(t); r++) has_fffd |= tok_str(t, r).find("\xef\xbf\xbd") != std::string::npos;
  EXPECT_TRUE(has_fffd);
  nc_tok_free(t);
}

static int fail_after_two(void *ctx, const char **text, size_t *len) {
  int *n = (int *)ctx;
  if ((*n)++ >= 2) return NC_EIO;
  *text = "hello world";
  *len = 11;
  return 1;
}

static int cancel_now(void *, int32_t, int32_t) { return 1; }

TEST(TokTrain, ErrorsAndCancel) {
  int rc;
  nc_tok_train_opts o{};
  o.vocab_size = 100;
  EXPECT_EQ(train_opts({"x"}, o, nullptr, &rc), nullptr);
  EXPECT_EQ(rc, NC_EINVAL);
  o.vocab_size = 264;  // 256 + 9 specials do not fit
  train_opts({"x"}, o, nullptr, &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  o.vocab_size = NC_TOK_MAX_VOCAB + 1;
  train_opts({"x"}, o, nullptr, &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  o = nc_tok_train_opts{};
  o.pattern = "(";
  train_opts({"x"}, o, nullptr, &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  o = nc_tok_train_opts{};
  int n = 0;
  nc_tokenizer *t = nullptr;
  char msg[128];
  EXPECT_EQ(nc_tok_train(&o, fail_after_two, &n, &t, nullptr, msg, sizeof msg), NC_EIO);
  EXPECT_EQ(t, nullptr);
  o.progress = cancel_now;
  std::vector<std::string> docs = paragraphs(shakespeare(), 100000);
  train_opts(docs, o, nullptr, &rc);
  EXPECT_EQ(rc, NC_ECANCELED);
  EXPECT_EQ(nc_tok_train(nullptr, Docs::next, nullptr, &t, nullptr, msg, sizeof msg), NC_EINVAL);
}

TEST(TokTrain, EmptyCorpusGivesBytesOnly) {
  nc_tok_train_stats st;
  nc_tok_train_opts o{};
  nc_tokenizer *t = train_opts({}, o, &st);
  ASSERT_TRUE(t);
  EXPECT_EQ(st.merges, 0);
  EXPECT_EQ(nc_tok_vocab_size(t), 256 + 9);
  nc_tok_free(t);
}
