// The Node-API methods the CPU `NativeModel` and the CUDA `CudaModel` share, written once: argument checks, copies
// in and out of JS, and the promise-returning calls. A backend is the CUDA `cuda::Engine` or the CPU engine of
// addon.cpp, which has the same interface: `host` (a Model: configuration, tensor table, parameters, gradients,
// optimizer moments), push/pull of that state to where the model computes, and the compute calls.
#pragma once
#include <napi.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "async_job.h"
#include "model.h"
#include "napi_args.h"

namespace bp::napi {

// The model configuration object of `new NativeModel(config)` / `new CudaModel(config, options)`
inline Config parseConfig(Napi::Env env, const Napi::Value& v, const std::string& who) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, who + ": config object expected");
  Napi::Object o = v.As<Napi::Object>();
  Config c;
  const std::string arch = o.Get("arch").ToString().Utf8Value();
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
  return c;
}

// Derived: the ObjectWrap class (it may add methods, and may redefine wrapWork to set per-call state on the
// worker thread); Backend: see above. Derived's constructor creates `backend`.
template <class Derived, class Backend>
class ModelBinding : public Napi::ObjectWrap<Derived> {
  using Wrap = Napi::ObjectWrap<Derived>;

 public:
  using Method = typename Wrap::InstanceMethodCallback;
  using Work = AsyncJob::Work;

  explicit ModelBinding(const Napi::CallbackInfo& info) : Wrap(info) {}

  // The shared methods, for DefineClass
  static std::vector<typename Wrap::PropertyDescriptor> sharedMethods() {
    const std::pair<const char*, Method> methods[] = {
        {"tensors", &ModelBinding::Tensors},
        {"numParams", &ModelBinding::NumParams},
        {"initParams", &ModelBinding::InitParams},
        {"getParams", &ModelBinding::GetParams},
        {"setParams", &ModelBinding::SetParams},
        {"getGrads", &ModelBinding::GetGrads},
        {"getOptimizerState", &ModelBinding::GetOptimizerState},
        {"setOptimizerState", &ModelBinding::SetOptimizerState},
        {"forward", &ModelBinding::Forward},
        {"trainStep", &ModelBinding::TrainStep},
        {"zeroGrad", &ModelBinding::ZeroGrad},
        {"optimizerStep", &ModelBinding::OptimizerStep},
        {"senseVectors", &ModelBinding::SenseVectors},
        {"cacheReset", &ModelBinding::CacheReset},
        {"cachePrefill", &ModelBinding::CachePrefill},
        {"cacheDecode", &ModelBinding::CacheDecode},
    };
    std::vector<typename Wrap::PropertyDescriptor> out;
    for (const auto& [name, method] : methods) out.push_back(Wrap::InstanceMethod(name, method));
    return out;
  }

  std::unique_ptr<Backend> backend;
  std::atomic<bool> busy{false};  // one call at a time (the TypeScript facade queues them)

  // Identity here; the CPU binding applies the model's matmul precision on the worker thread.
  Work wrapWork(Work work) { return work; }

 protected:
  // A synchronous call: refused while an async one runs; engine errors become JS errors.
  template <typename F>
  auto guarded(Napi::Env env, F f) -> decltype(f()) {
    if (busy.load()) throw Napi::Error::New(env, "model is busy with another call (await the previous one)");
    try {
      return f();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  // An async call: `work` on the libuv pool, `done` builds the resolved value on the JS thread.
  Napi::Value run(const Napi::CallbackInfo& info, Work work, std::function<Napi::Value(Napi::Env)> done,
                  Napi::Value cancel) {
    if (busy.load()) throw Napi::Error::New(info.Env(), "model is busy with another call (await the previous one)");
    busy = true;
    Work body = static_cast<Derived*>(this)->wrapWork(std::move(work));
    return (new AsyncJob(info.Env(), &busy, this->Value(), std::move(body), std::move(done), cancel))->start();
  }

  const Config& cfg() const { return backend->host.cfg; }

 public:
  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& ts = backend->host.tensors;
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
    return Napi::Number::New(info.Env(), (double)backend->host.numParams());
  }
  Napi::Value InitParams(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      backend->host.initParams(info[0].As<Napi::Number>().Uint32Value());
      backend->pushParams();
      backend->pushOptimizerState();
      return info.Env().Undefined();
    });
  }
  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      backend->pullParams();
      return toFloat32Array(info.Env(), backend->host.params);
    });
  }
  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      auto v = floatVector(info[0], "params");
      const long n = backend->host.numParams();
      if ((long)v.size() != n)
        throw Napi::RangeError::New(info.Env(), "setParams: expected " + std::to_string(n) + " floats, got " +
                                                    std::to_string(v.size()));
      backend->host.params = std::move(v);
      backend->pushParams();
      return info.Env().Undefined();
    });
  }
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      backend->pullGrads();
      return toFloat32Array(info.Env(), backend->host.grads);
    });
  }
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      backend->pullOptimizerState();
      auto o = Napi::Object::New(info.Env());
      o.Set("step", (double)backend->host.adamStep);
      o.Set("m", toFloat32Array(info.Env(), backend->host.m));
      o.Set("v", toFloat32Array(info.Env(), backend->host.v));
      return o;
    });
  }
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      Napi::Object o = info[0].As<Napi::Object>();
      auto m = floatVector(o.Get("m"), "m"), v = floatVector(o.Get("v"), "v");
      const long n = backend->host.numParams();
      if (!((m.empty() && v.empty()) || ((long)m.size() == n && (long)v.size() == n)))
        throw Napi::RangeError::New(info.Env(), "optimizer state does not match the parameter count");
      backend->host.m = std::move(m);
      backend->host.v = std::move(v);
      backend->host.adamStep = (long)o.Get("step").As<Napi::Number>().Int64Value();
      backend->pushOptimizerState();
      return info.Env().Undefined();
    });
  }
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      backend->zeroGrad();
      return info.Env().Undefined();
    });
  }

  // forward(tokens, B, T, {targets?, logits?, hidden?, alpha?, perTokenLoss?, interventions?}, cancel?)
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "tokens"));
    const int B = info[1].As<Napi::Number>().Int32Value(), T = info[2].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)B * T) throw Napi::RangeError::New(env, "tokens.length must equal batch*seq");
    Napi::Object o = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
    auto targets = std::make_shared<std::vector<int32_t>>();
    if (has(o, "targets")) {
      *targets = int32Vector(o.Get("targets"), "targets");
      if (targets->size() != tokens->size()) throw Napi::RangeError::New(env, "targets.length must equal tokens.length");
    }
    const bool wantLogits = boolOpt(o, "logits", false), wantHidden = boolOpt(o, "hidden", false),
               wantAlpha = boolOpt(o, "alpha", false), wantPer = boolOpt(o, "perTokenLoss", false);
    const Config& c = cfg();
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
    Backend* b = backend.get();
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
          out->loss = b->forward(r, &out->count);
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

  // trainStep(tokens, targets, B, T, {dropout, rngSeed, gradScale, lastMicroBatch}, cancel?): forward + backward,
  // grads accumulate
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "tokens"));
    auto targets = std::make_shared<std::vector<int32_t>>(int32Vector(info[1], "targets"));
    const int B = info[2].As<Napi::Number>().Int32Value(), T = info[3].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)B * T || targets->size() != tokens->size())
      throw Napi::RangeError::New(env, "tokens and targets must hold batch*seq ids");
    Napi::Object o = info[4].IsObject() ? info[4].As<Napi::Object>() : Napi::Object::New(env);
    const float dropout = (float)numOpt(o, "dropout", 0.0);
    const uint32_t seed = (uint32_t)numOpt(o, "rngSeed", 0);
    const float gradScale = (float)numOpt(o, "gradScale", 1.0);
    const bool lastMicroBatch = !o.Has("lastMicroBatch") || o.Get("lastMicroBatch").ToBoolean();
    auto res = std::make_shared<std::pair<double, long>>(0.0, 0);
    Backend* b = backend.get();
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
          r.lastMicroBatch = lastMicroBatch;
          r.cancel = cancel;
          res->first = b->trainStep(r, &res->second);
        },
        [=](Napi::Env env) -> Napi::Value {
          auto out = Napi::Object::New(env);
          out.Set("lossSum", res->first);
          out.Set("count", (double)res->second);
          return out;
        },
        info[5]);
  }

  // optimizerStep({lr, weightDecay, beta1, beta2, eps, clip, unscale}) -> unscaled grad norm before clipping
  // (non-finite: the step was skipped)
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Object o = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
    bp::OptimizerArgs args;
    args.lr = (float)numOpt(o, "lr", args.lr);
    args.weightDecay = (float)numOpt(o, "weightDecay", args.weightDecay);
    args.beta1 = (float)numOpt(o, "beta1", args.beta1);
    args.beta2 = (float)numOpt(o, "beta2", args.beta2);
    args.eps = (float)numOpt(o, "eps", args.eps);
    args.clip = (float)numOpt(o, "clip", args.clip);
    args.unscale = (float)numOpt(o, "unscale", 1.0);
    if (!(args.unscale > 0.0f) || !std::isfinite(args.unscale))
      throw Napi::RangeError::New(info.Env(),
                                  "optimizerStep: unscale must be a positive finite number (1 / loss scale)");
    auto norm = std::make_shared<double>(0.0);
    Backend* b = backend.get();
    return run(
        info, [=](const std::atomic<int>*) { *norm = b->optimizerStep(args); },
        [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *norm); }, info.Env().Undefined());
  }

  // senseVectors(ids Int32Array, interventions?) -> [ids][senses][d]
  Napi::Value SenseVectors(const Napi::CallbackInfo& info) {
    auto ids = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "ids"));
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[1]);
    if (cfg().arch != Arch::Backpack) throw Napi::Error::New(info.Env(), "sense vectors exist only for Backpack models");
    auto out = std::make_shared<std::vector<float>>(ids->size() * (size_t)cfg().senses * cfg().d);
    Backend* b = backend.get();
    return run(
        info, [=](const std::atomic<int>*) { b->senseVectors(ids->data(), (int)ids->size(), out->data(), iv->get()); },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }

  // cacheReset(rows, capacity)
  Napi::Value CacheReset(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() {
      backend->cacheReset(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
      return info.Env().Undefined();
    });
  }

  // cachePrefill(row0, n, tokens [n*T], T, interventions?) -> logits of the last position [n][V]
  Napi::Value CachePrefill(const Napi::CallbackInfo& info) {
    const int row0 = info[0].As<Napi::Number>().Int32Value(), n = info[1].As<Napi::Number>().Int32Value();
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[2], "tokens"));
    const int T = info[3].As<Napi::Number>().Int32Value();
    if ((long)tokens->size() != (long)n * T) throw Napi::RangeError::New(info.Env(), "tokens.length must equal n*T");
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[4]);
    auto out = std::make_shared<std::vector<float>>((size_t)n * cfg().vocab);
    Backend* b = backend.get();
    return run(
        info, [=](const std::atomic<int>*) { b->cachePrefill(row0, n, tokens->data(), T, out->data(), iv->get()); },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }

  // cacheDecode(rowIds Int32Array, tokens Int32Array, interventions?) -> logits [n][V]
  Napi::Value CacheDecode(const Napi::CallbackInfo& info) {
    auto rows = std::make_shared<std::vector<int32_t>>(int32Vector(info[0], "rowIds"));
    auto tokens = std::make_shared<std::vector<int32_t>>(int32Vector(info[1], "tokens"));
    if (rows->size() != tokens->size()) throw Napi::RangeError::New(info.Env(), "rowIds and tokens differ in length");
    auto iv = std::make_shared<OwnedInterventions>();
    iv->parse(info[2]);
    auto out = std::make_shared<std::vector<float>>(rows->size() * (size_t)cfg().vocab);
    Backend* b = backend.get();
    return run(
        info,
        [=](const std::atomic<int>*) {
          b->cacheDecode(rows->data(), (int)rows->size(), tokens->data(), out->data(), iv->get());
        },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); }, info.Env().Undefined());
  }
};

}  // namespace bp::napi
