/*
 * The training kernel's vectorised body, included once per instruction set by _native.c
 * (which defines KSUFFIX, the name suffix, and KVBYTES, the vector register width): every
 * function here is named K(name), i.e. name##KSUFFIX, and compiled for that target.
 */
#define K(name) KCAT(name, KSUFFIX)
#define KCAT(a, b) KCAT2(a, b)
#define KCAT2(a, b) a##b

/* One vector register of the target: KVBYTES bytes, VW floats. */
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

/* The products below are tiles of up to TR rows x TC vectors of output: TR x TC accumulators
 * in registers, TC loads of one operand and TR broadcasts of the other per step of the sum,
 * enough independent FMAs to keep both FMA ports busy. The tile is what the target's
 * register file holds beside them: 4 x 4 of AVX-512's 32 registers (a whole 64-unit row),
 * 6 x 2 of AVX2's 16. Rows left over go two and then one at a time. Each output element is
 * still one sum in increasing k from zero, whatever the tile, so the tiling changes no
 * number: the 4 x 1 tiles they replaced gave the same bits. */
#if KVBYTES == 64
#define TR 4
#define TC 4
#else
#define TR 6
#define TC 2
#endif

/* A hidden layer's activation, applied in the tiles of the product that computes its
 * pre-activations (which are never stored: a pass over them afterwards cost the kernel
 * ~2 %): the dropout masks m (n x H) in; h (n x (H + 1), its last column the next layer's
 * ones) and slope (n x H) out. NULL in rows_times for a plain product. */
typedef struct {
    const float *m;
    float *h, *slope;
} K(Act);

/* GELU(z) times the dropout multiplier into h, and the dropout multiplier times GELU's
 * derivative (what the backward pass multiplies by) into slope, for n values of one row. */
FRREG_INLINE void K(gelu_row)(const float *restrict z, const float *restrict m,
                              float *restrict h, float *restrict slope, const int n) {
    for (int j = 0; j < n; j++) {
        float cdf;
        const float s = gelu_slope_f(z[j], &cdf);
        h[j] = z[j] * cdf * m[j];
        slope[j] = m[j] * s;
    }
}

/* The tile of out[i0 + r, jc + q * VW ...] (r < R, q < C) of rows_times; with an activation,
 * not stored but put through it (rows i0 + r, columns jc ...). */
FRREG_INLINE void K(rows_tile)(const float *restrict a, int lda, int K, const float *restrict b,
                            const int H, float *restrict out, int ldo, int i0, int jc,
                            const int R, const int C, const K(Act) *act) {
    vf c[TR][TC];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < C; q++) c[r][q] = (vf){0};
    for (int k = 0; k < K; k++) {
        vf w[TC];
        for (int q = 0; q < C; q++) w[q] = K(vload)(b + (size_t)k * H + jc + q * VW);
        for (int r = 0; r < R; r++) {
            const float ar = a[(size_t)(i0 + r) * lda + k];
            for (int q = 0; q < C; q++) c[r][q] += ar * w[q];
        }
    }
    if (!act) {
        for (int r = 0; r < R; r++)
            for (int q = 0; q < C; q++) K(vstore)(out + (size_t)(i0 + r) * ldo + jc + q * VW, c[r][q]);
        return;
    }
    for (int r = 0; r < R; r++) {
        float z[TC * VW];
        for (int q = 0; q < C; q++) K(vstore)(z + q * VW, c[r][q]);
        const size_t i = (size_t)(i0 + r);
        K(gelu_row)(z, act->m + i * H + jc, act->h + i * (H + 1) + jc, act->slope + i * H + jc,
                    C * VW);
    }
}

/* The tiles of rows i0 .. i0 + R - 1 across all H columns. */
FRREG_INLINE void K(rows_strip)(const float *restrict a, int lda, int K, const float *restrict b,
                             const int H, float *restrict out, int ldo, int i0, const int R,
                             const K(Act) *act) {
    int jc = 0;
    for (; jc + TC * VW <= H; jc += TC * VW)
        K(rows_tile)(a, lda, K, b, H, out, ldo, i0, jc, R, TC, act);
    for (; jc < H; jc += VW) K(rows_tile)(a, lda, K, b, H, out, ldo, i0, jc, R, 1, act);
}

/* out[i, :H] = sum_k a[i * lda + k] * b[k * H + :H] for i < n: rows of a times b (K x H);
 * with an activation, out is not written: the products go through it instead. */
FRREG_INLINE void K(rows_times)(const float *restrict a, int lda, int K, const float *restrict b,
                             const int H, float *restrict out, int ldo, int n,
                             const K(Act) *act) {
    int i = 0;
    for (; i + TR <= n; i += TR) K(rows_strip)(a, lda, K, b, H, out, ldo, i, TR, act);
    for (; i + 2 <= n; i += 2) K(rows_strip)(a, lda, K, b, H, out, ldo, i, 2, act);
    for (; i < n; i++) K(rows_strip)(a, lda, K, b, H, out, ldo, i, 1, act);
    if (act)
        for (i = 0; i < n; i++) act->h[(size_t)i * (H + 1) + H] = 1.0f;
}

/* The tile of out[k0 + r, jc + q * VW ...] (r < R, q < C) of transposed_times. */
FRREG_INLINE void K(transposed_tile)(const float *restrict a, int lda, const float *restrict d,
                                  const int H, float *restrict out, int n, int k0, int jc,
                                  const int R, const int C) {
    vf c[TR][TC];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < C; q++) c[r][q] = (vf){0};
    for (int i = 0; i < n; i++) {
        vf g[TC];
        for (int q = 0; q < C; q++) g[q] = K(vload)(d + (size_t)i * H + jc + q * VW);
        const float *ai = a + (size_t)i * lda + k0;
        for (int r = 0; r < R; r++)
            for (int q = 0; q < C; q++) c[r][q] += ai[r] * g[q];
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < C; q++) K(vstore)(out + (size_t)(k0 + r) * H + jc + q * VW, c[r][q]);
}

/* The tiles of output rows k0 .. k0 + R - 1 across all H columns. */
FRREG_INLINE void K(transposed_strip)(const float *restrict a, int lda, const float *restrict d,
                                   const int H, float *restrict out, int n, int k0, const int R) {
    int jc = 0;
    for (; jc + TC * VW <= H; jc += TC * VW)
        K(transposed_tile)(a, lda, d, H, out, n, k0, jc, R, TC);
    for (; jc < H; jc += VW) K(transposed_tile)(a, lda, d, H, out, n, k0, jc, R, 1);
}

/* out[k, :H] = sum_i a[i * lda + k] * d[i * H + :H] for k < K, i < n: a^T d, the weight
 * gradient of a layer with inputs a and output gradients d. */
FRREG_INLINE void K(transposed_times)(const float *restrict a, int lda, int K,
                                   const float *restrict d, const int H, float *restrict out,
                                   int n) {
    int k = 0;
    for (; k + TR <= K; k += TR) K(transposed_strip)(a, lda, d, H, out, n, k, TR);
    for (; k + 2 <= K; k += 2) K(transposed_strip)(a, lda, d, H, out, n, k, 2);
    for (; k < K; k++) K(transposed_strip)(a, lda, d, H, out, n, k, 1);
}

/* d *= slope (the forward pass's dropout multiplier times GELU's derivative), over n x H. */
FRREG_INLINE void K(through_gelu)(const float *restrict slope, const int H, float *restrict d,
                               int n) {
    for (size_t e = 0; e < (size_t)n * H; e++) d[e] *= slope[e];
}

/* An integer vector of the target's width: the lane indices of a shuffle. */
typedef int32_t K(vi) __attribute__((vector_size(KVBYTES)));

/* The lane indices of one butterfly stage of distance d (a power of two below VW) on rows
 * a, c of a VW x VW block: lo keeps a's lanes whose bit d is clear and takes c's lanes with
 * it set from c's lane j - d; hi the mirror. Constant expressions, so that the compiler
 * sees every shuffle's pattern and picks its instruction (masks computed at run time cost
 * registers and a general two-source permute per shuffle). */
#define TLO(j, d) (((j) & (d)) ? VW + (j) - (d) : (j))
#define THI(j, d) (((j) & (d)) ? VW + (j) : (j) + (d))
#if KVBYTES == 64
#define TMASK(F, d)                                                                              \
    {F(0, d),  F(1, d),  F(2, d),  F(3, d),  F(4, d),  F(5, d),  F(6, d),  F(7, d),              \
     F(8, d),  F(9, d),  F(10, d), F(11, d), F(12, d), F(13, d), F(14, d), F(15, d)}
#elif KVBYTES == 32
#define TMASK(F, d) {F(0, d), F(1, d), F(2, d), F(3, d), F(4, d), F(5, d), F(6, d), F(7, d)}
#else
#define TMASK(F, d) {F(0, d), F(1, d), F(2, d), F(3, d)}
#endif

/* One butterfly stage of distance d over the block's rows r[0 .. VW - 1]. */
#define TSTAGE(d)                                                                                \
    for (int i = 0; i < VW; i++)                                                                 \
        if (!(i & (d))) {                                                                        \
            const vf a = r[i], c = r[i + (d)];                                                   \
            r[i] = __builtin_shuffle(a, c, (K(vi))TMASK(TLO, d));                                \
            r[i + (d)] = __builtin_shuffle(a, c, (K(vi))TMASK(THI, d));                          \
        }

/* wt = w^T for the H x H matrix w (H a multiple of VW), one VW x VW block at a time: each
 * block's VW rows go through log2(VW) butterfly stages of two-vector shuffles, the stage
 * of distance d swapping the off-diagonal d x d sub-blocks, instead of H * H scalar
 * stores (a tenth of the kernel's time). Values only move, so no number changes. */
FRREG_INLINE void K(transpose)(const float *restrict w, const int H, float *restrict wt) {
    for (int k0 = 0; k0 < H; k0 += VW)
        for (int j0 = 0; j0 < H; j0 += VW) {
            vf r[VW];
            for (int i = 0; i < VW; i++) r[i] = K(vload)(w + (size_t)(k0 + i) * H + j0);
#if KVBYTES == 64
            TSTAGE(8)
#endif
#if KVBYTES >= 32
            TSTAGE(4)
#endif
            TSTAGE(2)
            TSTAGE(1)
            for (int i = 0; i < VW; i++) K(vstore)(wt + (size_t)(j0 + i) * H + k0, r[i]);
        }
}
#undef TSTAGE
#undef TMASK
#undef TLO
#undef THI

/* The forward pass of one batch of nb rows (xb: nb x n_x, the used columns of the inputs with
 * the ones column; masks m[l]: nb x H of 0 or the kept-unit scale) through weights w[0..depth]:
 * each hidden layer's units into h[l] (and GELU's slopes), the head's outputs into g. */
FRREG_INLINE void K(forward)(const Recipe *rc, const int nb, const float *const *w, Scratch *ws) {
    const int H = rc->hidden, H1 = H + 1, depth = rc->depth, n_x = ws->n_x;
    const int compact = n_x < rc->n_in1; /* some columns unused: see Scratch */
    if (compact)
        for (int c = 0; c < n_x; c++)
            memcpy(ws->w0c + (size_t)c * H, w[0] + (size_t)ws->cols[c] * H, sizeof(float) * H);
    const float *in = ws->xb;
    int fan_in1 = n_x;
    for (int l = 0; l < depth; l++) {
        const K(Act) act = {ws->m[l], ws->h[l], ws->slope[l]}; /* GELU in the product's tiles */
        K(rows_times)(in, fan_in1, fan_in1, l || !compact ? w[l] : ws->w0c, H, NULL, H, nb, &act);
        in = ws->h[l];
        fan_in1 = H1;
    }
    const float *restrict top = ws->h[depth - 1], *restrict head = w[depth];
    float *restrict g = ws->g;
    /* Each row's output in a fixed order on every target (a vector sum would depend on the
     * width), eight rows' sums interleaved so that their chains of FMAs overlap. */
    int i0 = 0;
    for (; i0 + 8 <= nb; i0 += 8) {
        float out[8] = {0};
        for (int k = 0; k < H1; k++)
            for (int r = 0; r < 8; r++) out[r] = fmaf(top[(size_t)(i0 + r) * H1 + k], head[k], out[r]);
        for (int r = 0; r < 8; r++) g[i0 + r] = out[r];
    }
    for (; i0 < nb; i0++) {
        const float *restrict h = top + (size_t)i0 * H1;
        float out = 0.0f;
        for (int k = 0; k < H1; k++) out = fmaf(h[k], head[k], out);
        g[i0] = out;
    }
}

/* The gradients of the mean squared error over one batch of nb rows (see K(forward)) for
 * weights w[0..depth], into gw[0..depth]. Layer l < depth is hidden (fan-in n_in1 for l = 0,
 * else H + 1; fan-out H); layer depth is the one-output head. */
FRREG_INLINE void K(forward_backward)(const Recipe *rc, const int nb, const float *const *w,
                                   Scratch *ws) {
    const int H = rc->hidden, H1 = H + 1, depth = rc->depth, n_x = ws->n_x;
    const int compact = n_x < rc->n_in1;
    K(forward)(rc, nb, w, ws);
    const float *restrict top = ws->h[depth - 1], *restrict head = w[depth];
    float *restrict g = ws->g;
    const float coef = 2.0f / (float)nb; /* d(mean squared error) / d(output) */
    for (int i = 0; i < nb; i++) g[i] = (g[i] - ws->yb[i]) * coef;
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
        K(through_gelu)(ws->slope[l], H, d, nb);
        const float *layer_in = l ? ws->h[l - 1] : ws->xb;
        const int ld = l ? H1 : n_x;
        K(transposed_times)(layer_in, ld, ld, d, H, l || !compact ? ws->gw[l] : ws->gw0c, nb);
        if (l == 0) {
            if (compact)
                for (int c = 0; c < n_x; c++)
                    memcpy(ws->gw[0] + (size_t)ws->cols[c] * H, ws->gw0c + (size_t)c * H,
                           sizeof(float) * H);
            break;
        }
        float *restrict wt = ws->wt; /* w[l]'s hidden rows, transposed: next = d w[l][:H]^T */
        const float *restrict wl = w[l];
        K(transpose)(wl, H, wt);
        K(rows_times)(d, H, H, wt, H, next, H, nb, NULL);
        float *const t = d;
        d = next;
        next = t;
    }
}

/* torch.optim.Adam's update (L2 weight decay, no amsgrad) of n parameters, with torch's
 * two divisions, by the square root of the second moment's bias correction and by the
 * denominator, replaced: the first by a product with its reciprocal (inv_bc2_sqrt, once per
 * step), the second by recip_f. Three divider operations per vector (a square root and two
 * divisions, the divider's throughput: most of Adam's time, a third of the kernel's) become
 * one, and each result is within a unit or two in the last place of torch's. */
FRREG_INLINE void K(adam)(const Recipe *rc, float step_size, float inv_bc2_sqrt, size_t n,
                       float *restrict param, const float *restrict grad,
                       float *restrict exp_avg, float *restrict exp_avg_sq) {
    const float b1 = rc->beta1, b2 = rc->beta2, wd = rc->weight_decay, eps = rc->eps;
    for (size_t e = 0; e < n; e++) {
        const float gr = grad[e] + param[e] * wd;
        exp_avg[e] = exp_avg[e] + (1.0f - b1) * (gr - exp_avg[e]);
        exp_avg_sq[e] = exp_avg_sq[e] * b2 + (1.0f - b2) * gr * gr;
        const float denom = fmaf(sqrtf(exp_avg_sq[e]), inv_bc2_sqrt, eps);
        param[e] = fmaf(-(step_size * exp_avg[e]), recip_f(denom), param[e]);
    }
}

/* Four 64-bit words at once, one per dropout lane: xoshiro256** on a vector of lanes (the
 * same integer operations on every target, so the same bits). */
typedef uint64_t K(u64x4) __attribute__((vector_size(8 * FRREG_DROPOUT_LANES)));
#define u64x4 K(u64x4)

/* Seed the epoch's dropout lanes from the model's stream s: 16 outputs through splitmix64,
 * word j of lane i from output 4j + i; a lane whose words are all zero (the one state
 * xoshiro cannot leave) gets a one. */
FRREG_INLINE void K(seed_lanes)(uint64_t *s, Scratch *ws) {
    for (int e = 0; e < 4 * FRREG_DROPOUT_LANES; e++) ws->lanes[e] = splitmix64(next_u64(s));
    for (int i = 0; i < FRREG_DROPOUT_LANES; i++)
        if (!(ws->lanes[i] | ws->lanes[FRREG_DROPOUT_LANES + i] |
              ws->lanes[2 * FRREG_DROPOUT_LANES + i] | ws->lanes[3 * FRREG_DROPOUT_LANES + i]))
            ws->lanes[i] = 1;
}

/* Dropout multipliers for count = nb * H units per hidden layer (a multiple of 16), layer 0's
 * draws first: 16-bit draws, four per 64-bit word, lowest bits first, words 4c .. 4c + 3 from
 * the lanes' c-th step; a draw below the threshold drops. */
FRREG_INLINE void K(dropout_masks)(const Recipe *rc, int count, Scratch *ws) {
    u64x4 s0, s1, s2, s3;
    memcpy(&s0, ws->lanes, sizeof s0);
    memcpy(&s1, ws->lanes + FRREG_DROPOUT_LANES, sizeof s1);
    memcpy(&s2, ws->lanes + 2 * FRREG_DROPOUT_LANES, sizeof s2);
    memcpy(&s3, ws->lanes + 3 * FRREG_DROPOUT_LANES, sizeof s3);
    const int steps = (count + 4 * FRREG_DROPOUT_LANES - 1) / (4 * FRREG_DROPOUT_LANES);
    uint16_t *draws = ws->draws;
    for (int layer = 0; layer < rc->depth; layer++) {
        for (int c = 0; c < steps; c++) {
            const u64x4 x = s1 * 5;
            const u64x4 out = ((x << 7) | (x >> 57)) * 9;
            const u64x4 t = s1 << 17;
            s2 ^= s0;
            s3 ^= s1;
            s1 ^= s2;
            s0 ^= s3;
            s2 ^= t;
            s3 = (s3 << 45) | (s3 >> 19);
            memcpy(draws + 4 * FRREG_DROPOUT_LANES * (size_t)c, &out, sizeof out);
        }
        float *restrict m = ws->m[layer];
        const uint32_t below = rc->drop_below;
        const float scale = rc->drop_scale;
        for (int u = 0; u < count; u++) m[u] = (uint32_t)draws[u] < below ? 0.0f : scale;
    }
    memcpy(ws->lanes, &s0, sizeof s0);
    memcpy(ws->lanes + FRREG_DROPOUT_LANES, &s1, sizeof s1);
    memcpy(ws->lanes + 2 * FRREG_DROPOUT_LANES, &s2, sizeof s2);
    memcpy(ws->lanes + 3 * FRREG_DROPOUT_LANES, &s3, sizeof s3);
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
    if (rc->drop_below) K(seed_lanes)(rng, ws);
    const int n_x = ws->n_x;
    const int32_t *restrict cols = ws->cols;
    for (int64_t first = 0; first < n_train; first += batch) {
        const int nb = (int)(n_train - first < batch ? n_train - first : batch);
        for (int i = 0; i < nb; i++) {
            const float *row = table + (size_t)(base + perm[first + i]) * (size_t)n_cols;
            float *restrict x = ws->xb + (size_t)i * n_x;
            if (n_x == n_in1)
                memcpy(x, row, sizeof(float) * (size_t)n_in1);
            else
                for (int c = 0; c < n_x; c++) x[c] = row[cols[c]];
            ws->yb[i] = row[n_in1];
        }
        if (rc->drop_below) K(dropout_masks)(rc, nb * H, ws); /* else all ones (group_epoch) */
        if (trace) /* (steps, depth, batch, H): this step's masks, nb rows of each layer */
            for (int l = 0; l < depth; l++)
                memcpy(trace->masks + ((size_t)(first / batch) * depth + l) * batch * H, ws->m[l],
                       sizeof(float) * (size_t)nb * H);
        K(forward_backward)(rc, nb, (const float *const *)w, ws);
        *step += 1;
        const double t = (double)*step;
        const float step_size = (float)(rc->lr / (1.0 - pow((double)rc->beta1, t)));
        const float inv_bc2_sqrt = (float)(1.0 / sqrt(1.0 - pow((double)rc->beta2, t)));
        for (int l = 0; l <= depth; l++)
            K(adam)(rc, step_size, inv_bc2_sqrt, layer_size(rc, l), w[l], ws->gw[l], a[l], s[l]);
    }
}

static void K(group_epoch)(const Recipe *rc, const Group *gp, Scratch *ws, const Trace *trace) {
    const int layers = rc->depth + 1;
    if (!rc->drop_below) /* no dropout: no draws, every unit kept (drop_scale is 1) */
        for (int l = 0; l < rc->depth; l++)
            for (size_t u = 0; u < (size_t)rc->batch * rc->hidden; u++) ws->m[l][u] = rc->drop_scale;
    for (int64_t m = 0; m < gp->models; m++) {
        float *w[FRREG_MAX_LAYERS], *a[FRREG_MAX_LAYERS], *s[FRREG_MAX_LAYERS];
        for (int l = 0; l < layers; l++) {
            w[l] = gp->w[l] + m * gp->width[l];
            a[l] = gp->avg[l] + m * gp->width[l];
            s[l] = gp->sq[l] + m * gp->width[l];
        }
        ws->n_x = 0; /* the model's used columns (see Scratch) */
        for (int k = 0; k < rc->n_in1; k++)
            if (!gp->used || gp->used[(size_t)m * rc->n_in1 + k]) ws->cols[ws->n_x++] = k;
        if (ws->n_x < rc->n_in1) /* the unused rows of its first layer's gradient: +0 */
            memset(ws->gw[0], 0, sizeof(float) * layer_size(rc, 0));
        K(model_epoch)(rc, gp->table, gp->n_cols, gp->base[m], gp->n_train[m], w, a, s,
                    gp->step + m, gp->rng + 4 * m, ws, trace);
    }
}

static void K(one_step)(const Recipe *rc, int nb, const float *const *w, Scratch *ws) {
    K(forward_backward)(rc, nb, w, ws);
}

/* One model's eval-mode outputs for rows x (rows x n_in1 - 1, without the ones column): the
 * training's own forward pass with every unit kept (multiplier 1) and every column used (a
 * fresh scratch's), a batch of rows at a time, so a prediction is the same bits on every
 * target that trains the same bits. */
static void K(predict)(const Recipe *rc, const float *x, int64_t rows, const float *const *w,
                       Scratch *ws, double *out) {
    const int n_in1 = rc->n_in1, n_in = n_in1 - 1, batch = rc->batch;
    for (int l = 0; l < rc->depth; l++)
        for (size_t u = 0; u < (size_t)batch * rc->hidden; u++) ws->m[l][u] = 1.0f;
    for (int64_t first = 0; first < rows; first += batch) {
        const int nb = (int)(rows - first < batch ? rows - first : batch);
        for (int i = 0; i < nb; i++) {
            memcpy(ws->xb + (size_t)i * n_in1, x + (size_t)(first + i) * n_in,
                   sizeof(float) * (size_t)n_in);
            ws->xb[(size_t)i * n_in1 + n_in] = 1.0f;
        }
        K(forward)(rc, nb, w, ws);
        for (int i = 0; i < nb; i++) out[first + i] = (double)ws->g[i];
    }
}

#undef vf
#undef u64x4
#undef VW
#undef TR
#undef TC
#undef K
#undef KCAT
#undef KCAT2
