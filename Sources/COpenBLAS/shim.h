#ifndef ALLOY_COPENBLAS_SHIM_H
#define ALLOY_COPENBLAS_SHIM_H
#include <cblas.h>

/* LAPACK's single-precision SVD (column-major), bundled in OpenBLAS. */
void sgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, float *a, const int *lda,
             float *s, float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *info);
#endif
