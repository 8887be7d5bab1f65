/* models/gru4rec_kern.h - vectorised element-wise kernels of GRU4Rec (internal).
 *
 * Each kernel is compiled for AVX-512, AVX2 and baseline x86-64 (chosen once at load time by the
 * dynamic linker), and uses a polynomial expf (relative error < 2e-7 over the clamped range) that the
 * compiler vectorises. No allocation, no errors: callers pass valid sizes. */
#ifndef RECD_GRU4REC_KERN_H
#define RECD_GRU4REC_KERN_H

#include <stddef.h>

/* y[i] = exp(x[i]) with the kernel's expf (for tests). */
void g4k_exp(const float *x, float *y, size_t n);

/* GRU gates for one row: ax = x Wx + bx, ah = h Wh + bh (each (3H), blocks r|z|n). Writes r, z, n (H)
 * and h' into hout (H) given hprev (H); hout may alias hprev. r/z/n may be NULL (serving). */
void g4k_gru_gates(const float *ax, const float *ah, const float *hprev, float *hout, float *r, float *z,
                   float *n, int H);

/* Backward of the gates for one row (no gradient to hprev: no BPTT). dh (H) is the gradient on h';
 * writes dax (3H) and dah (3H) (gradients on x Wx + bx and h Wh + bh). ahn is the n block of ah. */
void g4k_gru_gates_backward(const float *dh, const float *hprev, const float *r, const float *z,
                            const float *n, const float *ahn, float *dax, float *dah, int H);

/* Losses on one row o (M scores, target at column t), in place: o becomes dL/do times scale.
 * Return the row's loss (unscaled). logq_col (M) is subtracted times logq first (NULL: none). */
double g4k_xe_row(float *o, int M, int t, const float *logq_col, float logq, float scale);
double g4k_bprmax_row(float *o, int M, int t, float elu, float bpreg, float scale, float *tmp);
double g4k_top1max_row(float *o, int M, int t, float scale, float *tmp);

/* AdaGrad with momentum (official IndexedAdagradM, eps 1e-6) on n contiguous values:
 * acc += g^2; mom = mu*mom - lr*g/sqrt(acc+eps); p += mom. mom ignored when mu == 0. */
void g4k_adagradm(float *p, float *acc, float *mom, const float *g, size_t n, float lr, float mu);

/* y += x (n). */
void g4k_add(float *y, const float *x, size_t n);

#endif
