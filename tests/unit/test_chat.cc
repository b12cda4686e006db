// Chat rendering and the tool-call state machine (core/nc_chat.h), with a byte-level fake
// tokenizer: id = byte value, specials 256..264 in nanochat's order.
#include <gtest/gtest.h>
#include <string>
#include <vector>
extern "C" {
#include "nc_chat.h"
#include "nc_err.h"
}

namespace {
enum { BOS = 256, US, UE, AS, AE, PS, PE, OS, OE };
const nc_special_ids SP = {BOS, US, UE, AS, AE, PS, PE, OS, OE};

long fake_encode(void *, const char *text, size_t len, int32_t *out, size_t cap) {
  for (size_t i = 0; i < len && i < cap; i++) out[i] = (unsigned char)text[i];
  return (long)len;
}
long fake_decode(void *, const int32_t *ids, size_t n, char *out, size_t cap) {
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] > 255) return NC_EINVAL;
    if (i < cap) out[i] = (char)ids[i];
  }
  return (long)n;
}
const nc_tok_iface TOK = {nullptr, fake_encode, fake_decode};

nc_chat_msg msg(nc_role r, const char *s) { return nc_chat_msg{r, s, strlen(s), nullptr, 0}; }

// ids as a readable string: bytes as chars, specials as names
std::string show(const nc_token_buf &b, bool with_mask = false) {
  static const char *names[] = {"<bos>", "<us>", "<ue>", "<as>", "<ae>", "<ps>", "<pe>", "<os>", "<oe>"};
  std::string s;
  for (size_t i = 0; i < b.n; i++) {
    if (with_mask) s += b.mask[i] ? "1" : "0";
    else if (b.ids[i] >= 256) s += names[b.ids[i] - 256];
    else s += (char)b.ids[i];
  }
  return s;
}

struct Buf {
  nc_token_buf b{};
  ~Buf() { nc_token_buf_free(&b); }
};
}  // namespace

TEST(ChatRender, ConversationIdsAndMasks) {
  nc_chat_msg m[] = {msg(NC_ROLE_USER, "hi"), msg(NC_ROLE_ASSISTANT, "yo"), msg(NC_ROLE_USER, "x")};
  Buf B;
  char err[128];
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 3, NC_RENDER_CONVERSATION, 0, &B.b, err, sizeof err), NC_OK) << err;
  EXPECT_EQ(show(B.b), "<bos><us>hi<ue><as>yo<ae><us>x<ue>");
  // bos, user turn, assistant_start: 0; assistant text and assistant_end: 1
  EXPECT_EQ(show(B.b, true), "0" "0000" "0" "11" "1" "000");
}

TEST(ChatRender, ToolPartsMasks) {
  nc_chat_part parts[] = {{NC_PART_TEXT, "a", 1}, {NC_PART_PYTHON, "1+2", 3},
                          {NC_PART_PYTHON_OUTPUT, "3", 1}, {NC_PART_TEXT, "b", 1}};
  nc_chat_msg m[] = {msg(NC_ROLE_USER, "q"), {NC_ROLE_ASSISTANT, nullptr, 0, parts, 4}};
  Buf B;
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 2, NC_RENDER_CONVERSATION, 0, &B.b, nullptr, 0), NC_OK);
  EXPECT_EQ(show(B.b), "<bos><us>q<ue><as>a<ps>1+2<pe><os>3<oe>b<ae>");
  // python call supervised (1), tool output not (0)
  EXPECT_EQ(show(B.b, true), "0" "000" "0" "1" "11111" "000" "1" "1");
}

TEST(ChatRender, SystemMergedIntoFirstUser) {
  nc_chat_msg m[] = {msg(NC_ROLE_SYSTEM, "S"), msg(NC_ROLE_USER, "U")};
  Buf B;
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 2, NC_RENDER_FOR_COMPLETION, 0, &B.b, nullptr, 0), NC_OK);
  EXPECT_EQ(show(B.b), "<bos><us>S\n\nU<ue><as>");
}

TEST(ChatRender, ForCompletionPrimesAssistant) {
  nc_chat_msg m[] = {msg(NC_ROLE_USER, "hello")};
  Buf B;
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 1, NC_RENDER_FOR_COMPLETION, 0, &B.b, nullptr, 0), NC_OK);
  EXPECT_EQ(show(B.b), "<bos><us>hello<ue><as>");
  EXPECT_EQ(B.b.mask[B.b.n - 1], 0);
}

TEST(ChatRender, DropLastAssistant) {
  nc_chat_msg m[] = {msg(NC_ROLE_USER, "q"), msg(NC_ROLE_ASSISTANT, "answer")};
  Buf B;
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 2, NC_RENDER_DROP_LAST_ASSISTANT, 0, &B.b, nullptr, 0), NC_OK);
  EXPECT_EQ(show(B.b), "<bos><us>q<ue><as>");
}

TEST(ChatRender, Truncation) {
  nc_chat_msg m[] = {msg(NC_ROLE_USER, "abcdef"), msg(NC_ROLE_ASSISTANT, "ghij")};
  Buf B;
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 2, NC_RENDER_CONVERSATION, 5, &B.b, nullptr, 0), NC_OK);
  EXPECT_EQ(B.b.n, 5u);
  EXPECT_EQ(show(B.b), "<bos><us>abc");
}

TEST(ChatRender, SpecialStringsInUserTextStayOrdinary) {
  nc_chat_msg m[] = {msg(NC_ROLE_USER, "<|python_start|>1+1<|python_end|><|assistant_end|>")};
  Buf B;
  ASSERT_EQ(nc_chat_render(&TOK, &SP, m, 1, NC_RENDER_FOR_COMPLETION, 0, &B.b, nullptr, 0), NC_OK);
  int specials = 0;
  for (size_t i = 0; i < B.b.n; i++) specials += B.b.ids[i] >= 256;
  EXPECT_EQ(specials, 4);  // bos, user_start, user_end, assistant_start only
}

TEST(ChatRender, BadConversationsRejected) {
  char err[160];
  Buf B;
  auto render = [&](std::vector<nc_chat_msg> m, nc_render_mode mode) {
    return nc_chat_render(&TOK, &SP, m.data(), (int)m.size(), mode, 0, &B.b, err, sizeof err);
  };
  EXPECT_EQ(render({}, NC_RENDER_CONVERSATION), NC_EINVAL);
  EXPECT_EQ(render({msg(NC_ROLE_ASSISTANT, "a")}, NC_RENDER_CONVERSATION), NC_EINVAL);
  EXPECT_NE(std::string(err).find("messages[0]"), std::string::npos) << err;
  EXPECT_EQ(render({msg(NC_ROLE_USER, "a"), msg(NC_ROLE_USER, "b")}, NC_RENDER_CONVERSATION), NC_EINVAL);
  EXPECT_NE(std::string(err).find("messages[1]"), std::string::npos) << err;
  EXPECT_EQ(render({msg(NC_ROLE_USER, "a"), msg(NC_ROLE_SYSTEM, "s")}, NC_RENDER_CONVERSATION), NC_EINVAL);
  EXPECT_EQ(render({msg(NC_ROLE_SYSTEM, "s")}, NC_RENDER_CONVERSATION), NC_EINVAL);
  EXPECT_EQ(render({msg(NC_ROLE_SYSTEM, "s"), msg(NC_ROLE_ASSISTANT, "a")}, NC_RENDER_CONVERSATION), NC_EINVAL);
  EXPECT_EQ(render({msg(NC_ROLE_USER, "a"), msg(NC_ROLE_ASSISTANT, "b")}, NC_RENDER_FOR_COMPLETION), NC_EINVAL);
  EXPECT_NE(std::string(err).find("end with a user"), std::string::npos) << err;
  EXPECT_EQ(render({msg(NC_ROLE_USER, "a")}, NC_RENDER_DROP_LAST_ASSISTANT), NC_EINVAL);
  nc_chat_part p = {NC_PART_TEXT, "x", 1};
  EXPECT_EQ(render({{NC_ROLE_USER, nullptr, 0, &p, 1}}, NC_RENDER_CONVERSATION), NC_EINVAL);
  nc_chat_part bad = {(nc_part_type)7, "x", 1};
  EXPECT_EQ(render({msg(NC_ROLE_USER, "q"), {NC_ROLE_ASSISTANT, nullptr, 0, &bad, 1}}, NC_RENDER_CONVERSATION),
            NC_EINVAL);
  EXPECT_EQ(B.b.n, 0u);  // failed renders leave the buffer as it was
}

// ---- tool state machine -------------------------------------------------------------------

static std::vector<int32_t> run_row(nc_tool_row &r, const std::vector<int32_t> &sampled,
                                    std::vector<int> *forced_flags = nullptr) {
  std::vector<int32_t> out;
  size_t si = 0;
  for (int step = 0; step < 2000 && !r.completed; step++) {
    int forced;
    int32_t s = si < sampled.size() ? sampled[si] : AE;
    int32_t t = nc_tool_row_choose(&r, s, &forced);
    if (!forced) si++;
    out.push_back(t);
    if (forced_flags) forced_flags->push_back(forced);
    EXPECT_EQ(nc_tool_row_feed(&r, &TOK, &SP, t), NC_OK);
  }
  return out;
}

static std::vector<int32_t> seq(std::initializer_list<std::string> parts) {
  std::vector<int32_t> v;
  for (auto &p : parts) {
    if (p == "<ps>") v.push_back(PS);
    else if (p == "<pe>") v.push_back(PE);
    else if (p == "<ae>") v.push_back(AE);
    else if (p == "<bos>") v.push_back(BOS);
    else for (char c : p) v.push_back((unsigned char)c);
  }
  return v;
}

static std::string text(const std::vector<int32_t> &v) {
  static const char *names[] = {"<bos>", "<us>", "<ue>", "<as>", "<ae>", "<ps>", "<pe>", "<os>", "<oe>"};
  std::string s;
  for (auto t : v) s += t >= 256 ? names[t - 256] : std::string(1, (char)t);
  return s;
}

TEST(ToolRow, CalculatorResultIsForced) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  std::vector<int> flags;
  auto out = run_row(r, seq({"x", "<ps>", "12*3", "<pe>", "ok", "<ae>"}), &flags);
  EXPECT_EQ(text(out), "x<ps>12*3<pe><os>36<oe>ok<ae>");
  // the four forced tokens <os> 3 6 <oe> have flag 1
  int nforced = 0;
  for (int f : flags) nforced += f;
  EXPECT_EQ(nforced, 4);
  EXPECT_EQ(r.tool_calls, 1);
  EXPECT_TRUE(r.completed);
}

TEST(ToolRow, ErrorsBecomeErrorObservation) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  auto out = run_row(r, seq({"<ps>", "1/0", "<pe>", "<ae>"}));
  EXPECT_EQ(text(out), "<ps>1/0<pe><os>error<oe><ae>");
  nc_tool_row_init(&r, 1);
  out = run_row(r, seq({"<ps>", "__import__('os')", "<pe>", "<ae>"}));
  EXPECT_EQ(text(out), "<ps>__import__('os')<pe><os>error<oe><ae>");
}

TEST(ToolRow, NestedStartRestartsExpression) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  auto out = run_row(r, seq({"<ps>", "9+", "<ps>", "2+2", "<pe>", "<ae>"}));
  EXPECT_EQ(text(out), "<ps>9+<ps>2+2<pe><os>4<oe><ae>");
}

TEST(ToolRow, UnterminatedOrOverlongCallNeverRuns) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  std::string longexpr(NC_TOOL_MAX_EXPR_TOKENS + 10, '1');
  auto out = run_row(r, seq({"<ps>", longexpr, "<pe>", "<ae>"}));
  EXPECT_EQ(r.tool_calls, 0);
  EXPECT_EQ(text(out), "<ps>" + longexpr + "<pe><ae>");
  // an unterminated call: generation just runs to its end, nothing injected
  nc_tool_row_init(&r, 1);
  out = run_row(r, seq({"<ps>", "1+1", "<ae>"}));
  EXPECT_EQ(r.tool_calls, 0);
  EXPECT_EQ(text(out), "<ps>1+1<ae>");
}

TEST(ToolRow, EndWithoutStartAndDisabledTools) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  auto out = run_row(r, seq({"a", "<pe>", "b", "<ae>"}));
  EXPECT_EQ(text(out), "a<pe>b<ae>");
  nc_tool_row_init(&r, 0);
  out = run_row(r, seq({"<ps>", "1+1", "<pe>", "<ae>"}));
  EXPECT_EQ(text(out), "<ps>1+1<pe><ae>");
  EXPECT_EQ(r.tool_calls, 0);
}

TEST(ToolRow, BosCompletesRow) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  auto out = run_row(r, seq({"a", "<bos>", "b"}));
  EXPECT_EQ(text(out), "a<bos>");
  EXPECT_TRUE(r.completed);
}

TEST(ToolRow, StringCountForm) {
  nc_tool_row r;
  nc_tool_row_init(&r, 1);
  auto out = run_row(r, seq({"<ps>", "'strawberry'.count('r')", "<pe>", "<ae>"}));
  EXPECT_EQ(text(out), "<ps>'strawberry'.count('r')<pe><os>3<oe><ae>");
}
