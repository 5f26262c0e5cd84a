#ifndef ALLOY_COPENBLAS_SHIM_H
#define ALLOY_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
