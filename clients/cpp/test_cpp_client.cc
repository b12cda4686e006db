// test_cpp_client.cc — the C++ SDK (nccpp) against a real nanochatd: status calls, chat without
// a model (typed FailedPrecondition) and against a served tiny model (--model latest: Model.Status
// with its config, a greedy Complete reply that the streamed pieces reproduce, Model.Sample,
// Unload), typed auth / argument / state / deadline / unavailable errors, job handles over
// Train.TestJob (ordered progress, wait, cancel) and the example program with and without a model.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "nanochat_client.h"
#include "nc_test_server.h"

namespace {

using namespace std::chrono_literals;
namespace v1 = nanochat::v1;

nanochat::ClientOptions Opts(const NcTestServer &srv, const std::string &token = "") {
  nanochat::ClientOptions o;
  o.address = srv.address();
  o.token = token;
  return o;
}

nanochat::Job StartTestJob(nanochat::Client &c, int steps, int step_ms) {
  v1::TestJobRequest rq;
  rq.set_steps(steps);
  rq.set_step_ms(step_ms);
  return c.TestJob(rq);
}

TEST(CppClient, StatusCallSucceeds) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  nanochat::Client c(Opts(srv));
  c.WaitReady(10s);
  EXPECT_EQ(c.Health().status(), "ok");
  EXPECT_FALSE(c.ModelStatus().loaded());
  EXPECT_TRUE(c.Checkpoints().empty());
  EXPECT_EQ(c.History().sessions_size(), 0);
  EXPECT_TRUE(c.Jobs().empty());
}

// The greedy request of the served-model tests: temperature 0, 16 tokens, no tool, nothing stored.
v1::ChatRequest GreedyOpts() {
  v1::ChatRequest o;
  o.set_max_tokens(16);
  o.set_temperature(0);
  o.set_tools(false);
  o.set_ephemeral(true);
  return o;
}

TEST(CppClient, ChatWithoutModelIsFailedPrecondition) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  nanochat::Client c(Opts(srv));
  try {
    auto chat = c.Chat("hello", GreedyOpts());
    for (const std::string &piece : *chat) ADD_FAILURE() << "a piece without a model: " << piece;
    FAIL() << "no error";
  } catch (const nanochat::FailedPrecondition &e) {
    EXPECT_EQ(e.code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(e.message().find("no model loaded"), std::string::npos) << e.message();
    EXPECT_NE(std::string(e.what()).find("FAILED_PRECONDITION: "), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.Complete("hi", GreedyOpts()), nanochat::FailedPrecondition);
  v1::ChatRequest bad = GreedyOpts();
  bad.set_temperature(5);  // the gate checks ranges before the model
  EXPECT_THROW(c.Complete("hi", bad), nanochat::InvalidArgument);
}

TEST(CppClient, ServedModelStatusChatSample) {
  NcTestServer srv({"--model", "latest"}, "", "", NcModel::kTiny);
  ASSERT_TRUE(srv.ok());
  nanochat::Client c(Opts(srv));
  v1::ModelStatus st = c.ModelStatus();
  EXPECT_TRUE(st.loaded());
  EXPECT_EQ(st.phase(), v1::PHASE_SFT);
  EXPECT_EQ(st.model_tag(), "d2");
  EXPECT_EQ(st.step(), 0);
  EXPECT_EQ(st.device(), "cpu");
  EXPECT_EQ(st.config().n_layer(), kNcTinyLayers);
  EXPECT_EQ(st.config().n_embd(), kNcTinyEmbd);
  EXPECT_EQ(st.config().sequence_len(), kNcTinySeqLen);
  EXPECT_EQ(st.config().vocab_size(), kNcTinyVocab);
  EXPECT_GT(st.slots_total(), 0u);
  // Chat.Complete at temperature 0: a real reply
  v1::ChatResponse r = c.Complete("Hello there", GreedyOpts());
  EXPECT_FALSE(r.content().empty());
  EXPECT_GT(r.tokens_generated(), 0u);
  EXPECT_LE(r.tokens_generated(), 16u);
  EXPECT_TRUE(r.finish_reason() == v1::FINISH_LENGTH || r.finish_reason() == v1::FINISH_STOP);
  // Chat.Stream of the same greedy request through the range-for wrapper: the same text
  auto chat = c.Chat("Hello there", GreedyOpts());
  std::string text;
  int pieces = 0;
  for (const std::string &piece : *chat) {
    text += piece;
    pieces++;
  }
  ASSERT_NE(chat->done(), nullptr);
  EXPECT_GE(pieces, 1);
  EXPECT_EQ(text, r.content());
  EXPECT_EQ(chat->text(), r.content());
  EXPECT_EQ(chat->done()->usage().completion_tokens(), r.tokens_generated());
  EXPECT_EQ(chat->done()->finish_reason(), r.finish_reason());
  // Model.Sample, greedy twice: the same text
  v1::SampleRequest sq;
  sq.set_prompt("ROMEO:");
  sq.set_max_tokens(4);
  sq.set_temperature(0);
  sq.set_num_samples(2);
  v1::SampleResponse sr = c.Sample(sq);
  ASSERT_EQ(sr.samples_size(), 2);
  EXPECT_FALSE(sr.samples(0).empty());
  EXPECT_EQ(sr.samples(0), sr.samples(1));
  // Unload: chat is FAILED_PRECONDITION again
  EXPECT_FALSE(c.UnloadModel().loaded());
  EXPECT_THROW(c.Complete("hi", GreedyOpts()), nanochat::FailedPrecondition);
}

TEST(CppClient, AuthErrorsAreTyped) {
  NcTestServer srv({}, "cpp-admin-token-0123456789", "cpp-user-token-0123456789");
  ASSERT_TRUE(srv.ok());
  {
    nanochat::Client c(Opts(srv));
    EXPECT_EQ(c.Health().status(), "ok");
    EXPECT_THROW(c.ModelStatus(), nanochat::Unauthenticated);
  }
  {
    nanochat::Client c(Opts(srv, "cpp-user-token-0123456789"));
    EXPECT_FALSE(c.ModelStatus().loaded());
    EXPECT_THROW(c.GetJob("0123456789abcdef").Cancel(), nanochat::PermissionDenied);
  }
  nanochat::Client c(Opts(srv, "cpp-admin-token-0123456789"));
  EXPECT_TRUE(c.Checkpoints().empty());
}

TEST(CppClient, ArgumentAndStateErrors) {
  NcTestServer srv({"--enable-test-jobs"});
  ASSERT_TRUE(srv.ok());
  nanochat::Client c(Opts(srv));
  v1::ChatHistoryRequest hr;
  hr.set_page_size(5000);
  try {
    c.History(hr);
    FAIL() << "no error";
  } catch (const nanochat::InvalidArgument &e) {
    EXPECT_NE(e.message().find("page_size"), std::string::npos) << e.message();
  }
  EXPECT_THROW(c.GetJob("0123456789abcdef").Status(), nanochat::NotFound);
  v1::TrainBaseRequest base;
  base.set_depth(100);
  EXPECT_THROW(c.TrainBase(base), nanochat::InvalidArgument);
  base.set_depth(1);
  try {
    c.TrainBase(base).Cancel();   // landed: a job handle
  } catch (const nanochat::Unimplemented &) {
  } catch (const nanochat::FailedPrecondition &) {   // no tokenizer on the test server
  }
  nanochat::Job job = StartTestJob(c, 1, 1);
  job.Wait(30s);
  EXPECT_THROW(job.Cancel(), nanochat::FailedPrecondition);
  // every typed error is a nanochat::Error
  EXPECT_THROW(job.Cancel(), nanochat::Error);
}

TEST(CppClient, JobProgressInOrderWaitAndCancel) {
  NcTestServer srv({"--enable-test-jobs"});
  ASSERT_TRUE(srv.ok());
  nanochat::Client c(Opts(srv));
  nanochat::Job job = StartTestJob(c, 5, 20);
  EXPECT_EQ(job.id().size(), 16u);
  std::vector<uint64_t> seqs;
  std::vector<int64_t> steps;
  v1::JobEvent last;
  {
    auto events = job.Progress();
    for (v1::JobEvent ev; events->Next(&ev);) {
      seqs.push_back(ev.seq());
      if (ev.kind() == v1::EVENT_PROGRESS) steps.push_back(ev.progress().step());
      last = ev;
    }
  }
  for (size_t i = 0; i < seqs.size(); i++) EXPECT_EQ(seqs[i], i + 1);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(last.state(), v1::JOB_SUCCEEDED);
  EXPECT_EQ(job.Wait(30s).state(), v1::JOB_SUCCEEDED);
  EXPECT_EQ(job.Status().last_seq(), seqs.back());

  nanochat::Job longjob = StartTestJob(c, 100000, 20);
  EXPECT_THROW(longjob.Wait(300ms), nanochat::DeadlineExceeded);
  {
    auto events = longjob.Progress();
    v1::JobEvent ev;
    ASSERT_TRUE(events->Next(&ev));
    std::thread t([&] {
      std::this_thread::sleep_for(100ms);
      events->Cancel();
    });
    EXPECT_THROW(
        {
          while (events->Next(&ev)) {
          }
        },
        nanochat::Cancelled);
    t.join();
  }
  EXPECT_EQ(longjob.Cancel().job_id(), longjob.id());
  EXPECT_EQ(longjob.Wait(30s).state(), v1::JOB_CANCELLED);
  EXPECT_EQ(c.Jobs().size(), 2u);
}

TEST(CppClient, UnavailableServer) {
  std::string addr;
  {
    NcTestServer srv;
    ASSERT_TRUE(srv.ok());
    addr = srv.address();
  }
  nanochat::ClientOptions o;
  o.address = addr;
  o.timeout = 2000ms;
  nanochat::Client c(o);
  EXPECT_THROW(c.Health(), nanochat::Unavailable);
  EXPECT_THROW(c.WaitReady(300ms), nanochat::Unavailable);
}

TEST(CppClient, ExampleRuns) {
  NcTestServer srv({"--enable-test-jobs"}, "", "", NcModel::kTiny);
  ASSERT_TRUE(srv.ok());
  std::string example = std::string(NC_BINARY_DIR) + "/bin/nanochat-cpp-example " + srv.address();
  std::string out;
  int rc = NcRunCommand(example + " --test-job", &out);  // no model loaded yet
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("health: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("model: none loaded"), std::string::npos) << out;
  EXPECT_NE(out.find("chat: not available: FAILED_PRECONDITION: "), std::string::npos) << out;
  EXPECT_NE(out.find("step 5/5"), std::string::npos) << out;
  EXPECT_NE(out.find("JOB_SUCCEEDED"), std::string::npos) << out;
  nanochat::Client c(Opts(srv));
  v1::ModelLoadRequest lq;
  lq.set_phase(v1::PHASE_SFT);
  ASSERT_TRUE(c.LoadModel(lq).loaded());
  out.clear();
  rc = NcRunCommand(example, &out);  // a model: its status and a streamed reply
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("model: PHASE_SFT d2 step 0 (2 layers, context 128)"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("chat: done: [1-9][0-9]* tokens, FINISH_(LENGTH|STOP), "
                                                "session [0-9a-f]{32}\n")))
      << out;
}

}  // namespace
