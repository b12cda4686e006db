/* nc_model_ref_impl.h — body of the reference model, included twice by nc_model_ref.c with
 *   R    the real type (float or double)
 *   SFX  the name suffix (f32 or f64)
 *   R_SQRT, R_EXP, R_TANH, R_LOG  the matching libm functions
 * Not a public header. Every buffer carries its shape in a comment (llm.c style).
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* ---------------------------------------------------------------- small helpers */

static R FN(sigmoid)(R x) { return (R)1 / ((R)1 + R_EXP(-x)); }

/* y [N, M] (=, or += when acc) = x [N, K] (row stride ldx) @ W^T, W [M, K] */
static void FN(mm_xwt)(R *y, int64_t ldy, const R *x, int64_t ldx, const R *W, int64_t N,
                       int K, int M, int acc) {
  for (int64_t n = 0; n < N; n++)
    for (int m = 0; m < M; m++) {
      R s = 0;
      for (int k = 0; k < K; k++) s += x[n * ldx + k] * W[(int64_t)m * K + k];
      y[n * ldy + m] = acc ? y[n * ldy + m] + s : s;
    }
}

/* dx [N, K] (=, or += when acc) = dy [N, M] @ W, W [M, K] */
static void FN(mm_dyw)(R *dx, int64_t lddx, const R *dy, int64_t lddy, const R *W, int64_t N,
                       int K, int M, int acc) {
  for (int64_t n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      R s = 0;
      for (int m = 0; m < M; m++) s += dy[n * lddy + m] * W[(int64_t)m * K + k];
      dx[n * lddx + k] = acc ? dx[n * lddx + k] + s : s;
    }
}

/* dW [M, K] += dy^T [M, N] @ x [N, K] */
static void FN(mm_dw)(R *dW, const R *dy, int64_t lddy, const R *x, int64_t ldx, int64_t N,
                      int K, int M) {
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++) {
      R s = 0;
      for (int64_t n = 0; n < N; n++) s += dy[n * lddy + m] * x[n * ldx + k];
      dW[(int64_t)m * K + k] += s;
    }
}

/* ---------------------------------------------------------------- kernels */

void FN(nc_ref_rmsnorm_fwd)(R *y, R *rstd, const R *x, int64_t rows, int C, R eps) {
  for (int64_t r = 0; r < rows; r++) {
    const R *xr = x + r * C;
    R ss = 0;
    for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
    R s = (R)1 / R_SQRT(ss / (R)C + eps);
    rstd[r] = s;
    for (int c = 0; c < C; c++) y[r * C + c] = xr[c] * s;
  }
}

void FN(nc_ref_rmsnorm_bwd)(R *dx, const R *dy, const R *y, const R *rstd, int64_t rows, int C,
                            int accumulate) {
  for (int64_t r = 0; r < rows; r++) {
    const R *dyr = dy + r * C, *yr = y + r * C;
    R dot = 0;
    for (int c = 0; c < C; c++) dot += dyr[c] * yr[c];
    dot /= (R)C;
    for (int c = 0; c < C; c++) {
      R g = rstd[r] * (dyr[c] - yr[c] * dot);
      dx[r * C + c] = accumulate ? dx[r * C + c] + g : g;
    }
  }
}

/* one head vector x [D] at position pos: rope (rotation by -theta, half split) */
static void FN(rope1)(R *x, int D, const R *cs, const R *sn) {
  int h = D / 2;
  for (int i = 0; i < h; i++) {
    R x1 = x[i], x2 = x[i + h];
    x[i] = x1 * cs[i] + x2 * sn[i];      /* y1 =  x1 cos + x2 sin */
    x[i + h] = -x1 * sn[i] + x2 * cs[i]; /* y2 = -x1 sin + x2 cos */
  }
}

/* transpose of rope1 applied to a gradient vector */
static void FN(rope1_bwd)(R *d, int D, const R *cs, const R *sn) {
  int h = D / 2;
  for (int i = 0; i < h; i++) {
    R d1 = d[i], d2 = d[i + h];
    d[i] = d1 * cs[i] - d2 * sn[i];
    d[i + h] = d1 * sn[i] + d2 * cs[i];
  }
}

void FN(nc_ref_qk_fwd)(R *qkv, int64_t ld, R *rstd_q, R *rstd_k, int64_t N, int T, int H,
                       int Hkv, int D, const R *cos_t, const R *sin_t, R eps) {
  for (int64_t n = 0; n < N; n++) {
    int t = (int)(n % T);
    const R *cs = cos_t + (int64_t)t * (D / 2), *sn = sin_t + (int64_t)t * (D / 2);
    for (int h = 0; h < H + Hkv; h++) {
      R *x = qkv + n * ld + (int64_t)h * D;
      FN(rope1)(x, D, cs, sn);
      R r;
      FN(nc_ref_rmsnorm_fwd)(x, &r, x, 1, D, eps);
      for (int d = 0; d < D; d++) x[d] *= (R)NC_QK_SCALE;
      if (h < H) rstd_q[n * H + h] = r;
      else rstd_k[n * Hkv + (h - H)] = r;
    }
  }
}

void FN(nc_ref_qk_bwd)(R *dqkv, int64_t ld, const R *qkv, const R *rstd_q, const R *rstd_k,
                       int64_t N, int T, int H, int Hkv, int D, const R *cos_t,
                       const R *sin_t) {
  R *yhat = (R *)malloc(sizeof(R) * (size_t)D);
  R *dyhat = (R *)malloc(sizeof(R) * (size_t)D);
  if (!yhat || !dyhat) { /* tiny; a failure here leaves dqkv untouched */
    free(yhat);
    free(dyhat);
    return;
  }
  for (int64_t n = 0; n < N; n++) {
    int t = (int)(n % T);
    const R *cs = cos_t + (int64_t)t * (D / 2), *sn = sin_t + (int64_t)t * (D / 2);
    for (int h = 0; h < H + Hkv; h++) {
      R *d = dqkv + n * ld + (int64_t)h * D;
      const R *o = qkv + n * ld + (int64_t)h * D;
      R r = h < H ? rstd_q[n * H + h] : rstd_k[n * Hkv + (h - H)];
      for (int i = 0; i < D; i++) {
        yhat[i] = o[i] / (R)NC_QK_SCALE; /* normalised vector before the 1.2 scale */
        dyhat[i] = d[i] * (R)NC_QK_SCALE;
      }
      FN(nc_ref_rmsnorm_bwd)(d, dyhat, yhat, &r, 1, D, 0);
      FN(rope1_bwd)(d, D, cs, sn);
    }
  }
  free(yhat);
  free(dyhat);
}

/* does a query at position t see the key at position j? */
static int FN(visible)(int t, int j, int window) { return j <= t && t - j <= window; }

void FN(nc_ref_attn_fwd)(R *y, R *lse, const R *qkv, int64_t ld, int B, int T, int H, int Hkv,
                         int D, int window, R scale) {
  int rep = H / Hkv;
  int64_t koff = (int64_t)H * D, voff = koff + (int64_t)Hkv * D;
  R *p = (R *)malloc(sizeof(R) * (size_t)T); /* p [T] scores of one query */
  if (!p) return;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int g = h / rep;
      for (int t = 0; t < T; t++) {
        const R *q = qkv + ((int64_t)b * T + t) * ld + (int64_t)h * D;
        R mx = -INFINITY;
        for (int j = 0; j <= t; j++) {
          if (!FN(visible)(t, j, window)) continue;
          const R *k = qkv + ((int64_t)b * T + j) * ld + koff + (int64_t)g * D;
          R s = 0;
          for (int d = 0; d < D; d++) s += q[d] * k[d];
          p[j] = s * scale;
          if (p[j] > mx) mx = p[j];
        }
        R sum = 0;
        for (int j = 0; j <= t; j++)
          if (FN(visible)(t, j, window)) { p[j] = R_EXP(p[j] - mx); sum += p[j]; }
        lse[((int64_t)b * H + h) * T + t] = mx + R_LOG(sum);
        R *yo = y + ((int64_t)b * T + t) * ((int64_t)H * D) + (int64_t)h * D;
        for (int d = 0; d < D; d++) yo[d] = 0;
        for (int j = 0; j <= t; j++) {
          if (!FN(visible)(t, j, window)) continue;
          const R *v = qkv + ((int64_t)b * T + j) * ld + voff + (int64_t)g * D;
          R w = p[j] / sum;
          for (int d = 0; d < D; d++) yo[d] += w * v[d];
        }
      }
    }
  free(p);
}

void FN(nc_ref_attn_bwd)(R *dqkv, const R *dy, const R *y, const R *lse, const R *qkv,
                         int64_t ld, int B, int T, int H, int Hkv, int D, int window, R scale) {
  int rep = H / Hkv;
  int64_t koff = (int64_t)H * D, voff = koff + (int64_t)Hkv * D, HD = (int64_t)H * D;
  for (int64_t n = 0; n < (int64_t)B * T; n++)
    for (int64_t c = 0; c < voff + (int64_t)Hkv * D; c++) dqkv[n * ld + c] = 0;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int g = h / rep;
      for (int t = 0; t < T; t++) {
        int64_t nq = (int64_t)b * T + t;
        const R *q = qkv + nq * ld + (int64_t)h * D;
        const R *dyo = dy + nq * HD + (int64_t)h * D, *yo = y + nq * HD + (int64_t)h * D;
        R *dq = dqkv + nq * ld + (int64_t)h * D;
        R delta = 0; /* sum_d dy * y */
        for (int d = 0; d < D; d++) delta += dyo[d] * yo[d];
        R l = lse[((int64_t)b * H + h) * T + t];
        for (int j = 0; j <= t; j++) {
          if (!FN(visible)(t, j, window)) continue;
          int64_t nk = (int64_t)b * T + j;
          const R *k = qkv + nk * ld + koff + (int64_t)g * D;
          const R *v = qkv + nk * ld + voff + (int64_t)g * D;
          R s = 0, dp = 0;
          for (int d = 0; d < D; d++) { s += q[d] * k[d]; dp += dyo[d] * v[d]; }
          R pr = R_EXP(s * scale - l);   /* softmax probability */
          R ds = pr * (dp - delta);     /* d score (before scale) / scale */
          R *dk = dqkv + nk * ld + koff + (int64_t)g * D;
          R *dv = dqkv + nk * ld + voff + (int64_t)g * D;
          for (int d = 0; d < D; d++) {
            dq[d] += ds * scale * k[d];
            dk[d] += ds * scale * q[d];
            dv[d] += pr * dyo[d];
          }
        }
      }
    }
}

void FN(nc_ref_head)(const R *xf, const R *W, int64_t N, int C, int V, const int32_t *targets,
                     const R *omega, R *nll, R *logits, R *dxf, R *dW) {
  R *l = (R *)malloc(sizeof(R) * (size_t)V); /* l [V] capped logits of one row */
  if (!l) return;
  for (int64_t n = 0; n < N; n++) {
    const R *x = xf + n * C;
    R mx = -INFINITY;
    for (int v = 0; v < V; v++) {
      R z = 0;
      for (int c = 0; c < C; c++) z += x[c] * W[(int64_t)v * C + c];
      l[v] = (R)NC_SOFTCAP * R_TANH(z / (R)NC_SOFTCAP);
      if (logits) logits[n * V + v] = l[v];
      if (l[v] > mx) mx = l[v];
    }
    R sum = 0;
    for (int v = 0; v < V; v++) sum += R_EXP(l[v] - mx);
    R lse = mx + R_LOG(sum);
    int tg = targets ? targets[n] : -1;
    if (nll) nll[n] = tg >= 0 ? lse - l[tg] : 0;
    if (dxf) {
      for (int c = 0; c < C; c++) dxf[n * C + c] = 0;
      R om = tg >= 0 ? omega[n] : 0;
      if (om == 0) continue;
      for (int v = 0; v < V; v++) {
        R p = R_EXP(l[v] - lse);
        R dl = om * (p - (v == tg ? (R)1 : (R)0));
        R t = l[v] / (R)NC_SOFTCAP;
        R dz = dl * ((R)1 - t * t); /* d/dz 15 tanh(z/15) = 1 - tanh^2 */
        for (int c = 0; c < C; c++) {
          dxf[n * C + c] += dz * W[(int64_t)v * C + c];
          dW[(int64_t)v * C + c] += dz * x[c];
        }
      }
    }
  }
  free(l);
}

void FN(nc_ref_rope_tables)(R *cos_t, R *sin_t, int n_pos, int D) {
  int h = D / 2;
  for (int i = 0; i < h; i++) {
    /* fp32 like torch: inv_freq = 1 / (base ** (2i / D)), angle = t * inv_freq */
    float ex = (float)(2 * i) / (float)D;
    float inv = 1.0f / powf((float)NC_ROPE_BASE, ex);
    for (int t = 0; t < n_pos; t++) {
      float ang = (float)t * inv;
      cos_t[(int64_t)t * h + i] = (R)(float)cos((double)ang);
      sin_t[(int64_t)t * h + i] = (R)(float)sin((double)ang);
    }
  }
}

/* ---------------------------------------------------------------- whole model */

int FN(nc_ref_model)(const nc_model_config *cfg, const R *params, const int32_t *idx,
                     const int32_t *targets, const R *weights, int B, int T, R *loss,
                     R *logits, R *grads) {
  nc_model_layout *lay = (nc_model_layout *)malloc(sizeof *lay);
  if (!lay) return NC_ENOMEM;
  if (nc_model_layout_compute(cfg, lay) != NC_OK || B < 1 || T < 2 || T > cfg->sequence_len) {
    free(lay);
    return NC_EINVAL;
  }
  const int C = cfg->n_embd, L = cfg->n_layer, H = cfg->n_head, Hkv = cfg->n_kv_head;
  const int D = C / H, KV = Hkv * D, QKV = C + 2 * KV, F = 4 * C, V = cfg->vocab_size;
  const int64_t N = (int64_t)B * T;
  const int SG = NC_CFG_SMEAR_CHANNELS, VG = NC_CFG_VE_GATE_CHANNELS;
  const R eps = (R)FLT_EPSILON, scale = (R)1 / R_SQRT((R)D);
  for (int64_t n = 0; n < N; n++) {
    if (idx[n] < 0 || idx[n] >= V || (targets && (targets[n] < -1 || targets[n] >= V))) {
      free(lay);
      return NC_EINVAL;
    }
  }
  const int want_grad = grads != NULL;
  const R *P = params;
  const R *lam_r = P + lay->resid_lambdas, *lam_0 = P + lay->x0_lambdas;
  const R lam_s = P[lay->smear_lambda], lam_b = P[lay->backout_lambda];
  const R *wte = P + lay->wte, *lm = P + lay->lm_head, *sgw = P + lay->smear_gate;

  /* activations */
  size_t NC_ = (size_t)N * C;
  R *xn0 = calloc(NC_, sizeof(R));          /* xn0 [N, C] normed embedding           */
  R *rstd0 = calloc((size_t)N, sizeof(R));  /* rstd0 [N]                              */
  R *sig = calloc((size_t)N, sizeof(R));    /* sig [N] smear sigmoid (t >= 1)         */
  R *x0 = calloc(NC_, sizeof(R));           /* x0 [N, C] after smear                  */
  R *res = calloc(NC_ * (L + 1), sizeof(R));/* res [L+1, N, C] residual stream        */
  R *xm = calloc(NC_ * L, sizeof(R));       /* xm [L, N, C] lambda-mixed block input  */
  R *xn1 = calloc(NC_ * L, sizeof(R));      /* xn1 [L, N, C]                          */
  R *rstd1 = calloc((size_t)N * L, sizeof(R));
  R *qkv = calloc((size_t)N * QKV * L, sizeof(R)); /* qkv [L, N, QKV] after VE/rope/norm */
  R *rq = calloc((size_t)N * H * L, sizeof(R));    /* rq [L, N, H]                     */
  R *rk = calloc((size_t)N * Hkv * L, sizeof(R));  /* rk [L, N, Hkv]                   */
  R *gate = calloc((size_t)N * Hkv * L, sizeof(R));/* gate [L, N, Hkv] = 3 sigmoid      */
  R *att = calloc(NC_ * L, sizeof(R));      /* att [L, N, C] attention output (pre proj)*/
  R *lse = calloc((size_t)B * H * T * L, sizeof(R)); /* lse [L, B, H, T]               */
  R *xmid = calloc(NC_ * L, sizeof(R));     /* xmid [L, N, C]                         */
  R *xn2 = calloc(NC_ * L, sizeof(R));      /* xn2 [L, N, C]                          */
  R *rstd2 = calloc((size_t)N * L, sizeof(R));
  R *hpre = calloc((size_t)N * F * L, sizeof(R)); /* hpre [L, N, 4C] c_fc output        */
  R *act = calloc((size_t)N * F, sizeof(R));  /* act [N, 4C] relu^2 (scratch)           */
  R *xfp = calloc(NC_, sizeof(R));          /* xfp [N, C] after backout               */
  R *xf = calloc(NC_, sizeof(R));           /* xf [N, C] final normed                 */
  R *rstdf = calloc((size_t)N, sizeof(R));
  R *nll = calloc((size_t)N, sizeof(R));    /* nll [N]                                */
  R *omega = calloc((size_t)N, sizeof(R));  /* omega [N] dLoss/dnll                   */
  R *cs = calloc((size_t)T * (D / 2), sizeof(R)), *sn = calloc((size_t)T * (D / 2), sizeof(R));
  R *dxf = NULL;                            /* dxf [N, C] d loss / d xf           */
  int rc = NC_OK;
  if (!xn0 || !rstd0 || !sig || !x0 || !res || !xm || !xn1 || !rstd1 || !qkv || !rq || !rk ||
      !gate || !att || !lse || !xmid || !xn2 || !rstd2 || !hpre || !act || !xfp || !xf ||
      !rstdf || !nll || !omega || !cs || !sn) {
    rc = NC_ENOMEM;
    goto done;
  }
  FN(nc_ref_rope_tables)(cs, sn, T, D);

  /* 1. embedding + rmsnorm */
  for (int64_t n = 0; n < N; n++)
    for (int c = 0; c < C; c++) xn0[n * C + c] = wte[(int64_t)idx[n] * C + c];
  FN(nc_ref_rmsnorm_fwd)(xn0, rstd0, xn0, N, C, eps);
  /* 2. smear: x0_t = xn0_t + lam_s * sigmoid(smear_gate . xn0_t[:24]) * xn0_{t-1}, t >= 1 */
  for (int64_t n = 0; n < N; n++) {
    int t = (int)(n % T);
    for (int c = 0; c < C; c++) x0[n * C + c] = xn0[n * C + c];
    if (t == 0) continue;
    R z = 0;
    for (int c = 0; c < SG; c++) z += sgw[c] * xn0[n * C + c];
    sig[n] = FN(sigmoid)(z);
    R g = lam_s * sig[n];
    for (int c = 0; c < C; c++) x0[n * C + c] += g * xn0[(n - 1) * C + c];
  }
  memcpy(res, x0, NC_ * sizeof(R));
  /* 3. blocks */
  for (int l = 0; l < L; l++) {
    const nc_layer_layout *ly = &lay->layer[l];
    R *r_in = res + NC_ * l, *r_out = res + NC_ * (l + 1);
    R *xm_l = xm + NC_ * l, *xn1_l = xn1 + NC_ * l, *qkv_l = qkv + (size_t)N * QKV * l;
    R *att_l = att + NC_ * l, *xmid_l = xmid + NC_ * l, *xn2_l = xn2 + NC_ * l;
    R *h_l = hpre + (size_t)N * F * l;
    for (size_t i = 0; i < NC_; i++) xm_l[i] = lam_r[l] * r_in[i] + lam_0[l] * x0[i];
    FN(nc_ref_rmsnorm_fwd)(xn1_l, rstd1 + N * l, xm_l, N, C, eps);
    FN(mm_xwt)(qkv_l, QKV, xn1_l, C, P + ly->c_q, N, C, QKV, 0);
    if (ly->ve_gate >= 0) {
      const R *wg = P + ly->ve_gate, *ve = P + ly->value_embed;
      for (int64_t n = 0; n < N; n++)
        for (int g = 0; g < Hkv; g++) {
          R z = 0;
          for (int c = 0; c < VG; c++) z += wg[g * VG + c] * xn1_l[n * C + c];
          R gt = (R)NC_VE_GATE_MAX * FN(sigmoid)(z);
          gate[(size_t)N * Hkv * l + n * Hkv + g] = gt;
          for (int d = 0; d < D; d++)
            qkv_l[n * QKV + C + KV + g * D + d] += gt * ve[(int64_t)idx[n] * KV + g * D + d];
        }
    }
    FN(nc_ref_qk_fwd)(qkv_l, QKV, rq + (size_t)N * H * l, rk + (size_t)N * Hkv * l, N, T, H,
                      Hkv, D, cs, sn, eps);
    FN(nc_ref_attn_fwd)(att_l, lse + (size_t)B * H * T * l, qkv_l, QKV, B, T, H, Hkv, D,
                        ly->window, scale);
    FN(mm_xwt)(xmid_l, C, att_l, C, P + ly->c_proj, N, C, C, 0);
    for (size_t i = 0; i < NC_; i++) xmid_l[i] += xm_l[i];
    FN(nc_ref_rmsnorm_fwd)(xn2_l, rstd2 + N * l, xmid_l, N, C, eps);
    FN(mm_xwt)(h_l, F, xn2_l, C, P + ly->c_fc, N, C, F, 0);
    for (size_t i = 0; i < (size_t)N * F; i++) act[i] = h_l[i] > 0 ? h_l[i] * h_l[i] : 0;
    FN(mm_xwt)(r_out, C, act, F, P + ly->mlp_c_proj, N, F, C, 0);
    for (size_t i = 0; i < NC_; i++) r_out[i] += xmid_l[i];
  }
  /* 4. backout + final norm */
  const int bl = L / 2;
  const R *xb = res + NC_ * (bl + 1);
  for (size_t i = 0; i < NC_; i++) xfp[i] = res[NC_ * L + i] - lam_b * xb[i];
  FN(nc_ref_rmsnorm_fwd)(xf, rstdf, xfp, N, C, eps);
  /* 5-6. head, softcap, loss */
  int64_t nvalid = 0;
  for (int64_t n = 0; n < N; n++)
    if (targets && targets[n] >= 0) nvalid++;
  for (int64_t n = 0; n < N; n++) {
    if (!targets || targets[n] < 0) continue;
    omega[n] = weights ? weights[n] : (R)1 / (R)nvalid;
  }
  if (want_grad) {
    memset(grads, 0, sizeof(R) * (size_t)lay->total);
    dxf = calloc(NC_, sizeof(R));
    if (!dxf) { rc = NC_ENOMEM; goto done; }
  }
  FN(nc_ref_head)(xf, lm, N, C, V, targets, omega, nll, logits, dxf,
                  want_grad ? grads + lay->lm_head : NULL);
  if (loss) {
    R s = 0;
    for (int64_t n = 0; n < N; n++) s += omega[n] * nll[n];
    *loss = s;
  }
  if (!want_grad) goto done;

  {
    R *G = grads;
    R *dxfp = calloc(NC_, sizeof(R)), *dres = calloc(NC_, sizeof(R)), *dx0 = calloc(NC_, sizeof(R));
    R *dxm = calloc(NC_, sizeof(R)), *dxn = calloc(NC_, sizeof(R)), *datt = calloc(NC_, sizeof(R));
    R *dh = calloc((size_t)N * F, sizeof(R)), *dqkv = calloc((size_t)N * QKV, sizeof(R));
    if (!dxfp || !dres || !dx0 || !dxm || !dxn || !datt || !dh || !dqkv) {
      rc = NC_ENOMEM;
    } else {
      FN(nc_ref_rmsnorm_bwd)(dxfp, dxf, xf, rstdf, N, C, 0);
      R dlb = 0;
      for (size_t i = 0; i < NC_; i++) dlb -= dxfp[i] * xb[i];
      G[lay->backout_lambda] = dlb;
      memcpy(dres, dxfp, NC_ * sizeof(R)); /* d res[L] */
      for (int l = L - 1; l >= 0; l--) {
        const nc_layer_layout *ly = &lay->layer[l];
        R *r_in = res + NC_ * l, *xm_l = xm + NC_ * l, *xn1_l = xn1 + NC_ * l;
        R *qkv_l = qkv + (size_t)N * QKV * l, *att_l = att + NC_ * l, *xn2_l = xn2 + NC_ * l;
        R *h_l = hpre + (size_t)N * F * l;
        if (l == bl)
          for (size_t i = 0; i < NC_; i++) dres[i] -= lam_b * dxfp[i];
        /* MLP: r_out = xmid + relu(xn2 Wfc^T)^2 Wp^T */
        for (size_t i = 0; i < (size_t)N * F; i++) act[i] = h_l[i] > 0 ? h_l[i] * h_l[i] : 0;
        FN(mm_dw)(G + ly->mlp_c_proj, dres, C, act, F, N, F, C);
        FN(mm_dyw)(dh, F, dres, C, P + ly->mlp_c_proj, N, F, C, 0);
        for (size_t i = 0; i < (size_t)N * F; i++) dh[i] *= h_l[i] > 0 ? 2 * h_l[i] : 0;
        FN(mm_dw)(G + ly->c_fc, dh, F, xn2_l, C, N, C, F);
        FN(mm_dyw)(dxn, C, dh, F, P + ly->c_fc, N, C, F, 0);
        memcpy(dxm, dres, NC_ * sizeof(R)); /* d xmid */
        FN(nc_ref_rmsnorm_bwd)(dxm, dxn, xn2_l, rstd2 + N * l, N, C, 1);
        /* attention: xmid = xm + att Wproj^T */
        FN(mm_dw)(G + ly->c_proj, dxm, C, att_l, C, N, C, C);
        FN(mm_dyw)(datt, C, dxm, C, P + ly->c_proj, N, C, C, 0);
        FN(nc_ref_attn_bwd)(dqkv, datt, att_l, lse + (size_t)B * H * T * l, qkv_l, QKV, B, T, H,
                            Hkv, D, ly->window, scale);
        FN(nc_ref_qk_bwd)(dqkv, QKV, qkv_l, rq + (size_t)N * H * l, rk + (size_t)N * Hkv * l, N,
                          T, H, Hkv, D, cs, sn);
        FN(mm_dw)(G + ly->c_q, dqkv, QKV, xn1_l, C, N, C, QKV);
        FN(mm_dyw)(dxn, C, dqkv, QKV, P + ly->c_q, N, C, QKV, 0);
        if (ly->ve_gate >= 0) {
          const R *wg = P + ly->ve_gate, *ve = P + ly->value_embed;
          R *dwg = G + ly->ve_gate, *dve = G + ly->value_embed;
          for (int64_t n = 0; n < N; n++)
            for (int g = 0; g < Hkv; g++) {
              R gt = gate[(size_t)N * Hkv * l + n * Hkv + g];
              const R *dv = dqkv + n * QKV + C + KV + g * D;
              const R *er = ve + (int64_t)idx[n] * KV + g * D;
              R dg = 0;
              for (int d = 0; d < D; d++) {
                dg += dv[d] * er[d];
                dve[(int64_t)idx[n] * KV + g * D + d] += gt * dv[d];
              }
              R dz = dg * gt * ((R)1 - gt / (R)NC_VE_GATE_MAX); /* d(3 sigmoid(z))/dz */
              for (int c = 0; c < VG; c++) {
                dwg[g * VG + c] += dz * xn1_l[n * C + c];
                dxn[n * C + c] += dz * wg[g * VG + c];
              }
            }
        }
        memcpy(dres, dxm, NC_ * sizeof(R)); /* reuse dres as d xm */
        FN(nc_ref_rmsnorm_bwd)(dres, dxn, xn1_l, rstd1 + N * l, N, C, 1);
        /* xm = lam_r res_in + lam_0 x0 */
        R dlr = 0, dl0 = 0;
        for (size_t i = 0; i < NC_; i++) {
          dlr += dres[i] * r_in[i];
          dl0 += dres[i] * x0[i];
          dx0[i] += lam_0[l] * dres[i];
          dres[i] *= lam_r[l]; /* now d res[l] */
        }
        G[lay->resid_lambdas + l] = dlr;
        G[lay->x0_lambdas + l] = dl0;
        (void)xm_l;
      }
      for (size_t i = 0; i < NC_; i++) dx0[i] += dres[i]; /* res[0] = x0 */
      /* smear backward; dxn (reused) = d xn0 */
      R dls = 0;
      R *dsg = G + lay->smear_gate;
      for (int64_t n = 0; n < N; n++) {
        int t = (int)(n % T);
        for (int c = 0; c < C; c++) {
          R v = dx0[n * C + c];
          if (t + 1 < T) v += lam_s * sig[n + 1] * dx0[(n + 1) * C + c];
          dxn[n * C + c] = v;
        }
      }
      for (int64_t n = 0; n < N; n++) {
        int t = (int)(n % T);
        if (t == 0) continue;
        R dg = 0;
        for (int c = 0; c < C; c++) dg += dx0[n * C + c] * xn0[(n - 1) * C + c];
        dls += dg * sig[n];
        R dz = dg * lam_s * sig[n] * ((R)1 - sig[n]);
        for (int c = 0; c < SG; c++) {
          dsg[c] += dz * xn0[n * C + c];
          dxn[n * C + c] += dz * sgw[c];
        }
      }
      G[lay->smear_lambda] = dls;
      FN(nc_ref_rmsnorm_bwd)(dxm, dxn, xn0, rstd0, N, C, 0); /* d embedding */
      for (int64_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) G[lay->wte + (int64_t)idx[n] * C + c] += dxm[n * C + c];
    }
    free(dxfp); free(dres); free(dx0); free(dxm); free(dxn); free(datt); free(dh); free(dqkv);
  }

done:
  free(dxf);
  free(xn0); free(rstd0); free(sig); free(x0); free(res); free(xm); free(xn1); free(rstd1);
  free(qkv); free(rq); free(rk); free(gate); free(att); free(lse); free(xmid); free(xn2);
  free(rstd2); free(hpre); free(act); free(xfp); free(xf); free(rstdf); free(nll); free(omega);
  free(cs); free(sn);
  free(lay);
  return rc;
}

#undef FN
#undef CAT
#undef CAT_
