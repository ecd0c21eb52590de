/*
 * The training kernel's vectorised body, included once per instruction set by _native.c
 * (which defines KSUFFIX, the name suffix, and KVBYTES, the vector register width): every
 * function here is named K(name), i.e. name##KSUFFIX, and compiled for that target.
 */
#define K(name) KCAT(name, KSUFFIX)
#define KCAT(a, b) KCAT2(a, b)
#define KCAT2(a, b) a##b

/* One vector register of the target: KVBYTES bytes, VW floats. The products below are
 * tiles of 4 rows x VW columns: four accumulators, one load of the other operand and four
 * broadcasts per step, so that they stay in registers. */
typedef float K(vf) __attribute__((vector_size(KVBYTES)));
#define vf K(vf)
#define VW (KVBYTES / 4)

FRREG_INLINE vf K(vload)(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

FRREG_INLINE void K(vstore)(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* Every width the kernel trains is a multiple of FRREG_HIDDEN_MULTIPLE (_native.c), so every
 * row of H floats is whole vectors on every target: no scalar remainder, and the same
 * arithmetic whichever vector width runs. */
_Static_assert(FRREG_HIDDEN_MULTIPLE % VW == 0, "FRREG_HIDDEN_MULTIPLE must be whole vectors");

/* out[i, :H] = sum_k a[i * lda + k] * b[k * H + :H] for i < n: rows of a times b (K x H). */
FRREG_INLINE void K(rows_times)(const float *restrict a, int lda, int K, const float *restrict b,
                             const int H, float *restrict out, int ldo, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *a0 = a + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (int jc = 0; jc < H; jc += VW) {
            vf c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
            for (int k = 0; k < K; k++) {
                const vf w = K(vload)(b + (size_t)k * H + jc);
                c0 += a0[k] * w;
                c1 += a1[k] * w;
                c2 += a2[k] * w;
                c3 += a3[k] * w;
            }
            K(vstore)(out + (size_t)i * ldo + jc, c0);
            K(vstore)(out + (size_t)(i + 1) * ldo + jc, c1);
            K(vstore)(out + (size_t)(i + 2) * ldo + jc, c2);
            K(vstore)(out + (size_t)(i + 3) * ldo + jc, c3);
        }
    }
    for (; i < n; i++) {
        const float *a0 = a + (size_t)i * lda;
        for (int jc = 0; jc < H; jc += VW) {
            vf c0 = {0};
            for (int k = 0; k < K; k++) c0 += a0[k] * K(vload)(b + (size_t)k * H + jc);
            K(vstore)(out + (size_t)i * ldo + jc, c0);
        }
    }
}

/* out[k, :H] = sum_i a[i * lda + k] * d[i * H + :H] for k < K, i < n: a^T d, the weight
 * gradient of a layer with inputs a and output gradients d. */
FRREG_INLINE void K(transposed_times)(const float *restrict a, int lda, int K,
                                   const float *restrict d, const int H, float *restrict out,
                                   int n) {
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        for (int jc = 0; jc < H; jc += VW) {
            vf c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
            for (int i = 0; i < n; i++) {
                const vf g = K(vload)(d + (size_t)i * H + jc);
                const float *ai = a + (size_t)i * lda + k;
                c0 += ai[0] * g;
                c1 += ai[1] * g;
                c2 += ai[2] * g;
                c3 += ai[3] * g;
            }
            K(vstore)(out + (size_t)k * H + jc, c0);
            K(vstore)(out + (size_t)(k + 1) * H + jc, c1);
            K(vstore)(out + (size_t)(k + 2) * H + jc, c2);
            K(vstore)(out + (size_t)(k + 3) * H + jc, c3);
        }
    }
    for (; k < K; k++) {
        for (int jc = 0; jc < H; jc += VW) {
            vf c0 = {0};
            for (int i = 0; i < n; i++)
                c0 += a[(size_t)i * lda + k] * K(vload)(d + (size_t)i * H + jc);
            K(vstore)(out + (size_t)k * H + jc, c0);
        }
    }
}

/* GELU(z) times the dropout multiplier, into h (whose column H is the next layer's one). */
FRREG_INLINE void K(gelu_dropout)(const float *restrict z, const float *restrict m, const int H,
                               float *restrict h, int n) {
    for (int i = 0; i < n; i++) {
        const float *restrict zi = z + (size_t)i * H;
        const float *restrict mi = m + (size_t)i * H;
        float *restrict hi = h + (size_t)i * (H + 1);
        for (int j = 0; j < H; j++)
            hi[j] = 0.5f * zi[j] * (1.0f + erf_f(zi[j] * INV_SQRT2)) * mi[j];
        hi[H] = 1.0f;
    }
}

/* d *= dropout multiplier * GELU'(z), elementwise over n x H. */
FRREG_INLINE void K(through_gelu)(const float *restrict z, const float *restrict m, const int H,
                               float *restrict d, int n) {
    for (size_t e = 0; e < (size_t)n * H; e++) {
        const float cdf = 0.5f * (1.0f + erf_f(z[e] * INV_SQRT2));
        const float pdf = INV_SQRT_2PI * exp_f(-0.5f * z[e] * z[e]);
        d[e] = d[e] * m[e] * fmaf(z[e], pdf, cdf);
    }
}

/* The gradients of the mean squared error over one batch of nb rows (xb: nb x n_in1 with the
 * ones column; masks m[l]: nb x H of 0 or the kept-unit scale) for weights w[0..depth], into
 * gw[0..depth]. Layer l < depth is hidden (fan-in n_in1 for l = 0, else H + 1; fan-out H);
 * layer depth is the one-output head. */
FRREG_INLINE void K(forward_backward)(const Recipe *rc, const int nb, const float *const *w,
                                   Scratch *ws) {
    const int H = rc->hidden, H1 = H + 1, depth = rc->depth;
    const float *in = ws->xb; /* forward */
    int fan_in1 = rc->n_in1;
    for (int l = 0; l < depth; l++) {
        K(rows_times)(in, fan_in1, fan_in1, w[l], H, ws->z[l], H, nb);
        K(gelu_dropout)(ws->z[l], ws->m[l], H, ws->h[l], nb);
        in = ws->h[l];
        fan_in1 = H1;
    }
    const float *restrict top = ws->h[depth - 1], *restrict head = w[depth];
    float *restrict g = ws->g;
    const float coef = 2.0f / (float)nb; /* d(mean squared error) / d(output) */
    for (int i = 0; i < nb; i++) {
        const float *restrict h = top + (size_t)i * H1;
        /* In a fixed order on every target (a vector sum would depend on the width). */
        float out = 0.0f;
        for (int k = 0; k < H1; k++) out = fmaf(h[k], head[k], out);
        g[i] = (out - ws->yb[i]) * coef;
    }
    float *restrict gw_head = ws->gw[depth]; /* backward */
    for (int k = 0; k < H1; k++) gw_head[k] = 0.0f;
    for (int i = 0; i < nb; i++) {
        const float *restrict h = top + (size_t)i * H1;
        for (int k = 0; k < H1; k++) gw_head[k] = fmaf(h[k], g[i], gw_head[k]);
    }
    float *d = ws->gz, *next = ws->gh; /* d(loss)/d(layer l's pre-activations), and l - 1's */
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < H; j++) d[(size_t)i * H + j] = g[i] * head[j];
    for (int l = depth - 1; l >= 0; l--) {
        K(through_gelu)(ws->z[l], ws->m[l], H, d, nb);
        const float *layer_in = l ? ws->h[l - 1] : ws->xb;
        const int ld = l ? H1 : rc->n_in1;
        K(transposed_times)(layer_in, ld, ld, d, H, ws->gw[l], nb);
        if (l == 0) break;
        float *restrict wt = ws->wt; /* w[l]'s hidden rows, transposed: next = d w[l][:H]^T */
        const float *restrict wl = w[l];
        for (int k = 0; k < H; k++)
            for (int j = 0; j < H; j++) wt[(size_t)j * H + k] = wl[(size_t)k * H + j];
        K(rows_times)(d, H, H, wt, H, next, H, nb);
        float *const t = d;
        d = next;
        next = t;
    }
}

/* torch.optim.Adam's update (L2 weight decay, no amsgrad) of n parameters. */
FRREG_INLINE void K(adam)(const Recipe *rc, float step_size, float bc2_sqrt, size_t n,
                       float *restrict param, const float *restrict grad,
                       float *restrict exp_avg, float *restrict exp_avg_sq) {
    const float b1 = rc->beta1, b2 = rc->beta2, wd = rc->weight_decay, eps = rc->eps;
    for (size_t e = 0; e < n; e++) {
        const float gr = grad[e] + param[e] * wd;
        exp_avg[e] = exp_avg[e] + (1.0f - b1) * (gr - exp_avg[e]);
        exp_avg_sq[e] = exp_avg_sq[e] * b2 + (1.0f - b2) * gr * gr;
        const float denom = sqrtf(exp_avg_sq[e]) / bc2_sqrt + eps;
        param[e] = param[e] - step_size * exp_avg[e] / denom;
    }
}

/* Dropout multipliers for count = nb * H units per hidden layer, layer 0's draws first: 16-bit
 * draws, four per 64-bit output, lowest bits first; a draw below the threshold drops. */
FRREG_INLINE void K(dropout_masks)(const Recipe *rc, int count, uint64_t *s, Scratch *ws) {
    const int words = (count + 3) / 4;
    uint16_t *draws = ws->draws;
    for (int layer = 0; layer < rc->depth; layer++) {
        for (int w = 0; w < words; w++) {
            const uint64_t word = next_u64(s);
            memcpy(draws + 4 * (size_t)w, &word, sizeof word); /* little-endian: low bits first */
        }
        float *restrict m = ws->m[layer];
        const uint32_t below = rc->drop_below;
        const float scale = rc->drop_scale;
        for (int u = 0; u < count; u++) m[u] = (uint32_t)draws[u] < below ? 0.0f : scale;
    }
}

/* One epoch of one model: its layers w[l], Adam moments a[l] and s[l] (l = 0 .. depth). With a
 * trace (tests), the epoch's permutation and every step's dropout masks are copied out. */
FRREG_INLINE void K(model_epoch)(const Recipe *rc, const float *table, int n_cols, int64_t base,
                              int64_t n_train, float *const *w, float *const *a,
                              float *const *s, int64_t *step, uint64_t *rng, Scratch *ws,
                              const Trace *trace) {
    const int n_in1 = rc->n_in1, H = rc->hidden, batch = rc->batch, depth = rc->depth;
    int32_t *perm = ws->perm;
    for (int64_t r = 0; r < n_train; r++) perm[r] = (int32_t)r;
    for (int64_t r = n_train - 1; r > 0; r--) { /* Fisher-Yates */
        const int64_t j = (int64_t)bounded(rng, (uint64_t)(r + 1));
        const int32_t t = perm[r];
        perm[r] = perm[j];
        perm[j] = t;
    }
    if (trace)
        for (int64_t r = 0; r < n_train; r++) trace->perm[r] = perm[r];
    for (int64_t first = 0; first < n_train; first += batch) {
        const int nb = (int)(n_train - first < batch ? n_train - first : batch);
        for (int i = 0; i < nb; i++) {
            const float *row = table + (size_t)(base + perm[first + i]) * (size_t)n_cols;
            memcpy(ws->xb + (size_t)i * n_in1, row, sizeof(float) * (size_t)n_in1);
            ws->yb[i] = row[n_in1];
        }
        K(dropout_masks)(rc, nb * H, rng, ws);
        if (trace) /* (steps, depth, batch, H): this step's masks, nb rows of each layer */
            for (int l = 0; l < depth; l++)
                memcpy(trace->masks + ((size_t)(first / batch) * depth + l) * batch * H, ws->m[l],
                       sizeof(float) * (size_t)nb * H);
        K(forward_backward)(rc, nb, (const float *const *)w, ws);
        *step += 1;
        const double t = (double)*step;
        const float step_size = (float)(rc->lr / (1.0 - pow((double)rc->beta1, t)));
        const float bc2_sqrt = (float)sqrt(1.0 - pow((double)rc->beta2, t));
        for (int l = 0; l <= depth; l++)
            K(adam)(rc, step_size, bc2_sqrt, layer_size(rc, l), w[l], ws->gw[l], a[l], s[l]);
    }
}

static void K(group_epoch)(const Recipe *rc, const Group *gp, Scratch *ws, const Trace *trace) {
    const int layers = rc->depth + 1;
    for (int64_t m = 0; m < gp->models; m++) {
        float *w[FRREG_MAX_LAYERS], *a[FRREG_MAX_LAYERS], *s[FRREG_MAX_LAYERS];
        for (int l = 0; l < layers; l++) {
            w[l] = gp->w[l] + m * gp->width[l];
            a[l] = gp->avg[l] + m * gp->width[l];
            s[l] = gp->sq[l] + m * gp->width[l];
        }
        K(model_epoch)(rc, gp->table, gp->n_cols, gp->base[m], gp->n_train[m], w, a, s,
                    gp->step + m, gp->rng + 4 * m, ws, trace);
    }
}

static void K(one_step)(const Recipe *rc, int nb, const float *const *w, Scratch *ws) {
    K(forward_backward)(rc, nb, w, ws);
}

#undef vf
#undef VW
#undef K
#undef KCAT
#undef KCAT2
