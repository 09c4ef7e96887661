// Node-API bindings. Heavy calls run on the libuv pool (Napi::AsyncWorker) and resolve a promise; a model
// runs one call at a time (the TypeScript facade queues them). Inputs are copied on the JS thread, so the
// worker never touches JS memory except the caller's cancel flag (an Int32Array it keeps referenced).
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>

#include "async_job.h"
#include "gemm.h"
#include "gemm_amx.h"
#include "model.h"
#include "napi_args.h"
#include "roberta/addon_roberta.h"
#include "pplm/pplm_addon.h"
#ifdef BACKPACK_WITH_CUDA
#include "cuda/addon_cuda.h"
#endif

namespace {

using bp::Model;

using bp::napi::boolOpt;
using bp::napi::floatVector;
using bp::napi::int32Vector;
using bp::napi::intOpt;
using bp::napi::numOpt;
using bp::napi::OwnedInterventions;
using bp::napi::toFloat32Array;

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod("tensors", &ModelWrap::Tensors),
                           InstanceMethod("numParams", &ModelWrap::NumParams),
                           InstanceMethod("setMatmulPrecision", &ModelWrap::SetMatmulPrecision),
                           InstanceMethod("initParams", &ModelWrap::InitParams),
                           InstanceMethod("getParams", &ModelWrap::GetParams),
                           InstanceMethod("setParams", &ModelWrap::SetParams),
                           InstanceMethod("getGrads", &ModelWrap::GetGrads),
                           InstanceMethod("getOptimizerState", &ModelWrap::GetOptimizerState),
                           InstanceMethod("setOptimizerState", &ModelWrap::SetOptimizerState),
                           InstanceMethod("forward", &ModelWrap::Forward),
                           InstanceMethod("trainStep", &ModelWrap::TrainStep),
                           InstanceMethod("zeroGrad", &ModelWrap::ZeroGrad),
                           InstanceMethod("optimizerStep", &ModelWrap::OptimizerStep),
                           InstanceMethod("senseVectors", &ModelWrap::SenseVectors),
                           InstanceMethod("cacheReset", &ModelWrap::CacheReset),
                           InstanceMethod("cachePrefill", &ModelWrap::CachePrefill),
                           InstanceMethod("cacheDecode", &ModelWrap::CacheDecode),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "NativeModel(config): config object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    bp::Config c;
    std::string arch = o.Get("arch").ToString().Utf8Value();
    if (arch == "gpt2") c.arch = bp::Arch::GPT2;
    else if (arch == "backpack") c.arch = bp::Arch::Backpack;
    else throw Napi::TypeError::New(env, "arch must be 'gpt2' or 'backpack', got '" + arch + "'");
    c.vocab = intOpt(o, "vocabSize", 0);
    c.realVocab = intOpt(o, "realVocabSize", c.vocab);
    c.maxPos = intOpt(o, "nPositions", 0);
    c.d = intOpt(o, "nEmbd", 0);
    c.nLayer = intOpt(o, "nLayer", 0);
    c.nHead = intOpt(o, "nHead", 0);
    c.senses = intOpt(o, "numSenses", 0);
    c.senseHidden = intOpt(o, "senseHidden", 0);
    c.scaleByInverseLayer = boolOpt(o, "scaleAttnByInverseLayerIdx", true);
    c.lnEps = (float)numOpt(o, "layerNormEpsilon", 1e-5);
    try {
      model_ = std::make_unique<Model>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Model& model() { return *model_; }
  std::atomic<bool> busy{false};
  // Arithmetic of this model's large CPU matmuls (see gemm.h); applied on the worker thread of every call.
  std::atomic<bp::MatmulPrecision> precision{bp::MatmulPrecision::FP32};

 private:
  std::unique_ptr<Model> model_;

  void ensureIdle(Napi::Env env) {
    if (busy.load()) throw Napi::Error::New(env, "model is busy with another call (await the previous one)");
  }

  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto arr = Napi::Array::New(env, model_->tensors.size());
    for (size_t i = 0; i < model_->tensors.size(); i++) {
      const auto& t = model_->tensors[i];
      auto o = Napi::Object::New(env);
      o.Set("key", t.key);
      auto shape = Napi::Array::New(env, t.shape.size());
      for (size_t j = 0; j < t.shape.size(); j++) shape.Set(j, t.shape[j]);
      o.Set("shape", shape);
      o.Set("conv1d", t.conv1d);
      o.Set("decay", t.decay);
      o.Set("offset", (double)t.offset);
      o.Set("size", (double)t.size);
      arr.Set(i, o);
    }
    return arr;
  }
  // setMatmulPrecision("fp32" | "bf16") -> the kernel its large products now run on: "fp32" or "bf16-amx".
  Napi::Value SetMatmulPrecision(const Napi::CallbackInfo& info) {
    const std::string p = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (p != "fp32" && p != "bf16")
      throw Napi::TypeError::New(info.Env(), "matmul precision must be 'fp32' or 'bf16', got '" + p + "'");
    precision = p == "bf16" ? bp::MatmulPrecision::BF16 : bp::MatmulPrecision::FP32;
    return Napi::String::New(info.Env(), bp::matmulKernelName(precision.load()));
  }
  Napi::Value NumParams(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_->numParams()); }
  Napi::Value InitParams(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    model_->initParams(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }
  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    return toFloat32Array(info.Env(), model_->params);
  }
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    return toFloat32Array(info.Env(), model_->grads);
  }
  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    auto v = floatVector(info[0], "params");
    if ((long)v.size() != model_->numParams())
      throw Napi::RangeError::New(info.Env(), "setParams: expected " + std::to_string(model_->numParams()) +
                                                  " floats, got " + std::to_string(v.size()));
    model_->params = std::move(v);
    return info.Env().Undefined();
  }
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    auto o = Napi::Object::New(info.Env());
    o.Set("step", (double)model_->adamStep);
    o.Set("m", toFloat32Array(info.Env(), model_->m));
    o.Set("v", toFloat32Array(info.Env(), model_->v));
    return o;
  }
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    Napi::Object o = info[0].As<Napi::Object>();
    auto m = floatVector(o.Get("m"), "m"), v = floatVector(o.Get("v"), "v");
    long n = model_->numParams();
    if (!((m.empty() && v.empty()) || ((long)m.size() == n && (long)v.size() == n)))
      throw Napi::RangeError::New(info.Env(), "optimizer state does not match the parameter count");
    model_->m = std::move(m);
    model_->v = std::move(v);
    model_->adamStep = (long)o.Get("step").As<Napi::Number>().Int64Value();
    return info.Env().Undefined();
  }
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    model_->zeroGrad();
    return info.Env().Undefined();
  }

  Napi::Value run(const Napi::CallbackInfo& info, std::function<void(const std::atomic<int>*)> work,
                  std::function<Napi::Value(Napi::Env)> done, Napi::Value cancel) {
    ensureIdle(info.Env());
    busy = true;
    // The matmul precision is a per-thread setting: apply this model's on the worker thread for the call.
    auto body = [work = std::move(work), p = precision.load()](const std::atomic<int>* flag) {
      bp::MatmulPrecisionScope scope(p);
      work(flag);
    };
    return (new bp::AsyncJob(info.Env(), &busy, Value(), std::move(body), std::move(done), cancel))->start();
  }

  // forward(tokens, B, T, {targets?, logits?, hidden?, alpha?, perTokenLoss?, interventions?}, cancel?)
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "tokens"));
    int B = info[1].As<Napi::Number>().Int32Value(), T = info[2].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)B * T) throw Napi::RangeError::New(env, "tokens.length must equal batch*seq");
    Napi::Object o = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
    auto targets = std::make_shared<std::vector<int32_t>>();
    if (o.Has("targets") && !o.Get("targets").IsUndefined()) {
      *targets = int32Vector(o.Get("targets"), "targets");
      if (targets->size() != tokens->size()) throw Napi::RangeError::New(env, "targets.length must equal tokens.length");
    }
    const bool wantLogits = boolOpt(o, "logits", false), wantHidden = boolOpt(o, "hidden", false),
               wantAlpha = boolOpt(o, "alpha", false), wantPer = boolOpt(o, "perTokenLoss", false);
    if (wantAlpha && model_->cfg.arch != bp::Arch::Backpack)
      throw Napi::Error::New(env, "alpha exists only for Backpack models");
    auto iv = std::make_shared<OwnedInterventions>();
    if (o.Has("interventions")) iv->parse(o.Get("interventions"));
    const long N = (long)B * T;
    if (iv->iv.senseScale && (long)iv->senseScale.size() != N * model_->cfg.senses)
      throw Napi::RangeError::New(env, "senseScale must hold batch*seq*numSenses values");
    struct Out {
      std::vector<float> logits, hidden, alpha, per;
      double loss = 0;
      long count = 0;
    };
    auto out = std::make_shared<Out>();
    Model* m = model_.get();
    return run(
        info,
        [=](const std::atomic<int>* cancel) {
          const bp::Config& c = m->cfg;
          if (wantLogits) out->logits.resize(N * c.vocab);
          if (wantHidden) out->hidden.resize(N * c.d);
          if (wantAlpha) out->alpha.resize((long)B * c.senses * T * T);
          if (wantPer || !targets->empty()) out->per.resize(N);
          bp::ForwardRequest r;
          r.tokens = tokens->data();
          r.targets = targets->empty() ? nullptr : targets->data();
          r.B = B;
          r.T = T;
          r.logitsOut = wantLogits ? out->logits.data() : nullptr;
          r.hiddenOut = wantHidden ? out->hidden.data() : nullptr;
          r.alphaOut = wantAlpha ? out->alpha.data() : nullptr;
          r.lossPerToken = out->per.empty() ? nullptr : out->per.data();
          r.interventions = iv->get();
          r.cancel = cancel;
          out->loss = m->forward(r, &out->count);
        },
        [=](Napi::Env env) -> Napi::Value {
          auto res = Napi::Object::New(env);
          if (!targets->empty()) {
            res.Set("lossSum", out->loss);
            res.Set("count", (double)out->count);
            if (wantPer) res.Set("perTokenLoss", toFloat32Array(env, out->per));
          }
          if (wantLogits) res.Set("logits", toFloat32Array(env, out->logits));
          if (wantHidden) res.Set("hidden", toFloat32Array(env, out->hidden));
          if (wantAlpha) res.Set("alpha", toFloat32Array(env, out->alpha));
          return res;
        },
        info[4]);
  }

  // trainStep(tokens, targets, B, T, {dropout, rngSeed, gradScale}, cancel?): forward + backward, grads accumulate
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "tokens"));
    auto targets = std::make_shared<std::vector<int32_t>>(int32Vector(info[1], "targets"));
    int B = info[2].As<Napi::Number>().Int32Value(), T = info[3].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)B * T || targets->size() != tokens->size())
      throw Napi::RangeError::New(env, "tokens and targets must hold batch*seq ids");
    Napi::Object o = info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);
    const float dropout = (float)numOpt(o, "dropout", 0.0);
    const uint32_t seed = (uint32_t)numOpt(o, "rngSeed", 0);
    const float gradScale = (float)numOpt(o, "gradScale", 1.0);
    auto res = std::make_shared<std::pair<double, long>>(0.0, 0);
    Model* m = model_.get();
    return run(
        info,
        [=](const std::atomic<int>* cancel) {
          bp::ForwardRequest r;
          r.tokens = tokens->data();
          r.targets = targets->data();
          r.B = B;
          r.T = T;
          r.train = true;
          r.dropout = dropout;
          r.rngSeed = seed;
          r.gradScale = gradScale;
          r.cancel = cancel;
          res->first = m->forward(r, &res->second);
          m->backward(r);
        },
        [=](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("lossSum", res->first);
          o.Set("count", (double)res->second);
          return o;
        },
        info[5]);
  }

  // optimizerStep({lr, weightDecay, beta1, beta2, eps, clip}) -> grad norm before clipping
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Object o = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
    const float lr = (float)numOpt(o, "lr", 6e-4), wd = (float)numOpt(o, "weightDecay", 0.1),
                b1 = (float)numOpt(o, "beta1", 0.9), b2 = (float)numOpt(o, "beta2", 0.999),
                eps = (float)numOpt(o, "eps", 1e-8), clip = (float)numOpt(o, "clip", 1.0);
    auto norm = std::make_shared<double>(0.0);
    Model* m = model_.get();
    return run(
        info, [=](const std::atomic<int>*) { *norm = m->optimizerStep(lr, wd, b1, b2, eps, clip); },
        [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *norm); }, info.Env().Undefined());
  }

  Napi::Value SenseVectors(const Napi::CallbackInfo& info) {
    auto ids = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "ids"));
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[1]);
    auto out = std::make_shared<std::vector<float>>();
    Model* m = model_.get();
    if (m->cfg.arch != bp::Arch::Backpack) throw Napi::Error::New(info.Env(), "sense vectors exist only for Backpack models");
    return run(
        info,
        [=](const std::atomic<int>*) {
          out->resize(ids->size() * (size_t)m->cfg.senses * m->cfg.d);
          m->senseVectors(ids->data(), (int)ids->size(), out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }

  Napi::Value CacheReset(const Napi::CallbackInfo& info) {
    ensureIdle(info.Env());
    try {
      model_->cacheReset(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  // cachePrefill(row0, n, tokens [n*T], T, interventions?) -> logits of the last position [n][V]
  Napi::Value CachePrefill(const Napi::CallbackInfo& info) {
    int row0 = info[0].As<Napi::Number>().Int32Value(), n = info[1].As<Napi::Number>().Int32Value();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[2], "tokens"));
    int T = info[3].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)n * T) throw Napi::RangeError::New(info.Env(), "tokens.length must equal n*T");
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[4]);
    auto out = std::make_shared<std::vector<float>>();
    Model* m = model_.get();
    return run(
        info,
        [=](const std::atomic<int>*) {
          out->resize((size_t)n * m->cfg.vocab);
          m->cachePrefill(row0, n, tokens->data(), T, out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }

  // cacheDecode(rowIds Int32Array, tokens Int32Array, interventions?) -> logits [n][V]
  Napi::Value CacheDecode(const Napi::CallbackInfo& info) {
    auto rows = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "rowIds"));
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[1], "tokens"));
    if (rows->size() != tokens->size()) throw Napi::RangeError::New(info.Env(), "rowIds and tokens differ in length");
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[2]);
    auto out = std::make_shared<std::vector<float>>();
    Model* m = model_.get();
    return run(
        info,
        [=](const std::atomic<int>*) {
          out->resize(rows->size() * (size_t)m->cfg.vocab);
          m->cacheDecode(rows->data(), (int)rows->size(), tokens->data(), out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
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
  bp::cuda::registerAddon(env, exports);  // CudaModel, cudaDevices()
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(backpack_native, InitAddon)
