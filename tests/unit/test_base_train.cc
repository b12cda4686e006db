// base_train's loop (core/nc_base_train.h) on a tiny model and a tinyshakespeare corpus:
// stop + resume reproduces the uninterrupted run bit for bit (losses, val bpb, final model
// file hash), the checkpoint meta has nanochat's keys, a diverging loss stops with
// "loss diverged" and writes nothing, a failed checkpoint write leaves the previous complete
// step (and resuming from it reaches the same end), mismatched resumes are refused, a corpus
// without a val split is evaluated on train, a stop before any step writes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fs_test_util.h"
#include "tok_test_util.h"

extern "C" {
#include <jansson.h>

#include "nc_base_train.h"
#include "nc_checkpoint.h"
}

namespace {

const nc_tokenizer *tok() {
  static nc_tokenizer *t = toktest::train(toktest::paragraphs(toktest::shakespeare(), 200000), 512);
  return t;
}

// train.jsonl (+ val.jsonl) of shakespeare paragraphs grouped to ~600 bytes
void write_corpus(const std::string &dir, bool with_val) {
  mkdir(dir.c_str(), 0755);
  auto paras = toktest::paragraphs(toktest::shakespeare(), 400000);
  std::vector<std::string> docs;
  std::string cur;
  for (auto &p : paras) {
    cur += p;
    if (cur.size() > 600) {
      docs.push_back(cur);
      cur.clear();
    }
  }
  std::ofstream tr(dir + "/train.jsonl"), va;
  if (with_val) va.open(dir + "/val.jsonl");
  for (size_t i = 0; i < docs.size(); i++) {
    json_t *j = json_pack("{s:s}", "text", docs[i].c_str());
    char *s = json_dumps(j, JSON_COMPACT);
    ((with_val && i % 20 == 0) ? va : tr) << s << "\n";
    free(s);
    json_decref(j);
  }
}

nc_base_opts tiny_opts() {
  nc_base_opts o = nc_base_opts_default();
  o.depth = 2;
  o.aspect_ratio = 32;
  o.head_dim = 16;  // n_embd 64, 4 heads
  o.max_seq_len = 32;
  o.short_window = 16;
  o.device_batch_size = 4;
  o.total_batch_size = 4 * 32 * 2;  // 2 micro-batches per step
  o.num_iterations = 12;
  o.warmup_steps = 2;
  o.eval_every = 4;
  o.eval_tokens = 4 * 32 * 3;
  o.save_every = 4;
  o.seed = 3;
  return o;
}

struct Rec {
  std::vector<nc_train_progress> prog;
  std::vector<nc_train_eval> evals;
  std::vector<nc_train_ckpt> ckpts;
  std::vector<std::string> logs;
  int64_t stop_after = -1;       // stop once this many steps are done
  std::string fault_point;       // return 1 at this point
  int64_t fault_step = -1;
  static int stop(void *c) {
    Rec *r = (Rec *)c;
    return r->stop_after >= 0 && !r->prog.empty() && r->prog.back().step >= r->stop_after;
  }
  static int progress(void *c, const nc_train_progress *p) {
    ((Rec *)c)->prog.push_back(*p);
    return 0;
  }
  static int eval(void *c, const nc_train_eval *e) {
    ((Rec *)c)->evals.push_back(*e);
    return 0;
  }
  static int ckpt(void *c, const nc_train_ckpt *k) {
    ((Rec *)c)->ckpts.push_back(*k);
    return 0;
  }
  static int log(void *c, const char *l) {
    ((Rec *)c)->logs.push_back(l);
    return 0;
  }
  static int fault(void *c, const char *point, int64_t step) {
    Rec *r = (Rec *)c;
    return point == r->fault_point && (r->fault_step < 0 || step == r->fault_step);
  }
  nc_base_hooks hooks() { return nc_base_hooks{this, stop, progress, eval, ckpt, log, fault}; }
};

int run(const std::string &corpus, const std::string &ckdir, Rec &rec, int64_t resume = -1,
        nc_base_result *res = nullptr, std::string *msg = nullptr, nc_base_opts o = tiny_opts()) {
  nc_base_run_cfg cfg = {};
  cfg.opts = o;
  cfg.tok = tok();
  cfg.corpus_dir = corpus.c_str();
  cfg.ckpt_dir = ckdir.c_str();
  cfg.resume_from_step = resume;
  cfg.threads = getenv("NCT_THREADS") ? atoi(getenv("NCT_THREADS")) : 1;
  cfg.loader_buffer = 64;
  nc_base_hooks h = rec.hooks();
  nc_base_result r;
  char m[1024];
  int rc = nc_base_run(&cfg, &h, res ? res : &r, m, sizeof m);
  if (msg) *msg = m;
  return rc;
}

std::vector<int64_t> steps_on_disk(const std::string &dir) {
  nc_ckpt_dir *d;
  nc_st_error e;
  std::vector<int64_t> v(64);
  int n = 0;
  if (nc_ckpt_dir_open_path(dir.c_str(), 0, &d, &e) != NC_OK) return {};
  EXPECT_EQ(nc_ckpt_list(d, v.data(), 64, &n, &e), NC_OK);
  nc_ckpt_dir_close(d);
  v.resize(n);
  return v;
}

// The two checkpoints hold bit-identical weights (the files differ: their meta records wall time).
bool same_weights(const std::string &da, const std::string &db, int64_t step) {
  nc_ckpt_dir *a, *b;
  nc_st_error e;
  nc_model *ma = nullptr, *mb = nullptr;
  if (nc_ckpt_dir_open_path(da.c_str(), 0, &a, &e) || nc_ckpt_dir_open_path(db.c_str(), 0, &b, &e)) return false;
  bool ok = nc_ckpt_load_model(a, step, nullptr, &ma, nullptr, &e) == NC_OK &&
            nc_ckpt_load_model(b, step, nullptr, &mb, nullptr, &e) == NC_OK;
  if (ok) {
    int64_t na, nb;
    float *pa = nc_model_param_buffer(ma, &na), *pb = nc_model_param_buffer(mb, &nb);
    ok = na == nb && memcmp(pa, pb, sizeof(float) * (size_t)na) == 0;
  }
  nc_model_free(ma);
  nc_model_free(mb);
  nc_ckpt_dir_close(a);
  nc_ckpt_dir_close(b);
  return ok;
}

const nc_train_ckpt *ckpt_at(const Rec &r, int64_t step) {
  for (auto &c : r.ckpts)
    if (c.step == step) return &c;
  return nullptr;
}

}  // namespace

TEST(BaseTrain, StopAndResumeReproduceTheUninterruptedRun) {
  nctest::TempDir tmp;
  std::string corpus = tmp / "corpus";
  write_corpus(corpus, true);
  // A: uninterrupted
  Rec a;
  nc_base_result ra;
  std::string msg;
  ASSERT_EQ(run(corpus, tmp / "a", a, -1, &ra, &msg), NC_OK) << msg;
  ASSERT_EQ(a.prog.size(), 12u);
  EXPECT_EQ(ra.final_step, 12);
  EXPECT_FALSE(ra.stopped);
  EXPECT_EQ(steps_on_disk(tmp / "a"), (std::vector<int64_t>{4, 8, 12}));
  ASSERT_EQ(a.evals.size(), 4u);  // steps 0, 4, 8, 12
  EXPECT_EQ(a.evals[3].step, 12);
  EXPECT_LT(a.evals[3].val_bpb, a.evals[0].val_bpb);  // it learns
  EXPECT_LT(a.prog.back().loss, a.prog.front().loss);
  EXPECT_TRUE(ckpt_at(a, 12)->final);
  EXPECT_FALSE(ckpt_at(a, 8)->final);
  EXPECT_EQ(a.prog[3].step, 4);
  EXPECT_EQ(a.prog[3].total_steps, 12);
  EXPECT_EQ(a.prog[3].tokens_seen, 4 * 256);
  EXPECT_TRUE(std::isnan(a.prog[3].eta_s));  // unknown for the first 10 steps
  EXPECT_DOUBLE_EQ(a.prog[0].lrm, 0.5);      // warmup (0+1)/2
  // B: stopped after step 6 (final checkpoint at 6), C: resumed from it
  Rec b;
  b.stop_after = 6;
  nc_base_result rb;
  ASSERT_EQ(run(corpus, tmp / "b", b, -1, &rb, &msg), NC_OK) << msg;
  EXPECT_TRUE(rb.stopped);
  EXPECT_EQ(rb.final_step, 6);
  EXPECT_EQ(steps_on_disk(tmp / "b"), (std::vector<int64_t>{4, 6}));
  ASSERT_NE(ckpt_at(b, 6), nullptr);
  EXPECT_TRUE(ckpt_at(b, 6)->final);
  Rec c;
  nc_base_result rc;
  ASSERT_EQ(run(corpus, tmp / "b", c, 6, &rc, &msg), NC_OK) << msg;
  EXPECT_EQ(rc.start_step, 6);
  ASSERT_EQ(c.prog.size(), 6u);
  for (size_t i = 0; i < 6; i++) {
    const nc_train_progress &x = a.prog[6 + i], &y = c.prog[i];
    EXPECT_EQ(x.step, y.step);
    EXPECT_EQ(x.raw_loss, y.raw_loss) << "step " << x.step;  // bit-identical
    EXPECT_EQ(x.loss, y.loss) << "step " << x.step;          // EMA restored exactly
    EXPECT_EQ(x.lrm, y.lrm);
  }
  ASSERT_EQ(c.evals.size(), 2u);  // 8 and 12 (6 is not a multiple of 4)
  EXPECT_EQ(c.evals[1].val_bpb, a.evals[3].val_bpb);
  EXPECT_TRUE(same_weights(tmp / "a", tmp / "b", 12));
  EXPECT_EQ(ckpt_at(c, 6), nullptr);  // the resume step is not saved again
  bool resumed_logged = false;
  for (auto &l : c.logs) resumed_logged |= l.find("resumed from step 6") != std::string::npos;
  EXPECT_TRUE(resumed_logged);
  // the meta file has nanochat's base keys
  std::ifstream f(tmp / "a" + "/meta_000012.json");
  std::string meta((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  json_error_t e;
  json_t *j = json_loads(meta.c_str(), 0, &e);
  ASSERT_NE(j, nullptr) << meta;
  for (const char *k : {"step", "val_bpb", "model_config", "user_config", "device_batch_size", "max_seq_len",
                        "total_batch_size", "dataloader_state_dict", "loop_state"})
    EXPECT_NE(json_object_get(j, k), nullptr) << k;
  EXPECT_EQ(json_integer_value(json_object_get(j, "step")), 12);
  EXPECT_EQ(json_integer_value(json_object_get(j, "total_batch_size")), 256);
  EXPECT_NEAR(json_real_value(json_object_get(j, "val_bpb")), a.evals[3].val_bpb, 1e-12);
  json_decref(j);
}

TEST(BaseTrain, DivergingLossFailsWithoutCheckpoint) {
  nctest::TempDir tmp;
  std::string corpus = tmp / "corpus";
  write_corpus(corpus, true);
  Rec r;
  r.fault_point = "nan";
  r.fault_step = 3;
  std::string msg;
  EXPECT_EQ(run(corpus, tmp / "ck", r, -1, nullptr, &msg), NC_ERANGE);
  EXPECT_NE(msg.find("loss diverged at step 3"), std::string::npos) << msg;
  EXPECT_EQ(r.prog.size(), 3u);
  EXPECT_TRUE(r.ckpts.empty());
  EXPECT_TRUE(steps_on_disk(tmp / "ck").empty());
}

TEST(BaseTrain, FailedCheckpointWriteKeepsThePreviousStep) {
  nctest::TempDir tmp;
  std::string corpus = tmp / "corpus";
  write_corpus(corpus, true);
  Rec a;
  std::string msg;
  ASSERT_EQ(run(corpus, tmp / "ref", a, -1, nullptr, &msg), NC_OK) << msg;
  for (const char *point : {"optim:fsync", "model:rename", "meta:data", "files_durable"}) {
    SCOPED_TRACE(point);
    std::string dir = tmp / (std::string("ck_") + point);
    Rec r;
    r.fault_point = point;
    r.fault_step = 8;
    EXPECT_NE(run(corpus, dir, r, -1, nullptr, &msg), NC_OK);
    EXPECT_NE(msg.find("step 8"), std::string::npos) << msg;
    ASSERT_NE(ckpt_at(r, 4), nullptr);
    EXPECT_EQ(ckpt_at(r, 8), nullptr);  // never announced
    std::vector<int64_t> want = std::string(point) == "files_durable" ? std::vector<int64_t>{4, 8}
                                                                      : std::vector<int64_t>{4};
    EXPECT_EQ(steps_on_disk(dir), want);  // old, or complete new: never a partial step
    Rec c;
    ASSERT_EQ(run(corpus, dir, c, 4, nullptr, &msg), NC_OK) << msg;
    EXPECT_TRUE(same_weights(tmp / "ref", dir, 12));
  }
}

TEST(BaseTrain, MismatchedResumeIsRefused) {
  nctest::TempDir tmp;
  std::string corpus = tmp / "corpus";
  write_corpus(corpus, true);
  Rec a;
  a.stop_after = 4;
  std::string msg;
  ASSERT_EQ(run(corpus, tmp / "ck", a, -1, nullptr, &msg), NC_OK) << msg;
  Rec b;
  EXPECT_EQ(run(corpus, tmp / "ck", b, 5, nullptr, &msg), NC_ENOTFOUND);
  EXPECT_NE(msg.find("no checkpoint at step 5"), std::string::npos) << msg;
  nc_base_opts wide = tiny_opts();
  wide.aspect_ratio = 64;
  EXPECT_EQ(run(corpus, tmp / "ck", b, 4, nullptr, &msg, wide), NC_ESTATE);
  EXPECT_NE(msg.find("differs from the request"), std::string::npos) << msg;
  nc_base_opts shorter = tiny_opts();
  shorter.num_iterations = 3;
  EXPECT_EQ(run(corpus, tmp / "ck", b, 4, nullptr, &msg, shorter), NC_ESTATE);
  EXPECT_NE(msg.find("past the horizon"), std::string::npos) << msg;
  EXPECT_TRUE(b.prog.empty());
}

TEST(BaseTrain, NoValSplitAndStopBeforeAnyStep) {
  nctest::TempDir tmp;
  std::string corpus = tmp / "corpus";
  write_corpus(corpus, false);
  Rec r;
  r.stop_after = 0;
  r.prog.push_back(nc_train_progress{});  // makes stop() true at once
  nc_base_result res;
  std::string msg;
  ASSERT_EQ(run(corpus, tmp / "ck", r, -1, &res, &msg), NC_OK) << msg;
  EXPECT_TRUE(res.stopped);
  EXPECT_EQ(res.final_step, 0);
  EXPECT_EQ(res.last_ckpt_step, -1);
  EXPECT_TRUE(steps_on_disk(tmp / "ck").empty());
  bool noted = false;
  for (auto &l : r.logs) noted |= l.find("no val split") != std::string::npos;
  EXPECT_TRUE(noted);
  // and a normal run evaluates on the train split
  Rec t;
  nc_base_opts o = tiny_opts();
  o.num_iterations = 2;
  ASSERT_EQ(run(corpus, tmp / "ck2", t, -1, &res, &msg, o), NC_OK) << msg;
  ASSERT_FALSE(t.evals.empty());
  EXPECT_TRUE(std::isfinite(t.evals.back().val_bpb));
  // bad configuration: no corpus
  EXPECT_EQ(run(tmp / "nope", tmp / "ck3", t, -1, &res, &msg), NC_ENOTFOUND);
  EXPECT_NE(msg.find("corpus"), std::string::npos) << msg;
}
