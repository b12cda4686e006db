// test_jobs.cc — job manager with real child processes (nanochat-testjob and small scripts):
// lifecycle, failure reasons, crashes, cancel, queueing, subscribers, replay, fds/env of
// children, protocol errors, shutdown and restart after a kill -9 of the "server" process.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "store_test_util.h"

extern "C" {
#include "nc_jobio.h"
#include "nc_jobs.h"
}

using namespace nctest;

namespace {

const std::string kTestJob = std::string(NC_BINARY_DIR) + "/bin/nanochat-testjob";
const int kWaitMs = 60000;

std::vector<uint8_t> test_request(int steps, int step_ms, const char *fail_with = nullptr,
                                  int crash_at = -1) {
  Nanochat__V1__TestJobRequest r = NANOCHAT__V1__TEST_JOB_REQUEST__INIT;
  r.has_steps = 1;
  r.steps = steps;
  r.has_step_ms = 1;
  r.step_ms = step_ms;
  r.fail_with = (char *)fail_with;
  r.has_crash_at = 1;
  r.crash_at = crash_at;
  std::vector<uint8_t> b(nanochat__v1__test_job_request__get_packed_size(&r));
  nanochat__v1__test_job_request__pack(&r, b.data());
  return b;
}

// True when a process of group `pgid` exists and is not a zombie (scans /proc).
bool group_has_live_member(pid_t pgid) {
  DIR *d = opendir("/proc");
  if (!d) return false;
  bool live = false;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    size_t rp = line.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream rest(line.substr(rp + 2));
    std::string state;
    long ppid, grp;
    rest >> state >> ppid >> grp;
    if (grp == pgid && state != "Z") live = true;
  }
  closedir(d);
  return live;
}

struct JobsTest : ::testing::Test {
  TempDir tmp;
  nc_store *s = nullptr;
  nc_jobs *m = nullptr;
  nc_jobs_opts o = {};
  std::string exe = kTestJob;
  void SetUp() override {
    s = open_store(tmp.sub("store"));
    ASSERT_NE(s, nullptr);
    o.store = s;
    o.data_dir = tmp.path.c_str();
    o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = exe.c_str();
    o.cancel_grace_ms = 5000;
    o.shutdown_grace_ms = 5000;
  }
  void start() {
    ASSERT_EQ(nc_jobs_start(&o, &m), NC_OK) << nc_store_last_error();
  }
  void TearDown() override {
    nc_jobs_free(m);
    nc_store_close(s);
  }
  std::string submit(const std::vector<uint8_t> &req, uint32_t *pos = nullptr,
                     Nanochat__V1__JobKind kind = NANOCHAT__V1__JOB_KIND__JOB_TEST) {
    char id[NC_JOB_ID_LEN + 1] = {0};
    int rc = nc_jobs_submit(m, kind, req.data(), req.size(), id, pos);
    EXPECT_EQ(rc, NC_OK) << nc_store_last_error();
    return id;
  }
  Nanochat__V1__JobInfo *wait(const std::string &id, int ms = kWaitMs) {
    Nanochat__V1__JobInfo *j = nullptr;
    int rc = nc_jobs_wait(m, id.c_str(), ms, &j);
    EXPECT_EQ(rc, NC_OK) << nc_store_last_error();
    return j;
  }
  std::vector<Nanochat__V1__JobEvent *> events(const std::string &id, uint64_t from = 1) {
    Nanochat__V1__JobEvent **items = nullptr;
    size_t n = 0;
    EXPECT_EQ(nc_store_event_list(s, id.c_str(), from, 1000000, &items, &n), NC_OK);
    std::vector<Nanochat__V1__JobEvent *> v(items, items + n);
    free(items);
    return v;
  }
  static void free_events(std::vector<Nanochat__V1__JobEvent *> &v) {
    for (auto *e : v) nc_store_free_msg(e);
    v.clear();
  }
  // Waits until the job has stored at least `n` events (polling the store, bounded).
  bool wait_events(const std::string &id, uint64_t n) {
    for (int i = 0; i < kWaitMs / 10; i++) {
      Nanochat__V1__JobInfo *j = nullptr;
      if (nc_jobs_get(m, id.c_str(), &j) == NC_OK) {
        bool ok = j->last_seq >= n;
        nc_store_free_msg(j);
        if (ok) return true;
      }
      usleep(10000);
    }
    return false;
  }
  std::string script(const char *name, const std::string &body) {
    std::string p = tmp.sub(name);
    std::ofstream f(p);
    f << "#!/bin/sh\n" << body;
    f.close();
    chmod(p.c_str(), 0755);
    return p;
  }
};

TEST_F(JobsTest, SucceedsWithOrderedEvents) {
  start();
  std::string id = submit(test_request(3, 10));
  ASSERT_TRUE(nc_store_job_id_valid(id.c_str(), id.size()));
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  EXPECT_EQ(j->exit_code, 0);
  EXPECT_EQ(j->pid, 0);
  EXPECT_EQ(j->error, nullptr);
  ASSERT_NE(j->progress, nullptr);
  EXPECT_EQ(j->progress->step, 3);
  EXPECT_EQ(j->progress->total_steps, 3);
  bool has_bpb = false;
  for (size_t i = 0; i < j->n_metrics; i++)
    if (!strcmp(j->metrics[i]->key, "val_bpb")) has_bpb = true;
  EXPECT_TRUE(has_bpb);
  EXPECT_GE(j->started_ms, j->created_ms);
  EXPECT_GE(j->finished_ms, j->started_ms);
  EXPECT_EQ(j->last_seq, 9u);
  nc_store_free_msg(j);
  auto ev = events(id);
  ASSERT_EQ(ev.size(), 9u);
  for (size_t i = 0; i < ev.size(); i++) EXPECT_EQ(ev[i]->seq, i + 1);
  EXPECT_EQ(ev[0]->kind, NANOCHAT__V1__EVENT_KIND__EVENT_STATE);
  EXPECT_EQ(ev[0]->state, NANOCHAT__V1__JOB_STATE__JOB_QUEUED);
  EXPECT_EQ(ev[1]->state, NANOCHAT__V1__JOB_STATE__JOB_RUNNING);
  EXPECT_EQ(ev[2]->kind, NANOCHAT__V1__EVENT_KIND__EVENT_LOG);
  for (int k = 0; k < 3; k++) {
    EXPECT_EQ(ev[3 + k]->kind, NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS);
    EXPECT_EQ(ev[3 + k]->progress->step, k + 1);
  }
  EXPECT_EQ(ev[6]->kind, NANOCHAT__V1__EVENT_KIND__EVENT_EVAL);
  EXPECT_STREQ(ev[7]->message, "done");
  EXPECT_EQ(ev[8]->kind, NANOCHAT__V1__EVENT_KIND__EVENT_STATE);
  EXPECT_EQ(ev[8]->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  for (size_t i = 1; i < ev.size(); i++) EXPECT_GE(ev[i]->time_ms, ev[i - 1]->time_ms);
  free_events(ev);
  // the request file is gone, the output log stays
  struct stat st;
  EXPECT_NE(stat((tmp.path + "/jobs/" + id + "/request.pb").c_str(), &st), 0);
  EXPECT_EQ(stat((tmp.path + "/jobs/" + id + "/output.log").c_str(), &st), 0);
}

TEST_F(JobsTest, NonZeroExitFailsWithTheLastLogLine) {
  start();
  std::string id = submit(test_request(2, 5, "loss diverged"));
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_FAILED);
  EXPECT_STREQ(j->error, "loss diverged");
  EXPECT_EQ(j->exit_code, 1);
  nc_store_free_msg(j);
  auto ev = events(id);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back()->state, NANOCHAT__V1__JOB_STATE__JOB_FAILED);
  EXPECT_STREQ(ev.back()->message, "loss diverged");
  free_events(ev);
}

TEST_F(JobsTest, CrashIsFailedKilledBySignal9) {
  start();
  std::string id = submit(test_request(10, 5, nullptr, 3));
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_FAILED);
  EXPECT_STREQ(j->error, "killed by signal 9");
  EXPECT_EQ(j->exit_code, 128 + 9);
  ASSERT_NE(j->progress, nullptr);
  EXPECT_EQ(j->progress->step, 2);  // steps before the crash were stored
  nc_store_free_msg(j);
  // the server side is unaffected: the next job runs fine
  std::string id2 = submit(test_request(1, 1));
  j = wait(id2);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  nc_store_free_msg(j);
}

TEST_F(JobsTest, CancelRunningStopsCleanly) {
  start();
  std::string id = submit(test_request(100000, 20));
  ASSERT_TRUE(wait_events(id, 5));  // running and reporting
  Nanochat__V1__JobInfo *j = nullptr;
  ASSERT_EQ(nc_jobs_cancel(m, id.c_str(), &j), NC_OK) << nc_store_last_error();
  nc_store_free_msg(j);
  // a second cancel is fine while the child is still stopping; once it has stopped the job is
  // finished and cancelling it is a failed precondition (the child may stop very quickly)
  int rc2 = nc_jobs_cancel(m, id.c_str(), nullptr);
  EXPECT_TRUE(rc2 == NC_OK || rc2 == NC_ESTATE) << rc2;
  j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED);
  EXPECT_STREQ(j->error, "cancelled");  // stopped within the grace period
  EXPECT_EQ(j->exit_code, 0);
  nc_store_free_msg(j);
  auto ev = events(id);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back()->state, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED);
  // the child's own clean-stop line came before the final state
  const char *log = ev[ev.size() - 2]->message;
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(std::string(log).rfind("stopped by SIGTERM after step", 0), 0u) << log;
  free_events(ev);
  EXPECT_EQ(nc_jobs_cancel(m, id.c_str(), nullptr), NC_ESTATE);
  EXPECT_NE(std::string(nc_store_last_error()).find("already CANCELLED"), std::string::npos);
}

TEST_F(JobsTest, CancelEscalatesToSigkillAfterGrace) {
  std::string sh = script("stubborn.sh", "trap '' TERM\nwhile :; do sleep 0.05; done\n");
  o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = sh.c_str();
  o.cancel_grace_ms = 300;
  start();
  std::string id = submit({});
  ASSERT_TRUE(wait_events(id, 2));
  Nanochat__V1__JobInfo *j = nullptr;
  ASSERT_EQ(nc_jobs_get(m, id.c_str(), &j), NC_OK);
  pid_t pid = j->pid;
  nc_store_free_msg(j);
  ASSERT_GT(pid, 0);
  usleep(100000);
  ASSERT_EQ(nc_jobs_cancel(m, id.c_str(), nullptr), NC_OK);
  j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED);
  EXPECT_STREQ(j->error, "cancelled (killed after the grace period)");
  EXPECT_EQ(j->exit_code, 128 + 9);
  nc_store_free_msg(j);
  // the whole process group is gone (members are dead: absent or zombies awaiting their reaper)
  bool alive = true;
  for (int i = 0; i < 200 && alive; i++) {
    alive = group_has_live_member(pid);
    if (alive) usleep(10000);
  }
  EXPECT_FALSE(alive);
}

TEST_F(JobsTest, CancelQueuedNeverRuns) {
  start();
  std::string a = submit(test_request(100000, 20));
  ASSERT_TRUE(wait_events(a, 3));
  uint32_t pos = 99;
  std::string b = submit(test_request(1, 1), &pos);
  EXPECT_EQ(pos, 0u);
  Nanochat__V1__JobInfo *j = nullptr;
  ASSERT_EQ(nc_jobs_cancel(m, b.c_str(), &j), NC_OK);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED);
  EXPECT_STREQ(j->error, "cancelled before it started");
  EXPECT_EQ(j->started_ms, 0);
  nc_store_free_msg(j);
  auto ev = events(b);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]->state, NANOCHAT__V1__JOB_STATE__JOB_QUEUED);
  EXPECT_EQ(ev[1]->state, NANOCHAT__V1__JOB_STATE__JOB_CANCELLED);
  free_events(ev);
  uint32_t running = 9, queued = 9;
  nc_jobs_counts(m, &running, &queued);
  EXPECT_EQ(running, 1u);
  EXPECT_EQ(queued, 0u);
  ASSERT_EQ(nc_jobs_cancel(m, a.c_str(), nullptr), NC_OK);
  j = wait(a);
  nc_store_free_msg(j);
}

TEST_F(JobsTest, CancelRejectsBadUnknownAndFinished) {
  start();
  EXPECT_EQ(nc_jobs_cancel(m, "../../etc/passwd", nullptr), NC_EINVAL);
  EXPECT_EQ(nc_jobs_cancel(m, "0123456789ABCDEF", nullptr), NC_EINVAL);
  EXPECT_EQ(nc_jobs_cancel(m, "0123456789abcdef", nullptr), NC_ENOTFOUND);
  std::string id = submit(test_request(0, 0));
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  nc_store_free_msg(j);
  EXPECT_EQ(nc_jobs_cancel(m, id.c_str(), nullptr), NC_ESTATE);
  EXPECT_NE(std::string(nc_store_last_error()).find("already SUCCEEDED"), std::string::npos);
}

TEST_F(JobsTest, MaxRunningOneQueuesInFifoOrder) {
  start();
  std::string a = submit(test_request(3, 30));
  std::string b = submit(test_request(2, 10));
  std::string c = submit(test_request(1, 10));
  Nanochat__V1__JobInfo *jb = nullptr;
  ASSERT_EQ(nc_jobs_get(m, b.c_str(), &jb), NC_OK);
  EXPECT_EQ(jb->state, NANOCHAT__V1__JOB_STATE__JOB_QUEUED);  // a holds the only slot
  nc_store_free_msg(jb);
  Nanochat__V1__JobInfo *ja = wait(a), *jb2 = wait(b), *jc = wait(c);
  ASSERT_TRUE(ja && jb2 && jc);
  EXPECT_EQ(ja->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  EXPECT_EQ(jb2->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  EXPECT_EQ(jc->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  EXPECT_GE(jb2->started_ms, ja->finished_ms);
  EXPECT_GE(jc->started_ms, jb2->finished_ms);
  nc_store_free_msg(ja);
  nc_store_free_msg(jb2);
  nc_store_free_msg(jc);
  nc_jobs_stats st;
  nc_jobs_get_stats(m, &st);
  EXPECT_EQ(st.started, 3u);
  EXPECT_EQ(st.finished, 3u);
  EXPECT_EQ(st.running, 0u);
  EXPECT_EQ(st.queued, 0u);
}

TEST_F(JobsTest, QueuePositionsAndQueueCap) {
  o.max_queued = 2;
  start();
  std::string a = submit(test_request(100000, 20));
  ASSERT_TRUE(wait_events(a, 3));
  uint32_t pb = 9, pc = 9;
  std::string b = submit(test_request(1, 1), &pb);
  std::string c = submit(test_request(1, 1), &pc);
  EXPECT_EQ(pb, 0u);
  EXPECT_EQ(pc, 1u);
  uint32_t running = 0, queued = 0;
  nc_jobs_counts(m, &running, &queued);
  EXPECT_EQ(running, 1u);
  EXPECT_EQ(queued, 2u);
  auto req = test_request(1, 1);
  char id[NC_JOB_ID_LEN + 1];
  EXPECT_EQ(nc_jobs_submit(m, NANOCHAT__V1__JOB_KIND__JOB_TEST, req.data(), req.size(), id, nullptr),
            NC_EBUSY);
  EXPECT_NE(std::string(nc_store_last_error()).find("queue full"), std::string::npos);
  ASSERT_EQ(nc_jobs_cancel(m, a.c_str(), nullptr), NC_OK);
  for (auto &x : {a, b, c}) nc_store_free_msg(wait(x));
}

TEST_F(JobsTest, SubmitRejectsUnavailableKinds) {
  start();
  auto req = test_request(1, 1);
  char id[NC_JOB_ID_LEN + 1];
  EXPECT_EQ(nc_jobs_submit(m, NANOCHAT__V1__JOB_KIND__JOB_BASE, req.data(), req.size(), id, nullptr),
            NC_ENOTSUP);
  EXPECT_EQ(nc_jobs_submit(m, NANOCHAT__V1__JOB_KIND__JOB_UNSPECIFIED, req.data(), req.size(), id,
                           nullptr),
            NC_EINVAL);
  EXPECT_EQ(nc_jobs_submit(m, (Nanochat__V1__JobKind)99, req.data(), req.size(), id, nullptr),
            NC_EINVAL);
  std::vector<uint8_t> big(NC_JOBIO_MAX_REQUEST + 1);
  EXPECT_EQ(nc_jobs_submit(m, NANOCHAT__V1__JOB_KIND__JOB_TEST, big.data(), big.size(), id, nullptr),
            NC_EINVAL);
}

TEST_F(JobsTest, MissingProgramFailsWithReason) {
  exe = "/nonexistent/nanochat-prog";
  o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = exe.c_str();
  start();
  std::string id = submit(test_request(1, 1));
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_FAILED);
  ASSERT_NE(j->error, nullptr);
  EXPECT_NE(std::string(j->error).find("cannot start /nonexistent/nanochat-prog"), std::string::npos)
      << j->error;
  nc_store_free_msg(j);
  size_t n = 0, total = 9;
  ASSERT_EQ(nc_store_job_queue(s, nullptr, 0, &n, &total), NC_OK);
  EXPECT_EQ(total, 0u);
}

TEST_F(JobsTest, GarbageOnTheEventPipeIsAProtocolError) {
  std::string sh = script("garbage.sh", "printf 'garbage!' >&3\nsleep 30\n");
  o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = sh.c_str();
  start();
  std::string id = submit({});
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_FAILED);
  ASSERT_NE(j->error, nullptr);
  EXPECT_EQ(std::string(j->error).rfind("job protocol error: frame length", 0), 0u) << j->error;
  nc_store_free_msg(j);
}

// A scripted child that writes prepared frames: EVAL metrics merge into JobInfo, CHECKPOINT
// metadata lands in the checkpoints database with the job's id, child-set seq/job ids ignored.
TEST_F(JobsTest, ChildEventsUpdateJobInfoAndCheckpoints) {
  std::vector<uint8_t> frames;
  auto add = [&](Nanochat__V1__JobEvent *ev) {
    uint8_t *b;
    size_t n;
    ASSERT_EQ(nc_jobio_frame_encode(ev, &b, &n), NC_OK);
    frames.insert(frames.end(), b, b + n);
    free(b);
  };
  Nanochat__V1__JobEvent__MetricsEntry m1 = NANOCHAT__V1__JOB_EVENT__METRICS_ENTRY__INIT,
                                       m2 = NANOCHAT__V1__JOB_EVENT__METRICS_ENTRY__INIT;
  m1.key = (char *)"val_bpb";
  m1.has_value = 1;
  m1.value = 1.5;
  m2.key = (char *)"core_metric";
  m2.has_value = 1;
  m2.value = 0.25;
  Nanochat__V1__JobEvent__MetricsEntry *mp[] = {&m1, &m2};
  Ev e1(NANOCHAT__V1__EVENT_KIND__EVENT_EVAL, "eval");
  e1.e.n_metrics = 2;
  e1.e.metrics = mp;
  e1.e.job_id = (char *)"ffffffffffffffff";  // ignored
  e1.e.has_seq = 1;
  e1.e.seq = 777;                            // ignored
  add(&e1.e);
  Nanochat__V1__JobEvent__MetricsEntry m3 = NANOCHAT__V1__JOB_EVENT__METRICS_ENTRY__INIT;
  m3.key = (char *)"val_bpb";
  m3.has_value = 1;
  m3.value = 1.25;
  Nanochat__V1__JobEvent__MetricsEntry *mp3[] = {&m3};
  Ev e2(NANOCHAT__V1__EVENT_KIND__EVENT_EVAL, "eval");
  e2.e.n_metrics = 1;
  e2.e.metrics = mp3;
  add(&e2.e);
  Nanochat__V1__CheckpointInfo ci = NANOCHAT__V1__CHECKPOINT_INFO__INIT;
  ci.has_phase = 1;
  ci.phase = NANOCHAT__V1__PHASE__PHASE_BASE;
  ci.tag = (char *)"d2";
  ci.has_step = 1;
  ci.step = 10;
  ci.path = (char *)"checkpoints/base/d2/model_000010.safetensors";
  Ev e3(NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT);
  e3.e.checkpoint = &ci;
  add(&e3.e);
  std::string fpath = tmp.sub("frames.bin");
  ASSERT_TRUE(write_file(fpath, frames));
  std::string sh = script("frames.sh", "cat '" + fpath + "' >&3\n");
  o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = sh.c_str();
  start();
  std::string id = submit({});
  Nanochat__V1__JobInfo *j = wait(id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  std::map<std::string, double> got;
  for (size_t i = 0; i < j->n_metrics; i++) got[j->metrics[i]->key] = j->metrics[i]->value;
  EXPECT_EQ(got.size(), 2u);
  EXPECT_DOUBLE_EQ(got["val_bpb"], 1.25);  // newer value wins
  EXPECT_DOUBLE_EQ(got["core_metric"], 0.25);
  ASSERT_NE(j->checkpoint, nullptr);
  EXPECT_EQ(j->checkpoint->step, 10);
  EXPECT_STREQ(j->checkpoint->job_id, id.c_str());
  nc_store_free_msg(j);
  Nanochat__V1__CheckpointInfo *c = nullptr;
  ASSERT_EQ(nc_store_ckpt_get(s, NANOCHAT__V1__PHASE__PHASE_BASE, "d2", 10, &c), NC_OK);
  EXPECT_STREQ(c->job_id, id.c_str());
  EXPECT_STREQ(c->path, ci.path);
  nc_store_free_msg(c);
  auto ev = events(id);
  ASSERT_EQ(ev.size(), 6u);  // QUEUED RUNNING EVAL EVAL CHECKPOINT SUCCEEDED
  EXPECT_EQ(ev[2]->seq, 3u);
  EXPECT_STREQ(ev[2]->job_id, id.c_str());
  free_events(ev);
}

// Children see fds 0-3 only, /dev/null on stdin, the job log on stdout/stderr, their own
// process group, the job directory as cwd, and no secrets in their environment.
TEST_F(JobsTest, ChildGetsOnlyItsFdsAndNoSecrets) {
  setenv("NANOCHAT_TOKEN", "super-secret-value", 1);
  setenv("MY_API_KEY", "another-secret", 1);
  setenv("NC_HARMLESS_VAR", "visible", 1);
  start();
  unsetenv("NANOCHAT_TOKEN");
  unsetenv("MY_API_KEY");
  std::string id = submit(test_request(100000, 20));
  ASSERT_TRUE(wait_events(id, 4));  // past exec: the child already reported
  Nanochat__V1__JobInfo *j = nullptr;
  ASSERT_EQ(nc_jobs_get(m, id.c_str(), &j), NC_OK);
  pid_t pid = j->pid;
  nc_store_free_msg(j);
  ASSERT_GT(pid, 0);
  std::string proc = "/proc/" + std::to_string(pid);
  std::set<int> fds;
  DIR *d = opendir((proc + "/fd").c_str());
  ASSERT_NE(d, nullptr);
  while (struct dirent *e = readdir(d))
    if (e->d_name[0] != '.') fds.insert(atoi(e->d_name));
  closedir(d);
  EXPECT_EQ(fds, (std::set<int>{0, 1, 2, 3}));
  auto link = [&](const std::string &p) {
    char b[4096];
    ssize_t n = readlink(p.c_str(), b, sizeof b - 1);
    return n > 0 ? std::string(b, n) : std::string();
  };
  std::string jobdir = tmp.path + "/jobs/" + id;
  char real[PATH_MAX];
  ASSERT_NE(realpath(jobdir.c_str(), real), nullptr);
  EXPECT_EQ(link(proc + "/fd/0"), "/dev/null");
  EXPECT_EQ(link(proc + "/fd/1"), std::string(real) + "/output.log");
  EXPECT_EQ(link(proc + "/fd/2"), std::string(real) + "/output.log");
  EXPECT_EQ(link(proc + "/fd/3").rfind("pipe:", 0), 0u);
  EXPECT_EQ(link(proc + "/cwd"), std::string(real));
  EXPECT_EQ(getpgid(pid), pid);
  std::vector<uint8_t> env = read_file(proc + "/environ");
  std::string envs(env.begin(), env.end());
  EXPECT_EQ(envs.find("super-secret-value"), std::string::npos);
  EXPECT_EQ(envs.find("another-secret"), std::string::npos);
  EXPECT_NE(envs.find("NC_HARMLESS_VAR=visible"), std::string::npos);
  unsetenv("NC_HARMLESS_VAR");
  ASSERT_EQ(nc_jobs_cancel(m, id.c_str(), nullptr), NC_OK);
  nc_store_free_msg(wait(id));
}

// Three subscribers, each with its own cursor and thread, pull from the store when notified:
// all receive the identical ordered event sequence, equal to the stored history.
struct Subscriber {
  nc_store *store;
  std::string id;
  std::mutex mu;
  std::condition_variable cv;
  bool kick = false;
  uint64_t cursor = 0;
  std::vector<uint64_t> seqs;
  std::vector<std::vector<uint8_t>> bodies;
  int stalls = 0;
  std::thread th;
  static void cb(void *arg, const char *, uint64_t, bool) {
    auto *s = static_cast<Subscriber *>(arg);
    std::lock_guard<std::mutex> g(s->mu);
    s->kick = true;
    s->cv.notify_one();
  }
  void run() {
    for (int iter = 0; iter < 100000; iter++) {
      nc_blob_list bl;
      ASSERT_EQ(nc_store_event_range(store, id.c_str(), cursor + 1, 7, SIZE_MAX, &bl), NC_OK);
      for (size_t i = 0; i < bl.n; i++) {
        seqs.push_back(bl.v[i].seq);
        bodies.emplace_back(bl.v[i].data, bl.v[i].data + bl.v[i].len);
        cursor = bl.v[i].seq;
      }
      size_t got = bl.n;
      nc_blob_list_free(&bl);
      if (got) continue;
      Nanochat__V1__JobInfo *j = nullptr;
      ASSERT_EQ(nc_store_job_get(store, id.c_str(), &j), NC_OK);
      bool done = nc_job_state_final(j->state) && j->last_seq == cursor;
      nc_store_free_msg(j);
      if (done) return;
      std::unique_lock<std::mutex> l(mu);
      if (!cv.wait_for(l, std::chrono::seconds(20), [&] { return kick; })) stalls++;
      kick = false;
    }
  }
};

TEST_F(JobsTest, ThreeSubscribersReceiveIdenticalOrderedEvents) {
  start();
  std::string id = submit(test_request(40, 2));
  Subscriber subs[3];
  nc_jobs_sub *h[3];
  for (int i = 0; i < 3; i++) {
    subs[i].store = s;
    subs[i].id = id;
    ASSERT_EQ(nc_jobs_subscribe(m, id.c_str(), Subscriber::cb, &subs[i], &h[i]), NC_OK);
    subs[i].th = std::thread(&Subscriber::run, &subs[i]);
  }
  for (auto &x : subs) x.th.join();
  for (int i = 0; i < 3; i++) nc_jobs_unsubscribe(m, h[i]);
  auto ev = events(id);
  ASSERT_EQ(ev.size(), 40u + 6u);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(subs[i].stalls, 0) << "subscriber " << i << " was never woken";
    ASSERT_EQ(subs[i].seqs.size(), ev.size());
    for (size_t k = 0; k < ev.size(); k++) EXPECT_EQ(subs[i].seqs[k], k + 1);
    EXPECT_EQ(subs[i].bodies, subs[0].bodies);
  }
  Nanochat__V1__JobEvent *last =
      nanochat__v1__job_event__unpack(nullptr, subs[2].bodies.back().size(), subs[2].bodies.back().data());
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  nc_store_free_msg(last);
  free_events(ev);
}

TEST_F(JobsTest, ReplayFromSeqReturnsTheTail) {
  start();
  std::string id = submit(test_request(5, 1));
  nc_store_free_msg(wait(id));
  auto all = events(id);
  auto tail = events(id, 4);
  ASSERT_EQ(tail.size(), all.size() - 3);
  for (size_t i = 0; i < tail.size(); i++) {
    EXPECT_EQ(tail[i]->seq, all[i + 3]->seq);
    EXPECT_EQ(tail[i]->kind, all[i + 3]->kind);
  }
  free_events(all);
  free_events(tail);
}

TEST_F(JobsTest, UnsubscribedCallbackIsNeverCalledAgain) {
  start();
  std::atomic<int> calls{0};
  auto cb = [](void *arg, const char *, uint64_t, bool) { (*(std::atomic<int> *)arg)++; };
  std::string id = submit(test_request(20, 2));
  nc_jobs_sub *h = nullptr;
  ASSERT_EQ(nc_jobs_subscribe(m, id.c_str(), cb, &calls, &h), NC_OK);
  ASSERT_TRUE(wait_events(id, 4));
  nc_jobs_unsubscribe(m, h);
  int seen = calls.load();
  EXPECT_GT(seen, 0);
  nc_store_free_msg(wait(id));
  EXPECT_EQ(calls.load(), seen);
  EXPECT_EQ(nc_jobs_subscribe(m, "nope", cb, &calls, &h), NC_EINVAL);
}

// Shutdown rule: running -> SIGTERM -> INTERRUPTED "server shutdown"; queued stays queued and
// runs after the next start.
TEST_F(JobsTest, ShutdownInterruptsRunningAndKeepsQueued) {
  start();
  std::string a = submit(test_request(100000, 20));
  ASSERT_TRUE(wait_events(a, 4));
  std::string b = submit(test_request(2, 1));
  nc_jobs_shutdown(m);
  char id[NC_JOB_ID_LEN + 1];
  auto req = test_request(1, 1);
  EXPECT_EQ(nc_jobs_submit(m, NANOCHAT__V1__JOB_KIND__JOB_TEST, req.data(), req.size(), id, nullptr),
            NC_ENOTREADY);
  Nanochat__V1__JobInfo *j = nullptr;
  ASSERT_EQ(nc_jobs_get(m, a.c_str(), &j), NC_OK);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED);
  EXPECT_STREQ(j->error, "server shutdown");
  nc_store_free_msg(j);
  ASSERT_EQ(nc_jobs_get(m, b.c_str(), &j), NC_OK);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_QUEUED);
  nc_store_free_msg(j);
  auto ev = events(a);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(std::string(ev[ev.size() - 2]->message).rfind("stopped by SIGTERM", 0), 0u);
  free_events(ev);
  nc_jobs_free(m);
  m = nullptr;
  start();
  j = wait(b);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED);
  nc_store_free_msg(j);
  nc_jobs_stats st;
  nc_jobs_get_stats(m, &st);
  EXPECT_EQ(st.interrupted_at_start, 0u);  // a was finalized by the clean shutdown
}

// Restart after a kill -9 of the server: a child process plays nanochatd (store + manager +
// a subscriber that reports every acknowledged seq on a pipe) and is SIGKILLed mid-job. The
// next start marks the job INTERRUPTED, keeps every acknowledged event, and the orphaned job
// process has stopped (parent-death signal).
TEST(JobsRestart, ServerKillNineMidJobLeavesInterruptedJobWithAllAckedEvents) {
  TempDir tmp;
  std::string dir = tmp.sub("store");
  // become the reaper of the orphaned job process (this container's pid 1 does not reap)
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  pid_t server = fork();
  ASSERT_GE(server, 0);
  if (server == 0) {
    close(pfd[0]);
    nc_store *s = open_store(dir);
    if (!s) _exit(3);
    nc_jobs_opts o = {};
    o.store = s;
    o.data_dir = tmp.path.c_str();
    o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = kTestJob.c_str();
    nc_jobs *m = nullptr;
    if (nc_jobs_start(&o, &m) != NC_OK) _exit(4);
    auto req = test_request(100000, 10);
    char id[NC_JOB_ID_LEN + 1];
    static int fd;
    fd = pfd[1];
    auto cb = [](void *, const char *, uint64_t last_seq, bool) {
      if (write(fd, &last_seq, sizeof last_seq) != (ssize_t)sizeof last_seq) _exit(6);
    };
    nc_jobs_sub *sub;
    // subscribe before the job can produce events: ids are random, so subscribe to the id
    // right after the submit; events 1 (QUEUED) may precede it, the pipe reports the rest.
    if (nc_jobs_submit(m, NANOCHAT__V1__JOB_KIND__JOB_TEST, req.data(), req.size(), id, nullptr))
      _exit(5);
    if (write(fd, id, NC_JOB_ID_LEN) != NC_JOB_ID_LEN) _exit(6);
    nc_jobs_subscribe(m, id, cb, nullptr, &sub);
    for (;;) pause();
  }
  close(pfd[1]);
  char idb[NC_JOB_ID_LEN + 1] = {0};
  ASSERT_EQ(read(pfd[0], idb, NC_JOB_ID_LEN), NC_JOB_ID_LEN);
  std::string id = idb;
  uint64_t acked = 0, v;
  while (acked < 8 && read(pfd[0], &v, sizeof v) == (ssize_t)sizeof v) acked = std::max(acked, v);
  ASSERT_GE(acked, 8u);
  ASSERT_EQ(kill(server, SIGKILL), 0);
  int st;
  ASSERT_EQ(waitpid(server, &st, 0), server);
  while (read(pfd[0], &v, sizeof v) == (ssize_t)sizeof v) acked = std::max(acked, v);
  close(pfd[0]);

  nc_store *s = open_store(dir);
  ASSERT_NE(s, nullptr);
  Nanochat__V1__JobInfo *before = nullptr;
  ASSERT_EQ(nc_store_job_get(s, id.c_str(), &before), NC_OK);
  EXPECT_EQ(before->state, NANOCHAT__V1__JOB_STATE__JOB_RUNNING);
  pid_t child = before->pid;
  uint64_t stored_last = before->last_seq;
  nc_store_free_msg(before);
  EXPECT_GE(stored_last, acked);
  nc_jobs_opts o = {};
  o.store = s;
  o.data_dir = tmp.path.c_str();
  o.exe[NANOCHAT__V1__JOB_KIND__JOB_TEST] = kTestJob.c_str();
  nc_jobs *m = nullptr;
  ASSERT_EQ(nc_jobs_start(&o, &m), NC_OK) << nc_store_last_error();
  nc_jobs_stats jst;
  nc_jobs_get_stats(m, &jst);
  EXPECT_EQ(jst.interrupted_at_start, 1u);
  Nanochat__V1__JobInfo *j = nullptr;
  ASSERT_EQ(nc_jobs_get(m, id.c_str(), &j), NC_OK);
  EXPECT_EQ(j->state, NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED);
  EXPECT_STREQ(j->error, "the server stopped while the job ran");
  EXPECT_EQ(j->last_seq, stored_last + 1);
  EXPECT_EQ(j->pid, 0);
  nc_store_free_msg(j);
  Nanochat__V1__JobEvent **items = nullptr;
  size_t n = 0;
  ASSERT_EQ(nc_store_event_list(s, id.c_str(), 1, 1000000, &items, &n), NC_OK);
  ASSERT_EQ(n, stored_last + 1);
  for (size_t i = 0; i < n; i++) EXPECT_EQ(items[i]->seq, i + 1);  // every acked seq is there
  EXPECT_EQ(items[n - 1]->state, NANOCHAT__V1__JOB_STATE__JOB_INTERRUPTED);
  nc_store_free_msgs(items, n);
  // the orphaned job process got SIGTERM from the parent-death signal and stopped by itself
  // (an exit, not a kill: it noticed the stop request or the closed event pipe)
  int cst = 0;
  pid_t r = 0;
  for (int i = 0; i < 1000 && r == 0; i++) {
    r = waitpid(child, &cst, WNOHANG);
    if (r == 0) usleep(10000);
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_EQ(r, child) << "job process " << child << " outlived its server";
  EXPECT_TRUE(WIFEXITED(cst)) << "status " << cst;
  nc_jobs_free(m);
  nc_store_close(s);
}

TEST(JobsStart, RejectsBadOptions) {
  nc_jobs *m = nullptr;
  nc_jobs_opts o = {};
  EXPECT_EQ(nc_jobs_start(&o, &m), NC_EINVAL);
  TempDir tmp;
  nc_store *s = open_store(tmp.sub("store"));
  ASSERT_NE(s, nullptr);
  o.store = s;
  o.data_dir = "/nonexistent/dir/for/jobs";
  EXPECT_EQ(nc_jobs_start(&o, &m), NC_ENOTFOUND);
  o.data_dir = tmp.path.c_str();
  o.max_running = 1000;
  EXPECT_EQ(nc_jobs_start(&o, &m), NC_EINVAL);
  nc_store_close(s);
}

}  // namespace
