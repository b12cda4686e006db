/* nc_corpus.h — text documents from a corpus directory, as an endless, seekable document
 * source for the packing loader (nc_loader.h) and as a plain text iterator for tokenizer
 * training and evaluation.
 *
 * Accepted layouts (`dir`):
 *   - a corpus built by scripts/build-corpus: dir/manifest.json + dir/<split>/shard_*.jsonl;
 *     the split is "train" or "val";
 *   - any user directory of *.jsonl and *.txt files (searched recursively, sorted by path,
 *     symlinks not followed; hidden files and folders skipped). Split "train" reads every file
 *     except those under a "val/" folder or named val*.{jsonl,txt}; split "val" reads only
 *     those. A .jsonl file holds one document per line: a JSON object with a string "text"
 *     (other keys ignored; blank lines skipped). A .txt file is ONE document (UTF-8).
 * Documents longer than max_doc_bytes are truncated at a UTF-8 boundary; lines of a .jsonl
 * file longer than max_line_bytes are skipped and counted (bad_lines), as are lines that are
 * not a JSON object with a string "text". Invalid UTF-8 is repaired (U+FFFD).
 *
 * Positions: a document is identified by nc_doc_pos {a = epoch * n_files + file index,
 * b = byte offset of its line in the file}. The source is endless: after the last document of
 * the last file it starts over (epoch + 1). seek() accepts any position a previous next()
 * returned, or tell()'s value.
 *
 * Ownership: nc_corpus_open returns a handle the caller frees with nc_corpus_close. Text
 * returned by nc_corpus_next_text is owned by the handle and valid until the next call. Not
 * thread-safe: one thread per handle (open several handles for parallel readers).
 */
#ifndef NC_CORPUS_H
#define NC_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "nc_chat.h"
#include "nc_loader.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nc_corpus nc_corpus;

/* Where a dataset lives under nanochatd's data dir: "" or NULL = the default corpus
 * <data_dir>/corpus (built by scripts/build-corpus); a name (identifier syntax, checked by the
 * caller) = <data_dir>/datasets/<name>. Writes the path into out[cap]; NC_OK, NC_EINVAL (too
 * long, or a name with '/' or a leading '.'). */
int nc_corpus_resolve(const char *data_dir, const char *name, char *out, size_t cap);

typedef struct nc_corpus_opts {
  const char *dir;          /* corpus or user directory (required) */
  const char *split;        /* "train" (default when NULL) or "val" */
  size_t max_doc_bytes;     /* 0: 1 MiB; documents are truncated beyond it */
  size_t max_line_bytes;    /* 0: 16 MiB; longer .jsonl lines are skipped */
  size_t max_files;         /* 0: 100000; more files is NC_EFULL */
} nc_corpus_opts;

/* Opens the corpus. NC_OK; NC_ENOTFOUND (no such directory, or no file for the split);
 * NC_EINVAL (bad options, unknown split); NC_EFULL (too many files); NC_EIO; NC_ENOMEM.
 * err[errlen] gets a message naming the path. */
int nc_corpus_open(const nc_corpus_opts *o, nc_corpus **out, char *err, size_t errlen);
void nc_corpus_close(nc_corpus *c);

/* Number of files of the split, and how many bad lines were skipped so far. */
size_t nc_corpus_files(const nc_corpus *c);
uint64_t nc_corpus_bad_lines(const nc_corpus *c);
/* Current epoch (0 for the first pass over the files). */
uint64_t nc_corpus_epoch(const nc_corpus *c);

/* Next document: *text (UTF-8, NUL-terminated, owned by the handle, valid until the next call)
 * of *len bytes and its position. `wrap` = 0 makes the source finite: NC_ENOTFOUND after the
 * last document of the split's first pass; `wrap` = 1 starts over. NC_OK or NC_EIO/NC_ENOMEM. */
int nc_corpus_next_text(nc_corpus *c, int wrap, const char **text, size_t *len, nc_doc_pos *pos);

/* Positions the corpus so the next document read is the one at `pos`. NC_OK or NC_EINVAL. */
int nc_corpus_seek(nc_corpus *c, nc_doc_pos pos);
nc_doc_pos nc_corpus_tell(const nc_corpus *c);

/* A document source for nc_loader over this corpus: each document is tokenized with `tok`
 * (ordinary text, never special tokens) and prefixed with `bos`. `c` and `tok` are borrowed
 * and must outlive the source. `wrap` as above (training: 1; evaluation: 0). */
typedef struct nc_corpus_source {
  nc_corpus *c;
  const nc_tok_iface *tok;
  int32_t bos;
  int wrap;
} nc_corpus_source;
nc_doc_source nc_corpus_doc_source(nc_corpus_source *s);

#ifdef __cplusplus
}
#endif
#endif /* NC_CORPUS_H */
