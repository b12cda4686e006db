/* nc_calc.h — the calculator tool of the chat engine, without eval.
 *
 * nanochat's engine runs `<|python_start|> expr <|python_end|>` through Python's eval() behind a
 * character allowlist (a known escape risk). This module accepts exactly the two forms that
 * allowlist was meant to admit, with a recursive-descent parser and hard limits:
 *
 *   arithmetic:  expr   := term (('+' | '-') term)*
 *                term   := factor (('*' | '/') factor)*
 *                factor := NUMBER | '(' expr ')' | '-' factor | '+' factor
 *                NUMBER := digits ['.' digits*] | '.' digits          (no exponent, no '**')
 *   string count: STRING '.count(' STRING ')'   with STRING := '...' or "..." over
 *                 [A-Za-z0-9 _.] (nanochat's allowed characters)
 *
 * Commas are removed first and spaces are ignored between tokens (as nanochat does). Results
 * follow Python 3: + - * of integers stay exact integers, '/' is true division (float),
 * mixing gives a float; the text of the result is Python's str(): "36", "2.5", "5.0",
 * "1e+16", "-0.0". Integer literals with leading zeros ("012") are rejected like Python does.
 *
 * Limits (faults.md §2.5): input <= NC_CALC_MAX_INPUT bytes, nesting depth <= NC_CALC_MAX_DEPTH,
 * numbers <= NC_CALC_MAX_DIGITS digits, integer results within +/-(2^127 - 1), float results
 * finite. Every failure is an error code plus a short message; nothing is ever executed.
 * Thread-safe: no global state.
 */
#ifndef NC_CALC_H
#define NC_CALC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NC_CALC_MAX_INPUT 256
#define NC_CALC_MAX_DEPTH 32
#define NC_CALC_MAX_DIGITS 30
/* Largest result text including the terminating NUL. */
#define NC_CALC_MAX_OUTPUT 64

/* Evaluate `expr` (`len` bytes, need not be NUL-terminated).
 * On success returns NC_OK (0) and writes the result text (NUL-terminated, at most
 * NC_CALC_MAX_OUTPUT bytes) into `out`, which must hold NC_CALC_MAX_OUTPUT bytes.
 * On failure returns a negative NC_E* code and writes a short reason into `out`:
 *   NC_EINVAL  syntax error, disallowed character, input/number/depth limit exceeded
 *   NC_ERANGE  division by zero, integer overflow, non-finite float result
 */
int nc_calc_eval(const char *expr, size_t len, char out[NC_CALC_MAX_OUTPUT]);

#ifdef __cplusplus
}
#endif
#endif /* NC_CALC_H */
