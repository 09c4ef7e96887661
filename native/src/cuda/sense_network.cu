// Backpack sense network C(x) on the GPU (the CPU composition in ../layers/sense_network.cpp, layer by layer):
//   r0 = drop(E[x]); h0 = LN0(r0); r1 = r0 + drop(h0); h1 = LN1(r1); r2 = r1 + drop(MLP_a(h1)); h2 = LN2(r2);
//   C = MLP_b(h2) ([k*d], no dropout).
#include <algorithm>

#include "../rng.h"
#include "device_model.cuh"

namespace bp::BP_CUDA_NS {

// The sense network's dropout sites (all [N][d])
Site DeviceModel::senseSite(bool train, float p, uint32_t seed, uint32_t stream) const {
  return dropSite(train, p, seed, stream, dropOffset);
}

// Rows whose token is listed get the replacement sense vectors.
__global__ void replaceSensesKernel(float* senses, const int32_t* tokens, const int32_t* ids, const float* vectors,
                                    int count, long kd) {
  const int i = blockIdx.x;
  const int t = tokens[i];
  for (int r = 0; r < count; r++)
    if (ids[r] == t)
      for (long c = threadIdx.x; c < kd; c += blockDim.x) senses[i * kd + c] = vectors[r * kd + c];
}

void DeviceModel::senseForward(const int32_t* tok, int N, bool train, uint32_t seed, float p, DeviceInterventions* iv) {
  const int d = cfg.d, h = cfg.senseHidden, k = cfg.senses;
  const long kd = (long)k * d, Nd = (long)N * d;
  embeddingForward(a.r0, tok, nullptr, P(wte), nullptr, N, d, iv ? iv->embed() : EmbedOverride{}, stream);
  dropoutForward(a.r0, Nd, senseSite(train, p, seed, 10), stream);
  layernormForward(a.h0, a.h0m, a.h0r, a.r0, P(sense.ln0w), P(sense.ln0b), N, d, cfg.lnEps, stream, nullptr, mixed);
  residualDropoutForward(a.r1, a.r0, a.h0, Nd, senseSite(train, p, seed, 11), stream);
  layernormForward(fp32Input(a.h1), a.h1m, a.h1r, a.r1, P(sense.ln1w), P(sense.ln1b), N, d, cfg.lnEps, stream, a.h1h,
                   mixed);
  mlpHidden(a.fa, a.fah, a.fag, a.fagh, a.h1, a.h1h, sense.faw, sense.fab, N, d, h, train);
  linear(a.branch, a.fag, a.fagh, sense.fapw, kBiasLater, N, h, d);
  biasResidualDropoutForward(a.r2, a.r1, a.branch, P(sense.fapb), d, Nd, senseSite(train, p, seed, 12), stream);
  layernormForward(fp32Input(a.h2), a.h2m, a.h2r, a.r2, P(sense.ln2w), P(sense.ln2b), N, d, cfg.lnEps, stream, a.h2h,
                   mixed);
  mlpHidden(a.fb, a.fbh, a.fbg, a.fbgh, a.h2, a.h2h, sense.fbw, sense.fbb, N, d, h, train);
  if (train && fusedLinear && !iv) {  // training reads only the bf16 senses
    linearForwardLt(blas, a.senses16, nullptr, a.fbgh, W16(sense.fbpw), P(sense.fbpb), W16(sense.fbpb), N, h, (int)kd,
                    Epilogue::Bias);
  } else {
    linear(a.senses, a.fbg, a.fbgh, sense.fbpw, mixed ? kBiasLater : sense.fbpb, N, h, (int)kd);
    if (mixed) addBias(a.senses, P(sense.fbpb), N, (int)kd, stream, a.senses16);  // and the bf16 twin for the mixing
  }
  sensesRounded = mixed && !(iv && iv->replaceCount > 0);
  if (iv && iv->replaceCount > 0) {
    BP_LAUNCH(replaceSensesKernel, N, 256, 0, stream)
    (a.senses, tok, iv->replaceIds.p, iv->replaceVectors.p, iv->replaceCount, kd);
    BP_LAUNCHED();
  }
}

// Consumes dC in a.gBig; gBig2, gA, gB are scratch; accumulates parameter gradients (wte included).
void DeviceModel::senseBackward(const int32_t* tok, int N, uint32_t seed, float p) {
  const int d = cfg.d, h = cfg.senseHidden, k = cfg.senses;
  const long Nd = (long)N * d;
  mlpBackward(a.gA, a.gBig2, {sense.fbw, sense.fbb, sense.fbpw, sense.fbpb}, {a.gBig},
              {a.h2, a.h2h, a.fb, a.fbh, a.fbg, a.fbgh}, N, d, h, k * d);
  BP_CUDA(cudaMemsetAsync(a.gB, 0, sizeof(float) * Nd, stream));
  layernormBackward(a.gB, G(sense.ln2w), G(sense.ln2b), a.gA, a.r2, P(sense.ln2w), a.h2m, a.h2r, N, d, stream, lnBack);
  mlpBackward(a.gA, a.gBig2, {sense.faw, sense.fab, sense.fapw, sense.fapb}, {a.gB, a.gA, senseSite(true, p, seed, 12)},
              {a.h1, a.h1h, a.fa, a.fah, a.fag, a.fagh}, N, d, h, d);
  layernormBackward(a.gB, G(sense.ln1w), G(sense.ln1b), a.gA, a.r1, P(sense.ln1w), a.h1m, a.h1r, N, d, stream, lnBack);
  dropoutCopy(a.gA, a.gB, Nd, senseSite(true, p, seed, 11), stream);
  layernormBackward(a.gB, G(sense.ln0w), G(sense.ln0b), a.gA, a.r0, P(sense.ln0w), a.h0m, a.h0r, N, d, stream, lnBack);
  dropoutForward(a.gB, Nd, senseSite(true, p, seed, 10), stream);
  embeddingBackward(G(wte), nullptr, a.gB, tok, nullptr, N, d, stream);
}

void DeviceModel::senseVectors(const int32_t* ids, int n, float* out, DeviceInterventions* iv) {
  BP_CUDA(cudaSetDevice(device));
  check(cfg.arch == Arch::Backpack, "sense vectors exist only for Backpack models");
  const long kd = (long)cfg.senses * cfg.d;
  for (int i = 0; i < n; i++)
    check(ids[i] >= 0 && ids[i] < cfg.vocab,
          [&] { return "token id " + std::to_string(ids[i]) + " outside the vocabulary"; });
  const int chunk = std::min(cfg.maxPos, 512);
  ensureActivations(1, std::min(std::max(n, 1), chunk));
  for (int off = 0; off < n; off += capT) {
    const int m = std::min(capT, n - off);
    BP_CUDA(cudaMemcpyAsync(dTokens.p, ids + off, sizeof(int32_t) * m, cudaMemcpyHostToDevice, stream));
    senseForward(dTokens.p, m, false, 0, 0.0f, iv);
    BP_CUDA(cudaMemcpyAsync(out + off * kd, a.senses, sizeof(float) * m * kd, cudaMemcpyDeviceToHost, stream));
    sync();
  }
}

}  // namespace bp::BP_CUDA_NS
