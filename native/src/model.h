// The two fixed architectures (GPT-2, Backpack) over one contiguous parameter buffer, llm.c style: a tensor
// table gives every parameter its offset; gradients and AdamW moments mirror the same layout; activations live
// in one arena sized for the largest (batch, seq) seen so far.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "common.h"
#include "layers/layers.h"

namespace bp {

enum class Init { Normal, ResidualNormal, Ones, Zeros };

struct TensorInfo {
  std::string key;         // Hugging Face checkpoint key
  std::vector<int> shape;  // internal shape (Linear layout [out][in] for weights)
  bool conv1d = false;     // stored transposed ([in][out]) in Hugging Face GPT-2 checkpoints
  bool decay = false;      // AdamW weight decay applies (Linear weight matrices only)
  Init init = Init::Zeros;
  long offset = 0;
  long size = 0;
};

struct LayerIdx {
  int ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};
struct SenseIdx {
  int ln0w, ln0b, ln1w, ln1b, faw, fab, fapw, fapb, ln2w, ln2b, fbw, fbb, fbpw, fbpb;
};

// Interventions the control experiments need (inference only).
struct Interventions {
  const float* senseScale = nullptr;   // forward: [N][k]; decode: [B][scaleStride][k]
  int scaleStride = 0;                 // decode only: positions per row in senseScale
  int alphaSense = -1;
  float alphaFactor = 1.0f;
  std::vector<int> alphaTokens;
  std::vector<int> replaceIds;         // tokens whose sense vectors are replaced
  const float* replaceVectors = nullptr;  // [n][k*d]
  EmbeddingOverride embedding;         // input embedding rows replaced
};

struct ForwardRequest {
  const int32_t* tokens = nullptr;   // [B*T]
  const int32_t* targets = nullptr;  // [B*T] or null; <0 ignored
  int B = 0, T = 0;
  bool train = false;                // dropout on, activations kept for backward
  float dropout = 0.0f;
  uint32_t rngSeed = 0;              // dropout stream seed for this micro-batch
  int row0 = 0;                      // first sequence of these rows in the micro-batch (CUDA data parallel: the
                                     // dropout masks index the whole micro-batch, as on one device)
  float* logitsOut = nullptr;        // [B*T][V]
  float* lossPerToken = nullptr;     // [B*T]
  float* hiddenOut = nullptr;        // [B*T][d]
  float* alphaOut = nullptr;         // [B][k][T][T]
  const Interventions* interventions = nullptr;
  float gradScale = 1.0f;            // backward: multiplier on d(mean loss)
  // Data parallel (CUDA, several GPUs): the optimizer step follows this micro-batch, so its backward pass
  // all-reduces the gradients as they complete. Earlier micro-batches of a step keep theirs local (false).
  bool lastMicroBatch = true;
  const std::atomic<int>* cancel = nullptr;
};

// One optimizer step. The gradients hold `lossScale` times the true gradient (loss scaling: fp16 training scales
// the loss so small gradients survive in fp16); unscale = 1 / lossScale divides it out before clipping and AdamW.
struct OptimizerArgs {
  float lr = 6e-4f, weightDecay = 0.1f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float clip = 1.0f;  // global-norm threshold (<= 0: no clipping)
  float unscale = 1.0f;
};

// The factor an optimizer step multiplies the gradients by: unscale, and the global-norm clip of the unscaled
// gradients (norm: theirs). Power-of-two loss scales cancel exactly, so a scaled run steps like an unscaled one.
inline float gradientFactor(const OptimizerArgs& o, double norm) {
  const double clipFactor = o.clip > 0.0f && norm > o.clip ? o.clip / (norm + 1e-6) : 1.0;
  return (float)(o.unscale * clipFactor);
}

struct KVCache {
  int rows = 0, cap = 0;
  std::vector<int> len;       // tokens cached per row
  std::vector<int32_t> ids;   // [rows][cap]
  std::vector<float> k, v;    // [L][rows][cap][d]
  std::vector<float> senses;  // Backpack: [rows][cap][k*d]
  std::vector<float> akeys;   // Backpack: [rows][cap][d] weight-net keys
};

class Model {
 public:
  explicit Model(const Config& cfg);

  const Config cfg;
  std::vector<TensorInfo> tensors;
  std::vector<float> params, grads, m, v;
  long adamStep = 0;
  long numParams() const { return (long)params.size(); }

  void initParams(uint32_t seed);
  // Forward (and in train mode, keep activations). Returns the summed loss over counted targets.
  double forward(const ForwardRequest& req, long* counted);
  // Backward of the last train-mode forward; accumulates into grads.
  void backward(const ForwardRequest& req);
  void zeroGrad();
  // Unscale, clip by global norm (if clip > 0) and apply AdamW; returns the unscaled gradient norm before
  // clipping. A non-finite norm (a loss-scale overflow, or divergence) skips the step: parameters, moments and
  // the step count stay as they were, and the caller decides (lower the loss scale, or stop).
  double optimizerStep(const OptimizerArgs& o);

  // Sense vectors of token ids: out [n][k][d].
  void senseVectors(const int32_t* ids, int n, float* out, const Interventions* iv);

  // Generation with a KV cache.
  void cacheReset(int rows, int cap);
  // Run `n` prompts of equal length T into cache rows [row0, row0+n); logits of the last position -> [n][V].
  void cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits, const Interventions* iv);
  // One new token per row (rows listed in `rowIds`); logits -> [n][V].
  void cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const Interventions* iv);
  KVCache cache;

 private:
  int addTensor(const std::string& key, std::vector<int> shape, bool conv1d, bool decay, Init init);
  float* P(int idx) { return params.data() + tensors[idx].offset; }
  float* G(int idx) { return grads.data() + tensors[idx].offset; }
  void ensureActivations(int B, int T);
  void senseForward(const int32_t* tokens, int N, bool train, uint32_t seed, float dropout,
                    const Interventions* iv);
  // senses scaled per position and sense into gBig (or the unscaled senses when no scale is given)
  const float* scaledSenses(int N, const float* senseScale);
  void senseBackward(const int32_t* tokens, int N, uint32_t seed, float dropout);

  int wte = -1, wpe = -1, lnfw = -1, lnfb = -1, aw = -1, ab = -1;
  std::vector<LayerIdx> layers;
  SenseIdx sense{};
  int hidden4 = 0;  // 4d

  // Activation arena (pointers into `arena`).
  int capB = 0, capT = 0;
  std::vector<float> arena;
  std::vector<int32_t> positions;
  std::vector<std::vector<uint8_t>> attMasks;  // per layer: attention-dropout masks [B][H][T][T]
  struct LayerActs {
    float *ln1, *ln1m, *ln1r, *qkv, *atty, *probs, *res2, *ln2, *ln2m, *ln2r, *fch, *fchg, *res3;
  };
  struct Acts {
    float *encoded, *lnf, *lnfm, *lnfr;
    std::vector<LayerActs> layer;
    // sense network
    float *r0, *h0, *h0m, *h0r, *r1, *h1, *h1m, *h1r, *fa, *fag, *r2, *h2, *h2m, *h2r, *fb, *fbg, *senses;
    float *qk, *alpha, *out;
    // scratch
    float *branch, *attScratch, *headScratch;
    float *gRes, *gA, *gB, *gBig, *gBig2, *gAlpha, *gX;
  } a{};
  int headChunk = 0;
};

}  // namespace bp
