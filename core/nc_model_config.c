/* nc_model_config.c — see nc_model_config.h. */
#include "nc_model_config.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

#define fail(msg, len, ...) nc_errf(NC_EINVAL, (msg), (len), __VA_ARGS__)

nc_model_config nc_model_config_default(void) {
  nc_model_config c;
  memset(&c, 0, sizeof c);
  c.sequence_len = 2048;
  c.vocab_size = 32768;
  c.n_layer = 12;
  c.n_head = 6;
  c.n_kv_head = 6;
  c.n_embd = 768;
  strcpy(c.window_pattern, "SSSL");
  c.short_window = 0;
  return c;
}

int nc_model_config_from_depth(int depth, int aspect_ratio, int head_dim, int sequence_len,
                               int vocab_size, nc_model_config *out, char *msg,
                               size_t msglen) {
  if (!out) return fail(msg, msglen, "out is NULL");
  if (depth < 1 || depth > NC_CFG_MAX_LAYER)
    return fail(msg, msglen, "depth %d out of range [1, %d]", depth, NC_CFG_MAX_LAYER);
  if (aspect_ratio < 1 || aspect_ratio > NC_CFG_MAX_EMBD)
    return fail(msg, msglen, "aspect_ratio %d out of range", aspect_ratio);
  if (head_dim < 2 || head_dim > NC_CFG_MAX_HEAD_DIM)
    return fail(msg, msglen, "head_dim %d out of range [2, %d]", head_dim,
                NC_CFG_MAX_HEAD_DIM);
  int64_t base_dim = (int64_t)depth * aspect_ratio;
  int64_t model_dim = (base_dim + head_dim - 1) / head_dim * head_dim;
  if (model_dim > NC_CFG_MAX_EMBD)
    return fail(msg, msglen, "n_embd %lld (depth*aspect_ratio) exceeds %d",
                (long long)model_dim, NC_CFG_MAX_EMBD);
  nc_model_config c = nc_model_config_default();
  c.sequence_len = sequence_len;
  c.vocab_size = vocab_size;
  c.n_layer = depth;
  c.n_embd = (int)model_dim;
  c.n_head = (int)(model_dim / head_dim);
  c.n_kv_head = c.n_head;
  int rc = nc_model_config_validate(&c, msg, msglen);
  if (rc) return rc;
  *out = c;
  return NC_OK;
}

int nc_model_config_validate(const nc_model_config *c, char *msg, size_t msglen) {
  if (!c) return fail(msg, msglen, "config is NULL");
  if (c->n_layer < 1 || c->n_layer > NC_CFG_MAX_LAYER)
    return fail(msg, msglen, "n_layer %d out of range [1, %d]", c->n_layer, NC_CFG_MAX_LAYER);
  if (c->n_head < 1) return fail(msg, msglen, "n_head %d must be >= 1", c->n_head);
  if (c->n_kv_head < 1 || c->n_kv_head > c->n_head)
    return fail(msg, msglen, "n_kv_head %d out of range [1, n_head=%d]", c->n_kv_head,
                c->n_head);
  if (c->n_head % c->n_kv_head != 0)
    return fail(msg, msglen, "n_head %d not divisible by n_kv_head %d", c->n_head,
                c->n_kv_head);
  if (c->n_embd < NC_CFG_SMEAR_CHANNELS || c->n_embd > NC_CFG_MAX_EMBD)
    return fail(msg, msglen, "n_embd %d out of range [%d, %d]", c->n_embd,
                NC_CFG_SMEAR_CHANNELS, NC_CFG_MAX_EMBD);
  if (c->n_embd % c->n_head != 0)
    return fail(msg, msglen, "n_embd %d not divisible by n_head %d", c->n_embd, c->n_head);
  int hd = c->n_embd / c->n_head;
  if (hd % 2 != 0) return fail(msg, msglen, "head_dim %d must be even (RoPE)", hd);
  if (hd > NC_CFG_MAX_HEAD_DIM)
    return fail(msg, msglen, "head_dim %d exceeds %d", hd, NC_CFG_MAX_HEAD_DIM);
  if (c->vocab_size < 2 || c->vocab_size > NC_CFG_MAX_VOCAB)
    return fail(msg, msglen, "vocab_size %d out of range [2, %d]", c->vocab_size,
                NC_CFG_MAX_VOCAB);
  if (c->sequence_len < 2 || c->sequence_len > NC_CFG_MAX_SEQ_LEN)
    return fail(msg, msglen, "sequence_len %d out of range [2, %d]", c->sequence_len,
                NC_CFG_MAX_SEQ_LEN);
  size_t plen = strnlen(c->window_pattern, sizeof c->window_pattern);
  if (plen == sizeof c->window_pattern)
    return fail(msg, msglen, "window_pattern is not NUL-terminated within %d chars",
                NC_WINDOW_PATTERN_MAX);
  if (plen == 0) return fail(msg, msglen, "window_pattern is empty");
  for (size_t i = 0; i < plen; i++) {
    char ch = c->window_pattern[i];
    if (ch != 'S' && ch != 'L' && ch != 's' && ch != 'l')
      return fail(msg, msglen, "window_pattern has invalid char at %zu (use only S and L)", i);
  }
  if (c->short_window < 0)
    return fail(msg, msglen, "short_window %d must be >= 0", c->short_window);
  return NC_OK;
}

int nc_model_config_head_dim(const nc_model_config *c) { return c->n_embd / c->n_head; }

int nc_model_config_padded_vocab(const nc_model_config *c) {
  return (c->vocab_size + NC_CFG_PAD_VOCAB - 1) / NC_CFG_PAD_VOCAB * NC_CFG_PAD_VOCAB;
}

int nc_model_config_kv_dim(const nc_model_config *c) {
  return c->n_kv_head * nc_model_config_head_dim(c);
}

int nc_model_config_has_ve(const nc_model_config *c, int layer) {
  return layer % 2 == (c->n_layer - 1) % 2;
}

int nc_model_config_backout_layer(const nc_model_config *c) { return c->n_layer / 2; }

int nc_model_config_short_window(const nc_model_config *c) {
  if (c->short_window > 0) return c->short_window;
  /* -(-T // 4 // 128) * 128 : ceil(floor(T/4)/128)*128 */
  int q = c->sequence_len / 4;
  return (q + 127) / 128 * 128;
}

int nc_model_config_window(const nc_model_config *c, int layer) {
  if (layer == c->n_layer - 1) return c->sequence_len;
  size_t plen = strlen(c->window_pattern);
  char ch = c->window_pattern[(size_t)layer % plen];
  if (ch == 'S' || ch == 's') return nc_model_config_short_window(c);
  return c->sequence_len;
}

nc_param_counts nc_model_config_param_counts(const nc_model_config *c) {
  nc_param_counts p;
  memset(&p, 0, sizeof p);
  int64_t C = c->n_embd, Vp = nc_model_config_padded_vocab(c);
  int64_t KV = nc_model_config_kv_dim(c);
  p.wte = Vp * C;
  p.lm_head = Vp * C;
  for (int i = 0; i < c->n_layer; i++) {
    /* c_q [C,C], c_k [KV,C], c_v [KV,C], c_proj [C,C], c_fc [4C,C], mlp.c_proj [C,4C] */
    p.transformer_matrices += C * C + 2 * KV * C + C * C + 8 * C * C;
    if (nc_model_config_has_ve(c, i)) {
      p.transformer_matrices += (int64_t)c->n_kv_head * NC_CFG_VE_GATE_CHANNELS;
      p.value_embeds += Vp * KV;
    }
  }
  p.scalars = 2 * (int64_t)c->n_layer + NC_CFG_SMEAR_CHANNELS + 2;
  p.total = p.wte + p.value_embeds + p.lm_head + p.transformer_matrices + p.scalars;
  p.scaling = p.transformer_matrices + p.lm_head;
  return p;
}

int64_t nc_model_config_flops_per_token(const nc_model_config *c) {
  nc_param_counts p = nc_model_config_param_counts(c);
  int64_t matmul = p.total - p.wte - p.value_embeds - p.scalars;
  int64_t hq = (int64_t)c->n_head * nc_model_config_head_dim(c);
  int64_t attn = 0;
  for (int i = 0; i < c->n_layer; i++) {
    int64_t w = nc_model_config_window(c, i);
    int64_t eff = w < c->sequence_len ? w : c->sequence_len;
    attn += 12 * hq * eff;
  }
  return 6 * matmul + attn;
}

json_t *nc_model_config_to_json(const nc_model_config *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  int bad = 0;
  bad |= json_object_set_new(o, "sequence_len", json_integer(c->sequence_len));
  bad |= json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
  bad |= json_object_set_new(o, "n_layer", json_integer(c->n_layer));
  bad |= json_object_set_new(o, "n_head", json_integer(c->n_head));
  bad |= json_object_set_new(o, "n_kv_head", json_integer(c->n_kv_head));
  bad |= json_object_set_new(o, "n_embd", json_integer(c->n_embd));
  char pat[NC_WINDOW_PATTERN_MAX + 1];
  snprintf(pat, sizeof pat, "%s", c->window_pattern);
  bad |= json_object_set_new(o, "window_pattern", json_string(pat));
  if (c->short_window)
    bad |= json_object_set_new(o, "short_window", json_integer(c->short_window));
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

char *nc_model_config_to_json_string(const nc_model_config *c) {
  json_t *o = nc_model_config_to_json(c);
  if (!o) return NULL;
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  return s;
}

static int get_int(const json_t *obj, const char *key, int required, int *out, char *msg,
                   size_t msglen) {
  json_t *v = json_object_get(obj, key);
  if (!v) {
    if (required) return fail(msg, msglen, "model_config: missing key \"%s\"", key);
    return NC_OK;
  }
  if (!json_is_integer(v))
    return fail(msg, msglen, "model_config: \"%s\" is not an integer", key);
  json_int_t x = json_integer_value(v);
  if (x < -2147483647LL || x > 2147483647LL)
    return fail(msg, msglen, "model_config: \"%s\" out of int range", key);
  *out = (int)x;
  return NC_OK;
}

int nc_model_config_from_json(const json_t *obj, nc_model_config *out, char *msg,
                              size_t msglen) {
  if (!out) return fail(msg, msglen, "out is NULL");
  if (!obj || !json_is_object(obj)) return fail(msg, msglen, "model_config is not an object");
  nc_model_config c;
  memset(&c, 0, sizeof c);
  int rc;
  if ((rc = get_int(obj, "sequence_len", 1, &c.sequence_len, msg, msglen))) return rc;
  if ((rc = get_int(obj, "vocab_size", 1, &c.vocab_size, msg, msglen))) return rc;
  if ((rc = get_int(obj, "n_layer", 1, &c.n_layer, msg, msglen))) return rc;
  if ((rc = get_int(obj, "n_head", 1, &c.n_head, msg, msglen))) return rc;
  if ((rc = get_int(obj, "n_kv_head", 1, &c.n_kv_head, msg, msglen))) return rc;
  if ((rc = get_int(obj, "n_embd", 1, &c.n_embd, msg, msglen))) return rc;
  if ((rc = get_int(obj, "short_window", 0, &c.short_window, msg, msglen))) return rc;
  json_t *wp = json_object_get(obj, "window_pattern");
  if (!wp) {
    strcpy(c.window_pattern, "L");
  } else {
    if (!json_is_string(wp)) return fail(msg, msglen, "model_config: window_pattern not a string");
    size_t n = json_string_length(wp);
    if (n == 0 || n > NC_WINDOW_PATTERN_MAX)
      return fail(msg, msglen, "model_config: window_pattern length %zu out of range [1, %d]",
                  n, NC_WINDOW_PATTERN_MAX);
    const char *s = json_string_value(wp);
    if (strlen(s) != n) return fail(msg, msglen, "model_config: window_pattern contains NUL");
    memcpy(c.window_pattern, s, n);
    c.window_pattern[n] = 0;
  }
  if ((rc = nc_model_config_validate(&c, msg, msglen))) return rc;
  *out = c;
  return NC_OK;
}

int nc_model_config_from_json_string(const char *json, size_t len, nc_model_config *out,
                                     char *msg, size_t msglen) {
  if (!json) return fail(msg, msglen, "json is NULL");
  if (len > (1u << 20)) return fail(msg, msglen, "model_config JSON too large (%zu bytes)", len);
  json_error_t err;
  json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (!o) return fail(msg, msglen, "model_config JSON: %s (line %d)", err.text, err.line);
  int rc = nc_model_config_from_json(o, out, msg, msglen);
  json_decref(o);
  return rc;
}
