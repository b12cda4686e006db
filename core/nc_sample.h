/* nc_sample.h — choosing the next token from logits (nanochat engine.sample_next_token).
 *
 * Semantics (nanochat, plus optional top-p / min-p):
 *   temperature == 0       -> argmax (the lowest id among equal maxima, like torch.argmax)
 *   top_k > 0 (and < V)    -> keep the k largest logits
 *   then                      softmax(logits / temperature) over what is kept
 *   min_p > 0              -> drop tokens whose probability < min_p x the largest probability
 *   top_p < 1              -> keep the smallest most-likely set whose mass >= top_p
 *   then                      draw one token from the renormalised distribution
 * Any non-finite logit is an error (NC_ERANGE), never a random token (faults.md row 41).
 * The random stream is xoshiro256** seeded through splitmix64: the same seed, logits and
 * parameters give the same tokens (nanochat's semantics, not PyTorch's RNG stream).
 */
#ifndef NC_SAMPLE_H
#define NC_SAMPLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Random number generator state (xoshiro256**). Plain value type; copy freely. */
typedef struct nc_rng {
  uint64_t s[4];
} nc_rng;

/* Seed `rng` from a 64-bit seed (any value, 0 included). */
void nc_rng_seed(nc_rng *rng, uint64_t seed);
/* Next 64 random bits. */
uint64_t nc_rng_next(nc_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double nc_rng_uniform(nc_rng *rng);

/* Sampling parameters. Ranges are validated by nc_sampler_sample (NC_EINVAL). */
typedef struct nc_sampling {
  float temperature; /* >= 0; 0 = greedy */
  int top_k;         /* >= 0; 0 = all tokens */
  float top_p;       /* (0, 1]; 1 = off */
  float min_p;       /* [0, 1]; 0 = off */
} nc_sampling;

/* nanochat chat defaults: temperature 0.6, top_k 50, top_p 1, min_p 0. */
nc_sampling nc_sampling_default(void);

/* A sampler owns scratch space for one vocabulary size; use one per concurrent caller. */
typedef struct nc_sampler nc_sampler;

/* Create a sampler for vocabularies of `vocab_size` tokens (1..2^24). Returns NC_OK and sets
 * *out (owned by the caller; release with nc_sampler_free), or NC_EINVAL / NC_ENOMEM. */
int nc_sampler_create(int vocab_size, nc_sampler **out);
/* Free a sampler (NULL is fine). */
void nc_sampler_free(nc_sampler *s);

/* Choose a token from `logits` (vocab_size floats, read only). On success returns NC_OK and
 * sets *token. Errors: NC_EINVAL (bad parameters or NULL pointers), NC_ERANGE (a logit is
 * NaN or infinite). `rng` is advanced only when a random draw is made (temperature > 0). */
int nc_sampler_sample(nc_sampler *s, const float *logits, nc_sampling p, nc_rng *rng, int *token);

#ifdef __cplusplus
}
#endif
#endif /* NC_SAMPLE_H */
