/* core/rprop.c - iRprop-. See core/rprop.h. */
#include "core/rprop.h"

#include "core/err.h"

void rprop_params_default(rprop_params *p)
{
    p->eta_plus = 1.2;
    p->eta_minus = 0.5;
    p->step_init = 0.01;
    p->step_min = 1e-6;
    p->step_max = 50;
}

int rprop_params_check(const rprop_params *p)
{
    if (!(p->eta_plus > 1)) return rc_error(RC_EINVAL, "rprop: eta_plus must be > 1 (got %g)", p->eta_plus);
    if (!(p->eta_minus > 0 && p->eta_minus < 1))
        return rc_error(RC_EINVAL, "rprop: eta_minus must be in (0, 1) (got %g)", p->eta_minus);
    if (!(p->step_init > 0)) return rc_error(RC_EINVAL, "rprop: step_init must be > 0 (got %g)", p->step_init);
    if (!(p->step_min >= 0)) return rc_error(RC_EINVAL, "rprop: step_min must be >= 0 (got %g)", p->step_min);
    if (!(p->step_max >= p->step_min))
        return rc_error(RC_EINVAL, "rprop: step_max must be >= step_min (got %g < %g)", p->step_max, p->step_min);
    return RC_OK;
}

void rprop_init(const rprop_params *p, float *step, float *gp, size_t n)
{
    float s0 = (float)p->step_init;
    for (size_t j = 0; j < n; j++) {
        step[j] = s0;
        gp[j] = 0;
    }
}

size_t rprop_step(const rprop_params *p, float *x, const float *g, float *step, float *gp, size_t n)
{
    const float up = (float)p->eta_plus, down = (float)p->eta_minus;
    const float smin = (float)p->step_min, smax = (float)p->step_max;
    size_t flips = 0;
    for (size_t j = 0; j < n; j++) {
        float gj = g[j], s = step[j];
        float prod = gj * gp[j];
        if (prod > 0) {
            s *= up;
            s = s > smax ? smax : s;
        } else if (prod < 0) {
            s *= down;
            s = s < smin ? smin : s;
            gj = 0;
            flips++;
        }
        if (gj > 0) x[j] -= s;
        else if (gj < 0) x[j] += s;
        step[j] = s;
        gp[j] = gj;
    }
    return flips;
}
