// PplmSession: the JavaScript face of bp::pplm::Session. Inputs are copied and checked on the JS thread; the
// computation runs on the libuv pool while the borrowed model is marked busy (its other calls are refused
// meanwhile; the TypeScript facade queues them in the model's own call queue).
#include "pplm_addon.h"

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../async_job.h"
#include "../napi_args.h"
#include "pplm.h"

namespace bp::pplm {

namespace {

UnwrapModel g_unwrap = nullptr;

// Argument errors name the class, as in "PplmSession: tokens must be an Int32Array".
std::vector<int32_t> int32Vector(const Napi::Value& v, const char* what) {
  return napi::int32Vector(v, std::string("PplmSession: ") + what);
}
std::vector<float> floatVector(const Napi::Value& v, const char* what) {
  return napi::floatVector(v, std::string("PplmSession: ") + what);
}
using napi::toFloat32Array;

int intArg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string("PplmSession: ") + what + " must be a number");
  return v.As<Napi::Number>().Int32Value();
}

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "PplmSession",
                       {
                           InstanceMethod("reset", &SessionWrap::Reset),
                           InstanceMethod("lengths", &SessionWrap::Lengths),
                           InstanceMethod("cleanStep", &SessionWrap::CleanStep),
                           InstanceMethod("perturbedStep", &SessionWrap::PerturbedStep),
                           InstanceMethod("jointStep", &SessionWrap::JointStep),
                           InstanceMethod("backward", &SessionWrap::Backward),
                           InstanceMethod("close", &SessionWrap::Close),
                       });
  }

  // new PplmSession(model: NativeModel (CPU, GPT-2), rows, capacity)
  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
    Napi::Env env = info.Env();
    BorrowedModel m = g_unwrap(info[0]);
    busy_ = m.busy;
    modelRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    try {
      session_ = std::make_unique<Session>(*m.model, intArg(info[1], "rows"), intArg(info[2], "capacity"));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    vocab_ = m.model->cfg.vocab;
    layers_ = m.model->cfg.nLayer;
    d_ = m.model->cfg.d;
  }

 private:
  std::unique_ptr<Session> session_;
  Napi::ObjectReference modelRef_;  // keeps the borrowed weights alive
  std::atomic<bool>* busy_ = nullptr;
  int vocab_ = 0, layers_ = 0, d_ = 0;

  void acquire(Napi::Env env) {
    if (!session_) throw Napi::Error::New(env, "PplmSession: the session was closed");
    bool idle = false;
    if (!busy_->compare_exchange_strong(idle, true))
      throw Napi::Error::New(env, "PplmSession: the model is busy with another call (await the previous one)");
  }

  Napi::Value run(const Napi::CallbackInfo& info, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> done) {
    acquire(info.Env());
    auto body = [work = std::move(work)](const std::atomic<int>*) { work(); };
    return (new AsyncJob(info.Env(), busy_, Value(), std::move(body), std::move(done)))->start();
  }

  // close(): frees the caches now (rather than at garbage collection) and releases the model.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (!session_) return info.Env().Undefined();
    acquire(info.Env());
    session_.reset();
    busy_->store(false);
    modelRef_.Reset();
    return info.Env().Undefined();
  }

  Session& live(Napi::Env env) {
    if (!session_) throw Napi::Error::New(env, "PplmSession: the session was closed");
    return *session_;
  }

  std::shared_ptr<std::vector<int32_t>> tokensArg(const Napi::Value& v) {
    live(v.Env());
    auto t = std::make_shared<std::vector<int32_t>>(int32Vector(v, "tokens"));
    if ((int)t->size() != session_->rows())
      throw Napi::RangeError::New(v.Env(), "PplmSession: tokens must hold one id per row (" +
                                               std::to_string(session_->rows()) + ")");
    return t;
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    acquire(info.Env());
    session_->reset();
    busy_->store(false);
    return info.Env().Undefined();
  }

  Napi::Value Lengths(const Napi::CallbackInfo& info) {
    Session& s = live(info.Env());
    auto o = Napi::Object::New(info.Env());
    o.Set("clean", s.cleanLength());
    o.Set("past", s.pastLength());
    return o;
  }

  // cleanStep(tokens [rows]) -> logits [rows][V]
  Napi::Value CleanStep(const Napi::CallbackInfo& info) {
    auto tokens = tokensArg(info[0]);
    auto out = std::make_shared<std::vector<float>>((size_t)session_->rows() * vocab_);
    Session* s = session_.get();
    return run(
        info, [=]() { s->cleanStep(tokens->data(), out->data()); },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); });
  }

  // perturbedStep(tokens [rows], delta [rows][L][2][P][d] | null, P, commit) -> logits [rows][V]
  Napi::Value PerturbedStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = tokensArg(info[0]);
    const int P = intArg(info[2], "positions");
    auto delta = std::make_shared<std::vector<float>>();
    if (!info[1].IsNull() && !info[1].IsUndefined()) {
      *delta = floatVector(info[1], "delta");
      const long want = (long)session_->rows() * layers_ * 2 * P * d_;
      if ((long)delta->size() != want)
        throw Napi::RangeError::New(env, "PplmSession: delta must hold rows*layers*2*positions*d = " +
                                             std::to_string(want) + " values, got " + std::to_string(delta->size()));
    }
    const bool commit = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    auto out = std::make_shared<std::vector<float>>((size_t)session_->rows() * vocab_);
    Session* s = session_.get();
    return run(
        info,
        [=]() { s->perturbedStep(tokens->data(), delta->empty() ? nullptr : delta->data(), P, commit, out->data()); },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); });
  }

  // jointStep(tokens [rows], commitPast) -> logits [2][rows][V] (carried past's, then the clean cache's)
  Napi::Value JointStep(const Napi::CallbackInfo& info) {
    auto tokens = tokensArg(info[0]);
    const bool commit = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    auto out = std::make_shared<std::vector<float>>((size_t)2 * session_->rows() * vocab_);
    Session* s = session_.get();
    return run(
        info, [=]() { s->jointStep(tokens->data(), commit, out->data()); },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); });
  }

  // backward(dLogits [rows][V], P) -> dDelta [rows][L][2][P][d]
  Napi::Value Backward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env);
    auto dLogits = std::make_shared<std::vector<float>>(floatVector(info[0], "dLogits"));
    if ((long)dLogits->size() != (long)session_->rows() * vocab_)
      throw Napi::RangeError::New(env, "PplmSession: dLogits must hold rows*vocab values");
    const int P = intArg(info[1], "positions");
    if (P < 0 || P >= session_->capacity()) throw Napi::RangeError::New(env, "PplmSession: positions out of range");
    auto out = std::make_shared<std::vector<float>>((size_t)session_->rows() * layers_ * 2 * P * d_);
    Session* s = session_.get();
    return run(
        info, [=]() { s->backward(dLogits->data(), P, out->data()); },
        [=](Napi::Env env) -> Napi::Value { return toFloat32Array(env, *out); });
  }
};

}  // namespace

Napi::Function initAddon(Napi::Env env, UnwrapModel unwrap) {
  g_unwrap = unwrap;
  return SessionWrap::Init(env);
}

}  // namespace bp::pplm
