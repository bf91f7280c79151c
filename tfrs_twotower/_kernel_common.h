/* What the package's C kernels (metrics/_rank_kernel.c, tasks/_softmax_kernel.c) share: the code paths and
 * how one is chosen, 64-byte aligned buffers, and argument checks of their Python bindings. Include it
 * after Python.h, stdint.h, stdlib.h and string.h. */
#ifndef TFRS_TWOTOWER_KERNEL_COMMON_H
#define TFRS_TWOTOWER_KERNEL_COMMON_H

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define KC_X86 1
#include <immintrin.h>
#endif

enum { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static const char *const isa_names[] = {"portable", "avx2", "avx512"};

static inline int isa_supported(int isa) {
    if (isa == ISA_PORTABLE) return 1;
#ifdef KC_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == ISA_AVX512) return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

static inline int best_isa(void) {
    if (isa_supported(ISA_AVX512)) return ISA_AVX512;
    if (isa_supported(ISA_AVX2)) return ISA_AVX2;
    return ISA_PORTABLE;
}

/* 64-byte aligned memory (zeroed by aligned_zeros), or NULL; free with aligned_free. */
static inline void *aligned_buffer(size_t bytes) {
    void *p = NULL;
    bytes = (bytes + 63) / 64 * 64;
#if defined(_WIN32)
    p = _aligned_malloc(bytes ? bytes : 64, 64);
#else
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) p = NULL;
#endif
    return p;
}

static inline void *aligned_zeros(size_t bytes) {
    void *p = aligned_buffer(bytes);
    if (p) memset(p, 0, bytes ? bytes : 1);
    return p;
}

static inline void aligned_free(void *p) {
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

/* The `isa` argument of a binding: None -> the fastest this CPU runs; -1 with a ValueError if unknown. */
static inline int parse_isa(PyObject *name) {
    if (name == NULL || name == Py_None) return best_isa();
    for (int i = 0; i < 3; ++i) {
        if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, isa_names[i]) == 0) {
            if (!isa_supported(i)) {
                PyErr_Format(PyExc_ValueError, "The `isa` %s is not supported by this CPU or build.",
                             isa_names[i]);
                return -1;
            }
            return i;
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "The `isa` parameter must be one of 'portable', 'avx2', 'avx512' or None. Got %R instead.",
                 name);
    return -1;
}

/* 0, or -1 with a ValueError when a given buffer does not hold `expected` bytes (an unset one passes). */
static inline int check_size(const char *name, const Py_buffer *buf, size_t expected) {
    if (buf->buf != NULL && (size_t)buf->len != expected) {
        PyErr_Format(PyExc_ValueError, "`%s` must hold %zu bytes. Got %zd.", name, expected, buf->len);
        return -1;
    }
    return 0;
}

static inline PyObject *py_supported_isas(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    PyObject *list = PyList_New(0);
    for (int i = 0; list && i < 3; ++i) {
        if (!isa_supported(i)) continue;
        PyObject *name = PyUnicode_FromString(isa_names[i]);
        if (!name || PyList_Append(list, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(name);
    }
    return list;
}

#endif /* TFRS_TWOTOWER_KERNEL_COMMON_H */
