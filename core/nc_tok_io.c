/* nc_tok_io.c — the tokenizer file (tiktoken rank lines + a '#' header): load and save. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_tok_internal.h"

#define MAGIC "#nanochat-tokenizer"
#define VERSION 1

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict standard base64 with padding; returns the decoded length or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t cap) {
  if (n == 0 || n % 4) return -1;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4], pad = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char c = (unsigned char)s[i + j];
      if (c == '=' && i + 4 == n && j >= 2) {
        v[j] = 0;
        pad++;
        continue;
      }
      if (pad) return -1; /* data after padding */
      v[j] = b64val(c);
      if (v[j] < 0) return -1;
    }
    uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
    size_t k = 3 - (size_t)pad;
    if (o + k > cap) return -1;
    out[o++] = (uint8_t)(w >> 16);
    if (k > 1) out[o++] = (uint8_t)(w >> 8);
    if (k > 2) out[o++] = (uint8_t)w;
    /* non-canonical encodings (stray bits under the padding) are refused */
    if (pad == 1 && (v[2] & 3)) return -1;
    if (pad == 2 && (v[1] & 15)) return -1;
  }
  return (long)o;
}

static void b64_encode(const uint8_t *p, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)p[i] << 16;
    if (i + 1 < n) w |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) w |= p[i + 2];
    out[o++] = B64[(w >> 18) & 63];
    out[o++] = B64[(w >> 12) & 63];
    out[o++] = i + 1 < n ? B64[(w >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? B64[w & 63] : '=';
  }
  out[o] = 0;
}

/* Parses a non-negative decimal integer < limit from s[0..n). */
static int parse_uint(const char *s, size_t n, long limit, long *out) {
  if (n == 0 || n > 10) return -1;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v >= limit || (n > 1 && s[0] == '0')) return -1;
  *out = v;
  return 0;
}

typedef struct parsed {
  uint8_t *arena;   /* decoded rank bytes */
  size_t arena_n;
  const uint8_t **tok;
  uint32_t *len;
  int32_t n;
  nc_tok_special spec[NC_TOK_MAX_SPECIALS];
  int nspec;
  char pattern[NC_TOK_MAX_PATTERN + 1];
  int have_pattern;
  int dialect;
} parsed;

static int parse(const char *d, size_t len, parsed *P, char *msg, size_t msglen) {
  /* worst case every line is a 1-byte token: bytes <= 3/4 of the file */
  P->arena = malloc(len / 4 * 3 + 4);
  size_t maxlines = len / 5 + 2; /* "XX== 0" is the shortest rank line */
  if (maxlines > NC_TOK_MAX_VOCAB + 1) maxlines = NC_TOK_MAX_VOCAB + 1;
  P->tok = malloc(maxlines * sizeof *P->tok);
  P->len = malloc(maxlines * sizeof *P->len);
  if (!P->arena || !P->tok || !P->len) return NC_ENOMEM;
  size_t pos = 0;
  long lineno = 0;
  int headered = 0;
  while (pos < len) {
    lineno++;
    const char *line = d + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + (nl ? 1 : 0);
    if (n && line[n - 1] == '\r') n--;
    if (memchr(line, 0, n)) return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: NUL byte", lineno);
    if (lineno == 1 && n >= sizeof MAGIC - 1 && memcmp(line, MAGIC, sizeof MAGIC - 1) == 0) {
      if (n != sizeof MAGIC + 1 || line[sizeof MAGIC - 1] != ' ' || line[sizeof MAGIC] != '0' + VERSION)
        return nc_tok__err(msg, msglen, NC_EINVAL, "line 1: unsupported tokenizer file version (this reads %d)", VERSION);
      headered = 1;
      continue;
    }
    if (n == 0) continue;
    if (line[0] == '#') {
      if (!headered) continue; /* comments in a plain rank file */
      if (n > 9 && memcmp(line, "#pattern ", 9) == 0) {
        if (P->have_pattern) return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: second #pattern", lineno);
        if (n - 9 > NC_TOK_MAX_PATTERN)
          return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: pattern longer than %d bytes", lineno, NC_TOK_MAX_PATTERN);
        memcpy(P->pattern, line + 9, n - 9);
        P->pattern[n - 9] = 0;
        P->have_pattern = 1;
      } else if (n > 9 && memcmp(line, "#dialect ", 9) == 0) {
        if (n == 13 && memcmp(line + 9, "rust", 4) == 0) P->dialect = NC_TOK_DIALECT_RUST;
        else if (n == 11 && memcmp(line + 9, "js", 2) == 0) P->dialect = NC_TOK_DIALECT_JS;
        else return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: #dialect must be rust or js", lineno);
      } else if (n > 9 && memcmp(line, "#special ", 9) == 0) {
        const char *a = line + 9, *e = line + n;
        const char *sp = memchr(a, ' ', (size_t)(e - a));
        long id;
        if (!sp || parse_uint(a, (size_t)(sp - a), NC_TOK_MAX_VOCAB, &id) || sp + 1 >= e)
          return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: expected #special <id> <text>", lineno);
        if (P->nspec == NC_TOK_MAX_SPECIALS)
          return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: more than %d special tokens", lineno, NC_TOK_MAX_SPECIALS);
        P->spec[P->nspec].text = sp + 1;
        P->spec[P->nspec].len = (size_t)(e - sp - 1);
        P->spec[P->nspec].id = (int32_t)id;
        P->nspec++;
      }
      continue; /* other '#' lines are comments */
    }
    const char *sp = memchr(line, ' ', n);
    long rank;
    if (!sp || parse_uint(sp + 1, (size_t)(line + n - sp - 1), NC_TOK_MAX_VOCAB, &rank))
      return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: expected <base64> <rank>", lineno);
    if (rank != P->n)
      return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: rank %ld out of order (expected %ld)", lineno, rank, (long)P->n);
    if ((size_t)P->n >= maxlines)
      return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: more than %d ranks", lineno, NC_TOK_MAX_VOCAB);
    size_t bn = (size_t)(sp - line);
    if (bn > (NC_TOK_MAX_TOKEN_LEN + 2) / 3 * 4)
      return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: token longer than %d bytes", lineno, NC_TOK_MAX_TOKEN_LEN);
    long got = b64_decode(line, bn, P->arena + P->arena_n, NC_TOK_MAX_TOKEN_LEN);
    if (got <= 0) return nc_tok__err(msg, msglen, NC_EINVAL, "line %ld: bad base64", lineno);
    P->tok[P->n] = P->arena + P->arena_n;
    P->len[P->n] = (uint32_t)got;
    P->arena_n += (size_t)got;
    P->n++;
  }
  if (P->n == 0) return nc_tok__err(msg, msglen, NC_EINVAL, "no ranks in the file");
  return NC_OK;
}

int nc_tok_load_mem(const void *data, size_t len, const char *pattern_override,
                    int dialect_override, nc_tokenizer **out, char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = 0;
  if (!out || (!data && len)) return NC_EINVAL;
  *out = NULL;
  if (len > NC_TOK_MAX_FILE)
    return nc_tok__err(msg, msglen, NC_EFULL, "tokenizer file larger than %u bytes", NC_TOK_MAX_FILE);
  if (dialect_override > NC_TOK_DIALECT_JS || dialect_override < -1)
    return nc_tok__err(msg, msglen, NC_EINVAL, "unknown regex dialect %d", dialect_override);
  parsed *P = calloc(1, sizeof *P);
  if (!P) return NC_ENOMEM;
  int rc = parse(data, len, P, msg, msglen);
  if (rc == NC_OK) {
    const char *pat = pattern_override ? pattern_override : P->have_pattern ? P->pattern : NULL;
    int dialect = dialect_override >= 0 ? dialect_override : P->dialect;
    rc = nc_tok_create(pat, (nc_tok_dialect)dialect, P->tok, P->len, P->n, P->spec, P->nspec, out,
                       msg, msglen);
  } else if (rc == NC_ENOMEM) {
    nc_tok__err(msg, msglen, rc, "out of memory");
  }
  free(P->arena);
  free(P->tok);
  free(P->len);
  free(P);
  return rc;
}

int nc_tok_load(const char *path, const char *pattern_override, int dialect_override,
                nc_tokenizer **out, char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = 0;
  if (!path || !out) return NC_EINVAL;
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return nc_tok__err(msg, msglen, e == ENOENT ? NC_ENOTFOUND : NC_EIO, "%s: %s", path, strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return nc_tok__err(msg, msglen, NC_EIO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > NC_TOK_MAX_FILE) {
    close(fd);
    return nc_tok__err(msg, msglen, NC_EFULL, "%s: larger than %u bytes", path, NC_TOK_MAX_FILE);
  }
  size_t n = (size_t)st.st_size, got = 0;
  char *buf = malloc(n ? n : 1);
  if (!buf) {
    close(fd);
    return NC_ENOMEM;
  }
  while (got < n) {
    ssize_t k = read(fd, buf + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd);
  if (got != n) {
    free(buf);
    return nc_tok__err(msg, msglen, NC_EIO, "%s: short read", path);
  }
  int rc = nc_tok_load_mem(buf, n, pattern_override, dialect_override, out, msg, msglen);
  free(buf);
  return rc;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Buffered writer over a file descriptor. */
typedef struct wbuf {
  int fd, err;
  size_t n;
  char b[1 << 16];
} wbuf;

static void wput(wbuf *w, const char *s, size_t n) {
  if (w->err) return;
  if (w->n + n > sizeof w->b) {
    if (write_all(w->fd, w->b, w->n)) w->err = 1;
    w->n = 0;
  }
  if (n > sizeof w->b) {
    if (write_all(w->fd, s, n)) w->err = 1;
    return;
  }
  memcpy(w->b + w->n, s, n);
  w->n += n;
}

int nc_tok_save(const nc_tokenizer *t, const char *path, char *msg, size_t msglen) {
  if (msg && msglen) msg[0] = 0;
  if (!t || !path) return NC_EINVAL;
  if (strpbrk(t->pattern, "\r\n"))
    return nc_tok__err(msg, msglen, NC_EINVAL, "the pattern contains a line break");
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 16);
  wbuf *w = malloc(sizeof *w);
  if (!tmp || !w) {
    free(tmp);
    free(w);
    return NC_ENOMEM;
  }
  snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    free(w);
    return nc_tok__err(msg, msglen, NC_EIO, "%s: %s", path, strerror(e));
  }
  w->fd = fd;
  w->err = 0;
  w->n = 0;
  char line[64 + (NC_TOK_MAX_TOKEN_LEN + 2) / 3 * 4];
  int k = snprintf(line, sizeof line, "%s %d\n#pattern ", MAGIC, VERSION);
  wput(w, line, (size_t)k);
  wput(w, t->pattern, strlen(t->pattern));
  k = snprintf(line, sizeof line, "\n#dialect %s\n", t->dialect == NC_TOK_DIALECT_JS ? "js" : "rust");
  wput(w, line, (size_t)k);
  for (int i = 0; i < t->n_specials; i++) {
    k = snprintf(line, sizeof line, "#special %d %s\n", (int)t->specials[i].id, t->specials[i].text);
    wput(w, line, (size_t)k);
  }
  for (int32_t r = 0; r < t->n_ranks; r++) {
    b64_encode(t->bytes + t->off[r], t->off[r + 1] - t->off[r], line);
    size_t bl = strlen(line);
    k = snprintf(line + bl, sizeof line - bl, " %d\n", (int)r);
    wput(w, line, bl + (size_t)k);
  }
  if (!w->err && w->n && write_all(fd, w->b, w->n)) w->err = 1;
  int bad = w->err || fsync(fd) != 0;
  int e = errno;
  if (close(fd) != 0) bad = 1;
  free(w);
  if (bad || rename(tmp, path) != 0) {
    if (!bad) e = errno;
    unlink(tmp);
    free(tmp);
    return nc_tok__err(msg, msglen, NC_EIO, "%s: %s", path, strerror(e));
  }
  free(tmp);
  /* make the rename durable */
  char *dir = strdup(path);
  if (dir) {
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  return NC_OK;
}
