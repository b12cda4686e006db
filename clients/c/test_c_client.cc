// test_c_client.cc — the C SDK (libncclient) against a real nanochatd: status calls, the
// generated method table, chat without a model (typed FAILED_PRECONDITION) and against a served
// tiny model (Model.Load, Model.Status with its config, a greedy Chat.Complete reply that the
// Chat.Stream pieces reproduce, Model.Sample), typed auth / argument / state / deadline / unavailable errors, job
// handles over Train.TestJob (ordered progress, wait, cancel), stream cancel from another
// thread, client-side argument checks, and the example program.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "nc_client.h"
#include "nc_test_server.h"

namespace {

const char *kToken = "c-sdk-admin-token-0123456789";
const char *kUser = "c-sdk-user-token-0123456789";

struct Client {
  nc_client *cl = nullptr;
  explicit Client(const std::string &addr, const char *token = nullptr, int64_t timeout = 0) {
    nc_client_options o = {};
    o.address = addr.c_str();
    o.token = token;
    o.timeout_ms = timeout;
    nc_client_error err;
    EXPECT_EQ(nc_client_new(&o, &cl, &err), NCC_OK) << err.message;
  }
  ~Client() { nc_client_free(cl); }
};

template <class T>
void Free(T *m) {
  if (m) protobuf_c_message_free_unpacked(&m->base, nullptr);
}

// Reads s to its end, dropping the messages; returns the code it ended with.
int Drain(nc_client_stream *s, nc_client_error *err) {
  ProtobufCMessage *m = nullptr;
  int rc;
  while ((rc = nc_client_stream_next(s, &m, err)) == NCC_OK && m)
    protobuf_c_message_free_unpacked(m, nullptr);
  return rc;
}

nc_client_job StartTestJob(nc_client *cl, int steps, int step_ms) {
  Nanochat__V1__TestJobRequest rq = NANOCHAT__V1__TEST_JOB_REQUEST__INIT;
  rq.has_steps = 1;
  rq.steps = steps;
  rq.has_step_ms = 1;
  rq.step_ms = step_ms;
  nc_client_job job;
  nc_client_error err;
  EXPECT_EQ(nc_client_job_start(cl, NCC_M_TRAIN_TEST_JOB, &rq.base, &job, &err), NCC_OK)
      << err.message;
  return job;
}

TEST(CClient, StatusCallsSucceed) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_error err;
  ASSERT_EQ(nc_client_wait_ready(c.cl, 10000, &err), NCC_OK) << err.message;
  Nanochat__V1__HealthCheckRequest hq = NANOCHAT__V1__HEALTH_CHECK_REQUEST__INIT;
  Nanochat__V1__HealthCheckResponse *h = nullptr;
  ASSERT_EQ(ncc_health_check(c.cl, &hq, &h, 0, &err), NCC_OK) << err.message;
  EXPECT_STREQ(h->status, "ok");
  EXPECT_STREQ(h->worker, "nanochat-c");
  Free(h);
  Nanochat__V1__ModelStatusRequest mq = NANOCHAT__V1__MODEL_STATUS_REQUEST__INIT;
  Nanochat__V1__ModelStatus *m = nullptr;
  ASSERT_EQ(ncc_model_status(c.cl, &mq, &m, 0, &err), NCC_OK) << err.message;
  EXPECT_FALSE(m->loaded);
  Free(m);
  Nanochat__V1__CheckpointListRequest cq = NANOCHAT__V1__CHECKPOINT_LIST_REQUEST__INIT;
  Nanochat__V1__CheckpointListResponse *ck = nullptr;
  ASSERT_EQ(ncc_checkpoint_list(c.cl, &cq, &ck, 0, &err), NCC_OK);
  EXPECT_EQ(ck->n_checkpoints, 0u);
  Free(ck);
  Nanochat__V1__ChatHistoryRequest hr = NANOCHAT__V1__CHAT_HISTORY_REQUEST__INIT;
  Nanochat__V1__ChatHistoryResponse *hs = nullptr;
  ASSERT_EQ(ncc_chat_history(c.cl, &hr, &hs, 0, &err), NCC_OK);
  EXPECT_EQ(hs->n_sessions, 0u);
  Free(hs);
}

TEST(CClient, GeneratedMethodTable) {
  EXPECT_EQ(NCC_METHOD_COUNT, 24);
  EXPECT_STREQ(NCC_M_CHAT_STREAM, "/nanochat.v1.Chat/Stream");
  EXPECT_STREQ(NCC_M_TRAIN_BASE, "/nanochat.v1.Train/Base");
  EXPECT_STREQ(ncc_method_paths[0], "/nanochat.v1.Chat/Complete");
  EXPECT_STREQ(nc_client_code_name(NCC_UNIMPLEMENTED), "UNIMPLEMENTED");
  EXPECT_STREQ(nc_client_code_name(99), "UNKNOWN");
}

// Sets an optional scalar field of a protobuf-c message (has_<field> and <field>).
#define PB_SET(msg, field, value) ((msg).has_##field = 1, (msg).field = (value))

// The greedy request of the served-model tests: temperature 0, 16 tokens, no tool, nothing stored.
Nanochat__V1__ChatRequest GreedyOpts() {
  Nanochat__V1__ChatRequest o = NANOCHAT__V1__CHAT_REQUEST__INIT;
  PB_SET(o, max_tokens, 16);
  PB_SET(o, temperature, 0);
  PB_SET(o, tools, 0);
  PB_SET(o, ephemeral, 1);
  return o;
}

struct StreamedChat {
  int rc = NCC_OK;
  std::string text;
  bool done = false;
  uint32_t completion_tokens = 0;
  std::string content;  // ChatDone.content
  int deltas = 0;
};

// Chat.Stream of `prompt` through nc_client_chat_open/next, read to its end.
StreamedChat StreamChat(nc_client *cl, const char *prompt, const Nanochat__V1__ChatRequest *opts,
                        nc_client_error *err) {
  StreamedChat r;
  nc_client_stream *s = nullptr;
  r.rc = nc_client_chat_open(cl, nullptr, prompt, opts, &s, err);
  if (r.rc != NCC_OK) return r;
  nc_client_chat_event ev = {};
  const Nanochat__V1__ChatDelta *d;
  const Nanochat__V1__ChatDone *done;
  while ((r.rc = nc_client_chat_next(s, &ev, &d, &done, err)) == NCC_OK && (d || done)) {
    if (d && d->text) {
      r.text += d->text;
      r.deltas++;
    }
    if (done) {
      EXPECT_FALSE(r.done) << "two ChatDone";
      r.done = true;
      if (done->usage) r.completion_tokens = done->usage->completion_tokens;
      if (done->content) r.content = done->content;
    }
  }
  nc_client_chat_event_clear(&ev);
  nc_client_stream_free(s);
  return r;
}

// Chat.Complete of one user message `prompt` with opts' other fields.
int Complete(nc_client *cl, const char *prompt, Nanochat__V1__ChatRequest rq,
             Nanochat__V1__ChatResponse **out, nc_client_error *err) {
  Nanochat__V1__ChatMessage user = NANOCHAT__V1__CHAT_MESSAGE__INIT;
  PB_SET(user, role, NANOCHAT__V1__ROLE__ROLE_USER);
  user.content = (char *)prompt;
  Nanochat__V1__ChatMessage *msgs[] = {&user};
  rq.n_messages = 1;
  rq.messages = msgs;
  return ncc_chat_complete(cl, &rq, out, 0, err);
}

int LoadTinyModel(nc_client *cl, Nanochat__V1__ModelStatus **st, nc_client_error *err) {
  Nanochat__V1__ModelLoadRequest lq = NANOCHAT__V1__MODEL_LOAD_REQUEST__INIT;
  PB_SET(lq, phase, NANOCHAT__V1__PHASE__PHASE_SFT);
  lq.model_tag = (char *)"d2";
  return ncc_model_load(cl, &lq, st, 0, err);
}

TEST(CClient, ChatWithoutModelIsFailedPrecondition) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_error err;
  Nanochat__V1__ChatRequest opts = GreedyOpts();
  StreamedChat r = StreamChat(c.cl, "hello", &opts, &err);
  EXPECT_EQ(r.rc, NCC_FAILED_PRECONDITION) << err.message;
  EXPECT_EQ(err.code, NCC_FAILED_PRECONDITION);
  EXPECT_NE(std::string(err.message).find("no model loaded"), std::string::npos) << err.message;
  EXPECT_FALSE(r.done);
  // the unary form says the same
  Nanochat__V1__ChatResponse *resp = nullptr;
  EXPECT_EQ(Complete(c.cl, "hi", opts, &resp, &err), NCC_FAILED_PRECONDITION);
  EXPECT_EQ(resp, nullptr);
  // a bad request is INVALID_ARGUMENT before the model check (gate order)
  opts.temperature = 5;
  EXPECT_EQ(StreamChat(c.cl, "hello", &opts, &err).rc, NCC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("temperature"), std::string::npos) << err.message;
}

TEST(CClient, ServedModelLoadStatusChatSample) {
  NcTestServer srv({}, "", "", NcModel::kTiny);
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_error err;
  Nanochat__V1__ChatRequest opts = GreedyOpts();
  Nanochat__V1__ChatResponse *resp = nullptr;
  ASSERT_EQ(Complete(c.cl, "Hello there", opts, &resp, &err), NCC_FAILED_PRECONDITION);  // not yet
  // Model.Load, then Model.Status shows it with its config
  Nanochat__V1__ModelStatus *st = nullptr;
  ASSERT_EQ(LoadTinyModel(c.cl, &st, &err), NCC_OK) << err.message;
  EXPECT_TRUE(st->loaded);
  Free(st);
  Nanochat__V1__ModelStatusRequest mq = NANOCHAT__V1__MODEL_STATUS_REQUEST__INIT;
  st = nullptr;
  ASSERT_EQ(ncc_model_status(c.cl, &mq, &st, 0, &err), NCC_OK) << err.message;
  EXPECT_TRUE(st->loaded);
  EXPECT_EQ(st->phase, NANOCHAT__V1__PHASE__PHASE_SFT);
  EXPECT_STREQ(st->model_tag, "d2");
  EXPECT_EQ(st->step, 0);
  EXPECT_STREQ(st->device, "cpu");
  EXPECT_EQ(strlen(st->sha256), 64u);
  ASSERT_NE(st->config, nullptr);
  EXPECT_EQ(st->config->n_layer, kNcTinyLayers);
  EXPECT_EQ(st->config->n_embd, kNcTinyEmbd);
  EXPECT_EQ(st->config->sequence_len, kNcTinySeqLen);
  EXPECT_EQ(st->config->vocab_size, kNcTinyVocab);
  EXPECT_GT(st->parameters, 0u);
  Free(st);
  // Chat.Complete at temperature 0: a real reply
  ASSERT_EQ(Complete(c.cl, "Hello there", opts, &resp, &err), NCC_OK) << err.message;
  std::string content = resp->content ? resp->content : "";
  uint32_t generated = resp->tokens_generated;
  EXPECT_FALSE(content.empty());
  EXPECT_GT(generated, 0u);
  EXPECT_LE(generated, 16u);
  EXPECT_TRUE(resp->finish_reason == NANOCHAT__V1__FINISH_REASON__FINISH_LENGTH ||
              resp->finish_reason == NANOCHAT__V1__FINISH_REASON__FINISH_STOP);
  Free(resp);
  // Chat.Stream of the same greedy request: the pieces concatenate to the same content
  StreamedChat r = StreamChat(c.cl, "Hello there", &opts, &err);
  ASSERT_EQ(r.rc, NCC_OK) << err.message;
  EXPECT_TRUE(r.done);
  EXPECT_GE(r.deltas, 1);
  EXPECT_EQ(r.text, content);
  EXPECT_EQ(r.content, content);
  EXPECT_EQ(r.completion_tokens, generated);
  // Model.Sample, greedy twice: the same text
  Nanochat__V1__SampleRequest sq = NANOCHAT__V1__SAMPLE_REQUEST__INIT;
  sq.prompt = (char *)"ROMEO:";
  PB_SET(sq, max_tokens, 4);
  PB_SET(sq, temperature, 0);
  PB_SET(sq, num_samples, 2);
  Nanochat__V1__SampleResponse *sr = nullptr;
  ASSERT_EQ(ncc_model_sample(c.cl, &sq, &sr, 0, &err), NCC_OK) << err.message;
  ASSERT_EQ(sr->n_samples, 2u);
  EXPECT_STRNE(sr->samples[0], "");
  EXPECT_STREQ(sr->samples[0], sr->samples[1]);
  Free(sr);
}

TEST(CClient, AuthErrorsAreTyped) {
  NcTestServer srv({}, kToken, kUser);
  ASSERT_TRUE(srv.ok());
  nc_client_error err;
  Nanochat__V1__ModelStatusRequest mq = NANOCHAT__V1__MODEL_STATUS_REQUEST__INIT;
  Nanochat__V1__ModelStatus *m = nullptr;
  {
    Client c(srv.address());
    Nanochat__V1__HealthCheckRequest hq = NANOCHAT__V1__HEALTH_CHECK_REQUEST__INIT;
    Nanochat__V1__HealthCheckResponse *h = nullptr;
    EXPECT_EQ(ncc_health_check(c.cl, &hq, &h, 0, &err), NCC_OK);  // public
    Free(h);
    EXPECT_EQ(ncc_model_status(c.cl, &mq, &m, 0, &err), NCC_UNAUTHENTICATED);
    EXPECT_EQ(err.code, NCC_UNAUTHENTICATED);
    EXPECT_EQ(m, nullptr);
  }
  {
    Client c(srv.address(), "wrong-token-0123456789");
    EXPECT_EQ(ncc_model_status(c.cl, &mq, &m, 0, &err), NCC_UNAUTHENTICATED);
  }
  {
    Client c(srv.address(), kUser);
    EXPECT_EQ(ncc_model_status(c.cl, &mq, &m, 0, &err), NCC_OK);
    Free(m);
    m = nullptr;
    EXPECT_EQ(nc_client_job_cancel(c.cl, "0123456789abcdef", nullptr, &err), NCC_PERMISSION_DENIED);
  }
  {
    Client c(srv.address(), kToken);
    EXPECT_EQ(ncc_model_status(c.cl, &mq, &m, 0, &err), NCC_OK);
    Free(m);
  }
}

TEST(CClient, InvalidArgumentAndNotFound) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_error err;
  Nanochat__V1__ChatHistoryRequest hr = NANOCHAT__V1__CHAT_HISTORY_REQUEST__INIT;
  hr.has_page_size = 1;
  hr.page_size = 5000;
  Nanochat__V1__ChatHistoryResponse *hs = nullptr;
  EXPECT_EQ(ncc_chat_history(c.cl, &hr, &hs, 0, &err), NCC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("page_size"), std::string::npos) << err.message;
  Nanochat__V1__JobInfo *info = nullptr;
  EXPECT_EQ(nc_client_job_status(c.cl, "0123456789abcdef", &info, &err), NCC_NOT_FOUND);
  EXPECT_EQ(info, nullptr);
}

TEST(CClient, JobProgressInOrderAndWait) {
  NcTestServer srv({"--enable-test-jobs"});
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_job job = StartTestJob(c.cl, 5, 20);
  ASSERT_EQ(strlen(job.id), 16u);
  nc_client_stream *s = nullptr;
  nc_client_error err;
  ASSERT_EQ(nc_client_job_progress(c.cl, job.id, 1, 1, 60000, &s, &err), NCC_OK);
  ProtobufCMessage *m = nullptr;
  std::vector<uint64_t> seqs;
  std::vector<int64_t> steps;
  int last_state = 0, first_kind = -1;
  int rc;
  while ((rc = nc_client_stream_next(s, &m, &err)) == NCC_OK && m) {
    auto *ev = (Nanochat__V1__JobEvent *)m;
    if (first_kind < 0) first_kind = ev->kind;
    if (ev->kind != NANOCHAT__V1__EVENT_KIND__EVENT_SNAPSHOT) seqs.push_back(ev->seq);
    if (ev->kind == NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS && ev->progress)
      steps.push_back(ev->progress->step);
    if (ev->kind == NANOCHAT__V1__EVENT_KIND__EVENT_STATE) last_state = ev->state;
    protobuf_c_message_free_unpacked(m, nullptr);
  }
  EXPECT_EQ(rc, NCC_OK) << err.message;
  nc_client_stream_free(s);
  EXPECT_EQ(first_kind, NANOCHAT__V1__EVENT_KIND__EVENT_SNAPSHOT);
  ASSERT_FALSE(seqs.empty());
  for (size_t i = 0; i < seqs.size(); i++) EXPECT_EQ(seqs[i], i + 1);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(last_state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  Nanochat__V1__JobInfo *info = nullptr;
  ASSERT_EQ(nc_client_job_wait(c.cl, job.id, 30000, &info, &err), NCC_OK) << err.message;
  EXPECT_EQ(info->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  EXPECT_EQ(info->last_seq, seqs.back());
  Free(info);
  // finished: cancel is FAILED_PRECONDITION
  EXPECT_EQ(nc_client_job_cancel(c.cl, job.id, nullptr, &err), NCC_FAILED_PRECONDITION);
}

TEST(CClient, CancelDeadlineAndStreamCancel) {
  NcTestServer srv({"--enable-test-jobs"});
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_job job = StartTestJob(c.cl, 100000, 20);
  nc_client_error err;
  // a deadline on the follow stream
  nc_client_stream *s = nullptr;
  ASSERT_EQ(nc_client_job_progress(c.cl, job.id, 1, 1, 300, &s, &err), NCC_OK);
  EXPECT_EQ(Drain(s, &err), NCC_DEADLINE_EXCEEDED);
  ProtobufCMessage *m = nullptr;
  EXPECT_EQ(nc_client_stream_next(s, &m, &err), NCC_DEADLINE_EXCEEDED);  // sticky
  nc_client_stream_free(s);
  EXPECT_EQ(nc_client_job_wait(c.cl, job.id, 200, nullptr, &err), NCC_DEADLINE_EXCEEDED);
  // cancel a stream from another thread
  ASSERT_EQ(nc_client_job_progress(c.cl, job.id, 1, 1, 0, &s, &err), NCC_OK);
  ASSERT_EQ(nc_client_stream_next(s, &m, &err), NCC_OK);
  protobuf_c_message_free_unpacked(m, nullptr);
  std::thread t([s] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    nc_client_stream_cancel(s);
  });
  int rc = Drain(s, &err);
  t.join();
  EXPECT_EQ(rc, NCC_CANCELLED);
  nc_client_stream_free(s);
  // cancel the job
  Nanochat__V1__JobInfo *info = nullptr;
  ASSERT_EQ(nc_client_job_cancel(c.cl, job.id, &info, &err), NCC_OK) << err.message;
  EXPECT_STREQ(info->job_id, job.id);
  Free(info);
  info = nullptr;
  ASSERT_EQ(nc_client_job_wait(c.cl, job.id, 30000, &info, &err), NCC_OK) << err.message;
  EXPECT_EQ(info->state, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED);
  Free(info);
}

TEST(CClient, EngineStartersAreTypedUntilTheyLand) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  Client c(srv.address());
  nc_client_error err;
  Nanochat__V1__TrainBaseRequest rq = NANOCHAT__V1__TRAIN_BASE_REQUEST__INIT;
  rq.has_depth = 1;
  rq.depth = 1;
  nc_client_job job;
  int rc = nc_client_job_start(c.cl, NCC_M_TRAIN_BASE, &rq.base, &job, &err);
  EXPECT_TRUE(rc == NCC_OK || rc == NCC_UNIMPLEMENTED || rc == NCC_FAILED_PRECONDITION)  // no tokenizer
      << rc << " " << err.message;
  if (rc == NCC_OK) nc_client_job_cancel(c.cl, job.id, nullptr, &err);
  rq.depth = 100;  // outside the proto limits: the gate answers before any handler
  EXPECT_EQ(nc_client_job_start(c.cl, NCC_M_TRAIN_BASE, &rq.base, &job, &err), NCC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("depth"), std::string::npos) << err.message;
}

TEST(CClient, UnavailableServer) {
  int port;
  {
    NcTestServer srv;
    ASSERT_TRUE(srv.ok());
    port = srv.port();
  }
  Client c("127.0.0.1:" + std::to_string(port), nullptr, 2000);
  nc_client_error err;
  Nanochat__V1__HealthCheckRequest hq = NANOCHAT__V1__HEALTH_CHECK_REQUEST__INIT;
  Nanochat__V1__HealthCheckResponse *h = nullptr;
  EXPECT_EQ(ncc_health_check(c.cl, &hq, &h, 0, &err), NCC_UNAVAILABLE);
  EXPECT_EQ(nc_client_wait_ready(c.cl, 300, &err), NCC_UNAVAILABLE);
  nc_client_stream *s = nullptr;
  ASSERT_EQ(nc_client_job_progress(c.cl, "0123456789abcdef", 1, 1, 2000, &s, &err), NCC_OK);
  ProtobufCMessage *m = nullptr;
  EXPECT_EQ(nc_client_stream_next(s, &m, &err), NCC_UNAVAILABLE);
  nc_client_stream_free(s);
}

TEST(CClient, ClientSideArgumentChecks) {
  nc_client *cl = nullptr;
  nc_client_error err;
  nc_client_options o = {};
  EXPECT_EQ(nc_client_new(&o, &cl, &err), NCC_INVALID_ARGUMENT);
  EXPECT_EQ(nc_client_new(nullptr, &cl, &err), NCC_INVALID_ARGUMENT);
  o.address = "127.0.0.1:1";
  o.token = "bad token\r\ninjected: 1";
  EXPECT_EQ(nc_client_new(&o, &cl, &err), NCC_INVALID_ARGUMENT);
  EXPECT_EQ(cl, nullptr);
  std::string huge(NCC_ADDRESS_MAX + 10, 'a');
  o.token = nullptr;
  o.address = huge.c_str();
  EXPECT_EQ(nc_client_new(&o, &cl, &err), NCC_INVALID_ARGUMENT);
  o.address = "127.0.0.1:1";
  o.timeout_ms = -5;
  EXPECT_EQ(nc_client_new(&o, &cl, &err), NCC_INVALID_ARGUMENT);
  o.timeout_ms = 0;
  ASSERT_EQ(nc_client_new(&o, &cl, &err), NCC_OK);
  Nanochat__V1__HealthCheckRequest hq = NANOCHAT__V1__HEALTH_CHECK_REQUEST__INIT;
  ProtobufCMessage *r = nullptr;
  EXPECT_EQ(nc_client_unary(cl, "no-slash", &hq.base, &nanochat__v1__health_check_response__descriptor,
                            &r, 0, &err), NCC_INVALID_ARGUMENT);
  EXPECT_EQ(nc_client_unary(cl, NCC_M_HEALTH_CHECK, nullptr,
                            &nanochat__v1__health_check_response__descriptor, &r, 0, &err),
            NCC_INVALID_ARGUMENT);
  // larger than the channel cap: refused before anything is sent
  std::string code(5u << 20, 'x');
  Nanochat__V1__ExecuteRequest ex = NANOCHAT__V1__EXECUTE_REQUEST__INIT;
  ex.code = (char *)code.c_str();
  Nanochat__V1__ExecuteResponse *exr = nullptr;
  EXPECT_EQ(ncc_tools_execute(cl, &ex, &exr, 0, &err), NCC_RESOURCE_EXHAUSTED);
  EXPECT_EQ(nc_client_chat_open(cl, nullptr, nullptr, nullptr, nullptr, &err), NCC_INVALID_ARGUMENT);
  nc_client_free(cl);
  nc_client_free(nullptr);
  nc_client_stream_free(nullptr);
}

TEST(CClient, ExampleRuns) {
  NcTestServer srv({}, "", "", NcModel::kTiny);
  ASSERT_TRUE(srv.ok());
  std::string example = std::string(NC_BINARY_DIR) + "/bin/nanochat-c-example " + srv.address();
  std::string out;
  int rc = NcRunCommand(example, &out);  // no model loaded: status, and chat's typed error
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("health: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("model: none loaded"), std::string::npos) << out;
  EXPECT_NE(out.find("chat: not available: FAILED_PRECONDITION"), std::string::npos) << out;
  EXPECT_NE(out.find("checkpoints: 0"), std::string::npos) << out;
  Client c(srv.address());
  nc_client_error err;
  Nanochat__V1__ModelStatus *st = nullptr;
  ASSERT_EQ(LoadTinyModel(c.cl, &st, &err), NCC_OK) << err.message;
  Free(st);
  out.clear();
  rc = NcRunCommand(example + " Hello", &out);  // a model: status and a streamed reply
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("model: PHASE_SFT d2 step 0 (2 layers, context 128)"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("chat: done: [1-9][0-9]* tokens, FINISH_(LENGTH|STOP), "
                                                "session [0-9a-f]{32}\n")))
      << out;
}

}  // namespace
