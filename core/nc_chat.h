/* nc_chat.h — nanochat's chat format: rendering conversations to token ids + training masks,
 * and the per-row tool-call state machine of the inference engine.
 *
 * The tokenizer is reached through a small interface (nc_tok_iface) so this module is
 * independent of how tokens are produced; the service passes the real tokenizer, tests pass
 * tiny fakes.
 *
 * Rendering (nanochat tokenizer.render_conversation / render_for_completion, specs §4.2):
 *   <|bos|>                                                           mask 0
 *   user:      <|user_start|> encode(content) <|user_end|>               mask 0
 *   assistant: <|assistant_start|>                                       mask 0
 *              string content, or parts: text -> encode(text)           mask 1
 *                                        python -> <|python_start|> encode <|python_end|>  mask 1
 *                                        python_output -> <|output_start|> encode <|output_end|>  mask 0
 *              <|assistant_end|>                                         mask 1
 * An optional leading system message is merged into the first user message as
 * system + "\n\n" + user. Roles must then strictly alternate user, assistant, ... starting with
 * user. For completion (serving, RL, eval) the conversation must end with a user message and
 * <|assistant_start|> is appended (the iii worker forgot this: defect D1).
 * Content is always encoded as ORDINARY text: a user typing "<|python_start|>" gets ordinary
 * tokens, never the special id (faults.md row 12).
 */
#ifndef NC_CHAT_H
#define NC_CHAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tokenizer interface ------------------------------------------------------------------ */

typedef struct nc_tok_iface {
  void *ctx;
  /* Encode `len` bytes of text as ordinary tokens (special-token strings stay ordinary text).
   * Writes at most `cap` ids to `out` and returns the number of ids the text needs (may be
   * > cap: then call again with a larger buffer), or a negative NC_E* code. */
  long (*encode)(void *ctx, const char *text, size_t len, int32_t *out, size_t cap);
  /* Decode ids to raw bytes (no UTF-8 repair). Writes at most `cap` bytes and returns the
   * number of bytes needed, or a negative NC_E* code (e.g. an id out of range). */
  long (*decode)(void *ctx, const int32_t *ids, size_t n, char *out, size_t cap);
} nc_tok_iface;

/* Ids of nanochat's nine special tokens. */
typedef struct nc_special_ids {
  int32_t bos, user_start, user_end, assistant_start, assistant_end;
  int32_t python_start, python_end, output_start, output_end;
} nc_special_ids;

/* ---- conversations ------------------------------------------------------------------------ */

/* Values match proto nanochat.v1.Role / PartType. */
typedef enum nc_role { NC_ROLE_USER = 1, NC_ROLE_ASSISTANT = 2, NC_ROLE_SYSTEM = 3 } nc_role;
typedef enum nc_part_type {
  NC_PART_TEXT = 0,
  NC_PART_PYTHON = 1,
  NC_PART_PYTHON_OUTPUT = 2
} nc_part_type;

typedef struct nc_chat_part {
  nc_part_type type;
  const char *text; /* not owned; `len` bytes */
  size_t len;
} nc_chat_part;

/* A message: `content` (len bytes) OR, for assistant messages only, `parts`. Borrowed. */
typedef struct nc_chat_msg {
  nc_role role;
  const char *content;
  size_t len;
  const nc_chat_part *parts; /* NULL when content is used */
  int n_parts;
} nc_chat_msg;

/* Growable token list with a parallel training mask. Owned by the caller: zero-initialise,
 * then release with nc_token_buf_free. */
typedef struct nc_token_buf {
  int32_t *ids;
  uint8_t *mask;
  size_t n, cap;
} nc_token_buf;

void nc_token_buf_free(nc_token_buf *b);
/* Append one token; NC_OK or NC_ENOMEM. */
int nc_token_buf_push(nc_token_buf *b, int32_t id, uint8_t mask);

typedef enum nc_render_mode {
  /* training: the whole conversation (ends with an assistant message or not) */
  NC_RENDER_CONVERSATION = 0,
  /* serving: ends with a user message; <|assistant_start|> appended (mask 0) */
  NC_RENDER_FOR_COMPLETION = 1,
  /* eval/RL from a dataset: drop the final assistant message, then as FOR_COMPLETION */
  NC_RENDER_DROP_LAST_ASSISTANT = 2,
} nc_render_mode;

/* Render `msgs[0..n)` into `out` (appended after anything already there).
 * `max_tokens` > 0 truncates ids and mask to that many tokens (nanochat's training rule);
 * 0 means no truncation (serving checks the length against the context itself).
 * Returns NC_OK, or NC_EINVAL with a reason in `err` (empty list, system message not first,
 * roles not alternating, user message with parts, conversation ending wrongly for the mode,
 * a part of an unknown type), NC_ENOMEM, or the tokenizer's error. */
int nc_chat_render(const nc_tok_iface *tok, const nc_special_ids *sp, const nc_chat_msg *msgs,
                   int n, nc_render_mode mode, size_t max_tokens, nc_token_buf *out, char *err,
                   size_t errlen);

/* ---- the tool-call state machine (one per generated row) ----------------------------------- */

/* Longest tool expression collected, in tokens; longer calls are abandoned (not run). */
#define NC_TOOL_MAX_EXPR_TOKENS 256
/* Longest forced injection: <|output_start|> + result tokens + <|output_end|>. */
#define NC_TOOL_MAX_FORCED 80

typedef struct nc_tool_row {
  int32_t forced[NC_TOOL_MAX_FORCED]; /* queued tokens to emit instead of sampling */
  int n_forced, forced_pos;
  int in_python;                           /* between <|python_start|> and <|python_end|> */
  int32_t expr[NC_TOOL_MAX_EXPR_TOKENS];   /* expression tokens collected so far */
  int n_expr;
  int expr_overflow;                       /* the call grew past NC_TOOL_MAX_EXPR_TOKENS */
  int completed;                           /* <|assistant_end|> or <|bos|> was emitted */
  int tool_calls;                          /* calls run */
  int tools_enabled;
} nc_tool_row;

/* Reset a row (tools on or off). */
void nc_tool_row_init(nc_tool_row *r, int tools_enabled);

/* Choose the token to emit for this step: the next forced token if one is queued (then
 * *forced = 1 and the training mask is 0), otherwise `sampled` (*forced = 0). */
int32_t nc_tool_row_choose(nc_tool_row *r, int32_t sampled, int *forced);

/* Feed the emitted token through the state machine (nanochat engine RowState semantics):
 * <|assistant_end|>/<|bos|> complete the row; <|python_start|> starts a new expression (a nested
 * start restarts it); <|python_end|> runs the calculator on the decoded expression and queues
 * <|output_start|> result <|output_end|> as forced tokens; a calculator error queues the
 * observation text "error" the same way. An expression longer than NC_TOOL_MAX_EXPR_TOKENS is
 * abandoned: nothing runs when its end arrives (faults.md row 40).
 * Returns NC_OK or a tokenizer error. */
int nc_tool_row_feed(nc_tool_row *r, const nc_tok_iface *tok, const nc_special_ids *sp,
                     int32_t token);

#ifdef __cplusplus
}
#endif
#endif /* NC_CHAT_H */
