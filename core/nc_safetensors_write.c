/* nc_safetensors_write.c — safetensors writer: header, padded to 8 bytes, data, and the
 * temp-file + fsync + rename protocol. See nc_safetensors.h. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nc_err.h"
#include "nc_safetensors.h"

typedef struct writer {
  int fd;
  EVP_MD_CTX *md;
  uint8_t *buf;
  size_t len, cap;
  nc_st_error *err;
} writer;

static int io_fail(nc_st_error *err, int e, const char *what) {
  if (e == ENOSPC || e == EDQUOT)
    return nc_st_fail(err, NC_ST_E_NOSPC, "%s: %s", what, strerror(e));
  return nc_st_fail(err, NC_ST_E_IO, "%s: %s", what, strerror(e));
}

static int write_all(writer *w, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(w->fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_fail(w->err, errno, "write");
    p += r;
    n -= (size_t)r;
  }
  return NC_OK;
}

static int flush(writer *w) {
  int rc = write_all(w, w->buf, w->len);
  w->len = 0;
  return rc;
}

/* Appends n bytes (hashing them); large blocks bypass the buffer. */
static int emit(writer *w, const void *p, size_t n) {
  if (n == 0) return NC_OK; /* zero-size tensors may have data == NULL */
  if (EVP_DigestUpdate(w->md, p, n) != 1) return nc_st_fail(w->err, NC_ST_E_IO, "sha256 failed");
  if (w->len + n > w->cap) {
    int rc = flush(w);
    if (rc) return rc;
    if (n >= w->cap) return write_all(w, p, n);
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
  return NC_OK;
}

static uint16_t f32_to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7FFFu + ((u >> 16) & 1u);                                         /* nearest even */
  return (uint16_t)(u >> 16);
}

static int tensor_bytes(const nc_st_tensor *t, uint64_t *bytes, nc_st_error *err) {
  size_t es = nc_dtype_size(t->dtype);
  if (!t->name || !*t->name || strlen(t->name) > NC_ST_MAX_NAME || !strcmp(t->name, "__metadata__"))
    return nc_st_fail(err, NC_ST_E_ARG, "bad tensor name");
  if (!es) return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': bad dtype", t->name);
  if (t->from_f32 && t->dtype != NC_DT_BF16)
    return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': from_f32 needs BF16", t->name);
  if (t->ndim < 0 || t->ndim > NC_ST_MAX_DIMS)
    return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': bad ndim %d", t->name, t->ndim);
  uint64_t n = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] < 0 || t->shape[d] > NC_ST_MAX_DIM ||
        __builtin_mul_overflow(n, (uint64_t)t->shape[d], &n))
      return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': bad shape", t->name);
  }
  if (__builtin_mul_overflow(n, es, bytes) || *bytes > (uint64_t)INT64_MAX)
    return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': too large", t->name);
  if (n && !t->data) return nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': NULL data", t->name);
  return NC_OK;
}

/* The header text, padded with spaces to a multiple of 8 bytes. */
static char *build_header(const nc_st_tensor *t, int n, const nc_st_kv *meta, int nmeta,
                          size_t *len, nc_st_error *err) {
  json_t *root = json_object();
  int rc = root ? NC_OK : nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  if (!rc && nmeta > 0) {
    json_t *m = json_object();
    if (!m || json_object_set_new(root, "__metadata__", m))
      rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
    for (int i = 0; !rc && i < nmeta; i++) {
      if (!meta[i].key || !meta[i].value || json_object_get(m, meta[i].key))
        rc = nc_st_fail(err, NC_ST_E_ARG, "bad or duplicate metadata key");
      else if (json_object_set_new(m, meta[i].key, json_string(meta[i].value)))
        rc = nc_st_fail(err, NC_ST_E_ARG, "metadata '%s' is not UTF-8", meta[i].key);
    }
  }
  uint64_t off = 0;
  for (int i = 0; !rc && i < n; i++) {
    uint64_t bytes;
    if ((rc = tensor_bytes(&t[i], &bytes, err))) break;
    if (json_object_get(root, t[i].name)) {
      rc = nc_st_fail(err, NC_ST_E_ARG, "duplicate tensor name '%s'", t[i].name);
      break;
    }
    json_t *shape = json_array();
    for (int d = 0; shape && d < t[i].ndim; d++) json_array_append_new(shape, json_integer(t[i].shape[d]));
    json_t *info = json_pack("{s:s,s:o,s:[I,I]}", "dtype", nc_dtype_name(t[i].dtype), "shape",
                             shape, "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
    if (!info || json_object_set_new(root, t[i].name, info)) {
      rc = nc_st_fail(err, NC_ST_E_ARG, "tensor '%s': name is not UTF-8 or out of memory", t[i].name);
      break;
    }
    off += bytes;
  }
  char *s = NULL;
  if (!rc && !(s = json_dumps(root, JSON_COMPACT))) rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  json_decref(root);
  if (rc) return NULL;
  size_t l = strlen(s), padded = (l + 7) & ~(size_t)7;
  if (padded > NC_ST_MAX_HEADER) {
    free(s);
    nc_st_fail(err, NC_ST_E_ARG, "header of %zu bytes exceeds the cap", padded);
    return NULL;
  }
  char *p = realloc(s, padded + 1);
  if (!p) {
    free(s);
    nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
    return NULL;
  }
  memset(p + l, ' ', padded - l);
  p[padded] = 0;
  *len = padded;
  return p;
}

static int write_body(writer *w, const char *hdr, size_t hlen, const nc_st_tensor *t, int n,
                      const nc_st_write_opts *o) {
  uint64_t n64 = hlen;
  int rc = emit(w, &n64, 8);
  if (!rc) rc = emit(w, hdr, hlen);
  if (!rc && o && o->fault && o->fault(o->fault_ctx, "header"))
    rc = nc_st_fail(w->err, NC_ST_E_IO, "fault injected after header");
  for (int i = 0; !rc && i < n; i++) {
    uint64_t bytes;
    tensor_bytes(&t[i], &bytes, NULL);
    if (!t[i].from_f32) {
      rc = emit(w, t[i].data, (size_t)bytes);
      continue;
    }
    const float *src = t[i].data;
    uint16_t tmp[4096];
    for (uint64_t j = 0, numel = bytes / 2; !rc && j < numel;) {
      uint64_t k = numel - j < 4096 ? numel - j : 4096;
      for (uint64_t q = 0; q < k; q++) tmp[q] = f32_to_bf16(src[j + q]);
      rc = emit(w, tmp, (size_t)k * 2);
      j += k;
    }
  }
  if (!rc) rc = flush(w);
  if (!rc && o && o->fault && o->fault(o->fault_ctx, "data"))
    rc = nc_st_fail(w->err, NC_ST_E_IO, "fault injected after data");
  return rc;
}

/* What an atomic write puts in the file: a safetensors body or raw bytes. */
typedef struct body {
  const char *hdr;
  size_t hlen;
  const nc_st_tensor *t;
  int n;
  const void *raw; /* raw bytes instead of a safetensors body when non-NULL */
  size_t raw_len;
} body;

static int write_raw(writer *w, const body *b, const nc_st_write_opts *o) {
  int rc = emit(w, b->raw, b->raw_len);
  if (!rc) rc = flush(w);
  if (!rc && o && o->fault && o->fault(o->fault_ctx, "data"))
    rc = nc_st_fail(w->err, NC_ST_E_IO, "fault injected after data");
  return rc;
}

/* temp file, body, fsync, rename, fsync(dir); the temp file is removed on failure. */
static int atomic_write(int dirfd, const char *name, const body *b, const nc_st_write_opts *opts,
                        uint8_t sha256[32], nc_st_error *err) {
  char tmp[512];
  if (snprintf(tmp, sizeof tmp, ".%s.tmp.%ld", name, (long)getpid()) >= 256)
    return nc_st_fail(err, NC_ST_E_ARG, "file name too long");
  writer w = {.fd = -1, .err = err, .cap = 1 << 20};
  w.buf = malloc(w.cap);
  w.md = EVP_MD_CTX_new();
  int rc = NC_OK;
  if (!w.buf || !w.md || EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) != 1)
    rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  if (!rc) {
    w.fd = openat(dirfd, tmp, flags, 0644);
    if (w.fd < 0 && errno == EEXIST) { /* left by a crashed writer with our pid */
      unlinkat(dirfd, tmp, 0);
      w.fd = openat(dirfd, tmp, flags, 0644);
    }
    if (w.fd < 0) rc = io_fail(err, errno, "create temp file");
  }
  int created = w.fd >= 0;
  if (!rc) rc = b->raw ? write_raw(&w, b, opts) : write_body(&w, b->hdr, b->hlen, b->t, b->n, opts);
  if (!rc && fsync(w.fd) != 0) rc = io_fail(err, errno, "fsync");
  if (w.fd >= 0 && close(w.fd) != 0 && !rc) rc = io_fail(err, errno, "close");
  if (!rc && opts && opts->fault && opts->fault(opts->fault_ctx, "fsync"))
    rc = nc_st_fail(err, NC_ST_E_IO, "fault injected after fsync");
  if (!rc && renameat(dirfd, tmp, dirfd, name) != 0) rc = io_fail(err, errno, "rename");
  if (rc && created) unlinkat(dirfd, tmp, 0);
  if (!rc) {
    if (opts && opts->fault && opts->fault(opts->fault_ctx, "rename"))
      rc = nc_st_fail(err, NC_ST_E_IO, "fault injected after rename");
    int dfd = dirfd == AT_FDCWD ? open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dirfd;
    if (!rc && (dfd < 0 || fsync(dfd) != 0)) rc = io_fail(err, errno, "fsync directory");
    if (dirfd == AT_FDCWD && dfd >= 0) close(dfd);
  }
  unsigned int dl = 32;
  uint8_t digest[32];
  if (!rc && EVP_DigestFinal_ex(w.md, digest, &dl) != 1) rc = nc_st_fail(err, NC_ST_E_IO, "sha256 failed");
  if (!rc && sha256) memcpy(sha256, digest, 32);
  EVP_MD_CTX_free(w.md);
  free(w.buf);
  return rc;
}

static int bad_name(const char *name) { return !name || !*name || strchr(name, '/'); }

int nc_st_write(int dirfd, const char *name, const nc_st_tensor *t, int n, const nc_st_kv *meta,
                int nmeta, const nc_st_write_opts *opts, uint8_t sha256[32], nc_st_error *err_out) {
  nc_st_error local, *err = err_out ? err_out : &local;
  if (bad_name(name) || n < 0 || (n && !t) || nmeta < 0 || nmeta > NC_ST_MAX_META ||
      (nmeta && !meta) || n > NC_ST_MAX_TENSORS)
    return nc_st_fail(err, NC_ST_E_ARG, "bad arguments to nc_st_write");
  body b = {0};
  b.t = t;
  b.n = n;
  b.hdr = build_header(t, n, meta, nmeta, &b.hlen, err);
  if (!b.hdr) return nc_st_errkind_code(err->kind);
  int rc = atomic_write(dirfd, name, &b, opts, sha256, err);
  free((char *)b.hdr);
  return rc;
}

int nc_st_write_file(int dirfd, const char *name, const void *data, size_t len,
                     const nc_st_write_opts *opts, nc_st_error *err_out) {
  nc_st_error local, *err = err_out ? err_out : &local;
  if (bad_name(name) || (!data && len)) return nc_st_fail(err, NC_ST_E_ARG, "bad arguments");
  body b = {0};
  b.raw = data ? data : "";
  b.raw_len = len;
  return atomic_write(dirfd, name, &b, opts, NULL, err);
}

int nc_st_is_temp_name(const char *name, long *pid) {
  if (!name || name[0] != '.') return 0;
  const char *t = strstr(name, ".tmp.");
  if (!t || t == name) return 0;
  const char *d = t + 5;
  while (strstr(d, ".tmp.")) { /* the last occurrence */
    t = strstr(d, ".tmp.");
    d = t + 5;
  }
  if (!*d) return 0;
  long v = 0;
  for (const char *c = d; *c; c++) {
    if (*c < '0' || *c > '9' || v > 100000000L) return 0;
    v = v * 10 + (*c - '0');
  }
  if (pid) *pid = v;
  return 1;
}
