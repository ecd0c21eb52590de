/*
 * frreg's compiled training kernel: whole epochs of many small MLPs, one model at a time.
 *
 * The network is frreg's MLPConfig, (n_in + 1) -> H -> ... -> H -> 1 (depth hidden layers)
 * with exact GELU and inverted dropout after each hidden layer, trained with minibatch MSE and
 * Adam with L2 weight decay: the recipe of frreg.training.reference, step for step. Every
 * size comes with the call (the recipe tuple, built by the engine from the MLPConfig); what
 * the kernel can train is declared here once, FRREG_HIDDEN_MULTIPLE and FRREG_MAX_DEPTH,
 * refused otherwise, and read by the engine (hidden_multiple(), max_depth()) to refuse a
 * shape before training rather than run it slower. What the Python
 * engine (frreg/training/batched/engine.py) does with one batched torch op per layer for a
 * whole group of models, this file does for one model at a time, for a whole epoch per call:
 * the model's weights, moments and activations stay in the core's caches, and there is no
 * per-op dispatch. Models never share a computation, so a model's numbers depend only on its
 * own inputs and random stream (the audit relies on it).
 *
 * Randomness per model: a xoshiro256** stream, seeded by the caller from the model's own
 * torch generator. Each epoch draws a Fisher-Yates shuffle of the model's training rows
 * (Lemire's bounded integers), then seeds four more xoshiro256** streams, the epoch's dropout
 * lanes, from its next 16 outputs (through splitmix64). Per step they make depth * batch * H
 * 16-bit dropout draws, four per 64-bit word, word 4c + i from lane i: four independent
 * chains stepped as one vector, where a single stream would be one serial chain (its draws
 * were 14 % of the kernel's time). A unit is dropped when its draw is below the threshold.
 * Without dropout (a threshold of 0) there are no dropout draws and no lanes.
 *
 * GELU is 0.5 x (1 + erf(x / sqrt 2)) with erf from Abramowitz & Stegun 7.1.26 (1.5e-7 in
 * exact arithmetic; below 5e-7 in float32, a few float32 steps near 1) over an exp computed
 * with a Cody-Waite reduction and a degree-7 Taylor polynomial: both branch-free, so that
 * the compiler vectorises them. The vectorised body (_native_kernel.h) is compiled for
 * x86-64-v4 (AVX-512), v3 (AVX2, FMA) and the baseline, each with its own register width,
 * and the best the CPU has is picked when the module loads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FRREG_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------
 * Random numbers
 * ------------------------------------------------------------------------------------------ */

FRREG_INLINE uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna). */
FRREG_INLINE uint64_t next_u64(uint64_t *s) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* splitmix64's output function (Vigna): decorrelates the words that seed the dropout lanes. */
FRREG_INLINE uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

/* The dropout draws of an epoch come from this many xoshiro256** streams side by side (see
 * the top of the file). */
#define FRREG_DROPOUT_LANES 4

/* Uniform in [0, range), unbiased (Lemire's multiply-and-reject). */
FRREG_INLINE uint64_t bounded(uint64_t *s, uint64_t range) {
    __uint128_t m = (__uint128_t)next_u64(s) * range;
    uint64_t low = (uint64_t)m;
    if (low < range) {
        const uint64_t floor = (0 - range) % range;
        while (low < floor) {
            m = (__uint128_t)next_u64(s) * range;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ------------------------------------------------------------------------------------------
 * Branch-free exp and erf (vectorisable)
 * ------------------------------------------------------------------------------------------ */

FRREG_INLINE float exp_f(float x) {
    x = x < -87.0f ? -87.0f : x; /* below, exp is under float's smallest normal; ~0 is enough */
    const float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = fmaf(n, -0.693145751953125f, x); /* ln 2 in two parts (Cody-Waite) */
    r = fmaf(n, -1.428606820309417e-06f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t bits;
    memcpy(&bits, &p, sizeof bits);
    bits += (int32_t)n * (1 << 23); /* times 2^n */
    memcpy(&p, &bits, sizeof p);
    return p;
}

/* 1 / x for x > 0 by the same operations on every
 * target (so vectorisable, and byte-identical between the AVX-512 and AVX2 builds, which a
 * hardware reciprocal estimate is not): an integer first guess (relative error below 6 %),
 * then three Newton steps, each squaring the error. Within one unit in the last place of
 * 1 / x on every 97th float of the normal range (checked when this was written). */
FRREG_INLINE float recip_f(float x) {
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits = 0x7EF311C3 - bits;
    float r;
    memcpy(&r, &bits, sizeof r);
    for (int it = 0; it < 3; it++) r = fmaf(r, fmaf(-x, r, 1.0f), r);
    return r;
}

/* erf with absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26), and the exp(-x^2) it
 * computes on the way into *gauss (the normal density's shape, which GELU's derivative
 * needs: one exp serves both). */
FRREG_INLINE float erf_gauss_f(float x, float *gauss) {
    const float a = fabsf(x);
    const float t = 1.0f / fmaf(0.3275911f, a, 1.0f);
    float p = 1.061405429f;
    p = fmaf(p, t, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    *gauss = exp_f(-a * a);
    const float y = 1.0f - p * t * *gauss;
    return copysignf(y, x);
}

FRREG_INLINE float erf_f(float x) {
    float gauss;
    return erf_gauss_f(x, &gauss);
}

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* The standard normal CDF, GELU's factor: GELU(x) = x * normal_cdf_f(x). */
FRREG_INLINE float normal_cdf_f(float x) { return 0.5f * (1.0f + erf_f(x * INV_SQRT2)); }

/* GELU's derivative at x, cdf(x) + x pdf(x), with the CDF into *cdf: one exp for both (the
 * density from erf's exp(-x^2 / 2)). */
FRREG_INLINE float gelu_slope_f(float x, float *cdf) {
    float gauss;
    *cdf = 0.5f * (1.0f + erf_gauss_f(x * INV_SQRT2, &gauss));
    return fmaf(x, INV_SQRT_2PI * gauss, *cdf);
}

/* ------------------------------------------------------------------------------------------
 * One model
 * ------------------------------------------------------------------------------------------ */

/* The widths the kernel trains are the multiples of this: the floats in the widest vector
 * register compiled (AVX-512), so each row of H units is whole vectors on every target. */
#define FRREG_HIDDEN_MULTIPLE 16
/* The widest hidden layer it trains. */
#define FRREG_MAX_HIDDEN 4096
/* The most hidden layers it trains (its per-layer pointers are fixed arrays). */
#define FRREG_MAX_DEPTH 16
#define FRREG_MAX_LAYERS (FRREG_MAX_DEPTH + 1)

typedef struct {
    int n_in1;  /* inputs plus the bias column of ones */
    int hidden; /* H, a multiple of FRREG_HIDDEN_MULTIPLE */
    int depth;  /* hidden layers, 1 .. FRREG_MAX_DEPTH */
    int batch;
    uint32_t drop_below; /* a 16-bit draw below this drops the unit */
    float drop_scale;    /* 1 / (1 - p): the multiplier of a kept unit */
    float lr, weight_decay, beta1, beta2, eps;
} Recipe;

/* Layer l's fan-in plus one (the bias row). */
FRREG_INLINE int layer_rows(const Recipe *rc, int l) { return l == 0 ? rc->n_in1 : rc->hidden + 1; }

/* Layer l's fan-out: H for a hidden layer, 1 for the head. */
FRREG_INLINE int layer_cols(const Recipe *rc, int l) { return l == rc->depth ? 1 : rc->hidden; }

/* The floats of layer l: the (fan_in + 1, fan_out) matrix, bias row last. */
FRREG_INLINE size_t layer_size(const Recipe *rc, int l) {
    return (size_t)layer_rows(rc, l) * (size_t)layer_cols(rc, l);
}

/* A model's input columns that are zero in every one of its training rows (the one-hot slots
 * of encoders its corpus does not have: ten of the codec block's fourteen in a two-encoder
 * corpus) add nothing to any sum they enter, so its first layer works on the others only:
 * xb holds the n_x used columns cols[0 .. n_x - 1] (in increasing order), w0c the rows of
 * the first layer's weights they meet, and gw0c their gradients, which go back to the rows
 * cols[] of gw[0]. While the weights and gradients are finite this changes no bit:
 * - a first-layer sum skips terms 0 x w: fma(0, w, c) is c for a nonzero c and at most
 *   flips the sign of a zero one, which the next nonzero term erases; every sum ends with
 *   the bias row's term (the ones column, always used), so the sums could differ only in
 *   the sign of an exact zero that the bias and every term before it made;
 * - an unused row's gradient was a sum of 0 x d from +0, which is +0 (a zero product added
 *   to +0 stays +0), as it stays here.
 * Once training has diverged (inf or NaN in the gradients), the unused rows no longer turn
 * NaN with the rest. With every column used, n_x = n_in1 and the layer's own buffers are
 * used as they are. */
typedef struct {
    float *xb, *yb, *g, *gz, *gh, *wt;
    int n_x;      /* columns of xb: the used ones */
    int32_t *cols; /* their indices among the n_in1, increasing */
    float *w0c, *gw0c; /* first-layer weights and gradients of the used columns (n_x x H) */
    float *h[FRREG_MAX_DEPTH], *m[FRREG_MAX_DEPTH], *slope[FRREG_MAX_DEPTH];
    float *gw[FRREG_MAX_LAYERS];
    int32_t *perm;
    uint16_t *draws; /* 16 * ceil(batch * H / 16): whole 4-lane draws */
    uint64_t lanes[4 * FRREG_DROPOUT_LANES]; /* the epoch's dropout streams: word j of lane i at [4j + i] */
} Scratch;

/* Where a one-model epoch copies its draws (tests): perm (n_train,) and masks
 * (steps, depth, batch, H), each step's nb rows of each layer. */
typedef struct {
    int64_t *perm;
    float *masks;
} Trace;

typedef struct {
    const float *table;
    int n_cols;
    const uint8_t *used; /* (models, n_in1): nonzero where a model's training rows use a column;
                            NULL: every column */
    const int64_t *base, *n_train;
    float *w[FRREG_MAX_LAYERS], *avg[FRREG_MAX_LAYERS], *sq[FRREG_MAX_LAYERS];
    int64_t width[FRREG_MAX_LAYERS];
    int64_t *step;
    uint64_t *rng;
    int64_t models;
} Group;

/* ------------------------------------------------------------------------------------------
 * The kernel, once per instruction set, and the choice among them at load time
 * ------------------------------------------------------------------------------------------ */

typedef void (*group_epoch_fn)(const Recipe *, const Group *, Scratch *, const Trace *);
typedef void (*one_step_fn)(const Recipe *, int, const float *const *, Scratch *);
typedef void (*predict_fn)(const Recipe *, const float *, int64_t, const float *const *, Scratch *,
                           double *);

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FRREG_BASELINE_ONLY)
#define FRREG_X86_TARGETS 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define KSUFFIX _v4
#define KVBYTES 64
#include "_native_kernel.h"
#undef KSUFFIX
#undef KVBYTES
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define KSUFFIX _v3
#define KVBYTES 32
#include "_native_kernel.h"
#undef KSUFFIX
#undef KVBYTES
#pragma GCC pop_options
#endif
#define KSUFFIX _base
#define KVBYTES 16
#include "_native_kernel.h"
#undef KSUFFIX
#undef KVBYTES

/* Subnormal floats are flushed to zero while the kernel runs (MXCSR's flush-to-zero and
 * denormals-are-zero bits, set on entry and restored on exit, so nothing else in the thread
 * sees them). GELU's tails make them: exp_f(-87), its floor, is 1.6e-38, and the products
 * of it in erf_f and in GELU's derivative fall below float's smallest normal (1.2e-38); on
 * Intel cores each such operand or result is a microcode assist of about a hundred cycles.
 * What they contribute is below a normal float's last place wherever it is added, so the
 * predictions come out the same (a 9-fold run of 20 and 40 epochs, byte for byte), and the
 * kernel is ~1.45x faster (28.5 -> 19.9 ms CPU per model-epoch, benchmarks/bench_train.py's
 * corpus). The flags act alike on SSE, AVX2 and AVX-512 instructions, so the AVX-512 and
 * AVX2 builds still agree bit for bit. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
typedef unsigned int FpState;
static FpState subnormals_off(void) {
    const FpState saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return saved;
}
static void fp_restore(FpState saved) { _mm_setcsr(saved); }
#else
typedef int FpState;
static FpState subnormals_off(void) { return 0; }
static void fp_restore(FpState saved) { (void)saved; }
#endif

static group_epoch_fn group_epoch = group_epoch_base;
static one_step_fn one_step = one_step_base;
static predict_fn predict = predict_base;
#ifdef FRREG_X86_TARGETS
static const char *target_name = "baseline"; /* x86-64 without AVX2 and FMA: slow */
#else
static const char *target_name = "generic";
#endif

/* The best target the CPU has; FRREG_NATIVE_TARGET=x86-64-v3 or =baseline asks for a lower
 * one (to time or test it on a bigger CPU), never a higher one. */
static void pick_target(void) {
#ifdef FRREG_X86_TARGETS
    const char *cap = getenv("FRREG_NATIVE_TARGET");
    const int max_level = !cap ? 4 : strcmp(cap, "x86-64-v3") == 0 ? 3 : strcmp(cap, "baseline") == 0 ? 0 : 4;
    __builtin_cpu_init();
    if (max_level >= 4 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
        group_epoch = group_epoch_v4;
        one_step = one_step_v4;
        predict = predict_v4;
        target_name = "x86-64-v4";
    } else if (max_level >= 3 && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) {
        group_epoch = group_epoch_v3;
        one_step = one_step_v3;
        predict = predict_v3;
        target_name = "x86-64-v3";
    }
#endif
}

/* ------------------------------------------------------------------------------------------
 * Python bindings
 * ------------------------------------------------------------------------------------------ */

static int need(Py_buffer *b, Py_ssize_t items, Py_ssize_t itemsize, const char *what) {
    if (b->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", what, items * itemsize,
                     b->len);
        return 0;
    }
    return 1;
}

static void *alloc_scratch(Scratch *ws, const Recipe *rc, int64_t max_train) {
    const size_t B = (size_t)rc->batch, h = (size_t)rc->hidden, D = (size_t)rc->depth;
    const size_t n_in1 = (size_t)rc->n_in1;
    size_t floats = B * n_in1 + 2 * B + 2 * B * h + h * h + D * (B * (h + 1) + 2 * B * h) +
                    2 * n_in1 * h;
    for (int l = 0; l <= rc->depth; l++) floats += layer_size(rc, l);
    float *f = calloc(floats, sizeof(float));
    int32_t *perm = calloc((size_t)(max_train > 0 ? max_train : 1), sizeof(int32_t));
    uint16_t *draws = calloc(16 * ((B * h + 15) / 16), sizeof(uint16_t));
    int32_t *cols = calloc(n_in1, sizeof(int32_t));
    if (!f || !perm || !draws || !cols) {
        free(f);
        free(perm);
        free(draws);
        free(cols);
        return NULL;
    }
    ws->draws = draws;
    ws->cols = cols;
    ws->n_x = rc->n_in1;
    for (int k = 0; k < rc->n_in1; k++) cols[k] = k;
    float *p = f;
#define TAKE(field, count) (ws->field = p, p += (count))
    TAKE(xb, B * (size_t)rc->n_in1);
    TAKE(yb, B);
    TAKE(g, B);
    TAKE(gz, B * h);
    TAKE(gh, B * h);
    TAKE(wt, h * h);
    TAKE(w0c, n_in1 * h);
    TAKE(gw0c, n_in1 * h);
    for (int l = 0; l < rc->depth; l++) {
        TAKE(h[l], B * (h + 1));
        TAKE(m[l], B * h);
        TAKE(slope[l], B * h);
    }
    for (int l = 0; l <= rc->depth; l++) TAKE(gw[l], layer_size(rc, l));
#undef TAKE
    ws->perm = perm;
    return f;
}

static void free_scratch(Scratch *ws, void *block) {
    free(block);
    free(ws->perm);
    free(ws->draws);
    free(ws->cols);
}

/* alloc_scratch, or NULL with a MemoryError set. */
static void *scratch_or_error(Scratch *ws, const Recipe *rc, int64_t max_train) {
    void *block = alloc_scratch(ws, rc, max_train);
    if (!block) PyErr_NoMemory();
    return block;
}

/* Release what a binding took: the n_b buffers of b that were filled, n_layers layer buffers. */
static void release_buffers(Py_buffer *b, int n_b, Py_buffer *layers, int n_layers) {
    for (int i = 0; i < n_b; i++)
        if (b[i].obj) PyBuffer_Release(&b[i]);
    for (int i = 0; i < n_layers; i++) PyBuffer_Release(&layers[i]);
}

static int parse_recipe(PyObject *tuple, Recipe *rc) {
    /* (n_in1, hidden, depth, batch, drop_below, drop_scale, lr, weight_decay, beta1, beta2, eps) */
    unsigned int drop_below;
    if (!PyArg_ParseTuple(tuple, "iiiiIffffff", &rc->n_in1, &rc->hidden, &rc->depth, &rc->batch,
                          &drop_below, &rc->drop_scale, &rc->lr, &rc->weight_decay, &rc->beta1,
                          &rc->beta2, &rc->eps))
        return 0;
    rc->drop_below = drop_below;
    if (rc->n_in1 < 1 || rc->batch < 1 || drop_below > 65536) {
        PyErr_SetString(PyExc_ValueError, "bad recipe: sizes must be >= 1, drop_below <= 65536");
        return 0;
    }
    if (rc->hidden < 1 || rc->hidden > FRREG_MAX_HIDDEN || rc->hidden % FRREG_HIDDEN_MULTIPLE ||
        rc->depth < 1 || rc->depth > FRREG_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError,
                     "bad recipe: hidden %d, depth %d; the kernel trains hidden widths that are "
                     "multiples of %d (up to %d) at depth 1 to %d",
                     rc->hidden, rc->depth, FRREG_HIDDEN_MULTIPLE, FRREG_MAX_HIDDEN,
                     FRREG_MAX_DEPTH);
        return 0;
    }
    return 1;
}

/* Buffers of every layer from a tuple of depth + 1 objects, each C-contiguous float32 with at
 * least `items[l]` (times `models`) floats, writable if asked; `taken` counts those to release. */
static int layer_buffers(PyObject *seq, const char *what, int writable, int layers,
                         Py_buffer *out, int *taken) {
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != layers) {
        PyErr_Format(PyExc_ValueError, "%s: expected a tuple of %d layer buffers", what, layers);
        return 0;
    }
    for (int l = 0; l < layers; l++) {
        const int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(seq, l), &out[l], flags) < 0) return 0;
        *taken += 1;
    }
    return 1;
}

/* train_epoch(table, base, n_train, weights, avgs, sqs, step, rng, recipe, trace=None,
 * used=None): every buffer C-contiguous; table float32 (rows, n_in1 + 1): inputs, a one, the
 * target; base/n_train/step int64 (models,); weights, avgs, sqs tuples of depth + 1 float32
 * buffers (models, width_l); rng uint64 (models, 4); trace (tests, one model): (perm int64
 * (n_train,), masks float32 (steps, depth, batch, hidden)); used uint8 (models, n_in1): zero
 * only for a column that is zero in every training row of that model (the caller's promise;
 * see Scratch), None: every column is used. Updates weights, moments, steps and streams. */
static PyObject *train_epoch(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"table", "base", "n_train", "weights", "avgs", "sqs", "step",
                               "rng", "recipe", "trace", "used", NULL};
    Py_buffer b[6];
    Py_buffer layers[3 * FRREG_MAX_LAYERS];
    Py_buffer traced[2];
    int n_layers = 0, n_traced = 0;
    memset(b, 0, sizeof b);
    PyObject *seqs[3], *recipe, *trace_obj = Py_None, *used_obj = Py_None;
    Recipe rc;
    PyObject *result = NULL;
    void *scratch = NULL;
    Scratch ws;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*OOOw*w*O!|OO", keywords, &b[0], &b[1],
                                     &b[2], &seqs[0], &seqs[1], &seqs[2], &b[3], &b[4],
                                     &PyTuple_Type, &recipe, &trace_obj, &used_obj))
        goto done;
    if (!parse_recipe(recipe, &rc)) goto done;
    const int L = rc.depth + 1;
    if (!layer_buffers(seqs[0], "weights", 1, L, layers, &n_layers) ||
        !layer_buffers(seqs[1], "avgs", 1, L, layers + L, &n_layers) ||
        !layer_buffers(seqs[2], "sqs", 1, L, layers + 2 * L, &n_layers))
        goto done;
    const Py_ssize_t models = b[2].len / (Py_ssize_t)sizeof(int64_t);
    const int n_cols = rc.n_in1 + 1;
    Group gp;
    gp.models = models;
    gp.n_cols = n_cols;
    gp.table = (const float *)b[0].buf;
    gp.base = (const int64_t *)b[1].buf;
    gp.n_train = (const int64_t *)b[2].buf;
    for (int l = 0; l < L; l++) {
        Py_buffer *w = &layers[l];
        if (models < 1 || w->len % (models * (Py_ssize_t)sizeof(float)) != 0) {
            PyErr_SetString(PyExc_ValueError, "layer buffers must be (models, width) float32");
            goto done;
        }
        gp.width[l] = w->len / (models * (Py_ssize_t)sizeof(float));
        if ((size_t)gp.width[l] < layer_size(&rc, l)) {
            PyErr_Format(PyExc_ValueError, "layer %d: width %lld < %zu", l,
                         (long long)gp.width[l], layer_size(&rc, l));
            goto done;
        }
        if (!need(&layers[L + l], models * gp.width[l], sizeof(float), "exp_avg") ||
            !need(&layers[2 * L + l], models * gp.width[l], sizeof(float), "exp_avg_sq"))
            goto done;
        gp.w[l] = (float *)w->buf;
        gp.avg[l] = (float *)layers[L + l].buf;
        gp.sq[l] = (float *)layers[2 * L + l].buf;
    }
    if (!need(&b[1], models, sizeof(int64_t), "base") ||
        !need(&b[3], models, sizeof(int64_t), "step") ||
        !need(&b[4], models * 4, sizeof(uint64_t), "rng"))
        goto done;
    if (b[0].len % ((Py_ssize_t)sizeof(float) * n_cols) != 0) {
        PyErr_SetString(PyExc_ValueError, "table must be (rows, n_in1 + 1) float32");
        goto done;
    }
    const int64_t rows = b[0].len / ((Py_ssize_t)sizeof(float) * n_cols);
    int64_t max_train = 0;
    for (Py_ssize_t m = 0; m < models; m++) {
        if (gp.n_train[m] < 1 || gp.base[m] < 0 || gp.base[m] + gp.n_train[m] > rows ||
            gp.n_train[m] > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "model %zd: rows [%lld, +%lld) outside the table", m,
                         (long long)gp.base[m], (long long)gp.n_train[m]);
            goto done;
        }
        if (gp.n_train[m] > max_train) max_train = gp.n_train[m];
    }
    gp.step = (int64_t *)b[3].buf;
    gp.rng = (uint64_t *)b[4].buf;
    gp.used = NULL;
    if (used_obj != Py_None) {
        if (PyObject_GetBuffer(used_obj, &b[5], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
        if (b[5].itemsize != 1) {
            PyErr_SetString(PyExc_ValueError, "used: expected uint8 (models, n_in1)");
            goto done;
        }
        if (!need(&b[5], models * rc.n_in1, sizeof(uint8_t), "used")) goto done;
        gp.used = (const uint8_t *)b[5].buf;
    }
    Trace trace;
    const Trace *tp = NULL;
    if (trace_obj != Py_None) {
        PyObject *perm_obj, *masks_obj;
        if (!PyArg_ParseTuple(trace_obj, "OO", &perm_obj, &masks_obj)) goto done;
        if (PyObject_GetBuffer(perm_obj, &traced[0], PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
            goto done;
        n_traced++;
        if (PyObject_GetBuffer(masks_obj, &traced[1], PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
            goto done;
        n_traced++;
        const Py_ssize_t steps = (Py_ssize_t)((gp.n_train[0] + rc.batch - 1) / rc.batch);
        if (models != 1) {
            PyErr_SetString(PyExc_ValueError, "trace: only a one-model group is traced");
            goto done;
        }
        if (!need(&traced[0], (Py_ssize_t)gp.n_train[0], sizeof(int64_t), "trace perm") ||
            !need(&traced[1], steps * rc.depth * rc.batch * rc.hidden, sizeof(float),
                  "trace masks"))
            goto done;
        trace.perm = (int64_t *)traced[0].buf;
        trace.masks = (float *)traced[1].buf;
        tp = &trace;
    }
    scratch = scratch_or_error(&ws, &rc, max_train);
    if (!scratch) goto done;
    Py_BEGIN_ALLOW_THREADS
    const FpState fp = subnormals_off();
    group_epoch(&rc, &gp, &ws, tp);
    fp_restore(fp);
    Py_END_ALLOW_THREADS
    free_scratch(&ws, scratch);
    scratch = NULL;
    result = Py_None;
    Py_INCREF(result);
done:
    if (scratch) free_scratch(&ws, scratch);
    release_buffers(b, 6, layers, n_layers);
    for (int i = 0; i < n_traced; i++) PyBuffer_Release(&traced[i]);
    return result;
}

/* forward_backward(xb, yb, masks, weights, grads, recipe): one step's gradients for
 * nb = len(yb) rows, for tests against autograd; masks a tuple of depth (nb, H) float32
 * buffers, weights and grads tuples of depth + 1 (fan_in + 1, fan_out) float32 buffers. */
static PyObject *forward_backward_py(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b[2];
    Py_buffer layers[3 * FRREG_MAX_LAYERS];
    int n_layers = 0;
    memset(b, 0, sizeof b);
    PyObject *seqs[3], *recipe;
    Recipe rc;
    PyObject *result = NULL;
    void *scratch = NULL;
    Scratch ws;
    if (!PyArg_ParseTuple(args, "y*y*OOOO!", &b[0], &b[1], &seqs[0], &seqs[1], &seqs[2],
                          &PyTuple_Type, &recipe))
        goto done;
    if (!parse_recipe(recipe, &rc)) goto done;
    const int D = rc.depth, L = D + 1;
    if (!layer_buffers(seqs[0], "masks", 0, D, layers, &n_layers) ||
        !layer_buffers(seqs[1], "weights", 0, L, layers + D, &n_layers) ||
        !layer_buffers(seqs[2], "grads", 1, L, layers + D + L, &n_layers))
        goto done;
    const Py_ssize_t H = rc.hidden, nb = b[1].len / (Py_ssize_t)sizeof(float);
    if (nb < 1 || nb > rc.batch || !need(&b[0], nb * rc.n_in1, sizeof(float), "xb"))
        goto done;
    const float *w[FRREG_MAX_LAYERS];
    for (int l = 0; l < D; l++)
        if (!need(&layers[l], nb * H, sizeof(float), "mask")) goto done;
    for (int l = 0; l < L; l++) {
        if (!need(&layers[D + l], (Py_ssize_t)layer_size(&rc, l), sizeof(float), "weights") ||
            !need(&layers[D + L + l], (Py_ssize_t)layer_size(&rc, l), sizeof(float), "grads"))
            goto done;
        w[l] = layers[D + l].buf;
    }
    scratch = scratch_or_error(&ws, &rc, 1);
    if (!scratch) goto done;
    memcpy(ws.xb, b[0].buf, (size_t)b[0].len);
    memcpy(ws.yb, b[1].buf, (size_t)b[1].len);
    for (int l = 0; l < D; l++) memcpy(ws.m[l], layers[l].buf, (size_t)layers[l].len);
    const FpState fp = subnormals_off();
    one_step(&rc, (int)nb, w, &ws);
    fp_restore(fp);
    for (int l = 0; l < L; l++)
        memcpy(layers[D + L + l].buf, ws.gw[l], (size_t)layers[D + L + l].len);
    result = Py_None;
    Py_INCREF(result);
done:
    if (scratch) free_scratch(&ws, scratch);
    release_buffers(b, 2, layers, n_layers);
    return result;
}

/* predict(x, layers, recipe, out): one model's eval-mode outputs for x float32 (rows,
 * n_in1 - 1) into out float64 (rows,), the training's own forward pass (K(predict)): the same
 * bits on the AVX-512 and AVX2 targets, where torch's float32 products and GELU differ by
 * instruction set in the last bits; layers a tuple of depth + 1 float32 buffers of
 * (fan_in + 1, fan_out) each. */
static PyObject *predict_py(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b[2];
    Py_buffer layers[FRREG_MAX_LAYERS];
    int n_layers = 0;
    memset(b, 0, sizeof b);
    PyObject *seq, *recipe;
    Recipe rc;
    PyObject *result = NULL;
    void *scratch = NULL;
    Scratch ws;
    if (!PyArg_ParseTuple(args, "y*OO!w*", &b[0], &seq, &PyTuple_Type, &recipe, &b[1])) goto done;
    if (!parse_recipe(recipe, &rc)) goto done;
    const int L = rc.depth + 1;
    if (!layer_buffers(seq, "layers", 0, L, layers, &n_layers)) goto done;
    const float *w[FRREG_MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        if (!need(&layers[l], (Py_ssize_t)layer_size(&rc, l), sizeof(float), "layer")) goto done;
        w[l] = layers[l].buf;
    }
    const Py_ssize_t rows = b[1].len / (Py_ssize_t)sizeof(double);
    if (!need(&b[1], rows, sizeof(double), "out") ||
        !need(&b[0], rows * (rc.n_in1 - 1), sizeof(float), "x"))
        goto done;
    scratch = scratch_or_error(&ws, &rc, 1);
    if (!scratch) goto done;
    Py_BEGIN_ALLOW_THREADS
    const FpState fp = subnormals_off();
    predict(&rc, b[0].buf, rows, w, &ws, b[1].buf);
    fp_restore(fp);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    if (scratch) free_scratch(&ws, scratch);
    release_buffers(b, 2, layers, n_layers);
    return result;
}

/* gelu(z, out) and erf(x, out): the kernel's own functions, for tests. */
static PyObject *map_py(PyObject *args, int which) {
    Py_buffer in, out;
    if (!PyArg_ParseTuple(args, "y*w*", &in, &out)) return NULL;
    if (in.len != out.len || in.len % (Py_ssize_t)sizeof(float)) {
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "in and out must be float32 of one length");
        return NULL;
    }
    const float *x = in.buf;
    float *y = out.buf;
    for (Py_ssize_t e = 0; e < in.len / (Py_ssize_t)sizeof(float); e++)
        y[e] = which == 0 ? erf_f(x[e]) : which == 1 ? exp_f(x[e])
                                                     : x[e] * normal_cdf_f(x[e]);
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyObject *erf_py(PyObject *self, PyObject *args) { (void)self; return map_py(args, 0); }
static PyObject *exp_py(PyObject *self, PyObject *args) { (void)self; return map_py(args, 1); }
static PyObject *gelu_py(PyObject *self, PyObject *args) { (void)self; return map_py(args, 2); }

static PyObject *target_py(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(target_name);
}

static PyObject *hidden_multiple_py(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromLong(FRREG_HIDDEN_MULTIPLE);
}

static PyObject *max_hidden_py(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromLong(FRREG_MAX_HIDDEN);
}

static PyObject *max_depth_py(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromLong(FRREG_MAX_DEPTH);
}

static PyMethodDef methods[] = {
    {"train_epoch", (PyCFunction)(void (*)(void))train_epoch, METH_VARARGS | METH_KEYWORDS,
     "Train every model of a group for one epoch."},
    {"forward_backward", forward_backward_py, METH_VARARGS, "One step's gradients (tests)."},
    {"predict", predict_py, METH_VARARGS, "One model's eval-mode outputs, float64."},
    {"erf", erf_py, METH_VARARGS, "The kernel's erf, elementwise (tests)."},
    {"exp", exp_py, METH_VARARGS, "The kernel's exp, elementwise (tests)."},
    {"gelu", gelu_py, METH_VARARGS, "The kernel's GELU, elementwise (tests)."},
    {"target", target_py, METH_NOARGS, "The instruction set the kernel runs with."},
    {"hidden_multiple", hidden_multiple_py, METH_NOARGS,
     "The kernel trains hidden widths that are multiples of this."},
    {"max_hidden", max_hidden_py, METH_NOARGS, "The widest hidden layer the kernel trains."},
    {"max_depth", max_depth_py, METH_NOARGS, "The most hidden layers the kernel trains."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "frreg's compiled training kernel.", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    pick_target();
    return PyModule_Create(&module);
}
