/* Fused in-batch softmax cross-entropy for `Retrieval` training on CPUs (wrapper: fused_softmax.py).
 *
 * For queries Q [B, D] and candidates C [N, D] (N >= B; row i's positive is column i), with logits
 *     z[i][j] = scale * (q_i . c_j) + bias[j],   z[i][j] = -inf where row_keys[i] == col_keys[j], j != i,
 * one call writes every row's loss L_i = logsumexp_j z[i][j] - z[i][i], the gradients of
 * sum_i w_i L_i: dQ [B, D], dC [N, D], dbias [N] (and dL/dw_i = L_i), and what the in-batch metrics
 * need: per row, the number of negatives (columns other than i with z > -inf) and how many of them
 * outscore the positive (z[i][j] > z[i][i]). The [B, N] logits are never
 * written to memory: each thread takes a block of R query rows, computes its R x N logits into a buffer
 * that stays in L2, turns them into the gradient of the logits in place (softmax minus the one-hot label,
 * times the row's weight), and multiplies that block into dQ (its own rows) and into a per-thread dC,
 * summed at the end. The TensorFlow ops it replaces (matmul, softmax cross-entropy, two matmuls for the
 * gradient) each pass the [B, N] matrix through memory, 268 MB per pass at B = N = 8192.
 *
 * Row blocks are split over threads statically and the per-thread dC are added in thread order, so a
 * result depends only on the inputs and the thread count (training runs are reproducible).
 *
 * Code paths: AVX-512 and AVX2 + FMA (chosen at run time), and portable C (the reference the tests
 * compare them with; slower than TensorFlow's ops, so not used by default).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../_kernel_common.h"


#if !defined(_WIN32)
#include <pthread.h>
#define SK_PTHREADS 1
#endif

#define SK_R 12          /* query rows per block */
#define SK_W 32          /* candidate columns per packed panel */
#define SK_CB 256        /* candidates per tile of the gradient steps: the tile and its dC rows stay in L2 */
#define SK_MAX_THREADS 256
#define SK_PARTS_BYTES ((size_t)256 << 20) /* per-thread dC shares, all threads together */
#define SK_WORK_PER_THREAD ((size_t)1 << 22)


typedef struct {
    const float *Q, *C;        /* [B, D], [N, D] row-major */
    const float *cpack;        /* [NP / W][D][W], zero padded (AVX-512 path) */
    const float *bias;         /* [NP]: the caller's bias or 0, -inf in the padding columns */
    const float *weights;      /* [B] */
    const int64_t *row_keys;   /* [B] or NULL (no accidental-hit removal) */
    const int64_t *col_keys;   /* [NP] or NULL */
    const float *zero_row;     /* [D] zeros: the rows of a last, partial block */
    float scale;
    size_t B, N, NP, D, DP, blocks; /* DP: D rounded up to 32 */
    float *loss, *dQ;          /* outputs [B], [B, D] */
    float *outscoring, *negatives; /* outputs [B] */
    float *dC_parts, *dbias_parts, *zbufs, *dq_parts;  /* per thread: [NP, D], [NP], [R, NP], [R, DP] */
    int threads, isa;
} Job;

/* ---------------------------------------------------------------- the logits' gradient, row by row
 * z holds one row's logits over NP columns; on return it holds the gradient of w * L with respect to the
 * scaled dot products (scale * (softmax - onehot) * w), and dbias += w * (softmax - onehot). */
static void finish_row_portable(const Job *job, size_t i, float *z, float *dbias) {
    const size_t NP = job->NP;
    const float positive = z[i];
    float m = -INFINITY;
    size_t above = 0, negatives = 0;
    for (size_t c = 0; c < NP; ++c) {
        m = z[c] > m ? z[c] : m;
        above += z[c] > positive;
        negatives += z[c] > -INFINITY;
    }
    job->outscoring[i] = (float)above;
    job->negatives[i] = (float)(negatives - (positive > -INFINITY));
    double s = 0.0;
    for (size_t c = 0; c < NP; ++c) {
        z[c] = expf(z[c] - m);
        s += z[c];
    }
    job->loss[i] = m + (float)log(s) - positive;
    const float w = job->weights[i], ws = w / (float)s;
    for (size_t c = 0; c < NP; ++c) z[c] *= ws;
    z[i] -= w; /* the label's column */
    for (size_t c = 0; c < NP; ++c) {
        dbias[c] += z[c];
        z[c] *= job->scale;
    }
}

static void block_portable(const Job *job, size_t block, float *zbuf, float *dC, float *dbias) {
    const size_t D = job->D, N = job->N, NP = job->NP, i0 = block * SK_R;
    for (size_t r = 0; r < SK_R; ++r) {
        const size_t i = i0 + r;
        float *z = zbuf + r * NP;
        if (i >= job->B) {
            memset(z, 0, NP * sizeof(float));
            continue;
        }
        const float *q = job->Q + i * D;
        for (size_t c = 0; c < NP; ++c) {
            float acc = 0.0f;
            if (c < N)
                for (size_t d = 0; d < D; ++d) acc += q[d] * job->C[c * D + d];
            z[c] = c < N ? acc * job->scale + job->bias[c] : -INFINITY;
            if (job->row_keys && c != i && job->col_keys[c] == job->row_keys[i]) z[c] = -INFINITY;
        }
        finish_row_portable(job, i, z, dbias);
    }
    for (size_t r = 0; r < SK_R && i0 + r < job->B; ++r) {
        const float *g = zbuf + r * NP;
        float *dq = job->dQ + (i0 + r) * D;
        for (size_t d = 0; d < D; ++d) {
            float acc = 0.0f;
            for (size_t c = 0; c < N; ++c) acc += g[c] * job->C[c * D + d];
            dq[d] = acc;
        }
    }
    for (size_t c = 0; c < N; ++c)
        for (size_t r = 0; r < SK_R && i0 + r < job->B; ++r) {
            const float g = zbuf[r * NP + c], *q = job->Q + (i0 + r) * D;
            for (size_t d = 0; d < D; ++d) dC[c * D + d] += g * q[d];
        }
}

/* ---------------------------------------------------------------- AVX-512 */
#ifdef KC_X86
#define A5 __attribute__((target("avx512f,popcnt")))

/* exp(x) for x <= 0 to ~1 ulp (Cephes expf's reduction and polynomial); 0 below the normal range. */
A5 static inline __m512 exp_avx512(__m512 x) {
    /* NaN stays NaN (unordered compare; max returns its second operand when one is NaN) */
    const __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33f), _CMP_NLT_UQ);
    x = _mm512_max_ps(_mm512_set1_ps(-87.33f), x);
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    f = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), f);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, f), f, _mm512_add_ps(f, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(normal, _mm512_scalef_ps(p, k));
}

A5 static void finish_row_avx512(const Job *job, size_t i, float *z, float *dbias) {
    const size_t NP = job->NP; /* a multiple of 32 */
    const float positive = z[i];
    const __m512 pv = _mm512_set1_ps(positive), minus_inf = _mm512_set1_ps(-INFINITY);
    __m512 vm = minus_inf;
    size_t above = 0, negatives = 0;
    for (size_t c = 0; c < NP; c += 16) {
        const __m512 v = _mm512_load_ps(z + c);
        vm = _mm512_max_ps(vm, v);
        above += (size_t)__builtin_popcount(_mm512_cmp_ps_mask(v, pv, _CMP_GT_OQ));
        negatives += (size_t)__builtin_popcount(_mm512_cmp_ps_mask(v, minus_inf, _CMP_GT_OQ));
    }
    job->outscoring[i] = (float)above;
    job->negatives[i] = (float)(negatives - (positive > -INFINITY));
    const float m = _mm512_reduce_max_ps(vm);
    const __m512 mv = _mm512_set1_ps(m);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (size_t c = 0; c < NP; c += 32) {
        const __m512 e0 = exp_avx512(_mm512_sub_ps(_mm512_load_ps(z + c), mv));
        const __m512 e1 = exp_avx512(_mm512_sub_ps(_mm512_load_ps(z + c + 16), mv));
        _mm512_store_ps(z + c, e0), _mm512_store_ps(z + c + 16, e1);
        s0 = _mm512_add_ps(s0, e0), s1 = _mm512_add_ps(s1, e1);
    }
    const float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    job->loss[i] = m + logf(s) - positive;
    const float w = job->weights[i];
    const __m512 ws = _mm512_set1_ps(w / s), scale = _mm512_set1_ps(job->scale);
    for (size_t c = 0; c < NP; c += 16) {
        const __m512 g = _mm512_mul_ps(_mm512_load_ps(z + c), ws);
        _mm512_store_ps(dbias + c, _mm512_add_ps(_mm512_load_ps(dbias + c), g));
        _mm512_store_ps(z + c, _mm512_mul_ps(g, scale));
    }
    dbias[i] -= w; /* the label's column */
    z[i] -= w * job->scale;
}

#define A5_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

A5 static void block_avx512(const Job *job, size_t block, float *zbuf, float *dC, float *dbias, float *dq) {
    const size_t D = job->D, N = job->N, NP = job->NP, i0 = block * SK_R;
    const float *q[SK_R];
    for (int r = 0; r < SK_R; ++r) q[r] = i0 + r < job->B ? job->Q + (i0 + r) * D : job->zero_row;
    const __m512 scale = _mm512_set1_ps(job->scale), minus_inf = _mm512_set1_ps(-INFINITY);

    /* 1. logits, panel by panel: 12 rows x 32 columns in 24 registers */
    for (size_t p = 0; p < NP / SK_W; ++p) {
        const float *cp = job->cpack + p * D * SK_W;
#define A5_DECL(r) __m512 a##r = _mm512_setzero_ps(), b##r = _mm512_setzero_ps();
        A5_ROWS(A5_DECL)
        for (size_t d = 0; d < D; ++d) {
            const __m512 c0 = _mm512_load_ps(cp + d * SK_W), c1 = _mm512_load_ps(cp + d * SK_W + 16);
#define A5_FMA(r)                                             \
    {                                                         \
        const __m512 s = _mm512_set1_ps(q[r][d]);             \
        a##r = _mm512_fmadd_ps(s, c0, a##r);                  \
        b##r = _mm512_fmadd_ps(s, c1, b##r);                  \
    }
            A5_ROWS(A5_FMA)
        }
        const size_t j0 = p * SK_W;
        const __m512 bias0 = _mm512_load_ps(job->bias + j0), bias1 = _mm512_load_ps(job->bias + j0 + 16);
#define A5_STORE(r)                                                                         \
    _mm512_store_ps(zbuf + r * NP + j0, _mm512_fmadd_ps(a##r, scale, bias0));              \
    _mm512_store_ps(zbuf + r * NP + j0 + 16, _mm512_fmadd_ps(b##r, scale, bias1));
        A5_ROWS(A5_STORE)
        if (job->row_keys) {
            const __m512i k0 = _mm512_load_si512(job->col_keys + j0), k1 = _mm512_load_si512(job->col_keys + j0 + 8),
                          k2 = _mm512_load_si512(job->col_keys + j0 + 16), k3 = _mm512_load_si512(job->col_keys + j0 + 24);
            for (int r = 0; r < SK_R && i0 + r < job->B; ++r) {
                const size_t i = i0 + r;
                const __m512i key = _mm512_set1_epi64(job->row_keys[i]);
                __mmask16 h0 = (__mmask16)(_mm512_cmpeq_epi64_mask(k0, key) | (_mm512_cmpeq_epi64_mask(k1, key) << 8));
                __mmask16 h1 = (__mmask16)(_mm512_cmpeq_epi64_mask(k2, key) | (_mm512_cmpeq_epi64_mask(k3, key) << 8));
                if (!(h0 | h1)) continue;
                if (i >= j0 && i < j0 + 16) h0 &= (__mmask16)~(1u << (i - j0)); /* keep the positive */
                if (i >= j0 + 16 && i < j0 + 32) h1 &= (__mmask16)~(1u << (i - j0 - 16));
                float *z = zbuf + r * NP + j0;
                _mm512_store_ps(z, _mm512_mask_mov_ps(_mm512_load_ps(z), h0, minus_inf));
                _mm512_store_ps(z + 16, _mm512_mask_mov_ps(_mm512_load_ps(z + 16), h1, minus_inf));
            }
        }
    }

    /* 2. softmax, loss and the logits' gradient, in place */
    for (int r = 0; r < SK_R; ++r) {
        if (i0 + r < job->B)
            finish_row_avx512(job, i0 + r, zbuf + r * NP, dbias);
        else
            memset(zbuf + r * NP, 0, NP * sizeof(float));
    }
    const float *g[SK_R];
    for (int r = 0; r < SK_R; ++r) g[r] = zbuf + r * NP;

    /* 3. dQ rows = G @ C and 4. dC += G^T @ Q, over tiles of SK_CB candidates (a tile and its dC rows stay
     * in L2 for every chunk of 32 components); dQ accumulates in `dq` (R x DP) */
    const size_t DP = job->DP;
    memset(dq, 0, SK_R * DP * sizeof(float));
    for (size_t cb = 0; cb < N; cb += SK_CB) {
        const size_t ce = cb + SK_CB < N ? cb + SK_CB : N;
        for (size_t d0 = 0; d0 < D; d0 += 32) {
            const size_t left = D - d0;
            const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1u);
            const __mmask16 m1 = left >= 32 ? 0xFFFF : (left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1u));
            {
#define A5_DQ_LOAD(r) __m512 a##r = _mm512_load_ps(dq + r * DP + d0), b##r = _mm512_load_ps(dq + r * DP + d0 + 16);
                A5_ROWS(A5_DQ_LOAD)
                for (size_t c = cb; c < ce; ++c) {
                    const float *crow = job->C + c * D + d0;
                    const __m512 c0 = _mm512_maskz_loadu_ps(m0, crow), c1 = _mm512_maskz_loadu_ps(m1, crow + 16);
#define A5_DQ(r)                                              \
    {                                                         \
        const __m512 s = _mm512_set1_ps(g[r][c]);             \
        a##r = _mm512_fmadd_ps(s, c0, a##r);                  \
        b##r = _mm512_fmadd_ps(s, c1, b##r);                  \
    }
                    A5_ROWS(A5_DQ)
                }
#define A5_DQ_KEEP(r) _mm512_store_ps(dq + r * DP + d0, a##r), _mm512_store_ps(dq + r * DP + d0 + 16, b##r);
                A5_ROWS(A5_DQ_KEEP)
            }
            {
#define A5_QLOAD(r) const __m512 a##r = _mm512_maskz_loadu_ps(m0, q[r] + d0), b##r = _mm512_maskz_loadu_ps(m1, q[r] + d0 + 16);
                A5_ROWS(A5_QLOAD)
                for (size_t c = cb; c < ce; ++c) {
                    __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
#define A5_DC(r)                                              \
    {                                                         \
        const __m512 s = _mm512_set1_ps(g[r][c]);             \
        x0 = _mm512_fmadd_ps(s, a##r, x0);                    \
        x1 = _mm512_fmadd_ps(s, b##r, x1);                    \
    }
                    A5_ROWS(A5_DC)
                    float *out = dC + c * D + d0;
                    _mm512_mask_storeu_ps(out, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, out), x0));
                    _mm512_mask_storeu_ps(out + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, out + 16), x1));
                }
            }
        }
    }
    for (int r = 0; r < SK_R && i0 + r < job->B; ++r) memcpy(job->dQ + (i0 + r) * D, dq + r * DP, D * sizeof(float));
}

/* ---------------------------------------------------------------- AVX2 + FMA (16 registers of 8 floats)
 * The same steps as the AVX-512 path in 6-row halves of the block: 6 rows x 16 columns (or components)
 * fill 12 accumulators. */
#define A2 __attribute__((target("avx2,fma")))

A2 static inline __m256 exp_avx2(__m256 x) {
    /* as exp_avx512; 2^k is built in the exponent field (k >= -126 after the clamp) */
    const __m256 floor_x = _mm256_set1_ps(-87.33f);
    const __m256 normal = _mm256_cmp_ps(x, floor_x, _CMP_NLT_UQ);
    x = _mm256_max_ps(floor_x, x);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    f = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), f);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, f), f, _mm256_add_ps(f, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), normal);
}

A2 static inline float hmax_avx2(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

A2 static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

A2 static void finish_row_avx2(const Job *job, size_t i, float *z, float *dbias) {
    const size_t NP = job->NP;
    const float positive = z[i];
    const __m256 pv = _mm256_set1_ps(positive), minus_inf = _mm256_set1_ps(-INFINITY);
    __m256 vm = minus_inf;
    size_t above = 0, negatives = 0;
    for (size_t c = 0; c < NP; c += 8) {
        const __m256 v = _mm256_load_ps(z + c);
        vm = _mm256_max_ps(vm, v);
        above += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, pv, _CMP_GT_OQ)));
        negatives += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, minus_inf, _CMP_GT_OQ)));
    }
    job->outscoring[i] = (float)above;
    job->negatives[i] = (float)(negatives - (positive > -INFINITY));
    const float m = hmax_avx2(vm);
    const __m256 mv = _mm256_set1_ps(m);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (size_t c = 0; c < NP; c += 16) {
        const __m256 e0 = exp_avx2(_mm256_sub_ps(_mm256_load_ps(z + c), mv));
        const __m256 e1 = exp_avx2(_mm256_sub_ps(_mm256_load_ps(z + c + 8), mv));
        _mm256_store_ps(z + c, e0), _mm256_store_ps(z + c + 8, e1);
        s0 = _mm256_add_ps(s0, e0), s1 = _mm256_add_ps(s1, e1);
    }
    const float s = hsum_avx2(_mm256_add_ps(s0, s1));
    job->loss[i] = m + logf(s) - positive;
    const float w = job->weights[i];
    const __m256 ws = _mm256_set1_ps(w / s), scale = _mm256_set1_ps(job->scale);
    for (size_t c = 0; c < NP; c += 8) {
        const __m256 g = _mm256_mul_ps(_mm256_load_ps(z + c), ws);
        _mm256_store_ps(dbias + c, _mm256_add_ps(_mm256_load_ps(dbias + c), g));
        _mm256_store_ps(z + c, _mm256_mul_ps(g, scale));
    }
    dbias[i] -= w; /* the label's column */
    z[i] -= w * job->scale;
}

/* lane masks of the components d0 .. d0 + 7 that exist (D - d0 of them) */
A2 static inline __m256i lanes_avx2(size_t left) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int n = left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), index);
}

#define A2_HALF(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define A2_DECL(r) __m256 a##r = _mm256_setzero_ps(), b##r = _mm256_setzero_ps();

/* Steps 3 and 4 for 6 rows (their dQ accumulates in `dq`, rows DP apart), candidates cb .. ce - 1 and
 * components d0 .. d0 + 15. `full`, a constant after inlining, drops the (slow) AVX2 masked loads and stores when all
 * 16 components exist. */
__attribute__((always_inline)) A2 static inline void gradients_avx2(const Job *job, const float **q,
                                                                    const float **g, float *dq, size_t d0,
                                                                    size_t cb, size_t ce, float *dC,
                                                                    const int full) {
    const size_t D = job->D, DP = job->DP;
    const __m256i m0 = lanes_avx2(D - d0), m1 = lanes_avx2(D - d0 > 8 ? D - d0 - 8 : 0);
#define A2_LOAD(ptr, mask) (full ? _mm256_loadu_ps(ptr) : _mm256_maskload_ps((ptr), (mask)))
#define A2_STORE_TO(ptr, mask, value)                                                     \
    do {                                                                                   \
        if (full)                                                                          \
            _mm256_storeu_ps((ptr), (value));                                              \
        else                                                                               \
            _mm256_maskstore_ps((ptr), (mask), (value));                                   \
    } while (0)
    {
#define A2_DQ_LOAD(r) __m256 a##r = _mm256_load_ps(dq + r * DP + d0), b##r = _mm256_load_ps(dq + r * DP + d0 + 8);
        A2_HALF(A2_DQ_LOAD)
        for (size_t c = cb; c < ce; ++c) {
            const float *crow = job->C + c * D + d0;
            const __m256 c0 = A2_LOAD(crow, m0), c1 = A2_LOAD(crow + 8, m1);
#define A2_DQ(r)                                              \
    {                                                         \
        const __m256 s = _mm256_broadcast_ss(g[r] + c);       \
        a##r = _mm256_fmadd_ps(s, c0, a##r);                  \
        b##r = _mm256_fmadd_ps(s, c1, b##r);                  \
    }
            A2_HALF(A2_DQ)
        }
#define A2_DQ_KEEP(r) _mm256_store_ps(dq + r * DP + d0, a##r), _mm256_store_ps(dq + r * DP + d0 + 8, b##r);
        A2_HALF(A2_DQ_KEEP)
    }
    {
#define A2_QLOAD(r) const __m256 a##r = A2_LOAD(q[r] + d0, m0), b##r = A2_LOAD(q[r] + d0 + 8, m1);
        A2_HALF(A2_QLOAD)
        for (size_t c = cb; c < ce; ++c) {
            __m256 x0 = _mm256_setzero_ps(), x1 = _mm256_setzero_ps();
#define A2_DC(r)                                              \
    {                                                         \
        const __m256 s = _mm256_broadcast_ss(g[r] + c);       \
        x0 = _mm256_fmadd_ps(s, a##r, x0);                    \
        x1 = _mm256_fmadd_ps(s, b##r, x1);                    \
    }
            A2_HALF(A2_DC)
            float *out = dC + c * D + d0;
            A2_STORE_TO(out, m0, _mm256_add_ps(A2_LOAD(out, m0), x0));
            A2_STORE_TO(out + 8, m1, _mm256_add_ps(A2_LOAD(out + 8, m1), x1));
        }
    }
}


A2 static void block_avx2(const Job *job, size_t block, float *zbuf, float *dC, float *dbias, float *dq) {
    const size_t D = job->D, N = job->N, NP = job->NP, i0 = block * SK_R;
    const float *qrows[SK_R];
    for (int r = 0; r < SK_R; ++r) qrows[r] = i0 + r < job->B ? job->Q + (i0 + r) * D : job->zero_row;
    const __m256 scale = _mm256_set1_ps(job->scale);

    /* 1. logits: per panel of 32 columns, 6 rows x 16 columns at a time */
    for (size_t p = 0; p < NP / SK_W; ++p) {
        const size_t j0 = p * SK_W;
        for (int half = 0; half < 2; ++half) {
            const float **q = qrows + 6 * half;
            for (int cols = 0; cols < SK_W; cols += 16) {
                const float *cp = job->cpack + p * D * SK_W + cols;
                A2_HALF(A2_DECL)
                for (size_t d = 0; d < D; ++d) {
                    const __m256 c0 = _mm256_load_ps(cp + d * SK_W), c1 = _mm256_load_ps(cp + d * SK_W + 8);
#define A2_FMA(r)                                             \
    {                                                         \
        const __m256 s = _mm256_broadcast_ss(q[r] + d);       \
        a##r = _mm256_fmadd_ps(s, c0, a##r);                  \
        b##r = _mm256_fmadd_ps(s, c1, b##r);                  \
    }
                    A2_HALF(A2_FMA)
                }
                const __m256 bias0 = _mm256_load_ps(job->bias + j0 + cols);
                const __m256 bias1 = _mm256_load_ps(job->bias + j0 + cols + 8);
#define A2_STORE(r)                                                                              \
    _mm256_store_ps(zbuf + (6 * half + r) * NP + j0 + cols, _mm256_fmadd_ps(a##r, scale, bias0));   \
    _mm256_store_ps(zbuf + (6 * half + r) * NP + j0 + cols + 8, _mm256_fmadd_ps(b##r, scale, bias1));
                A2_HALF(A2_STORE)
            }
        }
        if (job->row_keys) /* accidental hits: a scalar pass over the panel's keys */
            for (int r = 0; r < SK_R && i0 + r < job->B; ++r) {
                const size_t i = i0 + r;
                const int64_t key = job->row_keys[i];
                float *z = zbuf + r * NP;
                for (size_t j = j0; j < j0 + SK_W; ++j)
                    if (job->col_keys[j] == key && j != i) z[j] = -INFINITY;
            }
    }

    /* 2. softmax, loss and the logits' gradient, in place */
    for (int r = 0; r < SK_R; ++r) {
        if (i0 + r < job->B)
            finish_row_avx2(job, i0 + r, zbuf + r * NP, dbias);
        else
            memset(zbuf + r * NP, 0, NP * sizeof(float));
    }

    /* 3. dQ rows = G @ C and 4. dC += G^T @ Q: tiles of SK_CB candidates, 6 rows x 16 components */
    const size_t DP = job->DP;
    memset(dq, 0, SK_R * DP * sizeof(float));
    for (size_t cb = 0; cb < N; cb += SK_CB) {
        const size_t ce = cb + SK_CB < N ? cb + SK_CB : N;
        for (int half = 0; half < 2; ++half) {
            const float *g[6];
            for (int r = 0; r < 6; ++r) g[r] = zbuf + (6 * half + r) * NP;
            for (size_t d0 = 0; d0 < D; d0 += 16) {
                float *rows = dq + 6 * half * DP;
                if (D - d0 >= 16)
                    gradients_avx2(job, qrows + 6 * half, g, rows, d0, cb, ce, dC, 1);
                else
                    gradients_avx2(job, qrows + 6 * half, g, rows, d0, cb, ce, dC, 0);
            }
        }
    }
    for (int r = 0; r < SK_R && i0 + r < job->B; ++r) memcpy(job->dQ + (i0 + r) * D, dq + r * DP, D * sizeof(float));
}

static void pack_candidates(const float *C, float *cpack, size_t N, size_t NP, size_t D) {
    for (size_t p = 0; p < NP / SK_W; ++p)
        for (size_t d = 0; d < D; ++d)
            for (size_t w = 0; w < SK_W; ++w) {
                const size_t c = p * SK_W + w;
                cpack[(p * D + d) * SK_W + w] = c < N ? C[c * D + d] : 0.0f;
            }
}
#endif /* KC_X86 */

/* ---------------------------------------------------------------- threads */
typedef struct {
    const Job *job;
    int t;
} Part;

static void *run_part(void *arg) {
    const Part *part = (const Part *)arg;
    const Job *job = part->job;
    const size_t t = (size_t)part->t, T = (size_t)job->threads;
    const size_t b0 = job->blocks * t / T, b1 = job->blocks * (t + 1) / T;
    float *dC = job->dC_parts + t * job->NP * job->D, *dbias = job->dbias_parts + t * job->NP;
    float *zbuf = job->zbufs + t * SK_R * job->NP, *dq = job->dq_parts + t * SK_R * job->DP;
    for (size_t b = b0; b < b1; ++b) {
#ifdef KC_X86
        if (job->isa == ISA_AVX512) {
            block_avx512(job, b, zbuf, dC, dbias, dq);
            continue;
        }
        if (job->isa == ISA_AVX2) {
            block_avx2(job, b, zbuf, dC, dbias, dq);
            continue;
        }
#endif
        block_portable(job, b, zbuf, dC, dbias);
    }
    return NULL;
}

/* Returns 0, or -1 when out of memory. Runs without the GIL. */
static int softmax_xent_impl(const float *Q, const float *C, const float *weights, const float *bias,
                             const int64_t *row_keys, const int64_t *col_keys, float scale, size_t B,
                             size_t N, size_t D, float *loss, float *dQ, float *dC, float *dbias,
                             float *outscoring, float *negatives, int threads, int isa) {
    Job job;
    memset(&job, 0, sizeof(job));
    job.Q = Q, job.C = C, job.weights = weights, job.row_keys = row_keys, job.scale = scale;
    job.B = B, job.N = N, job.D = D, job.NP = (N + SK_W - 1) / SK_W * SK_W, job.isa = isa;
    job.loss = loss, job.dQ = dQ, job.outscoring = outscoring, job.negatives = negatives;
    job.blocks = (B + SK_R - 1) / SK_R;
    job.threads = threads < 1 ? 1 : threads;
    if ((size_t)job.threads > job.blocks) job.threads = job.blocks ? (int)job.blocks : 1;
    /* each thread holds a [NP, D] share of dC: about SK_PARTS_BYTES of them in all at most (many cores and
     * wide batches, e.g. a global batch gathered from many workers) */
    /* and a thread only for every SK_WORK_PER_THREAD multiply-adds (starting one costs ~50 us) */
    const size_t useful = 1 + B * job.NP * D / SK_WORK_PER_THREAD;
    if ((size_t)job.threads > useful) job.threads = (int)useful;
    const size_t part_bytes = job.NP * D * sizeof(float) + 1;
    if ((size_t)job.threads * part_bytes > SK_PARTS_BYTES) job.threads = (int)(SK_PARTS_BYTES / part_bytes) + 1;
    const size_t NP = job.NP, T = (size_t)job.threads;

    float *bias_pad = aligned_zeros(NP * sizeof(float)), *zero_row = aligned_zeros((D + 32) * sizeof(float));
    int64_t *keys_pad = row_keys ? aligned_zeros(NP * sizeof(int64_t)) : NULL;
    float *cpack = isa != ISA_PORTABLE ? aligned_zeros(NP * D * sizeof(float)) : NULL;
    job.dC_parts = aligned_zeros(T * NP * D * sizeof(float));
    job.dbias_parts = aligned_zeros(T * NP * sizeof(float));
    job.zbufs = aligned_zeros(T * SK_R * NP * sizeof(float));
    job.DP = (D + 31) / 32 * 32;
    job.dq_parts = aligned_zeros(T * SK_R * job.DP * sizeof(float));
    int status = 0;
    if (!bias_pad || !zero_row || (row_keys && !keys_pad) || (isa != ISA_PORTABLE && !cpack) || !job.dC_parts ||
        !job.dbias_parts || !job.zbufs || !job.dq_parts) {
        status = -1;
        goto done;
    }
    for (size_t c = 0; c < NP; ++c) bias_pad[c] = c < N ? (bias ? bias[c] : 0.0f) : -INFINITY;
    if (row_keys) {
        memcpy(keys_pad, col_keys, N * sizeof(int64_t));
        for (size_t c = N; c < NP; ++c) keys_pad[c] = row_keys[0]; /* masked anyway: -inf bias */
    }
#ifdef KC_X86
    if (cpack) pack_candidates(C, cpack, N, NP, D);
#endif
    job.bias = bias_pad, job.col_keys = keys_pad, job.zero_row = zero_row, job.cpack = cpack;

    Part parts[SK_MAX_THREADS];
    for (size_t t = 0; t < T; ++t) parts[t].job = &job, parts[t].t = (int)t;
#ifdef SK_PTHREADS
    pthread_t ids[SK_MAX_THREADS];
    size_t started = 0, t_next = 1;
    for (; t_next < T; ++t_next) {
        if (pthread_create(&ids[started], NULL, run_part, &parts[t_next]) != 0) break;
        ++started;
    }
    run_part(&parts[0]);
    for (size_t k = 0; k < started; ++k) pthread_join(ids[k], NULL);
    for (; t_next < T; ++t_next) run_part(&parts[t_next]); /* a thread that could not start */
#else
    for (size_t t = 0; t < T; ++t) run_part(&parts[t]);
#endif
    /* the per-thread partial gradients, added in thread order */
    memcpy(dC, job.dC_parts, N * D * sizeof(float));
    memcpy(dbias, job.dbias_parts, N * sizeof(float));
    for (size_t t = 1; t < T; ++t) {
        const float *part = job.dC_parts + t * NP * D, *bpart = job.dbias_parts + t * NP;
        for (size_t k = 0; k < N * D; ++k) dC[k] += part[k];
        for (size_t c = 0; c < N; ++c) dbias[c] += bpart[c];
    }
done:
    aligned_free(bias_pad), aligned_free(zero_row), aligned_free(keys_pad), aligned_free(cpack);
    aligned_free(job.dC_parts), aligned_free(job.dbias_parts), aligned_free(job.zbufs), aligned_free(job.dq_parts);
    return status;
}

/* ---------------------------------------------------------------- Python bindings */

PyDoc_STRVAR(xent_doc,
             "softmax_xent(queries, candidates, dim, weights, bias, row_keys, col_keys, scale,\n"
             "             loss, d_queries, d_candidates, d_bias, outscoring, negatives, threads, isa=None)\n\n"
             "In-batch softmax cross-entropy and its gradients (see the module source). Buffers are\n"
             "C-contiguous: queries float32 [B, dim], candidates float32 [N, dim] with N >= B, weights\n"
             "float32 [B], bias float32 [N] or None, row_keys int64 [B] and col_keys int64 [N] or both None.\n"
             "Writes loss [B], d_queries [B, dim], d_candidates [N, dim], d_bias [N], and per row the number\n"
             "of negatives outscoring the positive and of negatives, float32 [B]. Releases the GIL.");

static PyObject *py_softmax_xent(PyObject *self, PyObject *args) {
    Py_buffer qb, cb, wb, bb = {0}, rk = {0}, ck = {0}, lb, dqb, dcb, dbb, ob, nb;
    PyObject *bias_obj, *rk_obj, *ck_obj, *isa_obj = NULL, *result = NULL;
    Py_ssize_t dim;
    float scale;
    int threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*ny*OOOfw*w*w*w*w*w*i|O", &qb, &cb, &dim, &wb, &bias_obj, &rk_obj, &ck_obj,
                          &scale, &lb, &dqb, &dcb, &dbb, &ob, &nb, &threads, &isa_obj))
        return NULL;
    int have_bias = 0, have_rk = 0, have_ck = 0;
    if (bias_obj != Py_None) {
        if (PyObject_GetBuffer(bias_obj, &bb, PyBUF_SIMPLE) < 0) goto done;
        have_bias = 1;
    }
    if (rk_obj != Py_None) {
        if (PyObject_GetBuffer(rk_obj, &rk, PyBUF_SIMPLE) < 0) goto done;
        have_rk = 1;
    }
    if (ck_obj != Py_None) {
        if (PyObject_GetBuffer(ck_obj, &ck, PyBUF_SIMPLE) < 0) goto done;
        have_ck = 1;
    }
    const int isa = parse_isa(isa_obj);
    if (isa < 0) goto done;
    if (dim < 1 || threads < 1 || threads > SK_MAX_THREADS || have_rk != have_ck) {
        PyErr_Format(PyExc_ValueError,
                     "`dim` must be >= 1, `threads` in [1, %d], and `row_keys` and `col_keys` given together. "
                     "Got %zd, %d.", SK_MAX_THREADS, dim, threads);
        goto done;
    }
    const size_t D = (size_t)dim, B = (size_t)wb.len / sizeof(float), N = (size_t)cb.len / (D * sizeof(float));
    if (N < B) {
        PyErr_Format(PyExc_ValueError, "`candidates` must have at least as many rows as `queries`. Got %zu < %zu.", N, B);
        goto done;
    }
    if (check_size("queries", &qb, B * D * sizeof(float)) || check_size("candidates", &cb, N * D * sizeof(float)) ||
        check_size("bias", &bb, N * sizeof(float)) || check_size("row_keys", &rk, B * sizeof(int64_t)) ||
        check_size("col_keys", &ck, N * sizeof(int64_t)) || check_size("loss", &lb, B * sizeof(float)) ||
        check_size("d_queries", &dqb, B * D * sizeof(float)) ||
        check_size("d_candidates", &dcb, N * D * sizeof(float)) || check_size("d_bias", &dbb, N * sizeof(float)) ||
        check_size("outscoring", &ob, B * sizeof(float)) || check_size("negatives", &nb, B * sizeof(float)))
        goto done;
    int status = 0;
    if (B > 0) {
        Py_BEGIN_ALLOW_THREADS
        status = softmax_xent_impl(qb.buf, cb.buf, wb.buf, have_bias ? bb.buf : NULL, have_rk ? rk.buf : NULL,
                                   have_ck ? ck.buf : NULL, scale, B, N, D, lb.buf, dqb.buf, dcb.buf, dbb.buf,
                                   ob.buf, nb.buf, threads, isa);
        Py_END_ALLOW_THREADS
    } else {
        memset(dcb.buf, 0, N * D * sizeof(float));
        memset(dbb.buf, 0, N * sizeof(float));
    }
    if (status != 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    if (have_bias) PyBuffer_Release(&bb);
    if (have_rk) PyBuffer_Release(&rk);
    if (have_ck) PyBuffer_Release(&ck);
    PyBuffer_Release(&qb), PyBuffer_Release(&cb), PyBuffer_Release(&wb), PyBuffer_Release(&lb);
    PyBuffer_Release(&dqb), PyBuffer_Release(&dcb), PyBuffer_Release(&dbb), PyBuffer_Release(&ob);
    PyBuffer_Release(&nb);
    return result;
}

static PyMethodDef methods[] = {
    {"softmax_xent", py_softmax_xent, METH_VARARGS, xent_doc},
    {"supported_isas", py_supported_isas, METH_NOARGS, "The code paths this CPU runs: 'portable', 'avx2', 'avx512'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_softmax_kernel",
    "Fused in-batch softmax cross-entropy for tfrs_twotower.tasks (see fused_softmax.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__softmax_kernel(void) { return PyModule_Create(&module); }
