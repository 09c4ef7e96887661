// Node-API surface of the CUDA backend: `CudaModel` has the same methods as the CPU `NativeModel` (so the
// TypeScript facade drives either), plus `cudaDevices()`. Heavy calls run on the libuv pool and resolve a
// promise; inputs are copied on the JS thread first. Compiled once per build of the backend (namespace.h); the
// fp16 build (addon_cuda_fp16.cpp) registers the same class as `CudaModelFp16`.
#include "addon_cuda.h"

#include <memory>
#include <string>
#include <vector>

#include "../model_binding.h"
#include "engine.h"
#include "namespace.h"

namespace bp::BP_CUDA_NS {
namespace {

using napi::has;

#if defined(BP_CUDA_FP16) && BP_CUDA_FP16
constexpr const char* kClassName = "CudaModelFp16";
#else
constexpr const char* kClassName = "CudaModel";
#endif

class CudaModelWrap : public napi::ModelBinding<CudaModelWrap, Engine> {
 public:
  static Napi::Function Init(Napi::Env env) {
    auto methods = sharedMethods();
    methods.push_back(InstanceMethod("deviceInfo", &CudaModelWrap::DeviceInfo));
    return DefineClass(env, kClassName, methods);
  }

  // new CudaModel(rawConfig, {devices: number[], precision: 'fp32'|'tf32'|'bf16'}); CudaModelFp16: precision 'fp16'
  explicit CudaModelWrap(const Napi::CallbackInfo& info) : ModelBinding(info) {
    Napi::Env env = info.Env();
    const Config c = napi::parseConfig(env, info[0], "CudaModel(config, options)");
    std::vector<int> devices{0};
    std::string precision = "fp32";
    if (info[1].IsObject()) {
      Napi::Object opt = info[1].As<Napi::Object>();
      if (has(opt, "devices")) {
        if (!opt.Get("devices").IsArray()) throw Napi::TypeError::New(env, "devices must be an array of device indices");
        Napi::Array a = opt.Get("devices").As<Napi::Array>();
        devices.clear();
        for (uint32_t i = 0; i < a.Length(); i++) devices.push_back(a.Get(i).As<Napi::Number>().Int32Value());
      }
      if (has(opt, "precision")) precision = opt.Get("precision").ToString().Utf8Value();
    }
    try {
      backend = std::make_unique<Engine>(c, devices, precision);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

 private:
  Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
    auto o = Napi::Object::New(info.Env());
    auto arr = Napi::Array::New(info.Env(), backend->devices.size());
    for (size_t i = 0; i < backend->devices.size(); i++) arr.Set(i, backend->devices[i]);
    o.Set("devices", arr);
    o.Set("precision", backend->precision);
    o.Set("name", deviceName(backend->devices[0]));
    return o;
  }
};

Napi::Value CudaDevices(const Napi::CallbackInfo& info) {
  const int n = deviceCount();
  auto arr = Napi::Array::New(info.Env(), n);
  for (int i = 0; i < n; i++) {
    auto o = Napi::Object::New(info.Env());
    o.Set("index", i);
    o.Set("name", deviceName(i));
    arr.Set(i, o);
  }
  return arr;
}

}  // namespace

void registerAddon(Napi::Env env, Napi::Object exports) {
  exports.Set(kClassName, CudaModelWrap::Init(env));
  if (!exports.Has("cudaDevices")) exports.Set("cudaDevices", Napi::Function::New(env, CudaDevices));
}

}  // namespace bp::BP_CUDA_NS
