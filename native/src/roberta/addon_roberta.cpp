// Node-API surface of the RoBERTa classifier: construct from a config object, fill tensors one by one
// (so a loader can free each source tensor as it goes), classify off the JavaScript thread.
#include "addon_roberta.h"

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>

#include "../async_job.h"
#include "../common.h"
#include "roberta.h"

namespace bp::roberta {

namespace {

int intField(const Napi::Object& o, const char* key) {
  if (!o.Has(key) || !o.Get(key).IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("RobertaClassifier: config.") + key + " must be a number");
  return o.Get(key).As<Napi::Number>().Int32Value();
}


class ClassifierWrap : public Napi::ObjectWrap<ClassifierWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RobertaClassifier",
                       {InstanceMethod("tensors", &ClassifierWrap::Tensors),
                        InstanceMethod("setTensor", &ClassifierWrap::SetTensor),
                        InstanceMethod("unsetTensors", &ClassifierWrap::UnsetTensors),
                        InstanceMethod("classify", &ClassifierWrap::Classify),
                        InstanceMethod("release", &ClassifierWrap::Release)});
  }

  explicit ClassifierWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClassifierWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "RobertaClassifier(config): config object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    Config c;
    c.vocab = intField(o, "vocabSize");
    c.maxPositions = intField(o, "maxPositions");
    c.typeVocab = intField(o, "typeVocabSize");
    c.d = intField(o, "hiddenSize");
    c.nLayer = intField(o, "numLayers");
    c.nHead = intField(o, "numHeads");
    c.ff = intField(o, "intermediateSize");
    c.numLabels = intField(o, "numLabels");
    c.padId = intField(o, "padTokenId");
    if (!o.Has("layerNormEps") || !o.Get("layerNormEps").IsNumber()) throw Napi::TypeError::New(env, "RobertaClassifier: config.layerNormEps must be a number");
    c.lnEps = (float)o.Get("layerNormEps").As<Napi::Number>().DoubleValue();
    try {
      model_ = std::make_unique<Classifier>(c);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    // The weights (~500 MB for RoBERTa-base) live outside V8's heap: tell the GC, or it would see a small
    // object and let many unreachable classifiers pile up.
    accounted_ = (int64_t)(model_->params.size() * sizeof(float));
    Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
  }

  void Finalize(Napi::Env env) override { unaccount(env); }

 private:
  std::unique_ptr<Classifier> model_;
  std::atomic<bool> busy_{false};
  int64_t accounted_ = 0;

  void unaccount(Napi::Env env) {
    if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
    accounted_ = 0;
  }

  void ensureIdle(Napi::Env env) {
    if (!model_) throw Napi::Error::New(env, "classifier was released");
    if (busy_.load()) throw Napi::Error::New(env, "classifier is busy with another call (await the previous one)");
  }

  // release(): frees the weights now instead of at garbage collection; the object is unusable afterwards.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return env.Undefined();
    ensureIdle(env);
    model_.reset();
    unaccount(env);
    return env.Undefined();
  }

  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) throw Napi::Error::New(env, "classifier was released");
    auto arr = Napi::Array::New(env, model_->tensors.size());
    for (size_t i = 0; i < model_->tensors.size(); i++) {
      const auto& t = model_->tensors[i];
      auto o = Napi::Object::New(env);
      o.Set("key", t.key);
      auto shape = Napi::Array::New(env, t.shape.size());
      for (size_t j = 0; j < t.shape.size(); j++) shape.Set(j, t.shape[j]);
      o.Set("shape", shape);
      arr.Set(i, o);
    }
    return arr;
  }

  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ensureIdle(env);
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "setTensor(key, values): key must be a string");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, "setTensor(key, values): values must be a Float32Array");
    auto a = info[1].As<Napi::Float32Array>();
    try {
      model_->setTensor(info[0].As<Napi::String>().Utf8Value(), a.Data(), a.ElementLength());
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
  }

  Napi::Value UnsetTensors(const Napi::CallbackInfo& info) {
    if (!model_) throw Napi::Error::New(info.Env(), "classifier was released");
    auto keys = model_->unsetTensors();
    auto arr = Napi::Array::New(info.Env(), keys.size());
    for (size_t i = 0; i < keys.size(); i++) arr.Set(i, keys[i]);
    return arr;
  }

  // classify(ids Int32Array (sequences back to back), lengths Int32Array, {hidden?}, cancel?)
  //   -> Promise<{logits: Float32Array [B][numLabels], hidden?: Float32Array [sum lengths][d]}>
  Napi::Value Classify(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto int32 = [&](const Napi::Value& v, const char* what) {
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw Napi::TypeError::New(env, std::string("classify: ") + what + " must be an Int32Array");
      auto a = v.As<Napi::Int32Array>();
      return std::make_shared<std::vector<int32_t>>(a.Data(), a.Data() + a.ElementLength());
    };
    auto ids = int32(info[0], "ids");
    auto lengths = int32(info[1], "lengths");
    long total = 0;
    for (int32_t n : *lengths) {
      if (n < 1) throw Napi::RangeError::New(env, "classify: every sequence needs at least one token");
      total += n;
    }
    if (lengths->empty()) throw Napi::RangeError::New(env, "classify: no sequences");
    if (total != (long)ids->size()) throw Napi::RangeError::New(env, "classify: lengths do not add up to ids.length");
    const bool wantHidden = info[2].IsObject() && info[2].As<Napi::Object>().Has("hidden") &&
                            info[2].As<Napi::Object>().Get("hidden").ToBoolean().Value();
    ensureIdle(env);
    busy_ = true;
    struct Out {
      std::vector<float> logits, hidden;
    };
    auto out = std::make_shared<Out>();
    Classifier* m = model_.get();
    auto* job = new AsyncJob(
        env, &busy_, Value(),
        [=](const std::atomic<int>* cancel) {
          out->logits.resize(lengths->size() * (size_t)m->cfg.numLabels);
          if (wantHidden) out->hidden.resize((size_t)total * m->cfg.d);
          ForwardRequest r;
          r.ids = ids->data();
          r.lengths = lengths->data();
          r.B = (int)lengths->size();
          r.logitsOut = out->logits.data();
          r.hiddenOut = wantHidden ? out->hidden.data() : nullptr;
          r.cancel = cancel;
          m->forward(r);
        },
        [=](Napi::Env env) -> Napi::Value {
          auto res = Napi::Object::New(env);
          auto copy = [&](const std::vector<float>& v) {
            auto a = Napi::Float32Array::New(env, v.size());
            if (!v.empty()) std::memcpy(a.Data(), v.data(), sizeof(float) * v.size());
            return a;
          };
          res.Set("logits", copy(out->logits));
          if (wantHidden) res.Set("hidden", copy(out->hidden));
          return res;
        },
        info[3]);
    return job->start();
  }
};

}  // namespace

void registerAddon(Napi::Env env, Napi::Object exports) { exports.Set("RobertaClassifier", ClassifierWrap::Init(env)); }

}  // namespace bp::roberta
