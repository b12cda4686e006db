// Safetensors reader/writer (core/nc_safetensors.h): round trips of every dtype, the exact
// byte layout, BF16/F16 conversions, SHA-256 against sha256sum, metadata, the atomic
// write protocol (faults before rename leave the old file), and writer argument checks.
// The corrupt-file table is in test_checkpoint.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "st_test_util.h"
extern "C" {
#include "nc_err.h"
#include "nc_safetensors.h"
}

namespace {

using stt::TempDir;

int dirfd_of(const TempDir &d) { return open(d.path.c_str(), O_RDONLY | O_DIRECTORY); }

struct Fd {
  int fd;
  explicit Fd(const TempDir &d) : fd(dirfd_of(d)) {}
  ~Fd() { close(fd); }
};

nc_st_tensor T(const char *name, nc_dtype dt, std::vector<int64_t> shape, const void *data) {
  nc_st_tensor t{};
  t.name = name;
  t.dtype = dt;
  t.ndim = (int)shape.size();
  for (size_t i = 0; i < shape.size(); i++) t.shape[i] = shape[i];
  t.data = data;
  return t;
}

TEST(Safetensors, RoundTripEveryDtypeAndExactLayout) {
  TempDir d;
  Fd fd(d);
  std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-30f};
  std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x7F80};  // 1, -2, inf
  std::vector<uint16_t> f16 = {0x3C00, 0x0001, 0xFC00, 0x8000};  // 1, 2^-24, -inf, -0
  std::vector<int32_t> i32 = {-1, 2, INT32_MAX};
  std::vector<int64_t> i64 = {INT64_MIN, 5};
  std::vector<uint8_t> u8 = {0, 255, 7};
  float scalar = 42.0f;
  nc_st_tensor ts[] = {
      T("a.f32", NC_DT_F32, {2, 3}, f32.data()), T("b.bf16", NC_DT_BF16, {3}, bf16.data()),
      T("c.f16", NC_DT_F16, {2, 2}, f16.data()), T("d.i32", NC_DT_I32, {3, 1}, i32.data()),
      T("e.i64", NC_DT_I64, {2}, i64.data()),    T("f.u8", NC_DT_U8, {1, 1, 3}, u8.data()),
      T("g.scalar", NC_DT_F32, {}, &scalar),     T("h.empty", NC_DT_F32, {0, 4}, nullptr),
  };
  nc_st_kv meta[] = {{"format", "pt"}, {"k", "v \xc3\xa9 \"quoted\""}};
  uint8_t sha[32];
  nc_st_error err{};
  ASSERT_EQ(nc_st_write(fd.fd, "x.safetensors", ts, 8, meta, 2, nullptr, sha, &err), NC_OK) << err.msg;
  std::string bytes = stt::read_file(d / "x.safetensors");
  std::string hdr, data;
  ASSERT_TRUE(stt::split(bytes, &hdr, &data));
  EXPECT_EQ(hdr.size() % 8, 0u);  // padded
  EXPECT_EQ(hdr[0], '{');
  EXPECT_EQ(data.size(), 24u + 6 + 8 + 12 + 16 + 3 + 4 + 0);
  EXPECT_EQ(0, memcmp(data.data(), f32.data(), 24));  // raw little-endian, in the given order

  nc_st_file *f;
  ASSERT_EQ(nc_st_open((d / "x.safetensors").c_str(), &f, &err), NC_OK) << err.msg;
  EXPECT_EQ(nc_st_count(f), 8);
  EXPECT_EQ(nc_st_file_size(f), bytes.size());
  EXPECT_STREQ(nc_st_meta(f, "format"), "pt");
  EXPECT_STREQ(nc_st_meta(f, "k"), "v \xc3\xa9 \"quoted\"");
  EXPECT_EQ(nc_st_meta(f, "nope"), nullptr);
  EXPECT_EQ(nc_st_meta_count(f), 2);
  EXPECT_EQ(nc_st_find(f, "zzz"), nullptr);
  const nc_st_info *s = nc_st_find(f, "g.scalar");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->ndim, 0);
  EXPECT_EQ(s->numel, 1);
  const nc_st_info *e = nc_st_find(f, "h.empty");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->numel, 0);
  EXPECT_EQ(e->begin, e->end);
  for (int i = 0; i < 8; i++) {
    const nc_st_info *t = nc_st_find(f, ts[i].name);
    ASSERT_NE(t, nullptr) << ts[i].name;
    EXPECT_EQ(t->dtype, ts[i].dtype);
    EXPECT_EQ(t->ndim, ts[i].ndim);
    std::vector<uint8_t> buf(t->end - t->begin + 1);
    ASSERT_EQ(nc_st_read(f, t, buf.data(), buf.size(), &err), NC_OK);
    if (t->numel) {
      EXPECT_EQ(0, memcmp(buf.data(), ts[i].data, t->end - t->begin)) << ts[i].name;
    }
    if (i > 0) {
      EXPECT_LE(nc_st_at(f, i - 1)->end, nc_st_at(f, i)->begin);  // offset order
    }
  }
  // conversions to f32
  std::vector<float> out(4);
  ASSERT_EQ(nc_st_read_f32(f, nc_st_find(f, "b.bf16"), out.data(), 3, &err), NC_OK);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_TRUE(std::isinf(out[2]));
  ASSERT_EQ(nc_st_read_f32(f, nc_st_find(f, "c.f16"), out.data(), 4, &err), NC_OK);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], std::ldexp(1.0f, -24));  // smallest subnormal half
  EXPECT_TRUE(std::isinf(out[2]) && out[2] < 0);
  EXPECT_TRUE(out[3] == 0.0f && std::signbit(out[3]));
  EXPECT_EQ(nc_st_read_f32(f, nc_st_find(f, "d.i32"), out.data(), 3, &err), NC_EINVAL);
  EXPECT_EQ(err.kind, NC_ST_E_DTYPE);
  EXPECT_EQ(nc_st_read_f32(f, nc_st_find(f, "a.f32"), out.data(), 4, &err), NC_EINVAL);  // n != numel
  uint8_t small[4];
  EXPECT_EQ(nc_st_read(f, nc_st_find(f, "a.f32"), small, sizeof small, &err), NC_EINVAL);
  // SHA-256: the writer's, the reader's and sha256sum agree
  uint8_t sha2[32];
  ASSERT_EQ(nc_st_sha256(f, sha2, &err), NC_OK);
  EXPECT_EQ(0, memcmp(sha, sha2, 32));
  nc_st_close(f);
  std::string cmd = "sha256sum " + (d / "x.safetensors");
  FILE *p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[200] = {0};
  ASSERT_NE(fgets(line, sizeof line, p), nullptr);
  pclose(p);
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", sha[i]);
  EXPECT_EQ(std::string(line, 64), std::string(hex));
  // the same bytes through the memory reader
  ASSERT_EQ(nc_st_open_mem(bytes.data(), bytes.size(), &f, &err), NC_OK);
  std::vector<float> back(6);
  ASSERT_EQ(nc_st_read_f32(f, nc_st_find(f, "a.f32"), back.data(), 6, &err), NC_OK);
  EXPECT_EQ(0, memcmp(back.data(), f32.data(), 24));
  nc_st_close(f);
  nc_st_close(nullptr);
}

uint16_t bf16_of(float x) {
  TempDir d;
  Fd fd(d);
  nc_st_tensor t = T("x", NC_DT_BF16, {1}, &x);
  t.from_f32 = 1;
  EXPECT_EQ(nc_st_write(fd.fd, "b", &t, 1, nullptr, 0, nullptr, nullptr, nullptr), NC_OK);
  std::string s = stt::read_file(d / "b");
  uint16_t v;
  memcpy(&v, s.data() + s.size() - 2, 2);
  return v;
}

float from_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

TEST(Safetensors, Bf16WriterRoundsToNearestEven) {
  EXPECT_EQ(bf16_of(1.0f), 0x3F80);
  EXPECT_EQ(bf16_of(from_bits(0x3F808000)), 0x3F80);  // tie, even stays
  EXPECT_EQ(bf16_of(from_bits(0x3F818000)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(bf16_of(from_bits(0x3F808001)), 0x3F81);  // above the tie
  EXPECT_EQ(bf16_of(from_bits(0x3F807FFF)), 0x3F80);  // below the tie
  EXPECT_EQ(bf16_of(-2.0f), 0xC000);
  EXPECT_EQ(bf16_of(INFINITY), 0x7F80);
  EXPECT_EQ(bf16_of(from_bits(0x7F7FFFFF)), 0x7F80);  // FLT_MAX overflows to inf (like torch)
  uint16_t n = bf16_of(NAN);
  EXPECT_EQ(n & 0x7F80, 0x7F80);
  EXPECT_NE(n & 0x7F, 0);  // still a NaN
}

TEST(Safetensors, AtomicReplaceAndFaultsBeforeRenameKeepTheOldFile) {
  TempDir d;
  Fd fd(d);
  float a[2] = {1, 2}, b[2] = {3, 4};
  nc_st_tensor ta = T("w", NC_DT_F32, {2}, a), tb = T("w", NC_DT_F32, {2}, b);
  ASSERT_EQ(nc_st_write(fd.fd, "m", &ta, 1, nullptr, 0, nullptr, nullptr, nullptr), NC_OK);
  const std::string old = stt::read_file(d / "m");
  for (const char *point : {"header", "data", "fsync"}) {
    struct Ctx { const char *at; } ctx{point};
    nc_st_write_opts o{[](void *c, const char *p) { return strcmp(p, ((Ctx *)c)->at) == 0 ? 1 : 0; }, &ctx};
    nc_st_error err{};
    EXPECT_EQ(nc_st_write(fd.fd, "m", &tb, 1, nullptr, 0, &o, nullptr, &err), NC_EIO) << point;
    EXPECT_EQ(stt::read_file(d / "m"), old) << point;
    EXPECT_EQ(stt::list_dir(d.path).size(), 1u) << point;  // no temp file left
  }
  // a failure after the rename: the new file is in place
  struct Ctx { const char *at; } ctx{"rename"};
  nc_st_write_opts o{[](void *c, const char *p) { return strcmp(p, ((Ctx *)c)->at) == 0 ? 1 : 0; }, &ctx};
  EXPECT_EQ(nc_st_write(fd.fd, "m", &tb, 1, nullptr, 0, &o, nullptr, nullptr), NC_EIO);
  EXPECT_NE(stt::read_file(d / "m"), old);
  ASSERT_EQ(nc_st_write(fd.fd, "m", &ta, 1, nullptr, 0, nullptr, nullptr, nullptr), NC_OK);
  EXPECT_EQ(stt::read_file(d / "m"), old);
  // a stale temp file of our own pid (a crashed earlier run) does not block the write
  std::string tmp = d / (".m.tmp." + std::to_string(getpid()));
  ASSERT_TRUE(stt::write_file(tmp, "junk"));
  ASSERT_EQ(nc_st_write(fd.fd, "m", &tb, 1, nullptr, 0, nullptr, nullptr, nullptr), NC_OK);
  EXPECT_EQ(stt::list_dir(d.path).size(), 1u);
  // raw files through the same protocol
  ASSERT_EQ(nc_st_write_file(fd.fd, "j.json", "{}\n", 3, nullptr, nullptr), NC_OK);
  EXPECT_EQ(stt::read_file(d / "j.json"), "{}\n");
  // AT_FDCWD works too
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir(d.path.c_str()), 0);
  EXPECT_EQ(nc_st_write(AT_FDCWD, "c", &ta, 1, nullptr, 0, nullptr, nullptr, nullptr), NC_OK);
  ASSERT_EQ(chdir(cwd), 0);
  EXPECT_EQ(stt::read_file(d / "c"), old);
}

TEST(Safetensors, WriterRejectsBadArguments) {
  TempDir d;
  Fd fd(d);
  float a[2] = {1, 2};
  nc_st_error err{};
  auto rejects = [&](std::vector<nc_st_tensor> ts, const char *what) {
    EXPECT_EQ(nc_st_write(fd.fd, "x", ts.data(), (int)ts.size(), nullptr, 0, nullptr, nullptr, &err),
              NC_EINVAL) << what;
    EXPECT_EQ(err.kind, NC_ST_E_ARG) << what;
  };
  rejects({T("w", NC_DT_F32, {2}, a), T("w", NC_DT_F32, {2}, a)}, "duplicate name");
  rejects({T("__metadata__", NC_DT_F32, {2}, a)}, "reserved name");
  rejects({T("", NC_DT_F32, {2}, a)}, "empty name");
  rejects({T(std::string(300, 'n').c_str(), NC_DT_F32, {2}, a)}, "long name");
  rejects({T("w", (nc_dtype)99, {2}, a)}, "dtype");
  rejects({T("w", NC_DT_F32, {-2}, a)}, "negative dim");
  rejects({T("w", NC_DT_F32, {1LL << 32}, a)}, "dim > 2^31");
  rejects({T("w", NC_DT_F32, {2}, nullptr)}, "NULL data");
  nc_st_tensor bad = T("w", NC_DT_F16, {2}, a);
  bad.from_f32 = 1;
  rejects({bad}, "from_f32 without BF16");
  nc_st_tensor t = T("w", NC_DT_F32, {2}, a);
  EXPECT_EQ(nc_st_write(fd.fd, "a/b", &t, 1, nullptr, 0, nullptr, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_st_write(fd.fd, "", &t, 1, nullptr, 0, nullptr, nullptr, &err), NC_EINVAL);
  nc_st_kv dup[] = {{"a", "1"}, {"a", "2"}};
  EXPECT_EQ(nc_st_write(fd.fd, "x", &t, 1, dup, 2, nullptr, nullptr, &err), NC_EINVAL);
  nc_st_kv notutf8[] = {{"a", "\xff"}};
  EXPECT_EQ(nc_st_write(fd.fd, "x", &t, 1, notutf8, 1, nullptr, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(stt::list_dir(d.path).size(), 0u);  // nothing was created
  // a directory that does not exist: an I/O error, not a crash
  EXPECT_EQ(nc_st_write(-1, "x", &t, 1, nullptr, 0, nullptr, nullptr, &err), NC_EIO);
  EXPECT_EQ(err.kind, NC_ST_E_IO);
}

TEST(Safetensors, TempNamesAndErrorKinds) {
  long pid = 0;
  EXPECT_TRUE(nc_st_is_temp_name(".model_000001.safetensors.tmp.1234", &pid));
  EXPECT_EQ(pid, 1234);
  EXPECT_TRUE(nc_st_is_temp_name(".a.tmp.b.tmp.77", &pid));
  EXPECT_EQ(pid, 77);
  EXPECT_FALSE(nc_st_is_temp_name("model_000001.safetensors", &pid));
  EXPECT_FALSE(nc_st_is_temp_name(".x.tmp.", &pid));
  EXPECT_FALSE(nc_st_is_temp_name(".x.tmp.12a", &pid));
  EXPECT_FALSE(nc_st_is_temp_name(nullptr, &pid));
  for (int k = 0; k < NC_ST_E_COUNT; k++) {
    EXPECT_STRNE(nc_st_errkind_name((nc_st_errkind)k), "NC_ST_E_?") << k;
    EXPECT_LE(nc_st_errkind_code((nc_st_errkind)k), 0) << k;
  }
  EXPECT_EQ(nc_st_errkind_code(NC_ST_E_TRUNCATED), NC_ECORRUPT);
  EXPECT_EQ(nc_st_errkind_code(NC_ST_E_SYMLINK), NC_EPERM);
  EXPECT_STREQ(nc_st_errkind_name((nc_st_errkind)999), "NC_ST_E_?");
}

}  // namespace
