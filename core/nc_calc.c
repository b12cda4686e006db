/* nc_calc.c — recursive-descent calculator of nc_calc.h (no eval anywhere). */
#include "nc_calc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"

__extension__ typedef __int128 i128;

/* A value is an exact integer or a double, like Python's int/float. */
typedef struct {
  int is_float;
  i128 i;
  double f;
} val;

typedef struct {
  const char *s; /* input with commas removed, NUL-terminated */
  size_t n;
  size_t pos;
  int depth;
  int err;          /* first error code */
  const char *why;  /* first error message */
} parser;

static int fail(parser *p, int err, const char *why) {
  if (!p->err) {
    p->err = err;
    p->why = why;
  }
  return err;
}

static void skip_ws(parser *p) {
  while (p->pos < p->n && p->s[p->pos] == ' ') p->pos++;
}

static int peek(parser *p) {
  skip_ws(p);
  return p->pos < p->n ? (unsigned char)p->s[p->pos] : -1;
}

static double to_f(val v) { return v.is_float ? v.f : (double)v.i; }

/* ---- arithmetic on values, Python 3 semantics ------------------------------------------- */

static int check_float(parser *p, double f, val *out) {
  if (!isfinite(f)) return fail(p, NC_ERANGE, "result is not finite");
  out->is_float = 1;
  out->f = f;
  out->i = 0;
  return 0;
}

static int apply(parser *p, char op, val a, val b, val *out) {
  if (op == '/') {
    double d = to_f(b);
    if (d == 0.0) return fail(p, NC_ERANGE, "division by zero");
    return check_float(p, to_f(a) / d, out);
  }
  if (a.is_float || b.is_float) {
    double x = to_f(a), y = to_f(b);
    return check_float(p, op == '+' ? x + y : op == '-' ? x - y : x * y, out);
  }
  i128 r;
  int of = op == '+' ? __builtin_add_overflow(a.i, b.i, &r)
         : op == '-' ? __builtin_sub_overflow(a.i, b.i, &r)
                     : __builtin_mul_overflow(a.i, b.i, &r);
  /* keep the symmetric range +/-(2^127-1) so negation never overflows */
  const i128 lim = (i128)(((unsigned __int128)1 << 127) - 1);
  if (of || r < -lim) return fail(p, NC_ERANGE, "integer overflow");
  out->is_float = 0;
  out->i = r;
  out->f = 0;
  return 0;
}

/* ---- grammar ------------------------------------------------------------------------------ */

static int parse_expr(parser *p, val *out);

static int parse_number(parser *p, val *out) {
  size_t start = p->pos, int_digits = 0, frac_digits = 0;
  int dot = 0;
  while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') { p->pos++; int_digits++; }
  if (p->pos < p->n && p->s[p->pos] == '.') {
    dot = 1;
    p->pos++;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') { p->pos++; frac_digits++; }
  }
  if (int_digits + frac_digits == 0) return fail(p, NC_EINVAL, "syntax error");
  if (int_digits + frac_digits > NC_CALC_MAX_DIGITS) return fail(p, NC_EINVAL, "number too long");
  if (p->pos < p->n && (p->s[p->pos] == '.' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9')))
    return fail(p, NC_EINVAL, "syntax error");
  char buf[NC_CALC_MAX_DIGITS + 4];
  size_t len = p->pos - start;
  memcpy(buf, p->s + start, len);
  buf[len] = 0;
  if (dot) {
    return check_float(p, strtod(buf, NULL), out);
  }
  /* Python 3 rejects decimal integer literals with leading zeros, except all-zero ones */
  if (len > 1 && buf[0] == '0') {
    for (size_t i = 0; i < len; i++)
      if (buf[i] != '0') return fail(p, NC_EINVAL, "leading zeros in integer");
  }
  i128 v = 0;
  for (size_t i = 0; i < len; i++) v = v * 10 + (buf[i] - '0'); /* <= 30 digits: no overflow */
  out->is_float = 0;
  out->i = v;
  out->f = 0;
  return 0;
}

static int parse_factor(parser *p, val *out) {
  if (++p->depth > NC_CALC_MAX_DEPTH) return fail(p, NC_EINVAL, "expression nested too deeply");
  int c = peek(p), rc;
  if (c == '-' || c == '+') {
    p->pos++;
    val v;
    if ((rc = parse_factor(p, &v))) return rc;
    if (c == '-') {
      if (v.is_float) v.f = -v.f;
      else v.i = -v.i;
    }
    *out = v;
  } else if (c == '(') {
    p->pos++;
    if ((rc = parse_expr(p, out))) return rc;
    if (peek(p) != ')') return fail(p, NC_EINVAL, "missing ')'");
    p->pos++;
  } else if ((c >= '0' && c <= '9') || c == '.') {
    if ((rc = parse_number(p, out))) return rc;
  } else {
    return fail(p, NC_EINVAL, "syntax error");
  }
  p->depth--;
  return 0;
}

static int parse_term(parser *p, val *out) {
  int rc = parse_factor(p, out);
  while (!rc) {
    int c = peek(p);
    if (c != '*' && c != '/') break;
    p->pos++;
    val rhs;
    if ((rc = parse_factor(p, &rhs))) break;
    rc = apply(p, (char)c, *out, rhs, out);
  }
  return rc;
}

static int parse_expr(parser *p, val *out) {
  if (++p->depth > NC_CALC_MAX_DEPTH) return fail(p, NC_EINVAL, "expression nested too deeply");
  int rc = parse_term(p, out);
  while (!rc) {
    int c = peek(p);
    if (c != '+' && c != '-') break;
    p->pos++;
    val rhs;
    if ((rc = parse_term(p, &rhs))) break;
    rc = apply(p, (char)c, *out, rhs, out);
  }
  p->depth--;
  return rc;
}

/* ---- Python str() of results -------------------------------------------------------------- */

static void format_int(i128 v, char *out) {
  char tmp[48];
  int n = 0, neg = v < 0;
  unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
  do {
    tmp[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u);
  int k = 0;
  if (neg) out[k++] = '-';
  while (n) out[k++] = tmp[--n];
  out[k] = 0;
}

/* Python's repr(float): the shortest digit string that round-trips; fixed notation when the
 * decimal exponent is in [-4, 16), else scientific with a signed exponent of >= 2 digits. */
static void format_float(double x, char *out) {
  char digits[32];
  int decpt = 0, nd = 0;
  const char *sign = signbit(x) ? "-" : "";
  double ax = fabs(x);
  if (ax == 0.0) {
    snprintf(out, NC_CALC_MAX_OUTPUT, "%s0.0", sign);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.*e", prec - 1, ax);
    if (strtod(buf, NULL) != ax && prec < 17) continue;
    /* buf = d[.ddd]e[+-]XX */
    nd = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++)
      if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    decpt = atoi(q + 1) + 1;
    break;
  }
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  digits[nd] = 0;
  char *o = out;
  o += sprintf(o, "%s", sign);
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) { /* 0.000ddd */
      o += sprintf(o, "0.");
      for (int i = 0; i < -decpt; i++) *o++ = '0';
      o += sprintf(o, "%s", digits);
    } else if (decpt >= nd) { /* ddd000.0 */
      o += sprintf(o, "%s", digits);
      for (int i = 0; i < decpt - nd; i++) *o++ = '0';
      o += sprintf(o, ".0");
    } else { /* dd.ddd */
      o += sprintf(o, "%.*s.%s", decpt, digits, digits + decpt);
    }
  } else { /* d[.ddd]e+XX */
    int e = decpt - 1;
    *o++ = digits[0];
    if (nd > 1) o += sprintf(o, ".%s", digits + 1);
    o += sprintf(o, "e%c%02d", e < 0 ? '-' : '+', abs(e));
  }
  *o = 0;
}

/* ---- the string .count() form ------------------------------------------------------------- */

static int str_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
         c == '_' || c == '.';
}

/* Parses a quoted string at p->pos; sets [*b, *e) to its contents. */
static int parse_string(parser *p, size_t *b, size_t *e) {
  int q = peek(p);
  if (q != '\'' && q != '"') return fail(p, NC_EINVAL, "syntax error");
  size_t i = ++p->pos;
  while (i < p->n && p->s[i] != q) {
    if (!str_char_ok(p->s[i])) return fail(p, NC_EINVAL, "disallowed character");
    i++;
  }
  if (i >= p->n) return fail(p, NC_EINVAL, "unterminated string");
  *b = p->pos;
  *e = i;
  p->pos = i + 1;
  return 0;
}

static int expect_word(parser *p, const char *w) {
  skip_ws(p);
  size_t l = strlen(w);
  if (p->n - p->pos < l || memcmp(p->s + p->pos, w, l) != 0) return fail(p, NC_EINVAL, "syntax error");
  p->pos += l;
  return 0;
}

static int eval_count(parser *p, char *out) {
  size_t hb, he, nb, ne;
  if (parse_string(p, &hb, &he) || expect_word(p, ".") || expect_word(p, "count") ||
      expect_word(p, "(") || parse_string(p, &nb, &ne) || expect_word(p, ")"))
    return p->err;
  if (peek(p) != -1) return fail(p, NC_EINVAL, "syntax error");
  size_t hl = he - hb, nl = ne - nb;
  i128 count = 0;
  if (nl == 0) {
    count = (i128)hl + 1; /* Python: ''.count('') == 1, 'ab'.count('') == 3 */
  } else {
    for (size_t i = 0; i + nl <= hl;) {
      if (memcmp(p->s + hb + i, p->s + nb, nl) == 0) { count++; i += nl; }
      else i++;
    }
  }
  format_int(count, out);
  return 0;
}

/* ---- entry point -------------------------------------------------------------------------- */

int nc_calc_eval(const char *expr, size_t len, char out[NC_CALC_MAX_OUTPUT]) {
  if (!out) return NC_EINVAL;
  out[0] = 0;
  if (!expr) {
    snprintf(out, NC_CALC_MAX_OUTPUT, "empty expression");
    return NC_EINVAL;
  }
  if (len > NC_CALC_MAX_INPUT) {
    snprintf(out, NC_CALC_MAX_OUTPUT, "expression too long");
    return NC_EINVAL;
  }
  char s[NC_CALC_MAX_INPUT + 1];
  size_t n = 0;
  int has_quote = 0;
  for (size_t i = 0; i < len; i++) {
    char c = expr[i];
    if (c == ',') continue; /* nanochat removes commas first */
    if (c == '\0') {
      snprintf(out, NC_CALC_MAX_OUTPUT, "disallowed character");
      return NC_EINVAL;
    }
    if (c == '\'' || c == '"') has_quote = 1;
    s[n++] = c;
  }
  s[n] = 0;
  parser p = {s, n, 0, 0, 0, NULL};
  int rc;
  if (has_quote) {
    rc = eval_count(&p, out);
  } else {
    for (size_t i = 0; i < n; i++) {
      if (!strchr("0123456789*+-/.() ", s[i])) {
        snprintf(out, NC_CALC_MAX_OUTPUT, "disallowed character");
        return NC_EINVAL;
      }
    }
    val v;
    rc = parse_expr(&p, &v);
    if (!rc && peek(&p) != -1) rc = fail(&p, NC_EINVAL, p.s[p.pos] == ')' ? "unbalanced ')'" : "syntax error");
    if (!rc) {
      if (v.is_float) format_float(v.f, out);
      else format_int(v.i, out);
    }
  }
  if (rc) snprintf(out, NC_CALC_MAX_OUTPUT, "%s", p.why ? p.why : "error");
  return rc;
}
