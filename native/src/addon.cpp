// Node-API bindings. Heavy calls run on the libuv pool (Napi::AsyncWorker) and resolve a promise; a model
// runs one call at a time (the TypeScript facade queues them). Inputs are copied on the JS thread, so the
// worker never touches JS memory except the caller's cancel flag (an Int32Array it keeps referenced).
#include <napi.h>

#include <atomic>
#include <memory>

#include "gemm.h"
#include "gemm_amx.h"
#include "model.h"
#include "model_binding.h"
#include "roberta/addon_roberta.h"
#include "pplm/pplm_addon.h"
#ifdef BACKPACK_WITH_CUDA
#include "cuda/addon_cuda.h"
#endif

namespace {

using bp::Model;

// The CPU model behind the interface of the CUDA engine that model_binding.h drives: the host state is the model
// itself, so there is nothing to push or pull.
struct CpuEngine {
  Model host;
  // Arithmetic of this model's large matmuls (see gemm.h); applied on the worker thread of every call.
  std::atomic<bp::MatmulPrecision> precision{bp::MatmulPrecision::FP32};

  explicit CpuEngine(const bp::Config& c) : host(c) {}
  void pushParams() {}
  void pullParams() {}
  void pullGrads() {}
  void pushOptimizerState() {}
  void pullOptimizerState() {}
  double forward(const bp::ForwardRequest& r, long* counted) { return host.forward(r, counted); }
  double trainStep(const bp::ForwardRequest& r, long* counted) {
    const double loss = host.forward(r, counted);
    host.backward(r);
    return loss;
  }
  void zeroGrad() { host.zeroGrad(); }
  double optimizerStep(const bp::OptimizerArgs& o) { return host.optimizerStep(o); }
  void senseVectors(const int32_t* ids, int n, float* out, const bp::Interventions* iv) {
    host.senseVectors(ids, n, out, iv);
  }
  void cacheReset(int rows, int cap) { host.cacheReset(rows, cap); }
  void cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits, const bp::Interventions* iv) {
    host.cachePrefill(row0, n, tokens, T, lastLogits, iv);
  }
  void cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const bp::Interventions* iv) {
    host.cacheDecode(rowIds, n, tokens, logits, iv);
  }
};

class ModelWrap : public bp::napi::ModelBinding<ModelWrap, CpuEngine> {
 public:
  static Napi::Function Init(Napi::Env env) {
    auto methods = sharedMethods();
    methods.push_back(InstanceMethod("setMatmulPrecision", &ModelWrap::SetMatmulPrecision));
    return DefineClass(env, "NativeModel", methods);
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : ModelBinding(info) {
    const bp::Config c = bp::napi::parseConfig(info.Env(), info[0], "NativeModel(config)");
    try {
      backend = std::make_unique<CpuEngine>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

  Model& model() { return backend->host; }

  // The matmul precision is a per-thread setting: the worker thread of each call takes this model's.
  Work wrapWork(Work work) {
    return [work = std::move(work), p = backend->precision.load()](const std::atomic<int>* flag) {
      bp::MatmulPrecisionScope scope(p);
      work(flag);
    };
  }

 private:
  // setMatmulPrecision("fp32" | "bf16") -> the kernel its large products now run on: "fp32" or "bf16-amx".
  Napi::Value SetMatmulPrecision(const Napi::CallbackInfo& info) {
    const std::string p = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (p != "fp32" && p != "bf16")
      throw Napi::TypeError::New(info.Env(), "matmul precision must be 'fp32' or 'bf16', got '" + p + "'");
    backend->precision = p == "bf16" ? bp::MatmulPrecision::BF16 : bp::MatmulPrecision::FP32;
    return Napi::String::New(info.Env(), bp::matmulKernelName(backend->precision.load()));
  }
};

// PPLM sessions (src/pplm/) borrow the weights of a CPU NativeModel; anything else is refused.
Napi::FunctionReference* g_nativeModelCtor = nullptr;
bp::pplm::BorrowedModel borrowModel(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_nativeModelCtor->Value()))
    throw Napi::TypeError::New(v.Env(), "PplmSession: expected a CPU NativeModel");
  ModelWrap* w = ModelWrap::Unwrap(v.As<Napi::Object>());
  return {&w->model(), &w->busy};
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  bp::setThreads(info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0);
  return Napi::Number::New(info.Env(), bp::getThreads());
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("gemm", bp::gemmBackendName());
  o.Set("amx", bp::amxAvailable());
  o.Set("threads", bp::getThreads());
#ifdef BACKPACK_WITH_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
  return o;
}

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  bp::setThreads(0);
  Napi::Function nativeModel = ModelWrap::Init(env);
  g_nativeModelCtor = new Napi::FunctionReference(Napi::Persistent(nativeModel));
  exports.Set("NativeModel", nativeModel);
  exports.Set("PplmSession", bp::pplm::initAddon(env, borrowModel));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  bp::roberta::registerAddon(env, exports);  // RobertaClassifier (topic classifier, PAPER.md §6.3)
#ifdef BACKPACK_WITH_CUDA
  bp::cuda::registerAddon(env, exports);       // CudaModel, cudaDevices()
  bp::cuda_fp16::registerAddon(env, exports);  // CudaModelFp16
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(backpack_native, InitAddon)
