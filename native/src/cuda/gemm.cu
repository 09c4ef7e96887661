// Row-major products on cuBLAS: a row-major C = A B is the column-major C^T = B^T A^T, so the operands swap.
#include <cublas_v2.h>

#include <string>

#include "layers.cuh"

namespace bp::cuda {

void cudaFail(cudaError_t e, const char* what, const char* file, int line) {
  throw Error(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " + what +
              " at " + file + ":" + std::to_string(line));
}

static void blasCheck(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS ") + what + " failed with status " + std::to_string((int)s));
}

void gemm(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  blasCheck(cublasGemmEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                         CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, b.compute,
                         CUBLAS_GEMM_DEFAULT),
            "gemm");
}

void gemmStrided(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, long sA,
                 const float* B, int ldb, long sB, float beta, float* C, int ldc, long sC, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  blasCheck(cublasGemmStridedBatchedEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                       K, &alpha, B, CUDA_R_32F, ldb, sB, A, CUDA_R_32F, lda, sA, &beta, C, CUDA_R_32F,
                                       ldc, sC, batch, b.compute, CUBLAS_GEMM_DEFAULT),
            "strided batched gemm");
}

void gemmBatched(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* const* A, int lda,
                 const float* const* B, int ldb, float beta, float* const* C, int ldc, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  blasCheck(cublasGemmBatchedEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                &alpha, (const void* const*)B, CUDA_R_32F, ldb, (const void* const*)A, CUDA_R_32F, lda,
                                &beta, (void* const*)C, CUDA_R_32F, ldc, batch, b.compute, CUBLAS_GEMM_DEFAULT),
            "batched gemm");
}

__global__ void fillPointersKernel(const float** out, const float* base, long outer, long inner, int n, int count) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) out[i] = base + (long)(i / n) * outer + (long)(i % n) * inner;
}

void fillPointers(const float** out, const float* base, long outerStride, long innerStride, int inner, int count,
                  cudaStream_t st) {
  if (count <= 0) return;
  fillPointersKernel<<<blocksFor(count, 256), 256, 0, st>>>(out, base, outerStride, innerStride, inner, count);
  BP_LAUNCHED();
}

}  // namespace bp::cuda
