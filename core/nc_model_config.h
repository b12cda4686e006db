/* nc_model_config.h — the nanochat GPT configuration and everything derived from it.
 *
 * Mirrors nanochat's GPTConfig (pinned a445144, nanochat/gpt.py) and the shape rules of
 * scripts/base_train.py (see specs/nanochat.md §2.1, §2.2, §2.4, §2.7):
 *
 *   head_dim        = n_embd / n_head
 *   padded vocab    = vocab_size rounded up to a multiple of 64 (wte, lm_head, value embeds)
 *   window(layer)   = FA3 (left, 0) window: a query at position p sees keys [p - left, p].
 *                     pattern char 'L' -> sequence_len, 'S' -> ceil(sequence_len/4/128)*128,
 *                     tiled over layers; the last layer is always 'L'.
 *                     `short_window` > 0 replaces the S rule (tiny test models need windows
 *                     shorter than T); 0 keeps nanochat's rule.
 *   has_ve(layer)   = layer % 2 == (n_layer - 1) % 2
 *   backout layer   = n_layer / 2
 *
 * Everything here is plain arithmetic on a by-value struct: no allocation except the JSON
 * helpers, which say who owns what. No global state; every function is thread-safe.
 */
#ifndef NC_MODEL_CONFIG_H
#define NC_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest window pattern accepted (nanochat patterns are a few characters long). */
#define NC_WINDOW_PATTERN_MAX 64

/* Sanity limits applied by nc_model_config_validate (faults.md row 29, §5). */
#define NC_CFG_MAX_LAYER 256
#define NC_CFG_MAX_VOCAB (1 << 20)
#define NC_CFG_MAX_SEQ_LEN 65536
#define NC_CFG_MAX_EMBD 16384
#define NC_CFG_MAX_HEAD_DIM 1024
#define NC_CFG_PAD_VOCAB 64
#define NC_CFG_SMEAR_CHANNELS 24   /* smear_gate reads x[..., :24] */
#define NC_CFG_VE_GATE_CHANNELS 12 /* ve_gate reads x[..., :12]    */

typedef struct nc_model_config {
  int sequence_len;  /* training context T (nanochat default 2048)                  */
  int vocab_size;    /* real vocabulary; logits are sliced to this                  */
  int n_layer;
  int n_head;        /* query heads                                                 */
  int n_kv_head;     /* key/value heads (GQA when < n_head)                         */
  int n_embd;        /* model width C                                               */
  char window_pattern[NC_WINDOW_PATTERN_MAX + 1]; /* e.g. "SSSL"; 'S'/'L', any case */
  int short_window;  /* 0: nanochat S rule; > 0: explicit S window (not in nanochat) */
} nc_model_config;

/* Parameter counts grouped like nanochat's GPT.num_scaling_params(). */
typedef struct nc_param_counts {
  int64_t wte;
  int64_t value_embeds;
  int64_t lm_head;
  int64_t transformer_matrices; /* everything under transformer.h.* (incl. ve_gate)    */
  int64_t scalars;              /* resid/x0 lambdas, smear_gate, smear/backout lambdas */
  int64_t total;
  int64_t scaling;              /* transformer_matrices + lm_head (tokens:params ratio) */
} nc_param_counts;

/* GPTConfig defaults: T 2048, vocab 32768, 12 layers, 6 heads, 6 kv heads, C 768, "SSSL". */
nc_model_config nc_model_config_default(void);

/* scripts/base_train.py build_model_meta: base_dim = depth*aspect_ratio,
 * n_embd = ceil(base_dim/head_dim)*head_dim, n_head = n_kv_head = n_embd/head_dim,
 * window pattern "SSSL". Fills *out and validates it.
 * Returns NC_OK, or NC_EINVAL (message in msg, if msg != NULL) for bad inputs or a result
 * that fails nc_model_config_validate. */
int nc_model_config_from_depth(int depth, int aspect_ratio, int head_dim, int sequence_len,
                               int vocab_size, nc_model_config *out, char *msg, size_t msglen);

/* Checks every field against the sanity limits before anything is allocated:
 * 1 <= n_layer <= 256; n_head >= 1; 1 <= n_kv_head <= n_head, n_head % n_kv_head == 0;
 * n_embd % n_head == 0; head_dim even and <= 1024; 24 <= n_embd <= 16384;
 * 2 <= vocab_size <= 2^20; 2 <= sequence_len <= 65536; window pattern non-empty, only
 * S/L (any case), at most 64 chars, NUL-terminated; short_window >= 0.
 * Returns NC_OK or NC_EINVAL with a message naming the field (msg may be NULL). */
int nc_model_config_validate(const nc_model_config *c, char *msg, size_t msglen);

/* Derived quantities. These assume a validated config. */
int nc_model_config_head_dim(const nc_model_config *c);
int nc_model_config_padded_vocab(const nc_model_config *c);
int nc_model_config_kv_dim(const nc_model_config *c); /* n_kv_head * head_dim */
int nc_model_config_has_ve(const nc_model_config *c, int layer);
int nc_model_config_backout_layer(const nc_model_config *c); /* n_layer / 2 */
/* Left window of `layer` (FA3 window_size[0]); >= sequence_len means full causal. */
int nc_model_config_window(const nc_model_config *c, int layer);
/* nanochat's S window for this config: short_window if > 0, else ceil(T/4/128)*128. */
int nc_model_config_short_window(const nc_model_config *c);

/* Parameter counts (exact, int64). */
nc_param_counts nc_model_config_param_counts(const nc_model_config *c);

/* Pinned nanochat GPT.estimate_flops(): FLOPs per token for forward + backward:
 * 6 * (all params - wte - value embeds - resid/x0 lambdas - smear_gate - smear/backout
 * lambdas) + sum over layers of 12 * n_head * head_dim * min(window, sequence_len). */
int64_t nc_model_config_flops_per_token(const nc_model_config *c);

/* JSON in nanochat's meta "model_config" shape:
 * {"sequence_len","vocab_size","n_layer","n_head","n_kv_head","n_embd","window_pattern"}
 * plus "short_window" only when it is non-zero (a nanochat-c extension).
 *
 * nc_model_config_to_json_string: returns a malloc'd NUL-terminated compact JSON string
 * the caller frees with free(), or NULL on allocation failure.
 * nc_model_config_from_json_string: parses `len` bytes of JSON; missing window_pattern
 * means "L" (checkpoint_manager's rule); the six integer keys are required and must be
 * integers in range; unknown keys are ignored. The result is validated.
 * Returns NC_OK or NC_EINVAL with a message. */
char *nc_model_config_to_json_string(const nc_model_config *c);
int nc_model_config_from_json_string(const char *json, size_t len, nc_model_config *out,
                                     char *msg, size_t msglen);

/* The same with jansson objects (json_t *), for embedding into larger documents.
 * to_json returns a new reference (NULL on allocation failure); from_json borrows `obj`. */
struct json_t;
struct json_t *nc_model_config_to_json(const nc_model_config *c);
int nc_model_config_from_json(const struct json_t *obj, nc_model_config *out, char *msg,
                              size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* NC_MODEL_CONFIG_H */
