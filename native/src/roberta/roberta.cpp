// RoBERTa classifier forward pass (see roberta.h). Post-LN encoder layers:
//   a = LN(x + Wo·MHA(x) + bo);  x' = LN(a + W2·GELU_erf(W1·a + b1) + b2)
// then the head on the first token (<s>): logits = Wout·tanh(Wd·h0 + bd) + bout.
#include "roberta.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "../common.h"
#include "../fastmath.h"
#include "../gemm.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp::roberta {

namespace {

int threadIndex() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int maxThreads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void throwIfCancelled(const std::atomic<int>* cancel) {
  if (cancel && cancel->load(std::memory_order_relaxed) != 0) throw Cancelled();
}

// out[N][OC] = inp[N][IC] · W[OC][IC]ᵀ + b
void linear(float* out, const float* inp, const float* W, const float* b, int N, int IC, int OC) {
  gemm(false, true, N, OC, IC, 1.0f, inp, IC, W, IC, 0.0f, out, OC);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    float* o = out + (size_t)i * OC;
    for (int j = 0; j < OC; j++) o[j] += b[j];
  }
}

// out = LN(a + b) row by row (b may be null); out may alias a or b. Sums in double: the result does not
// depend on the width's rounding and matches PyTorch's fp32 LayerNorm to well below 1e-6.
void addLayerNorm(float* out, const float* a, const float* b, const float* w, const float* beta, int N, int C,
                  float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* x = a + (size_t)i * C;
    const float* y = b ? b + (size_t)i * C : nullptr;
    float* o = out + (size_t)i * C;
    double sum = 0.0;
    for (int c = 0; c < C; c++) {
      float v = y ? x[c] + y[c] : x[c];
      o[c] = v;
      sum += v;
    }
    const double mean = sum / C;
    double var = 0.0;
    for (int c = 0; c < C; c++) {
      double t = o[c] - mean;
      var += t * t;
    }
    const float m = (float)mean, rstd = (float)(1.0 / std::sqrt(var / C + eps));
    for (int c = 0; c < C; c++) o[c] = (o[c] - m) * rstd * w[c] + beta[c];
  }
}

// erf(x) by Abramowitz & Stegun 7.1.26 (formula error 1.5e-7; evaluated in float with fastExp, measured
// |error| <= 5.2e-7 for erf and <= 4.7e-7 for GELU over [-12, 12], i.e. float32's resolution near ±1).
// Branch-free so the loop vectorises (-fno-trapping-math): ~10x faster than glibc's scalar erff.
inline float erfApprox(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float y = 1.0f - poly * fastExp(-a * a);
  return std::copysign(y, x);
}

// GELU with the error function (transformers' "gelu", not the tanh form), in place.
void geluErf(float* x, size_t n) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < (long)n; i++) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + erfApprox(v * 0.70710678118654752f));
  }
}

}  // namespace

Classifier::Classifier(const Config& c) : cfg(c) {
  check(c.vocab > 0 && c.maxPositions > c.padId + 1 && c.typeVocab > 0 && c.d > 0 && c.nLayer > 0 && c.nHead > 0 &&
            c.ff > 0 && c.numLabels > 0 && c.padId >= 0,
        "roberta: every size in the config must be positive (and max_position_embeddings > pad_token_id + 1)");
  check(c.d % c.nHead == 0, "roberta: hidden_size " + std::to_string(c.d) + " is not a multiple of num_attention_heads " +
                                std::to_string(c.nHead));
  check(c.padId < c.vocab, "roberta: pad_token_id is outside the vocabulary");
  const int d = c.d;
  const std::string e = "roberta.embeddings.";
  wordEmb_ = add(e + "word_embeddings.weight", {c.vocab, d});
  posEmb_ = add(e + "position_embeddings.weight", {c.maxPositions, d});
  typeEmb_ = add(e + "token_type_embeddings.weight", {c.typeVocab, d});
  embLnW_ = add(e + "LayerNorm.weight", {d});
  embLnB_ = add(e + "LayerNorm.bias", {d});
  for (int l = 0; l < c.nLayer; l++) {
    const std::string p = "roberta.encoder.layer." + std::to_string(l) + ".";
    Layer L;
    L.qkvW = add(p + "attention.self.query.weight", {d, d});
    add(p + "attention.self.key.weight", {d, d});
    add(p + "attention.self.value.weight", {d, d});
    L.qkvB = add(p + "attention.self.query.bias", {d});
    add(p + "attention.self.key.bias", {d});
    add(p + "attention.self.value.bias", {d});
    L.attnOutW = add(p + "attention.output.dense.weight", {d, d});
    L.attnOutB = add(p + "attention.output.dense.bias", {d});
    L.ln1W = add(p + "attention.output.LayerNorm.weight", {d});
    L.ln1B = add(p + "attention.output.LayerNorm.bias", {d});
    L.ffInW = add(p + "intermediate.dense.weight", {c.ff, d});
    L.ffInB = add(p + "intermediate.dense.bias", {c.ff});
    L.ffOutW = add(p + "output.dense.weight", {d, c.ff});
    L.ffOutB = add(p + "output.dense.bias", {d});
    L.ln2W = add(p + "output.LayerNorm.weight", {d});
    L.ln2B = add(p + "output.LayerNorm.bias", {d});
    layers_.push_back(L);
  }
  headDenseW_ = add("classifier.dense.weight", {d, d});
  headDenseB_ = add("classifier.dense.bias", {d});
  headOutW_ = add("classifier.out_proj.weight", {c.numLabels, d});
  headOutB_ = add("classifier.out_proj.bias", {c.numLabels});
  params.assign(tensors.back().offset + tensors.back().size, 0.0f);
  set_.assign(tensors.size(), false);
}

size_t Classifier::add(const std::string& key, std::vector<int> shape) {
  TensorInfo t;
  t.key = key;
  t.size = 1;
  for (int s : shape) t.size *= (size_t)s;
  t.shape = std::move(shape);
  t.offset = tensors.empty() ? 0 : tensors.back().offset + tensors.back().size;
  tensors.push_back(t);
  return t.offset;
}

void Classifier::setTensor(const std::string& key, const float* data, size_t count) {
  for (size_t i = 0; i < tensors.size(); i++) {
    if (tensors[i].key != key) continue;
    check(count == tensors[i].size, "roberta: tensor \"" + key + "\" needs " + std::to_string(tensors[i].size) +
                                        " values, got " + std::to_string(count));
    std::copy(data, data + count, params.begin() + tensors[i].offset);
    set_[i] = true;
    return;
  }
  throw Error("roberta: no tensor named \"" + key + "\"");
}

std::vector<std::string> Classifier::unsetTensors() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < tensors.size(); i++)
    if (!set_[i]) out.push_back(tensors[i].key);
  return out;
}

void Classifier::forward(const ForwardRequest& r) {
  const Config& c = cfg;
  const int d = c.d, H = c.nHead, B = r.B;
  check(B > 0 && r.ids && r.lengths && r.logitsOut, "roberta: forward needs ids, lengths and an output");
  std::vector<long> start(B + 1, 0);
  int longest = 0;
  for (int b = 0; b < B; b++) {
    const int n = r.lengths[b];
    check(n >= 1, "roberta: sequence " + std::to_string(b) + " is empty");
    start[b + 1] = start[b] + n;
    longest = std::max(longest, n);
  }
  const long N = start[B];

  // Embeddings. Position ids as transformers derives them from the ids: padding_idx + the running count
  // of non-pad tokens, and padding_idx itself at pad tokens.
  std::vector<float> x((size_t)N * d);
  for (int b = 0; b < B; b++) {
    int seen = 0;
    for (long i = start[b]; i < start[b + 1]; i++) {
      const int id = r.ids[i];
      check(id >= 0 && id < c.vocab, [&] {
        return "roberta: token id " + std::to_string(id) + " at position " + std::to_string(i - start[b]) +
               " of sequence " + std::to_string(b) + " is outside the vocabulary (0.." + std::to_string(c.vocab - 1) +
               ")";
      });
      const int pos = id == c.padId ? c.padId : c.padId + (++seen);
      check(pos < c.maxPositions, [&] {
        return "roberta: sequence " + std::to_string(b) + " is longer than the " +
               std::to_string(c.maxPositions - c.padId - 1) + " positions the model has";
      });
      const float* we = at(wordEmb_) + (size_t)id * d;
      const float* pe = at(posEmb_) + (size_t)pos * d;
      const float* te = at(typeEmb_);
      float* o = x.data() + (size_t)i * d;
      for (int k = 0; k < d; k++) o[k] = we[k] + pe[k] + te[k];
    }
  }
  addLayerNorm(x.data(), x.data(), nullptr, at(embLnW_), at(embLnB_), (int)N, d, c.lnEps);

  std::vector<float> qkv((size_t)N * 3 * d), ctx((size_t)N * d), tmp((size_t)N * d), inner((size_t)N * c.ff);
  std::vector<float> first((size_t)B * d);  // each sequence's first token (<s>): what the head reads
  std::vector<std::vector<float>> scores(maxThreads(), std::vector<float>((size_t)longest * longest));

  for (int l = 0; l < c.nLayer; l++) {
    const Layer& L = layers_[l];
    throwIfCancelled(r.cancel);
    // The last layer needs keys and values of every token, but the rest of its work only for the first tokens
    // (unless every hidden state was asked for).
    const bool firstOnly = l == c.nLayer - 1 && !r.hiddenOut;
    linear(qkv.data(), x.data(), at(L.qkvW), at(L.qkvB), (int)N, d, 3 * d);
    selfAttention(ctx.data(), qkv.data(), start, H, firstOnly, scores);
    const int M = firstOnly ? B : (int)N;
    float* h = x.data();
    if (firstOnly) {
      for (int b = 0; b < B; b++) std::copy_n(x.data() + (size_t)start[b] * d, d, first.data() + (size_t)b * d);
      h = first.data();
    }
    linear(tmp.data(), ctx.data(), at(L.attnOutW), at(L.attnOutB), M, d, d);
    addLayerNorm(h, h, tmp.data(), at(L.ln1W), at(L.ln1B), M, d, c.lnEps);
    linear(inner.data(), h, at(L.ffInW), at(L.ffInB), M, d, c.ff);
    geluErf(inner.data(), (size_t)M * c.ff);
    linear(tmp.data(), inner.data(), at(L.ffOutW), at(L.ffOutB), M, c.ff, d);
    addLayerNorm(h, h, tmp.data(), at(L.ln2W), at(L.ln2B), M, d, c.lnEps);
  }
  if (r.hiddenOut) {
    std::copy(x.begin(), x.end(), r.hiddenOut);
    for (int b = 0; b < B; b++) std::copy_n(x.data() + (size_t)start[b] * d, d, first.data() + (size_t)b * d);
  }

  // Classification head: logits = out_proj(tanh(dense(first token))).
  std::vector<float> dense((size_t)B * d);
  linear(dense.data(), first.data(), at(headDenseW_), at(headDenseB_), B, d, d);
  for (float& v : dense) v = std::tanh(v);
  linear(r.logitsOut, dense.data(), at(headOutW_), at(headOutB_), B, d, c.numLabels);
}

// Self-attention per (sequence, head): softmax(q·kᵀ/√hs)·v over the sequence's own tokens, heads written side by
// side into ctx rows (every token's row, or with firstOnly the first token's, one row per sequence).
void Classifier::selfAttention(float* ctx, const float* qkv, const std::vector<long>& start, int H, bool firstOnly,
                               std::vector<std::vector<float>>& scores) const {
  const int d = cfg.d, hs = d / H, B = (int)start.size() - 1;
  const float scale = 1.0f / std::sqrt((float)hs);
#pragma omp parallel for schedule(dynamic)
  for (int bh = 0; bh < B * H; bh++) {
    const int b = bh / H, h = bh % H, T = (int)(start[b + 1] - start[b]), rows = firstOnly ? 1 : T;
    const float* q = qkv + (size_t)start[b] * 3 * d + h * hs;
    const float* k = q + d;
    const float* v = q + 2 * d;
    float* out = ctx + (size_t)(firstOnly ? b : start[b]) * d + h * hs;
    float* S = scores[threadIndex()].data();
    gemmSerial(false, true, rows, T, hs, scale, q, 3 * d, k, 3 * d, 0.0f, S, T);
    for (int i = 0; i < rows; i++) {
      float* row = S + (size_t)i * T;
      const float mx = maxOf(row, T);
      float sum = 0.0f;
      for (int j = 0; j < T; j++) {
        row[j] = fastExp(row[j] - mx);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int j = 0; j < T; j++) row[j] *= inv;
    }
    gemmSerial(false, false, rows, hs, T, 1.0f, S, T, v, 3 * d, 0.0f, out, d);
  }
}

}  // namespace bp::roberta
