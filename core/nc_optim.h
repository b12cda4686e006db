/* nc_optim.h — nanochat's optimizers on the CPU in fp32: MuonAdamW (the pinned
 * nanochat/optim.py + GPT.setup_optimizer) and plain AdamW, plus base_train's schedules.
 *
 * MuonAdamW groups (specs/nanochat.md §5.2), built from the nc_param kinds of nc_model:
 *
 *   group          params (kind)                 lr                         betas        eps    wd
 *   lm_head        NC_PK_LM_HEAD                 unembedding_lr * dms       (0.8, 0.96)  1e-10  0.01
 *   wte            NC_PK_WTE                     embedding_lr * dms         (0.8, 0.995) 1e-10  0.001
 *   value_embeds   NC_PK_VALUE_EMBED             embedding_lr * dms * 0.5   (0.8, 0.995) 1e-10  0.01
 *   resid_lambdas  NC_PK_RESID_LAMBDAS           scalar_lr * 0.01           (0.8, 0.95)  1e-10  0.05
 *   x0_lambdas     NC_PK_X0_LAMBDAS              scalar_lr                  (0.96, 0.95) 1e-10  0
 *   scalars        NC_PK_GATE_SCALAR             0.2 (fixed)                (0.8, 0.95)  1e-10  0
 *   muon RxC       NC_PK_MATRIX, one group per   matrix_lr                  momentum 0.95, ns_steps 5,
 *                  distinct shape, shapes sorted                            beta2 0.9, wd = weight_decay
 *
 * dms = (model_dim / 768)^-0.5. The four lrs are the values base_train passes to
 * setup_optimizer, i.e. already multiplied by nc_batch_lr_scale(). Empty AdamW groups are
 * left out. Every group stores initial_lr; nc_optim_set_schedule() sets lr = initial_lr * lrm
 * (and Muon's momentum and weight decay), as base_train's loop does before each step.
 *
 * AdamW step (nanochat's adamw_step_fused; = torch.optim.AdamW): p *= 1 - lr*wd;
 *   m = lerp(m, g, 1-b1); v = lerp(v, g^2, 1-b2); p -= lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps).
 * Muon step (muon_step_fused, per matrix of the group; the pinned commit, no MuonEq/Muon+):
 *   1. Nesterov: buf = lerp(buf, g, 1-mu); g = lerp(g, buf, mu)
 *   2. Polar Express: X = g / (|g|_F * 1.01 + 1e-6), then for each of ns_steps coefficient
 *      triples (a, b, c): tall (rows > cols): A = X^T X, X = a X + X (b A + c A^2);
 *      otherwise A = X X^T, X = a X + (b A + c A^2) X. fp32 here (nanochat casts to bf16 on
 *      GPUs only; on CPU it stays fp32, as here). Matmuls with OpenBLAS sgemm; a readable
 *      plain-loop reference (nc_polar_express_ref) is what the tests check it against.
 *   3. NorMuon: red = cols if rows >= cols else rows; v_mean = mean(X^2) over red (per row,
 *      resp. per column); buf2 = lerp(buf2, v_mean, 1-beta2); s = rsqrt(max(buf2, 1e-10));
 *      X *= s * |X|_F / max(|X s|_F, 1e-10) (norms from v_mean * red).
 *   4. Cautious weight decay: lr' = lr * sqrt(max(1, rows/cols)); mask = X*p >= 0;
 *      p -= lr' X + lr' wd p mask.
 * lerp follows torch.lerp's two-sided formula, so results agree with PyTorch to rounding.
 *
 * Deviations from nanochat, all documented: (a) nanochat keeps an AdamW step count per
 * parameter and skips parameters whose grad is None; here every parameter has a gradient
 * and one step counter serves all (identical for nanochat's training loop). (b) Optional
 * global-norm gradient clipping (off by default; nanochat has none): with grad_clip > 0 the
 * gradients are scaled in place by grad_clip / (norm + 1e-6) when norm > grad_clip
 * (torch.nn.utils.clip_grad_norm_), and a non-finite norm refuses the step (NC_ERANGE).
 *
 * Gradient accumulation is the model's (nc_model_forward_backward with grad_scale =
 * 1/grad_accum adds to the gradients); nc_grad_accum_steps() is base_train's arithmetic.
 *
 * Memory: ONE allocation holds all optimizer state (AdamW exp_avg/exp_avg_sq per parameter,
 * Muon momentum [K, rows, cols] and factored second moment per group); Polar Express
 * scratch is a second, per-thread allocation, grown when the OpenMP thread count grows.
 * Threading: AdamW runs elementwise over OpenMP threads; Muon runs one matrix per OpenMP
 * thread, each calling single-threaded OpenBLAS (results do not depend on the thread
 * count). One thread at a time may call the functions that take a non-const optimizer.
 * Errors: NC_OK or a negative NC_E* code (nc_err.h); NC_EINVAL with a message for bad
 * configurations. Nothing aborts.
 */
#ifndef NC_OPTIM_H
#define NC_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "nc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------------------- schedules (pure) */

/* base_train get_lr_multiplier: (it+1)/warmup for it < warmup; 1.0 while
 * it <= N - warmdown; then p + (1-p)*final_lr_frac with p = (N - it)/warmdown, where
 * warmdown = round(warmdown_ratio * N) (Python's round: half to even). */
double nc_lr_multiplier(int64_t it, int64_t num_iterations, int64_t warmup_steps,
                        double warmdown_ratio, double final_lr_frac);
/* base_train get_muon_momentum: 0.85 -> 0.97 linearly over it < 400; from the warmdown
 * start N - warmdown, 0.97 -> 0.90 linearly; 0.97 otherwise (warmdown 0: never decays). */
double nc_muon_momentum(int64_t it, int64_t num_iterations, double warmdown_ratio);
/* base_train get_weight_decay: wd * 0.5 * (1 + cos(pi * it / N)). */
double nc_muon_weight_decay(int64_t it, int64_t num_iterations, double weight_decay);
/* sqrt(total_batch_size / b_ref) (1.0 when equal). */
double nc_batch_lr_scale(int64_t total_batch_size, int64_t b_ref);
/* (model_dim / 768)^-0.5 */
double nc_dmodel_lr_scale(int model_dim);
/* wd * sqrt(B / b_ref) * (d_ref / target_tokens). */
double nc_weight_decay_scaled(double weight_decay, int64_t total_batch_size, int64_t b_ref,
                              double d_ref, double target_tokens);
/* grad_accum = total_batch / (device_batch * T * world); NC_EINVAL unless it divides
 * exactly and every argument is >= 1. */
int nc_grad_accum_steps(int64_t total_batch_size, int device_batch_size, int seq_len,
                        int world_size, int *out);

/* The five Polar Express coefficient triples (a, b, c) of the pinned optim.py. */
extern const double nc_polar_express_coeffs[5][3];

/* Readable reference: X [rows, cols] (row-major) <- Polar Express of X with `steps`
 * iterations (1..5), including the initial X / (|X|_F * 1.01 + 1e-6). Plain loops, double
 * accumulation, float storage; allocates its own scratch. NC_OK / NC_EINVAL / NC_ENOMEM. */
int nc_polar_express_ref(float *X, int rows, int cols, int steps);
/* The fast path (sgemm) the optimizer uses, same contract; work must hold
 * nc_polar_express_work_floats(rows, cols) floats. Single-threaded (call
 * nc_blas_single_thread first, or from inside an OpenMP thread). */
size_t nc_polar_express_work_floats(int rows, int cols);
int nc_polar_express(float *X, int rows, int cols, int steps, float *work);

/* --------------------------------------------------------------------- the optimizer */

typedef enum nc_optim_type { NC_OPTIM_MUONADAMW = 0, NC_OPTIM_ADAMW = 1 } nc_optim_type;
typedef enum nc_group_kind { NC_GROUP_ADAMW = 0, NC_GROUP_MUON = 1 } nc_group_kind;

typedef struct nc_optim_cfg {
  nc_optim_type type;
  /* MuonAdamW: GPT.setup_optimizer arguments (already batch-scaled by the caller) */
  double unembedding_lr, embedding_lr, matrix_lr, scalar_lr;
  double weight_decay;  /* Muon weight decay (base_train: weight_decay_scaled)      */
  int model_dim;        /* n_embd, for the dmodel lr scale                           */
  /* plain AdamW: one group with every parameter */
  double lr, beta1, beta2, eps, adamw_weight_decay;
  /* both */
  double grad_clip;     /* > 0: clip the global gradient L2 norm to this; 0: off     */
  int reference;        /* 1: Polar Express through nc_polar_express_ref (tests)     */
} nc_optim_cfg;

/* setup_optimizer's defaults: unembedding 0.004, embedding 0.2, matrix 0.02, scalar 0.5,
 * weight decay 0, for a model of width model_dim. */
nc_optim_cfg nc_optim_cfg_muonadamw(int model_dim);
/* Plain AdamW with torch.optim.AdamW's defaults for betas (0.9, 0.999) and eps 1e-8. */
nc_optim_cfg nc_optim_cfg_adamw(double lr, double weight_decay);

/* A parameter group. The hyperparameter fields may be changed between steps (they are
 * validated by nc_optim_step); kind, label, shape and params are fixed. */
typedef struct nc_optim_group {
  nc_group_kind kind;
  char label[32];          /* "lm_head", "wte", ..., "muon 256x1024", "all"        */
  double initial_lr, lr;
  double beta1, beta2, eps; /* AdamW; Muon uses beta2 (NorMuon)                    */
  double weight_decay;
  double momentum;          /* Muon                                                */
  int ns_steps;             /* Muon, 1..5                                          */
  int64_t rows, cols;       /* Muon: the matrix shape of every param in the group  */
  int n_params;
  const int *params;        /* indices into the parameter array                    */
} nc_optim_group;

typedef struct nc_optim nc_optim;

/* Creates an optimizer over `params` (n views, BORROWED: the array and the memory it points
 * to must outlive the optimizer; typically nc_model_params()). Every param needs data and
 * grad. MuonAdamW requires every NC_PK_MATRIX param to be 2-D. State is zeroed.
 * On success *out owns everything; free with nc_optim_free. NC_EINVAL (message in msg) or
 * NC_ENOMEM. */
int nc_optim_create(nc_param *params, int n, const nc_optim_cfg *cfg, nc_optim **out,
                    char *msg, size_t msglen);
void nc_optim_free(nc_optim *o);

nc_optim_type nc_optim_get_type(const nc_optim *o);
int nc_optim_n_groups(const nc_optim *o);
nc_optim_group *nc_optim_group_at(nc_optim *o, int i); /* NULL when out of range */
/* Steps taken so far (the AdamW bias-correction t of the next step is this + 1). */
int64_t nc_optim_step_count(const nc_optim *o);

/* base_train's per-step update: every group's lr = initial_lr * lrm; Muon groups also get
 * momentum and weight_decay. */
void nc_optim_set_schedule(nc_optim *o, double lrm, double muon_momentum,
                           double muon_weight_decay);

/* One optimizer step from the current gradients (which are left unchanged, except scaled
 * by clipping). *grad_norm (may be NULL) receives the global L2 norm before clipping when
 * clipping is on, else -1. NC_OK, NC_EINVAL (a group's hyperparameters are invalid:
 * negative or non-finite lr/wd, betas outside [0,1), ns_steps outside 1..5), NC_ERANGE
 * (clipping on and the norm is not finite: nothing changed), NC_ENOMEM (scratch). */
int nc_optim_step(nc_optim *o, double *grad_norm);

/* Global L2 norm of the gradients (double accumulation). */
double nc_grad_global_norm(const nc_param *params, int n);

/* ------------------------------------------------------------ state for checkpoints */

/* Named views of the optimizer state (owned by the optimizer, valid until it is freed):
 *   AdamW param P:  "P.exp_avg", "P.exp_avg_sq"              (P's shape)
 *   Muon param P:   "P.momentum_buffer" [rows, cols],
 *                   "P.second_momentum_buffer" [rows, 1] if rows >= cols else [1, cols]
 * (nanochat's per-group stacked buffers, sliced per parameter). grad is NULL. */
const nc_param *nc_optim_state(const nc_optim *o, int *n);
/* Writable access to the same views (for loading). */
nc_param *nc_optim_state_mut(nc_optim *o, int *n);

/* Everything that is not a tensor, as compact JSON (malloc'd; caller frees; NULL on OOM):
 * {"type","step","grad_clip","groups":[{"label","kind","lr","initial_lr",...,"params":[names]}]}
 * Doubles are printed with 17 significant digits, so a round trip is exact. */
char *nc_optim_meta_to_json(const nc_optim *o);
/* Restores step, grad_clip and every group's hyperparameters from such JSON. The type, the
 * group labels/kinds/shapes and parameter names must match this optimizer exactly; on any
 * mismatch nothing is changed and NC_EINVAL is returned with a message. */
int nc_optim_meta_from_json(nc_optim *o, const char *json, size_t len, char *msg,
                            size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* NC_OPTIM_H */
