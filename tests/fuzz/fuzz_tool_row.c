/* Fuzz target (faults.md target 5): token-id sequences through the engine's tool-call state
 * machine (nc_tool_row, nc_chat.h) with a byte-level tokenizer: unterminated
 * <|python_start|>, nested starts, <|output_*|> emitted by the model, overlong expressions.
 * Each input byte is one sampled token: 0xF7..0xFF are the nine specials, other bytes ordinary
 * byte tokens. Invariants: forced tokens are exactly <|output_start|> text <|output_end|>
 * with the text at most NC_CALC_MAX_OUTPUT bytes, queues stay in bounds, every error is a
 * tokenizer error code, and a row with tools off never forces anything. */
#include <stdint.h>
#include <string.h>

#include "nc_calc.h"
#include "nc_chat.h"
#include "nc_err.h"

enum { BOS = 256, US, UE, AS, AE, PS, PE, OS, OE };
static const nc_special_ids SP = {BOS, US, UE, AS, AE, PS, PE, OS, OE};

static long enc(void *c, const char *t, size_t n, int32_t *out, size_t cap) {
  (void)c;
  for (size_t i = 0; i < n && i < cap; i++) out[i] = (unsigned char)t[i];
  return (long)n;
}

static long dec(void *c, const int32_t *ids, size_t n, char *out, size_t cap) {
  (void)c;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] > 255) return NC_EINVAL; /* specials inside an expression */
    if (i < cap) out[i] = (char)ids[i];
  }
  return (long)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const nc_tok_iface tok = {NULL, enc, dec};
  for (int tools = 0; tools < 2; tools++) {
    nc_tool_row r;
    nc_tool_row_init(&r, tools);
    int in_forced = 0, forced_len = 0, calls = 0;
    for (size_t i = 0; i < size && i < 20000; i++) {
      int32_t sampled = data[i] >= 0xF7 ? BOS + (data[i] - 0xF7) : data[i];
      int forced = 0;
      int32_t t = nc_tool_row_choose(&r, sampled, &forced);
      if (forced) {
        if (!tools) __builtin_trap();
        if (!in_forced && t != OS) __builtin_trap();
        if (in_forced && forced_len > NC_CALC_MAX_OUTPUT + 1) __builtin_trap();
        in_forced = t != OE;
        forced_len = t == OS ? 0 : forced_len + 1;
      } else if (in_forced) {
        __builtin_trap(); /* a queued injection was interrupted */
      } else if (t != sampled) {
        __builtin_trap();
      }
      int rc = nc_tool_row_feed(&r, &tok, &SP, t);
      if (rc != NC_OK && rc != NC_EINVAL) __builtin_trap();
      if (r.n_forced > NC_TOOL_MAX_FORCED || r.forced_pos > r.n_forced || r.n_forced < 0) __builtin_trap();
      if (r.n_expr < 0 || r.n_expr > NC_TOOL_MAX_EXPR_TOKENS) __builtin_trap();
      if (r.tool_calls < calls || r.tool_calls > calls + 1) __builtin_trap();
      calls = r.tool_calls;
      if (rc != NC_OK) break; /* the engine ends the row on a tokenizer error */
    }
    if (!tools && r.tool_calls) __builtin_trap();
  }
  return 0;
}
