// Unit tests for the dispatch gate (service/nc_gate.h): the order of the seven checks and the
// code/message each produces, slot accounting, and that nothing is held after a refusal.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "nc_err.h"
#include "nc_gate.h"
#include "nc_rpc_table.h"
#include "nc_status.h"
}
#include "service_test_util.h"

namespace {

const std::string kTok = "gate-admin-token-0123456789";
const std::string kUserTok = "gate-user-token-0123456789";

bool model_ready(void *arg) { return *(bool *)arg; }

class Gate : public ::testing::Test {
 protected:
  void SetUp() override {
    memset(&auth, 0, sizeof auth);
    memset(&app, 0, sizeof app);
    for (auto &c : inflight) c = 0;
    app.model.ready = model_ready;
    app.model.arg = &ready;
    nc_gate_init(&g, &auth, &app, inflight);
  }
  void tokens() {
    ASSERT_EQ(nc_auth_set_token(&auth, true, kTok.data(), kTok.size()), NC_OK);
    ASSERT_EQ(nc_auth_set_token(&auth, false, kUserTok.data(), kUserTok.size()), NC_OK);
  }
  // Admits one call of method `idx` with `payload`; frees what the gate handed out unless
  // keep is set (then the caller releases).
  int admit(int idx, const std::string &payload, const std::string &hdr = "", bool has_payload = true,
            int64_t deadline = INT64_MAX, bool keep = false) {
    nc_gate_in in{};
    in.m = &nc_rpc_methods[idx];
    std::string h = hdr.empty() ? "" : "Bearer " + hdr;
    in.n_auth = hdr.empty() ? 0 : 1;
    in.auth = h.data();
    in.auth_len = h.size();
    in.has_payload = has_payload;
    in.payload = (const uint8_t *)payload.data();
    in.payload_len = payload.size();
    in.now_ms = 1000;
    in.deadline_ms = deadline;
    nc_pb_alloc_init(&alloc, nc_pb_alloc_budget(in.m->max_request_bytes));
    int rc = nc_gate_admit(&g, &in, &alloc, &out);
    EXPECT_EQ(rc, out.err);
    if (rc != NC_OK) {
      EXPECT_EQ(out.req, nullptr);
      EXPECT_FALSE(out.slot_held);
      EXPECT_EQ(alloc.used, 0u);
    } else if (!keep) {
      finish(idx);
    }
    return rc;
  }
  void finish(int idx) {
    if (out.req) protobuf_c_message_free_unpacked(out.req, &alloc.base);
    out.req = nullptr;
    if (out.slot_held) nc_gate_release(&g, &nc_rpc_methods[idx]);
    out.slot_held = false;
    EXPECT_EQ(alloc.used, 0u);
  }

  nc_auth auth;
  nc_app app;
  bool ready = true;
  atomic_uint inflight[NC_RPC_COUNT];
  nc_gate g;
  nc_pb_alloc alloc;
  nc_gate_out out;
};

std::string chat_ok() { return wire::ld(1, wire::vi(1, 1) + wire::ld(2, "hi")); }
std::string load_req() { return ""; }   // ModelLoadRequest: every field optional

}  // namespace

TEST_F(Gate, OpenModeAdmitsAndUnpacks) {
  ASSERT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok(), "", true, INT64_MAX, true), NC_OK);
  ASSERT_NE(out.req, nullptr);
  EXPECT_EQ(out.scope, NC_SCOPE_ADMIN);
  finish(NC_M_CHAT_COMPLETE);
}

TEST_F(Gate, AuthComesFirst) {
  tokens();
  // oversize, malformed, invalid UTF-8 and a passed deadline all lose to the missing token
  std::string huge(nc_rpc_methods[NC_M_CHAT_COMPLETE].max_request_bytes + 1, 'x');
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, huge), NC_EAUTH);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, "\xff\xff"), NC_EAUTH);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok(), "", true, 0), NC_EAUTH);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok(), "wrong-token-0123456789"), NC_EAUTH);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok(), kTok), NC_OK);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok(), kUserTok), NC_OK);
  EXPECT_EQ(admit(NC_M_MODEL_LOAD, load_req(), kUserTok), NC_EPERM);
  EXPECT_EQ(admit(NC_M_MODEL_LOAD, load_req(), kTok), NC_OK);
  // public methods need no token
  EXPECT_EQ(admit(NC_M_HEALTH_CHECK, ""), NC_OK);
  EXPECT_EQ(admit(NC_M_GRPC_HEALTH_CHECK, ""), NC_OK);
}

TEST_F(Gate, SizeBeforeUnpackBeforeValidation) {
  std::string huge = wire::ld(
      1, wire::ld(2, std::string(nc_rpc_methods[NC_M_CHAT_COMPLETE].max_request_bytes, 'a')));
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, huge), NC_EFULL);
  EXPECT_NE(std::string(out.msg).find("bytes"), std::string::npos) << out.msg;
  EXPECT_EQ(nc_status_from_err(NC_EFULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, "\x0a\x7f"), NC_EINVAL);
  EXPECT_STREQ(out.msg, "malformed request");
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, wire::ld(1, wire::ld(2, "\xff"))), NC_EINVAL);
  EXPECT_STREQ(out.msg, "messages[0].content: invalid UTF-8");
  EXPECT_EQ(admit(NC_M_HEALTH_CHECK, std::string(1025, '\0')), NC_EFULL);  // 1 KiB cap
}

TEST_F(Gate, MissingPayload) {
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, "", "", false), NC_EINVAL);
}

TEST_F(Gate, NeedsModel) {
  ready = false;
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok()), NC_ESTATE);
  EXPECT_STREQ(out.msg, "no model loaded");
  EXPECT_EQ(nc_status_from_err(NC_ESTATE), GRPC_STATUS_FAILED_PRECONDITION);
  // validation still wins over the model check
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, ""), NC_EINVAL);
  // methods that do not need a model are unaffected
  EXPECT_EQ(admit(NC_M_MODEL_STATUS, ""), NC_OK);
  EXPECT_EQ(admit(NC_M_CHAT_HISTORY, ""), NC_OK);
  ready = true;
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok()), NC_OK);
}

TEST_F(Gate, NoEngineHookLetsCallsThrough) {
  app.model.ready = nullptr;
  ready = false;
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok()), NC_OK);
}

TEST_F(Gate, ConcurrencySlot) {
  const nc_rpc_method &m = nc_rpc_methods[NC_M_MODEL_LOAD];
  ASSERT_EQ(m.max_concurrency, 1u);
  ASSERT_EQ(admit(NC_M_MODEL_LOAD, load_req(), "", true, INT64_MAX, true), NC_OK);
  EXPECT_TRUE(out.slot_held);
  nc_gate_out first = out;
  nc_pb_alloc first_alloc = alloc;
  EXPECT_EQ(admit(NC_M_MODEL_LOAD, load_req()), NC_EBUSY);
  EXPECT_NE(std::string(out.msg).find("Model/Load"), std::string::npos) << out.msg;
  EXPECT_EQ(nc_status_from_err(NC_EBUSY), GRPC_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(inflight[NC_M_MODEL_LOAD], 1u);
  out = first;
  alloc = first_alloc;
  out.req = first.req;
  finish(NC_M_MODEL_LOAD);
  EXPECT_EQ(inflight[NC_M_MODEL_LOAD], 0u);
  EXPECT_EQ(admit(NC_M_MODEL_LOAD, load_req()), NC_OK);
  EXPECT_EQ(inflight[NC_M_MODEL_LOAD], 0u);
}

TEST_F(Gate, DeadlineAlreadyPassedReleasesTheSlot) {
  EXPECT_EQ(admit(NC_M_MODEL_LOAD, load_req(), "", true, 1000), NC_ETIMEDOUT);
  EXPECT_EQ(inflight[NC_M_MODEL_LOAD], 0u);
  EXPECT_EQ(nc_status_from_err(NC_ETIMEDOUT), GRPC_STATUS_DEADLINE_EXCEEDED);
  EXPECT_EQ(admit(NC_M_CHAT_COMPLETE, chat_ok(), "", true, 1001), NC_OK);
}

TEST_F(Gate, ClientStreamingSkipsTheInitialPayload) {
  EXPECT_EQ(admit(NC_M_GRPC_REFLECTION_INFO, "", "", false), NC_OK);
}

TEST(Status, MappingTable) {
  struct Case { int err; grpc_status_code code; } cases[] = {
      {NC_OK, GRPC_STATUS_OK},
      {NC_EINVAL, GRPC_STATUS_INVALID_ARGUMENT},
      {NC_EAUTH, GRPC_STATUS_UNAUTHENTICATED},
      {NC_EPERM, GRPC_STATUS_PERMISSION_DENIED},
      {NC_ENOTFOUND, GRPC_STATUS_NOT_FOUND},
      {NC_EEXIST, GRPC_STATUS_ALREADY_EXISTS},
      {NC_ECONFLICT, GRPC_STATUS_ABORTED},
      {NC_EBUSY, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {NC_EFULL, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {NC_ENOSPC, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {NC_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED},
      {NC_ESTATE, GRPC_STATUS_FAILED_PRECONDITION},
      {NC_ETIMEDOUT, GRPC_STATUS_DEADLINE_EXCEEDED},
      {NC_ECANCELED, GRPC_STATUS_CANCELLED},
      {NC_ENOTREADY, GRPC_STATUS_UNAVAILABLE},
      {NC_ECORRUPT, GRPC_STATUS_DATA_LOSS},
      {NC_EIO, GRPC_STATUS_INTERNAL},
      {NC_EINTERNAL, GRPC_STATUS_INTERNAL},
      {NC_ERANGE, GRPC_STATUS_INTERNAL},
      {NC_ENOTSUP, GRPC_STATUS_UNIMPLEMENTED},
      {-9999, GRPC_STATUS_INTERNAL},
      {7, GRPC_STATUS_INTERNAL},
  };
  for (auto &cs : cases) EXPECT_EQ(nc_status_from_err(cs.err), cs.code) << nc_errname(cs.err);
  // every NC_E* code maps to something other than OK
  for (int c = -1; c > -NC_ERR_COUNT; c--) EXPECT_NE(nc_status_from_err(c), GRPC_STATUS_OK) << c;
  EXPECT_STREQ(nc_status_name(GRPC_STATUS_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(nc_status_name(GRPC_STATUS_OK), "OK");
  EXPECT_STREQ(nc_status_name((grpc_status_code)99), "UNKNOWN_CODE");
}
