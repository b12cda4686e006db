/* nc_model_ref.c — instantiates the reference model (nc_model_ref_impl.h) in float and double.
 * See nc_model_ref.h for the API. */
#include "nc_model_ref.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nc_err.h"
#include "nc_model_layout.h"

#define R float
#define SFX f32
#define R_SQRT sqrtf
#define R_EXP expf
#define R_TANH tanhf
#define R_LOG logf
#include "nc_model_ref_impl.h"
#undef R
#undef SFX
#undef R_SQRT
#undef R_EXP
#undef R_TANH
#undef R_LOG

#define R double
#define SFX f64
#define R_SQRT sqrt
#define R_EXP exp
#define R_TANH tanh
#define R_LOG log
#include "nc_model_ref_impl.h"
#undef R
#undef SFX
#undef R_SQRT
#undef R_EXP
#undef R_TANH
#undef R_LOG
