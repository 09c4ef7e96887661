// The cuBLAS products the engine calls, for the CPU emulator: column-major C = alpha op(A) op(B) + beta C with
// fp32, bf16 or fp16 operands and outputs. The compute type's rounding is reproduced where it changes results:
// TF32 products round their fp32 operands to 10 mantissa bits, FAST_16BF products round them to bf16; sums run in
// double. cuBLASLt is reported unavailable (cublasLtCreate fails), so the engine takes its plain cuBLAS path, as
// it does where a GPU's Lt probe fails.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

float roundMantissa(float x, int bits) {  // round to nearest even, keeping `bits` explicit mantissa bits
  if (!std::isfinite(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const int drop = 23 - bits;
  const uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
  u = (u + half - 1 + lsb) & ~((1u << drop) - 1);
  std::memcpy(&x, &u, 4);
  return x;
}

struct Operand {
  const void* p;
  cudaDataType type;
  int ld;
  bool transposed;
  // element (r, c) of op(M), column-major storage
  float at(long r, long c) const {
    const long i = transposed ? r * ld + c : c * ld + r;
    switch (type) {
      case CUDA_R_32F:
        return static_cast<const float*>(p)[i];
      case CUDA_R_16BF:
        return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
      case CUDA_R_16F:
        return __half2float(static_cast<const __half*>(p)[i]);
      default:
        return NAN;
    }
  }
};

bool supported(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16BF || t == CUDA_R_16F; }

float computeRound(float x, cublasComputeType_t compute) {
  switch (compute) {
    case CUBLAS_COMPUTE_32F_FAST_TF32:
      return roundMantissa(x, 10);
    case CUBLAS_COMPUTE_32F_FAST_16BF:
      return __bfloat162float(__float2bfloat16_rn(x));
    case CUBLAS_COMPUTE_32F_FAST_16F:
      return __half2float(__float2half_rn(x));
    default:
      return x;
  }
}

cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha, const void* A,
                    cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, const void* beta, void* C,
                    cudaDataType ct, int ldc, cublasComputeType_t compute) {
  if (m < 0 || n < 0 || k < 0 || !supported(at) || !supported(bt) || !supported(ct)) return CUBLAS_STATUS_INVALID_VALUE;
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
      compute != CUBLAS_COMPUTE_32F_FAST_TF32 && compute != CUBLAS_COMPUTE_32F_FAST_16BF &&
      compute != CUBLAS_COMPUTE_32F_FAST_16F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const Operand opA{A, at, lda, ta != CUBLAS_OP_N}, opB{B, bt, ldb, tb != CUBLAS_OP_N};
  // fp32 operands take the compute type's rounding; 16-bit ones are exact in every compute type
  const bool roundA = at == CUDA_R_32F, roundB = bt == CUDA_R_32F;
  // op(B) widened (and rounded) once, column by column, rather than once per row of A
  std::vector<float> colsB((size_t)k * n), rowA(k);
  for (int c = 0; c < n; c++)
    for (int x = 0; x < k; x++) colsB[(size_t)c * k + x] = roundB ? computeRound(opB.at(x, c), compute) : opB.at(x, c);
  for (int r = 0; r < m; r++) {
    for (int x = 0; x < k; x++) rowA[x] = roundA ? computeRound(opA.at(r, x), compute) : opA.at(r, x);
    for (int c = 0; c < n; c++) {
      const float* colB = colsB.data() + (size_t)c * k;
      double sum = 0.0;
      for (int x = 0; x < k; x++) sum += (double)rowA[x] * colB[x];
      const long i = (long)c * ldc + r;
      float prior = 0.0f;
      if (b != 0.0f) prior = Operand{C, ct, ldc, false}.at(r, c);  // beta = 0: C is not read (may be NaN)
      const float v = (float)(a * sum + (b != 0.0f ? (double)b * prior : 0.0));
      switch (ct) {
        case CUDA_R_32F:
          static_cast<float*>(C)[i] = v;
          break;
        case CUDA_R_16BF:
          static_cast<__nv_bfloat16*>(C)[i] = __float2bfloat16_rn(v);
          break;
        default:
          static_cast<__half*>(C)[i] = __float2half_rn(v);
          break;
      }
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

size_t elementBytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType at, int lda, const void* B, cudaDataType bt,
                            int ldb, const void* beta, void* C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  return gemm(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc, compute);
}

cublasStatus_t cublasGemmBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* const A[], cudaDataType at, int lda,
                                   const void* const B[], cudaDataType bt, int ldb, const void* beta, void* const C[],
                                   cudaDataType ct, int ldc, int count, cublasComputeType_t compute, cublasGemmAlgo_t) {
  for (int i = 0; i < count; i++) {
    const cublasStatus_t s = gemm(ta, tb, m, n, k, alpha, A[i], at, lda, B[i], bt, ldb, beta, C[i], ct, ldc, compute);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType at, int lda,
                                          long long int sA, const void* B, cudaDataType bt, int ldb, long long int sB,
                                          const void* beta, void* C, cudaDataType ct, int ldc, long long int sC,
                                          int count, cublasComputeType_t compute, cublasGemmAlgo_t) {
  for (int i = 0; i < count; i++) {
    const cublasStatus_t s = gemm(ta, tb, m, n, k, alpha, static_cast<const char*>(A) + i * sA * elementBytes(at), at,
                                  lda, static_cast<const char*>(B) + i * sB * elementBytes(bt), bt, ldb, beta,
                                  static_cast<char*>(C) + i * sC * elementBytes(ct), ct, ldc, compute);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}

// cuBLASLt: unavailable
cublasStatus_t cublasLtCreate(cublasLtHandle_t*) { return CUBLAS_STATUS_NOT_SUPPORTED; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t) { return CUBLAS_STATUS_NOT_SUPPORTED; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t) { return CUBLAS_STATUS_NOT_SUPPORTED; }
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t, const void*,
                                              size_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t*, cudaDataType, uint64_t, uint64_t, int64_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t) { return CUBLAS_STATUS_NOT_SUPPORTED; }
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t*) { return CUBLAS_STATUS_NOT_SUPPORTED; }
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t) { return CUBLAS_STATUS_NOT_SUPPORTED; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void*, size_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int, cublasLtMatmulHeuristicResult_t[],
                                              int* count) {
  *count = 0;
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t, const void*, const void*, cublasLtMatrixLayout_t,
                              const void*, cublasLtMatrixLayout_t, const void*, const void*, cublasLtMatrixLayout_t,
                              void*, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

}  // extern "C"
