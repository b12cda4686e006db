/* nc_utf8.h — streaming UTF-8 repair for token-by-token text output.
 *
 * A BPE token can end in the middle of a multi-byte character (byte-level tokens), so the text
 * of each new token cannot be sent on its own (defect D3 of the iii worker). A stream takes the
 * raw bytes of each token as they come and returns only complete, valid UTF-8:
 *  - a trailing sequence that is a valid prefix of a character is held back until it completes;
 *  - bytes that can never be valid UTF-8 are replaced by U+FFFD at once, one per "maximal
 *    subpart" (Unicode §3.9, the WHATWG / Python errors="replace" rule), so the output equals
 *    decoding the concatenated bytes with replacement, however the bytes are split;
 *  - nc_utf8_flush at the end turns a held-back incomplete character into one U+FFFD.
 * Well-formed sequences follow Unicode Table 3-7 (no overlongs, no surrogates, <= U+10FFFF).
 * Plain value type, no allocation, no global state.
 */
#ifndef NC_UTF8_H
#define NC_UTF8_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_utf8_stream {
  unsigned char pend[4]; /* held-back bytes of an incomplete character */
  int n;
} nc_utf8_stream;

/* Output capacity that always suffices for nc_utf8_push of `len` bytes (every byte, held-back
 * ones included, may become a 3-byte U+FFFD). */
#define NC_UTF8_PUSH_CAP(len) (3 * ((size_t)(len) + 4))

/* Starts an empty stream. */
void nc_utf8_init(nc_utf8_stream *s);

/* Appends `len` bytes of `in` and writes to `out` (capacity NC_UTF8_PUSH_CAP(len)) the valid
 * UTF-8 that is complete so far; returns the number of bytes written (not NUL-terminated). */
size_t nc_utf8_push(nc_utf8_stream *s, const char *in, size_t len, char *out);

/* Ends the stream: writes U+FFFD (3 bytes) to `out` if bytes were held back, and empties the
 * stream. Returns 0 or 3. */
size_t nc_utf8_flush(nc_utf8_stream *s, char *out);

/* 1 when `len` bytes of `p` are well-formed UTF-8. */
int nc_utf8_valid(const char *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* NC_UTF8_H */
