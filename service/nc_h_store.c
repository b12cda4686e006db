/* nc_h_store.c — handlers answered from the LMDB store: Chat.History and Checkpoint.List. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nanochat/v1/chat.pb-c.h"
#include "nanochat/v1/checkpoint.pb-c.h"
#include "nc_call.h"
#include "nc_checkpoint.h"
#include "nc_err.h"
#include "nc_store.h"

static int store_err(nc_call *c, int rc, const char *what) {
  const char *m = nc_store_last_error();
  return nc_call_finish(c, rc, "%s: %s", what, m && m[0] ? m : nc_strerror(rc));
}

/* ---- Chat.History ----------------------------------------------------------------------------- */

int nc_h_chat_history(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__ChatHistoryRequest *r = (const void *)req;
  nc_store *st = nc_call_app(c)->store;
  if (!st) return nc_call_finish(c, NC_ENOTREADY, "session store not open");
  Nanochat__V1__ChatHistoryResponse resp = NANOCHAT__V1__CHAT_HISTORY_RESPONSE__INIT;
  if (r->session_id && r->session_id[0]) {
    if (!nc_store_session_id_valid(r->session_id, strlen(r->session_id)))
      return nc_call_finish(c, NC_EINVAL, "session_id: must be 16..64 characters [A-Za-z0-9_.-]");
    Nanochat__V1__Session *s = NULL;
    int rc = nc_store_session_get(st, r->session_id, &s);
    if (rc == NC_ENOTFOUND) return nc_call_finish(c, rc, "session_id: no such session");
    if (rc) return store_err(c, rc, "session");
    resp.session = s;
    rc = nc_call_reply(c, &resp.base);
    nc_store_free_msg(s);
    return rc;
  }
  nc_session_page page;
  int rc = nc_store_session_list(st, r->has_page_size ? r->page_size : 100, r->page_token, &page);
  if (rc) return store_err(c, rc, "sessions");
  resp.n_sessions = page.n;
  resp.sessions = page.items;
  resp.next_page_token = page.next_token;
  rc = nc_call_reply(c, &resp.base);
  nc_session_page_free(&page);
  return rc;
}

/* ---- Checkpoint.List ---------------------------------------------------------------------------- */

/* nanochat's directory of a phase under <data-dir>/checkpoints (nc_checkpoint.h layout). */
static const char *phase_dir(int phase) {
  static const char *names[] = {NULL, "base", "sft", "rl"};
  return phase >= 1 && phase <= 3 ? nc_ckpt_phase_dir(names[phase]) : NULL;
}

/* SHA-256 of a file opened relative to the data dir (no symlinks). 0 and hex on success. */
static int file_digest(int dirfd, const char *rel, uint64_t *size, char hex[65]) {
  int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return -1;
  }
  *size = (uint64_t)sb.st_size;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char buf[1 << 16], md[32];
  unsigned int mdlen = 0;
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  ssize_t n;
  while (ok && (n = read(fd, buf, sizeof buf)) > 0) ok = EVP_DigestUpdate(ctx, buf, (size_t)n);
  if (ok) ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  close(fd);
  if (!ok || mdlen != 32) return -1;
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* Parses "model_NNNNNN.safetensors"; returns the step or -1. */
static int64_t model_file_step(const char *name) {
  const char *pre = "model_", *suf = ".safetensors";
  size_t n = strlen(name), lp = strlen(pre), ls = strlen(suf);
  if (n <= lp + ls || strncmp(name, pre, lp) != 0 || strcmp(name + n - ls, suf) != 0) return -1;
  int64_t step = 0;
  for (size_t i = lp; i < n - ls; i++) {
    if (name[i] < '0' || name[i] > '9' || step > 100000000000LL) return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

typedef struct ckpt_vec {
  Nanochat__V1__CheckpointInfo **v;
  size_t n, cap;
} ckpt_vec;

static int vec_push(ckpt_vec *a, Nanochat__V1__CheckpointInfo *ci) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    void *p = realloc(a->v, cap * sizeof *a->v);
    if (!p) return NC_ENOMEM;
    a->v = p;
    a->cap = cap;
  }
  a->v[a->n++] = ci;
  return NC_OK;
}

static bool known(Nanochat__V1__CheckpointInfo **items, size_t n, int phase, const char *tag, int64_t step) {
  for (size_t i = 0; i < n; i++)
    if ((int)items[i]->phase == phase && strcmp(items[i]->tag ? items[i]->tag : "", tag) == 0 &&
        items[i]->step == step)
      return true;
  return false;
}

/* Adds ORPHAN entries for model files under checkpoints/<phase_dir>/<tag>/ without metadata. */
static int scan_orphans(int root, int want_phase, const char *want_tag,
                        Nanochat__V1__CheckpointInfo **items, size_t n, ckpt_vec *orphans) {
  for (int phase = 1; phase <= 3; phase++) {
    if (want_phase && phase != want_phase) continue;
    char pdir[64];
    snprintf(pdir, sizeof pdir, "checkpoints/%s", phase_dir(phase));
    int pfd = openat(root, pdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (pfd < 0) continue;
    DIR *pd = fdopendir(pfd);
    if (!pd) {
      close(pfd);
      continue;
    }
    struct dirent *te;
    while ((te = readdir(pd)) != NULL) {
      if (te->d_name[0] == '.' || !nc_store_tag_valid(te->d_name, strlen(te->d_name))) continue;
      if (want_tag && want_tag[0] && strcmp(want_tag, te->d_name) != 0) continue;
      int tfd = openat(dirfd(pd), te->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (tfd < 0) continue;
      DIR *td = fdopendir(tfd);
      if (!td) {
        close(tfd);
        continue;
      }
      struct dirent *fe;
      while ((fe = readdir(td)) != NULL) {
        int64_t step = model_file_step(fe->d_name);
        if (step < 0 || known(items, n, phase, te->d_name, step)) continue;
        Nanochat__V1__CheckpointInfo *ci = calloc(1, sizeof *ci + 256 + 65);
        if (!ci) break;
        nanochat__v1__checkpoint_info__init(ci);
        char *path = (char *)(ci + 1);
        char *tag = path + 192;
        snprintf(tag, 64, "%s", te->d_name);
        snprintf(path, 192, "%s/%s/%s", pdir, te->d_name, fe->d_name);
        ci->has_phase = ci->has_step = ci->has_status = true;
        ci->phase = (Nanochat__V1__Phase)phase;
        ci->tag = tag;
        ci->step = step;
        ci->path = path;
        ci->status = NANOCHAT__V1__CHECKPOINT_STATUS__CHECKPOINT_ORPHAN;
        struct stat sb;
        if (fstatat(root, path, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
          ci->has_size = true;
          ci->size = (uint64_t)sb.st_size;
        }
        if (vec_push(orphans, ci) != NC_OK) {
          free(ci);
          break;
        }
      }
      closedir(td);
    }
    closedir(pd);
  }
  return NC_OK;
}

int nc_h_checkpoint_list(nc_call *c, const ProtobufCMessage *req) {
  const Nanochat__V1__CheckpointListRequest *r = (const void *)req;
  nc_app *app = nc_call_app(c);
  if (!app->store) return nc_call_finish(c, NC_ENOTREADY, "checkpoint store not open");
  int phase = r->has_phase ? (int)r->phase : 0;
  Nanochat__V1__CheckpointInfo **items = NULL;
  size_t n = 0;
  int rc = nc_store_ckpt_list(app->store, (Nanochat__V1__Phase)phase, r->tag, 0, &items, &n);
  if (rc) return store_err(c, rc, "checkpoints");
  ckpt_vec orphans = {0};
  char hex[65];
  if (r->verify) {
    int dirfd = open(app->cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (size_t i = 0; i < n; i++) {
      Nanochat__V1__CheckpointInfo *ci = items[i];
      uint64_t size = 0;
      bool ok = dirfd >= 0 && ci->path && ci->path[0] != '/' && !strstr(ci->path, "..") &&
                file_digest(dirfd, ci->path, &size, hex) == 0 && (!ci->has_size || size == ci->size) &&
                (!ci->sha256 || !ci->sha256[0] || strcmp(ci->sha256, hex) == 0);
      ci->has_status = true;
      ci->status = ok ? NANOCHAT__V1__CHECKPOINT_STATUS__CHECKPOINT_OK
                      : NANOCHAT__V1__CHECKPOINT_STATUS__CHECKPOINT_BROKEN;
    }
    if (dirfd >= 0) {
      scan_orphans(dirfd, phase, r->tag, items, n, &orphans);
      close(dirfd);
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      items[i]->has_status = true;
      items[i]->status = NANOCHAT__V1__CHECKPOINT_STATUS__CHECKPOINT_UNVERIFIED;
    }
  }
  Nanochat__V1__CheckpointInfo **all = malloc((n + orphans.n + 1) * sizeof *all);
  if (!all) {
    nc_store_free_msgs(items, n);
    for (size_t i = 0; i < orphans.n; i++) free(orphans.v[i]);
    free(orphans.v);
    return nc_call_finish(c, NC_ENOMEM, "out of memory");
  }
  if (n) memcpy(all, items, n * sizeof *all);
  if (orphans.n) memcpy(all + n, orphans.v, orphans.n * sizeof *all);
  Nanochat__V1__CheckpointListResponse resp = NANOCHAT__V1__CHECKPOINT_LIST_RESPONSE__INIT;
  resp.n_checkpoints = n + orphans.n;
  resp.checkpoints = all;
  rc = nc_call_reply(c, &resp.base);
  free(all);
  nc_store_free_msgs(items, n);
  for (size_t i = 0; i < orphans.n; i++) free(orphans.v[i]);
  free(orphans.v);
  return rc;
}
