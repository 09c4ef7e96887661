// PPLM on the native engine (PAPER.md §6.4): a GPT-2 decoding session over two key/value caches and the
// exact gradient of a caller's loss with respect to a perturbation of the cached keys and values.
//
// The session borrows a CPU Model's weights (read-only) and decodes `rows` independent sequences in lockstep,
// one token per row per call:
//   - the clean cache holds the unperturbed model's keys/values (the distribution PPLM fuses with);
//   - the past cache holds the keys/values PPLM carries from token to token (perturbations folded in).
// A perturbed step attends to (past + delta) where delta covers the first P cached positions of every layer;
// backward() takes dLoss/dLogits of that step and returns dLoss/dDelta. The loss itself (bag of words, KL)
// stays with the caller. Layout of delta and its gradient: [rows][nLayer][2 (key, value)][P][d], d = heads
// side by side (head h at columns h*d/H .. (h+1)*d/H), the layout of the engine's own KV cache.
#pragma once
#include <cstdint>
#include <vector>

#include "../model.h"

namespace bp::pplm {

class Session {
 public:
  Session(const Model& model, int rows, int capacity);

  int rows() const { return B_; }
  int capacity() const { return cap_; }
  int cleanLength() const { return clean_.len; }
  int pastLength() const { return past_.len; }

  // Empties both caches.
  void reset();
  // The unperturbed model: appends tokens[b] to the clean cache of row b; next-token logits -> [rows][V].
  void cleanStep(const int32_t* tokens, float* logits);
  // tokens[b] at position pastLength() attending to (past + delta); logits -> [rows][V]. `delta` may be null
  // (no perturbation). With commit the past becomes past + delta and the tokens' keys/values are appended.
  // Always records what backward() needs.
  void perturbedStep(const int32_t* tokens, const float* delta, int P, bool commit, float* logits);
  // Both at once, sharing one pass over the weights: the clean step of cleanStep() and the undisturbed
  // perturbedStep(tokens, null, 0, commitPast) (the caches must have the same length). logits -> [2][rows][V]:
  // first the carried past's, then the clean cache's.
  void jointStep(const int32_t* tokens, bool commitPast, float* logits);
  // Gradient of the loss with respect to the keys/values of the first P positions the last perturbedStep
  // attended to (equal to dLoss/dDelta there), given dLoss/dLogits [rows][V]; out [rows][L][2][P][d].
  void backward(const float* dLogits, int P, float* dDelta);

 private:
  struct Cache {
    int len = 0;
    std::vector<float> k, v;  // [L][rows][cap][d]
  };
  // What one step keeps per layer for the backward pass.
  struct Trace {
    int T = -1;  // cached positions attended to (the new token sits at T)
    int rows = 0;         // virtual rows recorded (past rows first)
    bool hasPast = false; // the step read the carried past
    int P = 0;   // leading positions that carried a delta
    std::vector<float> xin, mean1, rstd1, qkv, probs, xmid, mean2, rstd2, fch, kwin, vwin;
    std::vector<float> xf, meanf, rstdf;
  };
  struct LayerW {
    const float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
  };

  // Weight pointers, looked up on every call (the model's parameter buffer may be replaced between calls).
  void bindWeights();
  void step(bool usePast, bool useClean, bool commitPast, Trace& tr, const int32_t* tokens, const float* delta, int P,
            float* logits);
  long cacheAt(int l, int b, int j) const { return (((long)l * B_ + b) * cap_ + j) * cfg_.d; }

  const Model& model_;
  const Config cfg_;
  const int B_, cap_;
  Cache clean_, past_;
  Trace cleanTrace_, pastTrace_;
  const float *wte_ = nullptr, *wpe_ = nullptr, *lnfw_ = nullptr, *lnfb_ = nullptr;
  std::vector<LayerW> lw_;
  std::vector<long> offsets_;  // tensor offsets in the order bindWeights reads them
  // scratch [rows][...]
  std::vector<float> x_, xn_, atty_, br_, fcg_, dx_, dxmid_, dtmp_, dfc_, dqkv_, dp_;
};

}  // namespace bp::pplm
