// Matrix products, row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// Backed by OpenBLAS sgemm (always called single-threaded: OpenMP owns the cores) or, when the build
// found no BLAS, by the built-in blocked kernel in gemm.cpp; in BF16 precision by AMX tiles (gemm_amx.cpp).
#pragma once

namespace bp {

// Arithmetic of the large products: FP32 (default; exact IEEE sgemm) or BF16 (operands rounded to bf16, fp32
// accumulation, on AMX tiles where the CPU has them; elsewhere it stays FP32). Small products always stay FP32.
// The setting belongs to the calling thread (MatmulPrecisionScope, set for the duration of a model call), so
// models with different settings can run side by side; the threads of a parallel gemm() follow the caller.
enum class MatmulPrecision { FP32, BF16 };

class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p);
  ~MatmulPrecisionScope();
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision saved_;
};

// The calling thread's current setting.
MatmulPrecision currentMatmulPrecision();

// "fp32" or "bf16-amx": what the large products run as under precision p on this machine.
const char* matmulKernelName(MatmulPrecision p);

// One product on the calling thread at the given precision (use inside parallel regions, passing the precision
// read with currentMatmulPrecision() before the region: pool threads do not inherit the caller's setting).
void gemmSerial(MatmulPrecision precision, bool transA, bool transB, int M, int N, int K, float alpha,
                const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);

// The same in FP32.
inline void gemmSerial(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                       const float* B, int ldb, float beta, float* C, int ldc) {
  gemmSerial(MatmulPrecision::FP32, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// The same product split over all threads (by rows of C, or by columns when C is short and wide), at the
// calling thread's precision.
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// "openblas" or "builtin".
const char* gemmBackendName();
void setThreads(int n);
int getThreads();

}  // namespace bp
