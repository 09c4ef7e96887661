// Argument conversion shared by the addon's Node-API classes (CPU model, CUDA model, PPLM session): typed arrays
// copied into vectors with a clear error naming the argument, optional fields of option objects, and the raw
// interventions object of native/binding.ts with owned copies of its arrays.
#pragma once
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "model.h"

namespace bp::napi {

inline std::vector<int32_t> int32Vector(const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(v.Env(), what + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

inline std::vector<float> floatVector(const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(v.Env(), what + " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

inline Napi::Float32Array toFloat32Array(Napi::Env env, const std::vector<float>& v) {
  auto out = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(out.Data(), v.data(), sizeof(float) * v.size());
  return out;
}

inline bool has(const Napi::Object& o, const char* key) { return o.Has(key) && !o.Get(key).IsUndefined(); }
inline int intOpt(const Napi::Object& o, const char* key, int def) {
  return o.Has(key) && o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().Int32Value() : def;
}
inline double numOpt(const Napi::Object& o, const char* key, double def) {
  return o.Has(key) && o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().DoubleValue() : def;
}
inline bool boolOpt(const Napi::Object& o, const char* key, bool def) {
  return o.Has(key) && o.Get(key).IsBoolean() ? o.Get(key).As<Napi::Boolean>().Value() : def;
}

// Interventions with owned copies of their arrays (the engine keeps pointers into them during a call).
struct OwnedInterventions {
  Interventions iv;
  std::vector<float> senseScale, replaceVectors, embedRows;
  std::vector<int32_t> embedIds;
  bool any = false;

  void parse(const Napi::Value& v) {
    if (!v.IsObject()) return;
    Napi::Object o = v.As<Napi::Object>();
    any = true;
    if (has(o, "senseScale")) {
      senseScale = floatVector(o.Get("senseScale"), "senseScale");
      iv.senseScale = senseScale.data();
      iv.scaleStride = intOpt(o, "scaleStride", 0);
    }
    iv.alphaSense = intOpt(o, "alphaSense", -1);
    iv.alphaFactor = (float)numOpt(o, "alphaFactor", 1.0);
    if (has(o, "alphaTokens")) {
      auto t = int32Vector(o.Get("alphaTokens"), "alphaTokens");
      iv.alphaTokens.assign(t.begin(), t.end());
    }
    if (has(o, "replaceIds")) {
      auto t = int32Vector(o.Get("replaceIds"), "replaceIds");
      iv.replaceIds.assign(t.begin(), t.end());
      replaceVectors = floatVector(o.Get("replaceVectors"), "replaceVectors");
      iv.replaceVectors = replaceVectors.data();
    }
    if (has(o, "embedIds")) {
      embedIds = int32Vector(o.Get("embedIds"), "embedIds");
      embedRows = floatVector(o.Get("embedRows"), "embedRows");
      iv.embedding.count = (int)embedIds.size();
      iv.embedding.ids = embedIds.data();
      iv.embedding.rows = embedRows.data();
    }
  }
  const Interventions* get() const { return any ? &iv : nullptr; }
};

}  // namespace bp::napi
