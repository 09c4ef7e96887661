// GPU check harness: drives the CUDA engine (native/src/cuda/engine.h) and the CPU model (native/src/model.h)
// directly, without Node, so the one script run on a lent GPU needs only nvcc and a host compiler.
//   harness parity                          CPU vs GPU on tiny models: logits, loss, alpha, every gradient,
//                                           10 AdamW steps, greedy KV-cache generation (fp32 and bf16)
//   harness attention                       fused attention kernels vs the batched-GEMM path (attention_check.cu)
//   harness layernorm                       vectorised LayerNorm backward vs the per-warp kernel (layernorm_check.cu)
//   harness dp                              data parallel (NCCL) over all visible GPUs vs one GPU
//   harness train ARCH SIZE B T STEPS PREC  training throughput (tokens/s, MFU); --accum N: N micro-batches of B x T
//                                           per optimizer step (gradient accumulation)
//   harness forward ARCH SIZE B T RUNS PREC forward-pass time (Table 7 protocol: warm-up, then timed runs)
//   harness generate ARCH SIZE ROWS PROMPT NEW PREC   KV-cache generation tokens/s
// ARCH: backpack | gpt2; SIZE: micro | mini | small | tiny; PREC: fp32 | tf32 | bf16, or fp16 in the fp16 build
// (BP_CUDA_FP16=1: build-harness.sh --fp16 writes harness-fp16; fp16 runs train with a loss scale, as fp16 AMP
// does). Results: one JSON per line.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../native/src/cuda/engine.h"
#include "../../native/src/model.h"

using namespace bp;

namespace bp::BP_CUDA_NS {
int attentionCheck();  // attention_check.cu: failures
int layernormCheck();  // layernorm_check.cu: failures
}

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Config makeConfig(const std::string& arch, const std::string& size) {
  Config c;
  c.arch = arch == "backpack" ? Arch::Backpack : Arch::GPT2;
  if (arch != "backpack" && arch != "gpt2") throw Error("arch must be backpack or gpt2, got " + arch);
  c.vocab = 50264;
  c.realVocab = 50257;
  c.maxPos = 512;
  c.senses = c.arch == Arch::Backpack ? 16 : 0;
  if (size == "micro") c.d = 384, c.nLayer = 6, c.nHead = 6;
  else if (size == "mini") c.d = 640, c.nLayer = 8, c.nHead = 8;
  else if (size == "small") c.d = 768, c.nLayer = 12, c.nHead = 12;
  else if (size == "tiny") {
    c.d = 64, c.nLayer = 2, c.nHead = 4, c.vocab = 96, c.realVocab = 90, c.maxPos = 48;
    if (c.arch == Arch::Backpack) c.senses = 4;
  } else throw Error("size must be micro, mini, small or tiny, got " + size);
  c.senseHidden = c.arch == Arch::Backpack ? 4 * c.d : 0;
  return c;
}

// Matmul FLOPs of one forward pass per token (attention counted over the full T x T, as computed).
double forwardFlopsPerToken(const Config& c, int T) {
  const double d = c.d, L = c.nLayer, V = c.vocab;
  double f = 2.0 * L * 12.0 * d * d + 2.0 * L * 2.0 * T * d + 2.0 * d * V;
  if (c.arch == Arch::Backpack) {
    const double h = c.senseHidden, k = c.senses;
    f += 2.0 * (d * h + h * d + d * h + h * k * d);  // sense network
    f += 2.0 * d * 2.0 * d;                          // weight-net projection
    f += 2.0 * T * d + 2.0 * k * T * d;              // alpha scores + sense mixing
  }
  return f;
}

std::vector<int32_t> randomTokens(long n, int realVocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> u(0, realVocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = u(g);
  return t;
}

// ---- parity
struct Report {
  int failures = 0;
  std::string tag;  // appended to every check name (e.g. the engine knob a run sets)
  void line(const std::string& arch, const std::string& prec, const std::string& what, double err, double tol,
            const std::string& extra = "") {
    const bool ok = std::isfinite(err) && err <= tol;
    if (!ok) failures++;
    std::printf("{\"check\":\"parity\",\"arch\":\"%s\",\"precision\":\"%s\",\"what\":\"%s\",\"rel_err\":%.3e,\"tol\":%.1e,"
                "\"ok\":%s%s}\n",
                arch.c_str(), prec.c_str(), (what + tag).c_str(), err, tol, ok ? "true" : "false", extra.c_str());
    std::fflush(stdout);
  }
};

// max |a-b| / max |b| (a relative error that ignores entries near zero)
double relErr(const float* a, const float* b, long n) {
  double num = 0.0, den = 0.0;
  for (long i = 0; i < n; i++) {
    num = std::max(num, (double)std::fabs(a[i] - b[i]));
    den = std::max(den, (double)std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}

// A training micro-batch of B x T tokens with their targets (dropout off, gradient scale 1 unless set after).
ForwardRequest trainRequest(const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, int B, int T) {
  ForwardRequest t;
  t.tokens = tokens.data();
  t.targets = targets.data();
  t.B = B;
  t.T = T;
  t.train = true;
  return t;
}

void parityFor(const std::string& arch, const std::string& prec, Report& rep, double tolFwd, double tolGrad,
               double tolAdam) {
  const Config c = makeConfig(arch, "tiny");
  const int B = 3, T = 16, N = B * T;
  // fp16 trains with a loss scale (a power of two, so dividing it out of the gradients is exact)
  const float lossScale = prec == "fp16" ? 1024.0f : 1.0f;
  Model cpu(c);
  cpu.initParams(7);
  BP_CUDA_NS::Engine gpu(c, {0}, prec);
  gpu.host.params = cpu.params;
  gpu.pushParams();
  auto tokens = randomTokens(N, c.realVocab, 1);
  auto targets = randomTokens(N, c.realVocab, 2);
  targets[5] = -1;  // an ignored target

  // forward: logits, loss, hidden, alpha
  std::vector<float> lc((long)N * c.vocab), lg(lc.size()), hc((long)N * c.d), hg(hc.size());
  std::vector<float> ac, ag;
  ForwardRequest r;
  r.tokens = tokens.data();
  r.targets = targets.data();
  r.B = B;
  r.T = T;
  long cnt = 0;
  r.logitsOut = lc.data();
  r.hiddenOut = hc.data();
  if (c.arch == Arch::Backpack) {
    ac.resize((long)B * c.senses * T * T);
    ag.resize(ac.size());
    r.alphaOut = ac.data();
  }
  const double lossC = cpu.forward(r, &cnt) / cnt;
  r.logitsOut = lg.data();
  r.hiddenOut = hg.data();
  if (c.arch == Arch::Backpack) r.alphaOut = ag.data();
  const double lossG = gpu.forward(r, &cnt) / cnt;
  rep.line(arch, prec, "logits", relErr(lg.data(), lc.data(), lg.size()), tolFwd);
  rep.line(arch, prec, "hidden", relErr(hg.data(), hc.data(), hg.size()), tolFwd);
  rep.line(arch, prec, "loss", std::fabs(lossG - lossC) / std::fabs(lossC), tolFwd);
  if (c.arch == Arch::Backpack) rep.line(arch, prec, "alpha", relErr(ag.data(), ac.data(), ag.size()), tolFwd);

  // gradients (with and without dropout: the GPU draws the CPU's masks)
  for (float dropout : {0.0f, 0.1f}) {
    ForwardRequest t = trainRequest(tokens, targets, B, T);
    t.dropout = dropout;
    t.rngSeed = 99;
    cpu.zeroGrad();
    cpu.forward(t, &cnt);
    cpu.backward(t);
    gpu.zeroGrad();
    t.gradScale = lossScale;
    gpu.trainStep(t, &cnt);
    gpu.pullGrads();
    for (float& g : gpu.host.grads) g /= lossScale;
    double worst = 0.0;
    std::string worstKey;
    for (const TensorInfo& ti : cpu.tensors) {
      const double e = relErr(gpu.host.grads.data() + ti.offset, cpu.grads.data() + ti.offset, ti.size);
      if (!(e <= worst)) worst = e, worstKey = ti.key;
    }
    char what[64];
    std::snprintf(what, sizeof what, "grads(all %zu tensors, dropout %.1f)", cpu.tensors.size(), dropout);
    rep.line(arch, prec, what, worst, tolGrad, ",\"worst_tensor\":\"" + worstKey + "\"");
  }

  // 10 AdamW steps: the loss trajectory, the parameters, and the parameter updates. Adam divides by sqrt(v), so
  // an element whose gradient is ~0 (e.g. an attention key bias: softmax ignores a per-row shift) moves by up to
  // lr either way when its float-reordered gradient differs; the checks below are built to stay meaningful there.
  Model init(c);
  init.initParams(7);
  double lossErr = 0.0;
  const float lr = 1e-3f;
  const int adamSteps = 10;
  for (int s = 0; s < adamSteps; s++) {
    auto tok = randomTokens(N, c.realVocab, 100 + s), tg = randomTokens(N, c.realVocab, 200 + s);
    ForwardRequest t = trainRequest(tok, tg, B, T);
    cpu.zeroGrad();
    const double lc = cpu.forward(t, &cnt);
    cpu.backward(t);
    cpu.optimizerStep({lr, 0.1f, 0.9f, 0.95f, 1e-8f, 1.0f});
    gpu.zeroGrad();
    t.gradScale = lossScale;
    const double lg = gpu.trainStep(t, &cnt);
    gpu.optimizerStep({lr, 0.1f, 0.9f, 0.95f, 1e-8f, 1.0f, 1.0f / lossScale});
    lossErr = std::max(lossErr, std::fabs(lg - lc) / std::fabs(lc));
  }
  gpu.pullParams();
  // Key biases are left out of both parameter checks below: softmax over the keys is invariant to them (q . b_k is
  // the same for every key of a row), so their gradient is zero in exact arithmetic and no output depends on
  // their value, yet Adam normalises each backend's rounding noise of that zero into its own random walk (bf16
  // rounding of dS puts the noise far above eps). The gradient checks above still cover these tensors.
  // Layouts: attn.c_attn is [q | k | v], the Backpack weight net's c_attn is [q | k]; keys are [d, 2d).
  const std::string keyBias = "c_attn.bias";
  auto inert = [&](const TensorInfo& ti, long i) {
    const size_t n = keyBias.size();
    const bool isKeyBias = ti.key.size() >= n && ti.key.compare(ti.key.size() - n, n, keyBias) == 0;
    return isKeyBias && i >= c.d && i < 2L * c.d;
  };
  // Parameters: max |p_gpu - p_cpu| in units of lr * steps, the distance AdamW can move any element in these
  // steps (|m_hat / (sqrt(v_hat) + eps)| <= ~1 per step). Measured against max |p| instead, the check depended
  // on each tensor's scale: zero-initialised biases are ~lr*steps after 10 steps, so a 7e-6 reordering
  // difference read as 7e-4 "relative", while the same difference on a unit LayerNorm weight reads as 7e-6.
  // In this unit an optimizer bug shows at its true size: a dropped weight decay on a |p| ~ 0.1 weight is
  // wd*|p| = 1e-2; a wrong sign or a missing bias correction is O(1).
  // fp32: 5e-3 (before this check existed the worst element seen was ~7e-4, a key bias). bf16: 1.0, i.e. no
  // element may drift further than AdamW can move it: bf16 gradients carry ~1e-2 relative error and Adam's
  // normalisation turns that into O(lr) steps on elements with small gradients, so only gross errors (sign,
  // scale, divergence) can be told apart here; the optimizer arithmetic is the same kernel in both modes and
  // is held to 5e-3 by the fp32 line.
  double paramErr = 0.0;
  std::string paramKey;
  for (const TensorInfo& ti : cpu.tensors) {
    double e = 0.0;
    for (long i = 0; i < ti.size; i++)
      if (!inert(ti, i))
        e = std::max(e, (double)std::fabs(gpu.host.params[ti.offset + i] - cpu.params[ti.offset + i]));
    e /= (double)lr * adamSteps;
    if (!(e <= paramErr)) paramErr = e, paramKey = ti.key;
  }
  // Updates: per tensor, ||u_gpu - u_cpu||_2 / ||u_cpu||_2 with u = p_after - p_init (worst tensor named): how
  // well the whole optimizer trajectory agrees, not dominated by the few noise-driven elements above.
  double updateErr = 0.0;
  std::string updateKey;
  for (const TensorInfo& ti : cpu.tensors) {
    const float* pc = cpu.params.data() + ti.offset;
    const float* pg = gpu.host.params.data() + ti.offset;
    const float* p0 = init.params.data() + ti.offset;
    double num = 0.0, den = 0.0;
    for (long i = 0; i < ti.size; i++) {
      if (inert(ti, i)) continue;
      const double uc = (double)pc[i] - p0[i], ug = (double)pg[i] - p0[i];
      num += (ug - uc) * (ug - uc);
      den += uc * uc;
    }
    const double ue = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    if (!(ue <= updateErr)) updateErr = ue, updateKey = ti.key;
  }
  const bool strict = prec == "fp32";
  rep.line(arch, prec, "10 AdamW steps: losses", lossErr, strict ? 1e-5 : 1e-2);
  rep.line(arch, prec, "10 AdamW steps: parameters / (lr*steps), key biases apart", paramErr, strict ? 5e-3 : 1.0,
           ",\"worst_tensor\":\"" + paramKey + "\"");
  rep.line(arch, prec, "10 AdamW steps: updates (rel. L2, worst tensor, key biases apart)", updateErr, tolAdam,
           ",\"worst_tensor\":\"" + updateKey + "\"");

  // The replica's working weights after the optimizer steps (in bf16 mode the bf16 shadow that the AdamW kernel
  // refreshes) must equal a fresh upload of its own fp32 masters: same kernels, so the logits agree to the bit
  // unless the shadow is stale.
  {
    BP_CUDA_NS::Engine fresh(c, {0}, prec);
    fresh.host.params = gpu.host.params;
    fresh.pushParams();
    ForwardRequest f;
    f.tokens = tokens.data();
    f.B = B;
    f.T = T;
    std::vector<float> la((long)N * c.vocab), lb(la.size());
    f.logitsOut = la.data();
    gpu.forward(f, &cnt);
    f.logitsOut = lb.data();
    fresh.forward(f, &cnt);
    rep.line(arch, prec, "weights after AdamW = fresh upload of the masters", relErr(la.data(), lb.data(), la.size()),
             1e-6);
  }

  // greedy generation with the KV cache, same prompt; compare tokens and per-step logits
  const int rows = 2, P = 5, steps = 12;
  auto prompt = randomTokens((long)rows * P, c.realVocab, 3);
  cpu.cacheReset(rows, P + steps);
  gpu.cacheReset(rows, P + steps);
  std::vector<float> lcpu((long)rows * c.vocab), lgpu(lcpu.size());
  std::vector<int32_t> seqC, seqG;
  double worstLogit = 0.0;
  Interventions iv;
  std::vector<float> scale((long)rows * (P + steps) * std::max(1, c.senses), 1.0f);
  if (c.arch == Arch::Backpack) {  // exercise the decode interventions too
    iv.alphaSense = 1;
    iv.alphaFactor = 0.5f;
    iv.alphaTokens = {prompt[0], prompt[1]};
    for (size_t i = 0; i < scale.size(); i += 3) scale[i] = 0.25f;
    iv.senseScale = scale.data();
    iv.scaleStride = P + steps;
  }
  for (int b = 0; b < rows; b++) {
    cpu.cachePrefill(b, 1, prompt.data() + b * P, P, lcpu.data() + (long)b * c.vocab, nullptr);
    gpu.cachePrefill(b, 1, prompt.data() + b * P, P, lgpu.data() + (long)b * c.vocab, nullptr);
  }
  auto argmax = [&](const float* l) {
    int best = 0;
    for (int j = 1; j < c.realVocab; j++)
      if (l[j] > l[best]) best = j;
    return best;
  };
  std::vector<int32_t> nextC(rows), nextG(rows);
  std::vector<int> rowIds{0, 1};
  for (int s = 0; s < steps; s++) {
    worstLogit = std::max(worstLogit, relErr(lgpu.data(), lcpu.data(), lgpu.size()));
    for (int b = 0; b < rows; b++) {
      nextC[b] = argmax(lcpu.data() + (long)b * c.vocab);
      nextG[b] = argmax(lgpu.data() + (long)b * c.vocab);
      seqC.push_back(nextC[b]);
      seqG.push_back(nextG[b]);
    }
    const Interventions* use = c.arch == Arch::Backpack ? &iv : nullptr;
    cpu.cacheDecode(rowIds.data(), rows, nextC.data(), lcpu.data(), use);
    gpu.cacheDecode(rowIds.data(), rows, nextC.data(), lgpu.data(), use);  // same tokens: compare logits
  }
  int mismatches = 0;
  for (size_t i = 0; i < seqC.size(); i++) mismatches += seqC[i] != seqG[i];
  rep.line(arch, prec, "generation logits (KV cache, interventions)", worstLogit, tolFwd,
           ",\"greedy_token_mismatches\":" + std::to_string(mismatches) + ",\"tokens\":" + std::to_string(seqC.size()));
}

#if defined(BP_CUDA_FP16) && BP_CUDA_FP16
// fp16: a loss scale beyond fp16's range overflows the gradient operands; the engine must report a non-finite norm
// and leave the parameters untouched (the trainer then backs the scale off and goes on).
void overflowCheck(const std::string& arch, const std::string& prec, Report& rep) {
  const Config c = makeConfig(arch, "tiny");
  const int B = 3, T = 16, N = B * T;
  BP_CUDA_NS::Engine gpu(c, {0}, prec);
  gpu.host.initParams(7);
  gpu.pushParams();
  auto tokens = randomTokens(N, c.realVocab, 1), targets = randomTokens(N, c.realVocab, 2);
  ForwardRequest t = trainRequest(tokens, targets, B, T);
  t.gradScale = 1073741824.0f;  // 2^30: the target's dlogit, ~2^30 / N, is far above fp16's 65504
  long cnt = 0;
  gpu.zeroGrad();
  gpu.trainStep(t, &cnt);
  const std::vector<float> before = gpu.host.params;
  const double norm = gpu.optimizerStep({1e-3f, 0.1f, 0.9f, 0.95f, 1e-8f, 1.0f, 1.0f / t.gradScale});
  gpu.pullParams();
  const bool skipped = !std::isfinite(norm) && gpu.host.params == before;
  rep.line(arch, prec, "loss-scale overflow: non-finite norm, step skipped, parameters untouched", skipped ? 0.0 : 1.0,
           0.5, ",\"norm\":\"" + std::to_string(norm) + "\"");
}
#endif

int cmdParity() {
  Report rep;
  // with the attention chunk knob set, the bf16 attention runs several chunks even on the tiny batch
  if (const char* e = std::getenv("BACKPACK_CUDA_FLASH")) rep.tag += std::string(" [flash=") + e + "]";
  if (const char* e = std::getenv("BACKPACK_CUDA_ATTN_SEQS")) rep.tag += std::string(" [attn-seqs=") + e + "]";
  if (const char* e = std::getenv("BACKPACK_CUDA_LT")) rep.tag += std::string(" [lt=") + e + "]";
  if (const char* e = std::getenv("BACKPACK_CUDA_GRAD16")) rep.tag += std::string(" [grad16=") + e + "]";
  if (const char* e = std::getenv("BACKPACK_CUDA_LOGITS16")) rep.tag += std::string(" [logits16=") + e + "]";
  if (const char* e = std::getenv("BACKPACK_CUDA_FUSED_CONTEXT")) rep.tag += std::string(" [fused-context=") + e + "]";
  // runs one check; an exception becomes a failed line named `what`
  auto guarded = [&](const char* arch, const char* prec, const char* what, auto check) {
    try {
      check();
    } catch (const std::exception& e) {
      rep.failures++;
      std::printf("{\"check\":\"parity\",\"arch\":\"%s\",\"precision\":\"%s\",\"what\":\"%s: %s\",\"rel_err\":1e30,"
                  "\"tol\":0,\"ok\":false}\n", arch, prec, what, e.what());
      std::fflush(stdout);
    }
  };
  auto parity = [&](const char* arch, const char* prec, double f, double g, double a) {
    guarded(arch, prec, "error", [&] { parityFor(arch, prec, rep, f, g, a); });
  };
  for (const char* arch : {"gpt2", "backpack"}) {
#if defined(BP_CUDA_FP16) && BP_CUDA_FP16
    // fp16 (11 significant bits) under bf16's tolerances, with a loss scale of 1024 on the GPU side
    parity(arch, "fp16", 3e-2, 1e-1, 5e-1);
    guarded(arch, "fp16", "overflow error", [&] { overflowCheck(arch, "fp16", rep); });
#else
    // fp32: float reordering only (forward 1e-5 of max|x|; gradients 1e-4 of each tensor's max; updates 5e-3)
    parity(arch, "fp32", 1e-5, 1e-4, 5e-3);
    // bf16: GEMM operands rounded to bf16 (8 significant bits, 2^-9 ~ 2e-3 per rounding) with fp32 accumulation,
    // stated llm.c-style per quantity: logits/hidden 3e-2 of max|x|, each gradient tensor 1e-1 of its max,
    // losses 1e-2, updates 0.5 relative L2 (parameters / shadow sync: see parityFor)
    parity(arch, "bf16", 3e-2, 1e-1, 5e-1);
#endif
  }
  std::printf("{\"check\":\"parity-summary\",\"failures\":%d}\n", rep.failures);
  return rep.failures == 0 ? 0 : 1;
}

// ---- data parallel: the same global batch on every visible GPU (NCCL all-reduce) vs one GPU
int cmdDataParallel() {
  const int gpus = std::min(BP_CUDA_NS::deviceCount(), 4);
  if (gpus < 2) {
    std::printf("{\"check\":\"data-parallel\",\"skipped\":\"%d GPU visible, needs 2\"}\n", gpus);
    return 0;
  }
  Report rep;
  for (const char* arch : {"gpt2", "backpack"}) {
    const Config c = makeConfig(arch, "tiny");
    const int B = 2 * gpus + 1, T = 16, N = B * T;  // uneven split on purpose
    std::vector<int> all;
    for (int g = 0; g < gpus; g++) all.push_back(g);
    BP_CUDA_NS::Engine one(c, {0}, "fp32"), many(c, all, "fp32");
    one.host.initParams(7);
    one.pushParams();
    many.host.params = one.host.params;
    many.pushParams();
    double lossErr = 0.0, gradErr = 0.0;
    long cnt = 0;
    // Steps 0-2: one micro-batch each. Steps 3-5: 3 micro-batches each, where the last one all-reduces during its
    // backward pass (step 3), every one does (step 4: the engine must not count reduced sums twice), or none does
    // (step 5: the optimizer step reduces). Dropout 0.1 throughout.
    for (int s = 0; s < 6; s++) {
      const int accum = s < 3 ? 1 : 3;
      one.zeroGrad();
      many.zeroGrad();
      for (int a = 0; a < accum; a++) {
        auto tok = randomTokens(N, c.realVocab, 300 + 10 * s + a), tg = randomTokens(N, c.realVocab, 400 + 10 * s + a);
        ForwardRequest t = trainRequest(tok, tg, B, T);
        t.gradScale = 1.0f / accum;
        t.dropout = 0.1f;  // each replica must draw the masks of its rows as one GPU does
        t.rngSeed = 500 + 10 * s + a;
        t.lastMicroBatch = s == 4 || (s != 5 && a == accum - 1);
        const double l1 = one.trainStep(t, &cnt), l2 = many.trainStep(t, &cnt);
        lossErr = std::max(lossErr, std::fabs(l2 - l1) / std::fabs(l1));
      }
      one.pullGrads();
      many.pullGrads();
      gradErr = std::max(gradErr, relErr(many.host.grads.data(), one.host.grads.data(), (long)one.host.grads.size()));
      one.optimizerStep({1e-3f, 0.1f, 0.9f, 0.95f, 1e-8f, 1.0f});
      many.optimizerStep({1e-3f, 0.1f, 0.9f, 0.95f, 1e-8f, 1.0f});
    }
    one.pullParams();
    many.pullParams();
    const std::string tag = std::to_string(gpus) + " GPUs vs 1";
    rep.line(arch, "fp32", "data parallel " + tag + ": losses", lossErr, 1e-6);
    rep.line(arch, "fp32", "data parallel " + tag + ": gradients", gradErr, 1e-5);
    rep.line(arch, "fp32", "data parallel " + tag + ": parameters after 6 steps (3 with 3 accumulated micro-batches)",
             relErr(many.host.params.data(), one.host.params.data(), (long)one.host.params.size()), 1e-5);
  }
  return rep.failures == 0 ? 0 : 1;
}

// ---- throughput

// Which GEMMs actually ran, from the FLOPs the engine issued: "bf16-operands" ("fp16-operands") when 16-bit
// operand products carry most of them (the mixed modes), else the fp32-operand arithmetic of the precision mode;
// plus the 16-bit share (named gemm_bf16_flop_share in either build, as the summaries read it).
std::string gemmFields(const BP_CUDA_NS::Engine& gpu, const std::string& prec) {
  const BP_CUDA_NS::Engine::GemmFlops f = gpu.gemmFlops();
  const double total = f.half16 + f.fp32, share = total > 0 ? f.half16 / total : 0.0;
  const char* mixed = prec == "fp16" ? "fp16-operands" : "bf16-operands";
  const char* kind = share > 0.5 ? mixed : prec == "fp32" ? "fp32" : "fp32-operands/tf32";
  char buf[128];
  std::snprintf(buf, sizeof buf, ",\"gemm\":\"%s\",\"gemm_bf16_flop_share\":%.3f", kind, share);
  std::string out = buf;
  out += ",\"paths\":\"" + gpu.kernelPaths() + "\"";  // the optional kernel paths that actually ran
  // the engine's attention chunk knob (see native/src/cuda/model.cu), when a run sets it
  if (const char* e = std::getenv("BACKPACK_CUDA_ATTN_SEQS")) out += ",\"attn_seqs\":" + std::to_string(std::atoi(e));
  // the attention the run asked for: 0 the batched products instead of the fused kernels
  if (const char* e = std::getenv("BACKPACK_CUDA_FLASH")) out += ",\"flash\":" + std::to_string(std::atoi(e));
  // 0: the plain cuBLAS products plus element-wise bias/GELU kernels instead of the cuBLASLt epilogues
  if (const char* e = std::getenv("BACKPACK_CUDA_LT")) out += ",\"lt\":" + std::to_string(std::atoi(e));
  // 1: gradient operands written in bf16 by their producers (see native/src/cuda/device_model.cuh)
  if (const char* e = std::getenv("BACKPACK_CUDA_GRAD16")) out += ",\"grad16\":" + std::to_string(std::atoi(e));
  // 0: training's logits in fp32 instead of bf16 (see native/src/cuda/device_model.cuh)
  if (const char* e = std::getenv("BACKPACK_CUDA_LOGITS16")) out += ",\"logits16\":" + std::to_string(std::atoi(e));
  // 4: the fused attention's forward kernel built for 4 CTAs per SM (see flash_attention.cu)
  if (const char* e = std::getenv("BACKPACK_CUDA_FLASH_FWD_BLOCKS"))
    out += ",\"flash_fwd_blocks\":" + std::to_string(std::atoi(e));
  // 128: the fused attention's forward kernel with 128 query rows per CTA (two 16-row groups per warp)
  if (const char* e = std::getenv("BACKPACK_CUDA_FLASH_FWD_ROWS"))
    out += ",\"flash_fwd_rows\":" + std::to_string(std::atoi(e));
  // 1: the fused Backpack contextualization (backpack_flash.cu) instead of the alpha + GEMM path
  if (const char* e = std::getenv("BACKPACK_CUDA_FUSED_CONTEXT"))
    out += ",\"fused_context\":" + std::to_string(std::atoi(e));
  return out;
}
// One optimizer step = zeroGrad, `accum` micro-batches of B x T (forward + backward each), AdamW with clipping.
int cmdTrain(const std::string& arch, const std::string& size, int B, int T, int steps, const std::string& prec,
             double peakTflops, int accum) {
  const Config c = makeConfig(arch, size);
  BP_CUDA_NS::Engine gpu(c, {0}, prec);
  gpu.host.initParams(1);
  gpu.pushParams();
  const long n = (long)B * T;
  // a distinct batch per micro-batch, as in training (the engine uploads the tokens of every micro-batch anyway)
  auto tokens = randomTokens(n * accum, c.realVocab, 5), targets = randomTokens(n * accum, c.realVocab, 6);
  ForwardRequest r;
  r.B = B;
  r.T = T;
  r.train = true;
  r.dropout = 0.1f;
  // The engine scales each micro-batch's gradient by gradScale / (its counted targets). Every target counts here
  // and every micro-batch has B x T of them, so 1/accum makes the summed gradient the mean over all accum x B x T
  // tokens, as native/trainer.ts does.
  // fp16 also multiplies by a loss scale (GradScaler's initial 65536), divided out in the optimizer step.
  const float lossScale = prec == "fp16" ? 65536.0f : 1.0f;
  r.gradScale = lossScale / accum;
  long cnt = 0;
  double loss = 0.0;
  int skipped = 0;  // optimizer steps skipped for a loss-scale overflow (reported; 0 expected)
  auto step = [&](int i) {
    gpu.zeroGrad();
    double sum = 0.0;
    long count = 0;
    for (int a = 0; a < accum; a++) {
      r.tokens = tokens.data() + a * n;
      r.targets = targets.data() + a * n;
      r.rngSeed = (uint32_t)(i * accum + a);  // each micro-batch its own dropout masks
      r.lastMicroBatch = a == accum - 1;      // data parallel: one all-reduce per step, overlapping this backward
      sum += gpu.trainStep(r, &cnt);
      count += cnt;
    }
    loss = sum / count;
    if (!std::isfinite(gpu.optimizerStep({6e-4f, 0.1f, 0.9f, 0.999f, 1e-8f, 1.0f, 1.0f / lossScale}))) skipped++;
  };
  // warm-up: 3 steps as before; with accumulation one step already runs accum >= 2 micro-batches
  for (int i = 0, warm = accum > 1 ? 1 : 3; i < warm; i++) step(i);
  gpu.resetGemmFlops();
  const double t0 = now();
  for (int i = 0; i < steps; i++) step(100 + i);
  const double dt = (now() - t0) / steps;
  const double tps = (double)n * accum / dt;
  const double mfu = tps * 3.0 * forwardFlopsPerToken(c, T) / (peakTflops * 1e12);
  std::printf("{\"bench\":\"train\",\"impl\":\"ours\",\"arch\":\"%s\",\"size\":\"%s\",\"precision\":\"%s\",\"batch\":%d,"
              "\"seq\":%d,\"accum\":%d,\"params\":%ld,\"step_s\":%.4f,\"tokens_per_s\":%.0f,\"mfu\":%.4f,"
              "\"peak_tflops\":%.0f,\"loss\":%.4f,\"skipped_steps\":%d%s}\n",
              arch.c_str(), size.c_str(), prec.c_str(), B, T, accum, gpu.host.numParams(), dt, tps, mfu, peakTflops,
              loss, skipped, gemmFields(gpu, prec).c_str());
  return 0;
}

int cmdForward(const std::string& arch, const std::string& size, int B, int T, int runs, const std::string& prec) {
  const Config c = makeConfig(arch, size);
  BP_CUDA_NS::Engine gpu(c, {0}, prec);
  gpu.host.initParams(1);
  gpu.pushParams();
  auto tokens = randomTokens((long)B * T, c.realVocab, 5), targets = randomTokens((long)B * T, c.realVocab, 6);
  ForwardRequest r;
  r.tokens = tokens.data();
  r.targets = targets.data();  // logits + loss are computed on the device (nothing [B,T,V] is copied back)
  r.B = B;
  r.T = T;
  long cnt = 0;
  for (int i = 0; i < 3; i++) gpu.forward(r, &cnt);
  gpu.resetGemmFlops();
  std::vector<double> times;
  for (int i = 0; i < runs; i++) {
    const double t0 = now();
    gpu.forward(r, &cnt);  // returns after the loss is on the host: the device is synchronised
    times.push_back(now() - t0);
  }
  double mean = 0.0;
  for (double t : times) mean += t;
  mean /= runs;
  std::printf("{\"bench\":\"forward\",\"impl\":\"ours\",\"arch\":\"%s\",\"size\":\"%s\",\"precision\":\"%s\",\"batch\":%d,"
              "\"seq\":%d,\"runs\":%d,\"mean_s\":%.4f%s}\n",
              arch.c_str(), size.c_str(), prec.c_str(), B, T, runs, mean, gemmFields(gpu, prec).c_str());
  return 0;
}

int cmdGenerate(const std::string& arch, const std::string& size, int rows, int P, int steps, const std::string& prec) {
  const Config c = makeConfig(arch, size);
  BP_CUDA_NS::Engine gpu(c, {0}, prec);
  gpu.host.initParams(1);
  gpu.pushParams();
  auto prompt = randomTokens((long)rows * P, c.realVocab, 9);
  std::vector<float> logits((long)rows * c.vocab);
  std::vector<int> rowIds(rows);
  std::vector<int32_t> next(rows);
  auto argmax = [&](const float* l) {
    int best = 0;
    for (int j = 1; j < c.realVocab; j++)
      if (l[j] > l[best]) best = j;
    return best;
  };
  double prefill = 0.0, decode = 0.0;
  for (int rep = 0; rep < 2; rep++) {  // first pass warms up
    const double t0 = now();
    gpu.cacheReset(rows, P + steps);
    for (int b = 0; b < rows; b++) gpu.cachePrefill(b, 1, prompt.data() + (long)b * P, P, logits.data() + (long)b * c.vocab, nullptr);
    const double t1 = now();
    for (int s = 0; s < steps; s++) {
      for (int b = 0; b < rows; b++) rowIds[b] = b, next[b] = argmax(logits.data() + (long)b * c.vocab);
      gpu.cacheDecode(rowIds.data(), rows, next.data(), logits.data(), nullptr);
    }
    prefill = t1 - t0;
    decode = now() - t1;
  }
  std::printf("{\"bench\":\"generate\",\"impl\":\"ours\",\"arch\":\"%s\",\"size\":\"%s\",\"precision\":\"%s\",\"rows\":%d,"
              "\"prompt\":%d,\"new_tokens\":%d,\"prefill_s\":%.4f,\"decode_s\":%.4f,\"tokens_per_s\":%.1f}\n",
              arch.c_str(), size.c_str(), prec.c_str(), rows, P, steps, prefill, decode,
              (double)rows * steps / (prefill + decode));
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: harness parity\n"
               "       harness attention (fused attention kernels vs the batched path, and their time)\n"
               "       harness layernorm (vectorised LayerNorm backward vs the per-warp kernel, and their time)\n"
               "       harness dp      (data parallel over every visible GPU vs one; skips with fewer than 2)\n"
               "       harness train ARCH SIZE BATCH SEQ STEPS PRECISION [PEAK_TFLOPS] [--accum N]\n"
               "               (STEPS optimizer steps, each over N micro-batches of BATCH x SEQ; N defaults to 1)\n"
               "       harness forward ARCH SIZE BATCH SEQ RUNS PRECISION\n"
               "       harness generate ARCH SIZE ROWS PROMPT NEW PRECISION\n");
  return 2;
}

int toInt(const char* s, const char* what) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (!end || *end || v <= 0) throw Error(std::string(what) + " must be a positive integer, got '" + s + "'");
  return (int)v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) return usage();
    const std::string cmd = argv[1];
    if (cmd == "parity" && argc == 2) {
      if (BP_CUDA_NS::deviceCount() == 0) {
        std::printf("{\"check\":\"parity\",\"skipped\":\"no CUDA device\"}\n");
        return 3;
      }
      return cmdParity();
    }
    if (cmd == "dp" && argc == 2) return cmdDataParallel();
    if (cmd == "attention" && argc == 2) return BP_CUDA_NS::attentionCheck() == 0 ? 0 : 1;
    if (cmd == "layernorm" && argc == 2) return BP_CUDA_NS::layernormCheck() == 0 ? 0 : 1;
    if (cmd == "train") {
      // --accum N may stand anywhere after the command; the positional form is unchanged
      std::vector<const char*> a;
      int accum = 1;
      for (int i = 2; i < argc; i++) {
        if (std::strcmp(argv[i], "--accum") != 0) a.push_back(argv[i]);
        else if (i + 1 < argc) accum = toInt(argv[++i], "--accum");
        else return usage();
      }
      if (a.size() != 6 && a.size() != 7) return usage();
      return cmdTrain(a[0], a[1], toInt(a[2], "BATCH"), toInt(a[3], "SEQ"), toInt(a[4], "STEPS"), a[5],
                      a.size() == 7 ? std::atof(a[6]) : 989.0, accum);
    }
    if (cmd == "forward" && argc == 8)
      return cmdForward(argv[2], argv[3], toInt(argv[4], "BATCH"), toInt(argv[5], "SEQ"), toInt(argv[6], "RUNS"), argv[7]);
    if (cmd == "generate" && argc == 8)
      return cmdGenerate(argv[2], argv[3], toInt(argv[4], "ROWS"), toInt(argv[5], "PROMPT"), toInt(argv[6], "NEW"),
                         argv[7]);
    return usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "harness: %s\n", e.what());
    return 1;
  }
}
