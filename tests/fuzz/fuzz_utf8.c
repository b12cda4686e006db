/* Fuzz target: streaming UTF-8 repair (nc_utf8.h). The first byte seeds where the rest is cut
 * into pushes. Every delta must be valid UTF-8, must fit the documented capacity, and the
 * concatenation must equal one push of all the bytes (split invariance). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nc_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  const uint8_t seed = data[0];
  const char *in = (const char *)data + 1;
  const size_t n = size - 1;
  char *one = malloc(NC_UTF8_PUSH_CAP(n) + 3), *split = malloc(NC_UTF8_PUSH_CAP(n) + 3);
  char *tmp = malloc(NC_UTF8_PUSH_CAP(n) + 8);
  if (!one || !split || !tmp) __builtin_trap();
  nc_utf8_stream a, b;
  nc_utf8_init(&a);
  nc_utf8_init(&b);
  size_t la = nc_utf8_push(&a, in, n, one);
  la += nc_utf8_flush(&a, one + la);
  size_t lb = 0, at = 0;
  unsigned s = seed;
  while (at < n) {
    s = s * 1103515245u + 12345u;
    size_t piece = 1 + (s >> 16) % 7;
    if (piece > n - at) piece = n - at;
    memset(tmp, 0x55, NC_UTF8_PUSH_CAP(piece) + 8);
    size_t w = nc_utf8_push(&b, in + at, piece, tmp);
    if (w > NC_UTF8_PUSH_CAP(piece)) __builtin_trap();
    if (!nc_utf8_valid(tmp, w)) __builtin_trap();
    memcpy(split + lb, tmp, w);
    lb += w;
    at += piece;
  }
  lb += nc_utf8_flush(&b, split + lb);
  if (la != lb || memcmp(one, split, la) != 0) __builtin_trap();
  if (!nc_utf8_valid(one, la)) __builtin_trap();
  free(one);
  free(split);
  free(tmp);
  return 0;
}
