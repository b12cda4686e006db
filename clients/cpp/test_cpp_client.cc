// test_cpp_client.cc — the C++ SDK (nccpp) against a real nanochatd: one status call that must
// succeed and one chat call that must give a reply or the typed Unimplemented /
// FailedPrecondition error (the engine has not landed yet), typed auth / argument / state /
// deadline / unavailable errors, job handles over Train.TestJob (ordered progress, wait,
// cancel) and the example program.
#include <gtest/gtest.h>

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

TEST(CppClient, ChatReplyOrTypedError) {
  NcTestServer srv;
  ASSERT_TRUE(srv.ok());
  nanochat::Client c(Opts(srv));
  v1::ChatRequest opts;
  opts.set_max_tokens(16);
  opts.set_ephemeral(true);
  try {
    auto chat = c.Chat("hello", opts);
    std::string text;
    for (const std::string &piece : *chat) text += piece;
    ASSERT_NE(chat->done(), nullptr);   // the engine landed: a complete reply
    EXPECT_EQ(text, chat->text());
  } catch (const nanochat::Unimplemented &e) {
    EXPECT_EQ(e.code(), grpc::StatusCode::UNIMPLEMENTED);
    EXPECT_FALSE(e.message().empty());
    EXPECT_NE(std::string(e.what()).find("UNIMPLEMENTED: "), std::string::npos);
  } catch (const nanochat::FailedPrecondition &e) {
    EXPECT_FALSE(e.message().empty());
  }
  try {
    c.Complete("hi", opts);
  } catch (const nanochat::Unimplemented &) {
  } catch (const nanochat::FailedPrecondition &) {
  }
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
  NcTestServer srv({"--enable-test-jobs"});
  ASSERT_TRUE(srv.ok());
  std::string out;
  int rc = NcRunCommand(std::string(NC_BINARY_DIR) + "/bin/nanochat-cpp-example " + srv.address() +
                            " --test-job",
                        &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("health: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("chat: "), std::string::npos) << out;
  EXPECT_NE(out.find("step 5/5"), std::string::npos) << out;
  EXPECT_NE(out.find("JOB_SUCCEEDED"), std::string::npos) << out;
}

}  // namespace
