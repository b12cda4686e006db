/* nc_train_step.c — one optimizer step with gradient accumulation, the loop state (EMA loss,
 * timing, ETA), MFU with a CPU peak estimate, and the base checkpoint meta (nc_train.h). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "nc_err.h"
#include "nc_train.h"

int nc_train_step(nc_model *m, nc_optim *o, const nc_train_step_cfg *c, nc_train_step_out *out) {
  if (!m || !o || !c || !out || !c->next || !c->inputs || !c->targets || c->grad_accum < 1 || c->B < 1 ||
      c->T < 1)
    return NC_EINVAL;
  memset(out, 0, sizeof *out);
  out->grad_norm = -1;
  nc_model_zero_grad(m);
  const float scale = 1.0f / (float)c->grad_accum;
  double sum = 0;
  for (int k = 0; k < c->grad_accum; k++) {
    if (c->stop && c->stop(c->stop_ctx)) {
      nc_model_zero_grad(m);
      return NC_ECANCELED;
    }
    int rc = c->next(c->next_ctx, c->inputs, c->targets);
    if (rc) {
      nc_model_zero_grad(m);
      return rc;
    }
    out->micro_done = k + 1;
    float loss = 0;
    rc = nc_model_forward_backward(m, c->inputs, c->targets, NULL, c->B, c->T, scale, &loss);
    if (rc) {
      nc_model_zero_grad(m);
      return rc;
    }
    out->last_loss = loss;
    if (!isfinite(loss)) {
      out->loss = loss;
      nc_model_zero_grad(m);
      return NC_ERANGE;
    }
    sum += loss;
  }
  out->loss = sum / c->grad_accum;
  /* the loss alone can hide a NaN model (the fused softcapped head maps non-finite logits to
   * finite values), so the gradients must be finite too */
  int np;
  const nc_param *ps = nc_model_params(m, &np);
  double gn = nc_grad_global_norm(ps, np);
  out->grad_norm = gn;
  if (!isfinite(gn)) {
    nc_model_zero_grad(m);
    return NC_ERANGE;
  }
  nc_optim_set_schedule(o, c->lrm, c->muon_momentum, c->muon_weight_decay);
  double clipped_norm;
  int rc = nc_optim_step(o, &clipped_norm);
  if (clipped_norm >= 0) out->grad_norm = clipped_norm;
  return rc;
}

void nc_train_flush_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
  const unsigned ftz_daz = 0x8040; /* MXCSR FTZ (bit 15) | DAZ (bit 6) */
  _mm_setcsr(_mm_getcsr() | ftz_daz);
#pragma omp parallel
  _mm_setcsr(_mm_getcsr() | ftz_daz);
#endif
}

nc_train_loop_state nc_train_loop_state_init(void) {
  nc_train_loop_state s = {0, 0.0, INFINITY, NAN, 0.0};
  return s;
}

double nc_train_ema_update(nc_train_loop_state *s, double loss, double dt) {
  const double beta = 0.9;
  s->smooth_train_loss = beta * s->smooth_train_loss + (1 - beta) * loss;
  if (s->step > NC_TRAIN_TIMING_WARMUP) s->total_training_time += dt;
  return s->smooth_train_loss / (1 - pow(beta, (double)(s->step + 1)));
}

double nc_train_eta(const nc_train_loop_state *s, int64_t step, int64_t n) {
  int64_t done = step - NC_TRAIN_TIMING_WARMUP;
  if (done <= 0) return NAN;
  return (double)(n - step) * s->total_training_time / (double)done;
}

double nc_train_mfu(int64_t fpt, int64_t tokens, double dt, double peak) {
  if (!(peak > 0) || !(dt > 0) || !isfinite(peak)) return 0.0;
  return 100.0 * (double)fpt * (double)tokens / dt / peak;
}

/* ------------------------------------------------------------------ CPU peak */

static double read_max_freq_ghz(void) {
  FILE *f = fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r");
  if (f) {
    long khz = 0;
    int ok = fscanf(f, "%ld", &khz) == 1;
    fclose(f);
    if (ok && khz > 100000) return (double)khz / 1e6;
  }
  f = fopen("/proc/cpuinfo", "r");
  double best = 0;
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      double mhz;
      if (strncmp(line, "cpu MHz", 7) == 0) {
        const char *colon = strchr(line, ':');
        if (colon && sscanf(colon + 1, "%lf", &mhz) == 1 && mhz > best) best = mhz;
      }
    }
    fclose(f);
  }
  return best > 100 ? best / 1000.0 : 2.5;
}

double nc_cpu_peak_flops(int threads, char *desc, size_t len) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = 1;
  int cores = threads > 0 && threads < online ? threads : (int)online;
  double ghz = read_max_freq_ghz();
  int fpc = 8;
  const char *isa = "sse";
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    fpc = 64;
    isa = "avx512f";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    fpc = 32;
    isa = "avx2+fma";
  } else if (__builtin_cpu_supports("avx")) {
    fpc = 16;
    isa = "avx";
  }
#endif
  if (desc && len)
    snprintf(desc, len, "%d cores x %.2f GHz x %d FLOP/cycle (%s)", cores, ghz, fpc, isa);
  return (double)cores * ghz * 1e9 * fpc;
}

/* ------------------------------------------------------------------ meta JSON */

static json_t *real_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

char *nc_base_meta_json(const nc_base_opts *o, const nc_base_plan *p, const nc_train_loop_state *s,
                        const nc_loader_state *ls) {
  if (!o || !p || !s || !ls) return NULL;
  char *lj = nc_loader_state_to_json(ls);
  json_error_t e;
  json_t *loader = lj ? json_loads(lj, 0, &e) : NULL;
  free(lj);
  json_t *loop = json_pack("{s:o,s:f,s:f}", "min_val_bpb", real_or_null(s->min_val_bpb), "smooth_train_loss",
                           s->smooth_train_loss, "total_training_time", s->total_training_time);
  json_t *user = nc_base_opts_to_json(o);
  if (!loader || !loop || !user) {
    json_decref(loader);
    json_decref(loop);
    json_decref(user);
    return NULL;
  }
  json_t *m = json_pack("{s:o,s:o,s:i,s:i,s:I,s:I,s:o,s:o,s:s}", "val_bpb", real_or_null(s->val_bpb),
                        "user_config", user, "device_batch_size", o->device_batch_size, "max_seq_len",
                        o->max_seq_len, "total_batch_size", (json_int_t)p->total_batch_size, "num_iterations",
                        (json_int_t)p->num_iterations, "dataloader_state_dict", loader, "loop_state", loop,
                        "trainer", "nanochat-c");
  if (!m) return NULL;
  char *out = json_dumps(m, JSON_COMPACT | JSON_REAL_PRECISION(17));
  json_decref(m);
  return out;
}

static int num(json_t *o, const char *k, double *out, double if_null) {
  json_t *v = json_object_get(o, k);
  if (json_is_null(v)) {
    *out = if_null;
    return 1;
  }
  if (!json_is_number(v)) return 0;
  *out = json_number_value(v);
  return 1;
}

int nc_base_meta_parse(const char *text, nc_train_loop_state *s, nc_loader_state *ls, char *msg,
                       size_t len) {
  if (!text || !s || !ls) return NC_EINVAL;
  memset(ls, 0, sizeof *ls);
  *s = nc_train_loop_state_init();
  json_error_t e;
  json_t *m = json_loads(text, JSON_REJECT_DUPLICATES, &e);
  const char *bad = NULL;
  int rc = NC_OK;
  json_t *loop = m ? json_object_get(m, "loop_state") : NULL;
  json_t *dl = m ? json_object_get(m, "dataloader_state_dict") : NULL;
  json_t *step = m ? json_object_get(m, "step") : NULL;
  if (!json_is_object(m)) bad = "meta is not a JSON object";
  else if (!json_is_integer(step) || json_integer_value(step) < 0) bad = "step";
  else if (!json_is_object(loop)) bad = "loop_state";
  else if (!num(loop, "min_val_bpb", &s->min_val_bpb, INFINITY)) bad = "loop_state.min_val_bpb";
  else if (!num(loop, "smooth_train_loss", &s->smooth_train_loss, 0)) bad = "loop_state.smooth_train_loss";
  else if (!num(loop, "total_training_time", &s->total_training_time, 0)) bad = "loop_state.total_training_time";
  else if (!num(m, "val_bpb", &s->val_bpb, NAN)) bad = "val_bpb";
  else if (!json_is_object(dl)) bad = "dataloader_state_dict";
  if (!bad) {
    s->step = (int64_t)json_integer_value(step);
    char *dj = json_dumps(dl, JSON_COMPACT);
    rc = dj ? nc_loader_state_from_json(dj, ls) : NC_ENOMEM;
    free(dj);
    if (rc == NC_EINVAL) bad = "dataloader_state_dict";
  }
  json_decref(m);
  if (bad) {
    if (msg && len) snprintf(msg, len, "checkpoint meta: missing or malformed %s", bad);
    nc_loader_state_free(ls);
    *s = nc_train_loop_state_init();
    return NC_EINVAL;
  }
  return rc;
}
