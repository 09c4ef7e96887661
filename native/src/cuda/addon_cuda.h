// Registers the CUDA backend's classes on the addon's exports (called from ../addon.cpp when built with CUDA).
#pragma once
#include <napi.h>

namespace bp::cuda {
void registerAddon(Napi::Env env, Napi::Object exports);
}
