/* nc_validate.c — generic field validation over protobuf-c messages (see nc_validate.h). */
#include "nc_validate.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

/* Schema nesting is bounded (no recursive types), this only guards against a broken table. */
#define NC_VALIDATE_MAX_DEPTH 32
/* Repeated-element indices are tracked for the first this-many fields of a message. */
#define NC_VALIDATE_MAX_FIELDS 128

/* ---------------------------------------------------------------------------------------- */
/* UTF-8 and identifiers                                                                      */
/* ---------------------------------------------------------------------------------------- */

bool nc_text_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* ASCII fast path: 8 bytes at a time, none >= 0x80 and none zero */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      uint64_t high = w & UINT64_C(0x8080808080808080);
      uint64_t zero = (w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080);
      if (high | zero) break;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = s[i];
    if (c < 0x80) {
      if (c == 0) return false;
      i++;
      continue;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;   /* allowed range of the first continuation byte */
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c == 0xE0) {
      need = 2; lo = 0xA0;            /* no overlong 3-byte forms */
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      need = 2;
    } else if (c == 0xED) {
      need = 2; hi = 0x9F;            /* no UTF-16 surrogates U+D800..U+DFFF */
    } else if (c == 0xF0) {
      need = 3; lo = 0x90;            /* no overlong 4-byte forms */
    } else if (c >= 0xF1 && c <= 0xF3) {
      need = 3;
    } else if (c == 0xF4) {
      need = 3; hi = 0x8F;            /* nothing above U+10FFFF */
    } else {
      return false;                   /* 0x80..0xC1 lead bytes, 0xF5..0xFF */
    }
    if (n - i <= need) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k <= need; k++)
      if ((s[i + k] & 0xC0) != 0x80) return false;
    i += need + 1;
  }
  return true;
}

bool nc_ident_valid(const char *s, size_t len, size_t max_len) {
  if (len == 0 || len > max_len) return false;
  if (s[0] == '.' || s[0] == '-') return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Error/path context                                                                         */
/* ---------------------------------------------------------------------------------------- */

typedef struct vctx {
  char *err;
  size_t errlen;
  char path[NC_VALIDATE_PATH_MAX + 4];
  size_t plen;
} vctx;

/* Appends ".name" or ".name[index]" (index < 0: none) to the path; returns the length to
 * restore with path_pop. A path that would grow past NC_VALIDATE_PATH_MAX ends in "...". */
static size_t path_push(vctx *v, const char *name, long index) {
  size_t old = v->plen;
  char buf[96];
  int k;
  if (index >= 0)
    k = snprintf(buf, sizeof buf, "%s%s[%ld]", old ? "." : "", name, index);
  else
    k = snprintf(buf, sizeof buf, "%s%s", old ? "." : "", name);
  size_t add = k < 0 ? 0 : ((size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
  if (v->plen + add > NC_VALIDATE_PATH_MAX) {
    bool cut = v->plen >= 3 && memcmp(v->path + v->plen - 3, "...", 3) == 0;
    if (!cut) {           /* path[] has room for 3 more bytes and the NUL */
      memcpy(v->path + v->plen, "...", 4);
      v->plen += 3;
    }
    return old;
  }
  memcpy(v->path + v->plen, buf, add);
  v->plen += add;
  v->path[v->plen] = 0;
  return old;
}

static void path_pop(vctx *v, size_t old) {
  v->plen = old;
  v->path[old] = 0;
}

static int fail(vctx *v, const char *fmt, ...) {
  int k = snprintf(v->err, v->errlen, "%s: ", v->plen ? v->path : "request");
  if (k < 0) k = 0;
  if ((size_t)k < v->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err + k, v->errlen - (size_t)k, fmt, ap);
    va_end(ap);
  }
  return NC_EINVAL;
}

/* ---------------------------------------------------------------------------------------- */
/* Wire pass: strings and bytes, on their true encoded bytes                                  */
/* ---------------------------------------------------------------------------------------- */

static size_t read_varint(const uint8_t *p, size_t n, uint64_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && i < 10; i++) {
    v |= (uint64_t)(p[i] & 0x7F) << (7 * i);
    if (!(p[i] & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

static int wire_walk(vctx *v, const nc_msg_rules *rules, const ProtobufCMessageDescriptor *d,
                     const uint8_t *buf, size_t len, int depth) {
  if (depth > NC_VALIDATE_MAX_DEPTH) return fail(v, "nesting too deep");
  uint32_t counts[NC_VALIDATE_MAX_FIELDS];
  unsigned nf = d->n_fields < NC_VALIDATE_MAX_FIELDS ? d->n_fields : NC_VALIDATE_MAX_FIELDS;
  memset(counts, 0, nf * sizeof counts[0]);
  size_t pos = 0;
  while (pos < len) {
    uint64_t key;
    size_t k = read_varint(buf + pos, len - pos, &key);
    if (!k) return fail(v, "malformed request");
    pos += k;
    uint64_t number = key >> 3;
    unsigned wt = (unsigned)(key & 7);
    uint64_t skip;
    switch (wt) {
      case 0: {
        uint64_t tmp;
        k = read_varint(buf + pos, len - pos, &tmp);
        if (!k) return fail(v, "malformed request");
        pos += k;
        continue;
      }
      case 1: skip = 8; break;
      case 5: skip = 4; break;
      case 2:
        k = read_varint(buf + pos, len - pos, &skip);
        if (!k) return fail(v, "malformed request");
        pos += k;
        break;
      default:
        return fail(v, "malformed request");
    }
    if (skip > len - pos) return fail(v, "malformed request");
    const uint8_t *val = buf + pos;
    pos += (size_t)skip;
    if (wt != 2 || number == 0 || number > 0x1FFFFFFF) continue;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(d, (unsigned)number);
    if (!fd) continue;   /* unknown field: kept as raw bytes by protobuf-c, never interpreted */
    unsigned idx = (unsigned)(fd - d->fields);
    const nc_field_rule *r = rules ? &rules->fields[idx] : NULL;
    long index = -1;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED && idx < nf) index = (long)counts[idx]++;
    if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_BYTES) {
      bool str = fd->type == PROTOBUF_C_TYPE_STRING;
      bool bad_len = r && (r->flags & NC_FR_MAX_LEN) && skip > r->max_len;
      bool bad_utf8 = str && !nc_text_valid(val, (size_t)skip);
      if (bad_len || bad_utf8) {
        path_push(v, fd->name, index);
        if (bad_utf8) {
          bool has_nul = memchr(val, 0, (size_t)skip) != NULL;
          return fail(v, has_nul ? "contains a NUL byte" : "invalid UTF-8");
        }
        return fail(v, "longer than %" PRIu32 " bytes", r->max_len);
      }
    } else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
      const nc_msg_rules *sub = r ? r->sub : NULL;
      size_t old = path_push(v, fd->name, index);
      int rc = wire_walk(v, sub, (const ProtobufCMessageDescriptor *)fd->descriptor, val,
                         (size_t)skip, depth + 1);
      if (rc) return rc;
      path_pop(v, old);
    }
  }
  return NC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Struct pass: numbers, enums, counts, nonempty, identifiers                                 */
/* ---------------------------------------------------------------------------------------- */

static size_t elem_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
      return 8;
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

static int struct_walk(vctx *v, const nc_msg_rules *rules, const ProtobufCMessage *msg,
                       int depth);

/* Checks one value of field fd (a single field, or one element of a repeated one). */
static int check_value(vctx *v, const ProtobufCFieldDescriptor *fd, const nc_field_rule *r,
                       const void *p, int depth) {
  uint32_t fl = r ? r->flags : 0;
  switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64: {
      int64_t x;
      if (elem_size(fd->type) == 4) {
        int32_t t;
        memcpy(&t, p, 4);
        x = t;
      } else {
        memcpy(&x, p, 8);
      }
      bool lo = (fl & NC_FR_MIN) && x < r->imin, hi = (fl & NC_FR_MAX) && x > r->imax;
      if (lo || hi) {
        if ((fl & NC_FR_MIN) && (fl & NC_FR_MAX))
          return fail(v, "must be in [%" PRId64 ", %" PRId64 "]", r->imin, r->imax);
        if (lo) return fail(v, "must be >= %" PRId64, r->imin);
        return fail(v, "must be <= %" PRId64, r->imax);
      }
      return NC_OK;
    }
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
      uint64_t x;
      if (elem_size(fd->type) == 4) {
        uint32_t t;
        memcpy(&t, p, 4);
        x = t;
      } else {
        memcpy(&x, p, 8);
      }
      bool lo = (fl & NC_FR_MIN) && x < r->umin, hi = (fl & NC_FR_MAX) && x > r->umax;
      if (lo || hi) {
        if ((fl & NC_FR_MIN) && (fl & NC_FR_MAX))
          return fail(v, "must be in [%" PRIu64 ", %" PRIu64 "]", r->umin, r->umax);
        if (lo) return fail(v, "must be >= %" PRIu64, r->umin);
        return fail(v, "must be <= %" PRIu64, r->umax);
      }
      return NC_OK;
    }
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: {
      bool lo, hi;
      if (fd->type == PROTOBUF_C_TYPE_FLOAT) {
        float x;
        memcpy(&x, p, 4);
        if (!isfinite(x)) return fail(v, "must be a finite number");
        /* compare in the field's own precision: 1e-6f must pass a 1e-6 minimum */
        lo = (fl & NC_FR_MIN) && x < (float)r->dmin;
        hi = (fl & NC_FR_MAX) && x > (float)r->dmax;
      } else {
        double x;
        memcpy(&x, p, 8);
        if (!isfinite(x)) return fail(v, "must be a finite number");
        lo = (fl & NC_FR_MIN) && x < r->dmin;
        hi = (fl & NC_FR_MAX) && x > r->dmax;
      }
      if (lo || hi) {
        if ((fl & NC_FR_MIN) && (fl & NC_FR_MAX))
          return fail(v, "must be in [%g, %g]", r->dmin, r->dmax);
        if (lo) return fail(v, "must be >= %g", r->dmin);
        return fail(v, "must be <= %g", r->dmax);
      }
      return NC_OK;
    }
    case PROTOBUF_C_TYPE_ENUM: {
      int x;
      memcpy(&x, p, sizeof x);
      if (!protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)fd->descriptor, x))
        return fail(v, "unknown enum value");
      return NC_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
      return NC_OK;
    case PROTOBUF_C_TYPE_STRING: {
      const char *s;
      memcpy(&s, p, sizeof s);
      size_t n = s ? strlen(s) : 0;   /* exact: the wire pass rejected embedded NULs */
      if ((fl & NC_FR_NONEMPTY) && n == 0) return fail(v, "must not be empty");
      if ((fl & NC_FR_IDENT) && n > 0 && !nc_ident_valid(s, n, r->max_len))
        return fail(v, "must be an identifier ([A-Za-z0-9_.-], not starting with '.' or '-')");
      return NC_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      ProtobufCBinaryData b;
      memcpy(&b, p, sizeof b);
      if ((fl & NC_FR_NONEMPTY) && b.len == 0) return fail(v, "must not be empty");
      return NC_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *m;
      memcpy(&m, p, sizeof m);
      if (!m) return NC_OK;
      const nc_msg_rules *sub = r ? r->sub : NULL;
      if (sub && !sub->needs_walk) return NC_OK;
      return struct_walk(v, sub, m, depth + 1);
    }
  }
  return NC_OK;
}

static int struct_walk(vctx *v, const nc_msg_rules *rules, const ProtobufCMessage *msg,
                       int depth) {
  if (depth > NC_VALIDATE_MAX_DEPTH) return fail(v, "nesting too deep");
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  const char *base = (const char *)msg;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    const nc_field_rule *r = (rules && i < rules->n_fields) ? &rules->fields[i] : NULL;
    uint32_t fl = r ? r->flags : 0;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n;
      memcpy(&n, base + fd->quantifier_offset, sizeof n);
      if (((fl & NC_FR_NONEMPTY) && n == 0) || ((fl & NC_FR_MIN_COUNT) && n < r->min_count) ||
          ((fl & NC_FR_MAX_COUNT) && n > r->max_count)) {
        size_t old = path_push(v, fd->name, -1);
        int rc;
        if ((fl & NC_FR_MAX_COUNT) && n > r->max_count)
          rc = fail(v, "at most %" PRIu32 " elements allowed (got %zu)", r->max_count, n);
        else if ((fl & NC_FR_MIN_COUNT) && n < r->min_count)
          rc = fail(v, "at least %" PRIu32 " elements required (got %zu)", r->min_count, n);
        else
          rc = fail(v, "must not be empty");
        path_pop(v, old);
        return rc;
      }
      if (n == 0) continue;
      if (fd->type == PROTOBUF_C_TYPE_BOOL) continue;
      if (fd->type == PROTOBUF_C_TYPE_MESSAGE && r && r->sub && !r->sub->needs_walk) continue;
      const char *arr;
      memcpy(&arr, base + fd->offset, sizeof arr);
      if (!arr) continue;
      size_t es = elem_size(fd->type);
      for (size_t j = 0; j < n; j++) {
        size_t old = path_push(v, fd->name, (long)j);
        int rc = check_value(v, fd, r, arr + j * es, depth);
        if (rc) return rc;
        path_pop(v, old);
      }
      continue;
    }
    bool present;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t which;
      memcpy(&which, base + fd->quantifier_offset, sizeof which);
      present = which == fd->id;
    } else if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE) {
      present = true;   /* pointer: NULL or a value (check_value handles NULL) */
    } else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL) {
      protobuf_c_boolean has;
      memcpy(&has, base + fd->quantifier_offset, sizeof has);
      present = has != 0;
    } else {
      present = true;   /* required, or proto3 implicit presence */
    }
    if (!present) {
      if (fl & NC_FR_NONEMPTY) {
        size_t old = path_push(v, fd->name, -1);
        int rc = fail(v, "must not be empty");
        path_pop(v, old);
        return rc;
      }
      continue;
    }
    size_t old = path_push(v, fd->name, -1);
    int rc = check_value(v, fd, r, base + fd->offset, depth);
    if (rc) return rc;
    path_pop(v, old);
  }
  return NC_OK;
}

int nc_validate_message(const nc_msg_rules *rules, const ProtobufCMessage *msg,
                        const uint8_t *wire, size_t wire_len, char *err, size_t errlen) {
  char dummy[1];
  vctx v;
  v.err = (err && errlen) ? err : dummy;
  v.errlen = (err && errlen) ? errlen : sizeof dummy;
  v.err[0] = 0;
  v.plen = 0;
  v.path[0] = 0;
  if (!msg) return NC_OK;
  if (rules && !rules->needs_walk) return NC_OK;
  int rc = wire_walk(&v, rules, msg->descriptor, wire, wire_len, 0);
  if (rc) return rc;
  v.plen = 0;
  v.path[0] = 0;
  return struct_walk(&v, rules, msg, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Bounded allocator                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* Each block carries its size in front, so free can give the budget back. */
typedef union hdr {
  size_t size;
  max_align_t align;
} hdr;

static void *pa_alloc(void *data, size_t size) {
  nc_pb_alloc *a = data;
  if (size > a->limit || a->used > a->limit - size) {
    a->exceeded = true;
    return NULL;
  }
  hdr *h = malloc(sizeof(hdr) + size);
  if (!h) return NULL;
  h->size = size;
  a->used += size;
  if (a->used > a->peak) a->peak = a->used;
  return h + 1;
}

static void pa_free(void *data, void *p) {
  nc_pb_alloc *a = data;
  if (!p) return;
  hdr *h = (hdr *)p - 1;
  a->used -= h->size;
  free(h);
}

void nc_pb_alloc_init(nc_pb_alloc *a, size_t limit) {
  a->base.alloc = pa_alloc;
  a->base.free = pa_free;
  a->base.allocator_data = a;
  a->used = 0;
  a->peak = 0;
  a->limit = limit;
  a->exceeded = false;
}

size_t nc_pb_alloc_budget(uint32_t max_request_bytes) {
  size_t b = (size_t)max_request_bytes * 64u;
  return b < 65536 ? 65536 : b;
}
