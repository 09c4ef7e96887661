// half16: the 16-bit GEMM operand type of this build of the CUDA backend (see namespace.h).
//  - bp::cuda: bfloat16, for precisions fp32, tf32 and bf16;
//  - bp::cuda_fp16 (BP_CUDA_FP16=1): IEEE fp16, for precision fp16, the paper's AMP arithmetic (trained with loss
//    scaling: fp16 keeps 10 mantissa bits but overflows above 65504).
// Comments across the backend say "bf16" for half16, as in the default build: read "the 16-bit operand type".
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

#include "namespace.h"

namespace bp::BP_CUDA_NS {

#if defined(BP_CUDA_FP16) && BP_CUDA_FP16
using half16 = __half;
using half16x2 = __half2;
constexpr cudaDataType_t kHalf16Type = CUDA_R_16F;
constexpr const char* kHalf16Name = "fp16";
constexpr bool kFp16Build = true;
__host__ __device__ __forceinline__ half16 round16(float x) { return __float2half_rn(x); }
__host__ __device__ __forceinline__ float widen16(half16 x) { return __half2float(x); }
__device__ __forceinline__ half16x2 round16x2(float lo, float hi) { return __floats2half2_rn(lo, hi); }
__device__ __forceinline__ float2 widen16x2(half16x2 x) { return __half22float2(x); }
// the operand type in the tensor-core instruction mma.sync...f32.<type>.<type>.f32
#define BP_MMA_TYPE16 "f16"
#else
using half16 = __nv_bfloat16;
using half16x2 = __nv_bfloat162;
constexpr cudaDataType_t kHalf16Type = CUDA_R_16BF;
constexpr const char* kHalf16Name = "bf16";
constexpr bool kFp16Build = false;
__host__ __device__ __forceinline__ half16 round16(float x) { return __float2bfloat16_rn(x); }
__host__ __device__ __forceinline__ float widen16(half16 x) { return __bfloat162float(x); }
__device__ __forceinline__ half16x2 round16x2(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
__device__ __forceinline__ float2 widen16x2(half16x2 x) { return __bfloat1622float2(x); }
#define BP_MMA_TYPE16 "bf16"
#endif

}  // namespace bp::BP_CUDA_NS
