#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.h"
#include "profile.h"
#include "rng.h"

namespace bp {

// Dropout stream ids (one per site); the per-micro-batch seed selects a fresh set of masks.
enum Stream : uint32_t { kEmbed = 1, kSense0 = 10, kSense1 = 11, kSense2 = 12, kLayerBase = 100 };
static inline DropoutSite site(bool train, float p, uint32_t seed, uint32_t stream) {
  DropoutSite s;
  if (train && p > 0.0f) {
    s.p = p;
    s.key = streamKey(seed, stream);
  }
  return s;
}

static void checkCancel(const std::atomic<int>* c) {
  if (c && c->load(std::memory_order_relaxed)) throw Cancelled();
}

int Model::addTensor(const std::string& key, std::vector<int> shape, bool conv1d, bool decay, Init init) {
  TensorInfo t;
  t.key = key;
  t.shape = std::move(shape);
  t.conv1d = conv1d;
  t.decay = decay;
  t.init = init;
  t.size = 1;
  for (int s : t.shape) t.size *= s;
  t.offset = tensors.empty() ? 0 : tensors.back().offset + tensors.back().size;
  tensors.push_back(t);
  return (int)tensors.size() - 1;
}

Model::Model(const Config& c) : cfg(c) {
  check(cfg.vocab > 0 && cfg.d > 0 && cfg.nLayer > 0 && cfg.nHead > 0 && cfg.maxPos > 0, "invalid model shape");
  check(cfg.d % cfg.nHead == 0, "n_embd must be divisible by n_head");
  check(cfg.realVocab > 0 && cfg.realVocab <= cfg.vocab, "real_vocab_size must be in 1..vocab_size");
  const bool bp = cfg.arch == Arch::Backpack;
  if (bp) {
    check(cfg.senses > 0 && cfg.d % cfg.senses == 0, "n_embd must be divisible by num_senses");
    check(cfg.senseHidden > 0, "sense MLP width must be positive");
  }
  const int d = cfg.d, V = cfg.vocab;
  hidden4 = 4 * d;
  const std::string pre = bp ? "backpack.gpt2_model." : "transformer.";
  wte = addTensor(pre + "wte.weight", {V, d}, false, false, Init::Normal);
  wpe = addTensor(pre + "wpe.weight", {cfg.maxPos, d}, false, false, Init::Normal);
  for (int l = 0; l < cfg.nLayer; l++) {
    const std::string h = pre + "h." + std::to_string(l) + ".";
    LayerIdx L;
    L.ln1w = addTensor(h + "ln_1.weight", {d}, false, false, Init::Ones);
    L.ln1b = addTensor(h + "ln_1.bias", {d}, false, false, Init::Zeros);
    L.qkvw = addTensor(h + "attn.c_attn.weight", {3 * d, d}, true, true, Init::Normal);
    L.qkvb = addTensor(h + "attn.c_attn.bias", {3 * d}, false, false, Init::Zeros);
    L.projw = addTensor(h + "attn.c_proj.weight", {d, d}, true, true, Init::ResidualNormal);
    L.projb = addTensor(h + "attn.c_proj.bias", {d}, false, false, Init::Zeros);
    L.ln2w = addTensor(h + "ln_2.weight", {d}, false, false, Init::Ones);
    L.ln2b = addTensor(h + "ln_2.bias", {d}, false, false, Init::Zeros);
    L.fcw = addTensor(h + "mlp.c_fc.weight", {4 * d, d}, true, true, Init::Normal);
    L.fcb = addTensor(h + "mlp.c_fc.bias", {4 * d}, false, false, Init::Zeros);
    L.fcprojw = addTensor(h + "mlp.c_proj.weight", {d, 4 * d}, true, true, Init::ResidualNormal);
    L.fcprojb = addTensor(h + "mlp.c_proj.bias", {d}, false, false, Init::Zeros);
    layers.push_back(L);
  }
  lnfw = addTensor(pre + "ln_f.weight", {d}, false, false, Init::Ones);
  lnfb = addTensor(pre + "ln_f.bias", {d}, false, false, Init::Zeros);
  if (bp) {
    const int h = cfg.senseHidden, kd = cfg.senses * d;
    const std::string s = "backpack.sense_network.";
    sense.ln0w = addTensor(s + "ln.weight", {d}, false, false, Init::Ones);
    sense.ln0b = addTensor(s + "ln.bias", {d}, false, false, Init::Zeros);
    sense.ln1w = addTensor(s + "block.ln_1.weight", {d}, false, false, Init::Ones);
    sense.ln1b = addTensor(s + "block.ln_1.bias", {d}, false, false, Init::Zeros);
    sense.faw = addTensor(s + "block.mlp.c_fc.weight", {h, d}, true, true, Init::Normal);
    sense.fab = addTensor(s + "block.mlp.c_fc.bias", {h}, false, false, Init::Zeros);
    sense.fapw = addTensor(s + "block.mlp.c_proj.weight", {d, h}, true, true, Init::ResidualNormal);
    sense.fapb = addTensor(s + "block.mlp.c_proj.bias", {d}, false, false, Init::Zeros);
    sense.ln2w = addTensor(s + "block.ln_2.weight", {d}, false, false, Init::Ones);
    sense.ln2b = addTensor(s + "block.ln_2.bias", {d}, false, false, Init::Zeros);
    sense.fbw = addTensor(s + "final_mlp.c_fc.weight", {h, d}, true, true, Init::Normal);
    sense.fbb = addTensor(s + "final_mlp.c_fc.bias", {h}, false, false, Init::Zeros);
    sense.fbpw = addTensor(s + "final_mlp.c_proj.weight", {kd, h}, true, true, Init::ResidualNormal);
    sense.fbpb = addTensor(s + "final_mlp.c_proj.bias", {kd}, false, false, Init::Zeros);
    aw = addTensor("backpack.sense_weight_net.c_attn.weight", {2 * d, d}, false, true, Init::Normal);
    ab = addTensor("backpack.sense_weight_net.c_attn.bias", {2 * d}, false, false, Init::Zeros);
  }
  const long n = tensors.back().offset + tensors.back().size;
  params.assign(n, 0.0f);
  grads.assign(n, 0.0f);
}

void Model::initParams(uint32_t seed) {
  const float residualStd = 0.02f / std::sqrt(2.0f * cfg.nLayer);
  for (size_t i = 0; i < tensors.size(); i++) {
    const TensorInfo& t = tensors[i];
    float* p = params.data() + t.offset;
    const uint32_t key = streamKey(seed, 1000 + (uint32_t)i);
    switch (t.init) {
      case Init::Ones: std::fill(p, p + t.size, 1.0f); break;
      case Init::Zeros: std::fill(p, p + t.size, 0.0f); break;
      case Init::Normal:
      case Init::ResidualNormal: {
        const float std = t.init == Init::Normal ? 0.02f : residualStd;
#pragma omp parallel for schedule(static)
        for (long j = 0; j < t.size; j++) p[j] = std * normal01(key, (uint32_t)j);
      } break;
    }
  }
  m.clear();
  v.clear();
  adamStep = 0;
}

void Model::ensureActivations(int B, int T) {
  check(T >= 1 && T <= cfg.maxPos, "sequence length " + std::to_string(T) + " outside 1.." + std::to_string(cfg.maxPos));
  check(B >= 1, "batch must be >= 1");
  if (T <= capT && B <= capB) return;
  B = std::max(B, capB);
  T = std::max(T, capT);
  const long N = (long)B * T, d = cfg.d, TT = (long)T * T;
  const bool bp = cfg.arch == Arch::Backpack;
  const long h = cfg.senseHidden, kd = (long)cfg.senses * d;
  const int nt = getThreads();
  // Head rows per chunk: large chunks give the dwte GEMM a long inner dimension and fewer passes over dwte;
  // the chunk's logits scratch stays under 32M floats.
  headChunk = (int)std::max(64L, std::min(N, (32L << 20) / cfg.vocab / 64 * 64));
  long total = 0;
  std::vector<std::pair<float**, long>> plan;
  auto take = [&](float** p, long n) { plan.push_back({p, n}); total += n; };
  take(&a.encoded, N * d);
  take(&a.lnf, N * d);
  take(&a.lnfm, N);
  take(&a.lnfr, N);
  a.layer.assign(cfg.nLayer, LayerActs{});
  attMasks.resize(cfg.nLayer);
  for (auto& L : a.layer) {
    take(&L.ln1, N * d); take(&L.ln1m, N); take(&L.ln1r, N); take(&L.qkv, N * 3 * d); take(&L.atty, N * d);
    take(&L.probs, (long)B * cfg.nHead * TT); take(&L.res2, N * d); take(&L.ln2, N * d); take(&L.ln2m, N);
    take(&L.ln2r, N); take(&L.fch, N * 4 * d); take(&L.fchg, N * 4 * d); take(&L.res3, N * d);
  }
  long big = std::max(3 * d, 4 * d), big2 = 4 * d;
  if (bp) {
    take(&a.r0, N * d); take(&a.h0, N * d); take(&a.h0m, N); take(&a.h0r, N); take(&a.r1, N * d);
    take(&a.h1, N * d); take(&a.h1m, N); take(&a.h1r, N); take(&a.fa, N * h); take(&a.fag, N * h);
    take(&a.r2, N * d); take(&a.h2, N * d); take(&a.h2m, N); take(&a.h2r, N); take(&a.fb, N * h);
    take(&a.fbg, N * h); take(&a.senses, N * kd); take(&a.qk, N * 2 * d);
    take(&a.alpha, (long)B * cfg.senses * TT); take(&a.out, N * d);
    take(&a.gAlpha, (long)B * cfg.senses * TT);
    big = std::max(big, kd);
    big2 = std::max({big2, h, 2 * d});
  }
  take(&a.branch, N * d);
  take(&a.attScratch, (long)nt * 2 * TT);
  take(&a.headScratch, (long)headChunk * cfg.vocab);
  take(&a.gRes, N * d); take(&a.gA, N * d); take(&a.gB, N * d); take(&a.gX, N * d);
  take(&a.gBig, N * big); take(&a.gBig2, N * big2);
  arena.assign(total, 0.0f);
  long off = 0;
  for (auto& [p, n] : plan) {
    *p = arena.data() + off;
    off += n;
  }
  capB = B;
  capT = T;
}

double Model::forward(const ForwardRequest& r, long* counted) {
  const int B = r.B, T = r.T, d = cfg.d, N = B * T, V = cfg.vocab;
  ensureActivations(B, T);
  for (int i = 0; i < N; i++) {
    check(r.tokens[i] >= 0 && r.tokens[i] < V, [&] {
      return "token id " + std::to_string(r.tokens[i]) + " at index " + std::to_string(i) + " outside 0.." +
             std::to_string(V - 1);
    });
    if (r.targets)
      check(r.targets[i] < cfg.realVocab, [&] {
        return "target id " + std::to_string(r.targets[i]) + " at index " + std::to_string(i) +
               " is not a real vocabulary item";
      });
  }
  positions.resize(N);
  for (int i = 0; i < N; i++) positions[i] = i % T;
  const Interventions* iv = r.interventions;
  const bool train = r.train;
  const float p = r.dropout;

  embeddingForward(a.encoded, r.tokens, positions.data(), P(wte), P(wpe), N, d, iv ? &iv->embedding : nullptr);
  dropoutForward(a.encoded, (long)N * d, site(train, p, r.rngSeed, kEmbed));
  const float* x = a.encoded;
  for (int l = 0; l < cfg.nLayer; l++) {
    checkCancel(r.cancel);
    const LayerIdx& W = layers[l];
    LayerActs& A = a.layer[l];
    const uint32_t s0 = kLayerBase + 4 * l;
    {
    BP_PROFILE("fwd.ln+qkv");
    layernormForward(A.ln1, A.ln1m, A.ln1r, x, P(W.ln1w), P(W.ln1b), N, d, cfg.lnEps);
    linearForward(A.qkv, A.ln1, P(W.qkvw), P(W.qkvb), N, d, 3 * d);
    }
    AttentionShape as{B, T, d, cfg.nHead,
                      (float)(1.0 / std::sqrt((double)(d / cfg.nHead)) / (cfg.scaleByInverseLayer ? l + 1 : 1))};
    {
    BP_PROFILE("fwd.attention");
    const DropoutSite attDrop = site(train, p, r.rngSeed, s0);
    if (attDrop.active()) attMasks[l].resize((size_t)B * cfg.nHead * T * T);
    attentionForward(A.atty, A.probs, A.qkv, as, attDrop, attMasks[l].data(), a.attScratch);
    }
    BP_PROFILE("fwd.proj+mlp");
    linearForward(a.branch, A.atty, P(W.projw), P(W.projb), N, d, d);
    residualDropoutForward(A.res2, x, a.branch, (long)N * d, site(train, p, r.rngSeed, s0 + 1));
    layernormForward(A.ln2, A.ln2m, A.ln2r, A.res2, P(W.ln2w), P(W.ln2b), N, d, cfg.lnEps);
    linearForward(A.fch, A.ln2, P(W.fcw), P(W.fcb), N, d, 4 * d);
    geluForward(A.fchg, A.fch, (long)N * 4 * d);
    linearForward(a.branch, A.fchg, P(W.fcprojw), P(W.fcprojb), N, 4 * d, d);
    residualDropoutForward(A.res3, A.res2, a.branch, (long)N * d, site(train, p, r.rngSeed, s0 + 2));
    x = A.res3;
  }
  layernormForward(a.lnf, a.lnfm, a.lnfr, x, P(lnfw), P(lnfb), N, d, cfg.lnEps);
  const float* feats = a.lnf;
  if (cfg.arch == Arch::Backpack) {
    checkCancel(r.cancel);
    {
    BP_PROFILE("fwd.sense");
    senseForward(r.tokens, N, train, r.rngSeed, p, iv);
    }
    BP_PROFILE("fwd.alpha+mix");
    linearForward(a.qk, a.lnf, P(aw), P(ab), N, d, 2 * d);
    AlphaShape sh{B, T, d, cfg.senses};
    alphaForward(a.alpha, a.qk, sh, nullptr);
    std::vector<uint8_t> keyMask;
    if (iv && iv->alphaSense >= 0) {
      keyMask.assign(N, 0);
      for (int i = 0; i < N; i++)
        keyMask[i] = std::find(iv->alphaTokens.begin(), iv->alphaTokens.end(), r.tokens[i]) != iv->alphaTokens.end();
      AlphaScale sc;
      sc.sense = iv->alphaSense;
      sc.factor = iv->alphaFactor;
      sc.keyMask = keyMask.data();
      alphaApplyScale(a.alpha, sh, sc);
    }
    backpackOutputForward(a.out, a.alpha, scaledSenses(N, iv ? iv->senseScale : nullptr), sh);
    feats = a.out;
    if (r.alphaOut) std::memcpy(r.alphaOut, a.alpha, sizeof(float) * (long)B * cfg.senses * T * T);
  }
  if (r.hiddenOut) std::memcpy(r.hiddenOut, feats, sizeof(float) * (long)N * d);
  checkCancel(r.cancel);
  HeadArgs h{};
  h.N = N;
  h.d = d;
  h.V = V;
  h.x = feats;
  h.wte = P(wte);
  h.targets = r.targets;
  h.logitsOut = r.logitsOut;
  h.lossPerToken = r.lossPerToken;
  h.scratch = a.headScratch;
  h.chunk = headChunk;
  if (train) {
    h.dx = a.gX;
    h.dwte = G(wte);
    h.gradScale = r.gradScale;
  }
  if (!r.targets && !r.logitsOut) {
    if (counted) *counted = 0;
    return 0.0;
  }
  BP_PROFILE(train ? "head fwd+bwd" : "head fwd");
  return headForwardBackward(h, counted);
}

void Model::backward(const ForwardRequest& r) {
  const int B = r.B, T = r.T, d = cfg.d, N = B * T;
  const float p = r.dropout;
  float* dlnf = a.gX;
  if (cfg.arch == Arch::Backpack) {
    AlphaShape sh{B, T, d, cfg.senses};
    {
    BP_PROFILE("bwd.alpha+mix");
    backpackOutputBackward(a.gAlpha, a.gBig, a.gX, a.alpha, a.senses, sh);
    alphaBackward(a.gBig2, a.gAlpha, a.qk, a.alpha, sh);
    linearBackward(a.gRes, G(aw), G(ab), a.gBig2, a.lnf, P(aw), N, d, 2 * d, false);
    }
    checkCancel(r.cancel);
    BP_PROFILE("bwd.sense");
    senseBackward(r.tokens, N, r.rngSeed, p);
    dlnf = a.gRes;
  }
  float* dres = a.gA;
  float* tmp = dlnf == a.gRes ? a.gX : a.gRes;
  std::fill(dres, dres + (long)N * d, 0.0f);
  const float* xLast = a.layer[cfg.nLayer - 1].res3;
  layernormBackward(dres, G(lnfw), G(lnfb), dlnf, xLast, P(lnfw), a.lnfm, a.lnfr, N, d);
  const long Nd = (long)N * d;
  for (int l = cfg.nLayer - 1; l >= 0; l--) {
    checkCancel(r.cancel);
    const LayerIdx& W = layers[l];
    LayerActs& A = a.layer[l];
    const float* xin = l == 0 ? a.encoded : a.layer[l - 1].res3;
    const uint32_t s0 = kLayerBase + 4 * l;
    {
    BP_PROFILE("bwd.mlp");
    std::memcpy(tmp, dres, sizeof(float) * Nd);
    dropoutBackward(tmp, Nd, site(true, p, r.rngSeed, s0 + 2));
    linearBackward(a.gBig, G(W.fcprojw), G(W.fcprojb), tmp, A.fchg, P(W.fcprojw), N, 4 * d, d, false);
    geluBackward(a.gBig, A.fch, a.gBig, (long)N * 4 * d);
    linearBackward(a.gB, G(W.fcw), G(W.fcb), a.gBig, A.ln2, P(W.fcw), N, d, 4 * d, false);
    layernormBackward(dres, G(W.ln2w), G(W.ln2b), a.gB, A.res2, P(W.ln2w), A.ln2m, A.ln2r, N, d);
    }
    std::memcpy(tmp, dres, sizeof(float) * Nd);
    dropoutBackward(tmp, Nd, site(true, p, r.rngSeed, s0 + 1));
    linearBackward(a.gB, G(W.projw), G(W.projb), tmp, A.atty, P(W.projw), N, d, d, false);
    AttentionShape as{B, T, d, cfg.nHead,
                      (float)(1.0 / std::sqrt((double)(d / cfg.nHead)) / (cfg.scaleByInverseLayer ? l + 1 : 1))};
    {
    BP_PROFILE("bwd.attention");
    attentionBackward(a.gBig, a.gB, A.qkv, A.probs, as, site(true, p, r.rngSeed, s0), attMasks[l].data(), a.attScratch);
    }
    BP_PROFILE("bwd.qkv+ln");
    linearBackward(tmp, G(W.qkvw), G(W.qkvb), a.gBig, A.ln1, P(W.qkvw), N, d, 3 * d, false);
    layernormBackward(dres, G(W.ln1w), G(W.ln1b), tmp, xin, P(W.ln1w), A.ln1m, A.ln1r, N, d);
  }
  dropoutBackward(dres, Nd, site(true, p, r.rngSeed, kEmbed));
  embeddingBackward(G(wte), G(wpe), dres, r.tokens, positions.data(), N, d, nullptr);
}

const float* Model::scaledSenses(int N, const float* senseScale) {
  if (!senseScale) return a.senses;
  const int d = cfg.d, k = cfg.senses;
  const long kd = (long)k * d;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++)
    for (int l = 0; l < k; l++) {
      const float s = senseScale[(long)i * k + l];
      const float* c = a.senses + i * kd + (long)l * d;
      float* o = a.gBig + i * kd + (long)l * d;
      for (int j = 0; j < d; j++) o[j] = c[j] * s;
    }
  return a.gBig;
}

void Model::zeroGrad() { std::fill(grads.begin(), grads.end(), 0.0f); }

double Model::optimizerStep(const OptimizerArgs& o) {
  const double norm = std::sqrt(sumSquares(grads.data(), (long)grads.size())) * o.unscale;
  if (!std::isfinite(norm)) return norm;
  if (m.size() != params.size()) {
    m.assign(params.size(), 0.0f);
    v.assign(params.size(), 0.0f);
  }
  const float factor = gradientFactor(o, norm);
  if (factor != 1.0f) scale(grads.data(), (long)grads.size(), factor);
  adamStep++;
  BP_PROFILE("adamw");
  AdamWArgs args{o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, adamStep};
  for (const TensorInfo& t : tensors)
    adamwUpdate(params.data() + t.offset, grads.data() + t.offset, m.data() + t.offset, v.data() + t.offset, t.size,
                args, t.decay);
  return norm;
}

}  // namespace bp
