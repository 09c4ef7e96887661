// The model on one GPU: the CPU backend's forward/backward (../model.cpp) with every layer replaced by its CUDA
// twin. Same tensor table, same dropout streams, so results match the CPU backend up to float reordering.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "../rng.h"
#include "device_model.cuh"

namespace bp::BP_CUDA_NS {

enum Stream : uint32_t { kEmbed = 1, kLayerBase = 100 };
// The dropout site of stream `stream` of this micro-batch (off unless training with p > 0); offset: Site::offset
Site dropSite(bool train, float p, uint32_t seed, uint32_t stream, uint32_t offset) {
  Site s;
  if (train && p > 0.0f) {
    s.p = p;
    s.key = streamKey(seed, stream);
    s.offset = offset;
  }
  return s;
}

void DeviceModel::setDropOffsets(const ForwardRequest& r) {
  dropOffset = (uint32_t)((long)r.row0 * r.T * cfg.d);
  attnDropOffset = (uint32_t)((long)r.row0 * cfg.nHead * r.T * r.T);
}

static void checkCancel(const std::atomic<int>* c) {
  if (c && c->load(std::memory_order_relaxed)) throw Cancelled();
}

static float attnScale(const Config& c, int l) {
  return (float)(1.0 / std::sqrt((double)(c.d / c.nHead)) / (c.scaleByInverseLayer ? l + 1 : 1));
}

DeviceModel::DeviceModel(const Config& c, const std::vector<TensorInfo>& tensors, int dev, Precision prec)
    : cfg(c), device(dev) {
  BP_CUDA(cudaSetDevice(device));
  BP_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  if (cublasCreate(&blas.handle) != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS: cannot create a handle on device " + std::to_string(dev));
  cublasSetStream(blas.handle, stream);
  blas.stream = stream;
  // The few products that keep fp32 operands in mixed mode: bf16-rounded inputs (as measured so far), or TF32 in
  // the fp16 build (fp16-rounded inputs would overflow on loss-scaled gradients; the paper allowed TF32)
  const cublasComputeType_t mixedFp32 =
      kFp16Build ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_FAST_16BF;
  blas.compute = prec == Precision::Mixed16 ? mixedFp32
                 : prec == Precision::TF32  ? CUBLAS_COMPUTE_32F_FAST_TF32
                                            : CUBLAS_COMPUTE_32F_PEDANTIC;
  if (prec == Precision::Mixed16) {
    mixed = half16GemmWorks(blas, false);
    attn16 = mixed && half16GemmWorks(blas, true);
    if (!mixed)
      std::fprintf(stderr, "backpack: cuBLAS refused %s-operand GEMMs; %s mode uses fp32 operands\n", kHalf16Name,
                   kHalf16Name);
    else if (!attn16)
      std::fprintf(stderr, "backpack: cuBLAS refused batched %s GEMMs; attention uses fp32 operands\n", kHalf16Name);
    flashAttn =
        mixed && flashAttentionSupported(AttnShape{1, 1, c.d, c.nHead, 1.0f}) && !envIs("BACKPACK_CUDA_FLASH", "0");
    if (mixed) lnBack = LnBackward::Vectorized;
    // (cuBLASLt's GELU input matrix needs leading dimensions divisible by 8: every layer width here is d or h based)
    fusedLinear = mixed && c.d % 8 == 0 && c.senseHidden % 8 == 0 && enableLt(blas);
    const bool grad16 = !envIs("BACKPACK_CUDA_GRAD16", "0");
    geluGrad16 = grad16 && fusedLinear && ltGeluBackwardWorks(blas);
    qkvGrad16 = grad16 && flashAttn;
    logits16 = !envIs("BACKPACK_CUDA_LOGITS16", "0");
  }
  std::unordered_map<std::string, long> off;
  for (const TensorInfo& t : tensors) off[t.key] = t.offset;
  numParams = tensors.back().offset + tensors.back().size;
  auto at = [&](const std::string& k) {
    auto it = off.find(k);
    check(it != off.end(), "CUDA backend: tensor " + k + " missing from the layout");
    return it->second;
  };
  const bool bp = cfg.arch == Arch::Backpack;
  const std::string pre = bp ? "backpack.gpt2_model." : "transformer.";
  wte = at(pre + "wte.weight");
  wpe = at(pre + "wpe.weight");
  lnfw = at(pre + "ln_f.weight");
  lnfb = at(pre + "ln_f.bias");
  for (int l = 0; l < cfg.nLayer; l++) {
    const std::string h = pre + "h." + std::to_string(l) + ".";
    layers.push_back(LayerOff{at(h + "ln_1.weight"), at(h + "ln_1.bias"), at(h + "attn.c_attn.weight"),
                              at(h + "attn.c_attn.bias"), at(h + "attn.c_proj.weight"), at(h + "attn.c_proj.bias"),
                              at(h + "ln_2.weight"), at(h + "ln_2.bias"), at(h + "mlp.c_fc.weight"),
                              at(h + "mlp.c_fc.bias"), at(h + "mlp.c_proj.weight"), at(h + "mlp.c_proj.bias")});
  }
  if (bp) {
    const std::string s = "backpack.sense_network.";
    sense = SenseOff{at(s + "ln.weight"), at(s + "ln.bias"), at(s + "block.ln_1.weight"), at(s + "block.ln_1.bias"),
                     at(s + "block.mlp.c_fc.weight"), at(s + "block.mlp.c_fc.bias"), at(s + "block.mlp.c_proj.weight"),
                     at(s + "block.mlp.c_proj.bias"), at(s + "block.ln_2.weight"), at(s + "block.ln_2.bias"),
                     at(s + "final_mlp.c_fc.weight"), at(s + "final_mlp.c_fc.bias"),
                     at(s + "final_mlp.c_proj.weight"), at(s + "final_mlp.c_proj.bias")};
    aw = at("backpack.sense_weight_net.c_attn.weight");
    ab = at("backpack.sense_weight_net.c_attn.bias");
  }
  params.resize(numParams);
  grads.resize(numParams);
  BP_CUDA(cudaMemsetAsync(params.p, 0, sizeof(float) * numParams, stream));
  BP_CUDA(cudaMemsetAsync(grads.p, 0, sizeof(float) * numParams, stream));
  if (mixed) {
    params16.resize(numParams);
    refreshShadow();
  }
  normAcc.resize(1);
}

DeviceModel::~DeviceModel() {
  cudaSetDevice(device);
  if (blas.handle) cublasDestroy(blas.handle);
  if (stream) cudaStreamDestroy(stream);
}

void DeviceModel::ensureActivations(int B, int T) {
  check(T >= 1 && T <= cfg.maxPos, "sequence length " + std::to_string(T) + " outside 1.." + std::to_string(cfg.maxPos));
  check(B >= 1, "batch must be >= 1");
  if (T <= capT && B <= capB) return;
  B = std::max(B, capB);
  T = std::max(T, capT);
  const long N = (long)B * T, d = cfg.d, TT = (long)T * T, H = cfg.nHead;
  const bool bp = cfg.arch == Arch::Backpack;
  const long h = cfg.senseHidden, k = cfg.senses, kd = k * d;
  // Logits chunk: at most ~256 MiB of scratch, at least one row. The bf16 dlogits gather up to ~1 GiB of rows
  // (whole chunks) before the head's backward products run (see HeadArgs).
  headChunk = (int)std::max(1L, std::min(N, (64L << 20) / cfg.vocab));
  headRows16 = (int)std::min(N, std::max(1L, (1L << 29) / cfg.vocab / headChunk) * headChunk);
  long total = 0;
  std::vector<std::pair<float**, long>> plan;
  auto take = [&](float** p, long n) {
    n = (n + 63) / 64 * 64;  // 256-byte alignment for every buffer
    plan.push_back({p, n});
    total += n;
  };
  take(&a.encoded, N * d);
  take(&a.lnf, N * d);
  take(&a.lnfm, N);
  take(&a.lnfr, N);
  a.layer.assign(cfg.nLayer, LayerActs{});
  for (auto& L : a.layer) {
    take(&L.ln1, N * d); take(&L.ln1m, N); take(&L.ln1r, N); take(&L.qkv, N * 3 * d); take(&L.atty, N * d);
    take(&L.lse, N * H); take(&L.res2, N * d); take(&L.ln2, N * d); take(&L.ln2m, N);
    take(&L.ln2r, N); take(&L.fch, N * 4 * d); take(&L.fchg, N * 4 * d); take(&L.res3, N * d);
    L.keepBits = nullptr;
    if (flashAttn)  // 64-bit words carved from the float arena (256-byte aligned like every buffer)
      take(reinterpret_cast<float**>(&L.keepBits), 2 * flashKeepWords(AttnShape{B, T, (int)d, (int)H, 1.0f}));
  }
  long big = 4 * d, big2 = 4 * d;
  // Attention work space: whole chunks of sequences, at most ~1 GiB of scores at once.
  const long scratchBudget = 256L << 20;
  // (the fused attention keeps no T x T scores, only D and the backward pass's bf16 dS tiles)
  const long perSeqAttn = flashAttn ? flashBackwardScratchFloats(AttnShape{1, T, (int)d, (int)H, 1.0f}) : 3 * H * TT;
  const long perSeqCtx = bp ? (mixed ? 9 : 8) * k * TT / 2 : 0;  // 4 fp32 chunk buffers (+ alpha in bf16)
  attnSeqs = flashAttn ? B : (int)std::max(1L, std::min((long)B, scratchBudget / perSeqAttn));
  // Tuning knob of the bf16 attention (its chunks launch cheaply): fewer sequences per chunk keep the T x T
  // scratch of a chunk in L2. Unset: the whole budget as above.
  if (const char* e = std::getenv("BACKPACK_CUDA_ATTN_SEQS"); e && mixed && attn16 && !flashAttn)
    attnSeqs = (int)std::max(1L, std::min((long)attnSeqs, std::atol(e)));
  ctxSeqs = bp ? (int)std::max(1L, std::min((long)B, scratchBudget / perSeqCtx)) : 0;
  long att = std::max(attnSeqs * perSeqAttn, ctxSeqs * perSeqCtx);
  if (bp) {
    take(&a.r0, N * d); take(&a.h0, N * d); take(&a.h0m, N); take(&a.h0r, N); take(&a.r1, N * d);
    take(&a.h1, N * d); take(&a.h1m, N); take(&a.h1r, N); take(&a.fa, N * h); take(&a.fag, N * h);
    take(&a.r2, N * d); take(&a.h2, N * d); take(&a.h2m, N); take(&a.h2r, N); take(&a.fb, N * h);
    take(&a.fbg, N * h); take(&a.senses, N * kd); take(&a.qk, N * 2 * d); take(&a.alse, N * k); take(&a.out, N * d);
    big = std::max(big, kd);
    big2 = std::max({big2, h, 2 * d});
  }
  take(&a.branch, N * d);
  take(&a.attScratch, att);
  take(&a.headScratch, (long)headChunk * cfg.vocab);
  take(&a.gRes, N * d); take(&a.gA, N * d); take(&a.gB, N * d); take(&a.gX, N * d);
  take(&a.gBig, N * big); take(&a.gBig2, N * big2);
  arena.release();
  arena.resize(total);
  long off = 0;
  for (auto& [p, n] : plan) {
    *p = arena.p + off;
    off += n;
  }
  // bf16 twins of the GEMM inputs (mixed mode): null pointers otherwise
  long total16 = 0;
  std::vector<std::pair<half16**, long>> plan16;
  auto take16 = [&](half16** p, long n) {  // n == 0 (or fp32 mode): no buffer, a null pointer
    *p = nullptr;
    if (!mixed || n == 0) return;
    n = (n + 127) / 128 * 128;  // 256-byte alignment
    plan16.push_back({p, n});
    total16 += n;
  };
  for (auto& L : a.layer) {
    take16(&L.ln1h, N * d); take16(&L.qkvh, attn16 || flashAttn ? N * 3 * d : 0); take16(&L.attyh, N * d);
    take16(&L.ln2h, N * d); take16(&L.fchgh, N * 4 * d); take16(&L.fchh, fusedLinear ? N * 4 * d : 0);
  }
  take16(&a.lnfh, N * d);
  take16(&a.gBig16, geluGrad16 ? N * std::max(4 * d, bp ? h : 0L) : 0);
  take16(&a.gq16, qkvGrad16 ? N * 3 * d : 0);
  take16(&a.g16, N * std::max({big, big2, 3 * d}));
  take16(&a.headScratch16, (long)headRows16 * cfg.vocab);
  if (bp) {
    take16(&a.outh, N * d); take16(&a.h1h, N * d); take16(&a.fagh, N * h); take16(&a.h2h, N * d);
    take16(&a.fbgh, N * h); take16(&a.senses16, N * kd);
    take16(&a.fah, fusedLinear ? N * h : 0); take16(&a.fbh, fusedLinear ? N * h : 0);
  } else {
    a.outh = a.h1h = a.fagh = a.h2h = a.fbgh = a.senses16 = a.fah = a.fbh = nullptr;
  }
  arena16.release();
  if (mixed) {
    arena16.resize(total16);
    long off16 = 0;
    for (auto& [p, n] : plan16) {
      *p = arena16.p + off16;
      off16 += n;
    }
  }
  ptrs.release();
  ptrs.resize((size_t)10 * std::max((long)B * H, (long)ctxSeqs * k));  // bf16 attention: arrays for the whole batch
  dTokens.resize(N);
  dTargets.resize(N);
  dPositions.resize(N);
  dLoss.resize(N);
  hLoss.resize(N);
  std::vector<float> one(N, 1.0f);
  ones.resize(N);
  BP_CUDA(cudaMemcpy(ones.p, one.data(), sizeof(float) * N, cudaMemcpyHostToDevice));
  capB = B;
  capT = T;
}

void DeviceModel::upload(const int32_t* tokens, const int32_t* targets, int B, int T) {
  const long N = (long)B * T;
  std::vector<int32_t> pos(N);
  for (long i = 0; i < N; i++) pos[i] = (int32_t)(i % T);
  BP_CUDA(cudaMemcpyAsync(dTokens.p, tokens, sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream));
  BP_CUDA(cudaMemcpyAsync(dPositions.p, pos.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream));
  if (targets) BP_CUDA(cudaMemcpyAsync(dTargets.p, targets, sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream));
  BP_CUDA(cudaStreamSynchronize(stream));  // pos is a stack vector
}

double DeviceModel::forward(const ForwardRequest& r, long countForScale, long* counted, DeviceInterventions* iv) {
  BP_CUDA(cudaSetDevice(device));
  const int B = r.B, T = r.T, d = cfg.d, N = B * T, V = cfg.vocab;
  ensureActivations(B, T);
  setDropOffsets(r);
  long count = 0;
  for (int i = 0; i < N; i++) {
    check(r.tokens[i] >= 0 && r.tokens[i] < V, [&] {
      return "token id " + std::to_string(r.tokens[i]) + " at index " + std::to_string(i) + " outside 0.." +
             std::to_string(V - 1);
    });
    if (r.targets) {
      check(r.targets[i] < cfg.realVocab, [&] {
        return "target id " + std::to_string(r.targets[i]) + " at index " + std::to_string(i) +
               " is not a real vocabulary item";
      });
      count += r.targets[i] >= 0;
    }
  }
  if (counted) *counted = count;
  upload(r.tokens, r.targets, B, T);
  const bool train = r.train;
  const float p = r.dropout;
  // the dropout sites of this request: the [N][d] ones, and attention's (their own element offset)
  auto rowSite = [&](uint32_t stream) { return dropSite(train, p, r.rngSeed, stream, dropOffset); };
  auto attnSite = [&](uint32_t stream) { return dropSite(train, p, r.rngSeed, stream, attnDropOffset); };
  const EmbedOverride ov = iv ? iv->embed() : EmbedOverride{};

  embeddingForward(a.encoded, dTokens.p, dPositions.p, P(wte), P(wpe), N, d, ov, stream);
  dropoutForward(a.encoded, (long)N * d, rowSite(kEmbed), stream);
  const float* x = a.encoded;
  for (int l = 0; l < cfg.nLayer; l++) {
    checkCancel(r.cancel);
    const LayerOff& W = layers[l];
    LayerActs& A = a.layer[l];
    const uint32_t s0 = kLayerBase + 4 * l;
    layernormForward(fp32Input(A.ln1), A.ln1m, A.ln1r, x, P(W.ln1w), P(W.ln1b), N, d, cfg.lnEps, stream, A.ln1h, mixed);
    if (train && flashAttn && fusedLinear) {  // the fused kernels read only the bf16 qkv
      linearForwardLt(blas, A.qkvh, nullptr, A.ln1h, W16(W.qkvw), P(W.qkvb), W16(W.qkvb), N, d, 3 * d, Epilogue::Bias);
    } else if (mixed) {  // bias add and the bf16 twin for the attention products in one pass
      linear(A.qkv, A.ln1, A.ln1h, W.qkvw, kBiasLater, N, d, 3 * d);
      // training on the fused kernels reads only the bf16 twin (the KV-cache prefill copies fp32 rows)
      addBias(A.qkv, P(W.qkvb), N, 3 * d, stream, A.qkvh, !(train && flashAttn));
    } else {
      linear(A.qkv, A.ln1, A.ln1h, W.qkvw, W.qkvb, N, d, 3 * d);
    }
    AttnShape as{B, T, d, cfg.nHead, attnScale(cfg, l)};
    attentionForward(blas, A.atty, A.lse, A.qkv, as, attnSite(s0), attnWork(A), A.qkvh, A.attyh);
    linear(a.branch, A.atty, A.attyh, W.projw, kBiasLater, N, d, d);
    biasResidualDropoutForward(A.res2, x, a.branch, P(W.projb), d, (long)N * d, rowSite(s0 + 1), stream);
    layernormForward(fp32Input(A.ln2), A.ln2m, A.ln2r, A.res2, P(W.ln2w), P(W.ln2b), N, d, cfg.lnEps, stream,
                     A.ln2h, mixed);
    mlpHidden(A.fch, A.fchh, A.fchg, A.fchgh, A.ln2, A.ln2h, W.fcw, W.fcb, N, d, 4 * d, train);
    linear(a.branch, A.fchg, A.fchgh, W.fcprojw, kBiasLater, N, 4 * d, d);
    biasResidualDropoutForward(A.res3, A.res2, a.branch, P(W.fcprojb), d, (long)N * d,
                               rowSite(s0 + 2), stream);
    x = A.res3;
  }
  layernormForward(a.lnf, a.lnfm, a.lnfr, x, P(lnfw), P(lnfb), N, d, cfg.lnEps, stream, a.lnfh, mixed);
  const float* feats = a.lnf;
  const half16* feats16 = a.lnfh;
  if (cfg.arch == Arch::Backpack) {
    checkCancel(r.cancel);
    senseForward(dTokens.p, N, train, r.rngSeed, p, iv);
    linear(a.qk, a.lnf, a.lnfh, aw, ab, N, d, 2 * d);
    CtxShape sh{B, T, d, cfg.senses, mixed};
    const float* senses = a.senses;
    if (iv && iv->hasScale) {
      scaleSenses(a.gBig, a.senses, iv->senseScale.p, N, cfg.senses, d, stream);
      senses = a.gBig;
    }
    // the bf16 mixing products read the senses' bf16 twin, unless an intervention scaled them
    const half16* senses16 = sensesRounded && senses == a.senses ? a.senses16 : nullptr;
    fusedContext = backpackForward(blas, a.out, a.alse, a.qk, senses, sh, ctxWork(),
                                   iv && iv->hasAlphaEdit ? &iv->edit : nullptr, r.alphaOut, senses16);
    feats = a.out;
    if (mixed) toHalf16(a.outh, a.out, (long)N * d, stream);
    feats16 = a.outh;
  }
  if (r.hiddenOut) {
    BP_CUDA(cudaMemcpyAsync(r.hiddenOut, feats, sizeof(float) * (long)N * d, cudaMemcpyDeviceToHost, stream));
    sync();
  }
  checkCancel(r.cancel);
  if (!r.targets && !r.logitsOut) return 0.0;
  HeadArgs h{};
  h.N = N;
  h.d = d;
  h.V = V;
  h.x = feats;
  h.wte = P(wte);
  h.targets = r.targets ? dTargets.p : nullptr;
  h.lossPerToken = dLoss.p;
  h.logitsHost = r.logitsOut;
  h.scratch = a.headScratch;
  h.chunk = headChunk;
  if (mixed) {
    h.x16 = feats16;
    h.wte16 = W16(wte);
    h.scratch16 = a.headScratch16;
    h.rows16 = headRows16;
    h.logits16 = logits16;
  }
  if (train) {
    h.dx = a.gX;
    h.dwte = G(wte);
    const long denom = countForScale > 0 ? countForScale : count;
    h.dscale = denom > 0 ? r.gradScale / (float)denom : 0.0f;
  }
  headForwardBackward(blas, h);
  if (!r.targets) return 0.0;
  BP_CUDA(cudaMemcpyAsync(hLoss.data(), dLoss.p, sizeof(float) * N, cudaMemcpyDeviceToHost, stream));
  sync();
  double total = 0.0;
  for (int i = 0; i < N; i++) {
    if (r.lossPerToken) r.lossPerToken[i] = r.targets[i] >= 0 ? hLoss[i] : 0.0f;
    if (r.targets[i] >= 0) total += hLoss[i];
  }
  return total;
}

void DeviceModel::backward(const ForwardRequest& r) {
  BP_CUDA(cudaSetDevice(device));
  const int B = r.B, T = r.T, d = cfg.d, N = B * T;
  setDropOffsets(r);
  const float p = r.dropout;
  auto rowSite = [&](uint32_t stream) { return dropSite(true, p, r.rngSeed, stream, dropOffset); };
  auto attnSite = [&](uint32_t stream) { return dropSite(true, p, r.rngSeed, stream, attnDropOffset); };
  const long Nd = (long)N * d;
  float* dlnf = a.gX;
  if (cfg.arch == Arch::Backpack) {
    CtxShape sh{B, T, d, cfg.senses, mixed};
    backpackBackward(blas, a.gBig2, a.gBig, a.gX, a.qk, a.senses, a.alse, sh, ctxWork(),
                     sensesRounded ? a.senses16 : nullptr, a.g16);
    linearBack(a.gRes, aw, ab, {a.gBig2}, a.lnf, a.lnfh, N, d, 2 * d);
    checkCancel(r.cancel);
    senseBackward(dTokens.p, N, r.rngSeed, p);
    dlnf = a.gRes;
  }
  float* dres = a.gA;
  float* tmp = dlnf == a.gRes ? a.gX : a.gRes;
  BP_CUDA(cudaMemsetAsync(dres, 0, sizeof(float) * Nd, stream));
  layernormBackward(dres, G(lnfw), G(lnfb), dlnf, a.layer[cfg.nLayer - 1].res3, P(lnfw), a.lnfm, a.lnfr,
                    N, d, stream, lnBack);
  // the buckets of gradBuckets(), in its order
  const std::vector<std::pair<long, long>> buckets =
      onGradsReady ? gradBuckets() : std::vector<std::pair<long, long>>{};
  auto ready = [&](int bucket) {
    if (onGradsReady) onGradsReady(buckets[bucket].first, buckets[bucket].second);
  };
  ready(0);  // the tail: ln_f (and the sense network, the weight net), done above
  for (int l = cfg.nLayer - 1; l >= 0; l--) {
    checkCancel(r.cancel);
    const LayerOff& W = layers[l];
    LayerActs& A = a.layer[l];
    const float* xin = l == 0 ? a.encoded : a.layer[l - 1].res3;
    const uint32_t s0 = kLayerBase + 4 * l;
    // the residual gradient reaches each branch's output projection through that branch's dropout
    mlpBackward(a.gB, a.gBig, {W.fcw, W.fcb, W.fcprojw, W.fcprojb}, {dres, tmp, rowSite(s0 + 2)},
                {A.ln2, A.ln2h, A.fch, A.fchh, A.fchg, A.fchgh}, N, d, 4 * d, d);
    layernormBackward(dres, G(W.ln2w), G(W.ln2b), a.gB, A.res2, P(W.ln2w), A.ln2m, A.ln2r, N, d, stream, lnBack);
    linearBack(a.gB, W.projw, W.projb, {dres, tmp, rowSite(s0 + 1)}, A.atty, A.attyh, N, d, d);
    AttnShape as{B, T, d, cfg.nHead, attnScale(cfg, l)};
    attentionBackward(blas, a.gBig, a.gB, A.atty, A.qkv, A.lse, as, attnSite(s0), attnWork(A), A.qkvh, a.g16,
                      qkvGrad16 ? a.gq16 : nullptr);
    if (qkvGrad16)
      linearBackFrom16(tmp, W.qkvw, W.qkvb, a.gq16, A.ln1h, N, d, 3 * d);
    else
      linearBack(tmp, W.qkvw, W.qkvb, {a.gBig}, A.ln1, A.ln1h, N, d, 3 * d);
    layernormBackward(dres, G(W.ln1w), G(W.ln1b), tmp, xin, P(W.ln1w), A.ln1m, A.ln1r, N, d, stream, lnBack);
    ready(cfg.nLayer - l);
  }
  dropoutForward(dres, Nd, rowSite(kEmbed), stream);
  embeddingBackward(G(wte), G(wpe), dres, dTokens.p, dPositions.p, N, d, stream);
  ready(cfg.nLayer + 1);  // the embeddings (the head added its part of wte's gradient in the forward pass)
}

std::vector<std::pair<long, long>> DeviceModel::gradBuckets() const {
  // The tensor table lays out wte, wpe, the blocks in order, ln_f, then the Backpack's sense network and weight net.
  const long first = layers.front().ln1w, blockEnd = layers.back().fcprojb + cfg.d;
  std::vector<std::pair<long, long>> b{{lnfw, numParams - lnfw}};
  for (int l = cfg.nLayer - 1; l >= 0; l--) {
    const long end = l + 1 < cfg.nLayer ? layers[l + 1].ln1w : blockEnd;
    b.push_back({layers[l].ln1w, end - layers[l].ln1w});
  }
  b.push_back({0, first});
  check(blockEnd == lnfw && wte == 0, "gradient buckets: unexpected tensor layout");
  return b;
}

void DeviceModel::zeroGrad() {
  BP_CUDA(cudaSetDevice(device));
  BP_CUDA(cudaMemsetAsync(grads.p, 0, sizeof(float) * numParams, stream));
}

double DeviceModel::gradSumSquares() {
  BP_CUDA(cudaSetDevice(device));
  BP_CUDA(cudaMemsetAsync(normAcc.p, 0, sizeof(double), stream));
  BP_CUDA_NS::sumSquares(normAcc.p, grads.p, numParams, stream);
  double s = 0.0;
  BP_CUDA(cudaMemcpyAsync(&s, normAcc.p, sizeof(double), cudaMemcpyDeviceToHost, stream));
  sync();
  return s;
}

void DeviceModel::adamwStep(const std::vector<TensorInfo>& tensors, float lr, float wd, float b1, float b2, float eps,
                            long step, float gradScaleBeforeStep) {
  BP_CUDA(cudaSetDevice(device));
  if (m.n < (size_t)numParams) {
    m.resize(numParams);
    v.resize(numParams);
    BP_CUDA(cudaMemsetAsync(m.p, 0, sizeof(float) * numParams, stream));
    BP_CUDA(cudaMemsetAsync(v.p, 0, sizeof(float) * numParams, stream));
  }
  const float c1 = 1.0f - (float)std::pow((double)b1, (double)step);
  const float c2 = 1.0f - (float)std::pow((double)b2, (double)step);
  if (adamBlockCount == 0) {
    const size_t n = tensors.size();
    std::vector<long> offsets(n), sizes(n);
    std::unique_ptr<bool[]> decay(new bool[n]);
    for (size_t i = 0; i < n; i++) {
      offsets[i] = tensors[i].offset;
      sizes[i] = tensors[i].size;
      decay[i] = tensors[i].decay;
    }
    std::vector<AdamBlock> plan;
    adamwPlan(plan, offsets.data(), sizes.data(), decay.get(), (int)n);
    adamBlocks.resize(plan.size());
    // on the model's stream (non-blocking: a plain cudaMemcpy would not order before the kernel below)
    BP_CUDA(cudaMemcpyAsync(adamBlocks.p, plan.data(), sizeof(AdamBlock) * plan.size(), cudaMemcpyHostToDevice,
                            stream));
    sync();  // plan is a local vector
    adamBlockCount = (int)plan.size();
  }
  adamwAll(params.p, grads.p, m.p, v.p, adamBlocks.p, adamBlockCount, lr, b1, b2, eps, wd, c1, c2, stream,
           mixed ? params16.p : nullptr, gradScaleBeforeStep);
}

void DeviceModel::refreshShadow() {
  if (!mixed) return;
  BP_CUDA(cudaSetDevice(device));
  toHalf16(params16.p, params.p, numParams, stream);
}

void DeviceModel::mlpHidden(float* pre, half16* pre16, float* act, half16* act16, const float* inp, const half16* inp16,
                            long w, long b, int N, int IC, int OC, bool train) {
  if (fusedLinear) {
    linearForwardLt(blas, act16, pre16, inp16, W16(w), P(b), W16(b), N, IC, OC,
                    train ? Epilogue::BiasGeluAux : Epilogue::BiasGelu);
    return;
  }
  linear(pre, inp, inp16, w, kBiasLater, N, IC, OC);
  biasGeluForward(fp32Input(act), pre, P(b), OC, (long)N * OC, stream, act16);
}

void DeviceModel::linearBackFrom16(float* dinp, long w, long b, const half16* dout16, const half16* inp16, int N,
                                   int IC, int OC) {
  biasGradFrom16(G(b), dout16, N, OC, stream);
  linearBackward16(blas, dinp, G(w), dout16, inp16, W16(w), N, IC, OC, false);
}

void DeviceModel::mlpBackward(float* dx, float* dhidden, const MlpOff& W, const GradIn& g, const MlpActs& A, int N,
                              int IC, int H, int OC) {
  if (geluGrad16) {  // proj's backward product applies GELU's derivative and writes fc's bf16 operand
    prepareGrad16(a.g16, G(W.projb), g.src, N, OC, g.drop, nullptr, nullptr, stream);
    linearBackward16(blas, nullptr, G(W.projw), a.g16, A.act16, W16(W.projw), N, H, OC, false);
    linearBackwardDataGeluLt(blas, a.gBig16, a.g16, W16(W.projw), A.pre16, N, H, OC);
    linearBackFrom16(dx, W.fcw, W.fcb, a.gBig16, A.x16, N, IC, H);
    return;
  }
  linearBack(dhidden, W.projw, W.projb, g, A.act, A.act16, N, H, OC);
  linearBack(dx, W.fcw, W.fcb, geluIn(dhidden, A.pre, A.pre16), A.x, A.x16, N, IC, H);
}

void DeviceModel::linear(float* out, const float* inp, const half16* inp16, long w, long b, int N, int IC, int OC) {
  const float* bias = b == kBiasLater ? nullptr : P(b);
  if (mixed)
    linearForward16(blas, out, inp16, W16(w), bias, N, IC, OC);
  else
    linearForward(blas, out, inp, P(w), bias, N, IC, OC);
}

// dinp (if any) is overwritten; the weight and bias gradients accumulate.
void DeviceModel::linearBack(float* dinp, long w, long b, const GradIn& g, const float* inp, const half16* inp16, int N,
                             int IC, int OC) {
  if (mixed) {
    prepareGrad16(a.g16, G(b), g.src, N, OC, g.drop, g.geluPre, g.geluPre16, stream);
    linearBackward16(blas, dinp, G(w), a.g16, inp16, W16(w), N, IC, OC, false);
    return;
  }
  const float* dout = g.src;
  if (g.geluPre) {
    geluBackward(g.work, g.geluPre, g.src, (long)N * OC, stream);
    dout = g.work;
  } else if (g.drop.p > 0.0f) {
    dropoutCopy(g.work, g.src, (long)N * OC, g.drop, stream);
    dout = g.work;
  }
  linearBackward(blas, dinp, G(w), G(b), dout, inp, P(w), N, IC, OC, false, ones.p);
}

}  // namespace bp::BP_CUDA_NS
