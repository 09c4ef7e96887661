// Registers the CUDA backend's classes on the addon's exports (called from ../addon.cpp when built with CUDA):
// the bf16 build's `CudaModel` and `cudaDevices()`, and the fp16 build's `CudaModelFp16` (see namespace.h).
#pragma once
#include <napi.h>

namespace bp::cuda {
void registerAddon(Napi::Env env, Napi::Object exports);
}
namespace bp::cuda_fp16 {
void registerAddon(Napi::Env env, Napi::Object exports);
}
