// The served-model holder (service/nc_serving.h) and chat request handling (nc_chatreq.h)
// without gRPC: startup specs, the default tag/step rules, load errors mapped to precise codes
// with the old bundle untouched, the atomic swap with references (an old bundle stays usable
// until its last reference goes), chat_web's limits naming the field, conversation assembly and
// the reply as content parts.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "nc_chatreq.h"
#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_serving.h"
#include "nc_tokref.h"
}

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/nc-serving-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  return tmpl;
}

void rm_rf(const std::string &p) {
  std::string cmd = "rm -rf '" + p + "'";
  EXPECT_EQ(system(cmd.c_str()), 0);
}

// A byte-level tokenizer (256 ranks) with nanochat's nine specials: vocab 265 (or `extra` more).
std::string write_tokenizer(const std::string &dir, int extra = 0) {
  std::vector<uint8_t> bytes(256 + extra * 2);
  std::vector<const uint8_t *> toks;
  std::vector<uint32_t> lens;
  for (int i = 0; i < 256; i++) {
    bytes[i] = (uint8_t)i;
    toks.push_back(&bytes[i]);
    lens.push_back(1);
  }
  for (int i = 0; i < extra; i++) {  // merges "a?" so the vocab grows
    bytes[256 + 2 * i] = 'a';
    bytes[256 + 2 * i + 1] = (uint8_t)('a' + i);
    toks.push_back(&bytes[256 + 2 * i]);
    lens.push_back(2);
  }
  int n = 256 + extra;
  nc_tok_special sp[NC_TOK_N_SPECIALS_NANOCHAT];
  for (int i = 0; i < NC_TOK_N_SPECIALS_NANOCHAT; i++)
    sp[i] = {NC_TOK_SPECIALS_NANOCHAT[i], strlen(NC_TOK_SPECIALS_NANOCHAT[i]), n + i};
  nc_tokenizer *t = nullptr;
  char msg[256];
  EXPECT_EQ(nc_tok_create(nullptr, NC_TOK_DIALECT_RUST, toks.data(), lens.data(), n, sp,
                          NC_TOK_N_SPECIALS_NANOCHAT, &t, msg, sizeof msg),
            NC_OK)
      << msg;
  std::string path = dir + "/tokenizer.txt";
  EXPECT_EQ(nc_tok_save(t, path.c_str(), msg, sizeof msg), NC_OK) << msg;
  nc_tok_free(t);
  return path;
}

nc_model_config tiny_config(int vocab, int seq = 32) {
  nc_model_config c = nc_model_config_default();
  c.sequence_len = seq;
  c.vocab_size = vocab;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.n_embd = 32;
  snprintf(c.window_pattern, sizeof c.window_pattern, "L");
  return c;
}

// Saves a random model as <data>/checkpoints/<phase_dir>/<tag>/ step `step`.
void save_model(const std::string &data, const char *phase, const char *tag, int64_t step, int vocab,
                uint64_t seed = 1) {
  std::string root = data + "/checkpoints";
  mkdir(root.c_str(), 0700);
  nc_model_config cfg = tiny_config(vocab);
  nc_model *m = nullptr;
  char msg[256];
  ASSERT_EQ(nc_model_create(&cfg, &m, msg, sizeof msg), NC_OK) << msg;
  nc_model_init_weights(m, seed);
  nc_ckpt_dir *d = nullptr;
  nc_st_error e;
  ASSERT_EQ(nc_ckpt_dir_open(root.c_str(), phase, tag, 1, &d, &e), NC_OK) << e.msg;
  ASSERT_EQ(nc_ckpt_save(d, step, m, nullptr, nullptr, nullptr, nullptr, &e), NC_OK) << e.msg;
  nc_ckpt_dir_close(d);
  nc_model_free(m);
}

std::string model_path(const std::string &data, const char *pdir, const char *tag, int64_t step) {
  char name[64];
  snprintf(name, sizeof name, "/model_%06lld.safetensors", (long long)step);
  return data + "/checkpoints/" + pdir + "/" + tag + name;
}

struct Fixture {
  std::string data;
  nc_tokholder *h = nullptr;
  nc_serving *s = nullptr;
  char msg[512] = "";
  explicit Fixture(int extra_tokens = 0) {
    data = temp_dir();
    std::string tok = write_tokenizer(data, extra_tokens);
    char err[256];
    EXPECT_EQ(nc_tokholder_create(tok.c_str(), 1, 1000, &h, err, sizeof err), NC_OK) << err;
    nc_serving_opts o{};
    o.data_dir = data.c_str();
    o.tokenizers = h;
    o.slots = 2;
    o.queue_limit = 4;
    o.threads = 1;
    o.weights = NC_DECODE_F32;
    EXPECT_EQ(nc_serving_create(&o, &s, msg, sizeof msg), NC_OK) << msg;
  }
  ~Fixture() {
    nc_serving_free(s);
    nc_tokholder_free(h);
    rm_rf(data);
  }
  int load(int phase, const char *tag, int64_t step) {
    nc_load_spec sp{phase, tag, step};
    msg[0] = 0;
    return nc_serving_load(s, &sp, msg, sizeof msg);
  }
};

// Greedy tokens of a bundle's engine for a fixed raw prompt.
struct Collect {
  std::vector<int32_t> ids;
  bool done = false;
};

int collect_cb(void *user, const nc_gen_event *ev) {
  Collect *c = (Collect *)user;
  if (ev->kind == NC_GEN_TOKEN) c->ids.push_back(ev->token);
  if (ev->kind == NC_GEN_DONE && ev->last) __atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
  return 0;
}

std::vector<int32_t> greedy(nc_served *b) {
  nc_gen_params p = nc_gen_params_default();
  p.mode = NC_GEN_RAW;
  p.max_tokens = 8;
  p.sampling.temperature = 0;
  int32_t prompt[3] = {nc_served_specials(b)->bos, 'h', 'i'};
  Collect c;
  char msg[256];
  EXPECT_EQ(nc_engine_submit(nc_served_engine(b), prompt, 3, &p, collect_cb, &c, nullptr, msg, sizeof msg), NC_OK) << msg;
  while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE)) usleep(1000);
  return c.ids;
}

}  // namespace

TEST(Serving, ParseSpec) {
  int phase;
  char tag[65];
  int64_t step;
  ASSERT_EQ(nc_serving_parse_spec("latest", &phase, tag, &step), NC_OK);
  EXPECT_EQ(phase, 0);
  ASSERT_EQ(nc_serving_parse_spec("sft", &phase, tag, &step), NC_OK);
  EXPECT_EQ(phase, 2);
  EXPECT_STREQ(tag, "");
  EXPECT_EQ(step, -1);
  ASSERT_EQ(nc_serving_parse_spec("base/d4/120", &phase, tag, &step), NC_OK);
  EXPECT_EQ(phase, 1);
  EXPECT_STREQ(tag, "d4");
  EXPECT_EQ(step, 120);
  for (const char *bad : {"", "SFT", "sft/d4/x", "sft/d4/-1", "rl/d4/1000000000", "train/d4", "sft/d4/1/2"})
    EXPECT_EQ(nc_serving_parse_spec(bad, &phase, tag, &step), NC_EINVAL) << bad;
  EXPECT_STREQ(nc_serving_phase_dir(3), "chatrl_checkpoints");
  EXPECT_EQ(nc_serving_phase_name(0), nullptr);
}

TEST(Serving, DefaultTagIsTheLargestDepthWithACompleteStep) {
  std::string data = temp_dir();
  save_model(data, "sft", "d2", 0, 265);
  save_model(data, "sft", "d2", 40, 265);
  save_model(data, "sft", "d12", 3, 265);
  save_model(data, "sft", "abc", 1, 265);
  save_model(data, "sft", "d99", 1, 265);
  // d99 has no complete step once its meta file is gone: skipped
  unlink((data + "/checkpoints/chatsft_checkpoints/d99/meta_000001.json").c_str());
  char tag[65], msg[256];
  int64_t step;
  ASSERT_EQ(nc_serving_resolve(data.c_str(), 2, nullptr, -1, tag, &step, msg, sizeof msg), NC_OK) << msg;
  EXPECT_STREQ(tag, "d12");
  EXPECT_EQ(step, 3);
  ASSERT_EQ(nc_serving_resolve(data.c_str(), 2, "d2", -1, tag, &step, msg, sizeof msg), NC_OK);
  EXPECT_EQ(step, 40);
  EXPECT_EQ(nc_serving_resolve(data.c_str(), 2, "d2", 7, tag, &step, msg, sizeof msg), NC_ENOTFOUND);
  EXPECT_NE(std::string(msg).find("step"), std::string::npos) << msg;
  EXPECT_EQ(nc_serving_resolve(data.c_str(), 2, "nosuch", -1, tag, &step, msg, sizeof msg), NC_ENOTFOUND);
  EXPECT_EQ(nc_serving_resolve(data.c_str(), 2, "../d2", -1, tag, &step, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_serving_resolve(data.c_str(), 1, nullptr, -1, tag, &step, msg, sizeof msg), NC_ENOTFOUND);
  EXPECT_EQ(nc_serving_resolve(data.c_str(), 7, nullptr, -1, tag, &step, msg, sizeof msg), NC_EINVAL);
  // without d<N> tags: the most recently modified
  save_model(data, "base", "older", 0, 265);
  save_model(data, "base", "newer", 0, 265);
  struct timespec ts[2] = {{1000, 0}, {1000, 0}};
  utimensat(AT_FDCWD, (data + "/checkpoints/base_checkpoints/older").c_str(), ts, 0);
  ASSERT_EQ(nc_serving_resolve(data.c_str(), 1, nullptr, -1, tag, &step, msg, sizeof msg), NC_OK);
  EXPECT_STREQ(tag, "newer");
  // a symlinked tag is refused, not followed
  ASSERT_EQ(symlink((data + "/checkpoints/chatsft_checkpoints/d2").c_str(),
                    (data + "/checkpoints/chatsft_checkpoints/d100").c_str()), 0);
  ASSERT_EQ(nc_serving_resolve(data.c_str(), 2, nullptr, -1, tag, &step, msg, sizeof msg), NC_OK);
  EXPECT_STREQ(tag, "d12");
  EXPECT_EQ(nc_serving_resolve(data.c_str(), 2, "d100", -1, tag, &step, msg, sizeof msg), NC_EPERM);
  rm_rf(data);
}

TEST(Serving, LoadSwapsAtomicallyAndOldBundlesLiveOnTheirReferences) {
  Fixture f;
  EXPECT_FALSE(nc_serving_ready(f.s));
  EXPECT_EQ(nc_serving_acquire(f.s), nullptr);
  save_model(f.data, "sft", "d2", 0, 265, 1);
  save_model(f.data, "sft", "d3", 0, 265, 2);
  ASSERT_EQ(f.load(2, "d2", 0), NC_OK) << f.msg;
  EXPECT_TRUE(nc_serving_ready(f.s));
  nc_served *a = nc_serving_acquire(f.s);
  ASSERT_NE(a, nullptr);
  std::vector<int32_t> ga = greedy(a);
  EXPECT_EQ(ga.size(), 8u);
  nc_model_info mi{};
  nc_serving_info(f.s, &mi);
  EXPECT_TRUE(mi.loaded);
  EXPECT_STREQ(mi.model_tag, "d2");
  EXPECT_EQ(mi.slots_total, 2u);
  EXPECT_EQ(mi.vocab_size, 265u);
  EXPECT_EQ(strlen(mi.sha256), 64u);
  EXPECT_STREQ(nc_served_identity(a)->path, "checkpoints/chatsft_checkpoints/d2/model_000000.safetensors");
  ASSERT_EQ(f.load(2, "d3", 0), NC_OK) << f.msg;
  nc_served *b = nc_serving_acquire(f.s);
  ASSERT_NE(b, a);
  EXPECT_STREQ(nc_served_identity(b)->tag, "d3");
  // the old bundle still generates, with its own model, while a reference is held
  EXPECT_EQ(greedy(a), ga);
  EXPECT_NE(greedy(b), ga);
  nc_served_release(a);
  nc_served_release(b);
  EXPECT_TRUE(nc_serving_unload(f.s));
  EXPECT_FALSE(nc_serving_unload(f.s));
  EXPECT_FALSE(nc_serving_ready(f.s));
  nc_model_info none{};
  nc_serving_info(f.s, &none);
  EXPECT_FALSE(none.loaded);
}

TEST(Serving, LoadErrorsAreMappedAndLeaveTheServedModel) {
  Fixture f;
  save_model(f.data, "sft", "d2", 0, 265);
  ASSERT_EQ(f.load(2, "d2", 0), NC_OK) << f.msg;
  nc_served *before = nc_serving_acquire(f.s);
  // vocab mismatch: a model whose vocab is not the tokenizer's
  save_model(f.data, "sft", "v300", 0, 300);
  EXPECT_EQ(f.load(2, "v300", 0), NC_ESTATE);
  EXPECT_NE(std::string(f.msg).find("vocab"), std::string::npos) << f.msg;
  // truncated file: DATA_LOSS naming the file
  save_model(f.data, "sft", "trunc", 0, 265);
  std::string p = model_path(f.data, "chatsft_checkpoints", "trunc", 0);
  struct stat sb;
  ASSERT_EQ(stat(p.c_str(), &sb), 0);
  ASSERT_EQ(truncate(p.c_str(), sb.st_size - 64), 0);
  EXPECT_EQ(f.load(2, "trunc", 0), NC_ECORRUPT);
  EXPECT_NE(std::string(f.msg).find("model_000000.safetensors"), std::string::npos) << f.msg;
  // NaN weights: DATA_LOSS
  save_model(f.data, "sft", "nan", 0, 265);
  p = model_path(f.data, "chatsft_checkpoints", "nan", 0);
  int fd = open(p.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  float nanv = NAN;
  ASSERT_EQ(pwrite(fd, &nanv, 4, sb.st_size - 4), 4);
  close(fd);
  EXPECT_EQ(f.load(2, "nan", 0), NC_ECORRUPT);
  // missing tag / step
  EXPECT_EQ(f.load(2, "nosuch", 0), NC_ENOTFOUND);
  EXPECT_EQ(f.load(2, "d2", 5), NC_ENOTFOUND);
  nc_served *after = nc_serving_acquire(f.s);
  EXPECT_EQ(after, before);
  nc_served_release(after);
  nc_served_release(before);
}

TEST(Serving, NoTokenizerIsAPrecondition) {
  std::string data = temp_dir();
  nc_tokholder *h = nullptr;
  char err[256];
  ASSERT_EQ(nc_tokholder_create((data + "/none.txt").c_str(), 0, 1000, &h, err, sizeof err), NC_OK);
  nc_serving_opts o{};
  o.data_dir = data.c_str();
  o.tokenizers = h;
  o.slots = 1;
  nc_serving *s = nullptr;
  char msg[256];
  ASSERT_EQ(nc_serving_create(&o, &s, msg, sizeof msg), NC_OK);
  save_model(data, "sft", "d2", 0, 265);
  nc_load_spec sp{2, "d2", 0};
  EXPECT_EQ(nc_serving_load(s, &sp, msg, sizeof msg), NC_ESTATE);
  EXPECT_NE(std::string(msg).find("tokenizer"), std::string::npos) << msg;
  o.slots = 0;
  nc_serving *bad = nullptr;
  EXPECT_EQ(nc_serving_create(&o, &bad, msg, sizeof msg), NC_EINVAL);
  nc_serving_free(s);
  nc_tokholder_free(h);
  rm_rf(data);
}

// ---- chat requests ---------------------------------------------------------------------------

namespace {

struct Req {
  std::vector<Nanochat__V1__ChatMessage> msgs;
  std::vector<Nanochat__V1__ChatMessage *> ptrs;
  std::vector<std::string> texts;
  Nanochat__V1__ChatRequest r = NANOCHAT__V1__CHAT_REQUEST__INIT;
  Req &add(int role, const std::string &content) {
    texts.push_back(content);
    Nanochat__V1__ChatMessage m = NANOCHAT__V1__CHAT_MESSAGE__INIT;
    m.has_role = role != 0;
    m.role = (Nanochat__V1__Role)role;
    msgs.push_back(m);
    return *this;
  }
  Nanochat__V1__ChatRequest *get() {
    ptrs.clear();
    for (size_t i = 0; i < msgs.size(); i++) {
      msgs[i].content = (char *)texts[i].c_str();
      ptrs.push_back(&msgs[i]);
    }
    r.n_messages = ptrs.size();
    r.messages = ptrs.data();
    return &r;
  }
};

int check(Req &q, std::string *err) {
  char e[256] = "";
  int rc = nc_chatreq_check(q.get(), e, sizeof e);
  *err = e;
  return rc;
}

}  // namespace

TEST(ChatReq, LimitsNameTheField) {
  std::string err;
  Req ok;
  ok.add(3, "be brief").add(1, "hi").add(2, "hello").add(1, "bye");
  EXPECT_EQ(check(ok, &err), NC_OK) << err;
  Req empty;
  EXPECT_EQ(check(empty, &err), NC_EINVAL);
  EXPECT_NE(err.find("messages"), std::string::npos);
  Req norole;
  norole.add(0, "x");
  EXPECT_EQ(check(norole, &err), NC_EINVAL);
  EXPECT_EQ(err, "messages[0].role: must be user, assistant or system");
  Req blank;
  blank.add(1, "hi").add(2, "");
  EXPECT_EQ(check(blank, &err), NC_EINVAL);
  EXPECT_EQ(err, "messages[1].content: must not be empty");
  Req big;
  for (int i = 0; i < 5; i++) big.add(i % 2 ? 2 : 1, std::string(6400, 'a'));
  EXPECT_EQ(check(big, &err), NC_OK);  // exactly 32000 bytes
  big.texts[4] += "b";
  EXPECT_EQ(check(big, &err), NC_EINVAL);
  EXPECT_NE(err.find("32000"), std::string::npos) << err;
  EXPECT_EQ(err.find("aaaa"), std::string::npos);  // never echoes content
  // parts: assistant only, never with content
  Req parts;
  parts.add(1, "hi").add(2, "");
  Nanochat__V1__ContentPart cp = NANOCHAT__V1__CONTENT_PART__INIT;
  cp.text = (char *)"2+2";
  Nanochat__V1__ContentPart *cpp = &cp;
  Nanochat__V1__ChatRequest *r = parts.get();
  r->messages[1]->n_parts = 1;
  r->messages[1]->parts = &cpp;
  char e[256];
  EXPECT_EQ(nc_chatreq_check(r, e, sizeof e), NC_OK) << e;
  r->messages[1]->content = (char *)"and text";
  EXPECT_EQ(nc_chatreq_check(r, e, sizeof e), NC_EINVAL);
  EXPECT_STREQ(e, "messages[1]: content and parts are exclusive");
  r->messages[0]->n_parts = 1;
  r->messages[0]->parts = &cpp;
  EXPECT_EQ(nc_chatreq_check(r, e, sizeof e), NC_EINVAL);
  EXPECT_STREQ(e, "messages[0].parts: only assistant messages have parts");
}

TEST(ChatReq, ConversationPutsTheStoredSessionFirst) {
  Req q;
  q.add(1, "new question");
  Nanochat__V1__ChatMessage s0 = NANOCHAT__V1__CHAT_MESSAGE__INIT, s1 = NANOCHAT__V1__CHAT_MESSAGE__INIT;
  s0.has_role = s1.has_role = true;
  s0.role = NANOCHAT__V1__ROLE__ROLE_USER;
  s0.content = (char *)"old";
  s1.role = NANOCHAT__V1__ROLE__ROLE_ASSISTANT;
  Nanochat__V1__ContentPart p0 = NANOCHAT__V1__CONTENT_PART__INIT, p1 = NANOCHAT__V1__CONTENT_PART__INIT;
  p0.text = (char *)"1+1";
  p0.has_type = true;
  p0.type = NANOCHAT__V1__PART_TYPE__PART_PYTHON;
  p1.text = (char *)"2";
  p1.has_type = true;
  p1.type = NANOCHAT__V1__PART_TYPE__PART_PYTHON_OUTPUT;
  Nanochat__V1__ContentPart *pp[2] = {&p0, &p1};
  s1.n_parts = 2;
  s1.parts = pp;
  Nanochat__V1__ChatMessage *sm[2] = {&s0, &s1};
  Nanochat__V1__Session sess = NANOCHAT__V1__SESSION__INIT;
  sess.n_messages = 2;
  sess.messages = sm;
  nc_chat_msg *msgs = nullptr;
  nc_chat_part *parts = nullptr;
  int n = 0;
  char err[128];
  ASSERT_EQ(nc_chatreq_conversation(&sess, q.get(), &msgs, &parts, &n, err, sizeof err), NC_OK);
  ASSERT_EQ(n, 3);
  EXPECT_EQ(msgs[0].role, NC_ROLE_USER);
  EXPECT_EQ(std::string(msgs[0].content, msgs[0].len), "old");
  EXPECT_EQ(msgs[1].n_parts, 2);
  EXPECT_EQ(msgs[1].parts[0].type, NC_PART_PYTHON);
  EXPECT_EQ(std::string(msgs[1].parts[1].text, msgs[1].parts[1].len), "2");
  EXPECT_EQ(std::string(msgs[2].content, msgs[2].len), "new question");
  free(msgs);
  free(parts);
  s0.role = (Nanochat__V1__Role)9;
  EXPECT_EQ(nc_chatreq_conversation(&sess, q.get(), &msgs, &parts, &n, err, sizeof err), NC_EINVAL);
  EXPECT_STREQ(err, "session.messages[0].role: unknown role");
}

TEST(ChatReq, ReplyPartsFromToolTokens) {
  std::string dir = temp_dir();
  std::string path = write_tokenizer(dir);
  nc_tokenizer *t = nullptr;
  char msg[256];
  ASSERT_EQ(nc_tok_load(path.c_str(), nullptr, -1, &t, msg, sizeof msg), NC_OK) << msg;
  nc_special_ids sp;
  ASSERT_EQ(nc_tok_nanochat_specials(t, &sp), NC_OK);
  Nanochat__V1__ContentPart **parts = nullptr;
  size_t np = 0;
  std::vector<uint32_t> plain = {'h', 'i'};
  ASSERT_EQ(nc_chatreq_reply_parts(t, &sp, plain.data(), plain.size(), &parts, &np), NC_OK);
  EXPECT_EQ(np, 0u);  // no tool call: plain content
  std::vector<uint32_t> ids = {'x', '=', (uint32_t)sp.python_start, '1', '+', '1', (uint32_t)sp.python_end,
                               (uint32_t)sp.output_start, '2', (uint32_t)sp.output_end, ' ', 'o', 'k',
                               (uint32_t)sp.python_start, '3'};
  ASSERT_EQ(nc_chatreq_reply_parts(t, &sp, ids.data(), ids.size(), &parts, &np), NC_OK);
  ASSERT_EQ(np, 5u);
  const char *want[] = {"x=", "1+1", "2", " ok", "3"};
  int types[] = {0, 1, 2, 0, 1};
  for (size_t i = 0; i < np; i++) {
    EXPECT_STREQ(parts[i]->text, want[i]) << i;
    EXPECT_EQ((int)parts[i]->type, types[i]) << i;
  }
  nc_chatreq_parts_free(parts, np);
  nc_tok_free(t);
  rm_rf(dir);
}
