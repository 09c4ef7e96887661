// Backpack sense network C(x): per token, from its word embedding only (PAPER.md section 1.3):
//   r0 = drop(E[x]); h0 = LN0(r0); r1 = r0 + drop(h0); h1 = LN1(r1); r2 = r1 + drop(MLP_a(h1)); h2 = LN2(r2);
//   C = MLP_b(h2)  ([k*d], no dropout). Composed from the layer kernels; buffers are the model's arena.
#include <algorithm>
#include <cstring>

#include "../model.h"
#include "../rng.h"

namespace bp {

static inline DropoutSite senseSite(bool train, float p, uint32_t seed, uint32_t stream) {
  DropoutSite s;
  if (train && p > 0.0f) {
    s.p = p;
    s.key = streamKey(seed, stream);
  }
  return s;
}

void Model::senseForward(const int32_t* tokens, int N, bool train, uint32_t seed, float p, const Interventions* iv) {
  const int d = cfg.d, h = cfg.senseHidden, k = cfg.senses;
  const long kd = (long)k * d;
  embeddingForward(a.r0, tokens, nullptr, P(wte), nullptr, N, d, iv ? &iv->embedding : nullptr);
  dropoutForward(a.r0, (long)N * d, senseSite(train, p, seed, 10));
  layernormForward(a.h0, a.h0m, a.h0r, a.r0, P(sense.ln0w), P(sense.ln0b), N, d, cfg.lnEps);
  residualDropoutForward(a.r1, a.r0, a.h0, (long)N * d, senseSite(train, p, seed, 11));
  layernormForward(a.h1, a.h1m, a.h1r, a.r1, P(sense.ln1w), P(sense.ln1b), N, d, cfg.lnEps);
  linearForward(a.fa, a.h1, P(sense.faw), P(sense.fab), N, d, h);
  geluForward(a.fag, a.fa, (long)N * h);
  linearForward(a.branch, a.fag, P(sense.fapw), P(sense.fapb), N, h, d);
  residualDropoutForward(a.r2, a.r1, a.branch, (long)N * d, senseSite(train, p, seed, 12));
  layernormForward(a.h2, a.h2m, a.h2r, a.r2, P(sense.ln2w), P(sense.ln2b), N, d, cfg.lnEps);
  linearForward(a.fb, a.h2, P(sense.fbw), P(sense.fbb), N, d, h);
  geluForward(a.fbg, a.fb, (long)N * h);
  linearForward(a.senses, a.fbg, P(sense.fbpw), P(sense.fbpb), N, h, (int)kd);
  if (!iv) return;  // sense scaling is applied at mixing time, so cached senses stay unscaled
  for (size_t r = 0; r < iv->replaceIds.size(); r++)
    for (int i = 0; i < N; i++)
      if (tokens[i] == iv->replaceIds[r])
        std::memcpy(a.senses + i * kd, iv->replaceVectors + r * kd, sizeof(float) * kd);
}

// Consumes dC in a.gBig; uses gBig2, gA, gB as scratch; accumulates parameter gradients (incl. wte).
void Model::senseBackward(const int32_t* tokens, int N, uint32_t seed, float p) {
  const int d = cfg.d, h = cfg.senseHidden, k = cfg.senses;
  const long Nd = (long)N * d;
  linearBackward(a.gBig2, G(sense.fbpw), G(sense.fbpb), a.gBig, a.fbg, P(sense.fbpw), N, h, k * d, false);
  geluBackward(a.gBig2, a.fb, a.gBig2, (long)N * h);
  linearBackward(a.gA, G(sense.fbw), G(sense.fbb), a.gBig2, a.h2, P(sense.fbw), N, d, h, false);
  std::fill(a.gB, a.gB + Nd, 0.0f);
  layernormBackward(a.gB, G(sense.ln2w), G(sense.ln2b), a.gA, a.r2, P(sense.ln2w), a.h2m, a.h2r, N, d);  // dr2
  std::memcpy(a.gA, a.gB, sizeof(float) * Nd);
  dropoutBackward(a.gA, Nd, senseSite(true, p, seed, 12));
  linearBackward(a.gBig2, G(sense.fapw), G(sense.fapb), a.gA, a.fag, P(sense.fapw), N, h, d, false);
  geluBackward(a.gBig2, a.fa, a.gBig2, (long)N * h);
  linearBackward(a.gA, G(sense.faw), G(sense.fab), a.gBig2, a.h1, P(sense.faw), N, d, h, false);
  layernormBackward(a.gB, G(sense.ln1w), G(sense.ln1b), a.gA, a.r1, P(sense.ln1w), a.h1m, a.h1r, N, d);  // dr1
  std::memcpy(a.gA, a.gB, sizeof(float) * Nd);
  dropoutBackward(a.gA, Nd, senseSite(true, p, seed, 11));
  layernormBackward(a.gB, G(sense.ln0w), G(sense.ln0b), a.gA, a.r0, P(sense.ln0w), a.h0m, a.h0r, N, d);  // dr0
  dropoutBackward(a.gB, Nd, senseSite(true, p, seed, 10));
  embeddingBackward(G(wte), nullptr, a.gB, tokens, nullptr, N, d, nullptr);
}

}  // namespace bp
