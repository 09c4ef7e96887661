// Row-major products on cuBLAS: a row-major C = A B is the column-major C^T = B^T A^T, so the operands swap.
#include <cublas_v2.h>

#include <cstdint>
#include <string>

#include "layers.cuh"

namespace bp::BP_CUDA_NS {

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
  b.flopsFp32 += 2.0 * M * N * K;
  blasCheck(cublasGemmEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                         CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, b.compute,
                         CUBLAS_GEMM_DEFAULT),
            "gemm");
}

void gemm16(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const half16* A, int lda,
            const half16* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  b.flops16 += 2.0 * M * N * K;
  blasCheck(cublasGemmEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                         kHalf16Type, ldb, A, kHalf16Type, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            "half16 gemm");
}

void gemm16to16(const Blas& b, bool tA, bool tB, int M, int N, int K, const half16* A, int lda, const half16* B,
                int ldb, half16* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  b.flops16 += 2.0 * M * N * K;
  const float one = 1.0f, zero = 0.0f;
  blasCheck(cublasGemmEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one, B,
                         kHalf16Type, ldb, A, kHalf16Type, lda, &zero, C, kHalf16Type, ldc, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            "half16 gemm with a half16 result");
}

bool half16GemmWorks(const Blas& b, bool batched) {
  constexpr int n = 16;
  half16* ab = nullptr;
  float* c = nullptr;
  void** ptrs = nullptr;
  BP_CUDA(cudaMalloc(&ab, sizeof(half16) * 2 * n * n));
  BP_CUDA(cudaMalloc(&c, sizeof(float) * n * n));
  BP_CUDA(cudaMalloc(&ptrs, sizeof(void*) * 3));
  BP_CUDA(cudaMemsetAsync(ab, 0, sizeof(half16) * 2 * n * n, b.stream));
  void* host[3] = {ab, ab + n * n, c};
  BP_CUDA(cudaMemcpyAsync(ptrs, host, sizeof(host), cudaMemcpyHostToDevice, b.stream));
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t s;
  if (batched)
    s = cublasGemmBatchedEx(b.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, (const void* const*)ptrs, kHalf16Type, n,
                            (const void* const*)(ptrs + 1), kHalf16Type, n, &zero, (void* const*)(ptrs + 2), CUDA_R_32F,
                            n, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  else
    s = cublasGemmEx(b.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, ab, kHalf16Type, n, ab + n * n, kHalf16Type, n,
                     &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  const cudaError_t e = cudaStreamSynchronize(b.stream);
  cudaFree(ab);
  cudaFree(c);
  cudaFree(ptrs);
  if (e != cudaSuccess) cudaFail(e, "half16 GEMM probe", __FILE__, __LINE__);
  return s == CUBLAS_STATUS_SUCCESS;
}

// Four elements per thread; 8-byte bf16 stores when both pointers allow it.
__global__ void toHalf16Kernel(half16* dst, const float* src, long n, bool vec) {
  const long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 4;
  if (i >= n) return;
  if (vec && i + 4 <= n) {
    const float4 v = *reinterpret_cast<const float4*>(src + i);
    half16x2* d = reinterpret_cast<half16x2*>(dst + i);
    d[0] = round16x2(v.x, v.y);
    d[1] = round16x2(v.z, v.w);
    return;
  }
  for (long j = i; j < n && j < i + 4; j++) dst[j] = round16(src[j]);
}

void toHalf16(half16* dst, const float* src, long n, cudaStream_t st) {
  if (n <= 0) return;
  const bool vec = ((uintptr_t)src % 16) == 0 && ((uintptr_t)dst % 8) == 0;
  BP_LAUNCH(toHalf16Kernel, blocksFor((n + 3) / 4, 256), 256, 0, st)(dst, src, n, vec);
  BP_LAUNCHED();
}

// Strided batched product on fp32 operands (the configured compute type) or bf16 ones (fp32 accumulation)
static void stridedBatched(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const void* A, int lda,
                           long sA, const void* B, int ldb, long sB, float beta, float* C, int ldc, long sC, int batch,
                           bool operands16) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  (operands16 ? b.flops16 : b.flopsFp32) += 2.0 * M * N * K * batch;
  const cudaDataType type = operands16 ? kHalf16Type : CUDA_R_32F;
  blasCheck(cublasGemmStridedBatchedEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                       K, &alpha, B, type, ldb, sB, A, type, lda, sA, &beta, C, CUDA_R_32F, ldc, sC,
                                       batch, operands16 ? CUBLAS_COMPUTE_32F : b.compute, CUBLAS_GEMM_DEFAULT),
            operands16 ? "half16 strided batched gemm" : "strided batched gemm");
}

void gemmStrided(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, long sA,
                 const float* B, int ldb, long sB, float beta, float* C, int ldc, long sC, int batch) {
  stridedBatched(b, tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, false);
}

void gemmStrided(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const half16* A, int lda, long sA,
                 const half16* B, int ldb, long sB, float beta, float* C, int ldc, long sC, int batch) {
  stridedBatched(b, tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, true);
}

void gemmBatched(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* const* A, int lda,
                 const float* const* B, int ldb, float beta, float* const* C, int ldc, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  b.flopsFp32 += 2.0 * M * N * K * batch;
  blasCheck(cublasGemmBatchedEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                &alpha, (const void* const*)B, CUDA_R_32F, ldb, (const void* const*)A, CUDA_R_32F, lda,
                                &beta, (void* const*)C, CUDA_R_32F, ldc, batch, b.compute, CUBLAS_GEMM_DEFAULT),
            "batched gemm");
}

void gemmBatched16(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const half16* const* A, int lda,
                   const half16* const* B, int ldb, float beta, float* const* C, int ldc, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  b.flops16 += 2.0 * M * N * K * batch;
  blasCheck(cublasGemmBatchedEx(b.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                &alpha, (const void* const*)B, kHalf16Type, ldb, (const void* const*)A, kHalf16Type,
                                lda, &beta, (void* const*)C, CUDA_R_32F, ldc, batch, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
            "half16 batched gemm");
}

template <typename T>
__global__ void fillPointersKernel(const T** out, const T* base, long outer, long inner, int n, int count) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) out[i] = base + (long)(i / n) * outer + (long)(i % n) * inner;
}

void fillPointers(const float** out, const float* base, long outerStride, long innerStride, int inner, int count,
                  cudaStream_t st) {
  if (count <= 0) return;
  BP_LAUNCH(fillPointersKernel<float>, blocksFor(count, 256), 256, 0, st)
  (out, base, outerStride, innerStride, inner, count);
  BP_LAUNCHED();
}

void fillPointers(const half16** out, const half16* base, long outerStride, long innerStride, int inner, int count,
                  cudaStream_t st) {
  if (count <= 0) return;
  BP_LAUNCH(fillPointersKernel<half16>, blocksFor(count, 256), 256, 0, st)
  (out, base, outerStride, innerStride, inner, count);
  BP_LAUNCHED();
}

}  // namespace bp::BP_CUDA_NS
