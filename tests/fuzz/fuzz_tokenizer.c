/* Fuzz target: encode/decode of arbitrary input with a small trained tokenizer.
 * Byte 0 picks the mode; the rest is text (or ids):
 *   valid UTF-8  -> ordinary and special-aware encodes succeed, ids are in range, ids decode
 *                   back to the exact text, batch (2 threads) = single, the streaming decoder
 *                   (random push sizes) = decode;
 *   invalid      -> encodes return NC_EINVAL;
 *   as ids       -> (16-bit little-endian) decode and the streaming decoder agree, the output
 *                   is valid UTF-8 and raw decoding of valid ids never fails. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_tokenizer.h"

static const char *corpus[] = {
    "The quick brown fox jumps over the lazy dog. ", "don't we'll 12345 6789\r\n\r\n", "  \t  indented\n",
    "日本語のテキスト 🙂👍🏽 café e\xcc\x81 ", "<|bos|><|user_start|>hi<|user_end|>", "aaaaaaaaaaaaaaaa bbbbbb",
};
static int next_i;
static int next_doc(void *ctx, const char **text, size_t *len) {
  (void)ctx;
  if (next_i >= 60) return 0;
  *text = corpus[next_i % 6];
  *len = strlen(*text);
  next_i++;
  return 1;
}

static nc_tokenizer *tok(void) {
  static nc_tokenizer *t;
  if (!t) {
    nc_tok_train_opts o;
    memset(&o, 0, sizeof o);
    o.vocab_size = 400;
    if (nc_tok_train(&o, next_doc, NULL, &t, NULL, NULL, 0) != NC_OK) __builtin_trap();
  }
  return t;
}

static void check_stream(const nc_tokenizer *t, const int32_t *ids, size_t n, const char *want, size_t wn,
                         const uint8_t *sizes, size_t ns) {
  char *got = malloc(wn + 16);
  size_t g = 0, i = 0, k = 0;
  nc_tok_stream s;
  nc_tok_stream_init(&s);
  while (i < n) {
    size_t step = ns ? 1 + sizes[k++ % ns] % 4 : 1;
    if (step > n - i) step = n - i;
    long m = nc_tok_stream_push(t, &s, ids + i, step, got + g, wn + 16 - g);
    if (m < 0 || g + (size_t)m > wn) __builtin_trap();
    if (!nc_tok_utf8_valid(got + g, (size_t)m)) __builtin_trap();
    g += (size_t)m;
    i += step;
  }
  long m = nc_tok_stream_flush(&s, got + g, wn + 16 - g);
  if (m < 0) __builtin_trap();
  g += (size_t)m;
  if (g != wn || memcmp(got, want, wn) != 0) __builtin_trap();
  free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 16) return 0;
  const nc_tokenizer *t = tok();
  uint8_t mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  int32_t vocab = nc_tok_vocab_size(t);
  if (mode & 1) {
    /* ids */
    size_t n = len / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(data[1 + 2 * i] | (data[2 + 2 * i] << 8)) % (vocab + 3) - 1;
    long need = nc_tok_decode(t, ids, n, NULL, 0);
    long raw = nc_tok_decode_bytes(t, ids, n, NULL, 0);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
      size_t l;
      if (!nc_tok_token(t, ids[i], &l)) ok = 0;
    }
    if (!ok) {
      if (need != NC_EINVAL || raw != NC_EINVAL) __builtin_trap();
    } else {
      if (need < 0 || raw < 0 || need > 3 * raw) __builtin_trap();
      char *out = malloc((size_t)need + 1);
      if (nc_tok_decode(t, ids, n, out, (size_t)need) != need) __builtin_trap();
      if (!nc_tok_utf8_valid(out, (size_t)need)) __builtin_trap();
      check_stream(t, ids, n, out, (size_t)need, data + 1, len);
      free(out);
    }
    free(ids);
    return 0;
  }
  int flags = (mode & 2) ? NC_TOK_ALLOW_SPECIAL : 0;
  if (mode & 4) flags |= NC_TOK_PREPEND_BOS;
  int32_t *ids = malloc((len + 1) * sizeof *ids);
  long n = nc_tok_encode(t, text, len, flags, ids, len + 1);
  if (!nc_tok_utf8_valid(text, len)) {
    if (n != NC_EINVAL) __builtin_trap();
    free(ids);
    return 0;
  }
  if (n < 0 || (size_t)n > len + 1) __builtin_trap();
  for (long i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= vocab) __builtin_trap();
  size_t skip = (flags & NC_TOK_PREPEND_BOS) ? 1 : 0;
  char *back = malloc(len + 1);
  if (nc_tok_decode_bytes(t, ids + skip, (size_t)n - skip, back, len) != (long)len) __builtin_trap();
  if (memcmp(back, text, len) != 0) __builtin_trap();
  if (nc_tok_decode(t, ids + skip, (size_t)n - skip, back, len) != (long)len) __builtin_trap();
  check_stream(t, ids + skip, (size_t)n - skip, text, len, data, size);
  /* ordinary: specials never appear */
  long m = nc_tok_encode_ordinary(t, text, len, ids, len + 1);
  for (long i = 0; i < m; i++)
    if (ids[i] >= nc_tok_n_ranks(t)) __builtin_trap();
  /* batch of two halves at a character boundary = single encodes */
  size_t h = len / 2;
  while (h > 0 && ((uint8_t)text[h] & 0xC0) == 0x80) h--;
  const char *tx[2] = {text, text + h};
  size_t tl[2] = {h, len - h}, off[3];
  int32_t *b = malloc((len + 2) * sizeof *b);
  long bn = nc_tok_encode_batch(t, tx, tl, 2, flags, 2, b, len + 2, off);
  long n0 = nc_tok_encode(t, tx[0], tl[0], flags, ids, len + 1);
  if (bn < 0 || n0 < 0 || off[1] != (size_t)n0 || memcmp(b, ids, (size_t)n0 * sizeof *ids) != 0) __builtin_trap();
  free(b);
  free(back);
  free(ids);
  return 0;
}
