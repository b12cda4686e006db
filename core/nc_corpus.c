/* nc_corpus.c — corpus directories as document sources (see nc_corpus.h). */
#include "nc_corpus.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nc_err.h"
#include "nc_sandbox.h"   /* nc_sandbox_utf8_sanitize: UTF-8 repair */

typedef struct corpus_file {
  char *path;
  int is_txt;
} corpus_file;

struct nc_corpus {
  corpus_file *files;
  size_t n_files, cap_files;
  size_t max_doc, max_line, max_files;
  /* reading state */
  uint64_t epoch;
  size_t cur;          /* file index of the next document */
  uint64_t off;        /* byte offset of the next document in that file */
  FILE *fp;            /* open file `cur` (jsonl), NULL when not open */
  size_t fp_index;
  char *line;          /* line buffer */
  size_t line_cap;
  char *doc;           /* the document handed out last (owned) */
  uint64_t bad_lines;
};

int nc_corpus_resolve(const char *data_dir, const char *name, char *out, size_t cap) {
  int n;
  if (!name || !name[0]) {
    n = snprintf(out, cap, "%s/corpus", data_dir);
  } else {
    if (strchr(name, '/') || name[0] == '.') return NC_EINVAL;
    n = snprintf(out, cap, "%s/datasets/%s", data_dir, name);
  }
  return n < 0 || (size_t)n >= cap ? NC_EINVAL : NC_OK;
}

static int errf(char *err, size_t errlen, int code, const char *fmt, const char *a, const char *b) {
  if (err && errlen) snprintf(err, errlen, fmt, a, b);
  return code;
}

static int has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && strcmp(s + n - k, suf) == 0;
}

static int add_file(nc_corpus *c, const char *path, int is_txt) {
  if (c->n_files == c->max_files) return NC_EFULL;
  if (c->n_files == c->cap_files) {
    size_t nc = c->cap_files ? 2 * c->cap_files : 64;
    corpus_file *nf = realloc(c->files, nc * sizeof *nf);
    if (!nf) return NC_ENOMEM;
    c->files = nf;
    c->cap_files = nc;
  }
  char *p = strdup(path);
  if (!p) return NC_ENOMEM;
  c->files[c->n_files].path = p;
  c->files[c->n_files].is_txt = is_txt;
  c->n_files++;
  return NC_OK;
}

static int cmp_files(const void *a, const void *b) {
  return strcmp(((const corpus_file *)a)->path, ((const corpus_file *)b)->path);
}

/* Recursive walk; `in_val` is set below a folder named "val". want_val selects the split. */
static int walk(nc_corpus *c, const char *dir, int depth, int in_val, int want_val) {
  if (depth > 32) return NC_OK;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? NC_ENOTFOUND : NC_EIO;
  int rc = NC_OK;
  struct dirent *e;
  char path[4096];
  while (rc == NC_OK && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;   /* ., .., hidden */
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
    struct stat st;
    if (lstat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      rc = walk(c, path, depth + 1, in_val || strcmp(e->d_name, "val") == 0, want_val);
    } else if (S_ISREG(st.st_mode)) {
      int txt = has_suffix(e->d_name, ".txt"), jl = has_suffix(e->d_name, ".jsonl");
      if (!txt && !jl) continue;
      int is_val = in_val || strncmp(e->d_name, "val", 3) == 0;
      if (is_val == want_val) rc = add_file(c, path, txt);
    }
  }
  closedir(d);
  return rc;
}

int nc_corpus_open(const nc_corpus_opts *o, nc_corpus **out, char *err, size_t errlen) {
  *out = NULL;
  if (!o || !o->dir || !o->dir[0]) return errf(err, errlen, NC_EINVAL, "corpus: no directory%s%s", "", "");
  const char *split = o->split ? o->split : "train";
  int want_val;
  if (strcmp(split, "train") == 0) want_val = 0;
  else if (strcmp(split, "val") == 0) want_val = 1;
  else return errf(err, errlen, NC_EINVAL, "corpus: unknown split '%s'%s (train or val)", split, "");
  struct stat st;
  if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return errf(err, errlen, NC_ENOTFOUND, "corpus: %s is not a directory%s", o->dir, "");
  nc_corpus *c = calloc(1, sizeof *c);
  if (!c) return NC_ENOMEM;
  c->max_doc = o->max_doc_bytes ? o->max_doc_bytes : (1u << 20);
  c->max_line = o->max_line_bytes ? o->max_line_bytes : (16u << 20);
  c->max_files = o->max_files ? o->max_files : 100000;
  char path[4096];
  int rc;
  snprintf(path, sizeof path, "%s/manifest.json", o->dir);
  if (stat(path, &st) == 0) {
    /* a built corpus: only <dir>/<split>/ */
    snprintf(path, sizeof path, "%s/%s", o->dir, split);
    rc = walk(c, path, 0, want_val, want_val);
  } else {
    rc = walk(c, o->dir, 0, 0, want_val);
  }
  if (rc == NC_OK && c->n_files == 0) rc = NC_ENOTFOUND;
  if (rc != NC_OK) {
    if (rc == NC_ENOTFOUND) errf(err, errlen, rc, "corpus: no .jsonl/.txt files for split %s under %s", split, o->dir);
    else if (rc == NC_EFULL) errf(err, errlen, rc, "corpus: more files than the limit under %s%s", o->dir, "");
    else errf(err, errlen, rc, "corpus: cannot read %s%s", o->dir, "");
    nc_corpus_close(c);
    return rc;
  }
  qsort(c->files, c->n_files, sizeof *c->files, cmp_files);
  *out = c;
  return NC_OK;
}

void nc_corpus_close(nc_corpus *c) {
  if (!c) return;
  if (c->fp) fclose(c->fp);
  for (size_t i = 0; i < c->n_files; i++) free(c->files[i].path);
  free(c->files);
  free(c->line);
  free(c->doc);
  free(c);
}

size_t nc_corpus_files(const nc_corpus *c) { return c->n_files; }
uint64_t nc_corpus_bad_lines(const nc_corpus *c) { return c->bad_lines; }
uint64_t nc_corpus_epoch(const nc_corpus *c) { return c->epoch; }

nc_doc_pos nc_corpus_tell(const nc_corpus *c) {
  nc_doc_pos p = {c->epoch * c->n_files + c->cur, c->off};
  return p;
}

int nc_corpus_seek(nc_corpus *c, nc_doc_pos pos) {
  uint64_t file = pos.a % c->n_files;
  if (c->files[file].is_txt && pos.b != 0) return NC_EINVAL;
  c->epoch = pos.a / c->n_files;
  c->cur = (size_t)file;
  c->off = pos.b;
  return NC_OK;
}

/* Hands out `n` bytes of `s` as the current document: truncated at a UTF-8 boundary to
 * max_doc, repaired, NUL-terminated. */
static int set_doc(nc_corpus *c, const char *s, size_t n, const char **text, size_t *len) {
  if (n > c->max_doc) {
    n = c->max_doc;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  }
  char *fixed = NULL;
  size_t fl = 0;
  int rc = nc_sandbox_utf8_sanitize((const uint8_t *)s, n, &fixed, &fl);
  if (rc) return rc;
  free(c->doc);
  c->doc = fixed;
  *text = fixed;
  *len = fl;
  return NC_OK;
}

/* Reads the line at c->off of the open jsonl file into c->line. Returns its length (without
 * the newline), -1 at end of file, -2 when longer than max_line (then skipped), or an NC_E* code
 * below -2 on error (NC_EIO/NC_ENOMEM are < -2). */
static long read_line(nc_corpus *c, uint64_t *next_off) {
  size_t n = 0;
  int ch;
  int too_long = 0;
  uint64_t consumed = 0;
  while ((ch = getc(c->fp)) != EOF) {
    consumed++;
    if (ch == '\n') break;
    if (too_long) continue;
    if (n + 1 >= c->line_cap) {
      if (c->line_cap >= c->max_line + 1) {
        too_long = 1;
        continue;
      }
      size_t nc = c->line_cap ? 2 * c->line_cap : 4096;
      if (nc > c->max_line + 1) nc = c->max_line + 1;
      char *nl = realloc(c->line, nc);
      if (!nl) return NC_ENOMEM;
      c->line = nl;
      c->line_cap = nc;
    }
    c->line[n++] = (char)ch;
  }
  if (ferror(c->fp)) return NC_EIO;
  *next_off = c->off + consumed;
  if (consumed == 0) return -1;
  if (too_long) return -2;
  c->line[n] = 0;
  return (long)n;
}

static int open_cur(nc_corpus *c) {
  if (c->fp && c->fp_index == c->cur) return NC_OK;
  if (c->fp) fclose(c->fp);
  c->fp = fopen(c->files[c->cur].path, "rb");
  if (!c->fp) return NC_EIO;
  c->fp_index = c->cur;
  return NC_OK;
}

static void next_file(nc_corpus *c) {
  c->cur++;
  c->off = 0;
  if (c->cur == c->n_files) {
    c->cur = 0;
    c->epoch++;
  }
}

int nc_corpus_next_text(nc_corpus *c, int wrap, const char **text, size_t *len, nc_doc_pos *pos) {
  /* bounded: at most one full pass over the files without finding a document */
  for (size_t guard = 0; guard <= c->n_files + 1;) {
    if (!wrap && c->epoch > 0) return NC_ENOTFOUND;
    corpus_file *f = &c->files[c->cur];
    if (f->is_txt) {
      nc_doc_pos here = nc_corpus_tell(c);
      FILE *fp = fopen(f->path, "rb");
      if (!fp) return NC_EIO;
      size_t cap = c->max_doc + 4;
      char *buf = malloc(cap);
      if (!buf) {
        fclose(fp);
        return NC_ENOMEM;
      }
      size_t n = fread(buf, 1, cap, fp);
      int bad = ferror(fp);
      fclose(fp);
      if (bad) {
        free(buf);
        return NC_EIO;
      }
      next_file(c);
      guard++;
      if (n == 0) {
        free(buf);
        continue;
      }
      int rc = set_doc(c, buf, n, text, len);
      free(buf);
      if (rc) return rc;
      *pos = here;
      return NC_OK;
    }
    int rc = open_cur(c);
    if (rc) return rc;
    if (fseeko(c->fp, (off_t)c->off, SEEK_SET) != 0) return NC_EIO;
    for (;;) {
      nc_doc_pos here = nc_corpus_tell(c);
      uint64_t next_off = c->off;
      long n = read_line(c, &next_off);
      if (n < -2) return (int)n;
      if (n == -1) break;   /* end of this file */
      c->off = next_off;
      if (n == -2) {
        c->bad_lines++;
        continue;
      }
      size_t k = 0;
      while (k < (size_t)n && (c->line[k] == ' ' || c->line[k] == '\t' || c->line[k] == '\r')) k++;
      if (k == (size_t)n) continue;   /* blank line */
      json_error_t je;
      json_t *j = json_loadb(c->line, (size_t)n, JSON_ALLOW_NUL, &je);
      json_t *t = json_is_object(j) ? json_object_get(j, "text") : NULL;
      if (!json_is_string(t)) {
        json_decref(j);
        c->bad_lines++;
        continue;
      }
      rc = set_doc(c, json_string_value(t), json_string_length(t), text, len);
      json_decref(j);
      if (rc) return rc;
      *pos = here;
      return NC_OK;
    }
    next_file(c);
    guard++;
  }
  return NC_ENOTFOUND;   /* no file holds a document */
}

/* ---- nc_doc_source adapter ------------------------------------------------------------- */

static int src_next(void *ctx, int32_t **ids, size_t *n, nc_doc_pos *pos) {
  nc_corpus_source *s = ctx;
  const char *text;
  size_t len;
  int rc = nc_corpus_next_text(s->c, s->wrap, &text, &len, pos);
  if (rc) return rc;
  long need = s->tok->encode(s->tok->ctx, text, len, NULL, 0);
  if (need < 0) return (int)need;
  int32_t *out = malloc(((size_t)need + 1) * sizeof *out);
  if (!out) return NC_ENOMEM;
  out[0] = s->bos;
  long got = need ? s->tok->encode(s->tok->ctx, text, len, out + 1, (size_t)need) : 0;
  if (got < 0 || got != need) {
    free(out);
    return got < 0 ? (int)got : NC_EINTERNAL;
  }
  *ids = out;
  *n = (size_t)need + 1;
  return NC_OK;
}

static int src_seek(void *ctx, nc_doc_pos pos) { return nc_corpus_seek(((nc_corpus_source *)ctx)->c, pos); }
static nc_doc_pos src_tell(void *ctx) { return nc_corpus_tell(((nc_corpus_source *)ctx)->c); }

nc_doc_source nc_corpus_doc_source(nc_corpus_source *s) {
  nc_doc_source d = {s, src_next, src_seek, src_tell};
  return d;
}
