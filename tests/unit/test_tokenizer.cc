// Tokenizer (core/nc_tokenizer.h): split pattern, BPE order, specials, buffers, decoding with
// replacement, the streaming decoder, files, bad input. Training has test_tok_train.cc; the
// id-for-id comparison with js-tiktoken (gpt2, cl100k) is tests/parity/test_tokenizer_tiktoken.py.
#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "tok_test_util.h"

using namespace toktest;
using V = std::vector<int32_t>;
using S = std::vector<std::string>;

// ---- split ------------------------------------------------------------------------------------

TEST(TokSplit, NanochatPatternChunks) {
  nc_tokenizer *t = make_tok({});
  EXPECT_EQ(chunks(t, "Hello world's 12345"), (S{"Hello", " world", "'s", " ", "12", "34", "5"}));
  EXPECT_EQ(chunks(t, "x\r\n\r\n  y"), (S{"x", "\r\n\r\n", " ", " y"}));
  EXPECT_EQ(chunks(t, "don't DON'T we'LL you'Ve"), (S{"don", "'t", " DON", "'T", " we", "'LL", " you", "'Ve"}));
  EXPECT_EQ(chunks(t, "1234567"), (S{"12", "34", "56", "7"}));
  EXPECT_EQ(chunks(t, "a...b hello!\n"), (S{"a", "...", "b", " hello", "!\n"}));
  EXPECT_EQ(chunks(t, "🙂🙂 ok   "), (S{"🙂🙂", " ok", "   "}));
  EXPECT_EQ(chunks(t, "日本語のテキスト"), (S{"日本語のテキスト"}));
  EXPECT_EQ(chunks(t, "e\xcc\x81t\xc3\xa9"), (S{"e", "\xcc\x81t\xc3\xa9"}));  // combining mark is Mn
  EXPECT_EQ(chunks(t, "  \n\n\tx"), (S{"  \n\n", "\tx"}));
  EXPECT_EQ(chunks(t, "١٢٣"), (S{"١٢", "٣"}));  // Arabic-Indic digits are \p{N}
  EXPECT_EQ(chunks(t, ""), S{});
  nc_tok_free(t);
}

TEST(TokSplit, WhitespaceDialects) {
  // U+0085 (NEL) is White_Space for Rust (tiktoken), not for JavaScript; U+FEFF the reverse.
  nc_tokenizer *rs = make_tok({}, nullptr, true, NC_TOK_DIALECT_RUST);
  nc_tokenizer *js = make_tok({}, nullptr, true, NC_TOK_DIALECT_JS);
  const std::string nel = "\xc2\x85", bom = "\xef\xbb\xbf";
  EXPECT_EQ(chunks(rs, "a" + nel + nel + "b"), (S{"a", nel, nel + "b"}));
  EXPECT_EQ(chunks(js, "a" + nel + nel + "b"), (S{"a", nel + nel, "b"}));
  EXPECT_EQ(chunks(rs, "a" + bom + bom + "b"), (S{"a", bom + bom, "b"}));
  EXPECT_EQ(chunks(js, "a" + bom + bom + "b"), (S{"a", bom, bom + "b"}));
  // plain spaces agree
  EXPECT_EQ(chunks(rs, "a  b"), chunks(js, "a  b"));
  EXPECT_EQ(nc_tok_get_dialect(js), NC_TOK_DIALECT_JS);
  nc_tok_free(rs);
  nc_tok_free(js);
}

TEST(TokSplit, RewriteKeepsOtherEscapesAndClasses) {
  char *out = nullptr;
  ASSERT_EQ(nc_tok__rewrite_pattern("[\\s\\]x]\\S\\p{L}[^\\s]\\\\s", NC_TOK_DIALECT_RUST, &out, nullptr, 0), NC_OK);
  std::string o(out);
  free(out);
  EXPECT_NE(o.find("[\\x{9}-\\x{d}"), std::string::npos) << o;
  EXPECT_NE(o.find("[^\\x{9}-\\x{d}"), std::string::npos) << o;
  EXPECT_NE(o.find("\\]x]"), std::string::npos) << o;
  EXPECT_NE(o.find("\\p{L}"), std::string::npos) << o;
  EXPECT_EQ(o.substr(o.size() - 3), "\\\\s") << o;  // an escaped backslash then a literal s
  char msg[128];
  EXPECT_EQ(nc_tok__rewrite_pattern("[\\S]", NC_TOK_DIALECT_RUST, &out, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_tok__rewrite_pattern("\\Qx\\E", NC_TOK_DIALECT_RUST, &out, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_tok__rewrite_pattern("[abc", NC_TOK_DIALECT_RUST, &out, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_tok__rewrite_pattern("ab\\", NC_TOK_DIALECT_RUST, &out, msg, sizeof msg), NC_EINVAL);
}

TEST(TokSplit, DollarMatchesOnlyAtTheEnd) {
  // cl100k's newer pattern has \s++$; Rust's $ does not match before a final newline.
  nc_tokenizer *t = make_tok({}, "[a-z]+$|[a-z]|\n");
  EXPECT_EQ(chunks(t, "ab\n"), (S{"a", "b", "\n"}));
  EXPECT_EQ(chunks(t, "ab"), (S{"ab"}));
  nc_tok_free(t);
}

TEST(TokSplit, GapsAreDroppedAndEmptyMatchesSkipped) {
  // like tiktoken's find_iter: text no alternative matches produces no tokens
  nc_tokenizer *t = make_tok({}, "[a-z]+");
  EXPECT_EQ(enc(t, "ab, cd"), (V{'a', 'b', 'c', 'd'}));
  nc_tok_free(t);
  t = make_tok({}, "x*");  // matches empty everywhere except on x runs
  EXPECT_EQ(chunks(t, "axxbx"), (S{"xx", "x"}));
  nc_tok_free(t);
}

TEST(TokSplit, HugeWhitespaceAndLetterRuns) {
  const nc_tokenizer *t = shakes_tok();
  for (std::string fill : {" ", "\n", "a", "7", "\xe2\x80\x83"}) {
    std::string s;
    for (int i = 0; i < (1 << 20); i++) s += fill;
    s += "x y";
    V ids = enc(t, s);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(dec(t, ids), s);
  }
}

// ---- BPE --------------------------------------------------------------------------------------

TEST(TokBpe, LowestRankFirstNotLeftmost) {
  nc_tokenizer *t = make_tok({"bc", "ab"});  // "bc" = 256 has the lower rank
  EXPECT_EQ(enc(t, "abcx"), (V{'a', 256, 'x'}));
  nc_tok_free(t);
  t = make_tok({"ab", "bc"});
  EXPECT_EQ(enc(t, "abcx"), (V{256, 'c', 'x'}));
  nc_tok_free(t);
}

TEST(TokBpe, EqualRanksGoLeftmostAndChainUp) {
  nc_tokenizer *t = make_tok({"aa", "aaaa"});
  EXPECT_EQ(enc(t, "aaa"), (V{256, 'a'}));
  EXPECT_EQ(enc(t, "aaaaa"), (V{257, 'a'}));
  EXPECT_EQ(enc(t, "aaaa"), (V{257}));  // a whole chunk that is a token
  nc_tok_free(t);
}

TEST(TokBpe, ConcatenationRankNotMergeList) {
  // tiktoken merges by the rank of the concatenated bytes: "a"+"bc" -> "abc" although "abc"
  // was (in training) made from "ab"+"c".
  nc_tokenizer *t = make_tok({"bc", "ab", "abc"});
  EXPECT_EQ(enc(t, "abcz"), (V{258, 'z'}));
  nc_tok_free(t);
}

TEST(TokBpe, DuplicateBytesLaterRankWins) {
  nc_tokenizer *t = make_tok({"ab", "ab"});
  EXPECT_EQ(enc(t, "ab"), (V{257}));
  EXPECT_EQ(dec(t, {256, 257}), "abab");
  nc_tok_free(t);
}

TEST(TokBpe, HeapAgreesWithReference) {
  const nc_tokenizer *t = shakes_tok();
  Rng r(7);
  const char alpha[] = "etaoin shrdlu\nETAOIN'.,";
  std::vector<uint32_t> a, b, work;
  for (int it = 0; it < 400; it++) {
    size_t n = 2 + r.below(it < 200 ? 300 : 3000);
    std::string s;
    for (size_t i = 0; i < n; i++) s += r.below(8) ? alpha[r.below(sizeof alpha - 1)] : (char)r.below(256);
    a.assign(n, 0);
    b.assign(n, 0);
    work.assign(NC_TOK_WORK(n), 0);
    size_t na = nc_tok__bpe_ref(t, (const uint8_t *)s.data(), n, a.data(), work.data());
    size_t nb = nc_tok__bpe_heap(t, (const uint8_t *)s.data(), n, b.data(), work.data());
    ASSERT_EQ(na, nb) << it;
    a.resize(na);
    b.resize(nb);
    ASSERT_EQ(a, b) << it;
  }
}

TEST(TokBpe, LongChunksUseTheHeapAndStillRoundTrip) {
  const nc_tokenizer *t = shakes_tok();
  std::string s;
  for (int i = 0; i < 2000; i++) s += "thee";  // one 8000-byte letter chunk
  V ids = enc(t, s);
  EXPECT_LT(ids.size(), s.size());
  EXPECT_EQ(dec(t, ids), s);
  std::vector<uint32_t> ref(s.size()), work(NC_TOK_WORK(s.size()));
  size_t n = nc_tok__bpe_ref(t, (const uint8_t *)s.data(), s.size(), ref.data(), work.data());
  EXPECT_EQ(V(ref.begin(), ref.begin() + n), ids);
}

// ---- encoding ---------------------------------------------------------------------------------

TEST(TokEncode, RoundTripShakespeareAndRandomUnicode) {
  const nc_tokenizer *t = shakes_tok();
  std::string sh = shakespeare();
  V ids = enc(t, sh);
  EXPECT_LT(ids.size(), sh.size() / 2);
  EXPECT_EQ(dec(t, ids), sh);
  Rng r(11);
  for (int i = 0; i < 200; i++) {
    std::string s = random_text(r, r.below(400));
    EXPECT_EQ(dec(t, enc(t, s)), s);
  }
}

TEST(TokEncode, NulBytesAreText) {
  const nc_tokenizer *t = shakes_tok();
  std::string s("a\0b\0\0", 5);
  EXPECT_EQ(dec(t, enc(t, s)), s);
}

TEST(TokEncode, InvalidUtf8IsRejected) {
  const nc_tokenizer *t = shakes_tok();
  int32_t ids[16];
  for (std::string bad : {"a\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "x\x80"}) {
    EXPECT_EQ(nc_tok_encode_ordinary(t, bad.data(), bad.size(), ids, 16), NC_EINVAL);
    EXPECT_EQ(nc_tok_utf8_valid(bad.data(), bad.size()), 0);
  }
  EXPECT_EQ(nc_tok_encode_ordinary(t, nullptr, 3, ids, 16), NC_EINVAL);
  EXPECT_EQ(nc_tok_encode_ordinary(t, "abc", 3, nullptr, 16), NC_EINVAL);
  EXPECT_EQ(nc_tok_encode(t, "abc", 3, 64, ids, 16), NC_EINVAL);  // unknown flag
  EXPECT_EQ(nc_tok_encode_ordinary(t, nullptr, 0, nullptr, 0), 0);
}

TEST(TokEncode, BufferContract) {
  const nc_tokenizer *t = shakes_tok();
  std::string s = "To be, or not to be, that is the question.";
  V all = enc(t, s);
  ASSERT_GT(all.size(), 4u);
  EXPECT_EQ(nc_tok_encode_ordinary(t, s.data(), s.size(), nullptr, 0), (long)all.size());
  V part(3, -7);
  EXPECT_EQ(nc_tok_encode_ordinary(t, s.data(), s.size(), part.data(), 2), (long)all.size());
  EXPECT_EQ(part[0], all[0]);
  EXPECT_EQ(part[1], all[1]);
  EXPECT_EQ(part[2], -7);  // never written past cap
}

TEST(TokEncode, SpecialsOnlyWhenAsked) {
  const nc_tokenizer *t = shakes_tok();
  nc_special_ids sp;
  ASSERT_EQ(nc_tok_nanochat_specials(t, &sp), NC_OK);
  EXPECT_EQ(sp.bos, 1024 - 9);
  EXPECT_EQ(sp.output_end, 1023);
  std::string ps = "<|python_start|>";
  V ord = enc(t, ps);
  EXPECT_GT(ord.size(), 1u);
  for (int32_t id : ord) EXPECT_LT(id, nc_tok_n_ranks(t));
  EXPECT_EQ(dec(t, ord), ps);
  EXPECT_EQ(enc(t, ps, NC_TOK_ALLOW_SPECIAL), (V{sp.python_start}));
  V mixed = enc(t, "hi<|user_start|> there<|bos|><|bos", NC_TOK_ALLOW_SPECIAL);
  V expect = enc(t, "hi");
  expect.push_back(sp.user_start);
  for (int32_t id : enc(t, " there")) expect.push_back(id);
  expect.push_back(sp.bos);
  for (int32_t id : enc(t, "<|bos")) expect.push_back(id);
  EXPECT_EQ(mixed, expect);
  EXPECT_EQ(dec(t, mixed), "hi<|user_start|> there<|bos|><|bos");
  V b = enc(t, "hello", NC_TOK_PREPEND_BOS);
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b[0], sp.bos);
  EXPECT_EQ(V(b.begin() + 1, b.end()), enc(t, "hello"));
  EXPECT_EQ(enc(t, "", NC_TOK_PREPEND_BOS), (V{sp.bos}));
  EXPECT_EQ(nc_tok_special_id(t, "<|assistant_end|>", 17), sp.assistant_end);
  EXPECT_EQ(nc_tok_special_id(t, "<|nope|>", 8), NC_ENOTFOUND);
}

TEST(TokEncode, LeftmostLongestSpecial) {
  Ranks r;
  nc_tok_special sp[] = {{"<a>", 3, 300}, {"<a>b", 4, 301}, {"b<", 2, 302}};
  nc_tokenizer *t = nullptr;
  ASSERT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, r.toks.data(), r.lens.data(), 256, sp, 3, &t, nullptr, 0), NC_OK);
  EXPECT_EQ(nc_tok_vocab_size(t), 302 + 1);
  EXPECT_EQ(enc(t, "x<a>b<a>", NC_TOK_ALLOW_SPECIAL), (V{'x', 301, 300}));
  EXPECT_EQ(nc_tok_encode(t, "x", 1, NC_TOK_PREPEND_BOS, nullptr, 0), NC_ENOTFOUND);
  int32_t ids[2] = {256, 299};  // holes between the ranks and the specials
  char out[8];
  EXPECT_EQ(nc_tok_decode(t, ids, 1, out, 8), NC_EINVAL);
  EXPECT_EQ(nc_tok_decode(t, ids + 1, 1, out, 8), NC_EINVAL);
  nc_tok_free(t);
}

TEST(TokEncode, BatchMatchesSingleAndThreads) {
  const nc_tokenizer *t = shakes_tok();
  std::vector<std::string> texts = paragraphs(shakespeare(), 200000);
  texts.push_back("");
  texts.push_back("<|bos|>x");
  std::vector<const char *> p;
  std::vector<size_t> l;
  size_t bound = 0;
  for (auto &s : texts) {
    p.push_back(s.data());
    l.push_back(s.size());
    bound += s.size() + 1;
  }
  for (int flags : {0, NC_TOK_ALLOW_SPECIAL | NC_TOK_PREPEND_BOS}) {
    for (int threads : {1, 2, 4}) {
      V out(bound);
      std::vector<size_t> off(texts.size() + 1);
      long n = nc_tok_encode_batch(t, p.data(), l.data(), texts.size(), flags, threads, out.data(), out.size(), off.data());
      ASSERT_GE(n, 0);
      ASSERT_EQ((size_t)n, off.back());
      for (size_t i = 0; i < texts.size(); i++)
        ASSERT_EQ(V(out.begin() + off[i], out.begin() + off[i + 1]), enc(t, texts[i], flags)) << i;
      // a buffer that is too small: the total comes back, nothing is written
      V small(8, -3);
      EXPECT_EQ(nc_tok_encode_batch(t, p.data(), l.data(), texts.size(), flags, threads, small.data(), 8, off.data()), n);
      EXPECT_EQ(small, V(8, -3));
      // between the exact total and the bound: second pass path
      V exact((size_t)n);
      EXPECT_EQ(nc_tok_encode_batch(t, p.data(), l.data(), texts.size(), flags, threads, exact.data(), exact.size(), off.data()), n);
      EXPECT_EQ(exact, V(out.begin(), out.begin() + n));
    }
  }
  const char *bad[] = {"ok", "\xff"};
  size_t bl[] = {2, 1};
  size_t off[3];
  int32_t o[8];
  EXPECT_EQ(nc_tok_encode_batch(t, bad, bl, 2, 0, 2, o, 8, off), NC_EINVAL);
  EXPECT_EQ(nc_tok_encode_batch(t, nullptr, nullptr, 0, 0, 1, nullptr, 0, off), 0);
}

struct ThreadArg {
  const nc_tokenizer *t;
  const std::string *s;
  V out;
};

static void *encode_thread(void *p) {
  ThreadArg *a = (ThreadArg *)p;
  for (int i = 0; i < 3; i++) a->out = enc(a->t, *a->s);
  return nullptr;
}

TEST(TokEncode, ConcurrentEncodersAgree) {
  const nc_tokenizer *t = shakes_tok();
  std::string s = shakespeare().substr(0, 200000);
  V want = enc(t, s);
  ThreadArg args[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    args[i] = {t, &s, {}};
    ASSERT_EQ(pthread_create(&th[i], nullptr, encode_thread, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], nullptr);
    EXPECT_EQ(args[i].out, want);
  }
}

TEST(TokEncode, ChatInterface) {
  const nc_tokenizer *t = shakes_tok();
  nc_tok_iface f = nc_tok_chat_iface(t);
  int32_t ids[64];
  long n = f.encode(f.ctx, "<|bos|> hi", 10, ids, 64);
  ASSERT_GT(n, 0);
  EXPECT_EQ(V(ids, ids + n), enc(t, "<|bos|> hi"));
  char out[64];
  EXPECT_EQ(f.decode(f.ctx, ids, (size_t)n, out, sizeof out), 10);
  EXPECT_EQ(std::string(out, 10), "<|bos|> hi");
}

// ---- decoding ---------------------------------------------------------------------------------

// Expected outputs from /usr/bin/python3: bytes.decode("utf-8", "replace").encode().
TEST(TokDecode, ReplacementLikePython) {
  nc_tokenizer *t = make_tok({});
  const char *R = "\xef\xbf\xbd";
  struct {
    std::string in, out;
  } cases[] = {
      {"\xe0\x80", std::string(R) + R},
      {"\xf0\x9f\x98", R},
      {"\xed\xa0\x80", std::string(R) + R + R},
      {"\xc0\xaf", std::string(R) + R},
      {"a\xff" "b", std::string("a") + R + "b"},
      {"\xf4\x90\x80\x80", std::string(R) + R + R + R},
      {"\xe2\x82", R},
      {"\xe2\x82" "a", std::string(R) + "a"},
      {"\xf0\x9f\x98\x80\x80", std::string("\xf0\x9f\x98\x80") + R},
      {"ok \xc3\xa9", "ok \xc3\xa9"},
  };
  for (auto &c : cases) {
    V ids;
    for (unsigned char ch : c.in) ids.push_back(ch);
    EXPECT_EQ(dec(t, ids), c.out);
    EXPECT_EQ(dec(t, ids, true), c.in);
  }
  nc_tok_free(t);
}

TEST(TokDecode, BadIdsAndBuffers) {
  const nc_tokenizer *t = shakes_tok();
  int32_t bad[] = {-1, 1024, 1 << 30};
  char out[16];
  for (int32_t id : bad) {
    EXPECT_EQ(nc_tok_decode(t, &id, 1, out, 16), NC_EINVAL);
    EXPECT_EQ(nc_tok_decode_bytes(t, &id, 1, out, 16), NC_EINVAL);
  }
  V ids = enc(t, "Once more unto the breach");
  long n = nc_tok_decode(t, ids.data(), ids.size(), nullptr, 0);
  EXPECT_EQ(n, 25);
  char small[5] = {'#', '#', '#', '#', '#'};
  EXPECT_EQ(nc_tok_decode(t, ids.data(), ids.size(), small, 4), 25);
  EXPECT_EQ(std::string(small, 4), "Once");
  EXPECT_EQ(small[4], '#');
  EXPECT_EQ(nc_tok_decode(t, nullptr, 2, out, 16), NC_EINVAL);
  EXPECT_EQ(nc_tok_decode(t, nullptr, 0, nullptr, 0), 0);
}

TEST(TokDecode, StreamEqualsDecode) {
  const nc_tokenizer *t = shakes_tok();
  Rng r(5);
  int32_t vocab = nc_tok_vocab_size(t);
  for (int it = 0; it < 300; it++) {
    V ids;
    size_t n = r.below(60);
    if (it % 2) {
      ids = enc(t, random_text(r, n * 3));
    } else {
      for (size_t i = 0; i < n; i++) ids.push_back((int32_t)r.below((uint32_t)vocab));
    }
    std::string want = dec(t, ids), got;
    nc_tok_stream s;
    nc_tok_stream_init(&s);
    size_t i = 0;
    while (i < ids.size()) {
      size_t k = 1 + r.below(3);
      if (i + k > ids.size()) k = ids.size() - i;
      char buf[8192];
      long m = nc_tok_stream_push(t, &s, ids.data() + i, k, buf, sizeof buf);
      ASSERT_GE(m, 0);
      // every push emits complete UTF-8
      ASSERT_TRUE(nc_tok_utf8_valid(buf, (size_t)m));
      got.append(buf, (size_t)m);
      i += k;
    }
    char buf[4];
    long m = nc_tok_stream_flush(&s, buf, sizeof buf);
    ASSERT_GE(m, 0);
    got.append(buf, (size_t)m);
    ASSERT_EQ(got, want) << it;
  }
}

TEST(TokDecode, StreamHoldsIncompleteCharacters) {
  nc_tokenizer *t = make_tok({});
  nc_tok_stream s;
  nc_tok_stream_init(&s);
  char out[16];
  int32_t emoji[] = {0xF0, 0x9F, 0x99, 0x82};  // U+1F642 one byte per token
  for (int i = 0; i < 3; i++) EXPECT_EQ(nc_tok_stream_push(t, &s, emoji + i, 1, out, sizeof out), 0);
  // too small a buffer: the needed size comes back and the stream keeps its state
  EXPECT_EQ(nc_tok_stream_push(t, &s, emoji + 3, 1, out, 3), 4);
  int32_t bad = -5;
  EXPECT_EQ(nc_tok_stream_push(t, &s, &bad, 1, out, sizeof out), NC_EINVAL);
  EXPECT_EQ(nc_tok_stream_push(t, &s, emoji + 3, 1, out, sizeof out), 4);
  EXPECT_EQ(std::string(out, 4), "\xf0\x9f\x99\x82");
  // a cut sequence then an ASCII byte: U+FFFD, then the byte
  EXPECT_EQ(nc_tok_stream_push(t, &s, emoji, 2, out, sizeof out), 0);
  int32_t a = 'a';
  EXPECT_EQ(nc_tok_stream_push(t, &s, &a, 1, out, sizeof out), 4);
  EXPECT_EQ(std::string(out, 4), "\xef\xbf\xbd" "a");
  // flush of a kept prefix
  EXPECT_EQ(nc_tok_stream_push(t, &s, emoji, 1, out, sizeof out), 0);
  EXPECT_EQ(nc_tok_stream_flush(&s, out, 2), 3);
  EXPECT_EQ(nc_tok_stream_flush(&s, out, sizeof out), 3);
  EXPECT_EQ(nc_tok_stream_flush(&s, out, sizeof out), 0);
  nc_tok_free(t);
}

TEST(TokDecode, TokenBytes) {
  const nc_tokenizer *t = shakes_tok();
  std::vector<int32_t> tb(1024);
  ASSERT_EQ(nc_tok_token_bytes(t, tb.data(), tb.size()), NC_OK);
  for (int i = 0; i < 256; i++) EXPECT_EQ(tb[i], 1);
  for (int i = 1015; i < 1024; i++) EXPECT_EQ(tb[i], 0);
  std::string s = "Now is the winter of our discontent";
  V ids = enc(t, s);
  long sum = 0;
  for (int32_t id : ids) sum += tb[id];
  EXPECT_EQ(sum, (long)s.size());
  EXPECT_EQ(nc_tok_token_bytes(t, tb.data(), 1023), NC_EINVAL);
  size_t len;
  EXPECT_EQ(nc_tok_token(t, 1024, &len), nullptr);
  EXPECT_NE(nc_tok_token(t, 1015, &len), nullptr);
  EXPECT_EQ(len, 7u);
}

// ---- creation and files -----------------------------------------------------------------------

TEST(TokCreate, BadInput) {
  Ranks r;
  std::vector<const uint8_t *> &toks = r.toks;
  std::vector<uint32_t> &lens = r.lens;
  nc_tokenizer *t = nullptr;
  char msg[256];
  EXPECT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 255, nullptr, 0, &t, msg, sizeof msg), NC_EINVAL);
  toks[65] = toks[66];  // byte 'A' missing
  EXPECT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 256, nullptr, 0, &t, msg, sizeof msg), NC_EINVAL);
  EXPECT_NE(std::string(msg).find("0x41"), std::string::npos) << msg;
  toks[65] = toks[64] + 1;
  lens[10] = 0;
  EXPECT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 256, nullptr, 0, &t, msg, sizeof msg), NC_EINVAL);
  lens[10] = 1;
  EXPECT_EQ(nc_tok_create("(unclosed", NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 256, nullptr, 0, &t, msg, sizeof msg), NC_EINVAL);
  EXPECT_NE(std::string(msg).find("compile"), std::string::npos) << msg;
  EXPECT_EQ(nc_tok_create("", NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 256, nullptr, 0, &t, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_tok_create(nullptr, (nc_tok_dialect)7, toks.data(), lens.data(), 256, nullptr, 0, &t, msg, sizeof msg), NC_EINVAL);
  nc_tok_special low = {"<|x|>", 5, 100}, sp_space = {"<| x|>", 6, 300}, a = {"<|a|>", 5, 300},
                 same_id = {"<|b|>", 5, 300}, same_text = {"<|a|>", 5, 301}, huge = {"<|h|>", 5, NC_TOK_MAX_VOCAB};
  nc_tok_special pairs[][2] = {{low, a}, {sp_space, a}, {a, same_id}, {a, same_text}, {huge, a}};
  for (auto &p : pairs)
    EXPECT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 256, p, 2, &t, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(t, nullptr);
  EXPECT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, toks.data(), lens.data(), 256, &a, 1, &t, msg, sizeof msg), NC_OK);
  EXPECT_EQ(nc_tok_vocab_size(t), 301);
  nc_tok_free(t);
  nc_tok_free(nullptr);
}

static std::string tmp_path(const char *name) {
  return std::string(NC_BINARY_DIR) + "/tok_test_" + std::to_string(getpid()) + "_" + name;
}

TEST(TokFile, SaveLoadRoundTrip) {
  const nc_tokenizer *t = shakes_tok();
  std::string path = tmp_path("rt.txt");
  char msg[256];
  ASSERT_EQ(nc_tok_save(t, path.c_str(), msg, sizeof msg), NC_OK) << msg;
  nc_tokenizer *u = nullptr;
  ASSERT_EQ(nc_tok_load(path.c_str(), nullptr, -1, &u, msg, sizeof msg), NC_OK) << msg;
  EXPECT_EQ(nc_tok_vocab_size(u), nc_tok_vocab_size(t));
  EXPECT_EQ(nc_tok_n_ranks(u), nc_tok_n_ranks(t));
  EXPECT_STREQ(nc_tok_pattern(u), NC_TOK_PATTERN_NANOCHAT);
  EXPECT_EQ(nc_tok_n_specials(u), 9);
  std::string s = shakespeare().substr(300000, 50000);
  EXPECT_EQ(enc(u, s), enc(t, s));
  std::string text = read_file(path);
  EXPECT_EQ(text.rfind("#nanochat-tokenizer 1\n#pattern '(?i:", 0), 0u);
  EXPECT_NE(text.find("\n#special 1015 <|bos|>\n"), std::string::npos);
  EXPECT_NE(text.find("\nIA== 32\n"), std::string::npos);  // tiktoken rank lines
  // saving again gives the same bytes
  std::string p2 = tmp_path("rt2.txt");
  ASSERT_EQ(nc_tok_save(u, p2.c_str(), msg, sizeof msg), NC_OK);
  EXPECT_EQ(read_file(p2), text);
  nc_tok_free(u);
  unlink(path.c_str());
  unlink(p2.c_str());
  EXPECT_EQ(nc_tok_load(path.c_str(), nullptr, -1, &u, msg, sizeof msg), NC_ENOTFOUND);
  EXPECT_EQ(nc_tok_load("/", nullptr, -1, &u, msg, sizeof msg), NC_EIO);
  EXPECT_EQ(nc_tok_save(t, "/nonexistent-dir/x.txt", msg, sizeof msg), NC_EIO);
}

static std::string plain_ranks() {
  std::string s;
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 256; i++) {
    s += b64[i >> 2];
    s += b64[(i & 3) << 4];
    s += "== " + std::to_string(i) + "\n";
  }
  return s;
}

static int load_text(const std::string &s, nc_tokenizer **t, char *msg, size_t n) {
  return nc_tok_load_mem(s.data(), s.size(), nullptr, -1, t, msg, n);
}

TEST(TokFile, PlainTiktokenFileAndOverrides) {
  std::string s = plain_ranks() + "YWI= 256\n";
  nc_tokenizer *t = nullptr;
  char msg[256];
  ASSERT_EQ(load_text(s, &t, msg, sizeof msg), NC_OK) << msg;
  EXPECT_EQ(nc_tok_vocab_size(t), 257);
  EXPECT_EQ(nc_tok_n_specials(t), 0);
  EXPECT_STREQ(nc_tok_pattern(t), NC_TOK_PATTERN_NANOCHAT);
  EXPECT_EQ(enc(t, "ab"), (V{256}));
  nc_tok_free(t);
  // CRLF line ends, blank lines, comments, pattern and dialect overrides
  std::string crlf;
  for (char c : "#nanochat-tokenizer 1\n#pattern [a-z]\n# comment\n\n" + s) {
    if (c == '\n') crlf += "\r\n";
    else if (c) crlf += c;
  }
  ASSERT_EQ(load_text(crlf, &t, msg, sizeof msg), NC_OK) << msg;
  EXPECT_STREQ(nc_tok_pattern(t), "[a-z]");
  EXPECT_EQ(enc(t, "ab"), (V{'a', 'b'}));
  nc_tok_free(t);
  ASSERT_EQ(nc_tok_load_mem(crlf.data(), crlf.size(), "[a-z]+", NC_TOK_DIALECT_JS, &t, msg, sizeof msg), NC_OK);
  EXPECT_EQ(enc(t, "ab"), (V{256}));
  EXPECT_EQ(nc_tok_get_dialect(t), NC_TOK_DIALECT_JS);
  nc_tok_free(t);
}

TEST(TokFile, BadFiles) {
  std::string ok = plain_ranks();
  std::string head = "#nanochat-tokenizer 1\n";
  struct {
    std::string text, what;
  } bad[] = {
      {"", "no ranks"},
      {"#nanochat-tokenizer 2\n" + ok, "version"},
      {"#nanochat-tokenizerX 1\n" + ok, "version"},
      {ok + "YWI= 257\n", "order"},
      {ok + "YWI 256\n", "base64"},
      {ok + "Y*I= 256\n", "base64"},
      {ok + "YWJ= 256\n", "base64"},          // stray bits under the padding
      {ok + "YWI=256\n", "expected"},
      {ok + "YWI= 0256\n", "expected"},
      {ok + "YWI= -1\n", "expected"},
      {ok + std::string("YW\0= 256\n", 9), "NUL"},
      {ok.substr(0, ok.size() - 9) + "AA== 255\n", "0xff"},   // byte 0xff missing
      {head + "#pattern (x\n" + ok, "compile"},
      {head + "#pattern a\n#pattern b\n" + ok, "second"},
      {head + "#dialect perl\n" + ok, "dialect"},
      {head + "#special 10 <|x|>\n" + ok, "special"},
      {head + "#special x <|x|>\n" + ok, "#special"},
      {head + "#special 300\n" + ok, "#special"},
      {head + "#pattern " + std::string(NC_TOK_MAX_PATTERN + 1, 'a') + "\n" + ok, "longer"},
  };
  for (auto &b : bad) {
    nc_tokenizer *t = nullptr;
    char msg[256] = "";
    EXPECT_EQ(load_text(b.text, &t, msg, sizeof msg), NC_EINVAL) << b.what;
    EXPECT_NE(std::string(msg).find(b.what), std::string::npos) << b.what << ": " << msg;
    EXPECT_EQ(t, nullptr);
  }
  // a token longer than the cap
  std::string longtok = ok + std::string(1400, 'A') + " 256\n";
  nc_tokenizer *t = nullptr;
  EXPECT_EQ(load_text(longtok, &t, nullptr, 0), NC_EINVAL);
  EXPECT_EQ(nc_tok_load_mem(ok.data(), ok.size(), nullptr, 5, &t, nullptr, 0), NC_EINVAL);
  EXPECT_EQ(nc_tok_load_mem(ok.data(), (size_t)NC_TOK_MAX_FILE + 1, nullptr, -1, &t, nullptr, 0), NC_EFULL);
}
