// Fully connected layer y = x W^T + b (W [OC][IC]); bias gradient as a GEMV against a ones vector.
#include "layers.cuh"
#include "vec4.cuh"

namespace bp::cuda {

__global__ void addBiasKernel(float* out, const float* bias, long total, int OC, bf16* out16) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  out[i] += bias[i % OC];
  if (out16) out16[i] = __float2bfloat16_rn(out[i]);
}

__global__ void addBiasKernel4(float4* out, const float4* bias, int n4, int OC4, bf16* out16) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 y = add4(out[i], bias[i % OC4]);
  out[i] = y;
  if (out16) store4(out16, i, y);
}

void addBias(float* out, const float* bias, int N, int OC, cudaStream_t st, bf16* out16) {
  long total = (long)N * OC;
  if (total <= 0) return;
  if (vec4Fits(total, OC) && aligned4(out) && aligned4(bias) && aligned4(out16)) {
    const int n4 = (int)(total / 4);
    addBiasKernel4<<<blocksFor(n4, 256), 256, 0, st>>>(reinterpret_cast<float4*>(out),
                                                       reinterpret_cast<const float4*>(bias), n4, OC / 4, out16);
  } else {
    addBiasKernel<<<blocksFor(total, 256), 256, 0, st>>>(out, bias, total, OC, out16);
  }
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

void linearForward16(const Blas& b, float* out, const bf16* inp16, const bf16* w16, const float* bias, int N, int IC,
                     int OC) {
  gemm16(b, false, true, N, OC, IC, 1.0f, inp16, IC, w16, IC, 0.0f, out, OC);
  if (bias) addBias(out, bias, N, OC, b.stream);
}

// 32 columns per block (one coalesced 128-byte row segment per warp), 8 row lanes over a slice of kBiasRows
// rows; one atomic add per column and block.
constexpr int kBiasRows = 256;
__global__ void biasGradKernel(float* db, const float* dout, int N, int OC) {
  __shared__ float part[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int r0 = blockIdx.y * kBiasRows, r1 = min(N, r0 + kBiasRows);
  float s = 0.0f;
  if (c < OC)
    for (int r = r0 + threadIdx.y; r < r1; r += 8) s += dout[(long)r * OC + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    float t = 0.0f;
    for (int y = 0; y < 8; y++) t += part[y][threadIdx.x];
    atomicAdd(&db[c], t);
  }
}

void biasGradient(float* db, const float* dout, int N, int OC, cudaStream_t st) {
  if (N <= 0 || OC <= 0) return;
  const dim3 grid((OC + 31) / 32, (N + kBiasRows - 1) / kBiasRows), block(32, 8);
  biasGradKernel<<<grid, block, 0, st>>>(db, dout, N, OC);
  BP_LAUNCHED();
}

void linearBackward16(const Blas& b, float* dinp, float* dw, float* db, const float* dout, bf16* dout16,
                      const bf16* inp16, const bf16* w16, int N, int IC, int OC, bool accumulate,
                      bool doutRounded) {
  if (!doutRounded) toBf16(dout16, dout, (long)N * OC, b.stream);
  if (dinp) gemm16(b, false, false, N, IC, OC, 1.0f, dout16, OC, w16, IC, accumulate ? 1.0f : 0.0f, dinp, IC);
  gemm16(b, true, false, OC, IC, N, 1.0f, dout16, OC, inp16, IC, 1.0f, dw, IC);
  if (db) biasGradient(db, dout, N, OC, b.stream);
}

}  // namespace bp::cuda
