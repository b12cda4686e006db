// The inference engine (core/nc_engine.h): KV-cache greedy decoding equals the no-cache forward,
// continuous batching equals each request alone, seeds, num_samples, cancellation, admission
// control, limits checked before anything is queued, tool calls (forced output tokens,
// unterminated and nested calls: faults.md rows 39-40), UTF-8-safe streaming, only completion
// tokens delivered, non-finite logits (row 41), shutdown with live requests, stats.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "engine_test_util.h"

using namespace ect;

namespace {

// Greedy continuation by re-running the full (no-cache) forward on the whole sequence each step.
std::vector<int32_t> reference_greedy(nc_model *m, std::vector<int32_t> ids, int max_tokens,
                                      bool chat) {
  const int V = nc_model_get_config(m)->vocab_size;
  std::vector<int32_t> out;
  for (int k = 0; k < max_tokens; k++) {
    std::vector<float> lg(ids.size() * V);
    EXPECT_EQ(nc_model_forward(m, ids.data(), nullptr, 1, (int)ids.size(), nullptr, nullptr, lg.data()), NC_OK);
    const float *last = &lg[(ids.size() - 1) * V];
    int32_t t = (int32_t)(std::max_element(last, last + V) - last);
    if (t == BOS || (chat && t == AE)) break;
    out.push_back(t);
    ids.push_back(t);
  }
  return out;
}

TEST(Engine, GreedyWithKvCacheEqualsNoCacheForward) {
  omp_set_num_threads(2);
  RandomModel rm;
  Engine E(rm.m, 3, NC_DECODE_F32, 16, 0, 5);  // chunk 5: prompts are prefilled in pieces
  for (int s = 0; s < 4; s++) {
    std::vector<int32_t> prompt = nct::random_ids(3 + 7 * s, NTOK, 60 + s);
    const bool chat = s % 2;
    Gen &r = E.gen();
    ASSERT_EQ(E.submit(prompt, greedy(24, chat ? NC_GEN_CHAT : NC_GEN_RAW), &r), NC_OK) << E.msg;
    ASSERT_TRUE(r.wait());
    std::vector<int32_t> ref = reference_greedy(rm.m, prompt, 24, chat);
    EXPECT_EQ(r.tokens[0], ref) << "prompt " << s;
    ASSERT_EQ(r.done.size(), 1u);
    EXPECT_EQ(r.done[0].finish, ref.size() == 24 ? NC_FINISH_LENGTH : NC_FINISH_STOP);
    // only completion tokens are delivered and counted; the prompt is never echoed (D2)
    EXPECT_EQ(r.done[0].completion_tokens, (int)r.tokens[0].size());
    EXPECT_EQ(r.done[0].prompt_tokens, (int)prompt.size());
    EXPECT_TRUE(r.done[0].last);
  }
}

// Requests joining at different times (one is submitted from inside another's callback, one
// waits in the queue) produce exactly the tokens each produces alone on an idle engine.
TEST(Engine, BatchedEqualsAlone) {
  omp_set_num_threads(2);
  RandomModel rm;
  const int R = 5;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<nc_gen_params> params;
  for (int i = 0; i < R; i++) {
    prompts.push_back(nct::random_ids(2 + 5 * i, NTOK, 80 + i));
    params.push_back(i % 2 ? greedy(18 + i) : sampled(18 + i, 1000 + i));
  }
  const std::pair<nc_decode_weights, nc_engine_kv> precs[] = {
      {NC_DECODE_F32, NC_ENGINE_KV_AUTO}, {NC_DECODE_BF16, NC_ENGINE_KV_AUTO},
      {NC_DECODE_AUTO, NC_ENGINE_KV_AUTO}, {NC_DECODE_F32, NC_ENGINE_KV_BF16},
      {NC_DECODE_BF16, NC_ENGINE_KV_F32}};
  for (auto [w, kv] : precs) {
    std::vector<std::vector<int32_t>> alone(R);
    {
      Engine E(rm.m, 1, w, 4, 0, 4, kv);
      nc_engine_stats st;
      nc_engine_get_stats(E.e, &st);
      // AUTO: bf16 caches unless the weights are the fp32 reference
      EXPECT_EQ(st.kv, kv == NC_ENGINE_KV_F32 || (kv == NC_ENGINE_KV_AUTO && w == NC_DECODE_F32)
                           ? NC_KV_F32 : NC_KV_BF16);
      for (int i = 0; i < R; i++) {
        Gen &r = E.gen();
        ASSERT_EQ(E.submit(prompts[i], params[i], &r), NC_OK) << E.msg;
        ASSERT_TRUE(r.wait());
        alone[i] = r.tokens[0];
      }
    }
    Engine E(rm.m, 3, w, 8, 0, 4, kv);
    std::vector<Gen *> rp;
    for (int i = 0; i < R; i++) rp.push_back(&E.gen());
    auto runs = [&](int i) -> Gen & { return *rp[i]; };
    std::atomic<int> submitted{1};
    // run 0 starts; at its 3rd token it submits 1 and 2; at its 6th, 3 and 4 (4 has to queue)
    runs(0).hook = [&](const nc_gen_event &ev) {
      if (ev.kind != NC_GEN_TOKEN) return;
      size_t n = runs(0).ntok();
      if (n == 3 || n == 6) {
        for (int k = 0; k < 2; k++) {
          int i = submitted++;
          EXPECT_EQ(E.submit(prompts[i], params[i], &runs(i)), NC_OK) << E.msg;
        }
      }
    };
    ASSERT_EQ(E.submit(prompts[0], params[0], &runs(0)), NC_OK);
    for (int i = 0; i < R; i++) {
      while (i >= submitted.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ASSERT_TRUE(runs(i).wait()) << i;
      EXPECT_EQ(runs(i).tokens[0], alone[i]) << "weights " << w << " kv " << kv << " request " << i;
      EXPECT_EQ(runs(i).done[0].completion_tokens, (int)alone[i].size());
    }
    EXPECT_EQ(submitted.load(), R);
  }
}

TEST(Engine, SeedsReproduceAndDiffer) {
  RandomModel rm;
  Engine E(rm.m, 2, NC_DECODE_BF16);
  std::vector<int32_t> prompt = nct::random_ids(6, NTOK, 5);
  auto run = [&](uint64_t seed) {
    Gen &r = E.gen();
    EXPECT_EQ(E.submit(prompt, sampled(40, seed), &r), NC_OK);
    EXPECT_TRUE(r.wait());
    return r.tokens[0];
  };
  std::vector<int32_t> a = run(7), b = run(7), c = run(8);
  EXPECT_EQ(a.size(), 40u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// num_samples shares one prefill: sample i equals a single-sample run with seed + i.
TEST(Engine, NumSamplesShareOnePrefill) {
  RandomModel rm;
  Engine E(rm.m, 4, NC_DECODE_BF16, 4, 0, 3);
  std::vector<int32_t> prompt = nct::random_ids(9, NTOK, 6);
  nc_gen_params p = sampled(20, 300);
  p.num_samples = 3;
  Gen &r = E.gen(3);
  ASSERT_EQ(E.submit(prompt, p, &r), NC_OK) << E.msg;
  ASSERT_TRUE(r.wait());
  ASSERT_EQ(r.done.size(), 3u);
  int lasts = 0;
  for (auto &d : r.done) lasts += d.last;
  EXPECT_EQ(lasts, 1);
  EXPECT_TRUE(r.done.back().last);
  for (int i = 0; i < 3; i++) {
    Gen &one = E.gen();
    ASSERT_EQ(E.submit(prompt, sampled(20, 300 + i), &one), NC_OK);
    ASSERT_TRUE(one.wait());
    EXPECT_EQ(r.tokens[i], one.tokens[0]) << "sample " << i;
  }
  EXPECT_NE(r.tokens[0], r.tokens[1]);
  // greedy samples are all the same
  nc_gen_params g = greedy(12);
  g.num_samples = 4;
  Gen &rg = E.gen(4);
  ASSERT_EQ(E.submit(prompt, g, &rg), NC_OK);
  ASSERT_TRUE(rg.wait());
  for (int i = 1; i < 4; i++) EXPECT_EQ(rg.tokens[i], rg.tokens[0]);
}

// A model that never stops on its own: after <|assistant_start|> it says "a" forever.
struct LoopModel : BigramModel {
  LoopModel() : BigramModel(chain({AS, 'a', 'a'}), 512) {}
};

TEST(Engine, CancelFromCallbackStopsAtOnceAndFreesTheSlot) {
  LoopModel lm;
  Engine E(lm.m, 1, NC_DECODE_F32, 4);
  std::vector<int32_t> prompt = kChatPrompt;
  Gen &a = E.gen(), &b = E.gen();
  a.cancel_at = 5;
  nc_gen_params p = greedy(200);
  ASSERT_EQ(E.submit(prompt, p, &a), NC_OK);
  ASSERT_EQ(E.submit(prompt, greedy(3), &b), NC_OK);  // queued behind a (one slot)
  ASSERT_TRUE(a.wait());
  ASSERT_TRUE(b.wait());
  EXPECT_EQ(a.tokens[0].size(), 5u);
  EXPECT_EQ(a.done[0].finish, NC_FINISH_CANCELLED);
  EXPECT_EQ(a.done[0].completion_tokens, 5);
  EXPECT_FALSE(a.events_after_last);
  EXPECT_EQ(b.done[0].finish, NC_FINISH_LENGTH);  // got the slot afterwards
  EXPECT_EQ(b.tokens[0].size(), 3u);
}

TEST(Engine, CancelFromAnotherThreadFreesTheSlotWithinOneStep) {
  LoopModel lm;
  Engine E(lm.m, 2, NC_DECODE_F32, 4, 5000);
  std::vector<int32_t> prompt = kChatPrompt;
  Gen &a = E.gen();
  uint64_t id = 0;
  std::atomic<uint64_t> steps_at_done{0};
  a.hook = [&](const nc_gen_event &ev) {
    if (ev.kind == NC_GEN_DONE) {
      nc_engine_stats st;
      nc_engine_get_stats(E.e, &st);  // allowed inside callbacks
      steps_at_done = st.decode_steps;
    }
  };
  ASSERT_EQ(E.submit(prompt, greedy(1000), &a, &id), NC_OK);
  ASSERT_GT(id, 0u);
  while (a.ntok() < 10) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  nc_engine_stats st;
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.slots_in_use, 1);
  ASSERT_EQ(nc_engine_cancel(E.e, id), NC_OK);
  const size_t at_cancel = a.ntok();
  const uint64_t steps_at_cancel = st.decode_steps;
  ASSERT_TRUE(a.wait());
  EXPECT_LE(a.tokens[0].size(), at_cancel + 1);  // at most the event in flight
  EXPECT_EQ(a.done[0].finish, NC_FINISH_CANCELLED);
  // stats were read before the cancel; allow the step running then and the one in flight
  EXPECT_LE(steps_at_done.load(), steps_at_cancel + 3);
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.slots_in_use, 0);
  EXPECT_EQ(st.requests_active, 0);
  EXPECT_EQ(nc_engine_cancel(E.e, id), NC_ENOTFOUND);  // forgotten after its last event
  EXPECT_EQ(nc_engine_cancel(E.e, 0), NC_ENOTFOUND);
}

TEST(Engine, QueueLimitGivesBusyAndQueuedCancelDrops) {
  LoopModel lm;
  Engine E(lm.m, 1, NC_DECODE_F32, 2, 5000);
  std::vector<int32_t> prompt = kChatPrompt;
  Gen &a = E.gen(), &b = E.gen(), &c = E.gen(), &d = E.gen(), &d2 = E.gen();
  uint64_t ida, idb;
  ASSERT_EQ(E.submit(prompt, greedy(4000), &a, &ida), NC_OK);
  ASSERT_EQ(E.submit(prompt, greedy(2), &b, &idb), NC_OK);
  ASSERT_EQ(E.submit(prompt, greedy(2), &c), NC_OK);
  EXPECT_EQ(E.submit(prompt, greedy(2), &d), NC_EBUSY);
  EXPECT_NE(std::string(E.msg).find("queue"), std::string::npos) << E.msg;
  nc_engine_stats st;
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.slots_total, 1);
  EXPECT_EQ(st.slots_in_use, 1);
  EXPECT_EQ(st.queue_depth, 2);
  EXPECT_EQ(st.queue_limit, 2);
  ASSERT_EQ(nc_engine_cancel(E.e, idb), NC_OK);
  ASSERT_TRUE(b.wait());
  EXPECT_EQ(b.done.size(), 1u);
  EXPECT_EQ(b.done[0].finish, NC_FINISH_CANCELLED);
  EXPECT_EQ(b.done[0].completion_tokens, 0);
  EXPECT_TRUE(b.tokens[0].empty());
  ASSERT_EQ(E.submit(prompt, greedy(2), &d2), NC_OK);  // room again
  ASSERT_EQ(nc_engine_cancel(E.e, ida), NC_OK);
  ASSERT_TRUE(a.wait());
  ASSERT_TRUE(c.wait());
  ASSERT_TRUE(d2.wait());
  EXPECT_EQ(c.done[0].finish, NC_FINISH_LENGTH);
  EXPECT_EQ(d2.done[0].finish, NC_FINISH_LENGTH);
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.queue_depth, 0);
  EXPECT_EQ(st.requests_finished, 4u);
}

TEST(Engine, LimitsAndBadRequestsRejectedAtSubmit) {
  RandomModel rm(32);
  Engine E(rm.m, 2, NC_DECODE_F32);
  ASSERT_EQ(nc_engine_context(E.e), 32);
  Gen &r = E.gen();
  std::vector<int32_t> p30 = nct::random_ids(30, NTOK, 10);
  EXPECT_EQ(E.submit(p30, greedy(3), &r), NC_EINVAL);
  EXPECT_NE(std::string(E.msg).find("exceeds the context of 32"), std::string::npos) << E.msg;
  EXPECT_EQ(E.submit(p30, greedy(2), &r), NC_OK) << E.msg;  // 30 + 2 fits
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(r.tokens[0].size(), 2u);
  Gen &x = E.gen();
  std::vector<int32_t> empty, bad = {1, NTOK};
  EXPECT_EQ(E.submit(empty, greedy(2), &x), NC_EINVAL);
  EXPECT_EQ(E.submit(bad, greedy(2), &x), NC_EINVAL);
  EXPECT_NE(std::string(E.msg).find("out of the vocabulary"), std::string::npos);
  nc_gen_params p = greedy(0);
  EXPECT_EQ(E.submit(p30, p, &x), NC_EINVAL);
  p = greedy(2);
  p.num_samples = 3;  // > slots
  EXPECT_EQ(E.submit(p30, p, &x), NC_EINVAL);
  p = greedy(2);
  p.sampling.temperature = NAN;
  EXPECT_EQ(E.submit(p30, p, &x), NC_EINVAL);
  p = greedy(2);
  p.sampling.top_p = 0.0f;
  EXPECT_EQ(E.submit(p30, p, &x), NC_EINVAL);
  p = greedy(2);
  p.mode = (nc_gen_mode)9;
  EXPECT_EQ(E.submit(p30, p, &x), NC_EINVAL);
  p = greedy(2);
  EXPECT_EQ(nc_engine_submit(E.e, p30.data(), 30, &p, nullptr, nullptr, nullptr, E.msg, sizeof E.msg), NC_EINVAL);
  EXPECT_EQ(nc_engine_submit(nullptr, p30.data(), 30, &p, Gen::cb, &x, nullptr, nullptr, 0), NC_EINVAL);
  nc_engine_stats st;
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.queue_depth, 0);
  EXPECT_EQ(st.requests_active, 0);
  EXPECT_EQ(st.requests_finished, 1u);
}

TEST(Engine, BadConfigRejected) {
  RandomModel rm(32);
  nc_engine *e = (nc_engine *)0x1;
  char msg[128];
  nc_engine_config c = nc_engine_config_default();
  c.tok = tok();
  c.sp = SP;
  auto bad = [&](nc_engine_config cc, const char *what) {
    EXPECT_EQ(nc_engine_create(rm.m, &cc, &e, msg, sizeof msg), NC_EINVAL) << what;
    EXPECT_EQ(e, nullptr);
    EXPECT_GT(strlen(msg), 0u) << what;
  };
  nc_engine_config x = c;
  x.slots = 0;
  bad(x, "slots 0");
  x = c;
  x.slots = NC_ENGINE_MAX_SLOTS + 1;
  bad(x, "too many slots");
  x = c;
  x.queue_limit = -1;
  bad(x, "queue");
  x = c;
  x.context = 321;  // > 10 * sequence_len
  bad(x, "context");
  x = c;
  x.weights = (nc_decode_weights)5;
  bad(x, "weights");
  x = c;
  x.kv = (nc_engine_kv)7;
  bad(x, "KV cache precision");
  x = c;
  x.tok.decode = nullptr;
  bad(x, "tokenizer");
  x = c;
  x.sp.python_end = NTOK;
  bad(x, "special id");
  EXPECT_EQ(nc_engine_create(nullptr, &c, &e, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(nc_engine_create(rm.m, &c, nullptr, msg, sizeof msg), NC_EINVAL);
  nc_engine_free(nullptr);
}

// Chat rendering for completion through the engine helper: nanochat's render_for_completion
// (system merged, <|assistant_start|> primed) and the context check before anything else.
TEST(Engine, RenderChatPrimesAssistantAndChecksContext) {
  RandomModel rm(32);
  Engine E(rm.m, 1, NC_DECODE_F32);
  nc_chat_msg msgs[] = {{NC_ROLE_SYSTEM, "S", 1, nullptr, 0},
                        {NC_ROLE_USER, "hi", 2, nullptr, 0},
                        {NC_ROLE_ASSISTANT, "yo", 2, nullptr, 0},
                        {NC_ROLE_USER, "x", 1, nullptr, 0}};
  nc_token_buf b{};
  char msg[256];
  ASSERT_EQ(nc_engine_render_chat(E.e, msgs, 4, 8, &b, msg, sizeof msg), NC_OK) << msg;
  std::vector<int32_t> ids(b.ids, b.ids + b.n);
  std::vector<int32_t> want = {BOS, US, 'S', '\n', '\n', 'h', 'i', UE, AS, 'y', 'o', AE, US, 'x', UE, AS};
  EXPECT_EQ(ids, want);
  std::vector<uint8_t> mask(b.mask, b.mask + b.n), wmask = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0};
  EXPECT_EQ(mask, wmask);
  const size_t n = b.n;
  // 16 prompt tokens + 17 > 32: rejected, buffer unchanged
  EXPECT_EQ(nc_engine_render_chat(E.e, msgs, 4, 17, &b, msg, sizeof msg), NC_EINVAL);
  EXPECT_NE(std::string(msg).find("exceeds the context"), std::string::npos) << msg;
  EXPECT_EQ(b.n, n);
  EXPECT_EQ(nc_engine_render_chat(E.e, msgs, 4, 0, &b, msg, sizeof msg), NC_EINVAL);
  // conversation ending with the assistant is not a completion request
  EXPECT_EQ(nc_engine_render_chat(E.e, msgs, 3, 4, &b, msg, sizeof msg), NC_EINVAL);
  EXPECT_EQ(b.n, n);
  nc_token_buf_free(&b);
}

std::string names(const std::vector<int32_t> &t) {
  std::string s;
  for (int32_t x : t) s += x < 256 ? std::string(1, (char)x) : std::string(kNames[x - 256]);
  return s;
}

TEST(Engine, ToolCallInjectsForcedOutput) {
  std::map<int, int> succ = chain({AS, PS, '1', '+', '2', PE, 'z'});
  succ['z'] = AE;
  succ[OE] = 'o';
  succ['o'] = 'k';
  succ['k'] = AE;
  BigramModel m(succ);
  Engine E(m.m, 2, NC_DECODE_BF16);
  nc_gen_params p = greedy(40, NC_GEN_CHAT);
  p.tools = 1;
  Gen &r = E.gen();
  ASSERT_EQ(E.submit(kChatPrompt, p, &r), NC_OK) << E.msg;
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(names(r.tokens[0]), "<|python_start|>1+2<|python_end|><|output_start|>3<|output_end|>ok");
  std::vector<int32_t> f = r.forced[0], wf = {0, 0, 0, 0, 0, 1, 1, 1, 0, 0};
  EXPECT_EQ(f, wf);
  EXPECT_EQ(r.done[0].finish, NC_FINISH_STOP);
  EXPECT_EQ(r.done[0].tool_calls, 1);
  EXPECT_EQ(r.done[0].completion_tokens, 10);
  EXPECT_EQ(r.text[0], names(r.tokens[0]));
  // tools off: the python tokens are plain tokens and nothing is injected
  Gen &off = E.gen();
  p.tools = 0;
  ASSERT_EQ(E.submit(kChatPrompt, p, &off), NC_OK);
  ASSERT_TRUE(off.wait());
  EXPECT_EQ(names(off.tokens[0]), "<|python_start|>1+2<|python_end|>z");
  EXPECT_EQ(off.done[0].tool_calls, 0);
}

TEST(Engine, ToolErrorBecomesObservation) {
  std::map<int, int> succ = chain({AS, PS, '7', '/', '0', PE});
  succ[OE] = AE;
  BigramModel m(succ);
  Engine E(m.m, 1, NC_DECODE_F32);
  nc_gen_params p = greedy(40, NC_GEN_CHAT);
  p.tools = 1;
  Gen &r = E.gen();
  ASSERT_EQ(E.submit(kChatPrompt, p, &r), NC_OK);
  ASSERT_TRUE(r.wait());
  EXPECT_EQ(names(r.tokens[0]), "<|python_start|>7/0<|python_end|><|output_start|>error<|output_end|>");
  EXPECT_EQ(r.done[0].tool_calls, 1);
  EXPECT_EQ(r.done[0].finish, NC_FINISH_STOP);
}

// faults.md row 40: an unterminated <|python_start|> (or endlessly nested starts) never runs the
// tool, and generation ends at max_tokens.
TEST(Engine, UnterminatedAndNestedToolCallsEndAtMaxTokens) {
  for (int nested = 0; nested < 2; nested++) {
    std::map<int, int> succ = nested ? chain({AS, PS, 'a', PS}) : chain({AS, PS, '1', '1'});
    BigramModel m(succ);
    Engine E(m.m, 1, NC_DECODE_BF16, 4, 400);
    nc_gen_params p = greedy(300, NC_GEN_CHAT);
    p.tools = 1;
    Gen &r = E.gen();
    ASSERT_EQ(E.submit(kChatPrompt, p, &r), NC_OK) << E.msg;
    ASSERT_TRUE(r.wait());
    EXPECT_EQ(r.tokens[0].size(), 300u);
    EXPECT_EQ(r.done[0].finish, NC_FINISH_LENGTH);
    EXPECT_EQ(r.done[0].tool_calls, 0);
    EXPECT_EQ(std::count(r.tokens[0].begin(), r.tokens[0].end(), (int32_t)OS), 0);
    EXPECT_EQ(std::count(r.forced[0].begin(), r.forced[0].end(), 1), 0);
    EXPECT_EQ(r.tokens[0][0], PS);
  }
}

// Byte-level tokens split characters: deltas hold back incomplete characters, invalid bytes
// become U+FFFD at once, a character still open at the end is flushed as U+FFFD.
TEST(Engine, Utf8StreamingNeverSplitsACodePoint) {
  std::vector<int> script = {AS, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9D, 0x84, 0x9E, 'a', 0xFF, 'b', 0xF1, 0x80};
  BigramModel m(chain(script));
  Engine E(m.m, 1, NC_DECODE_F32);
  Gen &r = E.gen();
  std::vector<std::string> deltas;
  r.hook = [&](const nc_gen_event &ev) { deltas.push_back(std::string(ev.text, ev.text_len)); };
  ASSERT_EQ(E.submit(kChatPrompt, greedy(14, NC_GEN_CHAT), &r), NC_OK);
  ASSERT_TRUE(r.wait());
  ASSERT_EQ(r.tokens[0].size(), 14u);
  EXPECT_TRUE(r.deltas_valid);
  std::vector<std::string> want = {"", "\xC3\xA9", "", "", "\xE2\x82\xAC", "", "", "", "\xF0\x9D\x84\x9E",
                                   "a", "\xEF\xBF\xBD", "b", "", "", "\xEF\xBF\xBD"};
  EXPECT_EQ(deltas, want);
  EXPECT_EQ(r.text[0], "\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E" "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  EXPECT_EQ(r.done[0].text, "\xEF\xBF\xBD");
}

// Random byte tokens from a random model: every delta is valid UTF-8 and their concatenation is
// the replacement decoding of all the bytes (ect::reference_replace, a separate simple decoder).
TEST(Engine, Utf8StreamingOfRandomBytes) {
  RandomModel rm(256);
  Engine E(rm.m, 2, NC_DECODE_BF16);
  size_t total = 0;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    Gen &r = E.gen();
    nc_gen_params p = sampled(200, seed);
    p.sampling.top_k = 0;
    p.sampling.temperature = 2.0f;
    ASSERT_EQ(E.submit(nct::random_ids(3, 256, seed), p, &r), NC_OK);
    ASSERT_TRUE(r.wait());
    std::string raw;
    for (int32_t t : r.tokens[0]) raw += t < 256 ? std::string(1, (char)t) : std::string(kNames[t - 256]);
    EXPECT_TRUE(r.deltas_valid);
    EXPECT_EQ(r.text[0], reference_replace(raw));
    total += r.tokens[0].size();
  }
  EXPECT_GT(total, 100u);
}

// faults.md row 41: NaN weights -> an error finish, no token, no hang.
TEST(Engine, NonFiniteLogitsFinishWithError) {
  RandomModel rm;
  nc_model_param_buffer(rm.m, nullptr)[nc_model_get_layout(rm.m)->lm_head + 64 * 5] = NAN;
  Engine E(rm.m, 2, NC_DECODE_BF16);
  Gen &r = E.gen();
  ASSERT_EQ(E.submit(nct::random_ids(5, NTOK, 3), sampled(10, 1), &r), NC_OK);
  ASSERT_TRUE(r.wait());
  EXPECT_TRUE(r.tokens[0].empty());
  EXPECT_EQ(r.done[0].finish, NC_FINISH_ERROR);
  EXPECT_EQ(r.done[0].error, NC_ERANGE);
  EXPECT_EQ(r.done[0].message, "non-finite logits");
  nc_engine_stats st;
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.slots_in_use, 0);
}

TEST(Engine, FreeWithLiveRequestsCancelsThem) {
  LoopModel lm;
  std::vector<std::unique_ptr<Gen>> runs;
  for (int i = 0; i < 4; i++) runs.push_back(std::make_unique<Gen>());
  {
    Engine E(lm.m, 2, NC_DECODE_BF16, 8, 5000);
    for (auto &r : runs) ASSERT_EQ(E.submit(kChatPrompt, greedy(4000), r.get()), NC_OK);
    while (runs[0]->ntok() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }  // nc_engine_free
  for (auto &r : runs) {
    ASSERT_TRUE(r->finished);
    ASSERT_EQ(r->done.size(), 1u);
    EXPECT_EQ(r->done[0].finish, NC_FINISH_CANCELLED);
    EXPECT_TRUE(r->done[0].last);
  }
  EXPECT_TRUE(runs[3]->tokens[0].empty());  // was still queued
}

TEST(Engine, ManyConcurrentSubmittersAndCancellers) {
  LoopModel lm;
  Engine E(lm.m, 4, NC_DECODE_BF16, 64);
  const int N = 24;
  std::vector<Gen *> runs;
  for (int i = 0; i < N; i++) runs.push_back(&E.gen());
  std::vector<uint64_t> ids(N);
  std::vector<std::thread> th;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; t++)
    th.emplace_back([&, t] {
      for (int i = t; i < N; i += 4) {
        char msg[128];  // one per thread (E.msg is not shared across threads)
        nc_gen_params p = greedy(10 + i, NC_GEN_CHAT);
        if (nc_engine_submit(E.e, kChatPrompt.data(), (int)kChatPrompt.size(), &p, Gen::cb, runs[i],
                             &ids[i], msg, sizeof msg) != NC_OK)
          bad++;
        if (i % 3 == 0) nc_engine_cancel(E.e, ids[i]);
      }
    });
  for (auto &x : th) x.join();
  EXPECT_EQ(bad.load(), 0);
  for (int i = 0; i < N; i++) {
    ASSERT_TRUE(runs[i]->wait()) << i;
    EXPECT_FALSE(runs[i]->events_after_last);
    if (i % 3) {
      EXPECT_EQ(runs[i]->done[0].finish, NC_FINISH_LENGTH) << i;
      EXPECT_EQ(runs[i]->tokens[0].size(), (size_t)(10 + i));
    }
  }
  nc_engine_stats st;
  nc_engine_get_stats(E.e, &st);
  EXPECT_EQ(st.requests_finished, (uint64_t)N);
  EXPECT_EQ(st.slots_in_use, 0);
}

}  // namespace
