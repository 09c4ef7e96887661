// Shared definitions of the native engine: model configuration, errors, small helpers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bp {

enum class Arch { GPT2 = 0, Backpack = 1 };

struct Config {
  Arch arch = Arch::GPT2;
  int vocab = 0;       // padded vocabulary rows
  int realVocab = 0;   // rows >= realVocab are padding: never targets
  int maxPos = 0;      // n_positions
  int d = 0;           // n_embd
  int nLayer = 0;
  int nHead = 0;
  int senses = 0;      // Backpack: k
  int senseHidden = 0; // Backpack: h (4d, or d with shrink)
  bool scaleByInverseLayer = true;
  float lnEps = 1e-5f;
};

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by long computations when the caller asked to stop.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

inline void check(bool ok, const std::string& what) {
  if (!ok) throw Error(what);
}
// The same with the message built only on failure, for checks inside loops over every token: a message string
// built for each of 16k tokens costs milliseconds per batch, longer than a GPU forward pass of a small model.
template <class Message, class = decltype(std::string(std::declval<Message&>()()))>
inline void check(bool ok, Message&& what) {
  if (!ok) throw Error(what());
}

}  // namespace bp
