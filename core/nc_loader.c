/* nc_loader.c — best-fit packing loader of nc_loader.h. */
#include "nc_loader.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

typedef struct doc {
  int32_t *ids; /* [n] tokens, ids[0] = BOS */
  size_t n;
  nc_doc_pos pos;
} doc;

struct nc_loader {
  nc_loader_cfg cfg;
  nc_doc_source src;
  doc *buf; /* [cap] buffered documents, in arrival order */
  size_t n_buf, cap;
  int exhausted; /* a finite source returned NC_ENOTFOUND */
  int32_t *row;  /* [T+1] row under construction */
  uint64_t placed, cropped;
};

int nc_loader_create(nc_loader_cfg cfg, nc_doc_source src, nc_loader **out) {
  if (!out || cfg.B < 1 || cfg.T < 1 || cfg.buffer_size < 1 || !src.next || !src.seek || !src.tell)
    return NC_EINVAL;
  nc_loader *l = calloc(1, sizeof *l);
  if (!l) return NC_ENOMEM;
  l->cfg = cfg;
  l->src = src;
  l->cap = (size_t)cfg.buffer_size + 1;
  l->buf = calloc(l->cap, sizeof *l->buf);
  l->row = malloc(sizeof(int32_t) * ((size_t)cfg.T + 1));
  if (!l->buf || !l->row) {
    nc_loader_free(l);
    return NC_ENOMEM;
  }
  *out = l;
  return NC_OK;
}

static void clear_buffer(nc_loader *l) {
  for (size_t i = 0; i < l->n_buf; i++) free(l->buf[i].ids);
  l->n_buf = 0;
}

void nc_loader_free(nc_loader *l) {
  if (!l) return;
  clear_buffer(l);
  free(l->buf);
  free(l->row);
  free(l);
}

/* Read one document into the buffer. */
static int read_one(nc_loader *l) {
  doc d = {0};
  int rc = l->src.next(l->src.ctx, &d.ids, &d.n, &d.pos);
  if (rc == NC_ENOTFOUND) {
    l->exhausted = 1;
    return rc;
  }
  if (rc) return rc;
  if (!d.ids || d.n == 0) {
    free(d.ids);
    return NC_EINVAL;
  }
  if (l->n_buf == l->cap) { /* only reachable through restore with a larger saved buffer */
    size_t cap = l->cap * 2;
    doc *nb = realloc(l->buf, cap * sizeof *nb);
    if (!nb) {
      free(d.ids);
      return NC_ENOMEM;
    }
    l->buf = nb;
    l->cap = cap;
  }
  l->buf[l->n_buf++] = d;
  return NC_OK;
}

static doc take(nc_loader *l, size_t i) {
  doc d = l->buf[i];
  memmove(&l->buf[i], &l->buf[i + 1], (l->n_buf - i - 1) * sizeof *l->buf);
  l->n_buf--;
  return d;
}

/* Fill l->row (T+1 tokens). */
static int fill_row(nc_loader *l) {
  const size_t cap = (size_t)l->cfg.T + 1;
  size_t len = 0;
  while (len < cap) {
    while (!l->exhausted && l->n_buf < (size_t)l->cfg.buffer_size) {
      int rc = read_one(l);
      if (rc && rc != NC_ENOTFOUND) return rc;
    }
    if (l->n_buf == 0) return NC_ENOTFOUND;
    size_t remaining = cap - len;
    /* largest document that fits entirely (first among equals) */
    size_t best = SIZE_MAX, best_len = 0;
    for (size_t i = 0; i < l->n_buf; i++) {
      if (l->buf[i].n <= remaining && l->buf[i].n > best_len) {
        best = i;
        best_len = l->buf[i].n;
      }
    }
    doc d;
    size_t use;
    if (best != SIZE_MAX) {
      d = take(l, best);
      use = d.n;
    } else { /* none fits: crop the shortest (first among equals) */
      size_t s = 0;
      for (size_t i = 1; i < l->n_buf; i++)
        if (l->buf[i].n < l->buf[s].n) s = i;
      d = take(l, s);
      use = remaining;
      l->cropped += d.n - use;
    }
    memcpy(l->row + len, d.ids, use * sizeof(int32_t));
    len += use;
    l->placed += use;
    free(d.ids);
  }
  return NC_OK;
}

int nc_loader_next(nc_loader *l, int32_t *inputs, int32_t *targets) {
  if (!l || !inputs || !targets) return NC_EINVAL;
  const size_t T = (size_t)l->cfg.T;
  for (int b = 0; b < l->cfg.B; b++) {
    int rc = fill_row(l);
    if (rc) return rc;
    memcpy(inputs + (size_t)b * T, l->row, T * sizeof(int32_t));
    memcpy(targets + (size_t)b * T, l->row + 1, T * sizeof(int32_t));
  }
  return NC_OK;
}

void nc_loader_stats(const nc_loader *l, uint64_t *placed, uint64_t *cropped) {
  if (placed) *placed = l ? l->placed : 0;
  if (cropped) *cropped = l ? l->cropped : 0;
}

int nc_loader_save(const nc_loader *l, nc_loader_state *st) {
  if (!l || !st) return NC_EINVAL;
  memset(st, 0, sizeof *st);
  st->next = l->src.tell(l->src.ctx);
  if (l->n_buf) {
    st->buffered = malloc(l->n_buf * sizeof *st->buffered);
    if (!st->buffered) return NC_ENOMEM;
    for (size_t i = 0; i < l->n_buf; i++) st->buffered[i] = l->buf[i].pos;
  }
  st->n_buffered = l->n_buf;
  return NC_OK;
}

int nc_loader_restore(nc_loader *l, const nc_loader_state *st) {
  if (!l || !st || (st->n_buffered && !st->buffered)) return NC_EINVAL;
  clear_buffer(l);
  l->exhausted = 0;
  for (size_t i = 0; i < st->n_buffered; i++) {
    int rc = l->src.seek(l->src.ctx, st->buffered[i]);
    if (!rc) rc = read_one(l);
    if (rc) {
      clear_buffer(l);
      return rc == NC_ENOTFOUND ? NC_ECORRUPT : rc;
    }
  }
  l->exhausted = 0;
  return l->src.seek(l->src.ctx, st->next);
}

void nc_loader_state_free(nc_loader_state *st) {
  if (!st) return;
  free(st->buffered);
  memset(st, 0, sizeof *st);
}

static json_t *pos_json(nc_doc_pos p) {
  return json_pack("[II]", (json_int_t)p.a, (json_int_t)p.b);
}

char *nc_loader_state_to_json(const nc_loader_state *st) {
  if (!st) return NULL;
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < st->n_buffered; i++) json_array_append_new(arr, pos_json(st->buffered[i]));
  json_t *o = json_pack("{s:o,s:o}", "next", pos_json(st->next), "buffered", arr);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

static int parse_pos(json_t *j, nc_doc_pos *p) {
  json_int_t a, b;
  if (json_unpack(j, "[II]", &a, &b) != 0 || a < 0 || b < 0) return NC_EINVAL;
  p->a = (uint64_t)a;
  p->b = (uint64_t)b;
  return NC_OK;
}

int nc_loader_state_from_json(const char *text, nc_loader_state *st) {
  if (!text || !st) return NC_EINVAL;
  memset(st, 0, sizeof *st);
  json_error_t e;
  json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &e);
  if (!o) return NC_EINVAL;
  json_t *next = json_object_get(o, "next"), *buf = json_object_get(o, "buffered");
  int rc = NC_EINVAL;
  if (next && json_is_array(buf) && parse_pos(next, &st->next) == NC_OK) {
    size_t n = json_array_size(buf);
    if (n <= (1u << 24)) {
      st->buffered = n ? malloc(n * sizeof *st->buffered) : NULL;
      if (n && !st->buffered) {
        rc = NC_ENOMEM;
      } else {
        rc = NC_OK;
        for (size_t i = 0; i < n && !rc; i++) rc = parse_pos(json_array_get(buf, i), &st->buffered[i]);
        st->n_buffered = n;
      }
    }
  }
  json_decref(o);
  if (rc) nc_loader_state_free(st);
  return rc;
}
