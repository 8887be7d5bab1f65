/* models/gru4rec_impl.h - internals shared by models/gru4rec*.c (not a public header). */
#ifndef RECD_GRU4REC_IMPL_H
#define RECD_GRU4REC_IMPL_H

#include <math.h>
#include <stdint.h>

#include "models/gru4rec.h"

/* Weights of one GRU layer. Wx is (in,3H) or, for a one-hot layer 0, (N,3H); Wh is (H,3H). */
typedef struct gru4rec_layer {
    int in, H;
    float *Wx, *Wh, *bx, *bh; /* read-only when the model was loaded from a snapshot */
} gru4rec_layer;

struct gru4rec {
    gru4rec_hparams hp;
    int64_t N;
    int L;
    int in0;       /* input size of layer 0 (E, H_L, or N for one-hot) */
    int onehot;    /* layer 0 reads rows of its Wx */
    size_t S;      /* sum of layer sizes */
    size_t off[GRU4REC_MAX_LAYERS]; /* offset of layer l's state in a (S) state row */
    int Hmax;
    gru4rec_layer lay[GRU4REC_MAX_LAYERS];
    float *Wy, *By, *E;             /* Wy (N,H_L), By (N), E (N,E) or NULL */
    float *params;                  /* owned single allocation (new_random), or NULL (snapshot) */
    size_t n_params;
    const idmap *items;             /* borrowed (new_random) or owned_items */
    idmap *owned_items;
    int32_t *popular;               /* owned (N) */
    int64_t *counts;                /* owned (N) */
    uint64_t fingerprint;
};

/* Layout of the parameters for hp and N: computes sizes and sets pointers of m into base (base may be
 * NULL to only count). Returns the number of floats. */
size_t gru4rec_layout(gru4rec *m, float *base);

static inline float gru4rec_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
