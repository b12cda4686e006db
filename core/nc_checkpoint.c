/* nc_checkpoint.c — model and optimizer checkpoint files: what goes in them, validation
 * against the model config before allocation, loading, saving. See nc_checkpoint.h. */
#include "nc_checkpoint.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_checkpoint_internal.h"
#include "nc_err.h"

/* ------------------------------------------------------------------ checks */

/* "format": a nanochat-c version newer than ours is refused; foreign values are ignored. */
static int check_format(const nc_st_file *f, nc_st_error *err) {
  const char *fmt = nc_st_meta(f, "format");
  const char *pre = "nanochat-c/";
  if (!fmt || strncmp(fmt, pre, strlen(pre)) != 0) return NC_OK;
  const char *v = fmt + strlen(pre);
  long ver = 0;
  int nd = 0;
  for (; *v >= '0' && *v <= '9' && nd < 9; v++, nd++) ver = ver * 10 + (*v - '0');
  if (nd == 0 || *v)
    return nc_st_fail(err, NC_ST_E_VERSION, "unreadable checkpoint format '%.40s'", fmt);
  if (ver > NC_CKPT_FORMAT_VERSION)
    return nc_st_fail(err, NC_ST_E_VERSION, "checkpoint format version %ld is newer than %d", ver,
                      NC_CKPT_FORMAT_VERSION);
  return NC_OK;
}

static int is_float(nc_dtype dt) { return dt == NC_DT_F32 || dt == NC_DT_BF16 || dt == NC_DT_F16; }

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int d = 0; d < ndim && k < len; d++)
    k += (size_t)snprintf(buf + k, len - k, "%s%lld", d ? "," : "", (long long)shape[d]);
  if (k < len) snprintf(buf + k, len - k, "]");
}

/* The file's tensors must be exactly `want` (names, shapes) with dtypes accepted by ok(). */
static int check_set(const nc_st_file *f, const char *const *names, const int *ndims,
                     const int64_t (*shapes)[NC_MAX_DIMS], int n, int f32_only, nc_st_error *err) {
  for (int i = 0; i < n; i++) {
    const nc_st_info *t = nc_st_find(f, names[i]);
    if (!t) return nc_st_fail(err, NC_ST_E_MISSING, "tensor '%s' is missing", names[i]);
    int same = t->ndim == ndims[i];
    for (int d = 0; same && d < ndims[i]; d++) same = t->shape[d] == shapes[i][d];
    if (!same) {
      char a[96], b[96];
      shape_str(a, sizeof a, t->ndim, t->shape);
      shape_str(b, sizeof b, ndims[i], shapes[i]);
      return nc_st_fail(err, NC_ST_E_SHAPE_MISMATCH, "tensor '%s' has shape %s, config needs %s",
                        names[i], a, b);
    }
    if (f32_only ? t->dtype != NC_DT_F32 : !is_float(t->dtype))
      return nc_st_fail(err, NC_ST_E_DTYPE, "tensor '%s' has dtype %s (need %s)", names[i],
                        nc_dtype_name(t->dtype), f32_only ? "F32" : "F32, BF16 or F16");
  }
  if (nc_st_count(f) != n) { /* all wanted names are present, so something is extra */
    for (int i = 0; i < nc_st_count(f); i++) {
      const char *nm = nc_st_at(f, i)->name;
      int found = 0;
      for (int j = 0; j < n && !found; j++) found = !strcmp(nm, names[j]);
      if (!found) return nc_st_fail(err, NC_ST_E_EXTRA, "unexpected tensor '%.200s'", nm);
    }
    return nc_st_fail(err, NC_ST_E_EXTRA, "file has %d tensors, expected %d", nc_st_count(f), n);
  }
  return NC_OK;
}

/* A tensor list as parallel arrays, for check_set. */
typedef struct want {
  const char **names;
  int *ndims;
  int64_t (*shapes)[NC_MAX_DIMS];
  int n;
} want;

static void want_free(want *w) {
  free(w->names);
  free(w->ndims);
  free(w->shapes);
}

static int want_alloc(want *w, int n, nc_st_error *err) {
  w->n = n;
  w->names = calloc((size_t)n + 1, sizeof *w->names);
  w->ndims = calloc((size_t)n + 1, sizeof *w->ndims);
  w->shapes = calloc((size_t)n + 1, sizeof *w->shapes);
  if (!w->names || !w->ndims || !w->shapes) {
    want_free(w);
    return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  }
  return NC_OK;
}

int nc_ckpt_check_model(const nc_st_file *f, nc_model_config *cfg, nc_st_error *err) {
  if (!f || !cfg) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  int rc = check_format(f, err);
  if (rc) return rc;
  const char *cj = nc_st_meta(f, "model_config");
  if (!cj) return nc_st_fail(err, NC_ST_E_CONFIG, "__metadata__ has no model_config");
  char msg[200];
  if (nc_model_config_from_json_string(cj, strlen(cj), cfg, msg, sizeof msg) != NC_OK)
    return nc_st_fail(err, NC_ST_E_CONFIG, "model_config: %s", msg);
  nc_model_layout lay;
  if (nc_model_layout_compute(cfg, &lay) != NC_OK)
    return nc_st_fail(err, NC_ST_E_CONFIG, "model_config: invalid");
  nc_layout_tensor *lt = malloc(sizeof *lt * (size_t)lay.n_tensors);
  want w;
  if (!lt) return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  if ((rc = want_alloc(&w, lay.n_tensors, err))) {
    free(lt);
    return rc;
  }
  nc_model_layout_tensors(cfg, lt, lay.n_tensors);
  for (int i = 0; i < lay.n_tensors; i++) {
    w.names[i] = lt[i].name;
    w.ndims[i] = lt[i].ndim;
    w.shapes[i][0] = lt[i].shape[0];
    w.shapes[i][1] = lt[i].shape[1];
  }
  rc = check_set(f, w.names, w.ndims, (const int64_t(*)[NC_MAX_DIMS])w.shapes, w.n, 0, err);
  want_free(&w);
  free(lt);
  return rc;
}

static int scan_finite(const float *x, int64_t n, const char *name, nc_st_error *err) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return nc_st_fail(err, NC_ST_E_NONFINITE, "tensor '%s' has a non-finite value at %lld", name,
                        (long long)i);
  return NC_OK;
}

int nc_ckpt_model_from_file(nc_st_file *f, const nc_model_config *cfg,
                            const nc_ckpt_load_opts *opts, nc_model **out, nc_st_error *err) {
  if (!f || !cfg || !out) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  nc_model *m;
  char msg[200];
  int rc = nc_model_create(cfg, &m, msg, sizeof msg);
  if (rc == NC_ENOMEM) return nc_st_fail(err, NC_ST_E_NOMEM, "out of memory for the model");
  if (rc) return nc_st_fail(err, NC_ST_E_CONFIG, "model_config: %s", msg);
  int n;
  nc_param *ps = nc_model_params(m, &n);
  for (int i = 0; i < n && !rc; i++) {
    const nc_st_info *t = nc_st_find(f, ps[i].name);
    if (!t) rc = nc_st_fail(err, NC_ST_E_MISSING, "tensor '%s' is missing", ps[i].name);
    else rc = nc_st_read_f32(f, t, ps[i].data, ps[i].numel, err);
    if (!rc && opts && opts->reject_nonfinite) rc = scan_finite(ps[i].data, ps[i].numel, ps[i].name, err);
  }
  if (rc) {
    nc_model_free(m);
    return rc;
  }
  *out = m;
  return NC_OK;
}

static int hex_equal(const uint8_t d[32], const char *hex) {
  static const char *digits = "0123456789abcdef";
  if (!hex || strlen(hex) != 64) return 0;
  for (int i = 0; i < 32; i++) {
    char hi = hex[2 * i], lo = hex[2 * i + 1];
    if (hi >= 'A' && hi <= 'F') hi = (char)(hi - 'A' + 'a');
    if (lo >= 'A' && lo <= 'F') lo = (char)(lo - 'A' + 'a');
    if (hi != digits[d[i] >> 4] || lo != digits[d[i] & 15]) return 0;
  }
  return 1;
}

static void to_hex(const uint8_t d[32], char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int nc_ckpt_read_model_file(int dirfd, const char *name, const nc_ckpt_load_opts *opts,
                            nc_model **out, char **meta_json, nc_st_error *err) {
  if (!out) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  *out = NULL;
  if (meta_json) *meta_json = NULL;
  nc_st_file *f;
  int rc = nc_st_openat(dirfd, name, &f, err);
  if (rc) return rc;
  if (opts && opts->expected_sha256) {
    uint8_t d[32];
    rc = nc_st_sha256(f, d, err);
    if (!rc && !hex_equal(d, opts->expected_sha256)) {
      char got[65];
      to_hex(d, got);
      rc = nc_st_fail(err, NC_ST_E_HASH, "SHA-256 %s differs from the expected %.64s", got,
                      opts->expected_sha256);
    }
  }
  nc_model_config cfg;
  if (!rc) rc = nc_ckpt_check_model(f, &cfg, err);
  if (!rc && opts && opts->expected_vocab_size > 0 && cfg.vocab_size != opts->expected_vocab_size)
    rc = nc_st_fail(err, NC_ST_E_CONFIG, "model vocab_size %d differs from the tokenizer's %d",
                    cfg.vocab_size, opts->expected_vocab_size);
  char *meta = NULL;
  if (!rc && meta_json && nc_st_meta(f, "meta") && !(meta = strdup(nc_st_meta(f, "meta"))))
    rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  if (!rc) rc = nc_ckpt_model_from_file(f, &cfg, opts, out, err);
  nc_st_close(f);
  if (rc) {
    free(meta);
    return rc;
  }
  if (meta_json) *meta_json = meta;
  return NC_OK;
}

/* ------------------------------------------------------------------ saving */

/* meta JSON with "model_config" set, and "step" set to `step` (step < 0: kept when present,
 * else 0); malloc'd compact or indented text. */
static char *make_meta(const char *meta_json, int64_t step, const nc_model_config *cfg, int indent,
                       nc_st_error *err) {
  json_t *root;
  if (meta_json) {
    json_error_t je;
    root = json_loads(meta_json, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
      json_decref(root);
      nc_st_fail(err, NC_ST_E_ARG, "meta_json is not a JSON object");
      return NULL;
    }
  } else {
    root = json_object();
  }
  json_t *mc = nc_model_config_to_json(cfg);
  char *s = NULL;
  if (step < 0) step = json_is_integer(json_object_get(root, "step"))
                           ? json_integer_value(json_object_get(root, "step"))
                           : 0;
  if (root && mc && !json_object_set_new(root, "step", json_integer(step)) &&
      !json_object_set_new(root, "model_config", mc))
    s = json_dumps(root, indent ? JSON_INDENT(2) | JSON_REAL_PRECISION(17)
                                : JSON_COMPACT | JSON_REAL_PRECISION(17));
  else
    json_decref(mc);
  json_decref(root);
  if (!s) nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
  return s;
}

/* Forwards a fault point with a "<file>:" prefix to the caller's hook. */
typedef struct fault_fwd {
  const nc_ckpt_save_opts *opts;
  const char *file;
} fault_fwd;

static int fault_tramp(void *ctx, const char *point) {
  fault_fwd *f = ctx;
  char buf[64];
  snprintf(buf, sizeof buf, "%s:%s", f->file, point);
  return f->opts->fault(f->opts->fault_ctx, buf);
}

static nc_st_write_opts write_opts(const nc_ckpt_save_opts *opts, fault_fwd *fw, const char *file) {
  nc_st_write_opts w = {NULL, NULL};
  if (opts && opts->fault) {
    fw->opts = opts;
    fw->file = file;
    w.fault = fault_tramp;
    w.fault_ctx = fw;
  }
  return w;
}

int nc_ckpt_write_model_file(int dirfd, const char *name, nc_model *m, const char *meta_json,
                             const nc_ckpt_save_opts *opts, char sha256_hex[65],
                             nc_st_error *err) {
  if (!m || !name) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  const nc_model_config *cfg = nc_model_get_config(m);
  char *meta = make_meta(meta_json, -1, cfg, 0, err), *cj = nc_model_config_to_json_string(cfg);
  int n;
  nc_param *ps = nc_model_params(m, &n);
  nc_st_tensor *t = calloc((size_t)n, sizeof *t);
  int rc = NC_OK;
  if (!meta || !cj || !t) {
    rc = meta ? nc_st_fail(err, NC_ST_E_NOMEM, "out of memory") : nc_st_errkind_code(err ? err->kind : NC_ST_E_ARG);
    goto out;
  }
  for (int i = 0; i < n; i++) {
    int bf = opts && opts->bf16_embeddings &&
             (ps[i].kind == NC_PK_WTE || ps[i].kind == NC_PK_VALUE_EMBED);
    t[i].name = ps[i].name;
    t[i].dtype = bf ? NC_DT_BF16 : NC_DT_F32;
    t[i].from_f32 = bf;
    t[i].ndim = ps[i].ndim;
    for (int d = 0; d < ps[i].ndim; d++) t[i].shape[d] = ps[i].shape[d];
    t[i].data = ps[i].data;
  }
  nc_st_kv kv[] = {{"format", NC_CKPT_FORMAT}, {"model_config", cj}, {"meta", meta}};
  fault_fwd fw;
  nc_st_write_opts wo = write_opts(opts, &fw, "model");
  uint8_t d[32];
  rc = nc_st_write(dirfd, name, t, n, kv, 3, &wo, d, err);
  if (!rc && sha256_hex) to_hex(d, sha256_hex);
out:
  free(meta);
  free(cj);
  free(t);
  return rc;
}

static int write_optim_file(int dirfd, const char *name, nc_optim *o, const nc_ckpt_save_opts *opts,
                            nc_st_error *err) {
  int n;
  const nc_param *vs = nc_optim_state(o, &n);
  nc_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
  char *oj = nc_optim_meta_to_json(o);
  int rc = NC_OK;
  if (!t || !oj) {
    rc = nc_st_fail(err, NC_ST_E_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    t[i].name = vs[i].name;
    t[i].dtype = NC_DT_F32;
    t[i].ndim = vs[i].ndim;
    for (int d = 0; d < vs[i].ndim; d++) t[i].shape[d] = vs[i].shape[d];
    t[i].data = vs[i].data;
  }
  nc_st_kv kv[] = {{"format", NC_CKPT_FORMAT}, {"optimizer", oj}};
  fault_fwd fw;
  nc_st_write_opts wo = write_opts(opts, &fw, "optim");
  rc = nc_st_write(dirfd, name, t, n, kv, 2, &wo, NULL, err);
out:
  free(t);
  free(oj);
  return rc;
}

int nc_ckpt_save(nc_ckpt_dir *d, int64_t step, nc_model *m, nc_optim *o, const char *meta_json,
                 const nc_ckpt_save_opts *opts, char model_sha256[65], nc_st_error *err) {
  if (!d || !m) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  if (step < 0 || step > NC_CKPT_MAX_STEP) return nc_st_fail(err, NC_ST_E_ARG, "step out of range");
  const int fd = nc_ckpt_dir_fd(d);
  char name[64];
  int rc = NC_OK;
  char *meta = make_meta(meta_json, step, nc_model_get_config(m), 0, err);
  char *pretty = meta ? make_meta(meta_json, step, nc_model_get_config(m), 1, err) : NULL;
  if (!meta || !pretty) {
    rc = nc_st_errkind_code(err ? err->kind : NC_ST_E_ARG);
    goto out;
  }
  if (o) {
    nc_ckpt_name(name, sizeof name, "optim", step);
    if ((rc = write_optim_file(fd, name, o, opts, err))) goto out;
  }
  nc_ckpt_name(name, sizeof name, "model", step);
  if ((rc = nc_ckpt_write_model_file(fd, name, m, meta, opts, model_sha256, err))) goto out;
  nc_ckpt_name(name, sizeof name, "meta", step);
  fault_fwd fw;
  nc_st_write_opts wo = write_opts(opts, &fw, "meta");
  size_t len = strlen(pretty);
  pretty[len] = '\n'; /* json.dump leaves no newline; one is friendlier and harmless */
  rc = nc_st_write_file(fd, name, pretty, len + 1, &wo, err);
out:
  free(meta);
  free(pretty);
  return rc;
}

/* ------------------------------------------------------------------ loading */

int nc_ckpt_load_model(nc_ckpt_dir *d, int64_t step, const nc_ckpt_load_opts *opts,
                       nc_model **out, char **meta_json, nc_st_error *err) {
  if (!d) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  char name[64];
  nc_ckpt_name(name, sizeof name, "model", step);
  return nc_ckpt_read_model_file(nc_ckpt_dir_fd(d), name, opts, out, meta_json, err);
}

int nc_ckpt_load_optim(nc_ckpt_dir *d, int64_t step, nc_optim *o, nc_st_error *err) {
  if (!d || !o) return nc_st_fail(err, NC_ST_E_ARG, "NULL argument");
  char name[64];
  nc_ckpt_name(name, sizeof name, "optim", step);
  nc_st_file *f;
  int rc = nc_st_openat(nc_ckpt_dir_fd(d), name, &f, err);
  if (rc) return rc;
  rc = check_format(f, err);
  const char *oj = nc_st_meta(f, "optimizer");
  if (!rc && !oj) rc = nc_st_fail(err, NC_ST_E_OPTIM, "__metadata__ has no optimizer entry");
  int n;
  nc_param *vs = nc_optim_state_mut(o, &n);
  want w = {0};
  if (!rc) rc = want_alloc(&w, n, err);
  if (!rc) {
    for (int i = 0; i < n; i++) {
      w.names[i] = vs[i].name;
      w.ndims[i] = vs[i].ndim;
      memcpy(w.shapes[i], vs[i].shape, sizeof w.shapes[i]);
    }
    rc = check_set(f, w.names, w.ndims, (const int64_t(*)[NC_MAX_DIMS])w.shapes, n, 1, err);
    want_free(&w);
  }
  char msg[200];
  if (!rc && nc_optim_meta_from_json(o, oj, strlen(oj), msg, sizeof msg) != NC_OK)
    rc = nc_st_fail(err, NC_ST_E_OPTIM, "%s", msg);
  for (int i = 0; i < n && !rc; i++)
    rc = nc_st_read(f, nc_st_find(f, vs[i].name), vs[i].data, (size_t)vs[i].numel * 4, err);
  nc_st_close(f);
  return rc;
}
