/* nc_serving_load.c — Model.Load's work: tag/step resolution under <data_dir>/checkpoints,
 * full validation of the model file, the engine, the new bundle (see nc_serving.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_serving_int.h"
#include "nc_store.h"

const char *nc_serving_phase_name(int phase) {
  switch (phase) {
    case 1: return "base";
    case 2: return "sft";
    case 3: return "rl";
    default: return NULL;
  }
}

const char *nc_serving_phase_dir(int phase) {
  return nc_ckpt_phase_dir(nc_serving_phase_name(phase));
}

/* The checkpoint error's message with its code (nc_st_error kinds map to NC_E* codes). */
static int st_fail(int rc, const nc_st_error *e, const char *what, char *msg, size_t msglen) {
  snprintf(msg, msglen, "%s: %s", what, e->msg[0] ? e->msg : nc_strerror(rc));
  return rc;
}

/* nanochat's find_largest_model: "d<digits>..." names, largest number; -1 if none. */
static long tag_depth(const char *tag) {
  if (tag[0] != 'd' || tag[1] < '0' || tag[1] > '9') return -1;
  long n = 0;
  for (const char *p = tag + 1; *p >= '0' && *p <= '9'; p++) {
    if (n > 100000000L) return -1;
    n = n * 10 + (*p - '0');
  }
  return n;
}

/* Latest complete step of root/phase/tag; NC_ENOTFOUND when none. */
static int latest_step(const char *root, int phase, const char *tag, int64_t *step) {
  nc_ckpt_dir *d;
  nc_st_error e;
  int rc = nc_ckpt_dir_open(root, nc_serving_phase_name(phase), tag, 0, &d, &e);
  if (rc) return rc;
  rc = nc_ckpt_latest(d, step, &e);
  nc_ckpt_dir_close(d);
  return rc;
}

/* Default tag: largest d<N> among tags with a complete step, else the newest (mtime). */
static int default_tag(const char *root, int phase, char out[65], char *msg, size_t msglen) {
  char pdir[NC_CONFIG_STR + 64];
  snprintf(pdir, sizeof pdir, "%s/%s", root, nc_serving_phase_dir(phase));
  int fd = open(pdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    snprintf(msg, msglen, "no %s checkpoints (checkpoints/%s does not exist)", nc_serving_phase_name(phase),
             nc_serving_phase_dir(phase));
    return errno == ELOOP ? NC_EPERM : NC_ENOTFOUND;
  }
  DIR *dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    snprintf(msg, msglen, "cannot read checkpoints/%s", nc_serving_phase_dir(phase));
    return NC_EIO;
  }
  long best_depth = -1;
  struct timespec best_mtime = {0, 0};
  out[0] = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    const char *t = de->d_name;
    struct stat sb;
    int64_t step;
    if (!nc_ckpt_valid_tag(t) || fstatat(dirfd(dir), t, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISDIR(sb.st_mode) || latest_step(root, phase, t, &step) != NC_OK)
      continue;
    long dep = tag_depth(t);
    bool better;
    if (dep >= 0 || best_depth >= 0)
      better = dep > best_depth || (dep == best_depth && dep >= 0 && strcmp(t, out) < 0);
    else
      better = !out[0] || sb.st_mtim.tv_sec > best_mtime.tv_sec ||
               (sb.st_mtim.tv_sec == best_mtime.tv_sec && sb.st_mtim.tv_nsec > best_mtime.tv_nsec);
    if (better) {
      size_t tl = strnlen(t, 64);
      memcpy(out, t, tl);
      out[tl] = 0;
      best_depth = dep;
      best_mtime = sb.st_mtim;
    }
  }
  closedir(dir);
  if (!out[0]) {
    snprintf(msg, msglen, "no complete %s checkpoint under checkpoints/%s", nc_serving_phase_name(phase),
             nc_serving_phase_dir(phase));
    return NC_ENOTFOUND;
  }
  return NC_OK;
}

int nc_serving_resolve(const char *data_dir, int phase, const char *tag, int64_t step,
                       char tag_out[65], int64_t *step_out, char *msg, size_t msglen) {
  if (!nc_serving_phase_name(phase)) {
    snprintf(msg, msglen, "phase: must be base, sft or rl");
    return NC_EINVAL;
  }
  char root[NC_CONFIG_STR + 16];
  snprintf(root, sizeof root, "%s/checkpoints", data_dir);
  if (tag && tag[0]) {
    if (!nc_ckpt_valid_tag(tag)) {
      snprintf(msg, msglen, "model_tag: must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
      return NC_EINVAL;
    }
    snprintf(tag_out, 65, "%s", tag);
  } else {
    int rc = default_tag(root, phase, tag_out, msg, msglen);
    if (rc) return rc;
  }
  nc_ckpt_dir *d;
  nc_st_error e;
  int rc = nc_ckpt_dir_open(root, nc_serving_phase_name(phase), tag_out, 0, &d, &e);
  if (rc == NC_ENOTFOUND) {
    snprintf(msg, msglen, "model_tag: no %s checkpoint tagged %s", nc_serving_phase_name(phase), tag_out);
    return rc;
  }
  if (rc) return st_fail(rc, &e, "checkpoint directory", msg, msglen);
  if (step >= 0) {
    /* a complete step has both its meta and model files */
    char name[64];
    snprintf(name, sizeof name, "meta_%06lld.json", (long long)step);
    struct stat sb;
    rc = fstatat(nc_ckpt_dir_fd(d), name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) ? NC_OK : NC_ENOTFOUND;
    snprintf(name, sizeof name, "model_%06lld.safetensors", (long long)step);
    if (!rc && (fstatat(nc_ckpt_dir_fd(d), name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)))
      rc = NC_ENOTFOUND;
    if (rc) snprintf(msg, msglen, "step: %s/%s has no complete step %lld", nc_serving_phase_name(phase), tag_out,
                     (long long)step);
    *step_out = step;
  } else {
    rc = nc_ckpt_latest(d, step_out, &e);
    if (rc == NC_ENOTFOUND)
      snprintf(msg, msglen, "step: %s/%s has no complete step", nc_serving_phase_name(phase), tag_out);
    else if (rc)
      st_fail(rc, &e, "checkpoint directory", msg, msglen);
  }
  nc_ckpt_dir_close(d);
  return rc;
}

/* Reserved bytes: fp32 weights, the decoder's bf16 copy, every slot's KV cache (4 or 2 bytes
 * per element). */
static uint64_t memory_estimate(const nc_model_config *cfg, const nc_engine_stats *st,
                                const nc_param_counts *pc) {
  uint64_t w = (uint64_t)pc->total * 4;
  if (st->weights != NC_DECODE_F32)
    w += (uint64_t)(pc->transformer_matrices + (int64_t)cfg->vocab_size * cfg->n_embd) * 2;
  uint64_t kv = (uint64_t)st->slots_total * (uint64_t)st->context * (uint64_t)cfg->n_layer * 2 *
                (uint64_t)nc_model_config_kv_dim(cfg) * (st->kv == NC_KV_BF16 ? 2 : 4);
  return w + kv;
}

/* Opens, hashes and validates the model file, checks it against the store's metadata and the
 * tokenizer's vocab, then reads every tensor (NaN/Inf refused). */
static int read_model(nc_serving *s, nc_ckpt_dir *d, int phase, const char *tag, int64_t step,
                      int32_t vocab, nc_served *b, char *msg, size_t msglen) {
  char name[64];
  snprintf(name, sizeof name, "model_%06lld.safetensors", (long long)step);
  snprintf(b->id.path, sizeof b->id.path, "checkpoints/%s/%s/%s", nc_serving_phase_dir(phase), tag, name);
  nc_st_file *f;
  nc_st_error e;
  memset(&e, 0, sizeof e);
  int rc = nc_st_openat(nc_ckpt_dir_fd(d), name, &f, &e);
  if (rc) return st_fail(rc, &e, name, msg, msglen);
  uint8_t dg[32];
  rc = nc_st_sha256(f, dg, &e);
  if (!rc) {
    for (int i = 0; i < 32; i++) snprintf(b->id.sha256 + 2 * i, 3, "%02x", dg[i]);
    Nanochat__V1__CheckpointInfo *ci = NULL;
    if (s->o.store && nc_store_ckpt_get(s->o.store, (Nanochat__V1__Phase)phase, tag, step, &ci) == NC_OK) {
      if (ci->sha256 && ci->sha256[0] && strcmp(ci->sha256, b->id.sha256) != 0) {
        snprintf(msg, msglen, "%s: SHA-256 %s differs from the checkpoint metadata's %.64s", name, b->id.sha256,
                 ci->sha256);
        rc = NC_ECORRUPT;
      }
      nc_store_free_msg(ci);
    }
  } else {
    st_fail(rc, &e, name, msg, msglen);
  }
  if (!rc) {
    rc = nc_ckpt_check_model(f, &b->cfg, &e);
    if (rc) st_fail(rc, &e, name, msg, msglen);
  }
  if (!rc && b->cfg.vocab_size != vocab) {
    snprintf(msg, msglen, "vocab mismatch: the model's vocab_size is %d, the server's tokenizer has %d", b->cfg.vocab_size,
             (int)vocab);
    rc = NC_ESTATE;
  }
  if (!rc && nc_st_meta(f, "meta") && !(b->meta = strdup(nc_st_meta(f, "meta")))) rc = NC_ENOMEM;
  if (!rc) {
    nc_ckpt_load_opts lo = {NULL, 1, vocab};
    rc = nc_ckpt_model_from_file(f, &b->cfg, &lo, &b->model, &e);
    if (rc) st_fail(rc, &e, name, msg, msglen);
  }
  nc_st_close(f);
  return rc;
}

int nc_serving_build(nc_serving *s, int phase, const char *tag, int64_t step, nc_served **out,
                     char *msg, size_t msglen) {
  *out = NULL;
  nc_served *b = calloc(1, sizeof *b);
  if (!b) {
    snprintf(msg, msglen, "out of memory");
    return NC_ENOMEM;
  }
  atomic_init(&b->refs, 1);
  b->holder = s;
  pthread_mutex_init(&b->eval_mu, NULL);
  b->id.phase = phase;
  snprintf(b->id.tag, sizeof b->id.tag, "%s", tag);
  b->id.step = step;
  int rc = NC_OK;
  b->tokref = nc_tokref_get(s->o.tokenizers);
  const nc_tokenizer *tok = b->tokref ? nc_tokref_tok(b->tokref) : NULL;
  if (!tok) {
    snprintf(msg, msglen, "no tokenizer loaded (train one with Train.Tokenizer or start with --tokenizer FILE)");
    rc = NC_ESTATE;
  } else if (nc_tok_nanochat_specials(tok, &b->sp) != NC_OK) {
    snprintf(msg, msglen, "the server's tokenizer lacks nanochat's special tokens");
    rc = NC_ESTATE;
  }
  if (!rc) {
    char root[NC_CONFIG_STR + 16];
    snprintf(root, sizeof root, "%s/checkpoints", s->data_dir);
    nc_ckpt_dir *d;
    nc_st_error e;
    rc = nc_ckpt_dir_open(root, nc_serving_phase_name(phase), tag, 0, &d, &e);
    if (rc) {
      st_fail(rc, &e, "checkpoint directory", msg, msglen);
    } else {
      rc = read_model(s, d, phase, tag, step, nc_tok_vocab_size(tok), b, msg, msglen);
      nc_ckpt_dir_close(d);
    }
  }
  if (!rc) {
    nc_engine_config ec = nc_engine_config_default();
    ec.slots = s->o.slots;
    ec.queue_limit = s->o.queue_limit;
    ec.prefill_chunk = s->o.prefill_chunk;
    ec.threads = s->o.threads;
    ec.weights = s->o.weights;
    ec.kv = s->o.kv;
    ec.tok = nc_tok_chat_iface(tok);
    ec.sp = b->sp;
    char em[256] = "";
    rc = nc_engine_create(b->model, &ec, &b->engine, em, sizeof em);
    if (rc == NC_ENOTSUP) {  /* bf16-dot asked on a CPU without it: fall back to the fastest */
      ec.weights = NC_DECODE_AUTO;
      rc = nc_engine_create(b->model, &ec, &b->engine, em, sizeof em);
    }
    if (rc) snprintf(msg, msglen, "engine: %s", em[0] ? em : nc_strerror(rc));
  }
  if (rc) {
    nc_served_destroy(b);
    return rc;
  }
  b->id.meta_json = b->meta;
  b->id.loaded_ms = nc_now_unix_ms();
  nc_param_counts pc = nc_model_config_param_counts(&b->cfg);
  nc_engine_stats st;
  nc_engine_get_stats(b->engine, &st);
  b->parameters = (uint64_t)pc.total;
  b->memory_bytes = memory_estimate(&b->cfg, &st, &pc);
  *out = b;
  return NC_OK;
}
