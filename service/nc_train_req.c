/* nc_train_req.c — TrainBaseRequest mapping and Train.Base's pre-queue checks (nc_train_req.h). */
#include "nc_train_req.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_checkpoint.h"
#include "nc_corpus.h"
#include "nc_err.h"

#define fail(rc, msg, len, ...) nc_errf((rc), (msg), (len), __VA_ARGS__)

int nc_train_base_opts(const Nanochat__V1__TrainBaseRequest *r, nc_base_opts *o, char *msg, size_t len) {
  if (!r || !o) return fail(NC_EINVAL, msg, len, "NULL argument");
  *o = nc_base_opts_default();
  o->depth = r->depth;
  o->aspect_ratio = r->aspect_ratio;
  o->head_dim = r->head_dim;
  o->max_seq_len = r->max_seq_len;
  const char *wp = r->window_pattern ? r->window_pattern : "SSSL";
  if (strlen(wp) > NC_WINDOW_PATTERN_MAX) return fail(NC_EINVAL, msg, len, "window_pattern: too long");
  snprintf(o->window_pattern, sizeof o->window_pattern, "%s", wp);
  o->short_window = r->short_window;
  o->num_iterations = r->num_iterations;
  o->target_flops = r->target_flops;
  o->target_param_data_ratio = r->target_param_data_ratio;
  o->device_batch_size = r->device_batch_size;
  o->total_batch_size = r->total_batch_size;
  o->embedding_lr = r->embedding_lr;
  o->unembedding_lr = r->unembedding_lr;
  o->weight_decay = r->weight_decay;
  o->matrix_lr = r->matrix_lr;
  o->scalar_lr = r->scalar_lr;
  o->warmup_steps = r->warmup_steps;
  o->warmdown_ratio = r->warmdown_ratio;
  o->final_lr_frac = r->final_lr_frac;
  o->eval_every = r->eval_every;
  o->eval_tokens = r->eval_tokens;
  o->save_every = r->save_every;
  o->seed = r->seed;
  const char *opt = r->optimizer ? r->optimizer : "";
  if (!opt[0] || !strcmp(opt, "muon") || !strcmp(opt, "muonadamw")) o->optimizer = NC_TRAIN_OPT_MUON;
  else if (!strcmp(opt, "adamw")) o->optimizer = NC_TRAIN_OPT_ADAMW;
  else return fail(NC_EINVAL, msg, len, "optimizer: must be \"muon\" or \"adamw\"");
  const char *dev = r->device ? r->device : "";
  if (dev[0] && strcmp(dev, "auto") && strcmp(dev, "cpu"))
    return fail(NC_ESTATE, msg, len,
                "device: \"%s\" is not available: this server trains on the CPU only (use auto or cpu)", dev);
  return NC_OK;
}

void nc_train_base_tag(const Nanochat__V1__TrainBaseRequest *r, char out[NC_TRAIN_TAG_MAX + 1]) {
  if (r->model_tag && r->model_tag[0]) snprintf(out, NC_TRAIN_TAG_MAX + 1, "%s", r->model_tag);
  else snprintf(out, NC_TRAIN_TAG_MAX + 1, "d%d", (int)r->depth);
}

static int mkdir_one(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
  return -1;
}

int nc_train_ckpt_dir(const char *data_dir, const char *phase, const char *tag, int create, char *out, size_t cap) {
  if (!data_dir || !phase || !tag || !out) return NC_EINVAL;
  const char *pdir = nc_ckpt_phase_dir(phase);
  if (!pdir) return NC_EINVAL;
  if (!nc_ckpt_valid_tag(tag)) return NC_EINVAL;
  int n = snprintf(out, cap, "%s/checkpoints/%s/%s", data_dir, pdir, tag);
  if (n < 0 || (size_t)n >= cap) return NC_EINVAL;
  if (!create) return NC_OK;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s/checkpoints", data_dir);
  if (mkdir_one(tmp)) return NC_EIO;
  snprintf(tmp, sizeof tmp, "%s/checkpoints/%s", data_dir, pdir);
  if (mkdir_one(tmp) || mkdir_one(out)) return NC_EIO;
  return NC_OK;
}

int nc_train_corpus_check(const char *data_dir, const Nanochat__V1__DatasetRef *ds, char *dir, size_t cap,
                          char *msg, size_t len) {
  const char *name = ds ? ds->name : NULL;
  if (nc_corpus_resolve(data_dir, name, dir, cap) != NC_OK)
    return fail(NC_EINVAL, msg, len, "dataset.name: not a dataset name");
  nc_corpus_opts o = {.dir = dir, .split = "train"};
  nc_corpus *c;
  char err[512];
  if (nc_corpus_open(&o, &c, err, sizeof err) != NC_OK)
    return fail(NC_ESTATE, msg, len, "dataset: no training text at %s%s", dir,
                name && name[0] ? "" : " (build the default corpus with scripts/build-corpus)");
  nc_corpus_close(c);
  return NC_OK;
}

static int regular(const char *dir, const char *name) {
  char p[4400];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct stat st;
  return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int nc_train_base_precheck(const char *data_dir, const nc_tokenizer *tok, const Nanochat__V1__TrainBaseRequest *r,
                           nc_base_plan *plan_out, char *msg, size_t len) {
  nc_base_opts o;
  int rc = nc_train_base_opts(r, &o, msg, len);
  if (rc) return rc;
  nc_special_ids sp;
  if (nc_tok_nanochat_specials(tok, &sp) != NC_OK)
    return fail(NC_ESTATE, msg, len, "tokenizer: the served tokenizer lacks nanochat's special tokens");
  nc_base_plan plan;
  rc = nc_base_plan_make(&o, nc_tok_vocab_size(tok), &plan, msg, len);
  if (rc) return rc;
  if (plan_out) *plan_out = plan;
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  double ram = pages > 0 && psize > 0 ? (double)pages * (double)psize : 0;
  if (ram > 0 && (double)plan.memory_bytes > ram)
    return fail(NC_EFULL, msg, len,
                "depth: training this model (%lld parameters, micro-batch %d x %d) needs about %.1f GiB by the "
                "estimate; this machine has %.1f GiB (lower depth, device_batch_size or max_seq_len)",
                (long long)plan.params.total, o.device_batch_size, o.max_seq_len,
                (double)plan.memory_bytes / (1u << 30), ram / (1u << 30));
  char dir[4096];
  rc = nc_train_corpus_check(data_dir, r->dataset, dir, sizeof dir, msg, len);
  if (rc) return rc;
  if (r->resume_from_step >= 0) {
    char tag[NC_TRAIN_TAG_MAX + 1], cdir[4200], f[3][64];
    nc_train_base_tag(r, tag);
    if (nc_train_ckpt_dir(data_dir, "base", tag, 0, cdir, sizeof cdir) != NC_OK)
      return fail(NC_EINVAL, msg, len, "model_tag: not a valid tag");
    long long s = (long long)r->resume_from_step;
    snprintf(f[0], sizeof f[0], "model_%06lld.safetensors", s);
    snprintf(f[1], sizeof f[1], "optim_%06lld_rank0.safetensors", s);
    snprintf(f[2], sizeof f[2], "meta_%06lld.json", s);
    for (int i = 0; i < 3; i++)
      if (!regular(cdir, f[i]))
        return fail(NC_ESTATE, msg, len, "resume_from_step: no checkpoint base/%s step %lld (%s is missing)", tag, s,
                    f[i]);
    if (r->resume_from_step > plan.num_iterations)
      return fail(NC_EINVAL, msg, len, "resume_from_step: step %lld is past the horizon of %lld steps", s,
                  (long long)plan.num_iterations);
  }
  return NC_OK;
}
