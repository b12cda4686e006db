/* nc_tokenizer.h — nanochat's byte-level BPE tokenizer: split, encode, decode, train, files.
 *
 * Semantics (specs/nanochat.md §3, tiktoken's CoreBPE, rustbpe):
 *   - Text is split into chunks by a regex (PCRE2, JIT-compiled). nanochat's pattern is
 *     NC_TOK_PATTERN_NANOCHAT; GPT-2 / cl100k patterns work too (the pattern comes from the
 *     tokenizer file). Text between matches is dropped, exactly like tiktoken's find_iter.
 *   - `\s` / `\S` follow Rust regex (tiktoken, rustbpe): Unicode White_Space, which includes
 *     U+0085 and not U+FEFF. PCRE2's own \s differs there, so the pattern is rewritten before
 *     compiling; NC_TOK_DIALECT_JS selects JavaScript's set (U+FEFF, no U+0085) to compare
 *     with js-tiktoken. `$` matches only at the very end (PCRE2_DOLLAR_ENDONLY), as in Rust.
 *     \p{L}/\p{N} come from PCRE2 10.42's Unicode 14 tables (Rust and Node use 15.x: the few
 *     thousand code points added in Unicode 15 may split differently).
 *   - Tokens 0..255 of a nanochat tokenizer are the raw bytes (no GPT-2 byte remapping); in
 *     general every rank's bytes come from the file. Each chunk is one token if its bytes are a
 *     token; otherwise its bytes start as single-byte parts and the adjacent pair whose
 *     concatenation has the LOWEST rank (leftmost among equals) is merged until none applies.
 *     Ranks are ids. Bytes that appear under two ranks resolve like tiktoken's Python dict:
 *     the later rank wins for encoding; both ids decode.
 *   - Special tokens are extra ids (nanochat: the nine of NC_TOK_SPECIALS_NANOCHAT, appended
 *     right after the ranks). They are produced only by nc_tok_encode with NC_TOK_ALLOW_SPECIAL
 *     or by NC_TOK_PREPEND_BOS; nc_tok_encode_ordinary never produces them, so the user text
 *     "<|python_start|>" is ordinary text (tiktoken encode_ordinary).
 *   - Decoding concatenates token bytes; nc_tok_decode turns bytes that are not valid UTF-8
 *     into U+FFFD (one per maximal invalid subpart: Python's errors="replace", WHATWG
 *     TextDecoder), the streaming decoder emits only complete characters.
 *
 * Buffers: every encode/decode function takes a caller buffer and returns the number of ids
 * or bytes the result NEEDS (like snprintf). When that is larger than the capacity the
 * output is incomplete (see each function) and the caller retries with a larger buffer;
 * negative returns are NC_E* codes (core/nc_err.h). Bounds that always suffice: ids <=
 * text bytes + 1 (every token covers at least one byte, +1 for BOS); decoded bytes <= 3 x
 * raw bytes (each invalid byte becomes the 3-byte U+FFFD).
 *
 * Text given to the encoder must be valid UTF-8 (NC_EINVAL otherwise; NUL bytes are fine).
 *
 * Threads: a tokenizer is immutable after creation; every function taking a const
 * nc_tokenizer * may run concurrently from any number of threads (each call uses its own
 * PCRE2 match data). Nothing here keeps global state.
 *
 * Files: see nc_tok_load. Limits: NC_TOK_MAX_* below; every violation is NC_EINVAL with a
 * message, never a crash.
 */
#ifndef NC_TOKENIZER_H
#define NC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "nc_chat.h" /* nc_tok_iface, nc_special_ids */

#ifdef __cplusplus
extern "C" {
#endif

/* nanochat's split pattern (GPT-4 style, numbers in groups of 1-2 digits). */
#define NC_TOK_PATTERN_NANOCHAT                                                            \
  "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*" \
  "|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"

/* nanochat's nine special tokens, in id order (appended after the ranks). */
#define NC_TOK_N_SPECIALS_NANOCHAT 9
extern const char *const NC_TOK_SPECIALS_NANOCHAT[NC_TOK_N_SPECIALS_NANOCHAT];

#define NC_TOK_MAX_VOCAB (1 << 21)      /* ids are < 2^21 (o200k has 200k) */
#define NC_TOK_MAX_TOKEN_LEN 1024       /* bytes of one rank */
#define NC_TOK_MAX_PATTERN 4096         /* bytes of the split pattern */
#define NC_TOK_MAX_SPECIALS 256
#define NC_TOK_MAX_SPECIAL_LEN 64       /* bytes of one special token's text */
#define NC_TOK_MAX_FILE (256u << 20)    /* tokenizer file size */

typedef struct nc_tokenizer nc_tokenizer;

/* Regex dialect of \s and \S in the pattern. */
typedef enum nc_tok_dialect {
  NC_TOK_DIALECT_RUST = 0, /* tiktoken / rustbpe / nanochat (default) */
  NC_TOK_DIALECT_JS = 1,   /* js-tiktoken (JavaScript RegExp with the u flag) */
} nc_tok_dialect;

/* A special token: `len` bytes of `text` (borrowed) and its id. */
typedef struct nc_tok_special {
  const char *text;
  size_t len;
  int32_t id;
} nc_tok_special;

/* ---- creating, loading, saving ------------------------------------------------------------ */

/* Creates a tokenizer from ranks: rank r has the `lens[r]` bytes at `tokens[r]` (borrowed,
 * copied), for r in 0..n_ranks-1 (1..NC_TOK_MAX_VOCAB ranks, each 1..NC_TOK_MAX_TOKEN_LEN
 * bytes). `pattern` (NUL-terminated; NULL = nanochat's) is compiled with PCRE2 (UTF, UCP,
 * JIT) after the \s rewrite of `dialect`. Specials: ids must be >= n_ranks, < NC_TOK_MAX_VOCAB,
 * distinct, texts 1..NC_TOK_MAX_SPECIAL_LEN bytes of printable non-space ASCII, distinct.
 * The vocabulary size is the largest id + 1 (ids between that are no token decode as
 * NC_EINVAL). Returns NC_OK and *out (owned by the caller: nc_tok_free), NC_EINVAL (message
 * in msg, e.g. the regex error with its offset), NC_ENOMEM. `msg` may be NULL. */
int nc_tok_create(const char *pattern, nc_tok_dialect dialect, const uint8_t *const *tokens,
                  const uint32_t *lens, int32_t n_ranks, const nc_tok_special *specials,
                  int n_specials, nc_tokenizer **out, char *msg, size_t msglen);

/* Loads a tokenizer file (format below) from `path` or from memory (`len` bytes, copied).
 *
 *   #nanochat-tokenizer 1                    first line, exactly
 *   #pattern <the regex, raw, to the end of the line>
 *   #dialect rust | js                       optional (default rust)
 *   #special <id> <text>                     zero or more, any order
 *   <base64 bytes> <rank>                    one line per rank, ranks 0..n-1 in order
 *
 * Lines end in "\n" ("\r\n" accepted). Other lines starting with '#' are comments. The rank
 * lines are exactly tiktoken's .tiktoken format (load_tiktoken_bpe reads the file after
 * `grep -v '^#'`), and a plain tiktoken rank file without any header is accepted too: it
 * gets nanochat's pattern (or `pattern_override`) and no specials. `pattern_override`
 * (NULL = none) replaces the file's pattern; `dialect_override` >= 0 replaces its dialect
 * (-1 = keep). Errors: NC_EINVAL with "line N: ..." in msg, NC_EIO / NC_ENOTFOUND for the
 * file, NC_EFULL over NC_TOK_MAX_FILE, NC_ENOMEM. */
int nc_tok_load(const char *path, const char *pattern_override, int dialect_override,
                nc_tokenizer **out, char *msg, size_t msglen);
int nc_tok_load_mem(const void *data, size_t len, const char *pattern_override,
                    int dialect_override, nc_tokenizer **out, char *msg, size_t msglen);

/* Writes the file format above (atomically: a temp file in the same directory, fsync,
 * rename). NC_OK, NC_EIO with msg. The pattern must not contain CR, LF or NUL (NC_EINVAL). */
int nc_tok_save(const nc_tokenizer *t, const char *path, char *msg, size_t msglen);

/* Frees a tokenizer (NULL is fine). No call on it may be running. */
void nc_tok_free(nc_tokenizer *t);

/* ---- what is in it ------------------------------------------------------------------------ */

int32_t nc_tok_vocab_size(const nc_tokenizer *t); /* largest id + 1 */
int32_t nc_tok_n_ranks(const nc_tokenizer *t);    /* mergeable ranks (ids 0..n-1) */
const char *nc_tok_pattern(const nc_tokenizer *t); /* as given (before the \s rewrite) */
nc_tok_dialect nc_tok_get_dialect(const nc_tokenizer *t);
int nc_tok_n_specials(const nc_tokenizer *t);

/* The i-th special token (0 <= i < nc_tok_n_specials, sorted by id): NC_OK or NC_EINVAL.
 * *text points into the tokenizer (valid until nc_tok_free), not NUL-terminated. */
int nc_tok_special_at(const nc_tokenizer *t, int i, const char **text, size_t *len, int32_t *id);

/* Id of the special token spelled `text` (`len` bytes), or NC_ENOTFOUND. */
int32_t nc_tok_special_id(const nc_tokenizer *t, const char *text, size_t len);

/* Ids of nanochat's nine specials: NC_OK, or NC_ENOTFOUND when one of them is missing. */
int nc_tok_nanochat_specials(const nc_tokenizer *t, nc_special_ids *out);

/* Bytes of token `id` (a rank's bytes or a special's text), or NULL for an id that is no
 * token. Points into the tokenizer. */
const uint8_t *nc_tok_token(const nc_tokenizer *t, int32_t id, size_t *len);

/* token_bytes for bits-per-byte (specs §3.3, §8.1): out[id] = raw byte length of rank id,
 * 0 for specials and for unused ids. `n` must be >= nc_tok_vocab_size (NC_EINVAL). */
int nc_tok_token_bytes(const nc_tokenizer *t, int32_t *out, size_t n);

/* ---- encoding ----------------------------------------------------------------------------- */

/* tiktoken encode_ordinary: special-token strings are ordinary text. Writes the first
 * min(needed, cap) ids to `out` (out may be NULL when cap is 0) and returns the number
 * needed, or NC_EINVAL (NULL text with len > 0, invalid UTF-8), NC_ENOMEM,
 * NC_EINTERNAL (regex engine failure). */
long nc_tok_encode_ordinary(const nc_tokenizer *t, const char *text, size_t len, int32_t *out,
                            size_t cap);

/* Flags of nc_tok_encode / nc_tok_encode_batch. */
#define NC_TOK_ALLOW_SPECIAL 1 /* special-token strings in the text become their ids (tiktoken
                                  encode(allowed_special="all"): the text is cut at each
                                  leftmost-longest special, the pieces encoded as ordinary) */
#define NC_TOK_PREPEND_BOS 2   /* put <|bos|> first (NC_ENOTFOUND if the tokenizer has none) */

/* Like nc_tok_encode_ordinary with `flags` (0 = exactly encode_ordinary). */
long nc_tok_encode(const nc_tokenizer *t, const char *text, size_t len, int flags, int32_t *out,
                   size_t cap);

/* Encodes `n` texts (texts[i], lens[i] bytes) with `flags`, using up to `threads` threads
 * (<= 1: the calling thread only). Text i's ids are out[offsets[i] .. offsets[i+1]) where
 * `offsets` has n+1 entries (always filled on success). Returns the total number of ids; when
 * it is larger than `cap` nothing is written to `out`. Errors as nc_tok_encode (the first
 * failing text's error). */
long nc_tok_encode_batch(const nc_tokenizer *t, const char *const *texts, const size_t *lens,
                         size_t n, int flags, int threads, int32_t *out, size_t cap,
                         size_t *offsets);

/* ---- decoding ----------------------------------------------------------------------------- */

/* Raw bytes of the tokens (specials as their text), no UTF-8 repair. Writes the first
 * min(needed, cap) bytes and returns the number needed, or NC_EINVAL for an id that is no
 * token (negative, >= vocab size, or unused). No NUL is written. */
long nc_tok_decode_bytes(const nc_tokenizer *t, const int32_t *ids, size_t n, char *out,
                         size_t cap);

/* Like nc_tok_decode_bytes, but the result is valid UTF-8: each maximal invalid subpart
 * becomes U+FFFD (tiktoken decode / Python errors="replace"). */
long nc_tok_decode(const nc_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap);

/* Streaming decoder for chat streaming: emits only complete UTF-8 characters and keeps an
 * incomplete trailing sequence (at most 3 bytes) for the next push. Value type: zero it (or
 * nc_tok_stream_init) before the first push; one per stream, not shared between threads.
 * The concatenation of all pushes and the final flush equals nc_tok_decode of all ids. */
typedef struct nc_tok_stream {
  uint8_t pend[4];
  uint8_t n;
} nc_tok_stream;

void nc_tok_stream_init(nc_tok_stream *s);

/* Decodes `n` more ids. Returns the number of bytes this push emits; when that is larger than
 * `cap` nothing is written and the stream is unchanged (retry with a larger buffer). Errors:
 * NC_EINVAL (bad id; stream unchanged). */
long nc_tok_stream_push(const nc_tokenizer *t, nc_tok_stream *s, const int32_t *ids, size_t n,
                        char *out, size_t cap);

/* Ends the stream: a kept incomplete sequence becomes U+FFFD (3 bytes). Returns the bytes
 * emitted (0 or 3); when larger than `cap` nothing is written and the stream is unchanged.
 * The stream is empty afterwards. */
long nc_tok_stream_flush(nc_tok_stream *s, char *out, size_t cap);

/* The nc_chat.h interface backed by this tokenizer (encode = encode_ordinary, decode =
 * decode_bytes). Valid while `t` lives. */
nc_tok_iface nc_tok_chat_iface(const nc_tokenizer *t);

/* ---- training (rustbpe train_from_iterator + train_core_incremental, specs §3.2) --------- */

/* Pulls the next document: returns 1 and sets *text and *len (valid until the next call), 0 at
 * the end, or a negative NC_E* code to abort training with that code. */
typedef int (*nc_tok_doc_fn)(void *ctx, const char **text, size_t *len);

typedef struct nc_tok_train_opts {
  int32_t vocab_size;        /* ranks + specials; 0 = 32768. 256 + n_specials .. NC_TOK_MAX_VOCAB */
  const char *pattern;       /* NULL = NC_TOK_PATTERN_NANOCHAT */
  nc_tok_dialect dialect;
  uint64_t doc_cap;          /* each document is cut to its first doc_cap code points;
                                0 = 10,000 (tok_train --doc-cap); UINT64_MAX = no cap */
  uint64_t max_chars;        /* stop after the document that takes the total (after the cap)
                                past max_chars code points; 0 = 2,000,000,000 */
  int threads;               /* threads splitting and counting chunks; <= 1 = one */
  const char *const *specials; /* NULL = nanochat's nine; their ids follow the ranks */
  int n_specials;
  /* Called every 256 merges and at the end; non-zero return cancels (NC_ECANCELED). NULL ok. */
  int (*progress)(void *ctx, int32_t merges_done, int32_t merges_total);
  void *progress_ctx;
} nc_tok_train_opts;

typedef struct nc_tok_train_stats {
  uint64_t docs;            /* documents used */
  uint64_t chars;           /* code points used (after the cap) */
  uint64_t bytes;           /* UTF-8 bytes used */
  uint64_t invalid_bytes;   /* bytes of invalid UTF-8 replaced by U+FFFD before splitting */
  uint64_t chunks;          /* regex chunks counted */
  uint64_t unique_chunks;
  int32_t merges;           /* merges done (fewer than asked when the pairs run out) */
  int32_t duplicate_tokens; /* merges whose bytes equal an earlier token's (see top) */
  double count_seconds, merge_seconds;
} nc_tok_train_stats;

/* Trains a tokenizer on the documents `next` yields. Documents that are not valid UTF-8 get
 * U+FFFD for each invalid subpart first (Python's strings never hold such bytes). The
 * result is deterministic: each merge takes the pair with the highest count, ties going to
 * the smallest pair (a, b); the new id is 256 + merges so far; specials follow the last rank.
 * Returns NC_OK and *out (nc_tok_free), NC_EINVAL (options; msg), NC_ECANCELED, NC_ENOMEM or
 * the error `next` returned. `stats` may be NULL. */
int nc_tok_train(const nc_tok_train_opts *opts, nc_tok_doc_fn next, void *ctx, nc_tokenizer **out,
                 nc_tok_train_stats *stats, char *msg, size_t msglen);

/* ---- helpers ------------------------------------------------------------------------------ */

/* 1 when `len` bytes of `s` are valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int nc_tok_utf8_valid(const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* NC_TOKENIZER_H */
