// test_store.cc — nc_store round trips: sessions (append, versions, caps, concurrency,
// pagination), checkpoints, jobs/queue/events, eval results, id validators.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <thread>

#include "store_test_util.h"

using namespace nctest;

namespace {

struct StoreTest : ::testing::Test {
  TempDir tmp;
  nc_store *s = nullptr;
  void SetUp() override {
    s = open_store(tmp.sub("store"));
    ASSERT_NE(s, nullptr);
  }
  void TearDown() override { nc_store_close(s); }
  int append(const char *id, const std::vector<std::string> &texts,
             uint64_t expect = NC_STORE_ANY_VERSION, bool create = true, uint64_t *ver = nullptr) {
    std::vector<std::unique_ptr<Msg>> msgs;
    std::vector<const Nanochat__V1__ChatMessage *> ptrs;
    for (auto &t : texts) {
      msgs.emplace_back(new Msg(t));
      ptrs.push_back(&msgs.back()->m);
    }
    nc_session_append a = {};
    a.messages = ptrs.data();
    a.n_messages = ptrs.size();
    a.expect_version = expect;
    a.create_if_missing = create;
    return nc_store_session_append(s, id, &a, ver);
  }
};

const char *kSid = "0123456789abcdef0123456789abcdef";
const char *kSid2 = "fedcba9876543210fedcba9876543210";

TEST_F(StoreTest, OpenCreatesSchemaRecord) {
  nc_store_stats st;
  ASSERT_EQ(nc_store_get_stats(s, &st), NC_OK);
  EXPECT_EQ(st.schema_version, (uint32_t)NC_STORE_SCHEMA_VERSION);
  EXPECT_TRUE(st.healthy);
  EXPECT_EQ(st.map_size, NC_STORE_DEFAULT_MAP_SIZE);
  EXPECT_EQ(st.sessions, 0u);
  EXPECT_TRUE(nc_store_healthy(s));
}

TEST_F(StoreTest, ReopenKeepsData) {
  ASSERT_EQ(append(kSid, {"hello"}), NC_OK);
  nc_store_close(s);
  s = open_store(tmp.sub("store"));
  ASSERT_NE(s, nullptr);
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  ASSERT_EQ(ss->n_messages, 1u);
  EXPECT_STREQ(ss->messages[0]->content, "hello");
  nc_store_free_msg(ss);
}

TEST_F(StoreTest, SessionAppendRoundTrip) {
  uint64_t v = 0;
  ASSERT_EQ(append(kSid, {"hi", "there"}, NC_STORE_ANY_VERSION, true, &v), NC_OK);
  EXPECT_EQ(v, 1u);
  Msg reply("hello back", NANOCHAT__V1__ROLE__ROLE_ASSISTANT);
  const Nanochat__V1__ChatMessage *p = &reply.m;
  nc_session_append a = {};
  a.messages = &p;
  a.n_messages = 1;
  a.expect_version = 1;
  a.add_tokens = 7;
  a.set_model = true;
  a.phase = NANOCHAT__V1__PHASE__PHASE_SFT;
  a.model_tag = "d4";
  a.model_step = 123;
  ASSERT_EQ(nc_store_session_append(s, kSid, &a, &v), NC_OK) << nc_store_last_error();
  EXPECT_EQ(v, 2u);
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  ASSERT_EQ(ss->n_messages, 3u);
  EXPECT_STREQ(ss->id, kSid);
  EXPECT_STREQ(ss->messages[0]->content, "hi");
  EXPECT_STREQ(ss->messages[1]->content, "there");
  EXPECT_STREQ(ss->messages[2]->content, "hello back");
  EXPECT_EQ(ss->messages[2]->role, NANOCHAT__V1__ROLE__ROLE_ASSISTANT);
  EXPECT_EQ(ss->version, 2u);
  EXPECT_EQ(ss->tokens_generated, 7u);
  EXPECT_EQ(ss->phase, NANOCHAT__V1__PHASE__PHASE_SFT);
  EXPECT_STREQ(ss->model_tag, "d4");
  EXPECT_EQ(ss->model_step, 123);
  EXPECT_GT(ss->created_ms, 0);
  EXPECT_GE(ss->updated_ms, ss->created_ms);
  nc_store_free_msg(ss);
}

TEST_F(StoreTest, SessionVersionChecks) {
  EXPECT_EQ(append(kSid, {"a"}, 5, false), NC_ENOTFOUND);
  EXPECT_EQ(append(kSid, {"a"}, NC_STORE_ANY_VERSION, false), NC_ENOTFOUND);
  ASSERT_EQ(append(kSid, {"a"}, 0, false), NC_OK);  // 0 = create new
  EXPECT_EQ(append(kSid, {"b"}, 0, false), NC_EEXIST);
  EXPECT_EQ(append(kSid, {"b"}, 7, false), NC_ECONFLICT);
  EXPECT_NE(std::string(nc_store_last_error()).find("version"), std::string::npos);
  EXPECT_EQ(append(kSid, {"b"}, 1, false), NC_OK);
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  EXPECT_EQ(ss->n_messages, 2u);  // failed appends added nothing
  EXPECT_EQ(ss->version, 2u);
  nc_store_free_msg(ss);
}

TEST_F(StoreTest, SessionUnknownAndBadIds) {
  Nanochat__V1__Session *ss = nullptr;
  EXPECT_EQ(nc_store_session_get(s, kSid, &ss), NC_ENOTFOUND);
  EXPECT_EQ(nc_store_session_get(s, "../../etc/passwd", &ss), NC_EINVAL);
  EXPECT_EQ(nc_store_session_get(s, "abc", &ss), NC_EINVAL);
  std::string big(10240, 'a');
  EXPECT_EQ(nc_store_session_get(s, big.c_str(), &ss), NC_EINVAL);
  EXPECT_EQ(append("aaaaaaaa/bbbbbbbbbb", {"x"}), NC_EINVAL);
  EXPECT_EQ(nc_store_session_delete(s, kSid), NC_ENOTFOUND);
}

TEST(StoreIds, SessionIdValidator) {
  struct {
    std::string id;
    bool ok;
  } cases[] = {
      {"0123456789abcdef", true},
      {std::string(64, 'Z'), true},
      {"abc-DEF_ghi.jkl0123", true},
      {"0123456789abcde", false},         // 15 chars
      {std::string(65, 'a'), false},      // 65 chars
      {std::string(10240, 'a'), false},   // 10 KB
      {"../../../../etc/passwd", false},
      {"aaaaaaaa/bbbbbbbbbbb", false},
      {std::string("aaaaaaaa\0bbbbbbbbbb", 19), false},
      {"aaaaaaaa bbbbbbbbbbb", false},
      {"aaaaaaaa\xc3\xa9" "bbbbbbbbbb", false},
      {"", false},
  };
  for (auto &c : cases)
    EXPECT_EQ(nc_store_session_id_valid(c.id.data(), c.id.size()), c.ok) << c.id.size();
  EXPECT_FALSE(nc_store_session_id_valid(nullptr, 0));
}

TEST(StoreIds, GeneratedIdsAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; i++) {
    char id[NC_SESSION_ID_NEW_LEN + 1];
    ASSERT_EQ(nc_store_new_session_id(id), NC_OK);
    EXPECT_EQ(strlen(id), 32u);
    EXPECT_TRUE(nc_store_session_id_valid(id, strlen(id)));
    EXPECT_TRUE(seen.insert(id).second);
    char jid[NC_JOB_ID_LEN + 1];
    ASSERT_EQ(nc_store_random_hex(jid, NC_JOB_ID_LEN), NC_OK);
    EXPECT_TRUE(nc_store_job_id_valid(jid, strlen(jid)));
  }
}

TEST(StoreIds, JobIdAndTagValidators) {
  EXPECT_TRUE(nc_store_job_id_valid("0123456789abcdef", 16));
  EXPECT_FALSE(nc_store_job_id_valid("0123456789ABCDEF", 16));
  EXPECT_FALSE(nc_store_job_id_valid("0123456789abcde", 15));
  EXPECT_FALSE(nc_store_job_id_valid("0123456789abcdefa", 17));
  EXPECT_FALSE(nc_store_job_id_valid("../3456789abcdef", 16));
  EXPECT_TRUE(nc_store_tag_valid("d4", 2));
  EXPECT_TRUE(nc_store_tag_valid("my-run_1.2", 10));
  EXPECT_FALSE(nc_store_tag_valid("..", 2));
  EXPECT_FALSE(nc_store_tag_valid(".", 1));
  EXPECT_FALSE(nc_store_tag_valid("a/b", 3));
  EXPECT_FALSE(nc_store_tag_valid("", 0));
  std::string t65(65, 'a');
  EXPECT_FALSE(nc_store_tag_valid(t65.c_str(), 65));
}

TEST(StoreCaps, MessageCountCapIsAllOrNothing) {
  TempDir tmp;
  nc_store *s = open_store(tmp.sub("store"), 0, 5, 0);
  ASSERT_NE(s, nullptr);
  Msg m1("1"), m2("2"), m3("3");
  const Nanochat__V1__ChatMessage *three[] = {&m1.m, &m2.m, &m3.m};
  nc_session_append a = {};
  a.messages = three;
  a.n_messages = 3;
  a.expect_version = NC_STORE_ANY_VERSION;
  a.create_if_missing = true;
  ASSERT_EQ(nc_store_session_append(s, kSid, &a, nullptr), NC_OK);
  EXPECT_EQ(nc_store_session_append(s, kSid, &a, nullptr), NC_EFULL);  // 6 > 5
  EXPECT_NE(std::string(nc_store_last_error()).find("session full"), std::string::npos);
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  EXPECT_EQ(ss->n_messages, 3u);
  EXPECT_EQ(ss->version, 1u);
  nc_store_free_msg(ss);
  a.n_messages = 2;
  EXPECT_EQ(nc_store_session_append(s, kSid, &a, nullptr), NC_OK);  // exactly 5
  nc_store_close(s);
}

TEST(StoreCaps, ByteCapIsAllOrNothing) {
  TempDir tmp;
  nc_store *s = open_store(tmp.sub("store"), 0, 0, 4000);
  ASSERT_NE(s, nullptr);
  Msg small(std::string(1000, 'x'));
  const Nanochat__V1__ChatMessage *p = &small.m;
  nc_session_append a = {};
  a.messages = &p;
  a.n_messages = 1;
  a.expect_version = NC_STORE_ANY_VERSION;
  a.create_if_missing = true;
  int ok = 0, rc;
  while ((rc = nc_store_session_append(s, kSid, &a, nullptr)) == NC_OK && ok < 100) ok++;
  EXPECT_EQ(rc, NC_EFULL);
  EXPECT_EQ(ok, 3);  // 3 x ~1 KB fit in 4000 bytes, the 4th does not
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  EXPECT_EQ(ss->n_messages, 3u);
  nc_store_free_msg(ss);
  nc_store_close(s);
}

// faults row 18: 2 threads x 1,000 appends to one session: all 2,000 present, each thread's
// messages in its own order, no lost update.
TEST_F(StoreTest, ConcurrentAppendsNeverLoseAnUpdate) {
  ASSERT_EQ(append(kSid, {}, 0, false), NC_OK);
  const int kPer = 1000;
  auto worker = [&](int t) {
    for (int i = 0; i < kPer; i++) {
      std::string text = "t" + std::to_string(t) + ":" + std::to_string(i);
      ASSERT_EQ(append(kSid, {text}), NC_OK) << nc_store_last_error();
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  ASSERT_EQ(ss->n_messages, (size_t)(2 * kPer));
  EXPECT_EQ(ss->version, (uint64_t)(2 * kPer + 1));
  int next[2] = {0, 0};
  for (size_t i = 0; i < ss->n_messages; i++) {
    std::string c = ss->messages[i]->content;
    int t = c[1] - '0';
    ASSERT_TRUE(t == 0 || t == 1);
    EXPECT_EQ(c, "t" + std::to_string(t) + ":" + std::to_string(next[t]));
    next[t]++;
  }
  EXPECT_EQ(next[0], kPer);
  EXPECT_EQ(next[1], kPer);
  nc_store_free_msg(ss);
}

// With optimistic versions, racing writers see ABORTED-style conflicts, never a lost update.
TEST_F(StoreTest, OptimisticConflictsAreReported) {
  uint64_t v = 0;
  ASSERT_EQ(append(kSid, {"x"}, 0, false, &v), NC_OK);
  EXPECT_EQ(append(kSid, {"from A"}, v, false), NC_OK);
  EXPECT_EQ(append(kSid, {"from B (stale)"}, v, false), NC_ECONFLICT);
  Nanochat__V1__Session *ss = nullptr;
  ASSERT_EQ(nc_store_session_get(s, kSid, &ss), NC_OK);
  ASSERT_EQ(ss->n_messages, 2u);
  EXPECT_STREQ(ss->messages[1]->content, "from A");
  nc_store_free_msg(ss);
}

TEST_F(StoreTest, SessionListPaginatesNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; i++) {
    char id[64];
    snprintf(id, sizeof id, "session-%012d", i);
    ids.push_back(id);
    ASSERT_EQ(append(id, {"m"}), NC_OK);
    usleep(1500);  // distinct updated_ms
  }
  std::vector<std::string> got;
  std::string token;
  int pages = 0;
  do {
    nc_session_page p;
    ASSERT_EQ(nc_store_session_list(s, 10, token.c_str(), &p), NC_OK) << nc_store_last_error();
    for (size_t i = 0; i < p.n; i++) {
      got.push_back(p.items[i]->id);
      EXPECT_EQ(p.items[i]->message_count, 1u);
    }
    token = p.next_token;
    nc_session_page_free(&p);
    pages++;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(got.size(), 25u);
  for (int i = 0; i < 25; i++) EXPECT_EQ(got[i], ids[24 - i]);
}

TEST_F(StoreTest, SessionListLastPageHasNoToken) {
  ASSERT_EQ(append(kSid, {"m"}), NC_OK);
  nc_session_page p;
  ASSERT_EQ(nc_store_session_list(s, 1, nullptr, &p), NC_OK);
  EXPECT_EQ(p.n, 1u);
  EXPECT_STREQ(p.next_token, "");
  nc_session_page_free(&p);
  ASSERT_EQ(nc_store_session_list(s, 5, "", &p), NC_OK);
  EXPECT_EQ(p.n, 1u);
  nc_session_page_free(&p);
}

TEST_F(StoreTest, SessionListMovesUpdatedSessionToFront) {
  ASSERT_EQ(append(kSid, {"m"}), NC_OK);
  usleep(2000);
  ASSERT_EQ(append(kSid2, {"m"}), NC_OK);
  usleep(2000);
  ASSERT_EQ(append(kSid, {"again"}), NC_OK);
  nc_session_page p;
  ASSERT_EQ(nc_store_session_list(s, 10, nullptr, &p), NC_OK);
  ASSERT_EQ(p.n, 2u);  // the old listing entry was replaced, not duplicated
  EXPECT_STREQ(p.items[0]->id, kSid);
  EXPECT_EQ(p.items[0]->message_count, 2u);
  EXPECT_STREQ(p.items[1]->id, kSid2);
  nc_session_page_free(&p);
}

TEST_F(StoreTest, SessionListRejectsBadInput) {
  nc_session_page p;
  EXPECT_EQ(nc_store_session_list(s, 0, nullptr, &p), NC_EINVAL);
  EXPECT_EQ(nc_store_session_list(s, 1001, nullptr, &p), NC_EINVAL);
  EXPECT_EQ(nc_store_session_list(s, 10, "zz", &p), NC_EINVAL);
  EXPECT_NE(std::string(nc_store_last_error()).find("page_token"), std::string::npos);
  EXPECT_EQ(nc_store_session_list(s, 10, "0011", &p), NC_EINVAL);
  std::string odd(81, 'a');
  EXPECT_EQ(nc_store_session_list(s, 10, odd.c_str(), &p), NC_EINVAL);
  // right length, but the id part is not a valid session id ("/" = 0x2f)
  std::string tok = "0000000000000001" + std::string(32, '2') + "2f";
  tok.resize(2 * (8 + 17), 'f');
  EXPECT_EQ(nc_store_session_list(s, 10, tok.c_str(), &p), NC_EINVAL);
}

TEST_F(StoreTest, SessionDeleteRemovesListingEntry) {
  ASSERT_EQ(append(kSid, {"m"}), NC_OK);
  ASSERT_EQ(nc_store_session_delete(s, kSid), NC_OK);
  Nanochat__V1__Session *ss = nullptr;
  EXPECT_EQ(nc_store_session_get(s, kSid, &ss), NC_ENOTFOUND);
  nc_session_page p;
  ASSERT_EQ(nc_store_session_list(s, 10, nullptr, &p), NC_OK);
  EXPECT_EQ(p.n, 0u);
  nc_session_page_free(&p);
}

Nanochat__V1__CheckpointInfo ckpt(Nanochat__V1__Phase ph, const char *tag, int64_t step) {
  Nanochat__V1__CheckpointInfo c = NANOCHAT__V1__CHECKPOINT_INFO__INIT;
  c.has_phase = 1;
  c.phase = ph;
  c.tag = (char *)tag;
  c.has_step = 1;
  c.step = step;
  c.path = (char *)"checkpoints/base/d4/model_000100.safetensors";
  c.has_size = 1;
  c.size = 12345;
  c.sha256 = (char *)"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  return c;
}

TEST_F(StoreTest, CheckpointPutGetDelete) {
  auto c = ckpt(NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 100);
  ASSERT_EQ(nc_store_ckpt_put(s, &c, false), NC_OK) << nc_store_last_error();
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EEXIST);
  c.size = 999;
  EXPECT_EQ(nc_store_ckpt_put(s, &c, true), NC_OK);
  Nanochat__V1__CheckpointInfo *got = nullptr;
  ASSERT_EQ(nc_store_ckpt_get(s, NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 100, &got), NC_OK);
  EXPECT_EQ(got->size, 999u);
  EXPECT_STREQ(got->path, c.path);
  EXPECT_STREQ(got->sha256, c.sha256);
  nc_store_free_msg(got);
  EXPECT_EQ(nc_store_ckpt_get(s, NANOCHAT__V1__PHASE__PHASE_SFT, "d4", 100, &got), NC_ENOTFOUND);
  ASSERT_EQ(nc_store_ckpt_delete(s, NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 100), NC_OK);
  EXPECT_EQ(nc_store_ckpt_delete(s, NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 100), NC_ENOTFOUND);
}

TEST_F(StoreTest, CheckpointValidation) {
  auto c = ckpt(NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 1);
  c.path = (char *)"/etc/passwd";
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EINVAL);
  c.path = (char *)"checkpoints/../../etc/passwd";
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EINVAL);
  EXPECT_NE(std::string(nc_store_last_error()).find("checkpoint.path"), std::string::npos);
  c.path = (char *)"checkpoints/base/d4/x";
  c.sha256 = (char *)"XYZ";
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EINVAL);
  c.sha256 = nullptr;
  c.tag = (char *)"../x";
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EINVAL);
  c.tag = (char *)"d4";
  c.phase = (Nanochat__V1__Phase)9;
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EINVAL);
  c.phase = NANOCHAT__V1__PHASE__PHASE_RL;
  c.has_step = 0;
  EXPECT_EQ(nc_store_ckpt_put(s, &c, false), NC_EINVAL);
}

TEST_F(StoreTest, CheckpointListFiltersAndSorts) {
  struct {
    Nanochat__V1__Phase ph;
    const char *tag;
    int64_t step;
  } rows[] = {{NANOCHAT__V1__PHASE__PHASE_SFT, "d4", 20}, {NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 1000},
              {NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 200}, {NANOCHAT__V1__PHASE__PHASE_BASE, "d40", 5},
              {NANOCHAT__V1__PHASE__PHASE_BASE, "a", 7},    {NANOCHAT__V1__PHASE__PHASE_RL, "d4", 3}};
  for (auto &r : rows) {
    auto c = ckpt(r.ph, r.tag, r.step);
    ASSERT_EQ(nc_store_ckpt_put(s, &c, false), NC_OK);
  }
  Nanochat__V1__CheckpointInfo **items = nullptr;
  size_t n = 0;
  ASSERT_EQ(nc_store_ckpt_list(s, NANOCHAT__V1__PHASE__PHASE_UNSPECIFIED, nullptr, 0, &items, &n), NC_OK);
  ASSERT_EQ(n, 6u);
  const char *want_tags[] = {"a", "d4", "d4", "d40", "d4", "d4"};
  int64_t want_steps[] = {7, 200, 1000, 5, 20, 3};
  for (size_t i = 0; i < n; i++) {
    EXPECT_STREQ(items[i]->tag, want_tags[i]) << i;
    EXPECT_EQ(items[i]->step, want_steps[i]) << i;
  }
  nc_store_free_msgs(items, n);
  ASSERT_EQ(nc_store_ckpt_list(s, NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 0, &items, &n), NC_OK);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(items[0]->step, 200);
  EXPECT_EQ(items[1]->step, 1000);
  nc_store_free_msgs(items, n);
  ASSERT_EQ(nc_store_ckpt_list(s, NANOCHAT__V1__PHASE__PHASE_UNSPECIFIED, "d4", 0, &items, &n), NC_OK);
  EXPECT_EQ(n, 4u);  // base 200, 1000, sft 20, rl 3 (not d40)
  nc_store_free_msgs(items, n);
  ASSERT_EQ(nc_store_ckpt_list(s, NANOCHAT__V1__PHASE__PHASE_RL, nullptr, 0, &items, &n), NC_OK);
  EXPECT_EQ(n, 1u);
  nc_store_free_msgs(items, n);
  EXPECT_EQ(nc_store_ckpt_list(s, NANOCHAT__V1__PHASE__PHASE_BASE, "../x", 0, &items, &n), NC_EINVAL);
}

Nanochat__V1__JobInfo job(const std::string &id, int64_t created) {
  Nanochat__V1__JobInfo j = NANOCHAT__V1__JOB_INFO__INIT;
  j.job_id = (char *)id.c_str();
  j.has_kind = 1;
  j.kind = NANOCHAT__V1__JOB_KIND__JOB_TEST;
  j.has_state = 1;
  j.state = NANOCHAT__V1__JOB_STATE__JOB_QUEUED;
  j.has_created_ms = 1;
  j.created_ms = created;
  return j;
}

TEST_F(StoreTest, JobCreateAndEventsGetSequenceNumbers) {
  std::string id = job_id_str(1);
  auto j = job(id, 1000);
  Ev q(NANOCHAT__V1__EVENT_KIND__EVENT_STATE);
  Nanochat__V1__JobEvent *evs[] = {&q.e};
  ASSERT_EQ(nc_store_job_write(s, &j, NC_JOB_CREATE | NC_JOB_QUEUE_PUSH, evs, 1), NC_OK)
      << nc_store_last_error();
  EXPECT_EQ(q.e.seq, 1u);
  EXPECT_EQ(j.last_seq, 1u);
  EXPECT_GT(q.e.time_ms, 0);
  EXPECT_EQ(q.e.job_id, nullptr);  // the caller's pointer is untouched
  EXPECT_EQ(nc_store_job_write(s, &j, NC_JOB_CREATE, nullptr, 0), NC_EEXIST);

  std::vector<std::unique_ptr<Ev>> more;
  std::vector<Nanochat__V1__JobEvent *> ptrs;
  for (int i = 0; i < 10; i++) {
    more.emplace_back(new Ev(NANOCHAT__V1__EVENT_KIND__EVENT_PROGRESS, "", i));
    ptrs.push_back(&more.back()->e);
  }
  ASSERT_EQ(nc_store_event_append(s, id.c_str(), ptrs.data(), ptrs.size()), NC_OK);
  EXPECT_EQ(more[9]->e.seq, 11u);
  Nanochat__V1__JobInfo *got = nullptr;
  ASSERT_EQ(nc_store_job_get(s, id.c_str(), &got), NC_OK);
  EXPECT_EQ(got->last_seq, 11u);
  EXPECT_EQ(got->state, NANOCHAT__V1__JOB_STATE__JOB_QUEUED);
  nc_store_free_msg(got);

  Nanochat__V1__JobEvent **items = nullptr;
  size_t n = 0;
  ASSERT_EQ(nc_store_event_list(s, id.c_str(), 0, 100, &items, &n), NC_OK);
  ASSERT_EQ(n, 11u);
  for (size_t i = 0; i < n; i++) {
    EXPECT_EQ(items[i]->seq, i + 1);
    EXPECT_STREQ(items[i]->job_id, id.c_str());
  }
  EXPECT_EQ(items[0]->kind, NANOCHAT__V1__EVENT_KIND__EVENT_STATE);
  EXPECT_EQ(items[5]->progress->step, 4);
  nc_store_free_msgs(items, n);
  // replay from the middle, capped count
  ASSERT_EQ(nc_store_event_list(s, id.c_str(), 5, 3, &items, &n), NC_OK);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(items[0]->seq, 5u);
  EXPECT_EQ(items[2]->seq, 7u);
  nc_store_free_msgs(items, n);
  // past the end: empty, not an error
  ASSERT_EQ(nc_store_event_list(s, id.c_str(), 12, 3, &items, &n), NC_OK);
  EXPECT_EQ(n, 0u);
}

TEST_F(StoreTest, EventRangeRespectsByteBudgetAndJobBoundary) {
  std::string a = job_id_str(10), b = job_id_str(11);
  auto ja = job(a, 1), jb = job(b, 2);
  ASSERT_EQ(nc_store_job_write(s, &ja, NC_JOB_CREATE, nullptr, 0), NC_OK);
  ASSERT_EQ(nc_store_job_write(s, &jb, NC_JOB_CREATE, nullptr, 0), NC_OK);
  std::string text(100, 'x');
  for (int i = 0; i < 5; i++) {
    Ev e1(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, text), e2(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, "b");
    Nanochat__V1__JobEvent *p1 = &e1.e, *p2 = &e2.e;
    ASSERT_EQ(nc_store_event_append(s, a.c_str(), &p1, 1), NC_OK);
    ASSERT_EQ(nc_store_event_append(s, b.c_str(), &p2, 1), NC_OK);
  }
  nc_blob_list bl;
  ASSERT_EQ(nc_store_event_range(s, a.c_str(), 1, 100, 300, &bl), NC_OK);
  EXPECT_EQ(bl.n, 2u);  // ~135 bytes each
  nc_blob_list_free(&bl);
  ASSERT_EQ(nc_store_event_range(s, a.c_str(), 1, 100, 1, &bl), NC_OK);
  EXPECT_EQ(bl.n, 1u);  // at least one
  nc_blob_list_free(&bl);
  ASSERT_EQ(nc_store_event_range(s, a.c_str(), 1, 100, SIZE_MAX, &bl), NC_OK);
  ASSERT_EQ(bl.n, 5u);  // only job a's events
  for (size_t i = 0; i < bl.n; i++) {
    EXPECT_EQ(bl.v[i].seq, i + 1);
    Nanochat__V1__JobEvent *e = nanochat__v1__job_event__unpack(nullptr, bl.v[i].len, bl.v[i].data);
    ASSERT_NE(e, nullptr);
    EXPECT_STREQ(e->message, text.c_str());
    nc_store_free_msg(e);
  }
  nc_blob_list_free(&bl);
  EXPECT_EQ(nc_store_event_range(s, "nope", 1, 1, 1, &bl), NC_EINVAL);
}

TEST_F(StoreTest, EventAppendRejectsBadInput) {
  std::string id = job_id_str(3);
  Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_LOG, "x");
  Nanochat__V1__JobEvent *p = &e.e;
  EXPECT_EQ(nc_store_event_append(s, id.c_str(), &p, 1), NC_ENOTFOUND);
  auto j = job(id, 1);
  ASSERT_EQ(nc_store_job_write(s, &j, NC_JOB_CREATE, nullptr, 0), NC_OK);
  Ev snap(NANOCHAT__V1__EVENT_KIND__EVENT_SNAPSHOT);
  p = &snap.e;
  EXPECT_EQ(nc_store_event_append(s, id.c_str(), &p, 1), NC_EINVAL);
  Ev none(NANOCHAT__V1__EVENT_KIND__EVENT_UNSPECIFIED);
  p = &none.e;
  EXPECT_EQ(nc_store_event_append(s, id.c_str(), &p, 1), NC_EINVAL);
  std::string bad_id = "XYZ";
  auto bad = job(bad_id, 1);
  EXPECT_EQ(nc_store_job_write(s, &bad, NC_JOB_CREATE, nullptr, 0), NC_EINVAL);
}

TEST_F(StoreTest, CheckpointEventsStoreMetadataInTheSameCommit) {
  std::string id = job_id_str(4);
  auto j = job(id, 1);
  ASSERT_EQ(nc_store_job_write(s, &j, NC_JOB_CREATE, nullptr, 0), NC_OK);
  auto c = ckpt(NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 50);
  Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_CHECKPOINT);
  e.e.checkpoint = &c;
  Nanochat__V1__JobEvent *p = &e.e;
  ASSERT_EQ(nc_store_event_append(s, id.c_str(), &p, 1), NC_OK);
  EXPECT_EQ(c.job_id, nullptr);
  Nanochat__V1__CheckpointInfo *got = nullptr;
  ASSERT_EQ(nc_store_ckpt_get(s, NANOCHAT__V1__PHASE__PHASE_BASE, "d4", 50, &got), NC_OK);
  EXPECT_STREQ(got->job_id, id.c_str());
  nc_store_free_msg(got);
  c.path = (char *)"../evil";
  EXPECT_EQ(nc_store_event_append(s, id.c_str(), &p, 1), NC_EINVAL);
}

TEST_F(StoreTest, QueueIsFifoAndRemovable) {
  for (int i = 0; i < 4; i++) {
    std::string id = job_id_str(100 - i);  // ids in descending order: FIFO must not sort by id
    auto j = job(id, i);
    ASSERT_EQ(nc_store_job_write(s, &j, NC_JOB_CREATE | NC_JOB_QUEUE_PUSH, nullptr, 0), NC_OK);
  }
  char ids[8][NC_JOB_ID_LEN + 1];
  size_t n = 0, total = 0;
  ASSERT_EQ(nc_store_job_queue(s, ids, 8, &n, &total), NC_OK);
  ASSERT_EQ(n, 4u);
  EXPECT_EQ(total, 4u);
  for (int i = 0; i < 4; i++) EXPECT_EQ(std::string(ids[i]), job_id_str(100 - i));
  std::string mid = job_id_str(99);
  Nanochat__V1__JobInfo *jm = nullptr;
  ASSERT_EQ(nc_store_job_get(s, mid.c_str(), &jm), NC_OK);
  jm->state = NANOCHAT__V1__JOB_STATE__JOB_RUNNING;
  ASSERT_EQ(nc_store_job_write(s, jm, NC_JOB_QUEUE_REMOVE, nullptr, 0), NC_OK);
  nc_store_free_msg(jm);
  ASSERT_EQ(nc_store_job_queue(s, ids, 2, &n, &total), NC_OK);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(std::string(ids[0]), job_id_str(100));
  EXPECT_EQ(std::string(ids[1]), job_id_str(98));
}

TEST_F(StoreTest, JobListNewestFirstAndDelete) {
  for (int i = 0; i < 5; i++) {
    std::string id = job_id_str(i);
    auto j = job(id, 1000 + i);
    Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_STATE);
    Nanochat__V1__JobEvent *p = &e.e;
    ASSERT_EQ(nc_store_job_write(s, &j, NC_JOB_CREATE | NC_JOB_QUEUE_PUSH, &p, 1), NC_OK);
  }
  Nanochat__V1__JobInfo **items = nullptr;
  size_t n = 0;
  ASSERT_EQ(nc_store_job_list(s, 3, &items, &n), NC_OK);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(items[0]->created_ms, 1004);
  EXPECT_EQ(items[2]->created_ms, 1002);
  nc_store_free_msgs(items, n);
  EXPECT_EQ(nc_store_job_list(s, 0, &items, &n), NC_EINVAL);
  ASSERT_EQ(nc_store_job_delete(s, job_id_str(2).c_str()), NC_OK);
  EXPECT_EQ(nc_store_job_delete(s, job_id_str(2).c_str()), NC_ENOTFOUND);
  Nanochat__V1__JobEvent **evs = nullptr;
  ASSERT_EQ(nc_store_event_list(s, job_id_str(2).c_str(), 1, 10, &evs, &n), NC_OK);
  EXPECT_EQ(n, 0u);
  ASSERT_EQ(nc_store_event_list(s, job_id_str(3).c_str(), 1, 10, &evs, &n), NC_OK);
  EXPECT_EQ(n, 1u);  // neighbours untouched
  nc_store_free_msgs(evs, n);
  size_t total = 0;
  ASSERT_EQ(nc_store_job_queue(s, nullptr, 0, &n, &total), NC_OK);
  EXPECT_EQ(total, 4u);
}

TEST_F(StoreTest, EvalResultsNewestFirst) {
  for (int i = 0; i < 5; i++) {
    Ev e(NANOCHAT__V1__EVENT_KIND__EVENT_EVAL, "core");
    Nanochat__V1__JobEvent__MetricsEntry me = NANOCHAT__V1__JOB_EVENT__METRICS_ENTRY__INIT;
    Nanochat__V1__JobEvent__MetricsEntry *mp = &me;
    me.key = (char *)"core_metric";
    me.has_value = 1;
    me.value = 0.1 * i;
    e.e.n_metrics = 1;
    e.e.metrics = &mp;
    ASSERT_EQ(nc_store_eval_put(s, &e.e), NC_OK);
    EXPECT_EQ(e.e.seq, (uint64_t)i + 1);
  }
  Nanochat__V1__JobEvent **items = nullptr;
  size_t n = 0;
  ASSERT_EQ(nc_store_eval_list(s, 0, 2, &items, &n), NC_OK);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(items[0]->seq, 5u);
  EXPECT_DOUBLE_EQ(items[0]->metrics[0]->value, 0.4);
  EXPECT_STREQ(items[0]->message, "core");
  nc_store_free_msgs(items, n);
  ASSERT_EQ(nc_store_eval_list(s, 4, 10, &items, &n), NC_OK);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(items[0]->seq, 3u);
  nc_store_free_msgs(items, n);
  Ev bad(NANOCHAT__V1__EVENT_KIND__EVENT_LOG);
  EXPECT_EQ(nc_store_eval_put(s, &bad.e), NC_EINVAL);
}

TEST_F(StoreTest, StatsCountEntries) {
  ASSERT_EQ(append(kSid, {"a"}), NC_OK);
  ASSERT_EQ(append(kSid2, {"a"}), NC_OK);
  nc_store_stats st;
  ASSERT_EQ(nc_store_get_stats(s, &st), NC_OK);
  EXPECT_EQ(st.sessions, 2u);
  EXPECT_GT(st.used_bytes, 0u);
  EXPECT_EQ(st.page_size, 4096u);
}

TEST(StoreOpen, RejectsBadOptions) {
  TempDir tmp;
  nc_store *s = nullptr;
  nc_store_opts o = {};
  EXPECT_EQ(nc_store_open(&o, &s), NC_EINVAL);
  std::string d = tmp.sub("store");
  o.dir = d.c_str();
  o.map_size = 4096;
  EXPECT_EQ(nc_store_open(&o, &s), NC_EINVAL);
  EXPECT_NE(std::string(nc_store_last_error()).find("map size"), std::string::npos);
  std::string nested = tmp.sub("no/such/parent");
  o.dir = nested.c_str();
  o.map_size = 0;
  EXPECT_EQ(nc_store_open(&o, &s), NC_ENOTFOUND);
}

TEST(StoreOpen, ReadOnlyOpenRefusesWrites) {
  TempDir tmp;
  std::string d = tmp.sub("store");
  nc_store *w = open_store(d);
  ASSERT_NE(w, nullptr);
  nc_store_close(w);
  nc_store_opts o = {};
  o.dir = d.c_str();
  o.read_only = true;
  nc_store *s = nullptr;
  ASSERT_EQ(nc_store_open(&o, &s), NC_OK) << nc_store_last_error();
  Msg m("x");
  const Nanochat__V1__ChatMessage *p = &m.m;
  nc_session_append a = {};
  a.messages = &p;
  a.n_messages = 1;
  a.expect_version = NC_STORE_ANY_VERSION;
  a.create_if_missing = true;
  EXPECT_EQ(nc_store_session_append(s, kSid, &a, nullptr), NC_EPERM);
  nc_store_close(s);
  std::string missing = tmp.sub("missing");
  o.dir = missing.c_str();
  EXPECT_EQ(nc_store_open(&o, &s), NC_ENOTFOUND);
}

}  // namespace
