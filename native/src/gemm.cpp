#include "gemm.h"
#include "gemm_amx.h"

#include <algorithm>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef BACKPACK_HAVE_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace bp {

static int g_threads = 0;
static thread_local MatmulPrecision t_precision = MatmulPrecision::FP32;

MatmulPrecisionScope::MatmulPrecisionScope(MatmulPrecision p) : saved_(t_precision) { t_precision = p; }
MatmulPrecisionScope::~MatmulPrecisionScope() { t_precision = saved_; }

MatmulPrecision currentMatmulPrecision() { return t_precision; }

const char* matmulKernelName(MatmulPrecision p) {
  return p == MatmulPrecision::BF16 && amxAvailable() ? "bf16-amx" : "fp32";
}

// Products below this many multiply-adds (or with a tiny inner dimension) stay FP32: packing into tiles would
// cost more than it saves.
static bool worthBf16(int M, int N, int K) { return K >= 16 && M >= 16 && N >= 16 && (double)M * N * K >= 262144.0; }

void setThreads(int n) {
#ifdef _OPENMP
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
#else
  n = 1;
#endif
  g_threads = n;
#ifdef BACKPACK_HAVE_OPENBLAS
  openblas_set_num_threads(1);
#endif
}

int getThreads() {
  if (g_threads == 0) setThreads(0);
  return g_threads;
}

const char* gemmBackendName() {
#ifdef BACKPACK_HAVE_OPENBLAS
  return "openblas";
#else
  return "builtin";
#endif
}

#ifndef BACKPACK_HAVE_OPENBLAS
// Built-in kernel: op(B) is packed into a contiguous [kb][N] panel per K block, then every row of C
// accumulates a*panel rows; the inner loop runs over N and is vectorised by the compiler.
static void builtinGemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                        const float* B, int ldb, float beta, float* C, int ldc) {
  thread_local std::vector<float> panel;
  const int KB = 128;
  for (int i = 0; i < M; i++) {
    float* c = C + (size_t)i * ldc;
    if (beta == 0.0f) std::memset(c, 0, sizeof(float) * N);
    else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
  }
  panel.resize((size_t)KB * N);
  for (int k0 = 0; k0 < K; k0 += KB) {
    int kb = std::min(KB, K - k0);
    for (int k = 0; k < kb; k++) {
      float* p = panel.data() + (size_t)k * N;
      if (!transB) std::memcpy(p, B + (size_t)(k0 + k) * ldb, sizeof(float) * N);
      else for (int j = 0; j < N; j++) p[j] = B[(size_t)j * ldb + k0 + k];
    }
    for (int i = 0; i < M; i++) {
      float* __restrict c = C + (size_t)i * ldc;
      for (int k = 0; k < kb; k++) {
        float a = alpha * (transA ? A[(size_t)(k0 + k) * lda + i] : A[(size_t)i * lda + k0 + k]);
        if (a == 0.0f) continue;
        const float* __restrict p = panel.data() + (size_t)k * N;
        for (int j = 0; j < N; j++) c[j] += a * p[j];
      }
    }
  }
}
#endif

static void gemmSerialAs(MatmulPrecision precision, bool transA, bool transB, int M, int N, int K, float alpha,
                         const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    return;
  }
  if (precision == MatmulPrecision::BF16 && worthBf16(M, N, K) &&
      amxGemmSerial(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    return;
#ifdef BACKPACK_HAVE_OPENBLAS
  if (M == 1) {
    // One output row (a KV-cache decode step of one sequence): sgemv streams op(B) once and is about twice as
    // fast as sgemm on a 1-row problem. y[N] = alpha * op(B)^T x + beta * y, x = op(A)'s row.
    cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, transB ? N : K, transB ? K : N, alpha, B, ldb, A,
                transA ? lda : 1, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
#else
  builtinGemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemmSerial(MatmulPrecision precision, bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  gemmSerialAs(precision, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  const MatmulPrecision precision = t_precision;  // the worker threads below follow the calling thread
  int nt = getThreads();
  if (nt <= 1 || (size_t)M * N * K < 32768) {
    gemmSerialAs(precision, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger output dimension; chunk edges on multiples of 16 keep vector kernels whole.
  bool byRows = M >= N || N < 16 * nt;
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    int t = omp_get_thread_num();
#else
    int t = 0;
#endif
    int total = byRows ? M : N;
    int chunk = (total + nt - 1) / nt;
    chunk = (chunk + 15) / 16 * 16;
    int lo = std::min(total, t * chunk), hi = std::min(total, lo + chunk);
    if (hi > lo) {
      if (byRows) {
        const float* a = transA ? A + lo : A + (size_t)lo * lda;
        gemmSerialAs(precision, transA, transB, hi - lo, N, K, alpha, a, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
      } else {
        const float* b = transB ? B + (size_t)lo * ldb : B + lo;
        gemmSerialAs(precision, transA, transB, M, hi - lo, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
      }
    }
  }
}

}  // namespace bp
