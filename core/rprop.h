/* core/rprop.h - resilient backpropagation, iRprop- (Igel & Huesken 2000, "Improving the Rprop
 * learning algorithm"), the full-batch optimiser Sedhain et al. 2015 used for U-AutoRec.
 *
 * Each parameter has its own step size, adapted from the sign of its gradient alone (the gradient's
 * magnitude is ignored, which makes Rprop robust to badly scaled losses). Per element j, with g the
 * gradient of this step and gp the one kept from the previous step:
 *     if g*gp > 0:  step = min(step * eta_plus, step_max)
 *     if g*gp < 0:  step = max(step * eta_minus, step_min);  g = 0     (the "-" of iRprop-: no move,
 *                                                                       no sign memory for one step)
 *     x -= sign(g) * step;  gp = g
 * State: step (n) and gp (n), caller-owned float arrays; rprop_init fills them before the first step.
 * Nothing here allocates or fails; arguments are preconditions. Arithmetic in float, elementwise, so
 * the result does not depend on how a caller splits the arrays between threads.
 *
 * Letters: n parameters.
 */
#ifndef RECD_RPROP_H
#define RECD_RPROP_H

#include <stddef.h>

typedef struct rprop_params {
    double eta_plus;  /* > 1; 1.2 */
    double eta_minus; /* in (0, 1); 0.5 */
    double step_init; /* > 0; 0.01 (the initial step of every element) */
    double step_min;  /* >= 0; 1e-6 */
    double step_max;  /* >= step_min; 50 */
} rprop_params;

void rprop_params_default(rprop_params *p);
/* RC_OK or RC_EINVAL naming the first bad field. */
int rprop_params_check(const rprop_params *p);

/* step (n) = step_init, gp (n) = 0. */
void rprop_init(const rprop_params *p, float *step, float *gp, size_t n);

/* One iRprop- step: x, step, gp are (n) and updated in place; g (n) is this step's gradient (read
 * only). Returns the number of elements whose gradient changed sign (for progress logs). */
size_t rprop_step(const rprop_params *p, float *x, const float *g, float *step, float *gp, size_t n);

#endif
