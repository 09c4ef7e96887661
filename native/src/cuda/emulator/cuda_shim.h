// The CUDA device-code vocabulary for the host compiler (BP_CUDA_EMULATOR=1): the kernel sources compile
// unchanged and run on the CPU emulator (emulator.h). common.cuh includes this after the CUDA headers.
//  - __shared__ variables become static thread_local: one instance shared by the fibers of the block that runs
//    on this OS thread (blocks of a grid run one after another, so each sees the tile as its own);
//  - threadIdx & co. read the running fiber's indices; __syncthreads and the shuffles are the emulator's barriers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "emulator.h"

#undef __shared__
#define __shared__ static thread_local
#define __launch_bounds__(...)
#define threadIdx (::bp::emu::self().threadIdx)
#define blockIdx (::bp::emu::self().blockIdx)
#define blockDim (::bp::emu::self().blockDim)
#define gridDim (::bp::emu::self().gridDim)

inline void __syncthreads() { ::bp::emu::syncBlock(); }
template <class T>
inline T __shfl_xor_sync(unsigned /*mask: the kernels pass the full warp*/, T v, int laneMask, int width = 32) {
  if (width != 32) ::bp::emu::deviceError("__shfl_xor_sync with a width below 32");
  return ::bp::emu::shuffleXor(v, laneMask);
}
// device code's global min/max of mixed arithmetic types
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}
// Atomic by construction: the threads of a block take turns on one OS thread and switch only at barriers
template <class T>
inline T atomicAdd(T* at, T v) {
  const T old = *at;
  *at = old + v;
  return old;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }

// kernel<<<grid, block, smem, stream>>>(args) as BP_LAUNCH(kernel, grid, block, smem, stream)(args)
#define BP_LAUNCH(kernel, grid, block, smem, stream) ::bp::emu::Launch((kernel), (grid), (block), (smem))
// extern __shared__ type name[]: the launch's dynamic shared bytes, filled with 0xff (NaN as floats) per block
#define BP_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::bp::emu::dynamicShared())
