/* Fuzz target: the tokenizer file loader never crashes on arbitrary bytes; when a file loads,
 * the tokenizer encodes and decodes a fixed text exactly, and saving + reloading it gives the
 * same vocabulary. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 20) return 0;
  nc_tokenizer *t = NULL;
  char msg[256];
  memset(msg, 'x', sizeof msg);
  int rc = nc_tok_load_mem(data, size, NULL, -1, &t, msg, sizeof msg);
  if (memchr(msg, 0, sizeof msg) == NULL) __builtin_trap();
  if (rc != NC_OK) {
    if (t || (rc != NC_EINVAL && rc != NC_ENOMEM)) __builtin_trap();
    return 0;
  }
  static const char text[] = "Hello, wor1d! 123 \xc3\xa9\xf0\x9f\x99\x82 \r\n <|bos|>";
  size_t n = sizeof text - 1;
  int32_t ids[64];
  long k = nc_tok_encode(t, text, n, NC_TOK_ALLOW_SPECIAL, ids, 64);
  if (k < 0 || k > (long)n) __builtin_trap();
  char back[64];
  long m = nc_tok_decode_bytes(t, ids, (size_t)k, back, sizeof back);
  /* a pattern may leave gaps (dropped text), so only a prefix relation is guaranteed */
  if (m < 0 || m > (long)n) __builtin_trap();
  char path[64];
  snprintf(path, sizeof path, "/tmp/fuzz_tok_load_%d.txt", (int)getpid());
  if (nc_tok_save(t, path, NULL, 0) == NC_OK) {
    nc_tokenizer *u = NULL;
    if (nc_tok_load(path, NULL, -1, &u, NULL, 0) != NC_OK) __builtin_trap();
    if (nc_tok_vocab_size(u) != nc_tok_vocab_size(t) || nc_tok_n_specials(u) != nc_tok_n_specials(t)) __builtin_trap();
    int32_t ids2[64];
    if (nc_tok_encode(u, text, n, NC_TOK_ALLOW_SPECIAL, ids2, 64) != k || memcmp(ids, ids2, (size_t)k * sizeof *ids)) __builtin_trap();
    nc_tok_free(u);
    unlink(path);
  }
  nc_tok_free(t);
  return 0;
}
