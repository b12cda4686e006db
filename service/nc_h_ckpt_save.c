/* nc_h_ckpt_save.c — Checkpoint.Save: the served model → a checkpoint.
 *
 * Order (faults.md §3.4): the model file and then meta_<S>.json are written through
 * nc_ckpt_save (temp file O_EXCL|O_NOFOLLOW, fsync, rename, fsync dir — nc_checkpoint.h), and
 * only then is the CheckpointInfo committed to LMDB (nc_store_ckpt_put). A crash in between
 * leaves complete files without metadata: Checkpoint.List(verify) reports them as ORPHAN.
 * Defaults: phase = the served model's, tag = the served model's (else "manual"), step = the
 * served model's. An existing (phase, tag, step) — in the store or on disk — is ALREADY_EXISTS.
 * The meta JSON of the served file is kept (step and model_config are rewritten). No optimizer
 * state is saved (the server holds none). The engine keeps serving meanwhile: saving only reads
 * the parameters.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "nanochat/v1/checkpoint.pb-c.h"
#include "nc_call.h"
#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_serving.h"
#include "nc_store.h"

/* The served meta JSON when it is an object (else NULL: a fresh one); val_bpb out of it. */
static const char *usable_meta(const char *meta, double *val_bpb) {
  *val_bpb = NAN;
  if (!meta) return NULL;
  json_error_t je;
  json_t *root = json_loads(meta, JSON_REJECT_DUPLICATES, &je);
  bool ok = root && json_is_object(root);
  if (ok && json_is_number(json_object_get(root, "val_bpb")))
    *val_bpb = json_number_value(json_object_get(root, "val_bpb"));
  json_decref(root);
  return ok ? meta : NULL;
}

static int save(nc_call *c, nc_app *app, nc_served *b, const Nanochat__V1__CheckpointSaveRequest *r) {
  const nc_served_id *id = nc_served_identity(b);
  int phase = r->has_phase && r->phase ? (int)r->phase : id->phase;
  const char *tag = r->tag && r->tag[0] ? r->tag : (id->tag[0] ? id->tag : "manual");
  int64_t step = r->has_step ? r->step : id->step;
  if (!nc_ckpt_valid_tag(tag)) return nc_call_finish(c, NC_EINVAL, "tag: must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
  if (step < 0 || step > NC_CKPT_MAX_STEP) return nc_call_finish(c, NC_EINVAL, "step: out of range");
  const char *pname = nc_serving_phase_name(phase);
  Nanochat__V1__CheckpointInfo *old = NULL;
  int rc = nc_store_ckpt_get(app->store, (Nanochat__V1__Phase)phase, tag, step, &old);
  nc_store_free_msg(old);
  if (rc == NC_OK) return nc_call_finish(c, NC_EEXIST, "checkpoint %s/%s step %lld already exists", pname, tag, (long long)step);
  char root[NC_CONFIG_STR + 16];
  snprintf(root, sizeof root, "%s/checkpoints", app->cfg->data_dir);
  if (mkdir(root, 0700) != 0 && errno != EEXIST) return nc_call_finish(c, NC_EIO, "cannot create checkpoints/");
  nc_ckpt_dir *d;
  nc_st_error e;
  memset(&e, 0, sizeof e);
  rc = nc_ckpt_dir_open(root, pname, tag, 1, &d, &e);
  if (rc) return nc_call_finish(c, rc, "checkpoint directory: %s", e.msg);
  char model_name[64], meta_name[64];
  snprintf(model_name, sizeof model_name, "model_%06lld.safetensors", (long long)step);
  snprintf(meta_name, sizeof meta_name, "meta_%06lld.json", (long long)step);
  struct stat sb;
  if (fstatat(nc_ckpt_dir_fd(d), model_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
      fstatat(nc_ckpt_dir_fd(d), meta_name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
    nc_ckpt_dir_close(d);
    return nc_call_finish(c, NC_EEXIST, "checkpoint %s/%s step %lld already exists on disk", pname, tag, (long long)step);
  }
  double val_bpb;
  const char *meta = usable_meta(id->meta_json, &val_bpb);
  char sha[65] = "";
  rc = nc_ckpt_save(d, step, nc_served_model(b), NULL, meta, NULL, sha, &e);
  bool sized = rc == NC_OK && fstatat(nc_ckpt_dir_fd(d), model_name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
  nc_ckpt_dir_close(d);
  if (rc) return nc_call_finish(c, rc, "saving: %s", e.msg);
  char path[256];
  snprintf(path, sizeof path, "checkpoints/%s/%s/%s", nc_serving_phase_dir(phase), tag, model_name);
  nc_model_info mi;
  memset(&mi, 0, sizeof mi);
  nc_served_info(b, &mi);
  Nanochat__V1__ModelConfig cfg;
  nc_model_info_config(&mi, &cfg);
  Nanochat__V1__CheckpointInfo ci = NANOCHAT__V1__CHECKPOINT_INFO__INIT;
  ci.has_phase = ci.has_step = ci.has_created_ms = ci.has_val_bpb = ci.has_status = true;
  ci.phase = (Nanochat__V1__Phase)phase;
  ci.tag = (char *)tag;
  ci.step = step;
  ci.path = path;
  ci.has_size = sized;
  ci.size = sized ? (uint64_t)sb.st_size : 0;
  ci.sha256 = sha;
  ci.created_ms = nc_now_unix_ms();
  ci.config = &cfg;
  ci.val_bpb = val_bpb;
  ci.status = NANOCHAT__V1__CHECKPOINT_STATUS__CHECKPOINT_OK;
  ci.has_parameters = true;
  ci.parameters = mi.parameters;
  rc = nc_store_ckpt_put(app->store, &ci, false);
  if (rc) return nc_call_finish(c, rc, "checkpoint metadata: %s", nc_store_last_error());
  return nc_call_reply(c, &ci.base);
}

int nc_h_checkpoint_save(nc_call *c, const ProtobufCMessage *req) {
  nc_app *app = nc_call_app(c);
  if (!app->store) return nc_call_finish(c, NC_ENOTREADY, "checkpoint store not open");
  nc_served *b = app->serving ? nc_serving_acquire(app->serving) : NULL;
  if (!b) return nc_call_finish(c, NC_ESTATE, "no model loaded");
  int rc = save(c, app, b, (const void *)req);
  nc_served_release(b);
  return rc;
}
