// Node-API class PplmSession (see pplm.h). It borrows the weights of a CPU NativeModel: addon.cpp, which owns
// that class, hands in a function that unwraps one (and refuses anything else).
#pragma once
#include <napi.h>

#include <atomic>

#include "../model.h"

namespace bp::pplm {

struct BorrowedModel {
  Model* model;
  std::atomic<bool>* busy;  // the model's one-call-at-a-time flag, held while a session call runs
};
// Throws a Napi::Error when the value is not a CPU NativeModel.
using UnwrapModel = BorrowedModel (*)(const Napi::Value&);

Napi::Function initAddon(Napi::Env env, UnwrapModel unwrap);

}  // namespace bp::pplm
