// Node-API surface of the CUDA backend: `CudaModel` has the same methods as the CPU `NativeModel` (so the
// TypeScript facade drives either), plus `cudaDevices()`. Heavy calls run on the libuv pool and resolve a
// promise; inputs are copied on the JS thread first.
#include "addon_cuda.h"

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>

#include "../async_job.h"
#include "../napi_args.h"
#include "engine.h"

namespace bp::cuda {
namespace {

using napi::boolOpt;
using napi::floatVector;
using napi::has;
using napi::int32Vector;
using napi::intOpt;
using napi::numOpt;
using napi::OwnedInterventions;
using napi::toFloat32Array;

class CudaModelWrap : public Napi::ObjectWrap<CudaModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "CudaModel",
                       {InstanceMethod("tensors", &CudaModelWrap::Tensors),
                        InstanceMethod("numParams", &CudaModelWrap::NumParams),
                        InstanceMethod("initParams", &CudaModelWrap::InitParams),
                        InstanceMethod("getParams", &CudaModelWrap::GetParams),
                        InstanceMethod("setParams", &CudaModelWrap::SetParams),
                        InstanceMethod("getGrads", &CudaModelWrap::GetGrads),
                        InstanceMethod("getOptimizerState", &CudaModelWrap::GetOptimizerState),
                        InstanceMethod("setOptimizerState", &CudaModelWrap::SetOptimizerState),
                        InstanceMethod("forward", &CudaModelWrap::Forward),
                        InstanceMethod("trainStep", &CudaModelWrap::TrainStep),
                        InstanceMethod("zeroGrad", &CudaModelWrap::ZeroGrad),
                        InstanceMethod("optimizerStep", &CudaModelWrap::OptimizerStep),
                        InstanceMethod("senseVectors", &CudaModelWrap::SenseVectors),
                        InstanceMethod("cacheReset", &CudaModelWrap::CacheReset),
                        InstanceMethod("cachePrefill", &CudaModelWrap::CachePrefill),
                        InstanceMethod("cacheDecode", &CudaModelWrap::CacheDecode),
                        InstanceMethod("deviceInfo", &CudaModelWrap::DeviceInfo)});
  }

  // new CudaModel(rawConfig, {devices: number[], precision: 'fp32'|'tf32'|'bf16'})
  explicit CudaModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaModelWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "CudaModel(config, options): config object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    Config c;
    std::string arch = o.Get("arch").ToString().Utf8Value();
    if (arch == "gpt2") c.arch = Arch::GPT2;
    else if (arch == "backpack") c.arch = Arch::Backpack;
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
      engine_ = std::make_unique<Engine>(c, devices, precision);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

 private:
  std::unique_ptr<Engine> engine_;
  std::atomic<bool> busy_{false};

  template <typename F>
  auto guarded(Napi::Env env, F f) -> decltype(f()) {
    if (busy_.load()) throw Napi::Error::New(env, "model is busy with another call (await the previous one)");
    try {
      return f();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value run(const Napi::CallbackInfo& info, std::function<void(const std::atomic<int>*)> work,
                  std::function<Napi::Value(Napi::Env)> done, Napi::Value cancel) {
    if (busy_.load()) throw Napi::Error::New(info.Env(), "model is busy with another call (await the previous one)");
    busy_ = true;
    return (new AsyncJob(info.Env(), &busy_, Value(), std::move(work), std::move(done), cancel))->start();
  }

  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& ts = engine_->host.tensors;
    auto arr = Napi::Array::New(env, ts.size());
    for (size_t i = 0; i < ts.size(); i++) {
      auto o = Napi::Object::New(env);
      o.Set("key", ts[i].key);
      auto shape = Napi::Array::New(env, ts[i].shape.size());
      for (size_t j = 0; j < ts[i].shape.size(); j++) shape.Set(j, ts[i].shape[j]);
      o.Set("shape", shape);
      o.Set("conv1d", ts[i].conv1d);
      o.Set("decay", ts[i].decay);
      o.Set("offset", (double)ts[i].offset);
      o.Set("size", (double)ts[i].size);
      arr.Set(i, o);
    }
    return arr;
  }
  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)engine_->host.numParams());
  }
  Napi::Value InitParams(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      engine_->host.initParams(info[0].As<Napi::Number>().Uint32Value());
      engine_->pushParams();
      engine_->pushOptimizerState();
      return info.Env().Undefined();
    });
  }
  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      engine_->pullParams();
      return toFloat32Array(info.Env(), engine_->host.params);
    });
  }
  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      auto v = floatVector(info[0], "params");
      if ((long)v.size() != engine_->host.numParams())
        throw Napi::RangeError::New(info.Env(), "setParams: expected " + std::to_string(engine_->host.numParams()) +
                                                    " floats, got " + std::to_string(v.size()));
      engine_->host.params = std::move(v);
      engine_->pushParams();
      return info.Env().Undefined();
    });
  }
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      engine_->pullGrads();
      return toFloat32Array(info.Env(), engine_->host.grads);
    });
  }
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      engine_->pullOptimizerState();
      auto o = Napi::Object::New(info.Env());
      o.Set("step", (double)engine_->host.adamStep);
      o.Set("m", toFloat32Array(info.Env(), engine_->host.m));
      o.Set("v", toFloat32Array(info.Env(), engine_->host.v));
      return o;
    });
  }
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      Napi::Object o = info[0].As<Napi::Object>();
      auto m = floatVector(o.Get("m"), "m"), v = floatVector(o.Get("v"), "v");
      long n = engine_->host.numParams();
      if (!((m.empty() && v.empty()) || ((long)m.size() == n && (long)v.size() == n)))
        throw Napi::RangeError::New(info.Env(), "optimizer state does not match the parameter count");
      engine_->host.m = std::move(m);
      engine_->host.v = std::move(v);
      engine_->host.adamStep = (long)o.Get("step").As<Napi::Number>().Int64Value();
      engine_->pushOptimizerState();
      return info.Env().Undefined();
    });
  }
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      engine_->zeroGrad();
      return info.Env().Undefined();
    });
  }
  Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
    auto o = Napi::Object::New(info.Env());
    auto arr = Napi::Array::New(info.Env(), engine_->devices.size());
    for (size_t i = 0; i < engine_->devices.size(); i++) arr.Set(i, engine_->devices[i]);
    o.Set("devices", arr);
    o.Set("precision", engine_->precision);
    o.Set("name", deviceName(engine_->devices[0]));
    return o;
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "tokens"));
    int B = info[1].As<Napi::Number>().Int32Value(), T = info[2].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)B * T) throw Napi::RangeError::New(env, "tokens.length must equal batch*seq");
    Napi::Object o = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
    auto targets = std::make_shared<std::vector<int32_t>>();
    if (has(o, "targets")) {
      *targets = int32Vector(o.Get("targets"), "targets");
      if (targets->size() != tokens->size()) throw Napi::RangeError::New(env, "targets.length must equal tokens.length");
    }
    const bool wantLogits = boolOpt(o, "logits", false), wantHidden = boolOpt(o, "hidden", false),
               wantAlpha = boolOpt(o, "alpha", false), wantPer = boolOpt(o, "perTokenLoss", false);
    const Config& c = engine_->host.cfg;
    if (wantAlpha && c.arch != Arch::Backpack) throw Napi::Error::New(env, "alpha exists only for Backpack models");
    auto iv = std::make_shared<OwnedInterventions>();
    if (o.Has("interventions")) iv->parse(o.Get("interventions"));
    const long N = (long)B * T;
    if (iv->iv.senseScale && (long)iv->senseScale.size() != N * c.senses)
      throw Napi::RangeError::New(env, "senseScale must hold batch*seq*numSenses values");
    struct Out {
      std::vector<float> logits, hidden, alpha, per;
      double loss = 0;
      long count = 0;
    };
    auto out = std::make_shared<Out>();
    Engine* e = engine_.get();
    return run(
        info,
        [=](const std::atomic<int>* cancel) {
          if (wantLogits) out->logits.resize(N * c.vocab);
          if (wantHidden) out->hidden.resize(N * c.d);
          if (wantAlpha) out->alpha.resize((long)B * c.senses * T * T);
          if (wantPer || !targets->empty()) out->per.resize(N);
          ForwardRequest r;
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
          out->loss = e->forward(r, &out->count);
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
    Engine* e = engine_.get();
    return run(
        info,
        [=](const std::atomic<int>* cancel) {
          ForwardRequest r;
          r.tokens = tokens->data();
          r.targets = targets->data();
          r.B = B;
          r.T = T;
          r.train = true;
          r.dropout = dropout;
          r.rngSeed = seed;
          r.gradScale = gradScale;
          r.cancel = cancel;
          res->first = e->trainStep(r, &res->second);
        },
        [=](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          o.Set("lossSum", res->first);
          o.Set("count", (double)res->second);
          return o;
        },
        info[5]);
  }

  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Object o = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
    const float lr = (float)numOpt(o, "lr", 6e-4), wd = (float)numOpt(o, "weightDecay", 0.1),
                b1 = (float)numOpt(o, "beta1", 0.9), b2 = (float)numOpt(o, "beta2", 0.999),
                eps = (float)numOpt(o, "eps", 1e-8), clip = (float)numOpt(o, "clip", 1.0);
    auto norm = std::make_shared<double>(0.0);
    Engine* e = engine_.get();
    return run(
        info, [=](const std::atomic<int>*) { *norm = e->optimizerStep(lr, wd, b1, b2, eps, clip); },
        [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *norm); }, info.Env().Undefined());
  }

  Napi::Value SenseVectors(const Napi::CallbackInfo& info) {
    auto ids = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "ids"));
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[1]);
    auto out = std::make_shared<std::vector<float>>();
    Engine* e = engine_.get();
    if (e->host.cfg.arch != Arch::Backpack) throw Napi::Error::New(info.Env(), "sense vectors exist only for Backpack models");
    return run(
        info,
        [=](const std::atomic<int>*) {
          out->resize(ids->size() * (size_t)e->host.cfg.senses * e->host.cfg.d);
          e->senseVectors(ids->data(), (int)ids->size(), out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }

  Napi::Value CacheReset(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      engine_->cacheReset(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
      return info.Env().Undefined();
    });
  }

  Napi::Value CachePrefill(const Napi::CallbackInfo& info) {
    int row0 = info[0].As<Napi::Number>().Int32Value(), n = info[1].As<Napi::Number>().Int32Value();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[2], "tokens"));
    int T = info[3].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)n * T) throw Napi::RangeError::New(info.Env(), "tokens.length must equal n*T");
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[4]);
    auto out = std::make_shared<std::vector<float>>();
    Engine* e = engine_.get();
    return run(
        info,
        [=](const std::atomic<int>*) {
          out->resize((size_t)n * e->host.cfg.vocab);
          e->cachePrefill(row0, n, tokens->data(), T, out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }

  Napi::Value CacheDecode(const Napi::CallbackInfo& info) {
    auto rows = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "rowIds"));
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[1], "tokens"));
    if (rows->size() != tokens->size()) throw Napi::RangeError::New(info.Env(), "rowIds and tokens differ in length");
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[2]);
    auto out = std::make_shared<std::vector<float>>();
    Engine* e = engine_.get();
    return run(
        info,
        [=](const std::atomic<int>*) {
          out->resize(rows->size() * (size_t)e->host.cfg.vocab);
          e->cacheDecode(rows->data(), (int)rows->size(), tokens->data(), out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
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
  exports.Set("CudaModel", CudaModelWrap::Init(env));
  exports.Set("cudaDevices", Napi::Function::New(env, CudaDevices));
}

}  // namespace bp::cuda
