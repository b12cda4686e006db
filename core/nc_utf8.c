/* nc_utf8.c — see nc_utf8.h. */
#include "nc_utf8.h"

#include <string.h>

/* Length of the character a lead byte starts (0: never a lead byte), and the valid range of
 * its second byte (Unicode Table 3-7). */
static int lead_len(unsigned char b, unsigned char *lo, unsigned char *hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) {
    if (b == 0xE0) *lo = 0xA0;
    if (b == 0xED) *hi = 0x9F;
    return 3;
  }
  if (b < 0xF5) {
    if (b == 0xF0) *lo = 0x90;
    if (b == 0xF4) *hi = 0x8F;
    return 4;
  }
  return 0;
}

/* Scans the character starting at byte 0 of the virtual buffer get(0..avail). Returns
 *   > 0: a valid character of that many bytes;
 *   < 0: an invalid maximal subpart of -ret bytes (to be replaced by one U+FFFD);
 *   0:   a valid but incomplete prefix (needs more bytes than avail). */
typedef struct vbuf {
  const unsigned char *a;
  size_t na;
  const unsigned char *b;
  size_t nb;
} vbuf;

static inline unsigned char at(const vbuf *v, size_t i) { return i < v->na ? v->a[i] : v->b[i - v->na]; }

static int scan(const vbuf *v, size_t pos, size_t avail) {
  unsigned char lo, hi;
  int n = lead_len(at(v, pos), &lo, &hi);
  if (n == 0) return -1;
  for (int k = 1; k < n; k++) {
    if ((size_t)k >= avail) return 0;
    unsigned char c = at(v, pos + (size_t)k);
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) return -k;
  }
  return n;
}

static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

void nc_utf8_init(nc_utf8_stream *s) { memset(s, 0, sizeof *s); }

size_t nc_utf8_push(nc_utf8_stream *s, const char *in, size_t len, char *out) {
  vbuf v = {s->pend, (size_t)s->n, (const unsigned char *)in, len};
  const size_t total = v.na + v.nb;
  size_t pos = 0, w = 0;
  while (pos < total) {
    int r = scan(&v, pos, total - pos);
    if (r == 0) break; /* incomplete: hold back */
    if (r < 0) {
      memcpy(out + w, FFFD, 3);
      w += 3;
      pos += (size_t)-r;
    } else {
      for (int k = 0; k < r; k++) out[w++] = (char)at(&v, pos + (size_t)k);
      pos += (size_t)r;
    }
  }
  unsigned char keep[4];
  int nk = 0;
  for (; pos < total; pos++) keep[nk++] = at(&v, pos); /* at most 3 bytes */
  memcpy(s->pend, keep, (size_t)nk);
  s->n = nk;
  return w;
}

size_t nc_utf8_flush(nc_utf8_stream *s, char *out) {
  if (s->n == 0) return 0;
  s->n = 0;
  memcpy(out, FFFD, 3);
  return 3;
}

int nc_utf8_valid(const char *p, size_t len) {
  vbuf v = {(const unsigned char *)p, len, NULL, 0};
  size_t pos = 0;
  while (pos < len) {
    int r = scan(&v, pos, len - pos);
    if (r <= 0) return 0;
    pos += (size_t)r;
  }
  return 1;
}
