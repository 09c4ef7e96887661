// Fully connected layer y = x W^T + b (W [OC][IC]); bias gradient as a GEMV against a ones vector.
#include "layers.cuh"

namespace bp::cuda {

__global__ void addBiasKernel(float* out, const float* bias, long total, int OC) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total) out[i] += bias[i % OC];
}

void addBias(float* out, const float* bias, int N, int OC, cudaStream_t st) {
  long total = (long)N * OC;
  if (total <= 0) return;
  addBiasKernel<<<blocksFor(total, 256), 256, 0, st>>>(out, bias, total, OC);
  BP_LAUNCHED();
}

void linearForward(const Blas& b, float* out, const float* inp, const float* w, const float* bias, int N, int IC,
                   int OC) {
  gemm(b, false, true, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
  if (bias) addBias(out, bias, N, OC, b.stream);
}

void linearBackward(const Blas& b, float* dinp, float* dw, float* db, const float* dout, const float* inp,
                    const float* w, int N, int IC, int OC, bool accumulate, const float* ones) {
  if (dinp) gemm(b, false, false, N, IC, OC, 1.0f, dout, OC, w, IC, accumulate ? 1.0f : 0.0f, dinp, IC);
  gemm(b, true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
  // db[1][OC] += ones[1][N] . dout[N][OC]
  if (db) gemm(b, false, false, 1, OC, N, 1.0f, ones, N, dout, OC, 1.0f, db, OC);
}

}  // namespace bp::cuda
