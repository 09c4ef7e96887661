// The promise-returning calls of every Node-API class in the addon: `work` runs on the libuv pool (off the JS
// thread) and may poll the cancel flag (an Int32Array shared with JS) and throw Cancelled; `done` builds the resolved
// value on the JS thread. The owner's busy flag is released when the job ends, and a cancelled job rejects with an
// AbortError. `self` (the calling JS object) and the cancel array are kept alive until then.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>

#include "common.h"

namespace bp {

class AsyncJob : public Napi::AsyncWorker {
 public:
  using Work = std::function<void(const std::atomic<int>* cancel)>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  AsyncJob(Napi::Env env, std::atomic<bool>* busy, Napi::Object self, Work work, Done done,
           Napi::Value cancel = Napi::Value())
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), busy_(busy), work_(std::move(work)),
        done_(std::move(done)) {
    self_ = Napi::Persistent(self);
    if (!cancel.IsEmpty() && cancel.IsTypedArray() &&
        cancel.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      cancelRef_ = Napi::Persistent(cancel.As<Napi::Object>());
      cancel_ = reinterpret_cast<const std::atomic<int>*>(cancel.As<Napi::Int32Array>().Data());
    }
  }
  ~AsyncJob() override { busy_->store(false); }

  // Queues the job and returns its promise.
  Napi::Promise start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

  void Execute() override {
    try {
      work_(cancel_);
    } catch (const Cancelled&) {
      cancelled_ = true;
      SetError("cancelled");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(done_(Env())); }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    if (cancelled_) err.Set("name", Napi::String::New(Env(), "AbortError"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::atomic<bool>* busy_;
  Napi::ObjectReference self_, cancelRef_;
  Work work_;
  Done done_;
  const std::atomic<int>* cancel_ = nullptr;
  bool cancelled_ = false;
};

}  // namespace bp
