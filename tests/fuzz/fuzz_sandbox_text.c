/* fuzz_sandbox_text — the input-reachable text helpers of nc_sandbox.h: the UTF-8 repair
 * used on tool output before it goes into a protobuf string, and the extra-file name check.
 * Properties: the repaired text is valid UTF-8 (repairing it again changes nothing), keeps
 * every byte of valid input, and the name check never accepts '/', "..", a leading '.' or
 * more than NC_SANDBOX_NAME_MAX bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_sandbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  char *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  if (nc_sandbox_utf8_sanitize(data, size, &a, &na) != NC_OK) abort();
  if (a[na] != 0 || na < size || na > size * 3) abort();
  if (nc_sandbox_utf8_sanitize((const uint8_t *)a, na, &b, &nb) != NC_OK) abort();
  if (nb != na || memcmp(a, b, na) != 0) abort(); /* already valid: unchanged */
  free(a);
  free(b);

  char name[NC_SANDBOX_NAME_MAX + 2];
  size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
  memcpy(name, data, n);
  name[n] = 0;
  if (nc_sandbox_valid_filename(name)) {
    if (strchr(name, '/') || name[0] == '.' || strlen(name) > NC_SANDBOX_NAME_MAX ||
        strcmp(name, "main.py") == 0)
      abort();
  }
  return 0;
}
