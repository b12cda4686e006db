// Unit tests for the request validator (service/nc_validate.h) and the generated RPC table
// (build/gen/svc/nc_rpc_table.h): UTF-8/NUL, identifiers, numeric ranges, counts, lengths,
// enums, error messages that name the field path, and the bounded unpack allocator.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

extern "C" {
#include "nanochat/v1/chat.pb-c.h"
#include "nc_err.h"
#include "nc_gate.h"
#include "nc_rpc_table.h"
#include "nc_validate.h"
}
#include "service_test_util.h"

using wire::f32;
using wire::ld;
using wire::vi;

namespace {

// ChatMessage {role = 1 (enum), content = 2}
std::string msg(int role, const std::string &content) { return vi(1, role) + ld(2, content); }
std::string user(const std::string &content) { return msg(1, content); }

struct Res {
  int rc;
  std::string err;
};

// size + unpack + validation of a Chat.Complete request
Res chat(const std::string &wire_bytes) {
  const nc_rpc_method *m = &nc_rpc_methods[NC_M_CHAT_COMPLETE];
  nc_pb_alloc a;
  nc_pb_alloc_init(&a, nc_pb_alloc_budget(m->max_request_bytes));
  ProtobufCMessage *out = nullptr;
  char err[256] = "";
  int rc = nc_gate_unpack(m, (const uint8_t *)wire_bytes.data(), wire_bytes.size(), &a, &out,
                          err, sizeof err);
  if (out) protobuf_c_message_free_unpacked(out, &a.base);
  EXPECT_EQ(a.used, 0u) << "allocator leak";
  return {rc, err};
}

}  // namespace

TEST(Utf8, Table) {
  struct Case { std::string s; bool ok; } cases[] = {
      {"", true},
      {"plain ascii text, longer than eight bytes", true},
      {"caf\xc3\xa9", true},
      {"\xe2\x82\xac", true},                 // U+20AC
      {"\xf0\x9f\x98\x80", true},             // U+1F600
      {"\xf4\x8f\xbf\xbf", true},             // U+10FFFF
      {"\xef\xbb\xbf", true},                 // BOM is a valid code point
      {std::string("a\0b", 3), false},        // NUL
      {std::string("abcdefgh\0", 9), false},  // NUL after the fast path
      {"\x80", false},                        // lone continuation
      {"\xc0\xaf", false},                    // overlong '/'
      {"\xc1\xbf", false},
      {"\xe0\x80\xaf", false},                // overlong 3-byte
      {"\xf0\x80\x80\xaf", false},            // overlong 4-byte
      {"\xed\xa0\x80", false},                // surrogate U+D800
      {"\xed\xbf\xbf", false},                // surrogate U+DFFF
      {"\xf4\x90\x80\x80", false},            // U+110000
      {"\xf5\x80\x80\x80", false},
      {"\xff", false},
      {"\xc3", false},                        // truncated
      {"abc\xe2\x82", false},
      {"\xf0\x9f\x98", false},
      {"\xc3\x28", false},                    // bad continuation
      {"\xe2\x28\xa1", false},
  };
  for (auto &cs : cases)
    EXPECT_EQ(nc_utf8_valid((const uint8_t *)cs.s.data(), cs.s.size()), cs.ok)
        << testing::PrintToString(cs.s);
}

TEST(Ident, Table) {
  struct Case { const char *s; bool ok; } cases[] = {
      {"abc", true}, {"d12_base.v2-x", true}, {"A", true}, {"_x", true},
      {"", false}, {".", false}, {"..", false}, {".hidden", false}, {"-rf", false},
      {"a/b", false}, {"../etc", false}, {"a b", false}, {"a\\b", false}, {"caf\xc3\xa9", false},
  };
  for (auto &cs : cases) EXPECT_EQ(nc_ident_valid(cs.s, strlen(cs.s), 64), cs.ok) << cs.s;
  std::string long_ok(64, 'a'), too_long(65, 'a');
  EXPECT_TRUE(nc_ident_valid(long_ok.data(), long_ok.size(), 64));
  EXPECT_FALSE(nc_ident_valid(too_long.data(), too_long.size(), 64));
}

TEST(RpcTable, ConsistentWithDescriptors) {
  char err[256] = "";
  EXPECT_EQ(nc_rpc_table_check(err, sizeof err), NC_OK) << err;
}

TEST(RpcTable, RowsAreWellFormed) {
  std::set<std::string> paths, iii;
  for (int i = 0; i < NC_RPC_COUNT; i++) {
    const nc_rpc_method &m = nc_rpc_methods[i];
    SCOPED_TRACE(m.path);
    EXPECT_TRUE(paths.insert(m.path).second) << "duplicate path";
    EXPECT_EQ(std::string(m.path), "/" + std::string(m.service) + "/" + m.name);
    EXPECT_NE(m.handler, nullptr);
    EXPECT_NE(m.input, nullptr);
    EXPECT_NE(m.output, nullptr);
    EXPECT_NE(m.input_rules, nullptr);
    EXPECT_GT(m.max_request_bytes, 0u);
    EXPECT_LE(m.max_request_bytes, 4u << 20);
    EXPECT_EQ(m.input_rules->desc, m.input);
    bool std_service = std::string(m.service).rfind("grpc.", 0) == 0;
    if (!std_service) {
      EXPECT_TRUE(iii.insert(m.iii_id).second) << "duplicate iii id";
      EXPECT_EQ(std::string(m.iii_id).rfind("nanochat.", 0), 0u);
    }
    // only health checks and reflection are public
    bool is_public = m.flags & NC_RPC_PUBLIC;
    bool health_like = std::string(m.service).find("Health") != std::string::npos ||
                       std::string(m.service).find("Reflection") != std::string::npos;
    EXPECT_EQ(is_public, health_like);
    EXPECT_EQ(nc_rpc_find(m.path, strlen(m.path)), &m);
  }
  EXPECT_EQ(nc_rpc_find("/nanochat.v1.Chat/Nope", 22), nullptr);
  EXPECT_EQ(nc_rpc_find("/nanochat.v1.Chat/Complete", 10), nullptr);  // prefix only
}

TEST(RpcTable, TheTwentyFunctionsArePresent) {
  const char *ids[] = {"nanochat.chat.complete", "nanochat.chat.stream", "nanochat.chat.history",
                       "nanochat.model.load", "nanochat.model.status", "nanochat.model.sample",
                       "nanochat.tokenizer.encode", "nanochat.tokenizer.decode",
                       "nanochat.tools.execute", "nanochat.train.tokenizer", "nanochat.train.base",
                       "nanochat.train.sft", "nanochat.train.rl", "nanochat.train.status",
                       "nanochat.eval.core", "nanochat.eval.loss", "nanochat.eval.chat",
                       "nanochat.checkpoint.save", "nanochat.checkpoint.list", "nanochat.health"};
  for (const char *id : ids) {
    bool found = false;
    for (int i = 0; i < NC_RPC_COUNT; i++) found |= std::string(nc_rpc_methods[i].iii_id) == id;
    EXPECT_TRUE(found) << id;
  }
  EXPECT_TRUE(nc_rpc_methods[NC_M_CHAT_STREAM].flags & NC_RPC_SERVER_STREAMING);
  EXPECT_TRUE(nc_rpc_methods[NC_M_TRAIN_STATUS].flags & NC_RPC_SERVER_STREAMING);
  EXPECT_FALSE(nc_rpc_methods[NC_M_CHAT_COMPLETE].flags & NC_RPC_SERVER_STREAMING);
  EXPECT_TRUE(nc_rpc_methods[NC_M_GRPC_REFLECTION_INFO].flags & NC_RPC_CLIENT_STREAMING);
}

TEST(Validate, ValidRequestPasses) {
  Res r = chat(ld(1, user("hello")) + f32(2, 0.7f) + vi(3, 40) + vi(4, 100) +
               ld(5, "session_0123456789abcdef"));
  EXPECT_EQ(r.rc, NC_OK) << r.err;
}

TEST(Validate, EmptyRequestFailsMinCount) {
  Res r = chat("");
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_NE(r.err.find("messages"), std::string::npos) << r.err;
}

TEST(Validate, InvalidUtf8NamesTheElement) {
  std::string w = ld(1, user("a")) + ld(1, msg(2, "b")) + ld(1, user("c")) + ld(1, user("bad \xff"));
  Res r = chat(w);
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_EQ(r.err, "messages[3].content: invalid UTF-8");
}

TEST(Validate, EmbeddedNulIsSeenOnTheWire) {
  // protobuf-c would read "a\0b" as "a": the validator checks the wire bytes
  Res r = chat(ld(1, user(std::string("a\0b", 3))));
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_NE(r.err.find("messages[0].content"), std::string::npos) << r.err;
}

TEST(Validate, UnruledStringsAreCheckedToo) {
  Res r = chat(ld(1, user("x")) + ld(5, "\xc3\x28"));
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_NE(r.err.find("session_id"), std::string::npos) << r.err;
}

TEST(Validate, NumericRangesNameTheField) {
  struct Case { std::string extra; const char *field; } cases[] = {
      {f32(2, 2.5f), "temperature"},
      {f32(2, -0.1f), "temperature"},
      {f32(2, std::numeric_limits<float>::quiet_NaN()), "temperature"},
      {f32(2, std::numeric_limits<float>::infinity()), "temperature"},
      {wire::vi_signed(3, -1), "top_k"},
      {vi(3, 201), "top_k"},
      {vi(4, 0), "max_tokens"},
      {vi(4, 4097), "max_tokens"},
      {f32(6, 0.0f), "top_p"},
      {f32(7, 1.5f), "min_p"},
  };
  for (auto &cs : cases) {
    Res r = chat(ld(1, user("x")) + cs.extra);
    EXPECT_EQ(r.rc, NC_EINVAL) << cs.field;
    EXPECT_EQ(r.err.rfind(cs.field, 0), 0u) << r.err;   // message starts with the field
  }
  // the bounds themselves are accepted
  EXPECT_EQ(chat(ld(1, user("x")) + f32(2, 0.0f) + f32(2, 2.0f) + vi(3, 200) + vi(4, 4096)).rc,
            NC_OK);
}

TEST(Validate, CountsAndLengths) {
  std::string many;
  for (int i = 0; i < 501; i++) many += ld(1, user("x"));
  Res r = chat(many);
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_NE(r.err.find("messages"), std::string::npos) << r.err;
  Res r2 = chat(ld(1, user(std::string(8001, 'a'))));
  EXPECT_EQ(r2.rc, NC_EINVAL);
  EXPECT_NE(r2.err.find("messages[0].content"), std::string::npos) << r2.err;
  EXPECT_EQ(chat(ld(1, user(std::string(8000, 'a')))).rc, NC_OK);
}

TEST(Validate, IdentifierFields) {
  for (const char *bad : {"../../etc/passwd", ".hidden", "a/b", "-rf"}) {
    Res r = chat(ld(1, user("x")) + ld(5, bad));
    EXPECT_EQ(r.rc, NC_EINVAL) << bad;
    EXPECT_NE(r.err.find("session_id"), std::string::npos) << r.err;
  }
  Res r = chat(ld(1, user("x")) + ld(5, std::string(65, 'a')));
  EXPECT_EQ(r.rc, NC_EINVAL);
}

TEST(Validate, UndeclaredEnumValue) {
  Res r = chat(ld(1, msg(99, "x")));
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_NE(r.err.find("messages[0].role"), std::string::npos) << r.err;
}

TEST(Validate, ErrorsNeverEchoTheValue) {
  std::string secret = "SECRET-CANARY-\xff";
  Res r = chat(ld(1, user(secret)));
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_EQ(r.err.find("SECRET"), std::string::npos) << r.err;
}

TEST(Unpack, MalformedAndOversize) {
  Res r = chat(std::string("\x0a\xff\xff\xff\xff\x0f", 6));   // length beyond the buffer
  EXPECT_EQ(r.rc, NC_EINVAL);
  EXPECT_EQ(r.err, "malformed request");
  Res r2 = chat(std::string("\x0a\x05\x08", 3));                  // truncated sub-message
  EXPECT_EQ(r2.rc, NC_EINVAL);
  const nc_rpc_method *m = &nc_rpc_methods[NC_M_CHAT_COMPLETE];
  Res r3 = chat(ld(1, user(std::string(m->max_request_bytes, 'a'))));
  EXPECT_EQ(r3.rc, NC_EFULL);
  EXPECT_NE(r3.err.find(m->path), std::string::npos) << r3.err;
}

TEST(PbAlloc, BudgetIsEnforced) {
  // 3,000 empty ChatMessages: each costs a struct allocation far larger than its 2 wire bytes
  std::string w;
  for (int i = 0; i < 3000; i++) w += ld(1, "");
  nc_pb_alloc a;
  nc_pb_alloc_init(&a, 16 * 1024);
  ProtobufCMessage *m = protobuf_c_message_unpack(&nanochat__v1__chat_request__descriptor,
                                                  &a.base, w.size(), (const uint8_t *)w.data());
  EXPECT_EQ(m, nullptr);
  EXPECT_TRUE(a.exceeded);
  EXPECT_EQ(a.used, 0u);
  nc_pb_alloc b;
  nc_pb_alloc_init(&b, nc_pb_alloc_budget(65536));
  m = protobuf_c_message_unpack(&nanochat__v1__chat_request__descriptor, &b.base, w.size(),
                                (const uint8_t *)w.data());
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(b.exceeded);
  EXPECT_GT(b.peak, 0u);
  protobuf_c_message_free_unpacked(m, &b.base);
  EXPECT_EQ(b.used, 0u);
  EXPECT_GE(nc_pb_alloc_budget(1), 64u * 1024);
  EXPECT_GE(nc_pb_alloc_budget(1u << 20), 1u << 20);
}
