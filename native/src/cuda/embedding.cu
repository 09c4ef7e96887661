// Token (+ position) embedding lookup; backward scatters with atomics (rows of repeated tokens add up).
#include "layers.cuh"

namespace bp::BP_CUDA_NS {

__global__ void embedKernel(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                            const float* wpe, int N, int d, EmbedOverride ov) {
  int i = blockIdx.x;
  int t = tokens[i];
  const float* e = wte + (long)t * d;
  for (int r = 0; r < ov.count; r++)
    if (ov.ids[r] == t) e = ov.rows + (long)r * d;
  const float* p = positions ? wpe + (long)positions[i] * d : nullptr;
  float* o = out + (long)i * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) o[c] = e[c] + (p ? p[c] : 0.0f);
}

__global__ void embedBackKernel(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                                const int32_t* positions, int d) {
  int i = blockIdx.x;
  const float* g = dout + (long)i * d;
  float* w = dwte + (long)tokens[i] * d;
  float* p = positions ? dwpe + (long)positions[i] * d : nullptr;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    atomicAdd(w + c, g[c]);
    if (p) atomicAdd(p + c, g[c]);
  }
}

void embeddingForward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte, const float* wpe,
                      int N, int d, EmbedOverride ov, cudaStream_t st) {
  if (N <= 0) return;
  BP_LAUNCH(embedKernel, N, 256, 0, st)(out, tokens, positions, wte, wpe, N, d, ov);
  BP_LAUNCHED();
}

void embeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                       int N, int d, cudaStream_t st) {
  if (N <= 0) return;
  BP_LAUNCH(embedBackKernel, N, 256, 0, st)(dwte, dwpe, dout, tokens, positions, d);
  BP_LAUNCHED();
}

}  // namespace bp::BP_CUDA_NS
