// Streaming UTF-8 repair (core/nc_utf8.h): a table of well-formed, truncated and invalid
// sequences; any split of the bytes gives the same text as one push; the output always
// validates; and random byte strings decode exactly like Python's bytes.decode('utf-8',
// 'replace') (run through /usr/bin/python3).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "nc_utf8.h"
}

namespace {

const std::string R = "\xEF\xBF\xBD";  // U+FFFD

// Pushes `s` in pieces at the given cut points, then flushes.
std::string stream(const std::string &s, const std::vector<size_t> &cuts, std::vector<std::string> *deltas = nullptr) {
  nc_utf8_stream st;
  nc_utf8_init(&st);
  std::string out;
  size_t at = 0;
  std::vector<size_t> c = cuts;
  c.push_back(s.size());
  for (size_t end : c) {
    std::vector<char> buf(NC_UTF8_PUSH_CAP(end - at));
    size_t n = nc_utf8_push(&st, s.data() + at, end - at, buf.data());
    std::string d(buf.data(), n);
    if (deltas) deltas->push_back(d);
    out += d;
    at = end;
  }
  char fl[3];
  size_t n = nc_utf8_flush(&st, fl);
  if (deltas) deltas->push_back(std::string(fl, n));
  return out + std::string(fl, n);
}

std::string bytewise(const std::string &s, std::vector<std::string> *deltas = nullptr) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.size(); i++) cuts.push_back(i);
  return stream(s, cuts, deltas);
}

TEST(Utf8, Table) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"", ""},
      {"plain ascii", "plain ascii"},
      {"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},  // é € 😀
      {"\xEF\xBF\xBD", "\xEF\xBF\xBD"},                                                  // U+FFFD itself
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},                                          // U+10FFFF
      {"\x80", R},                                       // lone continuation
      {"\xC0\xAF", R + R},                               // overlong lead C0: two subparts
      {"\xE0\x80\xAF", R + R + R},                       // overlong 3-byte (E0 needs A0..BF)
      {"\xED\xA0\x80", R + R + R},                       // surrogate D800
      {"\xF4\x90\x80\x80", R + R + R + R},               // > U+10FFFF
      {"\xF5", R},                                       // never a lead byte
      {"\xFF" "a", R + "a"},
      {"\xE2\x82", R},                                   // truncated at the end: one U+FFFD
      {"\xE2\x82" "a", R + "a"},                         // truncated by an ASCII byte
      {"\xF0\x9F\x98", R},
      {"\xF0\x9F\x98\xF0\x9F\x98\x80", R + "\xF0\x9F\x98\x80"},
      {"a\xC3", "a" + R},
  };
  for (auto &c : cases) {
    EXPECT_EQ(stream(c.in, {}), c.out) << "one push";
    EXPECT_EQ(bytewise(c.in), c.out) << "byte by byte";
    EXPECT_EQ(nc_utf8_valid(c.in.data(), c.in.size()), c.in == c.out) << c.in.size();
  }
}

TEST(Utf8, HoldsBackIncompleteCharactersOnly) {
  std::vector<std::string> d;
  bytewise("a\xE2\x82\xAC" "b", &d);
  std::vector<std::string> want = {"a", "", "", "\xE2\x82\xAC", "b", ""};
  EXPECT_EQ(d, want);
  d.clear();
  bytewise("\xE2\x28", &d);  // E2 then an invalid continuation: the E2 is reported when seen
  want = {"", R + "(", ""};
  EXPECT_EQ(d, want);
}

TEST(Utf8, RandomSplitsGiveTheSameValidText) {
  std::mt19937 g(5);
  for (int it = 0; it < 3000; it++) {
    std::string s;
    int n = g() % 24;
    for (int i = 0; i < n; i++) {
      // bias towards interesting bytes
      static const unsigned char pool[] = {'a', 0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xC3, 0xDF, 0xE0,
                                           0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x82, 0xAC};
      s += (char)(g() % 3 ? pool[g() % sizeof pool] : (unsigned char)(g() % 256));
    }
    std::string one = stream(s, {});
    ASSERT_TRUE(nc_utf8_valid(one.data(), one.size()));
    std::vector<size_t> cuts;
    for (size_t i = 1; i < s.size(); i++)
      if (g() % 3 == 0) cuts.push_back(i);
    std::vector<std::string> deltas;
    ASSERT_EQ(stream(s, cuts, &deltas), one);
    for (auto &x : deltas) ASSERT_TRUE(nc_utf8_valid(x.data(), x.size()));
  }
}

TEST(Utf8, MatchesPythonReplaceDecoding) {
  std::mt19937 g(9);
  std::vector<std::string> cases;
  for (int i = 0; i < 2000; i++) {
    std::string s;
    int n = 1 + g() % 12;
    for (int k = 0; k < n; k++) {
      unsigned v = g() % 4 ? 0x80 + g() % 0x80 : g() % 256;  // mostly non-ASCII
      if (v == '\n' || v == 0) v = 'x';
      s += (char)v;
    }
    cases.push_back(s);
  }
  char path[] = "/tmp/nc_utf8_cases_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE *f = fdopen(fd, "wb");
  for (auto &s : cases) fprintf(f, "%s\n", s.c_str());
  fclose(f);
  std::string cmd = std::string("/usr/bin/python3 -c \"import sys\nfor l in open(sys.argv[1],'rb'):\n") +
                    "  sys.stdout.buffer.write(l[:-1].decode('utf-8','replace').encode('utf-8')+b'\\n')\n\" " + path;
  FILE *p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string all;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) all.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  unlink(path);
  size_t at = 0, i = 0;
  for (; i < cases.size(); i++) {
    size_t nl = all.find('\n', at);
    ASSERT_NE(nl, std::string::npos);
    std::string want = all.substr(at, nl - at);
    at = nl + 1;
    ASSERT_EQ(bytewise(cases[i]), want) << "case " << i;
  }
  EXPECT_EQ(i, cases.size());
}

}  // namespace
