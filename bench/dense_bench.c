/* bench/dense_bench.c - the vectorised activations of core/dense against plain libm loops, and
 * dense_gemm against the naive triple loop, each checked for agreement before it is timed.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I. $(pkg-config --cflags openblas) bench/dense_bench.c \
 *      core/dense.c core/err.c $(pkg-config --libs openblas) -lm -o /tmp/dense_bench
 *   /tmp/dense_bench
 *
 * Prints the median (and min/max) over 9 rounds of ns per element (activations, L1/L2-resident
 * 4096-float rows) or per call (gemm, GRU-like shape B=32, 3H=300, K=E+H=200).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dense.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID,
                  &t); /* CPU time of this thread: stable on a shared machine */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void libm_sigmoid(int n, const float *x, float *y)
{
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (v >= 0) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}
static void libm_tanh(int n, const float *x, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}
static void libm_softmax(int n, const float *x, float *y)
{
    float m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int i = 0; i < n; i++)
        s += (y[i] = expf(x[i] - m));
    for (int i = 0; i < n; i++)
        y[i] /= s;
}
static void fast_softmax(int n, const float *x, float *y)
{
    memcpy(y, x, sizeof(float) * (size_t)n);
    dense_softmax_rows(1, n, y, n);
}

typedef void (*act_fn)(int, const float *, float *);

static double time_act(act_fn f, int n, const float *x, float *y, double *mn, double *mx)
{
    double t[9];
    int reps = 2000;
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        for (int k = 0; k < reps; k++)
            f(n, x, y);
        t[r] = (now() - t0) / reps / n * 1e9;
    }
    qsort(t, 9, sizeof t[0], cmp_d);
    *mn = t[0];
    *mx = t[8];
    return t[4];
}

int main(void)
{
    dense_set_threads(1); /* the product runs on this thread, so its CPU time is the whole cost */
    enum { N = 4096 };
    static float x[N], y1[N], y2[N];
    for (int i = 0; i < N; i++)
        x[i] = -12.0f + 24.0f * (float)i / N;
    struct {
        const char *name;
        act_fn ref, fast;
    } acts[] = {{"sigmoid", libm_sigmoid, dense_sigmoid},
                {"tanh", libm_tanh, dense_tanh},
                {"softmax", libm_softmax, fast_softmax}};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        acts[a].ref(N, x, y1);
        acts[a].fast(N, x, y2);
        double maxrel = 0;
        for (int i = 0; i < N; i++)
            if (y1[i] != 0)
                maxrel = fmax(maxrel, fabs((double)y2[i] - y1[i]) / fabs((double)y1[i]));
        if (maxrel > 1e-6)
            return fprintf(stderr, "%s: fast and libm differ by %g\n", acts[a].name, maxrel), 1;
        double mn1, mx1, mn2, mx2;
        double tr = time_act(acts[a].ref, N, x, y1, &mn1, &mx1),
               tf = time_act(acts[a].fast, N, x, y2, &mn2, &mx2);
        printf("%-8s libm %.2f ns/elt (%.2f..%.2f)  dense %.2f ns/elt (%.2f..%.2f)  x%.1f  max rel "
               "diff %.1e\n",
               acts[a].name, tr, mn1, mx1, tf, mn2, mx2, tr / tf, maxrel);
    }

    /* gemm: GRU-like input projection, checked against the naive loop */
    enum { B = 32, H3 = 300, K = 200 };
    float *A = malloc(sizeof(float) * B * K), *W = malloc(sizeof(float) * K * H3);
    float *C = malloc(sizeof(float) * B * H3), *R = malloc(sizeof(float) * B * H3);
    for (int i = 0; i < B * K; i++)
        A[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    for (int i = 0; i < K * H3; i++)
        W[i] = (float)((i * 53) % 103) / 103.0f - 0.5f;
    double t[9];
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        for (int k = 0; k < 20; k++)
            for (int i = 0; i < B; i++)
                for (int j = 0; j < H3; j++) {
                    float s = 0;
                    for (int q = 0; q < K; q++)
                        s += A[i * K + q] * W[q * H3 + j];
                    R[i * H3 + j] = s;
                }
        t[r] = (now() - t0) / 20 * 1e6;
    }
    qsort(t, 9, sizeof t[0], cmp_d);
    double tn = t[4];
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        for (int k = 0; k < 200; k++)
            dense_gemm(0, 0, B, H3, K, 1.0f, A, K, W, H3, 0.0f, C, H3);
        t[r] = (now() - t0) / 200 * 1e6;
    }
    qsort(t, 9, sizeof t[0], cmp_d);
    for (int i = 0; i < B * H3; i++)
        if (fabsf(C[i] - R[i]) > 1e-3f) return fprintf(stderr, "gemm differs at %d\n", i), 1;
    printf("gemm (%d,%d)x(%d,%d): naive %.1f us, dense_gemm %.1f us (%.2f..%.2f), %.1f GFLOP/s\n",
           B, K, K, H3, tn, t[4], t[0], t[8], 2.0 * B * H3 * K / (t[4] * 1e3));
    free(A);
    free(W);
    free(C);
    free(R);
    return 0;
}
