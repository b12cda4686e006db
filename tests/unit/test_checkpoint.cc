// Checkpoints (core/nc_checkpoint.h): the handcrafted corrupt-file table of specs/faults.md
// rows 25-29 (T-CKPT, llama.cpp test-gguf style: one test per corruption kind, each must be
// refused with its own error kind and leave nothing allocated or loaded), path safety,
// crash-safety of saving, bit-exact round trips of model and optimizer state, listing.
#include <gtest/gtest.h>

#include <jansson.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "model_test_util.h"
#include "st_test_util.h"
extern "C" {
#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_model.h"
#include "nc_optim.h"
#include "nc_safetensors.h"
}

namespace {

using stt::TempDir;

nc_model_config cfg2() { return nct::tiny(2, 32, 2, 16, 64, "L", 0); }

nc_model *new_model(const nc_model_config &c, uint64_t seed) {
  nc_model *m = nullptr;
  EXPECT_EQ(nc_model_create(&c, &m, nullptr, 0), NC_OK);
  nc_model_init_weights(m, seed);
  int64_t n;
  float *p = nc_model_param_buffer(m, &n);
  for (int64_t i = 0; i < n; i++) p[i] += 1e-3f * (float)((i * 7919) % 201 - 100);
  return m;
}

// A valid model file for cfg2 (bytes), written by nc_ckpt_write_model_file.
const std::string &good_file() {
  static std::string bytes = [] {
    TempDir d;
    nc_model *m = new_model(cfg2(), 3);
    int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
    nc_st_error err{};
    EXPECT_EQ(nc_ckpt_write_model_file(fd, "m.safetensors", m, "{\"val_bpb\":1.5}", nullptr,
                                       nullptr, &err), NC_OK) << err.msg;
    close(fd);
    nc_model_free(m);
    return stt::read_file(d / "m.safetensors");
  }();
  return bytes;
}

struct Load {
  int rc;
  nc_st_error err;
};

// Loads `bytes` as a model file; the model is freed again. *out stays NULL on failure.
Load load_bytes(const std::string &bytes) {
  TempDir d;
  EXPECT_TRUE(stt::write_file(d / "m.safetensors", bytes));
  int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
  Load r{};
  nc_model *m = (nc_model *)0x1;
  char *meta = (char *)0x1;
  r.rc = nc_ckpt_read_model_file(fd, "m.safetensors", nullptr, &m, &meta, &r.err);
  close(fd);
  if (r.rc) {
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(meta, nullptr);
  }
  nc_model_free(m);
  free(r.rc ? nullptr : meta);
  return r;
}

#define EXPECT_REFUSED(BYTES_, CODE_, KIND_)                                            \
  do {                                                                                \
    Load r_ = load_bytes(BYTES_);                                                     \
    EXPECT_EQ(r_.rc, CODE_) << r_.err.msg;                                            \
    EXPECT_EQ(r_.err.kind, KIND_) << nc_st_errkind_name(r_.err.kind) << ": " << r_.err.msg; \
    EXPECT_NE(r_.err.msg[0], 0);                                                      \
  } while (0)

// Rewrites the good file's header through a JSON edit; data kept (or replaced).
std::string edit(const std::function<void(json_t *)> &fn, const std::string *data = nullptr) {
  std::string h, d;
  EXPECT_TRUE(stt::split(good_file(), &h, &d));
  json_t *j = json_loadb(h.data(), h.size(), 0, nullptr);
  EXPECT_NE(j, nullptr);
  fn(j);
  char *s = json_dumps(j, JSON_COMPACT);
  std::string out = stt::craft(s, data ? *data : d);
  free(s);
  json_decref(j);
  return out;
}

void set_meta(json_t *j, const char *k, const char *v) {
  json_object_set_new(json_object_get(j, "__metadata__"), k, json_string(v));
}

std::string good_header() {
  std::string h, d;
  stt::split(good_file(), &h, &d);
  return h;
}

// ------------------------------------------------------------------ the valid file loads

TEST(Checkpoint, GoodFileLoadsWithMetaAndConfig) {
  Load r = load_bytes(good_file());
  ASSERT_EQ(r.rc, NC_OK) << r.err.msg;
  nc_st_file *f;
  nc_st_error err;
  ASSERT_EQ(nc_st_open_mem(good_file().data(), good_file().size(), &f, &err), NC_OK);
  EXPECT_STREQ(nc_st_meta(f, "format"), NC_CKPT_FORMAT);
  json_t *meta = json_loads(nc_st_meta(f, "meta"), 0, nullptr);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(json_real_value(json_object_get(meta, "val_bpb")), 1.5);
  EXPECT_EQ(json_integer_value(json_object_get(meta, "step")), 0);
  EXPECT_EQ(json_integer_value(json_object_get(json_object_get(meta, "model_config"), "n_layer")), 2);
  json_decref(meta);
  nc_model_config c;
  EXPECT_EQ(nc_ckpt_check_model(f, &c, &err), NC_OK);
  EXPECT_EQ(c.n_embd, 32);
  nc_st_close(f);
}

// ------------------------------------------------------------------ faults.md row 25

TEST(CheckpointCorrupt, BadMagic) {
  EXPECT_REFUSED(stt::craft("[\"not an object\"]", ""), NC_EINVAL, NC_ST_E_MAGIC);
  EXPECT_REFUSED(stt::craft(std::string(16, '\x01'), ""), NC_EINVAL, NC_ST_E_MAGIC);
  std::string h = good_header();
  h[0] = ' ';  // leading whitespace is not accepted either
  std::string hh, d;
  stt::split(good_file(), &hh, &d);
  EXPECT_REFUSED(stt::craft(h, d, false), NC_EINVAL, NC_ST_E_MAGIC);
}

TEST(CheckpointCorrupt, FutureFormatVersion) {
  EXPECT_REFUSED(edit([](json_t *j) { set_meta(j, "format", "nanochat-c/2"); }), NC_EINVAL,
                 NC_ST_E_VERSION);
  EXPECT_REFUSED(edit([](json_t *j) { set_meta(j, "format", "nanochat-c/x"); }), NC_EINVAL,
                 NC_ST_E_VERSION);
  // a foreign "format" (HF writes "pt") is not ours to judge
  EXPECT_EQ(load_bytes(edit([](json_t *j) { set_meta(j, "format", "pt"); })).rc, NC_OK);
  EXPECT_EQ(load_bytes(edit([](json_t *j) { set_meta(j, "format", "nanochat-c/1"); })).rc, NC_OK);
}

TEST(CheckpointCorrupt, TruncatedFile) {
  const std::string &g = good_file();
  EXPECT_REFUSED(g.substr(0, g.size() - 1), NC_ECORRUPT, NC_ST_E_TRUNCATED);
  EXPECT_REFUSED(g.substr(0, g.size() / 2), NC_ECORRUPT, NC_ST_E_TRUNCATED);
  EXPECT_REFUSED(g.substr(0, 8 + good_header().size()), NC_ECORRUPT, NC_ST_E_TRUNCATED);
  EXPECT_REFUSED(g.substr(0, 8 + good_header().size() - 1), NC_ECORRUPT, NC_ST_E_HEADER_LENGTH);
}

TEST(CheckpointCorrupt, HeaderLengthBeyondFile) {
  std::string g = good_file();
  uint64_t n = g.size() - 7;  // one byte more than the file holds
  memcpy(&g[0], &n, 8);
  EXPECT_REFUSED(g, NC_ECORRUPT, NC_ST_E_HEADER_LENGTH);
}

TEST(CheckpointCorrupt, HeaderLengthOverCap) {
  std::string g = good_file();
  for (uint64_t n : {(uint64_t)NC_ST_MAX_HEADER + 1, (uint64_t)1 << 40, UINT64_MAX}) {
    memcpy(&g[0], &n, 8);
    EXPECT_REFUSED(g, NC_EINVAL, NC_ST_E_HEADER_TOO_LARGE);
  }
}

TEST(CheckpointCorrupt, FileTooSmall) {
  EXPECT_REFUSED(std::string(), NC_EINVAL, NC_ST_E_TOO_SMALL);
  EXPECT_REFUSED(std::string(7, '\0'), NC_EINVAL, NC_ST_E_TOO_SMALL);
  EXPECT_REFUSED(std::string(8, '\0'), NC_EINVAL, NC_ST_E_TOO_SMALL);  // N = 0
}

TEST(CheckpointCorrupt, NonUtf8Header) {
  for (const char *bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    std::string b = edit([&](json_t *j) { set_meta(j, "note", "PLACEHOLDER"); });
    stt::replace_once(b, "PLACEHOLDER", std::string(bad) + std::string(11 - strlen(bad), 'x'));
    EXPECT_REFUSED(b, NC_EINVAL, NC_ST_E_UTF8);
  }
}

TEST(CheckpointCorrupt, InvalidJson) {
  EXPECT_REFUSED(stt::craft("{\"a\":", ""), NC_EINVAL, NC_ST_E_JSON);
  EXPECT_REFUSED(stt::craft("{} x", ""), NC_EINVAL, NC_ST_E_JSON);
  EXPECT_REFUSED(stt::craft("{\"a\":1,}", ""), NC_EINVAL, NC_ST_E_JSON);
  EXPECT_REFUSED(stt::craft("{\"a\":{\"b\":[[1]]}}", ""), NC_EINVAL, NC_ST_E_JSON);  // depth 4
  EXPECT_REFUSED(stt::craft("{\"a\\u0000b\":1}", ""), NC_EINVAL, NC_ST_E_JSON);  // NUL in a key
  std::string many = "{\"a\":[";
  for (int i = 0; i < NC_ST_MAX_VALUES + 10; i++) many += "0,";
  many += "0]}";
  EXPECT_REFUSED(stt::craft(many, ""), NC_EINVAL, NC_ST_E_JSON);  // DOM size cap
}

TEST(CheckpointCorrupt, DuplicateTensor) {
  std::string h = good_header();
  const char *key = "\"lm_head.weight\":";
  size_t p = h.find(key);
  ASSERT_NE(p, std::string::npos);
  size_t e = h.find('}', p);
  std::string entry = h.substr(p, e - p + 1);
  h.insert(p, entry + ",");  // the same key twice
  std::string hh, d;
  stt::split(good_file(), &hh, &d);
  EXPECT_REFUSED(stt::craft(h, d), NC_EINVAL, NC_ST_E_DUPLICATE);
  EXPECT_REFUSED(stt::craft("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", ""), NC_EINVAL,
                 NC_ST_E_DUPLICATE);
}

TEST(CheckpointCorrupt, UnknownDtype) {
  for (const char *dt : {"F8", "f32", "F64", "", "BOOL"}) {
    EXPECT_REFUSED(edit([&](json_t *j) {
                     json_object_set_new(json_object_get(j, "lm_head.weight"), "dtype", json_string(dt));
                   }),
                   NC_EINVAL, NC_ST_E_DTYPE);
  }
  // a known dtype the model cannot use (I32 has the same size as F32, so offsets stay valid)
  EXPECT_REFUSED(edit([](json_t *j) {
                   json_object_set_new(json_object_get(j, "lm_head.weight"), "dtype", json_string("I32"));
                 }),
                 NC_EINVAL, NC_ST_E_DTYPE);
}

// One tensor "t" of the given dtype, shape and data_offsets, over `data`.
std::string one(const char *dtype, const char *shape, const char *offsets, const std::string &data) {
  return stt::craft(std::string("{\"t\":{\"dtype\":\"") + dtype + "\",\"shape\":" + shape +
                        ",\"data_offsets\":" + offsets + "}}",
                    data);
}

TEST(CheckpointCorrupt, ShapeProductOverflow) {
  auto with_shape = [](const char *shape) { return one("F32", shape, "[0,4]", "abcd"); };
  EXPECT_REFUSED(with_shape("[2147483648,2147483648,2147483648]"), NC_EINVAL, NC_ST_E_OVERFLOW);
  EXPECT_REFUSED(with_shape("[2147483648,2147483648,4]"), NC_EINVAL, NC_ST_E_OVERFLOW);  // bytes
  EXPECT_REFUSED(with_shape("[2147483648,2147483648,2]"), NC_EINVAL, NC_ST_E_OVERFLOW);  // 2^63 x 4
  // large but representable: a size mismatch, never an allocation
  EXPECT_REFUSED(with_shape("[2147483648,1024]"), NC_EINVAL, NC_ST_E_SIZE);
}

TEST(CheckpointCorrupt, BadDims) {
  auto with_shape = [](const char *shape) { return one("U8", shape, "[0,1]", "a"); };
  EXPECT_REFUSED(with_shape("[2147483649]"), NC_EINVAL, NC_ST_E_SHAPE);
  EXPECT_REFUSED(with_shape("[-1]"), NC_EINVAL, NC_ST_E_SHAPE);
  EXPECT_REFUSED(with_shape("[1.0]"), NC_EINVAL, NC_ST_E_SHAPE);
  EXPECT_REFUSED(with_shape("[\"1\"]"), NC_EINVAL, NC_ST_E_SHAPE);
  EXPECT_REFUSED(with_shape("[1,1,1,1,1,1,1,1,1]"), NC_EINVAL, NC_ST_E_SHAPE);
  EXPECT_REFUSED(with_shape("[99999999999999999999]"), NC_EINVAL, NC_ST_E_JSON);  // > int64
}

// Two F32 [2] tensors "a" and "b" with the given data_offsets, and n data bytes.
std::string two(const char *a, const char *b, size_t n) {
  return stt::craft(std::string("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":") + a +
                        "},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + b + "}}",
                    std::string(n, 'x'));
}

TEST(CheckpointCorrupt, OverlappingOffsets) {
  EXPECT_REFUSED(two("[0,8]", "[4,12]", 12), NC_EINVAL, NC_ST_E_OFFSETS);
  EXPECT_REFUSED(two("[0,8]", "[0,8]", 8), NC_EINVAL, NC_ST_E_OFFSETS);  // aliasing
  EXPECT_REFUSED(two("[8,0]", "[8,16]", 16), NC_EINVAL, NC_ST_E_OFFSETS);  // BEGIN > END
  EXPECT_REFUSED(two("[-8,0]", "[0,8]", 8), NC_EINVAL, NC_ST_E_OFFSETS);
  EXPECT_REFUSED(two("[0,8,9]", "[8,16]", 16), NC_EINVAL, NC_ST_E_OFFSETS);
  EXPECT_REFUSED(two("[0,8]", "[8]", 16), NC_EINVAL, NC_ST_E_OFFSETS);
}

TEST(CheckpointCorrupt, HoleyOffsets) {
  EXPECT_REFUSED(two("[0,8]", "[12,20]", 20), NC_EINVAL, NC_ST_E_HOLE);
  EXPECT_REFUSED(two("[4,12]", "[12,20]", 20), NC_EINVAL, NC_ST_E_HOLE);  // gap at the start
  EXPECT_REFUSED(two("[0,8]", "[8,12]", 12), NC_EINVAL, NC_ST_E_SIZE);  // 4 bytes for 2 x F32
}

TEST(CheckpointCorrupt, LastEndNotFileSize) {
  EXPECT_REFUSED(good_file() + "x", NC_EINVAL, NC_ST_E_TRAILING);
  EXPECT_REFUSED(good_file() + std::string(4096, '\0'), NC_EINVAL, NC_ST_E_TRAILING);
  EXPECT_REFUSED(stt::craft("{}", "junk"), NC_EINVAL, NC_ST_E_TRAILING);
}

// Removes tensor `name` from the good file (header and its bytes, offsets shifted).
std::string without(const char *name) {
  std::string h, d;
  stt::split(good_file(), &h, &d);
  json_t *j = json_loadb(h.data(), h.size(), 0, nullptr);
  json_t *t = json_object_get(j, name);
  json_int_t b = json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
  json_int_t e = json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 1));
  std::string nd = d.substr(0, b) + d.substr(e);
  json_object_del(j, name);
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    json_t *of = json_object_get(v, "data_offsets");
    if (!of) continue;
    for (int i = 0; i < 2; i++) {
      json_int_t x = json_integer_value(json_array_get(of, i));
      if (x >= e) json_array_set_new(of, i, json_integer(x - (e - b)));
    }
  }
  char *s = json_dumps(j, JSON_COMPACT);
  std::string out = stt::craft(s, nd);
  free(s);
  json_decref(j);
  return out;
}

TEST(CheckpointCorrupt, MissingTensor) {
  for (const char *n : {"lm_head.weight", "resid_lambdas", "value_embeds.1.weight",
                        "transformer.h.0.mlp.c_fc.weight"}) {
    Load r = load_bytes(without(n));
    EXPECT_EQ(r.rc, NC_EINVAL);
    EXPECT_EQ(r.err.kind, NC_ST_E_MISSING) << r.err.msg;
    EXPECT_NE(std::string(r.err.msg).find(n), std::string::npos) << r.err.msg;
  }
}

TEST(CheckpointCorrupt, ExtraTensor) {
  std::string h, d;
  stt::split(good_file(), &h, &d);
  std::string nd = d + std::string(4, '\0');
  std::string b = edit(
      [&](json_t *j) {
        json_object_set_new(j, "extra.weight",
                            json_pack("{s:s,s:[i],s:[I,I]}", "dtype", "F32", "shape", 1, "data_offsets",
                                      (json_int_t)d.size(), (json_int_t)d.size() + 4));
      },
      &nd);
  Load r = load_bytes(b);
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_EQ(r.err.kind, NC_ST_E_EXTRA) << r.err.msg;
  EXPECT_NE(std::string(r.err.msg).find("extra.weight"), std::string::npos) << r.err.msg;
}

TEST(CheckpointCorrupt, ShapeDiffersFromConfig) {
  // same byte size, other shape: transposed wte, flattened c_q
  EXPECT_REFUSED(edit([](json_t *j) {
                   json_object_set_new(json_object_get(j, "transformer.wte.weight"), "shape",
                                       json_pack("[i,i]", 32, 64));
                 }),
                 NC_EINVAL, NC_ST_E_SHAPE_MISMATCH);
  EXPECT_REFUSED(edit([](json_t *j) {
                   json_object_set_new(json_object_get(j, "transformer.h.0.attn.c_q.weight"), "shape",
                                       json_pack("[i]", 1024));
                 }),
                 NC_EINVAL, NC_ST_E_SHAPE_MISMATCH);
  // the tensors of a vocab-64 model under a config that says vocab 200
  EXPECT_REFUSED(edit([](json_t *j) {
                   set_meta(j, "model_config",
                            "{\"sequence_len\":16,\"vocab_size\":200,\"n_layer\":2,\"n_head\":2,"
                            "\"n_kv_head\":2,\"n_embd\":32,\"window_pattern\":\"L\"}");
                 }),
                 NC_EINVAL, NC_ST_E_SHAPE_MISMATCH);
}

TEST(CheckpointCorrupt, MalformedTensorInfo) {
  auto info = [](const char *v) { return stt::craft(std::string("{\"t\":") + v + "}", ""); };
  EXPECT_REFUSED(info("[]"), NC_EINVAL, NC_ST_E_TENSOR_INFO);
  EXPECT_REFUSED(info("{\"dtype\":\"F32\",\"shape\":[0]}"), NC_EINVAL, NC_ST_E_TENSOR_INFO);
  EXPECT_REFUSED(info("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1}"), NC_EINVAL,
                 NC_ST_E_TENSOR_INFO);
  EXPECT_REFUSED(info("{\"dtype\":1,\"shape\":[0],\"data_offsets\":[0,0]}"), NC_EINVAL,
                 NC_ST_E_TENSOR_INFO);
  EXPECT_REFUSED(info("{\"dtype\":\"F32\",\"shape\":0,\"data_offsets\":[0,0]}"), NC_EINVAL,
                 NC_ST_E_TENSOR_INFO);
  std::string longname = "{\"" + std::string(NC_ST_MAX_NAME + 1, 'n') +
                         "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
  EXPECT_REFUSED(stt::craft(longname, ""), NC_EINVAL, NC_ST_E_TENSOR_INFO);
  EXPECT_REFUSED(stt::craft("{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", ""),
                 NC_EINVAL, NC_ST_E_TENSOR_INFO);
}

TEST(CheckpointCorrupt, TooManyTensors) {
  std::string h = "{";
  for (int i = 0; i <= NC_ST_MAX_TENSORS; i++)
    h += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}";
  h += "}";
  EXPECT_REFUSED(stt::craft(h, ""), NC_EINVAL, NC_ST_E_TOO_MANY);
}

TEST(CheckpointCorrupt, MetadataNotStrings) {
  EXPECT_REFUSED(edit([](json_t *j) {
                   json_object_set_new(json_object_get(j, "__metadata__"), "n", json_integer(1));
                 }),
                 NC_EINVAL, NC_ST_E_METADATA);
  EXPECT_REFUSED(stt::craft("{\"__metadata__\":[]}", ""), NC_EINVAL, NC_ST_E_METADATA);
  std::string many = "{\"__metadata__\":{";
  for (int i = 0; i <= NC_ST_MAX_META; i++) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":\"v\"";
  EXPECT_REFUSED(stt::craft(many + "}}", ""), NC_EINVAL, NC_ST_E_METADATA);
  // null metadata is allowed by the format, but then there is no model_config
  EXPECT_REFUSED(stt::craft("{\"__metadata__\":null}", ""), NC_EINVAL, NC_ST_E_CONFIG);
}

TEST(CheckpointCorrupt, MissingOrMalformedModelConfig) {
  EXPECT_REFUSED(edit([](json_t *j) { json_object_del(json_object_get(j, "__metadata__"), "model_config"); }),
                 NC_EINVAL, NC_ST_E_CONFIG);
  EXPECT_REFUSED(edit([](json_t *j) { set_meta(j, "model_config", "{not json"); }), NC_EINVAL,
                 NC_ST_E_CONFIG);
  EXPECT_REFUSED(edit([](json_t *j) { set_meta(j, "model_config", "{\"n_layer\":2}"); }), NC_EINVAL,
                 NC_ST_E_CONFIG);
}

// ------------------------------------------------------------------ faults.md row 26

TEST(CheckpointCorrupt, PickleAndZipRejectedByMagic) {
  const std::string zip = std::string("PK\x03\x04", 4) + std::string(100, '\0');
  const std::string p2 = std::string("\x80\x02}q\x00.", 6);
  const std::string p4 = std::string("\x80\x04\x95", 3) + std::string(40, 'x');
  for (const std::string &b : {zip, p2, p4}) {
    Load r = load_bytes(b);
    EXPECT_EQ(r.rc, NC_EINVAL);
    EXPECT_EQ(r.err.kind, NC_ST_E_PICKLE);
    EXPECT_NE(std::string(r.err.msg).find("pickle is never loaded"), std::string::npos) << r.err.msg;
  }
}

// ------------------------------------------------------------------ faults.md row 29

std::string with_config(const char *cfg) {
  return edit([&](json_t *j) { set_meta(j, "model_config", cfg); });
}

TEST(CheckpointCorrupt, AbsurdConfigRejectedBeforeAllocation) {
  EXPECT_REFUSED(with_config("{\"sequence_len\":16,\"vocab_size\":64,\"n_layer\":1000000000,"
                             "\"n_head\":2,\"n_kv_head\":2,\"n_embd\":32}"),
                 NC_EINVAL, NC_ST_E_CONFIG);
  EXPECT_REFUSED(with_config("{\"sequence_len\":16,\"vocab_size\":2147483648,\"n_layer\":2,"
                             "\"n_head\":2,\"n_kv_head\":2,\"n_embd\":32}"),
                 NC_EINVAL, NC_ST_E_CONFIG);
  EXPECT_REFUSED(with_config("{\"sequence_len\":16,\"vocab_size\":64,\"n_layer\":2,"
                             "\"n_head\":3,\"n_kv_head\":3,\"n_embd\":32}"),
                 NC_EINVAL, NC_ST_E_CONFIG);  // n_embd % n_head != 0
  EXPECT_REFUSED(with_config("{\"sequence_len\":100000,\"vocab_size\":64,\"n_layer\":2,"
                             "\"n_head\":2,\"n_kv_head\":2,\"n_embd\":32}"),
                 NC_EINVAL, NC_ST_E_CONFIG);
  Load r = load_bytes(with_config("{\"sequence_len\":16,\"vocab_size\":64,\"n_layer\":0,\"n_head\":2,"
                                  "\"n_kv_head\":2,\"n_embd\":32}"));
  EXPECT_NE(std::string(r.err.msg).find("n_layer"), std::string::npos) << r.err.msg;
}

// A loader that allocated what the header claims would die under a small address-space
// limit; ours refuses first. (Skipped under ASan, which reserves terabytes of shadow.)
TEST(CheckpointCorrupt, NoAllocationBeyondTheFileUnderAnAddressSpaceLimit) {
#ifdef NC_SANITIZE
  GTEST_SKIP() << "RLIMIT_AS cannot be used with AddressSanitizer";
#else
  // the largest config the sanity limits allow (~4.6e10 parameters), in a 1 KB file
  std::string huge = with_config("{\"sequence_len\":65536,\"vocab_size\":1048576,\"n_layer\":256,"
                                 "\"n_head\":128,\"n_kv_head\":128,\"n_embd\":16384}");
  std::string claim = one("F32", "[1099511627776]", "[0,4398046511104]", "x");
  for (const std::string *b : {&huge, &claim}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // the limit: what the process maps now plus 256 MiB
      long pages = 0;
      FILE *sf = fopen("/proc/self/statm", "r");
      if (!sf || fscanf(sf, "%ld", &pages) != 1) _exit(2);
      fclose(sf);
      rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
      struct rlimit rl = {lim, lim};
      if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
      TempDir d;
      stt::write_file(d / "m", *b);
      int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
      nc_model *m = nullptr;
      nc_st_error err;
      int rc = nc_ckpt_read_model_file(fd, "m", nullptr, &m, nullptr, &err);
      _exit(rc != NC_OK && m == nullptr && err.kind != NC_ST_E_NOMEM ? 0 : 1);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  }
#endif
}

// faults.md row 30, the model side: a tokenizer whose vocab differs from the model's.
TEST(CheckpointCorrupt, VocabDiffersFromTokenizer) {
  TempDir d;
  ASSERT_TRUE(stt::write_file(d / "m", good_file()));
  int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
  nc_model *m = nullptr;
  nc_st_error err;
  nc_ckpt_load_opts o{nullptr, 0, 65};
  EXPECT_EQ(nc_ckpt_read_model_file(fd, "m", &o, &m, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(err.kind, NC_ST_E_CONFIG);
  EXPECT_NE(std::string(err.msg).find("tokenizer"), std::string::npos) << err.msg;
  EXPECT_EQ(m, nullptr);
  o.expected_vocab_size = 64;
  ASSERT_EQ(nc_ckpt_read_model_file(fd, "m", &o, &m, nullptr, &err), NC_OK) << err.msg;
  nc_model_free(m);
  close(fd);
}

TEST(CheckpointCorrupt, LoadedModelUntouchedByAFailedLoad) {
  TempDir d;
  ASSERT_TRUE(stt::write_file(d / "good", good_file()));
  ASSERT_TRUE(stt::write_file(d / "bad", good_file().substr(0, good_file().size() - 3)));
  int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
  nc_model *serving = nullptr, *other = nullptr;
  nc_st_error err;
  ASSERT_EQ(nc_ckpt_read_model_file(fd, "good", nullptr, &serving, nullptr, &err), NC_OK);
  int64_t n;
  std::vector<float> before(nc_model_param_buffer(serving, &n), nc_model_param_buffer(serving, &n) + n);
  EXPECT_EQ(nc_ckpt_read_model_file(fd, "bad", nullptr, &other, nullptr, &err), NC_ECORRUPT);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(0, memcmp(before.data(), nc_model_param_buffer(serving, nullptr), sizeof(float) * n));
  nc_model_free(serving);
  close(fd);
}

// ------------------------------------------------------------------ hashes, NaN, BF16

TEST(Checkpoint, Sha256CheckedWhenExpected) {
  TempDir d;
  nc_ckpt_dir *dir;
  nc_st_error err;
  ASSERT_EQ(nc_ckpt_dir_open_path(d.path.c_str(), 0, &dir, &err), NC_OK);
  nc_model *m = new_model(cfg2(), 1), *back = nullptr;
  char sha[65];
  ASSERT_EQ(nc_ckpt_save(dir, 7, m, nullptr, nullptr, nullptr, sha, &err), NC_OK) << err.msg;
  EXPECT_EQ(strlen(sha), 64u);
  nc_ckpt_load_opts o{sha, 0, 0};
  ASSERT_EQ(nc_ckpt_load_model(dir, 7, &o, &back, nullptr, &err), NC_OK) << err.msg;
  nc_model_free(back);
  std::string upper = sha;
  for (char &c : upper) c = (char)toupper(c);
  o.expected_sha256 = upper.c_str();
  ASSERT_EQ(nc_ckpt_load_model(dir, 7, &o, &back, nullptr, &err), NC_OK);
  nc_model_free(back);
  std::string wrong = sha;
  wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
  o.expected_sha256 = wrong.c_str();
  EXPECT_EQ(nc_ckpt_load_model(dir, 7, &o, &back, nullptr, &err), NC_ECORRUPT);
  EXPECT_EQ(err.kind, NC_ST_E_HASH);
  EXPECT_EQ(back, nullptr);
  // flip one data byte: the header is still valid, only the hash catches it
  std::string path = d / "model_000007.safetensors";
  std::string b = stt::read_file(path);
  b[b.size() - 5] ^= 0x10;
  ASSERT_TRUE(stt::write_file(path, b));
  o.expected_sha256 = sha;
  EXPECT_EQ(nc_ckpt_load_model(dir, 7, &o, &back, nullptr, &err), NC_ECORRUPT);
  EXPECT_EQ(err.kind, NC_ST_E_HASH);
  nc_model_free(m);
  nc_ckpt_dir_close(dir);
}

TEST(Checkpoint, NonFiniteRejectedOnlyWhenAsked) {
  TempDir d;
  nc_model *m = new_model(cfg2(), 1), *back = nullptr;
  nc_param *ps = nc_model_params(m, nullptr);
  ps[3].data[0] = NAN;  // backout_lambda
  int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
  nc_st_error err;
  ASSERT_EQ(nc_ckpt_write_model_file(fd, "m", m, nullptr, nullptr, nullptr, &err), NC_OK);
  ASSERT_EQ(nc_ckpt_read_model_file(fd, "m", nullptr, &back, nullptr, &err), NC_OK);  // faults row 41 needs it
  EXPECT_TRUE(std::isnan(nc_model_params(back, nullptr)[3].data[0]));
  nc_model_free(back);
  nc_ckpt_load_opts o{nullptr, 1, 0};
  EXPECT_EQ(nc_ckpt_read_model_file(fd, "m", &o, &back, nullptr, &err), NC_ECORRUPT);
  EXPECT_EQ(err.kind, NC_ST_E_NONFINITE);
  EXPECT_NE(std::string(err.msg).find("backout_lambda"), std::string::npos);
  close(fd);
  nc_model_free(m);
}

TEST(Checkpoint, Bf16EmbeddingsAreRoundedAndLoadWidened) {
  TempDir d;
  nc_model *m = new_model(cfg2(), 2), *back = nullptr;
  int fd = open(d.path.c_str(), O_RDONLY | O_DIRECTORY);
  nc_st_error err;
  nc_ckpt_save_opts so{};
  so.bf16_embeddings = 1;
  ASSERT_EQ(nc_ckpt_write_model_file(fd, "m", m, nullptr, &so, nullptr, &err), NC_OK);
  ASSERT_EQ(nc_ckpt_read_model_file(fd, "m", nullptr, &back, nullptr, &err), NC_OK) << err.msg;
  int n;
  nc_param *a = nc_model_params(m, &n), *b = nc_model_params(back, nullptr);
  for (int i = 0; i < n; i++) {
    bool bf = a[i].kind == NC_PK_WTE || a[i].kind == NC_PK_VALUE_EMBED;
    for (int64_t j = 0; j < a[i].numel; j++) {
      if (!bf) {
        ASSERT_EQ(a[i].data[j], b[i].data[j]) << a[i].name;
        continue;
      }
      uint32_t u;
      memcpy(&u, &b[i].data[j], 4);
      ASSERT_EQ(u & 0xFFFF, 0u) << a[i].name;  // a widened bfloat16
      ASSERT_LE(std::fabs(a[i].data[j] - b[i].data[j]), std::ldexp(std::fabs(a[i].data[j]), -8));
    }
  }
  EXPECT_LT(stt::read_file(d / "m").size(), good_file().size());
  close(fd);
  nc_model_free(m);
  nc_model_free(back);
}

// ------------------------------------------------------------------ round trips

void expect_same_model(nc_model *a, nc_model *b) {
  int64_t n, n2;
  const float *pa = nc_model_param_buffer(a, &n), *pb = nc_model_param_buffer(b, &n2);
  ASSERT_EQ(n, n2);
  EXPECT_EQ(0, memcmp(pa, pb, sizeof(float) * n));
  const nc_model_config *ca = nc_model_get_config(a), *cb = nc_model_get_config(b);
  EXPECT_EQ(ca->n_layer, cb->n_layer);
  EXPECT_EQ(ca->n_embd, cb->n_embd);
  EXPECT_EQ(ca->n_head, cb->n_head);
  EXPECT_EQ(ca->n_kv_head, cb->n_kv_head);
  EXPECT_EQ(ca->vocab_size, cb->vocab_size);
  EXPECT_EQ(ca->sequence_len, cb->sequence_len);
  EXPECT_EQ(ca->short_window, cb->short_window);
  EXPECT_STREQ(ca->window_pattern, cb->window_pattern);
}

TEST(Checkpoint, RoundTripModelAndOptimizerBitExact) {
  TempDir d;
  nc_ckpt_dir *dir;
  nc_st_error err;
  ASSERT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "d2", 1, &dir, &err), NC_OK) << err.msg;
  nc_model_config c = nct::tiny(3, 64, 2, 16, 100, "SSL", 5);
  nc_model *m = new_model(c, 5);
  int n;
  nc_param *ps = nc_model_params(m, &n);
  nc_optim_cfg oc = nc_optim_cfg_muonadamw(64);
  oc.weight_decay = 0.1;
  nc_optim *o;
  ASSERT_EQ(nc_optim_create(ps, n, &oc, &o, nullptr, 0), NC_OK);
  auto idx = nct::random_ids(32, 100, 1), tg = nct::random_ids(32, 100, 2);
  auto train = [&](nc_model *mm, nc_optim *oo, int steps) {
    for (int s = 0; s < steps; s++) {
      nc_model_zero_grad(mm);
      ASSERT_EQ(nc_model_forward_backward(mm, idx.data(), tg.data(), nullptr, 2, 16, 1.0f, nullptr), NC_OK);
      nc_optim_set_schedule(oo, 0.5 + 0.1 * s, 0.9, 0.05);
      ASSERT_EQ(nc_optim_step(oo, nullptr), NC_OK);
    }
  };
  train(m, o, 3);
  const char *meta = "{\"val_bpb\":1.25,\"user_config\":{\"depth\":2},\"loop_state\":{\"min_val_bpb\":1.2}}";
  ASSERT_EQ(nc_ckpt_save(dir, 3, m, o, meta, nullptr, nullptr, &err), NC_OK) << err.msg;
  // load into a fresh model + optimizer
  nc_model *m2 = nullptr;
  char *meta2 = nullptr;
  ASSERT_EQ(nc_ckpt_load_model(dir, 3, nullptr, &m2, &meta2, &err), NC_OK) << err.msg;
  expect_same_model(m, m2);
  json_t *mj = json_loads(meta2, 0, nullptr);
  EXPECT_EQ(json_integer_value(json_object_get(mj, "step")), 3);
  EXPECT_EQ(json_real_value(json_object_get(mj, "val_bpb")), 1.25);
  EXPECT_EQ(json_integer_value(json_object_get(json_object_get(mj, "user_config"), "depth")), 2);
  EXPECT_NE(json_object_get(mj, "model_config"), nullptr);
  json_decref(mj);
  free(meta2);
  // nanochat's meta_<step>.json (indent 2) holds the same document
  json_t *fj = json_loads(stt::read_file(d / "base_checkpoints/d2/meta_000003.json").c_str(), 0, nullptr);
  ASSERT_NE(fj, nullptr);
  EXPECT_EQ(json_integer_value(json_object_get(fj, "step")), 3);
  json_decref(fj);
  int n2;
  nc_param *ps2 = nc_model_params(m2, &n2);
  nc_optim *o2;
  ASSERT_EQ(nc_optim_create(ps2, n2, &oc, &o2, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_ckpt_load_optim(dir, 3, o2, &err), NC_OK) << err.msg;
  EXPECT_EQ(nc_optim_step_count(o2), 3);
  int nv;
  const nc_param *va = nc_optim_state(o, &nv), *vb = nc_optim_state(o2, nullptr);
  for (int i = 0; i < nv; i++)
    ASSERT_EQ(0, memcmp(va[i].data, vb[i].data, sizeof(float) * va[i].numel)) << va[i].name;
  for (int g = 0; g < nc_optim_n_groups(o); g++)
    EXPECT_EQ(nc_optim_group_at(o, g)->lr, nc_optim_group_at(o2, g)->lr);
  // resumed training is bit-identical to uninterrupted training
  train(m, o, 2);
  train(m2, o2, 2);
  expect_same_model(m, m2);
  // the optimizer file does not fit another optimizer or another model
  nc_optim *oa;
  nc_optim_cfg ac = nc_optim_cfg_adamw(1e-3, 0);
  ASSERT_EQ(nc_optim_create(ps2, n2, &ac, &oa, nullptr, 0), NC_OK);
  EXPECT_EQ(nc_ckpt_load_optim(dir, 3, oa, &err), NC_EINVAL);
  EXPECT_EQ(err.kind, NC_ST_E_MISSING) << err.msg;
  EXPECT_EQ(nc_optim_step_count(oa), 0);
  nc_optim_free(oa);
  nc_model *other = new_model(cfg2(), 1);
  int no;
  nc_param *po = nc_model_params(other, &no);
  nc_optim *oo;
  nc_optim_cfg occ = nc_optim_cfg_muonadamw(32);
  ASSERT_EQ(nc_optim_create(po, no, &occ, &oo, nullptr, 0), NC_OK);
  EXPECT_EQ(nc_ckpt_load_optim(dir, 3, oo, &err), NC_EINVAL);
  nc_optim_free(oo);
  nc_model_free(other);
  EXPECT_EQ(nc_ckpt_load_optim(dir, 4, o2, &err), NC_ENOTFOUND);
  EXPECT_EQ(err.kind, NC_ST_E_NOTFOUND);
  nc_optim_free(o);
  nc_optim_free(o2);
  nc_model_free(m);
  nc_model_free(m2);
  nc_ckpt_dir_close(dir);
}

TEST(Checkpoint, ListLatestAndCleanup) {
  TempDir d;
  nc_ckpt_dir *dir;
  nc_st_error err;
  ASSERT_EQ(nc_ckpt_dir_open(d.path.c_str(), "sft", "run-1.a", 1, &dir, &err), NC_OK) << err.msg;
  int64_t step = -1;
  EXPECT_EQ(nc_ckpt_latest(dir, &step, &err), NC_ENOTFOUND);
  nc_model *m = new_model(cfg2(), 1);
  for (int64_t s : {20, 5, 1000000})
    ASSERT_EQ(nc_ckpt_save(dir, s, m, nullptr, nullptr, nullptr, nullptr, &err), NC_OK) << err.msg;
  const std::string base = d / "chatsft_checkpoints/run-1.a/";
  // an orphan model without meta (a crash before the meta file) is not listed
  ASSERT_TRUE(stt::write_file(base + "model_000030.safetensors", good_file()));
  ASSERT_TRUE(stt::write_file(base + "meta_000040.json", "{}"));  // meta without a model
  ASSERT_TRUE(stt::write_file(base + "meta_12.json", "{}"));       // not a step name
  int64_t steps[8];
  int n = 0;
  ASSERT_EQ(nc_ckpt_list(dir, steps, 8, &n, &err), NC_OK);
  ASSERT_EQ(n, 3);
  EXPECT_EQ(steps[0], 5);
  EXPECT_EQ(steps[1], 20);
  EXPECT_EQ(steps[2], 1000000);
  ASSERT_EQ(nc_ckpt_latest(dir, &step, &err), NC_OK);
  EXPECT_EQ(step, 1000000);
  EXPECT_TRUE(stt::read_file(base + "model_1000000.safetensors").size() > 0);
  // temp files: a dead writer's is removed, a live one's (ours) is kept
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  std::string t_dead = base + ".model_000050.safetensors.tmp." + std::to_string(dead);
  std::string t_live = base + ".model_000060.safetensors.tmp." + std::to_string(getpid());
  ASSERT_TRUE(stt::write_file(t_dead, "partial"));
  ASSERT_TRUE(stt::write_file(t_live, "partial"));
  int removed = -1;
  ASSERT_EQ(nc_ckpt_cleanup(dir, &removed, &err), NC_OK);
  EXPECT_EQ(removed, 1);
  EXPECT_EQ(stt::read_file(t_dead), "");
  EXPECT_EQ(stt::read_file(t_live), "partial");
  EXPECT_EQ(nc_ckpt_save(dir, -1, m, nullptr, nullptr, nullptr, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_ckpt_save(dir, 1, m, nullptr, "[1]", nullptr, nullptr, &err), NC_EINVAL);
  nc_model_free(m);
  nc_ckpt_dir_close(dir);
}

// ------------------------------------------------------------------ faults.md row 27

TEST(CheckpointPath, TagAndPhaseAreValidated) {
  TempDir d;
  nc_ckpt_dir *dir = (nc_ckpt_dir *)0x1;
  nc_st_error err;
  for (const char *tag : {"../../etc/passwd", "/abs", "a/b", "", ".", "..", ".hidden", "-x",
                          "a b", "tab\t", "x\xc3\xa9"}) {
    EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", tag, 1, &dir, &err), NC_EINVAL) << tag;
    EXPECT_EQ(err.kind, NC_ST_E_PATH) << tag;
    EXPECT_EQ(dir, nullptr);
  }
  std::string long_tag(NC_CKPT_TAG_MAX + 1, 'a');
  EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", long_tag.c_str(), 1, &dir, &err), NC_EINVAL);
  EXPECT_TRUE(nc_ckpt_valid_tag(std::string(NC_CKPT_TAG_MAX, 'a').c_str()));
  EXPECT_TRUE(nc_ckpt_valid_tag("d20"));
  EXPECT_TRUE(nc_ckpt_valid_tag("my_run.v2-final"));
  for (const char *phase : {"mid", "../base", "", "BASE"}) {
    EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), phase, "d2", 1, &dir, &err), NC_EINVAL) << phase;
    EXPECT_EQ(err.kind, NC_ST_E_PATH);
  }
  EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "rl", "d2", 0, &dir, &err), NC_ENOTFOUND);
  EXPECT_EQ(stt::list_dir(d.path).size(), 0u);  // nothing was created by the refused calls
  ASSERT_EQ(nc_ckpt_dir_open(d.path.c_str(), "rl", "d2", 1, &dir, &err), NC_OK);
  nc_ckpt_dir_close(dir);
  struct stat st;
  EXPECT_EQ(stat((d / "chatrl_checkpoints/d2").c_str(), &st), 0);
}

TEST(CheckpointPath, SymlinksAreRefused) {
  TempDir d, outside;
  nc_ckpt_dir *dir;
  nc_st_error err;
  ASSERT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "real", 1, &dir, &err), NC_OK);
  nc_model *m = new_model(cfg2(), 1);
  ASSERT_EQ(nc_ckpt_save(dir, 1, m, nullptr, nullptr, nullptr, nullptr, &err), NC_OK);
  nc_ckpt_dir_close(dir);
  // a tag directory that is a symlink out of the tree
  ASSERT_EQ(symlink(outside.path.c_str(), (d / "base_checkpoints/evil").c_str()), 0);
  EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "evil", 0, &dir, &err), NC_EPERM);
  EXPECT_EQ(err.kind, NC_ST_E_SYMLINK);
  EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "evil", 1, &dir, &err), NC_EPERM);
  // a phase directory that is a symlink
  ASSERT_EQ(symlink((d / "base_checkpoints").c_str(), (d / "chatsft_checkpoints").c_str()), 0);
  EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "sft", "real", 0, &dir, &err), NC_EPERM);
  // a model file that is a symlink (to a valid checkpoint elsewhere)
  ASSERT_TRUE(stt::write_file(outside / "model.safetensors", good_file()));
  ASSERT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "real", 0, &dir, &err), NC_OK);
  ASSERT_EQ(symlink((outside / "model.safetensors").c_str(),
                    (d / "base_checkpoints/real/model_000002.safetensors").c_str()), 0);
  ASSERT_TRUE(stt::write_file(d / "base_checkpoints/real/meta_000002.json", "{}"));
  nc_model *back = nullptr;
  EXPECT_EQ(nc_ckpt_load_model(dir, 2, nullptr, &back, nullptr, &err), NC_EPERM);
  EXPECT_EQ(err.kind, NC_ST_E_SYMLINK);
  EXPECT_EQ(back, nullptr);
  int64_t latest = 0;
  ASSERT_EQ(nc_ckpt_latest(dir, &latest, &err), NC_OK);
  EXPECT_EQ(latest, 1);  // the symlinked step is not a complete checkpoint
  // a regular file where the tag directory should be
  ASSERT_TRUE(stt::write_file(d / "base_checkpoints/file", "x"));
  nc_ckpt_dir *f;
  EXPECT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "file", 0, &f, &err), NC_EINVAL);
  EXPECT_EQ(err.kind, NC_ST_E_PATH);
  nc_ckpt_dir_close(dir);
  nc_model_free(m);
}

// ------------------------------------------------------------------ faults.md row 28

TEST(CheckpointCrash, CrashAtEverySaveStepLeavesACompleteCheckpoint) {
  const char *points[] = {"optim:header", "optim:data", "optim:fsync", "optim:rename",
                          "model:header", "model:data", "model:fsync", "model:rename",
                          "meta:data",    "meta:fsync", "meta:rename"};
  for (const char *point : points) {
    SCOPED_TRACE(point);
    TempDir d;
    nc_ckpt_dir *dir;
    nc_st_error err;
    ASSERT_EQ(nc_ckpt_dir_open(d.path.c_str(), "base", "d2", 1, &dir, &err), NC_OK);
    nc_model *m = new_model(cfg2(), 1);
    int n;
    nc_param *ps = nc_model_params(m, &n);
    nc_optim_cfg oc = nc_optim_cfg_muonadamw(32);
    nc_optim *o;
    ASSERT_EQ(nc_optim_create(ps, n, &oc, &o, nullptr, 0), NC_OK);
    ASSERT_EQ(nc_ckpt_save(dir, 1, m, o, nullptr, nullptr, nullptr, &err), NC_OK);
    const std::string base = d / "base_checkpoints/d2/";
    const std::string model1 = stt::read_file(base + "model_000001.safetensors");
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the writer: new weights, then "power cut" at the fault point
      ps[0].data[0] += 1.0f;
      nc_ckpt_save_opts so{};
      so.fault = [](void *ctx, const char *p) -> int {
        if (strcmp(p, (const char *)ctx) == 0) _exit(42);
        return 0;
      };
      so.fault_ctx = (void *)point;
      nc_ckpt_save(dir, 2, m, o, nullptr, &so, nullptr, &err);
      _exit(1);  // the fault point was never reached
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 42) << "status " << st;
    const bool committed = !strcmp(point, "meta:rename");
    int64_t latest = -1;
    ASSERT_EQ(nc_ckpt_latest(dir, &latest, &err), NC_OK);
    EXPECT_EQ(latest, committed ? 2 : 1);
    // the old checkpoint is intact, and whatever carries a final name is complete
    EXPECT_EQ(stt::read_file(base + "model_000001.safetensors"), model1);
    for (const std::string &name : stt::list_dir(base.substr(0, base.size() - 1))) {
      if (nc_st_is_temp_name(name.c_str(), nullptr)) continue;
      if (name.find(".safetensors") == std::string::npos) continue;
      nc_st_file *f;
      EXPECT_EQ(nc_st_open((base + name).c_str(), &f, &err), NC_OK) << name << ": " << err.msg;
      nc_st_close(f);
    }
    nc_model *back = nullptr;
    ASSERT_EQ(nc_ckpt_load_model(dir, latest, nullptr, &back, nullptr, &err), NC_OK) << err.msg;
    EXPECT_EQ(nc_model_params(back, nullptr)[0].data[0], ps[0].data[0] + (committed ? 1.0f : 0.0f));
    nc_model_free(back);
    ASSERT_EQ(nc_ckpt_load_optim(dir, latest, o, &err), NC_OK) << err.msg;
    // after "restart": temp files of the dead writer are removed
    ASSERT_EQ(nc_ckpt_cleanup(dir, nullptr, &err), NC_OK);
    for (const std::string &name : stt::list_dir(base.substr(0, base.size() - 1)))
      EXPECT_FALSE(nc_st_is_temp_name(name.c_str(), nullptr)) << name;
    nc_optim_free(o);
    nc_model_free(m);
    nc_ckpt_dir_close(dir);
  }
}

TEST(Checkpoint, BadArguments) {
  nc_st_error err;
  nc_model *m = nullptr;
  EXPECT_EQ(nc_ckpt_load_model(nullptr, 1, nullptr, &m, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_ckpt_read_model_file(AT_FDCWD, "a/b", nullptr, &m, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_ckpt_read_model_file(AT_FDCWD, "/nonexistent-file", nullptr, &m, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_ckpt_read_model_file(AT_FDCWD, "no-such-file.safetensors", nullptr, &m, nullptr, &err),
            NC_ENOTFOUND);
  EXPECT_EQ(nc_ckpt_read_model_file(AT_FDCWD, "x", nullptr, nullptr, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_ckpt_save(nullptr, 1, nullptr, nullptr, nullptr, nullptr, nullptr, &err), NC_EINVAL);
  EXPECT_EQ(nc_ckpt_dir_open(nullptr, "base", "x", 0, nullptr, &err), NC_EINVAL);
  nc_ckpt_dir *d;
  EXPECT_EQ(nc_ckpt_dir_open_path("/nonexistent/dir", 0, &d, &err), NC_ENOTFOUND);
  nc_ckpt_dir_close(nullptr);
}

}  // namespace
