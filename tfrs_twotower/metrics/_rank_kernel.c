/* Fused rank counting for full-corpus evaluation: for each query, the number of candidates whose dot
 * product with it is strictly greater than a threshold (the positive's score). Scores live only in
 * registers; the [Q, N] score matrix is never written.
 *
 * Every score -- in the kernels and in `pair_scores` -- is the same chain of correctly rounded fused
 * multiply-adds, acc = fma(q[d], c[d], acc) for d = 0 .. D-1 from acc = 0. A vector FMA lane is the
 * IEEE fma of its operands, so all three code paths (AVX-512, AVX2, portable C) give bit-identical
 * scores, and a threshold taken from `pair_scores` equals the kernel's score of that candidate: the
 * positive, and any exact duplicate of it, never outscores itself.
 *
 * Layout: candidates are packed once per call into panels of W candidates, [N/W][D][W], so one vector
 * load holds component d of 16 (or 8) candidates; queries are packed into blocks of R, [Q/R][D][R], so the
 * R broadcasts of a step are at fixed offsets from one pointer. The micro-kernel keeps R x W accumulators
 * in registers. Work is split over threads by groups of query blocks taken from a shared counter (so a
 * core slowed by other jobs does less of the work), and each group streams the packed candidates in
 * chunks that stay in L2.
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
#define RK_PTHREADS 1
#endif

#define RK_MAX_THREADS 256
#define RK_CHUNK_BYTES (256 * 1024)  /* packed candidates per chunk: fits L2 next to a query group */
#define RK_GROUP_BYTES (256 * 1024)  /* packed queries per work item */


typedef struct {
    const float *qpack;  /* [qblocks][D][R] */
    const float *cpack;  /* [panels][D][W] */
    const float *thr;    /* [qblocks * R] */
    int64_t *counts;     /* [qblocks * R] */
    size_t D, panels, last_valid, qblocks, group_blocks, chunk_panels;
    int R, W;
} Job;

/* ---------------------------------------------------------------- score of one pair (all paths) */

static float dot_fma(const float *a, const float *b, size_t D) {
    float acc = 0.0f;
    for (size_t d = 0; d < D; ++d) acc = fmaf(a[d], b[d], acc);
    return acc;
}

/* ---------------------------------------------------------------- portable C: R = 4, W = 8 */

#define P_R 4
#define P_W 8

static void panel_portable(const float *qp, const float *cp, size_t D, const float *thr, int64_t *cnt,
                           int valid) {
    float acc[P_R][P_W] = {{0.0f}};
    for (size_t d = 0; d < D; ++d) {
        const float *q = qp + d * P_R, *c = cp + d * P_W;
        for (int r = 0; r < P_R; ++r)
            for (int j = 0; j < P_W; ++j) acc[r][j] = fmaf(q[r], c[j], acc[r][j]);
    }
    for (int r = 0; r < P_R; ++r)
        for (int j = 0; j < valid; ++j) cnt[r] += acc[r][j] > thr[r];
}

/* ---------------------------------------------------------------- AVX2 + FMA: R = 6, W = 16 */

#ifdef KC_X86
#define A2_R 6
#define A2_W 16
#define A2_TARGET __attribute__((target("avx2,fma,popcnt")))

A2_TARGET static inline void panel_avx2(const float *qp, const float *cp, size_t D, const float *thr,
                                        int64_t *cnt, unsigned m0, unsigned m1) {
#define A2_DECL(r) __m256 a##r = _mm256_setzero_ps(), b##r = _mm256_setzero_ps()
    A2_DECL(0); A2_DECL(1); A2_DECL(2); A2_DECL(3); A2_DECL(4); A2_DECL(5);
    for (size_t d = 0; d < D; ++d) {
        const float *q = qp + d * A2_R;
        const __m256 c0 = _mm256_loadu_ps(cp + d * A2_W), c1 = _mm256_loadu_ps(cp + d * A2_W + 8);
#define A2_FMA(r)                                        \
    do {                                                 \
        const __m256 s = _mm256_broadcast_ss(q + (r));   \
        a##r = _mm256_fmadd_ps(s, c0, a##r);             \
        b##r = _mm256_fmadd_ps(s, c1, b##r);             \
    } while (0)
        A2_FMA(0); A2_FMA(1); A2_FMA(2); A2_FMA(3); A2_FMA(4); A2_FMA(5);
    }
#define A2_CNT(r)                                                                              \
    do {                                                                                       \
        const __m256 t = _mm256_broadcast_ss(thr + (r));                                       \
        unsigned k0 = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a##r, t, _CMP_GT_OQ)) & m0;   \
        unsigned k1 = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(b##r, t, _CMP_GT_OQ)) & m1;   \
        cnt[r] += __builtin_popcount(k0 | (k1 << 8));                                          \
    } while (0)
    A2_CNT(0); A2_CNT(1); A2_CNT(2); A2_CNT(3); A2_CNT(4); A2_CNT(5);
}

/* ---------------------------------------------------------------- AVX-512F: R = 12, W = 32 */

#define A5_R 12
#define A5_W 32
#define A5_TARGET __attribute__((target("avx512f,popcnt")))

A5_TARGET static inline void panel_avx512(const float *qp, const float *cp, size_t D, const float *thr,
                                          int64_t *cnt, __mmask16 m0, __mmask16 m1) {
#define A5_DECL(r) __m512 a##r = _mm512_setzero_ps(), b##r = _mm512_setzero_ps()
    A5_DECL(0); A5_DECL(1); A5_DECL(2); A5_DECL(3); A5_DECL(4); A5_DECL(5);
    A5_DECL(6); A5_DECL(7); A5_DECL(8); A5_DECL(9); A5_DECL(10); A5_DECL(11);
    for (size_t d = 0; d < D; ++d) {
        const float *q = qp + d * A5_R;
        const __m512 c0 = _mm512_loadu_ps(cp + d * A5_W), c1 = _mm512_loadu_ps(cp + d * A5_W + 16);
#define A5_FMA(r)                                        \
    do {                                                 \
        const __m512 s = _mm512_set1_ps(q[r]);           \
        a##r = _mm512_fmadd_ps(s, c0, a##r);             \
        b##r = _mm512_fmadd_ps(s, c1, b##r);             \
    } while (0)
        A5_FMA(0); A5_FMA(1); A5_FMA(2); A5_FMA(3); A5_FMA(4); A5_FMA(5);
        A5_FMA(6); A5_FMA(7); A5_FMA(8); A5_FMA(9); A5_FMA(10); A5_FMA(11);
    }
#define A5_CNT(r)                                                                     \
    do {                                                                              \
        const __m512 t = _mm512_set1_ps(thr[r]);                                      \
        unsigned k0 = _mm512_mask_cmp_ps_mask(m0, a##r, t, _CMP_GT_OQ);               \
        unsigned k1 = _mm512_mask_cmp_ps_mask(m1, b##r, t, _CMP_GT_OQ);               \
        cnt[r] += __builtin_popcount(k0 | (k1 << 16));                                \
    } while (0)
    A5_CNT(0); A5_CNT(1); A5_CNT(2); A5_CNT(3); A5_CNT(4); A5_CNT(5);
    A5_CNT(6); A5_CNT(7); A5_CNT(8); A5_CNT(9); A5_CNT(10); A5_CNT(11);
}
#endif /* KC_X86 */

/* ---------------------------------------------------------------- one work item: a group of query
 * blocks against every candidate, chunk by chunk. Written once per path so the micro-kernel inlines. */

#define RK_GROUP_FN(name, TARGET, R, W, panel_call)                                                    \
    TARGET static void name(const Job *job, size_t b0, size_t b1) {                                    \
        const size_t D = job->D, panels = job->panels;                                                 \
        const size_t full = job->last_valid == (size_t)(W) ? panels : panels - 1;                      \
        for (size_t p0 = 0; p0 < panels; p0 += job->chunk_panels) {                                    \
            size_t p1 = p0 + job->chunk_panels;                                                        \
            if (p1 > panels) p1 = panels;                                                              \
            const size_t pf = p1 < full ? p1 : full;                                                   \
            for (size_t b = b0; b < b1; ++b) {                                                         \
                const float *qp = job->qpack + b * (R) * D, *thr = job->thr + b * (R);                 \
                int64_t *cnt = job->counts + b * (R);                                                  \
                size_t p = p0;                                                                         \
                for (; p < pf; ++p) {                                                                  \
                    const float *cp = job->cpack + p * (W) * D;                                        \
                    const int valid = (W);                                                             \
                    (void)valid;                                                                       \
                    panel_call;                                                                        \
                }                                                                                      \
                for (; p < p1; ++p) { /* the last, partial panel */                                    \
                    const float *cp = job->cpack + p * (W) * D;                                        \
                    const int valid = (int)job->last_valid;                                            \
                    panel_call;                                                                        \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }

#define RK_MASK16(v) ((v) >= 16 ? 0xFFFFu : ((v) <= 0 ? 0u : ((1u << (v)) - 1u)))
#define RK_MASK8(v) ((v) >= 8 ? 0xFFu : ((v) <= 0 ? 0u : ((1u << (v)) - 1u)))

RK_GROUP_FN(group_portable, , P_R, P_W, panel_portable(qp, cp, D, thr, cnt, valid))
#ifdef KC_X86
RK_GROUP_FN(group_avx2, A2_TARGET, A2_R, A2_W,
            panel_avx2(qp, cp, D, thr, cnt, RK_MASK8(valid), RK_MASK8(valid - 8)))
RK_GROUP_FN(group_avx512, A5_TARGET, A5_R, A5_W,
            panel_avx512(qp, cp, D, thr, cnt, (__mmask16)RK_MASK16(valid),
                         (__mmask16)RK_MASK16(valid - 16)))
#endif

typedef void (*GroupFn)(const Job *, size_t, size_t);

/* ---------------------------------------------------------------- threads */

typedef struct {
    const Job *job;
    GroupFn group;
    const float *candidates;
    float *cpack;
    size_t N, num_groups;
    size_t next; /* work counter, taken with atomics: packing panels first, then query groups */
    int phase;
} Shared;

static void pack_panel(const float *candidates, float *cpack, size_t N, size_t D, int W, size_t p) {
    float *dst = cpack + p * (size_t)W * D;
    for (int j = 0; j < W; ++j) {
        const size_t row = p * (size_t)W + (size_t)j;
        if (row < N) {
            const float *src = candidates + row * D;
            for (size_t d = 0; d < D; ++d) dst[d * W + j] = src[d];
        } else {
            for (size_t d = 0; d < D; ++d) dst[d * W + j] = 0.0f;
        }
    }
}

static void *worker(void *arg) {
    Shared *sh = (Shared *)arg;
    const Job *job = sh->job;
    size_t i;
    if (sh->phase == 0) {
        while ((i = __atomic_fetch_add(&sh->next, 16, __ATOMIC_RELAXED)) < job->panels) {
            const size_t end = i + 16 < job->panels ? i + 16 : job->panels;
            for (; i < end; ++i) pack_panel(sh->candidates, sh->cpack, sh->N, job->D, job->W, i);
        }
    } else {
        while ((i = __atomic_fetch_add(&sh->next, 1, __ATOMIC_RELAXED)) < sh->num_groups) {
            const size_t b0 = i * job->group_blocks;
            const size_t b1 = b0 + job->group_blocks < job->qblocks ? b0 + job->group_blocks : job->qblocks;
            sh->group(job, b0, b1);
        }
    }
    return NULL;
}

static void run_phase(Shared *sh, int phase, int threads) {
    sh->phase = phase;
    sh->next = 0;
#ifdef RK_PTHREADS
    pthread_t ids[RK_MAX_THREADS];
    int started = 0;
    for (int t = 1; t < threads; ++t) {
        if (pthread_create(&ids[started], NULL, worker, sh) != 0) break; /* the others do its share */
        ++started;
    }
    worker(sh);
    for (int t = 0; t < started; ++t) pthread_join(ids[t], NULL);
#else
    (void)threads;
    worker(sh);
#endif
}

/* Returns 0, or -1 when out of memory. Runs without the GIL. */
static int count_outscoring_impl(const float *queries, const float *candidates, const float *thresholds,
                                 int64_t *out, size_t Q, size_t N, size_t D, int threads, int isa) {
    static const int Rs[] = {P_R,
#ifdef KC_X86
                             A2_R, A5_R
#else
                             P_R, P_R
#endif
    };
    static const int Ws[] = {P_W,
#ifdef KC_X86
                             A2_W, A5_W
#else
                             P_W, P_W
#endif
    };
    GroupFn group = group_portable;
#ifdef KC_X86
    if (isa == ISA_AVX2) group = group_avx2;
    if (isa == ISA_AVX512) group = group_avx512;
#endif
    const int R = Rs[isa], W = Ws[isa];
    Job job;
    memset(&job, 0, sizeof job);
    job.D = D;
    job.R = R;
    job.W = W;
    job.panels = (N + W - 1) / W;
    job.last_valid = N - (job.panels ? job.panels - 1 : 0) * W;
    job.qblocks = (Q + R - 1) / R;
    const size_t panel_bytes = (size_t)W * (D ? D : 1) * sizeof(float);
    job.chunk_panels = RK_CHUNK_BYTES / panel_bytes ? RK_CHUNK_BYTES / panel_bytes : 1;
    const size_t block_bytes = (size_t)R * (D ? D : 1) * sizeof(float);
    size_t group_blocks = RK_GROUP_BYTES / block_bytes ? RK_GROUP_BYTES / block_bytes : 1;
    const size_t fair = (job.qblocks + threads - 1) / threads; /* so every thread gets work */
    job.group_blocks = group_blocks < fair ? group_blocks : (fair ? fair : 1);

    float *qpack = aligned_buffer(job.qblocks * R * D * sizeof(float));
    float *thr = aligned_buffer(job.qblocks * R * sizeof(float));
    int64_t *counts = aligned_buffer(job.qblocks * R * sizeof(int64_t));
    float *cpack = aligned_buffer(job.panels * W * D * sizeof(float));
    if (!qpack || !thr || !counts || !cpack) {
        aligned_free(qpack), aligned_free(thr), aligned_free(counts), aligned_free(cpack);
        return -1;
    }
    for (size_t b = 0; b < job.qblocks; ++b) {
        for (int r = 0; r < R; ++r) {
            const size_t row = b * R + r;
            float *dst = qpack + b * R * D + r;
            if (row < Q) {
                for (size_t d = 0; d < D; ++d) dst[d * R] = queries[row * D + d];
                thr[row] = thresholds[row];
            } else { /* padding rows: counted, then dropped */
                for (size_t d = 0; d < D; ++d) dst[d * R] = 0.0f;
                thr[row] = 0.0f;
            }
        }
    }
    memset(counts, 0, job.qblocks * R * sizeof(int64_t));
    job.qpack = qpack;
    job.cpack = cpack;
    job.thr = thr;
    job.counts = counts;

    Shared sh;
    memset(&sh, 0, sizeof sh);
    sh.job = &job;
    sh.group = group;
    sh.candidates = candidates;
    sh.cpack = cpack;
    sh.N = N;
    sh.num_groups = (job.qblocks + job.group_blocks - 1) / job.group_blocks;
    run_phase(&sh, 0, threads);
    if (N > 0) run_phase(&sh, 1, threads);
    memcpy(out, counts, Q * sizeof(int64_t));
    aligned_free(qpack), aligned_free(thr), aligned_free(counts), aligned_free(cpack);
    return 0;
}

/* ---------------------------------------------------------------- Python bindings */

PyDoc_STRVAR(count_doc,
             "count_outscoring(queries, candidates, dim, thresholds, out, threads, isa=None)\n\n"
             "Writes into `out` (int64 [Q]) the number of candidates c with fma-chain score q . c strictly\n"
             "greater than the query's threshold. Buffers are C-contiguous: queries float32 [Q, dim],\n"
             "candidates float32 [N, dim], thresholds float32 [Q]. Releases the GIL.");

static PyObject *py_count_outscoring(PyObject *self, PyObject *args) {
    Py_buffer qb, cb, tb, ob;
    Py_ssize_t dim;
    int threads;
    PyObject *isa_obj = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*ny*w*i|O", &qb, &cb, &dim, &tb, &ob, &threads, &isa_obj)) return NULL;
    PyObject *result = NULL;
    const int isa = parse_isa(isa_obj);
    if (isa < 0) goto done;
    if (dim < 0 || threads < 1 || threads > RK_MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "`dim` must be >= 0 and `threads` in [1, %d]. Got %zd and %d.",
                     RK_MAX_THREADS, dim, threads);
        goto done;
    }
    const size_t D = (size_t)dim, Q = (size_t)tb.len / sizeof(float);
    const size_t N = D ? (size_t)cb.len / (D * sizeof(float)) : 0;
    if (check_size("thresholds", &tb, Q * sizeof(float)) || check_size("queries", &qb, Q * D * sizeof(float)) ||
        check_size("candidates", &cb, N * D * sizeof(float)) || check_size("out", &ob, Q * sizeof(int64_t)))
        goto done;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = count_outscoring_impl(qb.buf, cb.buf, tb.buf, ob.buf, Q, N, D, threads, isa);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&qb), PyBuffer_Release(&cb), PyBuffer_Release(&tb), PyBuffer_Release(&ob);
    return result;
}

PyDoc_STRVAR(pair_doc,
             "pair_scores(queries, candidates, dim, query_rows, candidate_rows, out)\n\n"
             "Writes into `out` (float32 [P]) the fma-chain score of each (query row, candidate row)\n"
             "pair, bit-identical to the kernel's score of that pair. Rows are int64 [P].");

static PyObject *py_pair_scores(PyObject *self, PyObject *args) {
    Py_buffer qb, cb, qr, cr, ob;
    Py_ssize_t dim;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*ny*y*w*", &qb, &cb, &dim, &qr, &cr, &ob)) return NULL;
    PyObject *result = NULL;
    if (dim < 1) {
        PyErr_Format(PyExc_ValueError, "`dim` must be >= 1. Got %zd.", dim);
        goto done;
    }
    const size_t D = (size_t)dim, P = (size_t)qr.len / sizeof(int64_t);
    const size_t Q = (size_t)qb.len / (D * sizeof(float)), N = (size_t)cb.len / (D * sizeof(float));
    if (check_size("candidate_rows", &cr, P * sizeof(int64_t)) || check_size("out", &ob, P * sizeof(float)))
        goto done;
    const int64_t *qi = qr.buf, *ci = cr.buf;
    for (size_t i = 0; i < P; ++i) {
        if (qi[i] < 0 || (size_t)qi[i] >= Q || ci[i] < 0 || (size_t)ci[i] >= N) {
            PyErr_Format(PyExc_IndexError, "pair %zu: rows (%lld, %lld) outside [0, %zu) x [0, %zu).", i,
                         (long long)qi[i], (long long)ci[i], Q, N);
            goto done;
        }
    }
    const float *queries = qb.buf, *candidates = cb.buf;
    float *out = ob.buf;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < P; ++i) out[i] = dot_fma(queries + qi[i] * D, candidates + ci[i] * D, D);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&qb), PyBuffer_Release(&cb), PyBuffer_Release(&qr), PyBuffer_Release(&cr);
    PyBuffer_Release(&ob);
    return result;
}

/* Whether the portable path's fmaf is an instruction: on x86-64 without -mfma it is a libm call per
 * multiply-add, far slower than the TF fallback, so `fast_ranks.available()` says no to it. */
#ifdef __FP_FAST_FMAF
#define RK_PORTABLE_FAST 1
#else
#define RK_PORTABLE_FAST 0
#endif

static PyObject *py_best_isa(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyUnicode_FromString(isa_names[best_isa()]);
}

static PyMethodDef methods[] = {
    {"count_outscoring", py_count_outscoring, METH_VARARGS, count_doc},
    {"pair_scores", py_pair_scores, METH_VARARGS, pair_doc},
    {"best_isa", py_best_isa, METH_NOARGS, "The fastest code path this CPU runs: 'avx512', 'avx2' or 'portable'."},
    {"supported_isas", py_supported_isas, METH_NOARGS, "The code paths this CPU runs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rank_kernel",
    "Fused rank-counting kernels for tfrs_twotower.metrics (see fast_ranks.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rank_kernel(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "PORTABLE_IS_FAST", RK_PORTABLE_FAST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
