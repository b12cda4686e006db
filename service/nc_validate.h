/* nc_validate.h — the generic request validator of the dispatch gate, plus the bounded
 * protobuf-c allocator every request is unpacked with.
 *
 * One validator serves every method: it walks a message using the generated field rules
 * (nc_rpc.h, from the (nanochat.v1.limits) options) and enforces, recursively through
 * sub-messages and repeated fields:
 *   - numeric ranges (min/max) and finiteness of every float/double;
 *   - enum values the enum declares;
 *   - string/bytes lengths (max_len), non-empty (nonempty), identifier syntax (ident);
 *   - repeated element counts (min_count/max_count, nonempty);
 *   - valid UTF-8 without NUL bytes in EVERY string field, with or without a rule.
 * Errors name the field path and the broken rule, never the value, e.g.
 *   "messages[3].content: invalid UTF-8"
 *   "temperature: must be in [0, 2]"
 *
 * Why it needs the wire bytes too: protobuf-c copies a string into a NUL-terminated char*,
 * so a string with an embedded NUL looks shorter than it is after unpacking ("a\0\xff" reads
 * as "a"). Strings and bytes are therefore checked on the wire encoding (true length, every
 * byte), everything else on the unpacked struct.
 */
#ifndef NC_VALIDATE_H
#define NC_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nc_rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest field path reported; deeper paths are cut with "...". */
#define NC_VALIDATE_PATH_MAX 200

/* Validates `msg` (unpacked from exactly `wire`/`wire_len` with rules->desc) against `rules`.
 * Returns NC_OK, or NC_EINVAL with a NUL-terminated "<path>: <problem>" message in
 * err[errlen] (errlen >= 1). Never allocates; reads only. */
int nc_validate_message(const nc_msg_rules *rules, const ProtobufCMessage *msg,
                        const uint8_t *wire, size_t wire_len, char *err, size_t errlen);

/* True when s[0..len) is valid UTF-8 (RFC 3629: shortest form, no surrogates, <= U+10FFFF)
 * and contains no NUL byte. */
bool nc_text_valid(const uint8_t *s, size_t len);

/* Identifier syntax of the `ident` limit: 1..max_len bytes of [A-Za-z0-9_.-], not starting
 * with '.' or '-' (so never ".", "..", a hidden file or an option-looking word). */
bool nc_ident_valid(const char *s, size_t len, size_t max_len);

/* A protobuf-c allocator with a byte budget, so unpacking a request cannot allocate more than
 * `limit` bytes however the request is shaped. Pass &a.base to protobuf_c_message_unpack and
 * to protobuf_c_message_free_unpacked (the same allocator must free what it allocated).
 * Not thread-safe: one message's unpack and free must not run concurrently. */
typedef struct nc_pb_alloc {
  ProtobufCAllocator base;
  size_t used;      /* bytes currently allocated (payload, without headers) */
  size_t peak;
  size_t limit;
  bool exceeded;    /* an allocation was refused because of the budget */
} nc_pb_alloc;

/* Initialises `a` with a budget of `limit` bytes. No resources to release. */
void nc_pb_alloc_init(nc_pb_alloc *a, size_t limit);

/* Budget for unpacking a request of `max_request_bytes` (the method's limit): a multiple of
 * it large enough for the worst protobuf-c expansion (empty sub-messages in repeated fields),
 * never below 64 KiB. */
size_t nc_pb_alloc_budget(uint32_t max_request_bytes);

#ifdef __cplusplus
}
#endif
#endif /* NC_VALIDATE_H */
