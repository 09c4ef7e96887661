// Four-elements-per-thread helpers of the elementwise kernels: one 16-byte load or store per fp32 operand, 8 bytes
// per bf16 twin, and 32-bit index arithmetic (the per-element 64-bit `i % OC` of the scalar kernels is slow).
#pragma once

#include <climits>
#include <cstdint>

#include "half16.cuh"

namespace bp::BP_CUDA_NS {

// n elements in rows of OC: whole float4s per row, and few enough float4s for int indices
inline bool vec4Fits(long n, int OC) { return n % 4 == 0 && OC % 4 == 0 && n / 4 < INT_MAX; }
// null (an absent optional operand) or 16-byte aligned (every arena buffer is 256-byte aligned)
inline bool aligned4(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
// elements 4i .. 4i+3 of a bf16 array, rounded to nearest even
__device__ __forceinline__ void store4(half16* dst, int i, float4 v) {
  half16x2 lo = round16x2(v.x, v.y), hi = round16x2(v.z, v.w);
  reinterpret_cast<uint2*>(dst)[i] = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
}

// elements 4i .. 4i+3 of a bf16 array, widened
__device__ __forceinline__ float4 load4(const half16* src, int i) {
  const uint2 u = reinterpret_cast<const uint2*>(src)[i];
  const float2 lo = widen16x2(*reinterpret_cast<const half16x2*>(&u.x));
  const float2 hi = widen16x2(*reinterpret_cast<const half16x2*>(&u.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
__device__ __forceinline__ float4 load4(const float* src, int i) { return reinterpret_cast<const float4*>(src)[i]; }

}  // namespace bp::BP_CUDA_NS
