/*
 * frreg's compiled training kernel: whole epochs of many small MLPs, one model at a time.
 *
 * The network is frreg's fr_regressor_v2 shape, (n_in + 1) -> H -> H -> 1 with exact GELU
 * and inverted dropout after each hidden layer, trained with minibatch MSE and Adam with L2
 * weight decay: the recipe of frreg.training.reference, step for step. What the Python
 * engine (frreg/training/batched/engine.py) does with one batched torch op per layer for a
 * whole group of models, this file does for one model at a time, for a whole epoch per call:
 * the model's weights, moments and activations stay in the core's caches, and there is no
 * per-op dispatch. Models never share a computation, so a model's numbers depend only on its
 * own inputs and random stream (the audit relies on it).
 *
 * Randomness per model: a xoshiro256** stream, seeded by the caller from the model's own
 * torch generator. Each epoch draws a Fisher-Yates shuffle of the model's training rows
 * (Lemire's bounded integers), then, per step, 2 * batch * H 16-bit dropout draws (four per
 * 64-bit output): a unit is dropped when its draw is below the threshold.
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

/* erf with absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26). */
FRREG_INLINE float erf_f(float x) {
    const float a = fabsf(x);
    const float t = 1.0f / fmaf(0.3275911f, a, 1.0f);
    float p = 1.061405429f;
    p = fmaf(p, t, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    const float y = 1.0f - p * t * exp_f(-a * a);
    return copysignf(y, x);
}

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* ------------------------------------------------------------------------------------------
 * One model
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    int n_in1;  /* inputs plus the bias column of ones */
    int hidden; /* H */
    int batch;
    uint32_t drop_below; /* a 16-bit draw below this drops the unit */
    float drop_scale;    /* 1 / (1 - p): the multiplier of a kept unit */
    float lr, weight_decay, beta1, beta2, eps;
} Recipe;

typedef struct {
    float *xb, *yb, *z1, *h1, *z2, *h2, *g, *gz, *gh, *w2t, *m1, *m2, *gw1, *gw2, *gw3;
    int32_t *perm;
    uint16_t *draws; /* 4 * ceil(batch * H / 4) */
} Scratch;

typedef struct {
    const float *table;
    int n_cols;
    const int64_t *base, *n_train;
    float *w[3], *avg[3], *sq[3];
    int64_t width[3];
    int64_t *step;
    uint64_t *rng;
    int64_t models;
} Group;

/* ------------------------------------------------------------------------------------------
 * The kernel, once per instruction set, and the choice among them at load time
 * ------------------------------------------------------------------------------------------ */

typedef void (*group_epoch_fn)(const Recipe *, const Group *, Scratch *);
typedef void (*one_step_fn)(const Recipe *, int, const float *, const float *, const float *,
                            Scratch *);

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

static group_epoch_fn group_epoch = group_epoch_base;
static one_step_fn one_step = one_step_base;
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
        target_name = "x86-64-v4";
    } else if (max_level >= 3 && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) {
        group_epoch = group_epoch_v3;
        one_step = one_step_v3;
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

static void *alloc_scratch(Scratch *ws, int n_in1, int H, int batch, int64_t max_train) {
    const size_t B = (size_t)batch, h = (size_t)H;
    const size_t floats = B * n_in1 + B + 4 * B * (h + 1) + B + 2 * B * h + h * h + 2 * B * h +
                          (size_t)n_in1 * h + (h + 1) * h + (h + 1);
    float *f = calloc(floats, sizeof(float));
    int32_t *perm = calloc((size_t)(max_train > 0 ? max_train : 1), sizeof(int32_t));
    uint16_t *draws = calloc(4 * ((B * h + 3) / 4), sizeof(uint16_t));
    if (!f || !perm || !draws) {
        free(f);
        free(perm);
        free(draws);
        return NULL;
    }
    ws->draws = draws;
    float *p = f;
#define TAKE(name, count) (ws->name = p, p += (count))
    TAKE(xb, B * n_in1);
    TAKE(yb, B);
    TAKE(z1, B * (h + 1));
    TAKE(h1, B * (h + 1));
    TAKE(z2, B * (h + 1));
    TAKE(h2, B * (h + 1));
    TAKE(g, B);
    TAKE(gz, B * h);
    TAKE(gh, B * h);
    TAKE(w2t, h * h);
    TAKE(m1, B * h);
    TAKE(m2, B * h);
    TAKE(gw1, (size_t)n_in1 * h);
    TAKE(gw2, (h + 1) * h);
    TAKE(gw3, h + 1);
#undef TAKE
    ws->perm = perm;
    return f;
}

static int parse_recipe(PyObject *tuple, Recipe *rc) {
    /* (n_in1, hidden, batch, drop_below, drop_scale, lr, weight_decay, beta1, beta2, eps) */
    unsigned int drop_below;
    if (!PyArg_ParseTuple(tuple, "iiiIffffff", &rc->n_in1, &rc->hidden, &rc->batch, &drop_below,
                          &rc->drop_scale, &rc->lr, &rc->weight_decay, &rc->beta1, &rc->beta2,
                          &rc->eps))
        return 0;
    rc->drop_below = drop_below;
    if (rc->n_in1 < 1 || rc->hidden < 1 || rc->hidden > 4096 || rc->batch < 1 ||
        drop_below > 65536) {
        PyErr_SetString(PyExc_ValueError, "bad recipe: sizes must be >= 1, drop_below <= 65536");
        return 0;
    }
    return 1;
}

#define N_EPOCH_BUFFERS 14

/* train_epoch(table, base, n_train, w1, w2, w3, avg1, sq1, avg2, sq2, avg3, sq3, step, rng,
 *             recipe): every buffer C-contiguous; table float32 (rows, n_in1 + 1): inputs, a
 * one, the target; base/n_train/step int64 (models,); the layer and moment buffers float32
 * (models, width_k); rng uint64 (models, 4). Updates weights, moments, steps and streams. */
static PyObject *train_epoch(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b[N_EPOCH_BUFFERS];
    memset(b, 0, sizeof b);
    PyObject *recipe;
    Recipe rc;
    PyObject *result = NULL;
    void *scratch = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*w*w*w*w*w*w*w*w*w*O!", &b[0], &b[1], &b[2], &b[3],
                          &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10], &b[11], &b[12],
                          &b[13], &PyTuple_Type, &recipe))
        goto done;
    if (!parse_recipe(recipe, &rc)) goto done;
    const Py_ssize_t models = b[2].len / (Py_ssize_t)sizeof(int64_t);
    const int n_cols = rc.n_in1 + 1;
    const Py_ssize_t H = rc.hidden;
    Group gp;
    gp.models = models;
    gp.n_cols = n_cols;
    gp.table = (const float *)b[0].buf;
    gp.base = (const int64_t *)b[1].buf;
    gp.n_train = (const int64_t *)b[2].buf;
    const Py_ssize_t used[3] = {rc.n_in1 * H, (H + 1) * H, H + 1};
    for (int k = 0; k < 3; k++) {
        if (models < 1 || b[3 + k].len % (models * (Py_ssize_t)sizeof(float)) != 0) {
            PyErr_SetString(PyExc_ValueError, "layer buffers must be (models, width) float32");
            goto done;
        }
        gp.width[k] = b[3 + k].len / (models * (Py_ssize_t)sizeof(float));
        if (gp.width[k] < used[k]) {
            PyErr_Format(PyExc_ValueError, "layer %d: width %lld < %zd", k,
                         (long long)gp.width[k], used[k]);
            goto done;
        }
        if (!need(&b[6 + 2 * k], models * gp.width[k], sizeof(float), "exp_avg") ||
            !need(&b[7 + 2 * k], models * gp.width[k], sizeof(float), "exp_avg_sq"))
            goto done;
        gp.w[k] = (float *)b[3 + k].buf;
        gp.avg[k] = (float *)b[6 + 2 * k].buf;
        gp.sq[k] = (float *)b[7 + 2 * k].buf;
    }
    if (!need(&b[1], models, sizeof(int64_t), "base") ||
        !need(&b[12], models, sizeof(int64_t), "step") ||
        !need(&b[13], models * 4, sizeof(uint64_t), "rng"))
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
    gp.step = (int64_t *)b[12].buf;
    gp.rng = (uint64_t *)b[13].buf;
    Scratch ws;
    scratch = alloc_scratch(&ws, rc.n_in1, rc.hidden, rc.batch, max_train);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    group_epoch(&rc, &gp, &ws);
    Py_END_ALLOW_THREADS
    free(ws.perm);
    free(ws.draws);
    result = Py_None;
    Py_INCREF(result);
done:
    free(scratch);
    for (int i = 0; i < N_EPOCH_BUFFERS; i++)
        if (b[i].obj) PyBuffer_Release(&b[i]);
    return result;
}

/* forward_backward(xb, yb, m1, m2, w1, w2, w3, gw1, gw2, gw3, recipe): one step's gradients
 * for nb = len(yb) rows, for tests against autograd. */
static PyObject *forward_backward_py(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b[10];
    memset(b, 0, sizeof b);
    PyObject *recipe;
    Recipe rc;
    PyObject *result = NULL;
    void *scratch = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*w*w*w*O!", &b[0], &b[1], &b[2], &b[3], &b[4],
                          &b[5], &b[6], &b[7], &b[8], &b[9], &PyTuple_Type, &recipe))
        goto done;
    if (!parse_recipe(recipe, &rc)) goto done;
    const Py_ssize_t H = rc.hidden, nb = b[1].len / (Py_ssize_t)sizeof(float);
    if (nb < 1 || nb > rc.batch || !need(&b[0], nb * rc.n_in1, sizeof(float), "xb") ||
        !need(&b[2], nb * H, sizeof(float), "m1") || !need(&b[3], nb * H, sizeof(float), "m2") ||
        !need(&b[4], rc.n_in1 * H, sizeof(float), "w1") ||
        !need(&b[5], (H + 1) * H, sizeof(float), "w2") ||
        !need(&b[6], H + 1, sizeof(float), "w3") ||
        !need(&b[7], rc.n_in1 * H, sizeof(float), "gw1") ||
        !need(&b[8], (H + 1) * H, sizeof(float), "gw2") ||
        !need(&b[9], H + 1, sizeof(float), "gw3"))
        goto done;
    Scratch ws;
    scratch = alloc_scratch(&ws, rc.n_in1, rc.hidden, rc.batch, 1);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(ws.xb, b[0].buf, (size_t)b[0].len);
    memcpy(ws.yb, b[1].buf, (size_t)b[1].len);
    memcpy(ws.m1, b[2].buf, (size_t)b[2].len);
    memcpy(ws.m2, b[3].buf, (size_t)b[3].len);
    one_step(&rc, (int)nb, b[4].buf, b[5].buf, b[6].buf, &ws);
    memcpy(b[7].buf, ws.gw1, (size_t)b[7].len);
    memcpy(b[8].buf, ws.gw2, (size_t)b[8].len);
    memcpy(b[9].buf, ws.gw3, (size_t)b[9].len);
    free(ws.perm);
    free(ws.draws);
    result = Py_None;
    Py_INCREF(result);
done:
    free(scratch);
    for (int i = 0; i < 10; i++)
        if (b[i].obj) PyBuffer_Release(&b[i]);
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
                                                     : 0.5f * x[e] * (1.0f + erf_f(x[e] * INV_SQRT2));
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

static PyMethodDef methods[] = {
    {"train_epoch", train_epoch, METH_VARARGS, "Train every model of a group for one epoch."},
    {"forward_backward", forward_backward_py, METH_VARARGS, "One step's gradients (tests)."},
    {"erf", erf_py, METH_VARARGS, "The kernel's erf, elementwise (tests)."},
    {"exp", exp_py, METH_VARARGS, "The kernel's exp, elementwise (tests)."},
    {"gelu", gelu_py, METH_VARARGS, "The kernel's GELU, elementwise (tests)."},
    {"target", target_py, METH_NOARGS, "The instruction set the kernel runs with."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "frreg's compiled training kernel.", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    pick_target();
    return PyModule_Create(&module);
}
