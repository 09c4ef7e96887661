// Matrix products, row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// Backed by OpenBLAS sgemm (always called single-threaded: OpenMP owns the cores) or, when the build
// found no BLAS, by the built-in blocked kernel in gemm.cpp.
#pragma once

namespace bp {

// One product on the calling thread (use inside parallel regions).
void gemmSerial(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc);

// The same product split over all threads (by rows of C, or by columns when C is short and wide).
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// "openblas" or "builtin".
const char* gemmBackendName();
void setThreads(int n);
int getThreads();

}  // namespace bp
