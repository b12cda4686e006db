/* nc_tensor.c — dtype helpers of nc_tensor.h. */
#include "nc_tensor.h"

#include <string.h>

#include "nc_err.h"

static const struct { nc_dtype dt; const char *name; size_t size; } dtypes[] = {
    {NC_DT_F32, "F32", 4}, {NC_DT_BF16, "BF16", 2}, {NC_DT_F16, "F16", 2},
    {NC_DT_I32, "I32", 4}, {NC_DT_U8, "U8", 1},     {NC_DT_I64, "I64", 8},
};

size_t nc_dtype_size(nc_dtype dt) {
  for (unsigned i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
    if (dtypes[i].dt == dt) return dtypes[i].size;
  return 0;
}

const char *nc_dtype_name(nc_dtype dt) {
  for (unsigned i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
    if (dtypes[i].dt == dt) return dtypes[i].name;
  return NULL;
}

int nc_dtype_parse(const char *s, nc_dtype *out) {
  if (!s || !out) return NC_EINVAL;
  for (unsigned i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
    if (strcmp(dtypes[i].name, s) == 0) { *out = dtypes[i].dt; return NC_OK; }
  return NC_EINVAL;
}
