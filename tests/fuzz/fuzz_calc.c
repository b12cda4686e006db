/* Fuzz target: the calculator parser never crashes, never overruns its output, and always
 * NUL-terminates the result or the error text. */
#include <stdint.h>
#include <string.h>

#include "nc_calc.h"
#include "nc_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char out[NC_CALC_MAX_OUTPUT];
  memset(out, 'x', sizeof out);
  int rc = nc_calc_eval((const char *)data, size, out);
  if (memchr(out, 0, sizeof out) == NULL) __builtin_trap();
  if (rc != NC_OK && rc != NC_EINVAL && rc != NC_ERANGE) __builtin_trap();
  return 0;
}
