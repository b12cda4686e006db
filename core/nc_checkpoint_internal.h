/* nc_checkpoint_internal.h — helpers shared by nc_checkpoint.c and nc_checkpoint_dir.c.
 * Internal to core/. */
#ifndef NC_CHECKPOINT_INTERNAL_H
#define NC_CHECKPOINT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* File name of a checkpoint part: kind "model" -> model_<S:06d>.safetensors,
 * "optim" -> optim_<S:06d>_rank0.safetensors, "meta" -> meta_<S:06d>.json. */
void nc_ckpt_name(char *buf, size_t len, const char *kind, int64_t step);

#endif /* NC_CHECKPOINT_INTERNAL_H */
