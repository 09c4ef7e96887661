// Shared CUDA helpers of the GPU backend: error checks, the counter-based RNG (bit-identical to ../rng.h so
// dropout masks match the CPU backend), warp reductions and launch sizing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common.h"
#include "namespace.h"

// Kernel launches are written BP_LAUNCH(kernel, grid, block, smem, stream)(args...) and dynamic shared memory
// BP_DYNAMIC_SHARED(type, name), so the same code also runs on the CPU emulator (emulator/, BP_CUDA_EMULATOR=1),
// which cannot parse <<< >>> nor give extern __shared__ arrays their launch-time size.
#if defined(BP_CUDA_EMULATOR) && BP_CUDA_EMULATOR
#include "emulator/cuda_shim.h"
#else
#define BP_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define BP_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace bp::BP_CUDA_NS {

// Whether the environment variable `name` is set to exactly `value` (the engine's on/off knobs).
inline bool envIs(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, value) == 0;
}

[[noreturn]] void cudaFail(cudaError_t e, const char* what, const char* file, int line);
#define BP_CUDA(call)                                                       \
  do {                                                                      \
    cudaError_t e_ = (call);                                                \
    if (e_ != cudaSuccess) ::bp::BP_CUDA_NS::cudaFail(e_, #call, __FILE__, __LINE__); \
  } while (0)
// After a kernel launch: reports bad launch configurations at the call site.
#define BP_LAUNCHED() BP_CUDA(cudaGetLastError())

__device__ __forceinline__ uint32_t dmix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
__device__ __forceinline__ uint32_t dhash32(uint32_t key, uint32_t index) {
  return dmix32(key ^ dmix32(index + 0x9e3779b9U));
}
__device__ __forceinline__ float duniform01(uint32_t key, uint32_t index) {
  return (float)(dhash32(key, index) >> 8) * (1.0f / 16777216.0f);
}
// rng.h's attention-dropout draw (keep16): 16 bits per element, two elements per hash
__device__ __forceinline__ uint32_t dkeepThreshold16(float p) { return (uint32_t)ceilf(p * 65536.0f); }
__device__ __forceinline__ bool dkeep16(uint32_t key, uint32_t index, uint32_t threshold) {
  const uint32_t h = dhash32(key, index >> 1);
  return ((index & 1u) ? h >> 16 : h & 0xffffu) >= threshold;
}
// Keep-scale of attention probability `index` (p == 0: always 1)
__device__ __forceinline__ float dkeepAttention(float p, uint32_t key, uint32_t index) {
  if (p <= 0.0f) return 1.0f;
  return dkeep16(key, index, dkeepThreshold16(p)) ? 1.0f / (1.0f - p) : 0.0f;
}
// Keep-scale of element i of a dropout site (p == 0: always 1).
__device__ __forceinline__ float dkeep(float p, uint32_t key, uint32_t i) {
  if (p <= 0.0f) return 1.0f;
  return duniform01(key, i) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

inline unsigned blocksFor(long n, int threads) { return (unsigned)((n + threads - 1) / threads); }

}  // namespace bp::BP_CUDA_NS
