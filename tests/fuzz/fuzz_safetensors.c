/* fuzz_safetensors.c — the checkpoint loader on arbitrary bytes (faults.md row 25, T-FUZZ
 * target 2): nc_st_open_mem must accept a file or refuse it with a known error kind and a
 * terminated message; for an accepted file every tensor range lies inside the buffer and can
 * be read (converted to f32 for float dtypes); the checkpoint checks (format, model_config,
 * tensor set) must also either pass or refuse cleanly, and a passing small model is loaded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_model_layout.h"
#include "nc_safetensors.h"

static void check_err(int rc, const nc_st_error *err) {
  if (rc >= 0 || err->kind <= NC_ST_OK || err->kind >= NC_ST_E_COUNT) __builtin_trap();
  if (nc_st_errkind_code(err->kind) != rc) __builtin_trap();
  if (!memchr(err->msg, 0, sizeof err->msg)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nc_st_file *f = NULL;
  nc_st_error err;
  memset(&err, 0, sizeof err);
  int rc = nc_st_open_mem(data, size, &f, &err);
  if (rc != NC_OK) {
    check_err(rc, &err);
    if (f) __builtin_trap();
    return 0;
  }
  const uint64_t base = 8 + nc_st_header_len(f);
  uint64_t prev_end = 0;
  for (int i = 0; i < nc_st_count(f); i++) {
    const nc_st_info *t = nc_st_at(f, i);
    if (t->begin != prev_end || t->end < t->begin || base + t->end > size) __builtin_trap();
    if (nc_st_find(f, t->name) != t) __builtin_trap();
    prev_end = t->end;
    size_t n = (size_t)(t->end - t->begin);
    void *buf = malloc(n ? n : 1);
    if (!buf) continue;
    if (nc_st_read(f, t, buf, n, &err) != NC_OK) __builtin_trap();
    if (memcmp(buf, data + base + t->begin, n) != 0) __builtin_trap();
    free(buf);
    if (t->dtype == NC_DT_F32 || t->dtype == NC_DT_BF16 || t->dtype == NC_DT_F16) {
      float *x = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
      if (x && nc_st_read_f32(f, t, x, t->numel, &err) != NC_OK) __builtin_trap();
      free(x);
    }
  }
  if (base + prev_end != size) __builtin_trap();
  for (int i = 0; i < nc_st_meta_count(f); i++) {
    const char *k, *v;
    nc_st_meta_at(f, i, &k, &v);
    if (!k || !v || nc_st_meta(f, k) == NULL) __builtin_trap();
  }
  nc_model_config cfg;
  rc = nc_ckpt_check_model(f, &cfg, &err);
  if (rc != NC_OK) {
    check_err(rc, &err);
  } else {
    nc_model_layout lay;
    if (nc_model_layout_compute(&cfg, &lay) != NC_OK) __builtin_trap();
    if (lay.total <= (1 << 20)) {
      nc_model *m = NULL;
      rc = nc_ckpt_model_from_file(f, &cfg, NULL, &m, &err);
      if (rc != NC_OK && err.kind != NC_ST_E_NOMEM) __builtin_trap(); /* checked = loadable */
      nc_model_free(m);
    }
  }
  nc_st_close(f);
  return 0;
}
