/* nc_optim_schedule.c — base_train's LR / momentum / weight-decay schedules and scaling
 * rules as pure functions (scripts/base_train.py at the pinned commit). See nc_optim.h. */
#include <math.h>

#include "nc_err.h"
#include "nc_optim.h"

/* Python's round() of a double: half to even (rint under the default rounding mode). */
static int64_t py_round(double x) { return (int64_t)nearbyint(x); }

double nc_lr_multiplier(int64_t it, int64_t N, int64_t warmup, double warmdown_ratio,
                        double final_lr_frac) {
  int64_t warmdown = py_round(warmdown_ratio * (double)N);
  if (it < warmup) return (double)(it + 1) / (double)warmup;
  if (it <= N - warmdown) return 1.0;
  if (warmdown <= 0) return final_lr_frac; /* it > N: past the end */
  double progress = (double)(N - it) / (double)warmdown;
  return progress * 1.0 + (1.0 - progress) * final_lr_frac;
}

double nc_muon_momentum(int64_t it, int64_t N, double warmdown_ratio) {
  int64_t warmdown = py_round(warmdown_ratio * (double)N);
  int64_t start = N - warmdown;
  if (it < 400) {
    double frac = (double)it / 400.0;
    return (1.0 - frac) * 0.85 + frac * 0.97;
  }
  if (warmdown > 0 && it >= start) {
    double progress = (double)(it - start) / (double)warmdown;
    return 0.97 * (1.0 - progress) + 0.90 * progress;
  }
  return 0.97;
}

double nc_muon_weight_decay(int64_t it, int64_t N, double wd) {
  return wd * 0.5 * (1.0 + cos(M_PI * (double)it / (double)N));
}

double nc_batch_lr_scale(int64_t B, int64_t b_ref) {
  double r = (double)B / (double)b_ref;
  return r == 1.0 ? 1.0 : sqrt(r);
}

double nc_dmodel_lr_scale(int model_dim) { return pow((double)model_dim / 768.0, -0.5); }

double nc_weight_decay_scaled(double wd, int64_t B, int64_t b_ref, double d_ref,
                              double target_tokens) {
  return wd * sqrt((double)B / (double)b_ref) * (d_ref / target_tokens);
}

int nc_grad_accum_steps(int64_t total, int device_batch, int T, int world, int *out) {
  if (!out || total < 1 || device_batch < 1 || T < 1 || world < 1) return NC_EINVAL;
  int64_t per = (int64_t)device_batch * T * world;
  if (total % per != 0 || total / per > (1 << 30)) return NC_EINVAL;
  *out = (int)(total / per);
  return NC_OK;
}
