/* nc_checkpoint.h — nanochat checkpoints in the safetensors format (specs/nanochat.md §7,
 * specs/faults.md §5 and rows 25–29).
 *
 * A checkpoint directory is nanochat's <root>/<phase_dir>/<tag>/ with phase_dir
 * base_checkpoints | chatsft_checkpoints | chatrl_checkpoints. For step S it holds
 *
 *   model_<S:06d>.safetensors        every parameter under nanochat's state-dict key
 *                                    ("transformer.wte.weight", "transformer.h.0.attn.c_q.weight",
 *                                    ..., "lm_head.weight", "value_embeds.1.weight",
 *                                    "resid_lambdas", ...), F32 (or BF16 for wte and value
 *                                    embeds, nanochat's GPU dtype, when asked). __metadata__:
 *                                      "format"        "nanochat-c/1"
 *                                      "model_config"  nanochat's meta model_config JSON
 *                                      "meta"          the whole meta JSON (step, model_config,
 *                                                      and whatever the trainer adds: val_bpb,
 *                                                      user_config, loop_state, ...)
 *   optim_<S:06d>_rank0.safetensors  optimizer state (nc_optim_state names, F32);
 *                                    __metadata__ "format", "optimizer" (nc_optim_meta_to_json)
 *   meta_<S:06d>.json                the same meta JSON, indent 2 (nanochat's file), written
 *                                    LAST: it marks the step complete
 *
 * Every file is written through nc_st_write (temp file, fsync, rename, fsync dir), so a
 * crash at any point leaves the previous complete checkpoint and at most a temp file,
 * which nc_ckpt_cleanup removes. The model file alone is self-describing, so a file
 * converted from PyTorch (tests/parity writes one) loads with nc_ckpt_read_model_file.
 *
 * Loading validates everything before allocating the model: the safetensors header
 * (nc_safetensors.h), "format" (a newer "nanochat-c/N" is refused; other values, e.g.
 * HF's "pt", are ignored), model_config (nc_model_config_validate: n_layer <= 256,
 * vocab <= 2^20, n_embd % n_head == 0, ...), the tensor set against the config (no missing,
 * no extras, shapes equal, float dtypes), optionally the SHA-256 and NaN/Inf. Errors carry
 * an nc_st_error kind and message.
 *
 * Paths (faults.md row 27): nc_ckpt_dir_open takes a trusted root plus an untrusted phase
 * and tag; the tag must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63} (no "/", "..", NUL), and
 * every component below the root is opened with O_NOFOLLOW (a symlink gives
 * NC_ST_E_SYMLINK / NC_EPERM). Files are opened relative to the directory fd, also
 * O_NOFOLLOW. Thread-safety: a directory handle may be used by one thread at a time.
 */
#ifndef NC_CHECKPOINT_H
#define NC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "nc_model.h"
#include "nc_optim.h"
#include "nc_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_CKPT_FORMAT "nanochat-c/1"
#define NC_CKPT_FORMAT_VERSION 1
#define NC_CKPT_TAG_MAX 64
#define NC_CKPT_MAX_STEP 999999999LL

typedef struct nc_ckpt_dir nc_ckpt_dir;

/* 1 if tag matches [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, else 0. */
int nc_ckpt_valid_tag(const char *tag);

/* nanochat's directory name of a phase: "base" -> "base_checkpoints", "sft" ->
 * "chatsft_checkpoints", "rl" -> "chatrl_checkpoints"; NULL for anything else. Static string. */
const char *nc_ckpt_phase_dir(const char *phase);

/* Opens <root>/<phase_dir>/<tag> (phase "base" | "sft" | "rl"), creating the two
 * components when create is set. root is trusted (server configuration). On success *out
 * owns a directory fd; close with nc_ckpt_dir_close. NC_ST_E_PATH (bad phase/tag),
 * NC_ST_E_SYMLINK, NC_ST_E_NOTFOUND, NC_ST_E_IO. */
int nc_ckpt_dir_open(const char *root, const char *phase, const char *tag, int create,
                     nc_ckpt_dir **out, nc_st_error *err);
/* Opens a trusted directory path as is (tools, tests), creating it when create is set. */
int nc_ckpt_dir_open_path(const char *path, int create, nc_ckpt_dir **out, nc_st_error *err);
void nc_ckpt_dir_close(nc_ckpt_dir *d);
/* The directory fd (owned by the handle). */
int nc_ckpt_dir_fd(const nc_ckpt_dir *d);

/* Complete steps (meta_<S>.json and model_<S>.safetensors both present as regular files),
 * ascending; at most max are stored, *n receives how many exist (when *n > max, which ones
 * were stored is unspecified: call again with a larger array). */
int nc_ckpt_list(nc_ckpt_dir *d, int64_t *steps, int max, int *n, nc_st_error *err);
/* The largest complete step; NC_ENOTFOUND (NC_ST_E_NOTFOUND) when there is none. */
int nc_ckpt_latest(nc_ckpt_dir *d, int64_t *step, nc_st_error *err);
/* Removes temp files left by crashed writers (pid no longer running). *removed may be NULL. */
int nc_ckpt_cleanup(nc_ckpt_dir *d, int *removed, nc_st_error *err);

typedef struct nc_ckpt_save_opts {
  int bf16_embeddings;          /* wte and value embeds as BF16 (rounded to nearest even) */
  nc_st_fault_fn fault;         /* test hook; points "model:header" ... "meta:rename"      */
  void *fault_ctx;
} nc_ckpt_save_opts;

/* Saves step `step` (0..NC_CKPT_MAX_STEP): the optimizer file when o != NULL, then the
 * model file, then meta_<S>.json. meta_json: NULL or a JSON object with the trainer's extra
 * fields; "step" and "model_config" are set by this function. model_sha256 (65 bytes, may
 * be NULL) receives the model file's SHA-256 in hex. opts may be NULL. */
int nc_ckpt_save(nc_ckpt_dir *d, int64_t step, nc_model *m, nc_optim *o, const char *meta_json,
                 const nc_ckpt_save_opts *opts, char model_sha256[65], nc_st_error *err);

typedef struct nc_ckpt_load_opts {
  const char *expected_sha256;  /* hex; NULL: not checked                                */
  int reject_nonfinite;         /* 1: a NaN/Inf anywhere is NC_ST_E_NONFINITE              */
  int expected_vocab_size;      /* > 0: the tokenizer's vocab; a different model vocab is
                                   NC_ST_E_CONFIG (nanochat's load_model assert, faults
                                   row 30), checked before allocation                     */
} nc_ckpt_load_opts;

/* Loads model_<step>.safetensors into a new model (*out, caller frees with nc_model_free).
 * meta_json (may be NULL) receives a malloc'd copy of the "meta" metadata (NULL if the file
 * has none; caller frees). opts may be NULL. */
int nc_ckpt_load_model(nc_ckpt_dir *d, int64_t step, const nc_ckpt_load_opts *opts,
                       nc_model **out, char **meta_json, nc_st_error *err);
/* Loads optim_<step>_rank0.safetensors into `o`, whose parameters must be the ones saved
 * (names, shapes, groups, type). Everything is checked before anything changes; only an
 * I/O error while reading the tensors can leave the state partly loaded (then recreate the
 * optimizer). NC_ST_E_NOTFOUND when the step has no optimizer file. */
int nc_ckpt_load_optim(nc_ckpt_dir *d, int64_t step, nc_optim *o, nc_st_error *err);

/* ---------------------------------------------------------------- single files */

/* Writes one model file (name relative to dirfd, AT_FDCWD allowed); meta_json may be NULL. */
int nc_ckpt_write_model_file(int dirfd, const char *name, nc_model *m, const char *meta_json,
                             const nc_ckpt_save_opts *opts, char sha256_hex[65],
                             nc_st_error *err);
/* Reads one model file as nc_ckpt_load_model does. */
int nc_ckpt_read_model_file(int dirfd, const char *name, const nc_ckpt_load_opts *opts,
                            nc_model **out, char **meta_json, nc_st_error *err);

/* Validation steps, exposed for the fuzzer and tools: the checks of a model file that need
 * no allocation beyond the header (format, config, tensor set, dtypes); *cfg receives the
 * config. */
int nc_ckpt_check_model(const nc_st_file *f, nc_model_config *cfg, nc_st_error *err);
/* After a successful check: creates the model and reads every tensor. */
int nc_ckpt_model_from_file(nc_st_file *f, const nc_model_config *cfg,
                            const nc_ckpt_load_opts *opts, nc_model **out, nc_st_error *err);

#ifdef __cplusplus
}
#endif
#endif /* NC_CHECKPOINT_H */
