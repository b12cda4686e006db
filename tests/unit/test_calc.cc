// Calculator tool (core/nc_calc.h): results must equal Python 3's str(eval(expr)) for the
// accepted forms, and everything else must be a bounded error (faults.md row 39, §2.5).
#include <gtest/gtest.h>
#include <string>
#include <unistd.h>
extern "C" {
#include "nc_calc.h"
#include "nc_err.h"
}

static std::string calc(const std::string &e, int *rc = nullptr) {
  char out[NC_CALC_MAX_OUTPUT];
  int r = nc_calc_eval(e.data(), e.size(), out);
  if (rc) *rc = r;
  return r == NC_OK ? std::string(out) : std::string("ERR:") + out;
}

// Expected strings produced by /usr/bin/python3: str(eval(expr)).
TEST(Calc, MatchesPythonArithmetic) {
  const char *cases[][2] = {
      {"1+2", "3"},
      {"12*3", "36"},
      {"10/4", "2.5"},
      {"10/2", "5.0"},
      {"2-5", "-3"},
      {"-3*-3", "9"},
      {"(1+2)*3", "9"},
      {"0.1+0.2", "0.30000000000000004"},
      {"1/3", "0.3333333333333333"},
      {"2/3*3", "2.0"},
      {"1000000*1000000*10000", "10000000000000000"},
      {"10000000000000000/1", "1e+16"},
      {"1/100000", "1e-05"},
      {"1/10000", "0.0001"},
      {"-0.0", "-0.0"},
      {"0.0*-1", "-0.0"},
      {"3.", "3.0"},
      {".5", "0.5"},
      {"5 - - 3", "8"},
      {"+-+3", "-3"},
      {"123456789012345678901234567890*1000000", "123456789012345678901234567890000000"},
      {"7/7", "1.0"},
      {"1.5*2", "3.0"},
      {"3-3.0", "0.0"},
      {"100000000000000000.0", "1e+17"},
      {"99999999999999999999/9", "1.111111111111111e+19"},
      {"1,000 + 2,500", "3500"},  // commas are removed first, as nanochat does
      {"  ( 2 + 3 ) * ( 4 - 1 ) ", "15"},
      {"0", "0"},
      {"000", "0"},
      {"012.5", "12.5"},
  };
  for (auto &c : cases) EXPECT_EQ(calc(c[0]), c[1]) << c[0];
}

TEST(Calc, StringCount) {
  EXPECT_EQ(calc("'strawberry'.count('r')"), "3");
  EXPECT_EQ(calc("\"banana\".count(\"a\")"), "3");
  EXPECT_EQ(calc("'aaaa'.count('aa')"), "2");  // non-overlapping, like str.count
  EXPECT_EQ(calc("'ab'.count('')"), "3");
  EXPECT_EQ(calc("'hello world' .count( 'o' )"), "2");
}

TEST(Calc, ErrorsAreErrorCodesNotCrashes) {
  int rc;
  calc("1/0", &rc);
  EXPECT_EQ(rc, NC_ERANGE);
  calc("1/(2-2.0)", &rc);
  EXPECT_EQ(rc, NC_ERANGE);
  calc("2**9**9", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("__import__('os').system('id')", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("'a'.count('b'); import os", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("().__class__", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("'x'.upper()", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("()", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("1 2", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("1..2", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("(1+2", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("1+2)", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("012", &rc);  // Python 3: leading zeros in decimal integer literals are not permitted
  EXPECT_EQ(rc, NC_EINVAL);
  calc("'abc", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
  calc("'a\"b'.count('a')", &rc);
  EXPECT_EQ(rc, NC_EINVAL);
}

TEST(Calc, Limits) {
  int rc;
  calc(std::string(31, '9'), &rc);  // > 30 digits
  EXPECT_EQ(rc, NC_EINVAL);
  EXPECT_EQ(calc(std::string(30, '9')), std::string(30, '9'));
  calc(std::string(257, '1'), &rc);  // > 256 bytes
  EXPECT_EQ(rc, NC_EINVAL);
  calc(std::string(100000, '('), &rc);  // 10^5 '(' : length cap first
  EXPECT_EQ(rc, NC_EINVAL);
  calc(std::string(40, '(') + "1" + std::string(40, ')'), &rc);  // depth cap
  EXPECT_EQ(rc, NC_EINVAL);
  EXPECT_EQ(calc(std::string(10, '(') + "1" + std::string(10, ')')), "1");
  calc(std::string(200, '-') + "1", &rc);  // unary chains count toward depth
  EXPECT_EQ(rc, NC_EINVAL);
  // integer overflow beyond 127 bits is an error, not a wrong number
  std::string big = "999999999999999999999999999999";
  calc(big + "*" + big + "*" + big, &rc);
  EXPECT_EQ(rc, NC_ERANGE);
  // (a float result cannot overflow to infinity within 256 bytes of 30-digit numbers:
  // ~1e232 at most; the finiteness check stays as a defence)
  std::string b29(29, '9');
  EXPECT_EQ(calc(b29 + ".0*" + b29 + ".0*" + b29 + ".0*" + b29 + ".0"), "9.999999999999997e+115");
}

TEST(Calc, EmbeddedNulAndNullInput) {
  char out[NC_CALC_MAX_OUTPUT];
  EXPECT_EQ(nc_calc_eval("1\0+2", 4, out), NC_EINVAL);
  EXPECT_EQ(nc_calc_eval(nullptr, 0, out), NC_EINVAL);
  EXPECT_EQ(nc_calc_eval("1+2", 3, nullptr), NC_EINVAL);
}

// Differential test: random expressions evaluated here and by /usr/bin/python3 eval().
#include <cstdio>
#include <random>
#include <vector>

static std::string rand_expr(std::mt19937 &g, int depth) {
  std::uniform_int_distribution<int> pick(0, 9);
  int k = pick(g);
  if (depth > 3 || k < 4) {  // a number
    std::uniform_int_distribution<int> kind(0, 3), digits(1, 6), d(0, 9);
    std::string s;
    int nd = digits(g);
    s += char('1' + d(g) % 9);
    for (int i = 1; i < nd; i++) s += char('0' + d(g));
    int kk = kind(g);
    if (kk == 1) s += "." + std::to_string(d(g)) + std::to_string(d(g));
    if (kk == 2) s = "0." + s;
    return s;
  }
  if (k == 4) return "(" + rand_expr(g, depth + 1) + ")";
  if (k == 5) return "-" + rand_expr(g, depth + 1);
  const char *ops[] = {" + ", " - ", "*", "/"};
  return rand_expr(g, depth + 1) + ops[k % 4] + rand_expr(g, depth + 1);
}

TEST(Calc, RandomExpressionsMatchPython) {
  std::mt19937 g(1234);
  std::vector<std::string> exprs;
  for (int i = 0; i < 3000; i++) {
    std::string e = rand_expr(g, 0);
    if (e.size() <= NC_CALC_MAX_INPUT) exprs.push_back(e);
  }
  char path[] = "/tmp/nc_calc_exprs_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE *f = fdopen(fd, "w");
  for (auto &e : exprs) fprintf(f, "%s\n", e.c_str());
  fclose(f);
  std::string cmd = std::string("/usr/bin/python3 -c \"import sys\nfor l in open(sys.argv[1]):\n") +
                    "  l=l.rstrip('\\n')\n  try: print(str(eval(l,{'__builtins__':{}},{})))\n" +
                    "  except ZeroDivisionError: print('ERR')\n\" " + path;
  FILE *p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[512];
  size_t i = 0, compared = 0;
  while (fgets(line, sizeof line, p) && i < exprs.size()) {
    std::string want(line);
    want.erase(want.find_last_not_of("\n") + 1);
    int rc;
    std::string got = calc(exprs[i], &rc);
    if (want == "ERR") {
      EXPECT_EQ(rc, NC_ERANGE) << exprs[i];
    } else {
      EXPECT_EQ(got, want) << exprs[i];
    }
    i++;
    compared++;
  }
  int st = pclose(p);
  unlink(path);
  EXPECT_EQ(st, 0);
  EXPECT_EQ(compared, exprs.size());
}
