// Unit tests for corpus directories as document sources (core/nc_corpus.h): layouts, splits,
// .jsonl/.txt parsing, bad lines, truncation, UTF-8 repair, endless epochs, seek/tell, and the
// loader adapter (BOS + ordinary tokens, exact resume).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

extern "C" {
#include "nc_corpus.h"
#include "nc_err.h"
#include "nc_loader.h"
}

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nc_corpus_test_XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
  std::string sub(const std::string &rel) const { return path + "/" + rel; }
  void write(const std::string &rel, const std::string &content) const {
    std::string full = sub(rel);
    for (size_t i = path.size() + 1; i < full.size(); i++)
      if (full[i] == '/') mkdir(full.substr(0, i).c_str(), 0700);
    std::ofstream(full, std::ios::binary) << content;
  }
};

struct Corpus {
  nc_corpus *c = nullptr;
  int rc;
  char err[512] = "";
  Corpus(const std::string &dir, const char *split = "train", size_t max_doc = 0) {
    nc_corpus_opts o = {};
    o.dir = dir.c_str();
    o.split = split;
    o.max_doc_bytes = max_doc;
    rc = nc_corpus_open(&o, &c, err, sizeof err);
  }
  ~Corpus() { nc_corpus_close(c); }
  // every document of the first pass
  std::vector<std::string> all() {
    std::vector<std::string> out;
    const char *t;
    size_t n;
    nc_doc_pos p;
    while (nc_corpus_next_text(c, 0, &t, &n, &p) == NC_OK) out.emplace_back(t, n);
    return out;
  }
};

std::string jl(const std::string &text) { return "{\"text\": \"" + text + "\", \"source\": \"x\"}\n"; }

// byte-level fake tokenizer: id = byte value
long enc(void *, const char *text, size_t len, int32_t *out, size_t cap) {
  for (size_t i = 0; i < len && i < cap; i++) out[i] = (unsigned char)text[i];
  return (long)len;
}
long dec(void *, const int32_t *, size_t, char *, size_t) { return 0; }

}  // namespace

TEST(Corpus, BuiltLayoutReadsOnlyTheSplit) {
  TempDir d;
  d.write("manifest.json", "{}");
  d.write("train/shard_00000.jsonl", jl("a1") + jl("a2"));
  d.write("train/shard_00001.jsonl", jl("b1"));
  d.write("val/shard_00000.jsonl", jl("v1"));
  Corpus tr(d.path), va(d.path, "val");
  ASSERT_EQ(tr.rc, NC_OK) << tr.err;
  ASSERT_EQ(va.rc, NC_OK) << va.err;
  EXPECT_EQ(tr.all(), (std::vector<std::string>{"a1", "a2", "b1"}));
  EXPECT_EQ(va.all(), (std::vector<std::string>{"v1"}));
}

TEST(Corpus, UserDirectoryTxtAndJsonlSortedRecursive) {
  TempDir d;
  d.write("b.txt", "whole file\n\nis one document");
  d.write("a/x.jsonl", jl("x1") + "\n   \n" + jl("x2"));
  d.write("val/held.jsonl", jl("held"));
  d.write("val_extra.txt", "also val");
  d.write(".hidden.txt", "never");
  d.write("notes.md", "never");
  Corpus tr(d.path), va(d.path, "val");
  ASSERT_EQ(tr.rc, NC_OK) << tr.err;
  EXPECT_EQ(tr.all(), (std::vector<std::string>{"x1", "x2", "whole file\n\nis one document"}));
  EXPECT_EQ(va.all(), (std::vector<std::string>{"held", "also val"}));
}

TEST(Corpus, BadLinesAreSkippedAndCounted) {
  TempDir d;
  d.write("t.jsonl", jl("ok1") + "not json\n" + "{\"text\": 5}\n" + "[1,2]\n" + "{\"nope\": \"x\"}\n" +
                         jl("ok2") + "{\"text\": \"unterminated\n");
  Corpus c(d.path);
  ASSERT_EQ(c.rc, NC_OK);
  EXPECT_EQ(c.all(), (std::vector<std::string>{"ok1", "ok2"}));
  EXPECT_EQ(nc_corpus_bad_lines(c.c), 5u);
}

TEST(Corpus, EscapesUnicodeAndRepair) {
  TempDir d;
  d.write("t.jsonl", "{\"text\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\\n\"}\n");
  d.write("u.txt", std::string("bad \xff byte"));
  Corpus c(d.path);
  ASSERT_EQ(c.rc, NC_OK);
  auto docs = c.all();
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"\n");
  EXPECT_EQ(docs[1], "bad \xef\xbf\xbd byte");
}

TEST(Corpus, LongDocumentsTruncatedAtCodePoint) {
  TempDir d;
  std::string s;
  for (int i = 0; i < 100; i++) s += "\xc3\xa9";   // 200 bytes of 2-byte characters
  d.write("t.txt", s);
  Corpus c(d.path, "train", 51);
  ASSERT_EQ(c.rc, NC_OK);
  auto docs = c.all();
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].size(), 50u);
  EXPECT_EQ(docs[0], s.substr(0, 50));
}

TEST(Corpus, Errors) {
  TempDir d;
  Corpus none(d.sub("missing"));
  EXPECT_EQ(none.rc, NC_ENOTFOUND);
  Corpus empty(d.path);
  EXPECT_EQ(empty.rc, NC_ENOTFOUND);
  EXPECT_NE(std::string(empty.err).find(d.path), std::string::npos) << empty.err;
  d.write("t.jsonl", jl("x"));
  Corpus bad(d.path, "test");
  EXPECT_EQ(bad.rc, NC_EINVAL);
  Corpus noval(d.path, "val");
  EXPECT_EQ(noval.rc, NC_ENOTFOUND);
}

TEST(Corpus, EndlessEpochsAndSeek) {
  TempDir d;
  d.write("a.jsonl", jl("a1") + jl("a2"));
  d.write("b.txt", "b");
  Corpus c(d.path);
  ASSERT_EQ(c.rc, NC_OK);
  const char *t;
  size_t n;
  nc_doc_pos p, seen[7];
  std::vector<std::string> got;
  for (int i = 0; i < 7; i++) {
    ASSERT_EQ(nc_corpus_next_text(c.c, 1, &t, &n, &p), NC_OK);
    got.emplace_back(t, n);
    seen[i] = p;
  }
  EXPECT_EQ(got, (std::vector<std::string>{"a1", "a2", "b", "a1", "a2", "b", "a1"}));
  EXPECT_EQ(nc_corpus_epoch(c.c), 2u);
  EXPECT_NE(seen[0].a, seen[3].a);   // epochs give distinct positions
  // seek back to any returned position re-reads that document and continues from it
  ASSERT_EQ(nc_corpus_seek(c.c, seen[4]), NC_OK);
  ASSERT_EQ(nc_corpus_next_text(c.c, 1, &t, &n, &p), NC_OK);
  EXPECT_EQ(std::string(t, n), "a2");
  EXPECT_EQ(p.a, seen[4].a);
  EXPECT_EQ(p.b, seen[4].b);
  ASSERT_EQ(nc_corpus_next_text(c.c, 1, &t, &n, &p), NC_OK);
  EXPECT_EQ(std::string(t, n), "b");
  nc_doc_pos txt_bad = {seen[2].a, 5};
  EXPECT_EQ(nc_corpus_seek(c.c, txt_bad), NC_EINVAL);
  // finite mode stops after the first pass
  Corpus f(d.path);
  EXPECT_EQ(f.all().size(), 3u);
}

TEST(Corpus, LoaderAdapterPrependsBosAndResumesExactly) {
  TempDir d;
  std::string lines;
  for (int i = 0; i < 40; i++) lines += jl("document number " + std::to_string(i) + std::string(i % 7, 'x'));
  d.write("t.jsonl", lines);
  nc_tok_iface tok = {nullptr, enc, dec};
  auto run = [&](int batches, int resume_at, std::vector<int32_t> *out) {
    Corpus c(d.path);
    ASSERT_EQ(c.rc, NC_OK);
    nc_corpus_source cs = {c.c, &tok, 1000, 1};
    nc_doc_source src = nc_corpus_doc_source(&cs);
    nc_loader_cfg cfg = {2, 16, 4};
    nc_loader *l;
    ASSERT_EQ(nc_loader_create(cfg, src, &l), NC_OK);
    std::vector<int32_t> in(32), tg(32);
    nc_loader_state st = {};
    for (int b = 0; b < batches; b++) {
      if (b == resume_at) {
        ASSERT_EQ(nc_loader_save(l, &st), NC_OK);
        nc_loader_free(l);
        ASSERT_EQ(nc_loader_create(cfg, src, &l), NC_OK);
        ASSERT_EQ(nc_loader_restore(l, &st), NC_OK);
        nc_loader_state_free(&st);
      }
      ASSERT_EQ(nc_loader_next(l, in.data(), tg.data()), NC_OK);
      EXPECT_EQ(in[0], 1000);    // every row starts with BOS
      EXPECT_EQ(in[16], 1000);
      out->insert(out->end(), in.begin(), in.end());
    }
    nc_loader_free(l);
  };
  std::vector<int32_t> straight, resumed;
  run(30, -1, &straight);
  run(30, 11, &resumed);
  EXPECT_EQ(straight, resumed);
}
