/* nc_chatreq.h — Chat.* request handling that needs no engine: chat_web's limits, the
 * conversation (stored session + new turns) as nc_chat_msg, and the reply as content parts.
 *
 * Limits (nanochat chat_web, specs §9.2; the dispatch gate already enforces the proto limits:
 * 1..500 messages, content <= 8000 bytes, <= 64 parts of <= 32000 bytes, UTF-8, enums):
 *   every message has a role (user, assistant, or system — only first, merged by the renderer);
 *   content XOR parts; parts only on assistant messages; content non-empty; all contents and
 *   part texts together <= NC_CHAT_MAX_TOTAL_BYTES. Violations are NC_EINVAL with a message
 *   naming the field ("messages[2].content: must not be empty"), never echoing content.
 */
#ifndef NC_CHATREQ_H
#define NC_CHATREQ_H

#include <stddef.h>
#include <stdint.h>

#include "nanochat/v1/chat.pb-c.h"
#include "nanochat/v1/common.pb-c.h"
#include "nc_chat.h"
#include "nc_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_CHAT_MAX_TOTAL_BYTES 32000
#define NC_CHAT_DEFAULT_MAX_TOKENS 2048   /* max_tokens unset: up to this, clipped to the context */

/* Checks the request against the limits above. NC_OK or NC_EINVAL with err. */
int nc_chatreq_check(const Nanochat__V1__ChatRequest *r, char *err, size_t errlen);

/* The conversation to render: the stored session's messages (may be NULL) followed by the
 * request's. *msgs and *parts are malloc'd arrays (caller frees both with free()) that BORROW
 * every string from `stored` and `r`. NC_OK, NC_ENOMEM, NC_EINVAL (a stored message with an
 * unknown role: err). */
int nc_chatreq_conversation(const Nanochat__V1__Session *stored, const Nanochat__V1__ChatRequest *r,
                            nc_chat_msg **msgs, nc_chat_part **parts, int *n, char *err, size_t errlen);

/* The assistant reply as nanochat content parts, from its tokens: text, python
 * (<|python_start|> ... <|python_end|>), python_output (<|output_start|> ... <|output_end|>),
 * each decoded without its special tokens. Only when the reply holds a tool call: otherwise
 * *n_parts = 0 and *parts = NULL. Free with nc_chatreq_parts_free. NC_OK or NC_ENOMEM / a
 * tokenizer error. */
int nc_chatreq_reply_parts(const nc_tokenizer *tok, const nc_special_ids *sp, const uint32_t *ids,
                           size_t n, Nanochat__V1__ContentPart ***parts, size_t *n_parts);
void nc_chatreq_parts_free(Nanochat__V1__ContentPart **parts, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* NC_CHATREQ_H */
