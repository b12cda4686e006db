/* nc_safetensors.c — safetensors reader: header validation, tensor reads, errors.
 * See nc_safetensors.h; the writer is nc_safetensors_write.c. */
#include "nc_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_err.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

/* ------------------------------------------------------------------------------ errors */

static const struct { const char *name; int code; } kinds[NC_ST_E_COUNT] = {
    [NC_ST_OK] = {"NC_ST_OK", NC_OK},
    [NC_ST_E_IO] = {"NC_ST_E_IO", NC_EIO},
    [NC_ST_E_PICKLE] = {"NC_ST_E_PICKLE", NC_EINVAL},
    [NC_ST_E_TOO_SMALL] = {"NC_ST_E_TOO_SMALL", NC_EINVAL},
    [NC_ST_E_HEADER_TOO_LARGE] = {"NC_ST_E_HEADER_TOO_LARGE", NC_EINVAL},
    [NC_ST_E_HEADER_LENGTH] = {"NC_ST_E_HEADER_LENGTH", NC_ECORRUPT},
    [NC_ST_E_UTF8] = {"NC_ST_E_UTF8", NC_EINVAL},
    [NC_ST_E_MAGIC] = {"NC_ST_E_MAGIC", NC_EINVAL},
    [NC_ST_E_JSON] = {"NC_ST_E_JSON", NC_EINVAL},
    [NC_ST_E_DUPLICATE] = {"NC_ST_E_DUPLICATE", NC_EINVAL},
    [NC_ST_E_TENSOR_INFO] = {"NC_ST_E_TENSOR_INFO", NC_EINVAL},
    [NC_ST_E_DTYPE] = {"NC_ST_E_DTYPE", NC_EINVAL},
    [NC_ST_E_SHAPE] = {"NC_ST_E_SHAPE", NC_EINVAL},
    [NC_ST_E_OVERFLOW] = {"NC_ST_E_OVERFLOW", NC_EINVAL},
    [NC_ST_E_SIZE] = {"NC_ST_E_SIZE", NC_EINVAL},
    [NC_ST_E_OFFSETS] = {"NC_ST_E_OFFSETS", NC_EINVAL},
    [NC_ST_E_HOLE] = {"NC_ST_E_HOLE", NC_EINVAL},
    [NC_ST_E_TRUNCATED] = {"NC_ST_E_TRUNCATED", NC_ECORRUPT},
    [NC_ST_E_TRAILING] = {"NC_ST_E_TRAILING", NC_EINVAL},
    [NC_ST_E_METADATA] = {"NC_ST_E_METADATA", NC_EINVAL},
    [NC_ST_E_TOO_MANY] = {"NC_ST_E_TOO_MANY", NC_EINVAL},
    [NC_ST_E_ARG] = {"NC_ST_E_ARG", NC_EINVAL},
    [NC_ST_E_NOMEM] = {"NC_ST_E_NOMEM", NC_ENOMEM},
    [NC_ST_E_NOSPC] = {"NC_ST_E_NOSPC", NC_ENOSPC},
    [NC_ST_E_VERSION] = {"NC_ST_E_VERSION", NC_EINVAL},
    [NC_ST_E_CONFIG] = {"NC_ST_E_CONFIG", NC_EINVAL},
    [NC_ST_E_MISSING] = {"NC_ST_E_MISSING", NC_EINVAL},
    [NC_ST_E_EXTRA] = {"NC_ST_E_EXTRA", NC_EINVAL},
    [NC_ST_E_SHAPE_MISMATCH] = {"NC_ST_E_SHAPE_MISMATCH", NC_EINVAL},
    [NC_ST_E_NONFINITE] = {"NC_ST_E_NONFINITE", NC_ECORRUPT},
    [NC_ST_E_HASH] = {"NC_ST_E_HASH", NC_ECORRUPT},
    [NC_ST_E_PATH] = {"NC_ST_E_PATH", NC_EINVAL},
    [NC_ST_E_SYMLINK] = {"NC_ST_E_SYMLINK", NC_EPERM},
    [NC_ST_E_NOTFOUND] = {"NC_ST_E_NOTFOUND", NC_ENOTFOUND},
    [NC_ST_E_OPTIM] = {"NC_ST_E_OPTIM", NC_EINVAL},
};

const char *nc_st_errkind_name(nc_st_errkind k) {
  return (k >= 0 && k < NC_ST_E_COUNT && kinds[k].name) ? kinds[k].name : "NC_ST_E_?";
}

int nc_st_errkind_code(nc_st_errkind k) {
  return (k >= 0 && k < NC_ST_E_COUNT && kinds[k].name) ? kinds[k].code : NC_EINTERNAL;
}

int nc_st_fail(nc_st_error *err, nc_st_errkind kind, const char *fmt, ...) {
  if (err) {
    err->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return nc_st_errkind_code(kind);
}

/* ------------------------------------------------------------------------------ handle */

struct nc_st_file {
  int fd;                 /* -1 for a memory buffer */
  const uint8_t *mem;
  uint64_t size, hlen;    /* file size, header length N */
  int count;
  nc_st_info *t;          /* sorted by offset */
  int *by_name;           /* indices of t sorted by name */
  int nmeta;
  char **mkey, **mval;
};

void nc_st_close(nc_st_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  for (int i = 0; i < f->count; i++) free((char *)f->t[i].name);
  for (int i = 0; i < f->nmeta; i++) {
    free(f->mkey[i]);
    free(f->mval[i]);
  }
  free(f->t);
  free(f->by_name);
  free(f->mkey);
  free(f->mval);
  free(f);
}

int nc_st_count(const nc_st_file *f) { return f ? f->count : 0; }
const nc_st_info *nc_st_at(const nc_st_file *f, int i) {
  return (f && i >= 0 && i < f->count) ? &f->t[i] : NULL;
}
uint64_t nc_st_file_size(const nc_st_file *f) { return f->size; }
uint64_t nc_st_header_len(const nc_st_file *f) { return f->hlen; }
int nc_st_meta_count(const nc_st_file *f) { return f ? f->nmeta : 0; }

void nc_st_meta_at(const nc_st_file *f, int i, const char **key, const char **value) {
  *key = f->mkey[i];
  *value = f->mval[i];
}

const char *nc_st_meta(const nc_st_file *f, const char *key) {
  if (!f || !key) return NULL;
  for (int i = 0; i < f->nmeta; i++)
    if (strcmp(f->mkey[i], key) == 0) return f->mval[i];
  return NULL;
}

const nc_st_info *nc_st_find(const nc_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  int lo = 0, hi = f->count - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const nc_st_info *t = &f->t[f->by_name[mid]];
    int c = strcmp(name, t->name);
    if (c == 0) return t;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return NULL;
}

/* ------------------------------------------------------------------------------ header */

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. Returns the
 * offset of the first bad byte, or n when all is valid. */
static size_t utf8_bad_at(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { i++; continue; }
    int len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return i;
    if (n - i < (size_t)len) return i;
    for (int k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += (size_t)len;
  }
  return n;
}

/* Bounds jansson's memory before it runs: nesting depth <= 3 and at most NC_ST_MAX_VALUES
 * structural tokens (values + keys), counted outside strings. */
static int prescan(const uint8_t *s, size_t n, nc_st_error *err) {
  int depth = 0, in_str = 0, esc = 0;
  size_t tokens = 1;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (in_str) {
      if (esc) esc = 0;
      else if (c == '\\') esc = 1;
      else if (c == '"') in_str = 0;
      continue;
    }
    if (c == '"') in_str = 1;
    else if (c == '{' || c == '[') {
      if (++depth > 3)
        return nc_st_fail(err, NC_ST_E_JSON, "header nested deeper than 3 levels at byte %zu", i);
      tokens++;
    } else if (c == '}' || c == ']') depth--;
    else if (c == ',' || c == ':') tokens++;
    if (tokens > NC_ST_MAX_VALUES)
      return nc_st_fail(err, NC_ST_E_JSON, "header has more than %d JSON values", NC_ST_MAX_VALUES);
  }
  return NC_OK;
}

static int cmp_offset(const void *a, const void *b) {
  const nc_st_info *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Index merge sort by name (qsort has no context argument in C11, and no globals here). */
static void sort_by_name(int *idx, int *tmp, int n, const nc_st_info *t) {
  if (n < 2) return;
  int h = n / 2;
  sort_by_name(idx, tmp, h, t);
  sort_by_name(idx + h, tmp, n - h, t);
  int i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = strcmp(t[idx[i]].name, t[idx[j]].name) <= 0 ? idx[i++] : idx[j++];
  while (i < h) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  memcpy(idx, tmp, sizeof(int) * (size_t)n);
}

static int get_u64(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

/* Parses one tensor entry into *t (name already set). */
static int parse_info(const char *name, json_t *v, nc_st_info *t, nc_st_error *err) {
  if (!json_is_object(v))
    return nc_st_fail(err, NC_ST_E_TENSOR_INFO, "tensor '%s': info is not an object", name);
  json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
  json_t *of = json_object_get(v, "data_offsets");
  if (!dt || !sh || !of || json_object_size(v) != 3)
    return nc_st_fail(err, NC_ST_E_TENSOR_INFO,
                      "tensor '%s': info must have exactly dtype, shape and data_offsets", name);
  if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(of))
    return nc_st_fail(err, NC_ST_E_TENSOR_INFO, "tensor '%s': mistyped dtype/shape/data_offsets",
                      name);
  if (nc_dtype_parse(json_string_value(dt), &t->dtype) != NC_OK)
    return nc_st_fail(err, NC_ST_E_DTYPE, "tensor '%s': unknown dtype '%.32s'", name,
                      json_string_value(dt));
  size_t nd = json_array_size(sh);
  if (nd > NC_ST_MAX_DIMS)
    return nc_st_fail(err, NC_ST_E_SHAPE, "tensor '%s': %zu dims (max %d)", name, nd, NC_ST_MAX_DIMS);
  t->ndim = (int)nd;
  uint64_t numel = 1;
  for (size_t d = 0; d < nd; d++) {
    json_t *x = json_array_get(sh, d);
    if (!json_is_integer(x) || json_integer_value(x) < 0 ||
        json_integer_value(x) > NC_ST_MAX_DIM)
      return nc_st_fail(err, NC_ST_E_SHAPE, "tensor '%s': dim %zu is not an integer in [0, 2^31]",
                        name, d);
    t->shape[d] = (int64_t)json_integer_value(x);
    if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel))
      return nc_st_fail(err, NC_ST_E_OVERFLOW, "tensor '%s': element count overflows", name);
  }
  uint64_t bytes;
  if (numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, nc_dtype_size(t->dtype), &bytes))
    return nc_st_fail(err, NC_ST_E_OVERFLOW, "tensor '%s': byte size overflows", name);
  t->numel = (int64_t)numel;
  if (json_array_size(of) != 2 || get_u64(json_array_get(of, 0), &t->begin) ||
      get_u64(json_array_get(of, 1), &t->end))
    return nc_st_fail(err, NC_ST_E_OFFSETS, "tensor '%s': data_offsets must be [BEGIN, END] >= 0",
                      name);
  if (t->begin > t->end)
    return nc_st_fail(err, NC_ST_E_OFFSETS, "tensor '%s': BEGIN %llu > END %llu", name,
                      (unsigned long long)t->begin, (unsigned long long)t->end);
  if (t->end - t->begin != bytes)
    return nc_st_fail(err, NC_ST_E_SIZE, "tensor '%s': data_offsets span %llu bytes, %s%s needs %llu",
                      name, (unsigned long long)(t->end - t->begin), nc_dtype_name(t->dtype),
                      nd ? " x shape" : "", (unsigned long long)bytes);
  return NC_OK;
}

static int parse_meta(nc_st_file *f, json_t *m, nc_st_error *err) {
  if (json_is_null(m)) return NC_OK;
  if (!json_is_object(m)) return nc_st_fail(err, NC_ST_E_METADATA, "__metadata__ is not an object");
  size_t n = json_object_size(m);
  if (n > NC_ST_MAX_META)
    return nc_st_fail(err, NC_ST_E_METADATA, "__metadata__ has %zu entries (max %d)", n, NC_ST_MAX_META);
  f->mkey = calloc(n ? n : 1, sizeof(char *));
  f->mval = calloc(n ? n : 1, sizeof(char *));
  if (!f->mkey || !f->mval) return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  const char *k;
  json_t *v;
  json_object_foreach(m, k, v) {
    if (!json_is_string(v))
      return nc_st_fail(err, NC_ST_E_METADATA, "__metadata__['%.64s'] is not a string", k);
    f->mkey[f->nmeta] = strdup(k);
    f->mval[f->nmeta] = strdup(json_string_value(v));
    f->nmeta++;
    if (!f->mkey[f->nmeta - 1] || !f->mval[f->nmeta - 1])
      return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  }
  return NC_OK;
}

/* Validates the N header bytes h given the size of the data section; fills f. */
static int parse_header(nc_st_file *f, const uint8_t *h, size_t n, uint64_t data_size,
                        nc_st_error *err) {
  size_t bad = utf8_bad_at(h, n);
  if (bad != n) return nc_st_fail(err, NC_ST_E_UTF8, "header is not UTF-8 (byte %zu)", bad);
  if (h[0] != '{')
    return nc_st_fail(err, NC_ST_E_MAGIC, "not a safetensors file: header does not start with '{'");
  int rc = prescan(h, n, err);
  if (rc) return rc;
  json_error_t je;
  json_t *root = json_loadb((const char *)h, n, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    if (json_error_code(&je) == json_error_duplicate_key)
      return nc_st_fail(err, NC_ST_E_DUPLICATE, "duplicate key in header: %s", je.text);
    return nc_st_fail(err, NC_ST_E_JSON, "header is not valid JSON: %s (byte %d)", je.text,
                      je.position);
  }
  rc = NC_OK;
  if (!json_is_object(root)) {
    rc = nc_st_fail(err, NC_ST_E_JSON, "header is not a JSON object");
    goto out;
  }
  json_t *meta = json_object_get(root, "__metadata__");
  size_t nt = json_object_size(root) - (meta ? 1 : 0);
  if (nt > NC_ST_MAX_TENSORS) {
    rc = nc_st_fail(err, NC_ST_E_TOO_MANY, "%zu tensors (max %d)", nt, NC_ST_MAX_TENSORS);
    goto out;
  }
  if (meta && (rc = parse_meta(f, meta, err))) goto out;
  f->t = calloc(nt ? nt : 1, sizeof *f->t);
  f->by_name = calloc(nt ? nt : 1, sizeof(int));
  int *tmp = calloc(nt ? nt : 1, sizeof(int));
  if (!f->t || !f->by_name || !tmp) {
    free(tmp);
    rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (v == meta) continue;
    size_t len = strlen(k);
    if (len == 0 || len > NC_ST_MAX_NAME) {
      rc = nc_st_fail(err, NC_ST_E_TENSOR_INFO, "tensor name of %zu bytes (1..%d allowed)", len,
                      NC_ST_MAX_NAME);
      break;
    }
    nc_st_info *t = &f->t[f->count];
    if (!(t->name = strdup(k))) {
      rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
      break;
    }
    f->count++;
    if ((rc = parse_info(k, v, t, err))) break;
  }
  if (!rc) {
    qsort(f->t, (size_t)f->count, sizeof *f->t, cmp_offset);
    uint64_t expect = 0;
    for (int i = 0; i < f->count && !rc; i++) {
      const nc_st_info *t = &f->t[i];
      if (t->begin > expect)
        rc = nc_st_fail(err, NC_ST_E_HOLE, "tensor '%s' starts at %llu, previous data ends at %llu",
                        t->name, (unsigned long long)t->begin, (unsigned long long)expect);
      else if (t->begin < expect)
        rc = nc_st_fail(err, NC_ST_E_OFFSETS, "tensor '%s' [%llu, %llu) overlaps data ending at %llu",
                        t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)expect);
      expect = t->end;
    }
    if (!rc && expect > data_size)
      rc = nc_st_fail(err, NC_ST_E_TRUNCATED, "truncated: tensors need %llu data bytes, file has %llu",
                      (unsigned long long)expect, (unsigned long long)data_size);
    else if (!rc && expect < data_size)
      rc = nc_st_fail(err, NC_ST_E_TRAILING, "%llu bytes after the last tensor (data ends at %llu)",
                      (unsigned long long)(data_size - expect), (unsigned long long)expect);
  }
  if (!rc) {
    for (int i = 0; i < f->count; i++) f->by_name[i] = i;
    sort_by_name(f->by_name, tmp, f->count, f->t);
  }
  free(tmp);
out:
  json_decref(root);
  return rc;
}

static int looks_pickled(const uint8_t *b, uint64_t n) {
  if (n >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return 1; /* zip (.pt) */
  if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return 1;               /* pickle    */
  return 0;
}

/* Common opening: prefix = the first min(size, 8) bytes. Checks sizes and returns N. */
static int check_prefix(const uint8_t *p, uint64_t size, uint64_t *hlen, nc_st_error *err) {
  if (looks_pickled(p, size))
    return nc_st_fail(err, NC_ST_E_PICKLE, "unsupported checkpoint format (pickle is never loaded)");
  if (size < 8) return nc_st_fail(err, NC_ST_E_TOO_SMALL, "file of %llu bytes (< 8)", (unsigned long long)size);
  uint64_t n = 0;
  memcpy(&n, p, 8);
  if (n == 0) return nc_st_fail(err, NC_ST_E_TOO_SMALL, "header length is 0");
  if (n > NC_ST_MAX_HEADER)
    return nc_st_fail(err, NC_ST_E_HEADER_TOO_LARGE, "header length %llu > %u", (unsigned long long)n,
                      NC_ST_MAX_HEADER);
  if (n > size - 8)
    return nc_st_fail(err, NC_ST_E_HEADER_LENGTH, "header length %llu exceeds the file (%llu bytes)",
                      (unsigned long long)n, (unsigned long long)size);
  *hlen = n;
  return NC_OK;
}

static int pread_full(int fd, void *dst, size_t n, uint64_t off, nc_st_error *err) {
  uint8_t *p = dst;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return nc_st_fail(err, NC_ST_E_IO, "read failed: %s", strerror(errno));
    if (r == 0) return nc_st_fail(err, NC_ST_E_TRUNCATED, "file shrank while reading");
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return NC_OK;
}

static int open_fd(int fd, nc_st_file **out, nc_st_error *err) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return nc_st_fail(err, NC_ST_E_IO, "fstat: %s", strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return nc_st_fail(err, NC_ST_E_IO, "not a regular file");
  }
  uint64_t size = (uint64_t)st.st_size, hlen = 0;
  uint8_t pre[8] = {0};
  int rc = pread_full(fd, pre, size < 8 ? (size_t)size : 8, 0, err);
  if (!rc) rc = check_prefix(pre, size, &hlen, err);
  uint8_t *h = NULL;
  nc_st_file *f = NULL;
  if (!rc && !(h = malloc(hlen))) rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  if (!rc) rc = pread_full(fd, h, hlen, 8, err);
  if (!rc && !(f = calloc(1, sizeof *f))) rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  if (!rc) {
    f->fd = fd;
    f->size = size;
    f->hlen = hlen;
    rc = parse_header(f, h, hlen, size - 8 - hlen, err);
  }
  free(h);
  if (rc) {
    if (f) nc_st_close(f);
    else close(fd);
    return rc;
  }
  *out = f;
  return NC_OK;
}

static int open_errno(int e, const char *what, nc_st_error *err) {
  if (e == ELOOP) return nc_st_fail(err, NC_ST_E_SYMLINK, "%.200s is a symlink (refused)", what);
  if (e == ENOENT) return nc_st_fail(err, NC_ST_E_NOTFOUND, "%.200s: no such file", what);
  return nc_st_fail(err, NC_ST_E_IO, "open %.200s: %s", what, strerror(e));
}

int nc_st_openat(int dirfd, const char *name, nc_st_file **out, nc_st_error *err) {
  if (!out) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  if (!name || !*name || strchr(name, '/'))
    return nc_st_fail(err, NC_ST_E_PATH, "file name must be non-empty without '/'");
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return open_errno(errno, name, err);
  return open_fd(fd, out, err);
}

int nc_st_open(const char *path, nc_st_file **out, nc_st_error *err) {
  if (!out || !path) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return open_errno(errno, path, err);
  return open_fd(fd, out, err);
}

int nc_st_open_mem(const void *buf, size_t len, nc_st_file **out, nc_st_error *err) {
  if (!out || (!buf && len)) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  const uint8_t *b = buf;
  uint64_t hlen = 0;
  int rc = check_prefix(b, len, &hlen, err);
  if (rc) return rc;
  nc_st_file *f = calloc(1, sizeof *f);
  if (!f) return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  f->fd = -1;
  f->mem = b;
  f->size = len;
  f->hlen = hlen;
  rc = parse_header(f, b + 8, (size_t)hlen, len - 8 - hlen, err);
  if (rc) {
    nc_st_close(f);
    return rc;
  }
  *out = f;
  return NC_OK;
}

/* ------------------------------------------------------------------------------ reads */

static int read_range(nc_st_file *f, uint64_t off, void *dst, size_t n, nc_st_error *err) {
  if (n == 0) return NC_OK;
  if (f->fd < 0) {
    memcpy(dst, f->mem + off, n);
    return NC_OK;
  }
  return pread_full(f->fd, dst, n, off, err);
}

int nc_st_read(nc_st_file *f, const nc_st_info *t, void *dst, size_t cap, nc_st_error *err) {
  if (!f || !t || (!dst && t->end > t->begin)) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  uint64_t n = t->end - t->begin;
  if (cap < n)
    return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': buffer of %zu bytes, need %llu", t->name, cap,
                      (unsigned long long)n);
  return read_range(f, 8 + f->hlen + t->begin, dst, (size_t)n, err);
}

static float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, 4);
  return x;
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, m = h & 0x3FF, u;
  if (e == 0x1F) u = sign | 0x7F800000u | (m << 13); /* inf / nan */
  else if (e != 0) u = sign | ((e + 112) << 23) | (m << 13);
  else if (m == 0) u = sign;
  else { /* subnormal: normalise */
    e = 113;
    while (!(m & 0x400)) { m <<= 1; e--; }
    u = sign | (e << 23) | ((m & 0x3FF) << 13);
  }
  float x;
  memcpy(&x, &u, 4);
  return x;
}

int nc_st_read_f32(nc_st_file *f, const nc_st_info *t, float *dst, int64_t n, nc_st_error *err) {
  if (!f || !t || (!dst && n)) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  if (n != t->numel)
    return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': %lld elements, caller expects %lld", t->name,
                      (long long)t->numel, (long long)n);
  if (t->dtype == NC_DT_F32) return nc_st_read(f, t, dst, (size_t)n * 4, err);
  if (t->dtype != NC_DT_BF16 && t->dtype != NC_DT_F16)
    return nc_st_fail(err, NC_ST_E_DTYPE, "tensor '%s': dtype %s is not a float type", t->name,
                      nc_dtype_name(t->dtype));
  uint16_t buf[8192];
  uint64_t off = 8 + f->hlen + t->begin;
  for (int64_t i = 0; i < n;) {
    int64_t k = n - i < 8192 ? n - i : 8192;
    int rc = read_range(f, off + (uint64_t)i * 2, buf, (size_t)k * 2, err);
    if (rc) return rc;
    for (int64_t j = 0; j < k; j++)
      dst[i + j] = t->dtype == NC_DT_BF16 ? bf16_to_f32(buf[j]) : f16_to_f32(buf[j]);
    i += k;
  }
  return NC_OK;
}

int nc_st_sha256(nc_st_file *f, uint8_t out[32], nc_st_error *err) {
  if (!f || !out) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  size_t chunk = 1 << 20;
  uint8_t *buf = f->fd >= 0 ? malloc(chunk) : NULL;
  int rc = NC_OK;
  if (!ctx || (f->fd >= 0 && !buf) || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    rc = nc_st_fail(err, NC_ST_E_NOMEM, "sha256 init failed");
    goto done;
  }
  for (uint64_t off = 0; off < f->size && !rc;) {
    size_t k = f->size - off < chunk ? (size_t)(f->size - off) : chunk;
    const uint8_t *p = f->mem ? f->mem + off : buf;
    if (!f->mem) rc = pread_full(f->fd, buf, k, off, err);
    if (!rc && EVP_DigestUpdate(ctx, p, k) != 1) rc = nc_st_fail(err, NC_ST_E_IO, "sha256 failed");
    off += k;
  }
  unsigned int len = 32;
  if (!rc && EVP_DigestFinal_ex(ctx, out, &len) != 1) rc = nc_st_fail(err, NC_ST_E_IO, "sha256 failed");
done:
  EVP_MD_CTX_free(ctx);
  free(buf);
  return rc;
}
