// Inference helpers: sense vectors of arbitrary ids, and incremental decoding with a KV cache. For the Backpack
// the cache holds, per row and position, the Transformer keys/values of every layer, the weight-net keys and the
// (unscaled) sense vectors, so one new token costs one row through every layer plus one alpha row per sense.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.h"
#include "model.h"

namespace bp {

void Model::senseVectors(const int32_t* ids, int n, float* out, const Interventions* iv) {
  check(cfg.arch == Arch::Backpack, "sense vectors exist only for Backpack models");
  const long kd = (long)cfg.senses * cfg.d;
  for (int i = 0; i < n; i++)
    check(ids[i] >= 0 && ids[i] < cfg.vocab,
          [&] { return "token id " + std::to_string(ids[i]) + " outside the vocabulary"; });
  const int chunk = std::min(cfg.maxPos, 512);
  ensureActivations(1, std::min(n, chunk));
  for (int off = 0; off < n; off += capT) {
    const int m = std::min(capT, n - off);
    senseForward(ids + off, m, false, 0, 0.0f, iv);
    std::memcpy(out + off * kd, a.senses, sizeof(float) * m * kd);
  }
}

void Model::cacheReset(int rows, int cap) {
  check(rows >= 1 && cap >= 1 && cap <= cfg.maxPos, "cache needs rows >= 1 and 1 <= capacity <= n_positions");
  const long d = cfg.d, L = cfg.nLayer;
  cache.rows = rows;
  cache.cap = cap;
  cache.len.assign(rows, 0);
  cache.ids.assign((long)rows * cap, 0);
  cache.k.assign(L * rows * cap * d, 0.0f);
  cache.v.assign(L * rows * cap * d, 0.0f);
  if (cfg.arch == Arch::Backpack) {
    cache.senses.assign((long)rows * cap * cfg.senses * d, 0.0f);
    cache.akeys.assign((long)rows * cap * d, 0.0f);
  }
}

void Model::cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits, const Interventions* iv) {
  check(row0 >= 0 && row0 + n <= cache.rows, "prefill rows outside the cache");
  check(T >= 1 && T <= cache.cap, "prompt length " + std::to_string(T) + " exceeds the cache capacity");
  ForwardRequest r;
  r.tokens = tokens;
  r.B = n;
  r.T = T;
  r.interventions = iv;
  forward(r, nullptr);
  const long d = cfg.d, cap = cache.cap, rows = cache.rows;
  for (int l = 0; l < cfg.nLayer; l++)
    for (int b = 0; b < n; b++)
      for (int t = 0; t < T; t++) {
        const float* q = a.layer[l].qkv + ((long)b * T + t) * 3 * d;
        long at = (((long)l * rows + row0 + b) * cap + t) * d;
        std::memcpy(&cache.k[at], q + d, sizeof(float) * d);
        std::memcpy(&cache.v[at], q + 2 * d, sizeof(float) * d);
      }
  const float* feats = a.lnf;
  if (cfg.arch == Arch::Backpack) {
    const long kd = (long)cfg.senses * d;
    for (int b = 0; b < n; b++)
      for (int t = 0; t < T; t++) {
        std::memcpy(&cache.senses[((long)(row0 + b) * cap + t) * kd], a.senses + ((long)b * T + t) * kd,
                    sizeof(float) * kd);
        std::memcpy(&cache.akeys[((long)(row0 + b) * cap + t) * d], a.qk + ((long)b * T + t) * 2 * d + d,
                    sizeof(float) * d);
      }
    feats = a.out;
  }
  for (int b = 0; b < n; b++) {
    std::memcpy(&cache.ids[(long)(row0 + b) * cap], tokens + (long)b * T, sizeof(int32_t) * T);
    cache.len[row0 + b] = T;
    if (lastLogits)
      gemm(false, true, 1, cfg.vocab, cfg.d, 1.0f, feats + ((long)b * T + T - 1) * d, cfg.d, P(wte), cfg.d, 0.0f,
           lastLogits + (long)b * cfg.vocab, cfg.vocab);
  }
}

// Softmax of scores[0..n) in place.
static void softmaxInPlace(float* s, int n) {
  float mx = s[0];
  for (int j = 1; j < n; j++) mx = std::max(mx, s[j]);
  float sum = 0.0f;
  for (int j = 0; j < n; j++) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  for (int j = 0; j < n; j++) s[j] /= sum;
}

void Model::cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const Interventions* iv) {
  const int d = cfg.d, H = cfg.nHead, hs = d / H, cap = cache.cap, rows = cache.rows;
  std::vector<int32_t> pos(n);
  for (int b = 0; b < n; b++) {
    check(rowIds[b] >= 0 && rowIds[b] < rows, "decode row outside the cache");
    check(cache.len[rowIds[b]] >= 1, "decode row " + std::to_string(rowIds[b]) + " was not prefilled");
    check(cache.len[rowIds[b]] < cap, "sequence reached the cache capacity (n_positions)");
    check(tokens[b] >= 0 && tokens[b] < cfg.vocab, "token id outside the vocabulary");
    pos[b] = cache.len[rowIds[b]];
  }
  std::vector<float> x((long)n * d), xn((long)n * d), qkv((long)n * 3 * d), atty((long)n * d), br((long)n * d),
      fc((long)n * 4 * d), fcg((long)n * 4 * d), mean(n), rstd(n);
  embeddingForward(x.data(), tokens, pos.data(), P(wte), P(wpe), n, d, iv ? &iv->embedding : nullptr);
  for (int l = 0; l < cfg.nLayer; l++) {
    const LayerIdx& W = layers[l];
    layernormForward(xn.data(), mean.data(), rstd.data(), x.data(), P(W.ln1w), P(W.ln1b), n, d, cfg.lnEps);
    linearForward(qkv.data(), xn.data(), P(W.qkvw), P(W.qkvb), n, d, 3 * d);
    const float scale = (float)(1.0 / std::sqrt((double)hs) / (cfg.scaleByInverseLayer ? l + 1 : 1));
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < n * H; bh++) {
      const int b = bh / H, h = bh % H, row = rowIds[b], T = pos[b] + 1;
      const long base = ((long)l * rows + row) * cap * d;
      float* kc = &cache.k[base];
      float* vc = &cache.v[base];
      const float* q = &qkv[(long)b * 3 * d + h * hs];
      if (h == 0) {
        std::memcpy(kc + (long)pos[b] * d, &qkv[(long)b * 3 * d + d], sizeof(float) * d);
        std::memcpy(vc + (long)pos[b] * d, &qkv[(long)b * 3 * d + 2 * d], sizeof(float) * d);
      }
      std::vector<float> s(T);
      for (int j = 0; j < T; j++) {
        // position pos[b] may not be written yet by the h == 0 task: read the new key from qkv
        const float* kj = j == pos[b] ? &qkv[(long)b * 3 * d + d + h * hs] : kc + (long)j * d + h * hs;
        float acc = 0.0f;
        for (int c = 0; c < hs; c++) acc += q[c] * kj[c];
        s[j] = acc * scale;
      }
      softmaxInPlace(s.data(), T);
      float* o = &atty[(long)b * d + h * hs];
      std::fill(o, o + hs, 0.0f);
      for (int j = 0; j < T; j++) {
        const float* vj = j == pos[b] ? &qkv[(long)b * 3 * d + 2 * d + h * hs] : vc + (long)j * d + h * hs;
        for (int c = 0; c < hs; c++) o[c] += s[j] * vj[c];
      }
    }
    linearForward(br.data(), atty.data(), P(W.projw), P(W.projb), n, d, d);
    for (long i = 0; i < (long)n * d; i++) x[i] += br[i];
    layernormForward(xn.data(), mean.data(), rstd.data(), x.data(), P(W.ln2w), P(W.ln2b), n, d, cfg.lnEps);
    linearForward(fc.data(), xn.data(), P(W.fcw), P(W.fcb), n, d, 4 * d);
    geluForward(fcg.data(), fc.data(), (long)n * 4 * d);
    linearForward(br.data(), fcg.data(), P(W.fcprojw), P(W.fcprojb), n, 4 * d, d);
    for (long i = 0; i < (long)n * d; i++) x[i] += br[i];
  }
  layernormForward(xn.data(), mean.data(), rstd.data(), x.data(), P(lnfw), P(lnfb), n, d, cfg.lnEps);
  for (int b = 0; b < n; b++) cache.ids[(long)rowIds[b] * cap + pos[b]] = tokens[b];
  const float* feats = xn.data();
  std::vector<float> out;
  if (cfg.arch == Arch::Backpack) {
    const int k = cfg.senses, ahs = d / k;
    const long kd = (long)k * d;
    ensureActivations(1, std::min(cfg.maxPos, std::max(n, 1)));
    senseForward(tokens, n, false, 0, 0.0f, iv);
    std::vector<float> qk((long)n * 2 * d);
    linearForward(qk.data(), xn.data(), P(aw), P(ab), n, d, 2 * d);
    for (int b = 0; b < n; b++) {
      const long at = (long)rowIds[b] * cap + pos[b];
      std::memcpy(&cache.senses[at * kd], a.senses + (long)b * kd, sizeof(float) * kd);
      std::memcpy(&cache.akeys[at * d], &qk[(long)b * 2 * d + d], sizeof(float) * d);
    }
    out.assign((long)n * d, 0.0f);
    const float ascale = 1.0f / std::sqrt((float)ahs);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++) {
      const int row = rowIds[b], T = pos[b] + 1;
      const int32_t* ids = &cache.ids[(long)row * cap];
      std::vector<float> s(T);
      float* o = &out[(long)b * d];
      for (int l = 0; l < k; l++) {
        const float* q = &qk[(long)b * 2 * d + l * ahs];
        for (int j = 0; j < T; j++) {
          const float* kj = &cache.akeys[((long)row * cap + j) * d + l * ahs];
          float acc = 0.0f;
          for (int c = 0; c < ahs; c++) acc += q[c] * kj[c];
          s[j] = acc * ascale;
        }
        softmaxInPlace(s.data(), T);
        if (iv && iv->alphaSense == l)
          for (int j = 0; j < T; j++)
            if (std::find(iv->alphaTokens.begin(), iv->alphaTokens.end(), ids[j]) != iv->alphaTokens.end())
              s[j] *= iv->alphaFactor;
        for (int j = 0; j < T; j++) {
          float w = s[j];
          if (iv && iv->senseScale) w *= iv->senseScale[((long)b * iv->scaleStride + j) * k + l];
          const float* c = &cache.senses[((long)row * cap + j) * kd + (long)l * d];
          for (int e = 0; e < d; e++) o[e] += w * c[e];
        }
      }
    }
    feats = out.data();
  }
  for (int b = 0; b < n; b++) cache.len[rowIds[b]]++;
  gemm(false, true, n, cfg.vocab, d, 1.0f, feats, d, P(wte), d, 0.0f, logits, cfg.vocab);
}

}  // namespace bp
