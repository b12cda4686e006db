// base_train's option resolution, step, loop state and meta (core/nc_train.h): the depth
// table's automatic batch sizes and weight decays (specs/nanochat.md §5.2), the horizon rules,
// refused combinations naming the field, gradient accumulation = one big batch, NaN refusal,
// abandoned steps, the EMA / ETA / MFU formulas, and the checkpoint meta round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <jansson.h>

#include "nc_err.h"
#include "nc_train.h"
}

namespace {

nc_base_opts depth_opts(int depth) {
  nc_base_opts o = nc_base_opts_default();
  o.depth = depth;
  return o;
}

nc_base_plan plan_of(const nc_base_opts &o, int vocab = 32768) {
  nc_base_plan p;
  char msg[512] = "";
  EXPECT_EQ(nc_base_plan_make(&o, vocab, &p, msg, sizeof msg), NC_OK) << msg;
  return p;
}

std::string refused(const nc_base_opts &o, int vocab = 32768) {
  nc_base_plan p;
  char msg[512] = "";
  int rc = nc_base_plan_make(&o, vocab, &p, msg, sizeof msg);
  EXPECT_EQ(rc, NC_EINVAL);
  return msg;
}

}  // namespace

TEST(TrainPlan, DepthTableAutoBatchAndScaling) {
  // specs §5.2: d4-d6 2^18, d12 2^19, d20-d26 2^20, d32 2^21; wd d12 0.28, d20 ~0.100, d24 ~0.060,
  // d26 ~0.048 (ratio 12, vocab 32768, T 2048)
  struct Row {
    int depth;
    int64_t batch;
    double wd;
  } rows[] = {{4, 1 << 18, -1}, {6, 1 << 18, -1}, {12, 1 << 19, 0.28}, {20, 1 << 20, 0.100},
              {24, 1 << 20, 0.060}, {26, 1 << 20, 0.048}, {32, 1 << 21, -1}};
  for (const Row &r : rows) {
    nc_base_plan p = plan_of(depth_opts(r.depth));
    EXPECT_EQ(p.total_batch_size, r.batch) << "d" << r.depth;
    EXPECT_TRUE(p.auto_batch);
    EXPECT_STREQ(p.horizon, "target_param_data_ratio");
    EXPECT_EQ(p.num_iterations, (int64_t)(p.target_tokens / (double)p.total_batch_size)) << "d" << r.depth;
    if (r.wd > 0) {
      EXPECT_NEAR(p.weight_decay_scaled, r.wd, 0.0015) << "d" << r.depth;
    }
    EXPECT_NEAR(p.batch_lr_scale, std::sqrt((double)r.batch / 524288.0), 1e-12);
    EXPECT_EQ(p.grad_accum, r.batch / (32 * 2048));
  }
  // d4 in detail: scaling params 11,534,384 (spec table), target = 12x, D_REF = 12 x 110,100,912
  nc_base_plan p = plan_of(depth_opts(4));
  EXPECT_EQ(p.params.scaling, 11534384);
  EXPECT_EQ(p.params.total, 36700242);
  EXPECT_DOUBLE_EQ(p.target_tokens, 12.0 * 11534384);
  EXPECT_DOUBLE_EQ(p.d_ref, 12.0 * 110100912);
  EXPECT_EQ(p.num_iterations, 138412608 / 262144);
  EXPECT_EQ(p.model.n_embd, 256);
  EXPECT_EQ(p.model.n_head, 2);
  // d12 is the reference: no scaling at all
  nc_base_plan q = plan_of(depth_opts(12));
  EXPECT_DOUBLE_EQ(q.batch_lr_scale, 1.0);
  EXPECT_DOUBLE_EQ(q.weight_decay_scaled, 0.28);
  EXPECT_DOUBLE_EQ(q.optim.matrix_lr, 0.02);
  EXPECT_DOUBLE_EQ(q.optim.embedding_lr, 0.3);
  EXPECT_DOUBLE_EQ(q.optim.unembedding_lr, 0.008);
  EXPECT_DOUBLE_EQ(q.optim.scalar_lr, 0.5);
  EXPECT_EQ(q.optim.type, NC_OPTIM_MUONADAMW);
  EXPECT_EQ(q.eval_steps, 80LL * 524288 / (32 * 2048));
}

TEST(TrainPlan, HorizonRulesFirstMatchWins) {
  nc_base_opts o = depth_opts(4);
  o.total_batch_size = 1 << 16;
  o.num_iterations = 77;
  o.target_flops = 1e18;
  nc_base_plan p = plan_of(o);
  EXPECT_EQ(p.num_iterations, 77);
  EXPECT_STREQ(p.horizon, "num_iterations");
  EXPECT_FALSE(p.auto_batch);
  EXPECT_EQ(p.grad_accum, 1);
  o.num_iterations = -1;
  p = plan_of(o);
  EXPECT_STREQ(p.horizon, "target_flops");
  EXPECT_EQ(p.num_iterations, (int64_t)std::nearbyint(1e18 / ((double)p.flops_per_token * 65536)));
  o.target_flops = -1;
  o.target_param_data_ratio = 2;
  p = plan_of(o);
  EXPECT_STREQ(p.horizon, "target_param_data_ratio");
  EXPECT_EQ(p.num_iterations, (int64_t)(2.0 * 11534384) / 65536);
  // the optimizer LRs carry the batch scale sqrt(2^16 / 2^19)
  double bls = std::sqrt(65536.0 / 524288.0);
  EXPECT_DOUBLE_EQ(p.optim.matrix_lr, 0.02 * bls);
  EXPECT_DOUBLE_EQ(p.optim.embedding_lr, 0.3 * bls);
  // adamw: one group, lr = unembedding_lr * bls, no weight decay
  o.optimizer = NC_TRAIN_OPT_ADAMW;
  p = plan_of(o);
  EXPECT_EQ(p.optim.type, NC_OPTIM_ADAMW);
  EXPECT_DOUBLE_EQ(p.optim.lr, 0.008 * bls);
  EXPECT_DOUBLE_EQ(p.optim.adamw_weight_decay, 0.0);
}

TEST(TrainPlan, RefusedCombinationsNameTheField) {
  nc_base_opts o = depth_opts(2);
  o.max_seq_len = 64;
  o.device_batch_size = 8;
  o.total_batch_size = 1000;  // not a multiple of 8 x 64
  std::string m = refused(o, 1024);
  EXPECT_NE(m.find("total_batch_size"), std::string::npos) << m;
  EXPECT_NE(m.find("device_batch_size x max_seq_len = 8 x 64 = 512"), std::string::npos) << m;
  o = depth_opts(4);
  o.max_seq_len = 1000;
  o.device_batch_size = 3;  // the automatic 2^k is not a multiple of 3000
  m = refused(o);
  EXPECT_NE(m.find("(automatic)"), std::string::npos) << m;
  o = depth_opts(4);
  o.total_batch_size = 0;
  EXPECT_EQ(refused(o).rfind("total_batch_size:", 0), 0u);
  o = depth_opts(4);
  snprintf(o.window_pattern, sizeof o.window_pattern, "SXL");
  EXPECT_EQ(refused(o).rfind("window_pattern:", 0), 0u);
  o = depth_opts(4);
  o.head_dim = 31;
  EXPECT_EQ(refused(o).rfind("head_dim:", 0), 0u);
  o = depth_opts(4);
  o.depth = 0;
  EXPECT_EQ(refused(o).rfind("depth:", 0), 0u);
  o = depth_opts(4);
  o.matrix_lr = -1;
  EXPECT_EQ(refused(o).rfind("matrix_lr:", 0), 0u);
  o = depth_opts(4);
  o.embedding_lr = NAN;
  EXPECT_EQ(refused(o).rfind("embedding_lr:", 0), 0u);
  o = depth_opts(4);
  o.warmdown_ratio = 1.5;
  EXPECT_EQ(refused(o).rfind("warmdown_ratio:", 0), 0u);
  o = depth_opts(4);
  o.eval_tokens = 0;
  EXPECT_EQ(refused(o).rfind("eval_tokens:", 0), 0u);
  o = depth_opts(4);
  o.optimizer = 7;
  EXPECT_EQ(refused(o).rfind("optimizer:", 0), 0u);
  // a horizon of zero steps
  o = depth_opts(2);
  o.max_seq_len = 64;
  o.device_batch_size = 1;
  o.target_param_data_ratio = 0.001;
  o.total_batch_size = 1 << 20;
  m = refused(o, 1024);
  EXPECT_NE(m.find("horizon is 0 steps"), std::string::npos) << m;
  o.num_iterations = 200000000;
  m = refused(o, 1024);
  EXPECT_NE(m.find("num_iterations"), std::string::npos) << m;
  EXPECT_EQ(refused(depth_opts(4), 1).rfind("tokenizer:", 0), 0u);
  nc_base_plan p;
  EXPECT_EQ(nc_base_plan_make(nullptr, 1024, &p, nullptr, 0), NC_EINVAL);
}

TEST(TrainPlan, DescribeAndUserConfig) {
  nc_base_opts o = depth_opts(4);
  nc_base_plan p = plan_of(o);
  char line[768];
  nc_base_plan_describe(&p, &o, line, sizeof line);
  EXPECT_NE(std::string(line).find("d4: n_embd 256"), std::string::npos) << line;
  EXPECT_NE(std::string(line).find("(auto)"), std::string::npos) << line;
  json_t *j = nc_base_opts_to_json(&o);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(json_integer_value(json_object_get(j, "depth")), 4);
  EXPECT_STREQ(json_string_value(json_object_get(j, "window_pattern")), "SSSL");
  EXPECT_DOUBLE_EQ(json_real_value(json_object_get(j, "unembedding_lr")), 0.008);
  EXPECT_EQ(json_integer_value(json_object_get(j, "total_batch_size")), -1);
  json_decref(j);
}

// ---------------------------------------------------------------- one step

namespace {

nc_model_config tiny_config() {
  nc_model_config c;
  char msg[200];
  EXPECT_EQ(nc_model_config_from_depth(2, 32, 16, 16, 97, &c, msg, sizeof msg), NC_OK) << msg;
  snprintf(c.window_pattern, sizeof c.window_pattern, "L");
  return c;
}

struct Batches {
  std::vector<int32_t> in, tg;  // all micro-batches back to back
  size_t n = 0, next = 0;       // tokens per micro-batch
  static int fn(void *ctx, int32_t *in, int32_t *tg) {
    Batches *b = (Batches *)ctx;
    if (b->next + b->n > b->in.size()) return NC_ENOTFOUND;
    memcpy(in, b->in.data() + b->next, b->n * sizeof(int32_t));
    memcpy(tg, b->tg.data() + b->next, b->n * sizeof(int32_t));
    b->next += b->n;
    return NC_OK;
  }
};

Batches make_batches(size_t tokens, size_t per) {
  Batches b;
  b.n = per;
  uint64_t s = 12345;
  for (size_t i = 0; i < tokens; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    b.in.push_back((int32_t)((s >> 33) % 97));
  }
  for (size_t i = 0; i < tokens; i++) b.tg.push_back(b.in[(i + 1) % tokens]);
  return b;
}

struct Tiny {
  nc_model *m = nullptr;
  nc_optim *o = nullptr;
  Tiny() {
    nc_model_config c = tiny_config();
    char msg[200];
    EXPECT_EQ(nc_model_create(&c, &m, msg, sizeof msg), NC_OK) << msg;
    nc_model_init_weights(m, 7);
    int n;
    nc_param *ps = nc_model_params(m, &n);
    nc_optim_cfg oc = nc_optim_cfg_muonadamw(c.n_embd);
    EXPECT_EQ(nc_optim_create(ps, n, &oc, &o, msg, sizeof msg), NC_OK) << msg;
  }
  ~Tiny() {
    nc_optim_free(o);
    nc_model_free(m);
  }
  std::vector<float> params() {
    int64_t n;
    float *p = nc_model_param_buffer(m, &n);
    return std::vector<float>(p, p + n);
  }
};

int stop_after_first(void *ctx) { return ++*(int *)ctx > 1; }

}  // namespace

TEST(TrainStep, AccumulatedMicroBatchesEqualOneBatch) {
  const int T = 16;
  Tiny a, b;
  std::vector<int32_t> in(4 * T), tg(4 * T);
  Batches ba = make_batches(4 * T, 2 * T), bb = make_batches(4 * T, 4 * T);
  nc_train_step_cfg ca = {2, 2, T, 1.0, 0.85, 0.0, Batches::fn, &ba, nullptr, nullptr, in.data(), tg.data()};
  nc_train_step_cfg cb = {1, 4, T, 1.0, 0.85, 0.0, Batches::fn, &bb, nullptr, nullptr, in.data(), tg.data()};
  nc_train_step_out oa, ob;
  ASSERT_EQ(nc_train_step(a.m, a.o, &ca, &oa), NC_OK);
  ASSERT_EQ(nc_train_step(b.m, b.o, &cb, &ob), NC_OK);
  EXPECT_EQ(oa.micro_done, 2);
  EXPECT_NEAR(oa.loss, ob.loss, 1e-5);  // equal row counts: mean of means = mean
  std::vector<float> pa = a.params(), pb = b.params();
  double maxd = 0;
  for (size_t i = 0; i < pa.size(); i++) maxd = std::max(maxd, (double)std::fabs(pa[i] - pb[i]));
  EXPECT_LT(maxd, 2e-5);
  EXPECT_EQ(nc_optim_step_count(a.o), 1);
  EXPECT_EQ(nc_optim_group_at(a.o, 0)->lr, nc_optim_group_at(a.o, 0)->initial_lr);
}

TEST(TrainStep, NonFiniteLossSkipsTheUpdate) {
  const int T = 16;
  Tiny t;
  int n;
  nc_param *ps = nc_model_params(t.m, &n);
  for (int i = 0; i < n; i++)
    if (ps[i].kind == NC_PK_RESID_LAMBDAS) ps[i].data[0] = NAN;
  std::vector<float> before = t.params();
  std::vector<int32_t> in(2 * T), tg(2 * T);
  Batches b = make_batches(8 * T, 2 * T);
  nc_train_step_cfg c = {2, 2, T, 1.0, 0.85, 0.0, Batches::fn, &b, nullptr, nullptr, in.data(), tg.data()};
  nc_train_step_out o;
  EXPECT_EQ(nc_train_step(t.m, t.o, &c, &o), NC_ERANGE);
  EXPECT_FALSE(std::isfinite(o.last_loss));
  EXPECT_EQ(nc_optim_step_count(t.o), 0);
  std::vector<float> after = t.params();
  EXPECT_EQ(0, memcmp(before.data(), after.data(), before.size() * sizeof(float)));  // NaN bits too
}

TEST(TrainStep, StopAbandonsTheStepAndErrorsPropagate) {
  const int T = 16;
  Tiny t;
  std::vector<float> before = t.params();
  std::vector<int32_t> in(2 * T), tg(2 * T);
  Batches b = make_batches(8 * T, 2 * T);
  int calls = 0;
  nc_train_step_cfg c = {3, 2, T, 1.0, 0.85, 0.0, Batches::fn, &b, stop_after_first, &calls, in.data(), tg.data()};
  nc_train_step_out o;
  EXPECT_EQ(nc_train_step(t.m, t.o, &c, &o), NC_ECANCELED);
  EXPECT_EQ(o.micro_done, 1);
  EXPECT_EQ(nc_optim_step_count(t.o), 0);
  EXPECT_EQ(before, t.params());
  int64_t ng;
  float *g = nc_model_grad_buffer(t.m, &ng);
  for (int64_t i = 0; i < ng; i++) ASSERT_EQ(g[i], 0.0f);
  // the batch source running dry is reported as is
  Batches dry = make_batches(2 * T, 2 * T);
  nc_train_step_cfg d = {2, 2, T, 1.0, 0.85, 0.0, Batches::fn, &dry, nullptr, nullptr, in.data(), tg.data()};
  EXPECT_EQ(nc_train_step(t.m, t.o, &d, &o), NC_ENOTFOUND);
  d.grad_accum = 0;
  EXPECT_EQ(nc_train_step(t.m, t.o, &d, &o), NC_EINVAL);
}

// ---------------------------------------------------------------- loop state, MFU, meta

TEST(TrainLoop, EmaDebiasTimingAndEta) {
  nc_train_loop_state s = nc_train_loop_state_init();
  EXPECT_TRUE(std::isinf(s.min_val_bpb));
  EXPECT_TRUE(std::isnan(s.val_bpb));
  // base_train: smooth = 0.9 smooth + 0.1 loss; debiased = smooth / (1 - 0.9^(step+1))
  double losses[] = {5.0, 4.0, 3.5};
  double smooth = 0;
  for (int i = 0; i < 3; i++) {
    s.step = i;
    double d = nc_train_ema_update(&s, losses[i], 1.0);
    smooth = 0.9 * smooth + 0.1 * losses[i];
    EXPECT_DOUBLE_EQ(d, smooth / (1 - std::pow(0.9, i + 1)));
  }
  EXPECT_EQ(s.total_training_time, 0.0);  // steps <= 10 are not timed
  s.step = 11;
  nc_train_ema_update(&s, 1.0, 2.5);
  EXPECT_DOUBLE_EQ(s.total_training_time, 2.5);
  EXPECT_TRUE(std::isnan(nc_train_eta(&s, 10, 100)));
  EXPECT_DOUBLE_EQ(nc_train_eta(&s, 11, 100), 89 * 2.5);
  EXPECT_DOUBLE_EQ(nc_train_mfu(1000, 500, 0.5, 1e8), 100.0 * 1000 * 500 / 0.5 / 1e8);
  EXPECT_EQ(nc_train_mfu(1000, 500, 0.5, 0), 0.0);
  char desc[96];
  double peak = nc_cpu_peak_flops(1, desc, sizeof desc);
  EXPECT_GT(peak, 1e9);
  EXPECT_NE(std::string(desc).find("1 cores x"), std::string::npos) << desc;
  EXPECT_GE(nc_cpu_peak_flops(0, nullptr, 0), peak);
}

TEST(TrainMeta, RoundTripIsExact) {
  nc_base_opts o = depth_opts(4);
  nc_base_plan p = plan_of(o);
  nc_train_loop_state s = nc_train_loop_state_init();
  s.step = 40;
  s.smooth_train_loss = 3.141592653589793;
  s.total_training_time = 12.000000000000002;
  nc_loader_state ls = {{2, 77}, nullptr, 0};
  nc_doc_pos buf[2] = {{1, 5}, {1, 9}};
  ls.buffered = buf;
  ls.n_buffered = 2;
  char *meta = nc_base_meta_json(&o, &p, &s, &ls);
  ASSERT_NE(meta, nullptr);
  // nc_ckpt_save adds "step"; emulate it
  json_error_t e;
  json_t *j = json_loads(meta, 0, &e);
  ASSERT_NE(j, nullptr) << meta;
  EXPECT_TRUE(json_is_null(json_object_get(j, "val_bpb")));  // NaN -> null
  EXPECT_TRUE(json_is_null(json_object_get(json_object_get(j, "loop_state"), "min_val_bpb")));  // inf -> null
  EXPECT_EQ(json_integer_value(json_object_get(j, "total_batch_size")), 262144);
  EXPECT_EQ(json_integer_value(json_object_get(json_object_get(j, "user_config"), "depth")), 4);
  json_object_set_new(j, "step", json_integer(40));
  char *full = json_dumps(j, 0);
  json_decref(j);
  free(meta);
  nc_train_loop_state s2;
  nc_loader_state ls2;
  char msg[200];
  ASSERT_EQ(nc_base_meta_parse(full, &s2, &ls2, msg, sizeof msg), NC_OK) << msg;
  free(full);
  EXPECT_EQ(s2.step, 40);
  EXPECT_EQ(s2.smooth_train_loss, s.smooth_train_loss);  // bit-exact (17 digits)
  EXPECT_EQ(s2.total_training_time, s.total_training_time);
  EXPECT_TRUE(std::isinf(s2.min_val_bpb));
  EXPECT_TRUE(std::isnan(s2.val_bpb));
  EXPECT_EQ(ls2.next.a, 2u);
  EXPECT_EQ(ls2.next.b, 77u);
  ASSERT_EQ(ls2.n_buffered, 2u);
  EXPECT_EQ(ls2.buffered[1].b, 9u);
  nc_loader_state_free(&ls2);
}

TEST(TrainMeta, MalformedMetaNamesTheKey) {
  nc_train_loop_state s;
  nc_loader_state ls;
  char msg[200];
  const char *bad[][2] = {
      {"[]", "not a JSON object"},
      {"{\"loop_state\":{}}", "step"},
      {"{\"step\":3}", "loop_state"},
      {"{\"step\":3,\"loop_state\":{\"min_val_bpb\":\"x\"}}", "loop_state.min_val_bpb"},
      {"{\"step\":3,\"loop_state\":{\"min_val_bpb\":null,\"smooth_train_loss\":1,\"total_training_time\":2},"
       "\"val_bpb\":1}", "dataloader_state_dict"},
      {"{\"step\":3,\"loop_state\":{\"min_val_bpb\":null,\"smooth_train_loss\":1,\"total_training_time\":2},"
       "\"val_bpb\":1,\"dataloader_state_dict\":{\"next\":[1]}}", "dataloader_state_dict"},
      {"{\"step\":-1,\"loop_state\":{}}", "step"},
  };
  for (auto &b : bad) {
    EXPECT_EQ(nc_base_meta_parse(b[0], &s, &ls, msg, sizeof msg), NC_EINVAL) << b[0];
    EXPECT_NE(std::string(msg).find(b[1]), std::string::npos) << b[0] << " -> " << msg;
  }
  EXPECT_EQ(nc_base_meta_parse(nullptr, &s, &ls, msg, sizeof msg), NC_EINVAL);
}
