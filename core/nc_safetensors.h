/* nc_safetensors.h — reader and writer for the safetensors file format, no pickle.
 *
 * Format (huggingface/safetensors; specs/faults.md §5):
 *   [8 bytes]  N, little-endian u64: length of the JSON header
 *   [N bytes]  UTF-8 JSON object: name -> {"dtype": "F32", "shape": [d0, ...],
 *              "data_offsets": [BEGIN, END]}, plus an optional "__metadata__" object whose
 *              values are strings. Writers pad the header with spaces to a multiple of 8.
 *   [rest]     the data section: raw little-endian, row-major tensor bytes. Offsets are
 *              relative to the start of the data section.
 *
 * The reader validates the WHOLE header before it returns a handle, and before anything is
 * allocated beyond the header text itself (whose size is capped and must be present in the
 * file): file size >= 8; not a zip/pickle (rejected by magic, never deserialised);
 * N <= NC_ST_MAX_HEADER; 8 + N <= size; the header is valid UTF-8, starts with '{', is one
 * JSON object with unique keys, nesting depth <= 3 and at most NC_ST_MAX_VALUES JSON values
 * (bounds the parser's memory); at most NC_ST_MAX_TENSORS tensors with names of 1..
 * NC_ST_MAX_NAME bytes; each tensor info has exactly dtype/shape/data_offsets; dtype in
 * {F32, BF16, F16, I32, I64, U8}; at most NC_ST_MAX_DIMS dims, each 0..2^31; numel * dtype
 * size computed with overflow checks; END - BEGIN equals it; the byte ranges, sorted, start
 * at 0, neither overlap nor leave holes, and the last END equals the data section's size
 * exactly (a shorter file is truncated, a longer one has trailing bytes); __metadata__ is
 * an object of strings (at most NC_ST_MAX_META entries).
 * Every failure returns a negative NC_E* code AND fills an nc_st_error with a kind (which
 * check failed) and a message naming the tensor/field and the numbers involved.
 *
 * The writer builds the header with jansson, pads it to 8 bytes, and writes to a temporary
 * file in the target directory (O_EXCL, O_NOFOLLOW), fsyncs it, renames it over the final
 * name and fsyncs the directory, so a reader sees either the old file or the complete new
 * one, never a partial file (faults.md §3.4, row 28). The SHA-256 of the bytes written is
 * returned. On error the temporary file is removed.
 *
 * Data is little-endian; this implementation requires a little-endian host (checked at
 * compile time). Thread-safety: handles are independent; one thread at a time per handle.
 */
#ifndef NC_SAFETENSORS_H
#define NC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "nc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NC_ST_MAX_HEADER (16u << 20) /* header bytes (the reference parser allows 100 MB) */
#define NC_ST_MAX_TENSORS 16384
#define NC_ST_MAX_NAME 256           /* bytes, without the NUL                            */
#define NC_ST_MAX_DIMS 8
#define NC_ST_MAX_DIM (1LL << 31)    /* largest single dimension                          */
#define NC_ST_MAX_META 256           /* __metadata__ entries                              */
#define NC_ST_MAX_VALUES (1 << 19)   /* JSON values in a header                           */

/* Which check failed. Checkpoint-level kinds (nc_checkpoint.h) share this enum so one
 * error struct describes every way a checkpoint can be refused. */
typedef enum nc_st_errkind {
  NC_ST_OK = 0,
  NC_ST_E_IO,            /* open/read/write failed (errno text in the message)     NC_EIO   */
  NC_ST_E_PICKLE,        /* zip or pickle magic: never loaded                      NC_EINVAL */
  NC_ST_E_TOO_SMALL,     /* file shorter than 8 bytes, or N == 0                   NC_EINVAL */
  NC_ST_E_HEADER_TOO_LARGE, /* N > NC_ST_MAX_HEADER                                NC_EINVAL */
  NC_ST_E_HEADER_LENGTH, /* 8 + N > file size (truncated inside the header)        NC_ECORRUPT */
  NC_ST_E_UTF8,          /* header is not valid UTF-8                              NC_EINVAL */
  NC_ST_E_MAGIC,         /* header does not start with '{'                         NC_EINVAL */
  NC_ST_E_JSON,          /* not valid JSON / not an object / too deep / too many values NC_EINVAL */
  NC_ST_E_DUPLICATE,     /* a key appears twice                                    NC_EINVAL */
  NC_ST_E_TENSOR_INFO,   /* bad name, missing/extra/mistyped field                 NC_EINVAL */
  NC_ST_E_DTYPE,         /* unknown dtype, or one the caller cannot use            NC_EINVAL */
  NC_ST_E_SHAPE,         /* too many dims, a negative or > 2^31 dim                NC_EINVAL */
  NC_ST_E_OVERFLOW,      /* numel or byte size overflows 64 bits                   NC_EINVAL */
  NC_ST_E_SIZE,          /* END - BEGIN differs from numel * dtype size            NC_EINVAL */
  NC_ST_E_OFFSETS,       /* BEGIN > END, or two byte ranges overlap                NC_EINVAL */
  NC_ST_E_HOLE,          /* a gap between byte ranges (or before the first one)    NC_EINVAL */
  NC_ST_E_TRUNCATED,     /* the data section ends before the last END              NC_ECORRUPT */
  NC_ST_E_TRAILING,      /* bytes after the last END                               NC_EINVAL */
  NC_ST_E_METADATA,      /* __metadata__ not an object of strings, or too many     NC_EINVAL */
  NC_ST_E_TOO_MANY,      /* more than NC_ST_MAX_TENSORS tensors                    NC_EINVAL */
  NC_ST_E_ARG,           /* bad argument from the caller (writer input, NULLs)     NC_EINVAL */
  NC_ST_E_NOMEM,         /* allocation failed                                      NC_ENOMEM */
  NC_ST_E_NOSPC,         /* disk full / quota while writing                        NC_ENOSPC */
  /* checkpoint level (nc_checkpoint.h) */
  NC_ST_E_VERSION,       /* "format" names a newer nanochat-c checkpoint version   NC_EINVAL */
  NC_ST_E_CONFIG,        /* model_config missing, malformed or insane              NC_EINVAL */
  NC_ST_E_MISSING,       /* a tensor the config needs is absent                    NC_EINVAL */
  NC_ST_E_EXTRA,         /* a tensor the config does not have                      NC_EINVAL */
  NC_ST_E_SHAPE_MISMATCH,/* a tensor's shape differs from the config's             NC_EINVAL */
  NC_ST_E_NONFINITE,     /* NaN/Inf in a tensor (only when asked to check)         NC_ECORRUPT */
  NC_ST_E_HASH,          /* SHA-256 differs from the expected one                  NC_ECORRUPT */
  NC_ST_E_PATH,          /* bad tag/phase/name (../, /, NUL, regex)                NC_EINVAL */
  NC_ST_E_SYMLINK,       /* a symlink where a directory or file was expected       NC_EPERM */
  NC_ST_E_NOTFOUND,      /* no such checkpoint / file                              NC_ENOTFOUND */
  NC_ST_E_OPTIM,         /* optimizer state does not match the optimizer           NC_EINVAL */
  NC_ST_E_COUNT
} nc_st_errkind;

typedef struct nc_st_error {
  nc_st_errkind kind;
  char msg[256];
} nc_st_error;

/* Symbolic name of a kind ("NC_ST_E_DTYPE"); never NULL. */
const char *nc_st_errkind_name(nc_st_errkind kind);
/* The NC_E* code a kind maps to (table above). */
int nc_st_errkind_code(nc_st_errkind kind);
/* Fills *err (may be NULL) and returns nc_st_errkind_code(kind). printf-style message. */
int nc_st_fail(nc_st_error *err, nc_st_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------------ reading */

/* One tensor of a validated header. Owned by the file handle. */
typedef struct nc_st_info {
  const char *name;
  nc_dtype dtype;
  int ndim;                        /* 0..NC_ST_MAX_DIMS (0 = scalar, numel 1) */
  int64_t shape[NC_ST_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end;             /* byte range within the data section      */
} nc_st_info;

typedef struct nc_st_file nc_st_file;

/* Opens and validates `path` (O_NOFOLLOW on the last component: a symlink is refused with
 * NC_ST_E_SYMLINK). On success *out owns an fd and the parsed header; release with
 * nc_st_close. Errors: see the kinds above; *out is NULL. */
int nc_st_open(const char *path, nc_st_file **out, nc_st_error *err);
/* The same relative to a directory fd (name must not contain '/'). */
int nc_st_openat(int dirfd, const char *name, nc_st_file **out, nc_st_error *err);
/* The same over a memory buffer, which is BORROWED (must outlive the handle). */
int nc_st_open_mem(const void *buf, size_t len, nc_st_file **out, nc_st_error *err);
/* Frees the handle (closes the fd). NULL is a no-op. */
void nc_st_close(nc_st_file *f);

/* Tensors, sorted by data offset. i in [0, nc_st_count). */
int nc_st_count(const nc_st_file *f);
const nc_st_info *nc_st_at(const nc_st_file *f, int i);
/* Tensor by name, NULL if absent. */
const nc_st_info *nc_st_find(const nc_st_file *f, const char *name);
/* __metadata__ value for key (NUL-terminated, owned by the handle), NULL if absent. */
const char *nc_st_meta(const nc_st_file *f, const char *key);
int nc_st_meta_count(const nc_st_file *f);
void nc_st_meta_at(const nc_st_file *f, int i, const char **key, const char **value);
/* Total file size and header length N. */
uint64_t nc_st_file_size(const nc_st_file *f);
uint64_t nc_st_header_len(const nc_st_file *f);

/* Copies tensor t's raw bytes (t->end - t->begin) into dst, which must hold that many
 * bytes. NC_OK, NC_EINVAL (cap too small) or NC_EIO / NC_ECORRUPT (short read). */
int nc_st_read(nc_st_file *f, const nc_st_info *t, void *dst, size_t cap, nc_st_error *err);
/* Reads a floating tensor into n = t->numel fp32 values, converting BF16 and F16 (exact)
 * — other dtypes give NC_ST_E_DTYPE. */
int nc_st_read_f32(nc_st_file *f, const nc_st_info *t, float *dst, int64_t n,
                   nc_st_error *err);
/* SHA-256 of the whole file (one sequential pass). */
int nc_st_sha256(nc_st_file *f, uint8_t out[32], nc_st_error *err);

/* ------------------------------------------------------------------------------ writing */

/* A tensor to write; data is BORROWED. For dtype BF16 with from_f32 set, data points to
 * numel fp32 values that are rounded to bfloat16 (round to nearest even) while writing. */
typedef struct nc_st_tensor {
  const char *name;
  nc_dtype dtype;
  int ndim;
  int64_t shape[NC_ST_MAX_DIMS];
  const void *data;
  int from_f32;
} nc_st_tensor;

/* A __metadata__ entry (both strings borrowed, NUL-terminated). */
typedef struct nc_st_kv {
  const char *key, *value;
} nc_st_kv;

/* Fault points of a write, in order: "header", "data", "fsync", "rename". A test hook may
 * _exit() there to simulate a crash, or return nonzero to make the write fail (NC_EIO). */
typedef int (*nc_st_fault_fn)(void *ctx, const char *point);

typedef struct nc_st_write_opts {
  nc_st_fault_fn fault; /* NULL in production */
  void *fault_ctx;
} nc_st_write_opts;

/* Writes `n` tensors (in the given order) and `nmeta` metadata entries to `name` inside
 * the directory `dirfd` (AT_FDCWD for the working directory; name must not contain '/'),
 * atomically: temp file ".<name>.tmp.<pid>", fsync, rename, fsync(dirfd). Names must be
 * unique and 1..NC_ST_MAX_NAME bytes, shapes valid as for reading. sha256 (may be NULL)
 * receives the digest of the file. opts may be NULL. Returns NC_OK or an NC_E* code with
 * *err filled (NC_ST_E_ARG, NC_ST_E_IO, NC_ST_E_NOSPC, NC_ST_E_NOMEM). */
int nc_st_write(int dirfd, const char *name, const nc_st_tensor *t, int n, const nc_st_kv *meta,
                int nmeta, const nc_st_write_opts *opts, uint8_t sha256[32], nc_st_error *err);

/* The same temp + fsync + rename protocol for an arbitrary byte buffer (e.g. a JSON file).
 * Fault points "data", "fsync", "rename". */
int nc_st_write_file(int dirfd, const char *name, const void *data, size_t len,
                     const nc_st_write_opts *opts, nc_st_error *err);

/* True if `name` looks like a temp file nc_st_write leaves behind after a crash
 * (".<something>.tmp.<digits>"); *pid receives the writer's pid. */
int nc_st_is_temp_name(const char *name, long *pid);

#ifdef __cplusplus
}
#endif
#endif /* NC_SAFETENSORS_H */
