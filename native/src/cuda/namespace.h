// The CUDA backend compiles twice, once per 16-bit GEMM operand type (half16.cuh): bf16 in namespace bp::BP_CUDA_NS,
// IEEE fp16 in bp::cuda_fp16 (BP_CUDA_FP16=1). Separate namespaces let both builds link into one addon.
#pragma once
#if defined(BP_CUDA_FP16) && BP_CUDA_FP16
#define BP_CUDA_NS cuda_fp16
#else
#define BP_CUDA_NS cuda
#endif
