// test_jobio.cc — the job child protocol: argument parsing, request files, event frames
// (encode/decode, limits, malformed input) and the child-side send helpers over a real pipe.
#include <gtest/gtest.h>
#include <fcntl.h>

#include <string>
#include <vector>

#include "store_test_util.h"

extern "C" {
#include "nc_jobio.h"
}

using namespace nctest;

namespace {

int parse(const std::vector<std::string> &args, nc_jobio_args *out, std::string *err = nullptr) {
  std::vector<char *> argv;
  argv.push_back((char *)"prog");
  for (auto &a : args) argv.push_back((char *)a.c_str());
  char e[256] = {0};
  int rc = nc_jobio_parse_args((int)argv.size(), argv.data(), out, e, sizeof e);
  if (err) *err = e;
  return rc;
}

const std::vector<std::string> kGood = {"--job-id", "0123456789abcdef", "--data-dir", "/d",
                                        "--request", "/d/jobs/x/request.pb", "--events-fd", "3"};

TEST(JobioArgs, ParsesTheProtocolInvocation) {
  nc_jobio_args a;
  ASSERT_EQ(parse(kGood, &a), NC_OK);
  EXPECT_STREQ(a.job_id, "0123456789abcdef");
  EXPECT_STREQ(a.data_dir, "/d");
  EXPECT_STREQ(a.request_path, "/d/jobs/x/request.pb");
  EXPECT_EQ(a.events_fd, 3);
}

TEST(JobioArgs, RejectsMalformedInvocations) {
  nc_jobio_args a;
  std::string err;
  struct {
    std::vector<std::string> args;
    const char *needle;
  } cases[] = {
      {{}, "--job-id: missing"},
      {{"--job-id", "0123456789abcdef"}, "--data-dir: missing"},
      {{"--job-id", "0123456789abcdef", "--job-id", "0123456789abcdef"}, "given twice"},
      {{"--job-id", "../../etc/passwd"}, "--job-id"},
      {{"--job-id", "0123456789ABCDEF"}, "--job-id"},
      {{"--bogus", "1"}, "unknown argument"},
      {{"--job-id"}, "missing value"},
      {{"--events-fd", "x"}, "--events-fd"},
      {{"--events-fd", "-1"}, "--events-fd"},
      {{"--events-fd", "99999"}, "--events-fd"},
      {{"--data-dir", ""}, "empty value"},
  };
  for (auto &c : cases) {
    EXPECT_EQ(parse(c.args, &a, &err), NC_EINVAL) << c.needle;
    EXPECT_NE(err.find(c.needle), std::string::npos) << err;
  }
}

TEST(JobioRequest, ReadsFileRefusesSymlinksAndOversize) {
  TempDir tmp;
  nc_jobio_args a;
  ASSERT_EQ(parse(kGood, &a), NC_OK);
  std::string p = tmp.sub("request.pb");
  ASSERT_TRUE(write_file(p, {1, 2, 3}));
  a.request_path = p.c_str();
  uint8_t *buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(nc_jobio_read_request(&a, &buf, &len), NC_OK);
  ASSERT_EQ(len, 3u);
  EXPECT_EQ(buf[2], 3);
  free(buf);
  std::string l = tmp.sub("link.pb");
  ASSERT_EQ(symlink(p.c_str(), l.c_str()), 0);
  a.request_path = l.c_str();
  EXPECT_NE(nc_jobio_read_request(&a, &buf, &len), NC_OK);
  std::string big = tmp.sub("big.pb");
  ASSERT_TRUE(write_file(big, std::vector<uint8_t>(NC_JOBIO_MAX_REQUEST + 1)));
  a.request_path = big.c_str();
  EXPECT_EQ(nc_jobio_read_request(&a, &buf, &len), NC_EFULL);
  std::string missing = tmp.sub("missing.pb");
  a.request_path = missing.c_str();
  EXPECT_EQ(nc_jobio_read_request(&a, &buf, &len), NC_ENOTFOUND);
}

std::vector<uint8_t> encode(Nanochat__V1__JobEvent *ev) {
  uint8_t *b = nullptr;
  size_t n = 0;
  EXPECT_EQ(nc_jobio_frame_encode(ev, &b, &n), NC_OK);
  std::vector<uint8_t> v(b, b + n);
  free(b);
  return v;
}

int decode(const std::vector<uint8_t> &f, size_t *used, Nanochat__V1__JobEvent **ev,
           std::string *err = nullptr) {
  char e[300] = {0};
  int rc = nc_jobio_frame_decode(f.data(), f.size(), used, ev, e, sizeof e);
  if (err) *err = e;
  return rc;
}

TEST(JobioFrames, RoundTripAndStripsManagerFields) {
  Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS, "", 7);
  e.e.job_id = (char *)"ffffffffffffffff";
  e.e.has_seq = 1;
  e.e.seq = 99;
  e.e.has_state = 1;
  e.e.state = NANOCHAT__V1__JOB_STATE__JOB_SUCCEEDED;
  auto f = encode(&e.e);
  size_t used = 0;
  Nanochat__V1__JobEvent *ev = nullptr;
  ASSERT_EQ(decode(f, &used, &ev), NC_OK);
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(used, f.size());
  EXPECT_EQ(ev->progress->step, 7);
  EXPECT_EQ(ev->job_id, nullptr);
  EXPECT_FALSE(ev->has_seq);
  EXPECT_FALSE(ev->has_state);
  nc_store_free_msg(ev);
}

TEST(JobioFrames, NonCanonicalEncodingsAreProtocolErrors) {
  Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, "hello");
  auto good = encode(&e.e);
  size_t used = 0;
  Nanochat__V1__JobEvent *ev = nullptr;
  ASSERT_EQ(decode(good, &used, &ev), NC_OK);
  nc_store_free_msg(ev);
  struct Case { const char *name; std::vector<uint8_t> extra; } cases[] = {
      {"unknown field 15", {0x78, 0x01}},
      {"field number 0 with an overlong tag", {0x85, 0x00, 0, 0, 0, 0}},
      {"kind repeated", {0x20, 0x06}},
  };
  for (auto &cs : cases) {
    std::vector<uint8_t> f(good.begin() + 4, good.end());
    f.insert(f.end(), cs.extra.begin(), cs.extra.end());
    uint32_t n = (uint32_t)f.size();
    std::vector<uint8_t> frame = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    frame.insert(frame.end(), f.begin(), f.end());
    std::string err;
    ev = nullptr;
    EXPECT_EQ(decode(frame, &used, &ev, &err), NC_EINVAL) << cs.name;
    EXPECT_EQ(ev, nullptr) << cs.name;
  }
}

TEST(JobioFrames, PartialFramesNeedMoreBytes) {
  Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, "hello");
  auto f = encode(&e.e);
  for (size_t cut = 0; cut < f.size(); cut++) {
    std::vector<uint8_t> part(f.begin(), f.begin() + cut);
    size_t used = 1;
    Nanochat__V1__JobEvent *ev = (Nanochat__V1__JobEvent *)1;
    ASSERT_EQ(decode(part, &used, &ev), NC_OK) << cut;
    EXPECT_EQ(used, 0u);
    EXPECT_EQ(ev, nullptr);
  }
  // two frames back to back decode one at a time
  auto two = f;
  two.insert(two.end(), f.begin(), f.end());
  size_t used = 0;
  Nanochat__V1__JobEvent *ev = nullptr;
  ASSERT_EQ(decode(two, &used, &ev), NC_OK);
  EXPECT_EQ(used, f.size());
  nc_store_free_msg(ev);
}

TEST(JobioFrames, BadLengthsAreProtocolErrors) {
  size_t used;
  Nanochat__V1__JobEvent *ev;
  std::string err;
  EXPECT_EQ(decode({0, 0, 0, 0, 1}, &used, &ev, &err), NC_EINVAL);
  EXPECT_NE(err.find("frame length 0"), std::string::npos);
  uint32_t big = NC_JOBIO_MAX_FRAME + 1;
  std::vector<uint8_t> f = {(uint8_t)big, (uint8_t)(big >> 8), (uint8_t)(big >> 16), 0};
  EXPECT_EQ(decode(f, &used, &ev, &err), NC_EINVAL);
  EXPECT_EQ(decode({3, 0, 0, 0, 0xff, 0xff, 0xff}, &used, &ev, &err), NC_EINVAL);
  EXPECT_NE(err.find("not a JobEvent"), std::string::npos) << err;
}

TEST(JobioFrames, EventRulesAreEnforced) {
  size_t used;
  Nanochat__V1__JobEvent *ev;
  std::string err;
  // kinds the manager owns
  for (auto k : {NANOCHAT__V1__EVENT_KIND__EVENT_STATE, NANOCHAT__V1__EVENT_KIND__EVENT_SNAPSHOT,
                 NANOCHAT__V1__EVENT_KIND__EVENT_UNSPECIFIED}) {
    Ev e(k);
    EXPECT_EQ(decode(encode(&e.e), &used, &ev, &err), NC_EINVAL) << k;
  }
  Ev nokind(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, "x");
  nokind.e.has_kind = 0;
  EXPECT_EQ(decode(encode(&nokind.e), &used, &ev, &err), NC_EINVAL);
  // invalid UTF-8 and oversize messages
  Ev bad(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, "ok \xff\xfe bad");
  EXPECT_EQ(decode(encode(&bad.e), &used, &ev, &err), NC_EINVAL);
  EXPECT_NE(err.find("UTF-8"), std::string::npos);
  Ev huge(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, std::string(NC_JOBIO_MAX_MESSAGE + 1, 'a'));
  EXPECT_EQ(decode(encode(&huge.e), &used, &ev, &err), NC_EINVAL);
  // metrics: too many, empty name, long name
  std::vector<Nanochat__V1__JobEvent__MetricsEntry> ents(NC_JOBIO_MAX_METRICS + 1);
  std::vector<Nanochat__V1__JobEvent__MetricsEntry *> ptrs;
  for (auto &m : ents) {
    Nanochat__V1__JobEvent__MetricsEntry init = NANOCHAT__V1__JOB_EVENT__METRICS_ENTRY__INIT;
    m = init;
    m.key = (char *)"m";
    ptrs.push_back(&m);
  }
  Ev many(NANOCHAT__V1__EVENT_KIND__EVENT_EVAL);
  many.e.n_metrics = ptrs.size();
  many.e.metrics = ptrs.data();
  EXPECT_EQ(decode(encode(&many.e), &used, &ev, &err), NC_EINVAL);
  many.e.n_metrics = 1;
  ents[0].key = (char *)"";
  EXPECT_EQ(decode(encode(&many.e), &used, &ev, &err), NC_EINVAL);
  std::string longname(NC_JOBIO_MAX_METRIC_NAME + 1, 'k');
  ents[0].key = (char *)longname.c_str();
  EXPECT_EQ(decode(encode(&many.e), &used, &ev, &err), NC_EINVAL);
  // checkpoint events need a valid checkpoint
  Ev ck(NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT);
  EXPECT_EQ(decode(encode(&ck.e), &used, &ev, &err), NC_EINVAL);
  Nanochat__V1__CheckpointInfo ci = NANOCHAT__V1__CHECKPOINT_INFO__INIT;
  ci.has_phase = 1;
  ci.phase = NANOCHAT__V1__PHASE__PHASE_BASE;
  ci.tag = (char *)"d4";
  ci.has_step = 1;
  ci.step = 1;
  ci.path = (char *)"/etc/passwd";
  ck.e.checkpoint = &ci;
  EXPECT_EQ(decode(encode(&ck.e), &used, &ev, &err), NC_EINVAL);
  EXPECT_NE(err.find("checkpoint.path"), std::string::npos) << err;
  ci.path = (char *)"checkpoints/base/d4/model.safetensors";
  ci.job_id = (char *)"not-a-job\xff";  // ignored and stripped
  ASSERT_EQ(decode(encode(&ck.e), &used, &ev, &err), NC_OK) << err;
  EXPECT_EQ(ev->checkpoint->job_id, nullptr);
  nc_store_free_msg(ev);
}

TEST(JobioSend, HelpersWriteDecodableFramesToThePipe) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  nc_jobio_args a;
  ASSERT_EQ(parse(kGood, &a), NC_OK);
  a.events_fd = p[1];
  nc_jobio *io = nullptr;
  ASSERT_EQ(nc_jobio_open(&a, &io), NC_OK);
  Nanochat__V1__Progress pr = NANOCHAT__V1__PROGRESS__INIT;
  pr.has_step = 1;
  pr.step = 5;
  ASSERT_EQ(nc_jobio_progress(io, &pr), NC_OK);
  const char *names[] = {"val_bpb"};
  double vals[] = {0.75};
  ASSERT_EQ(nc_jobio_metrics(io, names, vals, 1, "eval"), NC_OK);
  // a log line cut in the middle of a 2-byte character is shortened to a UTF-8 boundary
  std::string msg(NC_JOBIO_MAX_MESSAGE - 1, 'a');
  msg += "\xc3\xa9";
  ASSERT_EQ(nc_jobio_log(io, "%s", msg.c_str()), NC_OK);
  const char *bad[] = {""};
  EXPECT_EQ(nc_jobio_metrics(io, bad, vals, 1, nullptr), NC_EINVAL);  // not sent
  nc_jobio_close(io);  // closes p[1]
  std::vector<uint8_t> all;
  uint8_t buf[8192];
  ssize_t r;
  while ((r = read(p[0], buf, sizeof buf)) > 0) all.insert(all.end(), buf, buf + r);
  close(p[0]);
  size_t off = 0;
  std::vector<Nanochat__V1__JobEvent *> evs;
  while (off < all.size()) {
    std::vector<uint8_t> rest(all.begin() + off, all.end());
    size_t used;
    Nanochat__V1__JobEvent *ev;
    ASSERT_EQ(decode(rest, &used, &ev), NC_OK);
    ASSERT_GT(used, 0u);
    evs.push_back(ev);
    off += used;
  }
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[0]->progress->step, 5);
  EXPECT_DOUBLE_EQ(evs[1]->metrics[0]->value, 0.75);
  EXPECT_STREQ(evs[1]->message, "eval");
  EXPECT_EQ(strlen(evs[2]->message), (size_t)NC_JOBIO_MAX_MESSAGE - 1);
  for (auto *e : evs) nc_store_free_msg(e);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

TEST(JobioSend, SendToAClosedPipeIsAnErrorNotADeath) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[0]);
  nc_jobio_args a;
  ASSERT_EQ(parse(kGood, &a), NC_OK);
  a.events_fd = p[1];
  nc_jobio *io = nullptr;
  ASSERT_EQ(nc_jobio_open(&a, &io), NC_OK);  // ignores SIGPIPE
  EXPECT_EQ(nc_jobio_log(io, "anyone there?"), NC_EIO);
  nc_jobio_close(io);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  nc_jobio_args bad = a;
  bad.events_fd = 1000;
  EXPECT_EQ(nc_jobio_open(&bad, &io), NC_EINVAL);
}

}  // namespace
