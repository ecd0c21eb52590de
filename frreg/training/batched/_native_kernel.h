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

/* out[i, :H] = sum_k a[i * lda + k] * b[k * H + :H] for i < n: rows of a times b (K x H). */
FRREG_INLINE void K(rows_times)(const float *restrict a, int lda, int K, const float *restrict b,
                             const int H, float *restrict out, int ldo, int n) {
    if (H % VW == 0) {
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
        return;
    }
    for (int i = 0; i < n; i++) { /* any other width */
        float *restrict o = out + (size_t)i * ldo;
        for (int j = 0; j < H; j++) o[j] = 0.0f;
        for (int k = 0; k < K; k++) {
            const float x = a[(size_t)i * lda + k];
            const float *restrict w = b + (size_t)k * H;
            for (int j = 0; j < H; j++) o[j] = fmaf(x, w[j], o[j]);
        }
    }
}

/* out[k, :H] = sum_i a[i * lda + k] * d[i * H + :H] for k < K, i < n: a^T d, the weight
 * gradient of a layer with inputs a and output gradients d. */
FRREG_INLINE void K(transposed_times)(const float *restrict a, int lda, int K,
                                   const float *restrict d, const int H, float *restrict out,
                                   int n) {
    if (H % VW == 0) {
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
        return;
    }
    for (int k = 0; k < K; k++) { /* any other width */
        float *restrict o = out + (size_t)k * H;
        for (int j = 0; j < H; j++) o[j] = 0.0f;
        for (int i = 0; i < n; i++) {
            const float x = a[(size_t)i * lda + k];
            const float *restrict g = d + (size_t)i * H;
            for (int j = 0; j < H; j++) o[j] = fmaf(x, g[j], o[j]);
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

/* The gradients of the mean squared error over one batch of nb rows (xb: nb x n_in1 with
 * the ones column; masks m1, m2: nb x H of 0 or the kept-unit scale), into gw1, gw2, gw3. */
FRREG_INLINE void K(forward_backward)(const Recipe *rc, const int H, const int nb, const float *w1,
                                   const float *w2, const float *w3, Scratch *ws) {
    const int n_in1 = rc->n_in1;
    const int H1 = H + 1;
    float *restrict h2 = ws->h2, *restrict g = ws->g, *restrict gz = ws->gz;

    K(rows_times)(ws->xb, n_in1, n_in1, w1, H, ws->z1, H, nb); /* forward */
    K(gelu_dropout)(ws->z1, ws->m1, H, ws->h1, nb);
    K(rows_times)(ws->h1, H1, H1, w2, H, ws->z2, H, nb);
    K(gelu_dropout)(ws->z2, ws->m2, H, h2, nb);
    const float coef = 2.0f / (float)nb; /* d(mean squared error) / d(output) */
    for (int i = 0; i < nb; i++) {
        const float *restrict h = h2 + (size_t)i * H1;
        /* In a fixed order on every target (a vector sum would depend on the width). */
        float out = 0.0f;
        for (int k = 0; k < H1; k++) out = fmaf(h[k], w3[k], out);
        g[i] = (out - ws->yb[i]) * coef;
    }
    float *restrict gw3 = ws->gw3; /* backward */
    for (int k = 0; k < H1; k++) gw3[k] = 0.0f;
    for (int i = 0; i < nb; i++) {
        const float *restrict h = h2 + (size_t)i * H1;
        for (int k = 0; k < H1; k++) gw3[k] = fmaf(h[k], g[i], gw3[k]);
    }
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < H; j++) gz[(size_t)i * H + j] = g[i] * w3[j];
    K(through_gelu)(ws->z2, ws->m2, H, gz, nb);
    K(transposed_times)(ws->h1, H1, H1, gz, H, ws->gw2, nb);
    float *restrict w2t = ws->w2t; /* w2's hidden rows, transposed: gh = gz w2[:H]^T */
    for (int k = 0; k < H; k++)
        for (int j = 0; j < H; j++) w2t[(size_t)j * H + k] = w2[(size_t)k * H + j];
    K(rows_times)(gz, H, H, w2t, H, ws->gh, H, nb);
    K(through_gelu)(ws->z1, ws->m1, H, ws->gh, nb);
    K(transposed_times)(ws->xb, n_in1, n_in1, ws->gh, H, ws->gw1, nb);
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

/* Dropout multipliers for count = nb * H units per layer, layer 1's draws first: 16-bit
 * draws, four per 64-bit output, lowest bits first; a draw below the threshold drops. */
FRREG_INLINE void K(dropout_masks)(const Recipe *rc, int count, uint64_t *s, uint16_t *draws,
                                float *m1, float *m2) {
    const int words = (count + 3) / 4;
    float *dst[2] = {m1, m2};
    for (int layer = 0; layer < 2; layer++) {
        for (int w = 0; w < words; w++) {
            const uint64_t word = next_u64(s);
            memcpy(draws + 4 * (size_t)w, &word, sizeof word); /* little-endian: low bits first */
        }
        float *restrict m = dst[layer];
        const uint32_t below = rc->drop_below;
        const float scale = rc->drop_scale;
        for (int u = 0; u < count; u++) m[u] = (uint32_t)draws[u] < below ? 0.0f : scale;
    }
}

/* One epoch of one model (H given as a constant where it can be, for the vectoriser). */
FRREG_INLINE void K(model_epoch)(const Recipe *rc, const int H, const float *table, int n_cols,
                              int64_t base, int64_t n_train, float *w1, float *w2, float *w3,
                              float *a1, float *s1, float *a2, float *s2, float *a3, float *s3,
                              int64_t *step, uint64_t *rng, Scratch *ws) {
    const int n_in1 = rc->n_in1;
    const int batch = rc->batch;
    int32_t *perm = ws->perm;
    for (int64_t r = 0; r < n_train; r++) perm[r] = (int32_t)r;
    for (int64_t r = n_train - 1; r > 0; r--) { /* Fisher-Yates */
        const int64_t j = (int64_t)bounded(rng, (uint64_t)(r + 1));
        const int32_t t = perm[r];
        perm[r] = perm[j];
        perm[j] = t;
    }
    const size_t n1 = (size_t)n_in1 * H, n2 = (size_t)(H + 1) * H, n3 = (size_t)(H + 1);
    for (int64_t first = 0; first < n_train; first += batch) {
        const int nb = (int)(n_train - first < batch ? n_train - first : batch);
        for (int i = 0; i < nb; i++) {
            const float *row = table + (size_t)(base + perm[first + i]) * (size_t)n_cols;
            memcpy(ws->xb + (size_t)i * n_in1, row, sizeof(float) * (size_t)n_in1);
            ws->yb[i] = row[n_in1];
        }
        K(dropout_masks)(rc, nb * H, rng, ws->draws, ws->m1, ws->m2);
        K(forward_backward)(rc, H, nb, w1, w2, w3, ws);
        *step += 1;
        const double t = (double)*step;
        const float step_size = (float)(rc->lr / (1.0 - pow((double)rc->beta1, t)));
        const float bc2_sqrt = (float)sqrt(1.0 - pow((double)rc->beta2, t));
        K(adam)(rc, step_size, bc2_sqrt, n1, w1, ws->gw1, a1, s1);
        K(adam)(rc, step_size, bc2_sqrt, n2, w2, ws->gw2, a2, s2);
        K(adam)(rc, step_size, bc2_sqrt, n3, w3, ws->gw3, a3, s3);
    }
}


static void K(group_epoch)(const Recipe *rc, const Group *gp, Scratch *ws) {
    for (int64_t m = 0; m < gp->models; m++) {
        float *w[3], *a[3], *s[3];
        for (int k = 0; k < 3; k++) {
            w[k] = gp->w[k] + m * gp->width[k];
            a[k] = gp->avg[k] + m * gp->width[k];
            s[k] = gp->sq[k] + m * gp->width[k];
        }
        if (rc->hidden == 64) /* the shipped shape, with H known to the compiler */
            K(model_epoch)(rc, 64, gp->table, gp->n_cols, gp->base[m], gp->n_train[m], w[0], w[1],
                        w[2], a[0], s[0], a[1], s[1], a[2], s[2], gp->step + m,
                        gp->rng + 4 * m, ws);
        else
            K(model_epoch)(rc, rc->hidden, gp->table, gp->n_cols, gp->base[m], gp->n_train[m],
                        w[0], w[1], w[2], a[0], s[0], a[1], s[1], a[2], s[2], gp->step + m,
                        gp->rng + 4 * m, ws);
    }
}

static void K(one_step)(const Recipe *rc, int nb, const float *w1, const float *w2,
                                  const float *w3, Scratch *ws) {
    K(forward_backward)(rc, rc->hidden, nb, w1, w2, w3, ws);
}

#undef vf
#undef VW
#undef K
#undef KCAT
#undef KCAT2
