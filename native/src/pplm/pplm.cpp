// PPLM session: one-token GPT-2 steps over a clean and a perturbable KV cache, and the backward pass of a
// step to its cached keys/values. Batched products go through bp::gemm (threaded over output columns, which is
// what a few rows against a large weight matrix need); one or two rows stream the weights directly (see
// kStreamRows). LayerNorm/GELU forwards are the engine's own kernels.
#include "pplm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../gemm.h"
#include "../layers/layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp::pplm {

namespace {

// dx = LayerNorm'(x)^T dy per row (affine weight w; the bias has no input gradient). Overwrites dx.
void layernormInputBackward(float* dx, const float* dy, const float* x, const float* w, const float* mean,
                            const float* rstd, int N, int C) {
  for (int i = 0; i < N; i++) {
    const float* g = dy + (long)i * C;
    const float* xi = x + (long)i * C;
    const float m = mean[i], s = rstd[i];
    float meanD = 0.0f, meanDN = 0.0f;
    for (int c = 0; c < C; c++) {
      const float dn = w[c] * g[c];
      meanD += dn;
      meanDN += dn * (xi[c] - m) * s;
    }
    meanD /= C;
    meanDN /= C;
    float* o = dx + (long)i * C;
    for (int c = 0; c < C; c++) o[c] = (w[c] * g[c] - meanD - (xi[c] - m) * s * meanDN) * s;
  }
}

// One or two rows against a weight matrix are a pass over the weights that memory bandwidth bounds; sgemm packs
// the whole matrix first (measured 2x slower than a plain streaming pass at GPT-2-small shapes), so up to this
// many rows the products below stream the weights once themselves; larger batches go to bp::gemm.
constexpr int kStreamRows = 2;

// y[M][N] = x[M][K] W[N][K]^T + b (b may be null): the forward of a Linear-layout weight (and the tied head).
void rowsTimesWeightT(float* y, const float* x, const float* W, const float* b, int M, int K, int N) {
  if (M > kStreamRows) {
    if (b) linearForward(y, x, W, b, M, K, N);
    else gemm(false, true, M, N, K, 1.0f, x, K, W, K, 0.0f, y, N);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int j = 0; j < N; j++) {
    const float* w = W + (long)j * K;
    for (int r = 0; r < M; r++) {
      const float* xr = x + (long)r * K;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int k = 0; k < K; k++) acc += xr[k] * w[k];
      y[(long)r * N + j] = acc + (b ? b[j] : 0.0f);
    }
  }
}

// dx[M][K] = dy[M][N] W[N][K]: the input gradient of y = x W^T (Linear layout), threads owning column ranges of dx.
void rowsTimesWeight(float* dx, const float* dy, const float* W, int M, int N, int K) {
  if (M > kStreamRows) {
    gemm(false, false, M, K, N, 1.0f, dy, N, W, K, 0.0f, dx, K);
    return;
  }
#pragma omp parallel
  {
#ifdef _OPENMP
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    const int nt = 1, t = 0;
#endif
    // Column ranges on multiples of 16 floats keep each thread's stores in whole cache lines.
    int chunk = (K + nt - 1) / nt;
    chunk = (chunk + 15) / 16 * 16;
    const int lo = std::min(K, t * chunk), hi = std::min(K, lo + chunk);
    for (int r = 0; r < M; r++) std::fill(dx + (long)r * K + lo, dx + (long)r * K + hi, 0.0f);
    for (int j = 0; j < N; j++) {
      const float* w = W + (long)j * K;
      for (int r = 0; r < M; r++) {
        const float a = dy[(long)r * N + j];
        if (a == 0.0f) continue;
        float* o = dx + (long)r * K;
#pragma omp simd
        for (int k = lo; k < hi; k++) o[k] += a * w[k];
      }
    }
  }
}

// y = x W^T for W in Linear layout [OC][IC] read as its transpose: dx = dy W (dy [N][OC] -> dx [N][IC]).
void linearInputBackward(float* dx, const float* dy, const float* w, int N, int IC, int OC) {
  rowsTimesWeight(dx, dy, w, N, OC, IC);
}

long tensorOffset(const Model& m, const std::string& key) {
  for (const TensorInfo& t : m.tensors)
    if (t.key == key) return t.offset;
  throw Error("pplm: the model has no tensor " + key);
}

}  // namespace

Session::Session(const Model& model, int rows, int capacity)
    : model_(model), cfg_(model.cfg), B_(rows), cap_(capacity) {
  check(cfg_.arch == Arch::GPT2, "pplm: needs a GPT-2 (Transformer) model");
  check(rows >= 1, "pplm: rows must be >= 1");
  check(capacity >= 1 && capacity <= cfg_.maxPos,
        "pplm: capacity must be in 1..n_positions (" + std::to_string(cfg_.maxPos) + ")");
  const std::string pre = "transformer.";
  offsets_.push_back(tensorOffset(model, pre + "wte.weight"));
  offsets_.push_back(tensorOffset(model, pre + "wpe.weight"));
  offsets_.push_back(tensorOffset(model, pre + "ln_f.weight"));
  offsets_.push_back(tensorOffset(model, pre + "ln_f.bias"));
  const char* names[] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                         "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                         "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
  for (int l = 0; l < cfg_.nLayer; l++)
    for (const char* n : names) offsets_.push_back(tensorOffset(model, pre + "h." + std::to_string(l) + "." + n));
  lw_.resize(cfg_.nLayer);

  const long L = cfg_.nLayer, B = rows, d = cfg_.d, H = cfg_.nHead;
  for (Cache* c : {&clean_, &past_}) {
    c->k.assign(L * B * cap_ * d, 0.0f);
    c->v.assign(L * B * cap_ * d, 0.0f);
  }
  for (Trace* t : {&cleanTrace_, &pastTrace_}) {
    // The past trace also records joint steps (past and clean rows together).
    const long B = t == &pastTrace_ ? 2L * rows : rows;
    t->xin.resize(L * B * d);
    t->xmid.resize(L * B * d);
    t->mean1.resize(L * B);
    t->rstd1.resize(L * B);
    t->mean2.resize(L * B);
    t->rstd2.resize(L * B);
    t->qkv.resize(L * B * 3 * d);
    t->probs.resize(L * B * H * cap_);
    t->fch.resize(L * B * 4 * d);
    t->xf.resize(B * d);
    t->meanf.resize(B);
    t->rstdf.resize(B);
  }
  for (auto* s : {&x_, &xn_, &atty_, &br_, &dx_, &dxmid_, &dtmp_}) s->resize(2 * B * d);
  for (auto* s : {&fcg_, &dfc_}) s->resize(2 * B * 4 * d);
  dqkv_.resize(B * 3 * d);
  dp_.resize(B * H * cap_);
}

void Session::bindWeights() {
  const float* p = model_.params.data();
  int i = 0;
  wte_ = p + offsets_[i++];
  wpe_ = p + offsets_[i++];
  lnfw_ = p + offsets_[i++];
  lnfb_ = p + offsets_[i++];
  for (LayerW& w : lw_) {
    for (const float** f : {&w.ln1w, &w.ln1b, &w.qkvw, &w.qkvb, &w.projw, &w.projb, &w.ln2w, &w.ln2b, &w.fcw,
                            &w.fcb, &w.fcprojw, &w.fcprojb})
      *f = p + offsets_[i++];
  }
}

void Session::reset() {
  clean_.len = past_.len = 0;
  cleanTrace_.T = pastTrace_.T = -1;
}

void Session::cleanStep(const int32_t* tokens, float* logits) {
  step(false, true, false, cleanTrace_, tokens, nullptr, 0, logits);
}

void Session::perturbedStep(const int32_t* tokens, const float* delta, int P, bool commit, float* logits) {
  step(true, false, commit, pastTrace_, tokens, delta, P, logits);
}

void Session::jointStep(const int32_t* tokens, bool commitPast, float* logits) {
  check(clean_.len == past_.len, "pplm: a joint step needs the clean and the carried cache at the same length");
  std::vector<int32_t> twice(tokens, tokens + B_);
  twice.insert(twice.end(), tokens, tokens + B_);
  step(true, true, commitPast, pastTrace_, twice.data(), nullptr, 0, logits);
}

void Session::step(bool usePast, bool useClean, bool commitPast, Trace& tr, const int32_t* tokens,
                   const float* delta, int P, float* logits) {
  bindWeights();
  // Virtual rows: [0, B_) read the carried past (when used), the next B_ the clean cache (always committed).
  const int nPast = usePast ? B_ : 0;
  const int R = nPast + (useClean ? B_ : 0);
  const int d = cfg_.d, H = cfg_.nHead, hs = d / H, L = cfg_.nLayer, V = cfg_.vocab;
  const int T = usePast ? past_.len : clean_.len;
  check(T < cap_, "pplm: the cache is full (" + std::to_string(cap_) + " positions)");
  check(P >= 0 && P <= T, "pplm: a delta over " + std::to_string(P) + " positions, but only " +
                              std::to_string(T) + " are cached");
  for (int r = 0; r < R; r++)
    check(tokens[r] >= 0 && tokens[r] < V,
          [&] { return "pplm: token id " + std::to_string(tokens[r]) + " outside the vocabulary"; });
  auto cacheOf = [&](int r) -> Cache& { return r < nPast ? past_ : clean_; };
  auto rowOf = [&](int r) { return r < nPast ? r : r - nPast; };
  auto commits = [&](int r) { return r < nPast ? commitPast : true; };
  tr.T = -1;  // invalid until the step completes
  tr.rows = R;
  tr.kwin.resize((long)L * nPast * P * d);
  tr.vwin.resize((long)L * nPast * P * d);

  std::vector<int32_t> pos(R, T);
  embeddingForward(x_.data(), tokens, pos.data(), wte_, wpe_, R, d, nullptr);
  for (int l = 0; l < L; l++) {
    const LayerW& W = lw_[l];
    const long lr = (long)l * R;
    std::memcpy(&tr.xin[lr * d], x_.data(), sizeof(float) * R * d);
    layernormForward(xn_.data(), &tr.mean1[lr], &tr.rstd1[lr], x_.data(), W.ln1w, W.ln1b, R, d, cfg_.lnEps);
    float* qkv = &tr.qkv[lr * 3 * d];
    rowsTimesWeightT(qkv, xn_.data(), W.qkvw, W.qkvb, R, d, 3 * d);
    // Keys/values of the perturbed window of the past: cache + delta.
    float* kwin = tr.kwin.data() + (long)l * nPast * P * d;
    float* vwin = tr.vwin.data() + (long)l * nPast * P * d;
    for (int b = 0; b < nPast; b++)
      for (int j = 0; j < P; j++) {
        const float* kc = &past_.k[cacheAt(l, b, j)];
        const float* vc = &past_.v[cacheAt(l, b, j)];
        float* kw = kwin + ((long)b * P + j) * d;
        float* vw = vwin + ((long)b * P + j) * d;
        const float* dk = delta ? delta + ((((long)b * L + l) * 2 + 0) * P + j) * d : nullptr;
        const float* dv = delta ? delta + ((((long)b * L + l) * 2 + 1) * P + j) * d : nullptr;
        for (int i = 0; i < d; i++) {
          kw[i] = kc[i] + (dk ? dk[i] : 0.0f);
          vw[i] = vc[i] + (dv ? dv[i] : 0.0f);
        }
      }
    const float scale = (float)(1.0 / std::sqrt((double)hs) / (cfg_.scaleByInverseLayer ? l + 1 : 1));
#pragma omp parallel for schedule(static)
    for (int rh = 0; rh < R * H; rh++) {
      const int r = rh / H, h = rh % H, b = rowOf(r);
      const Cache& c = cacheOf(r);
      const int Pr = r < nPast ? P : 0;
      const float* q = qkv + (long)r * 3 * d + h * hs;
      auto key = [&](int j) -> const float* {
        if (j < Pr) return kwin + ((long)b * P + j) * d + h * hs;
        if (j < T) return &c.k[cacheAt(l, b, j) + h * hs];
        return qkv + (long)r * 3 * d + d + h * hs;
      };
      auto value = [&](int j) -> const float* {
        if (j < Pr) return vwin + ((long)b * P + j) * d + h * hs;
        if (j < T) return &c.v[cacheAt(l, b, j) + h * hs];
        return qkv + (long)r * 3 * d + 2 * d + h * hs;
      };
      float* s = &tr.probs[((lr + r) * H + h) * cap_];
      float mx = -INFINITY;
      for (int j = 0; j <= T; j++) {
        const float* kj = key(j);
        float acc = 0.0f;
        for (int e = 0; e < hs; e++) acc += q[e] * kj[e];
        s[j] = acc * scale;
        mx = std::max(mx, s[j]);
      }
      float z = 0.0f;
      for (int j = 0; j <= T; j++) z += s[j] = std::exp(s[j] - mx);
      const float inv = 1.0f / z;
      float* o = &atty_[(long)r * d + h * hs];
      std::fill(o, o + hs, 0.0f);
      for (int j = 0; j <= T; j++) {
        s[j] *= inv;
        const float* vj = value(j);
        for (int e = 0; e < hs; e++) o[e] += s[j] * vj[e];
      }
    }
    rowsTimesWeightT(br_.data(), atty_.data(), W.projw, W.projb, R, d, d);
    for (long i = 0; i < (long)R * d; i++) x_[i] += br_[i];
    std::memcpy(&tr.xmid[lr * d], x_.data(), sizeof(float) * R * d);
    layernormForward(xn_.data(), &tr.mean2[lr], &tr.rstd2[lr], x_.data(), W.ln2w, W.ln2b, R, d, cfg_.lnEps);
    float* fch = &tr.fch[lr * 4 * d];
    rowsTimesWeightT(fch, xn_.data(), W.fcw, W.fcb, R, d, 4 * d);
    geluForward(fcg_.data(), fch, (long)R * 4 * d);
    rowsTimesWeightT(br_.data(), fcg_.data(), W.fcprojw, W.fcprojb, R, 4 * d, d);
    for (long i = 0; i < (long)R * d; i++) x_[i] += br_[i];
    for (int r = 0; r < R; r++) {
      if (!commits(r)) continue;
      Cache& c = cacheOf(r);
      const int b = rowOf(r);
      for (int j = 0; j < (r < nPast ? P : 0); j++) {
        std::memcpy(&c.k[cacheAt(l, b, j)], kwin + ((long)b * P + j) * d, sizeof(float) * d);
        std::memcpy(&c.v[cacheAt(l, b, j)], vwin + ((long)b * P + j) * d, sizeof(float) * d);
      }
      std::memcpy(&c.k[cacheAt(l, b, T)], qkv + (long)r * 3 * d + d, sizeof(float) * d);
      std::memcpy(&c.v[cacheAt(l, b, T)], qkv + (long)r * 3 * d + 2 * d, sizeof(float) * d);
    }
  }
  std::memcpy(tr.xf.data(), x_.data(), sizeof(float) * R * d);
  layernormForward(xn_.data(), tr.meanf.data(), tr.rstdf.data(), x_.data(), lnfw_, lnfb_, R, d, cfg_.lnEps);
  rowsTimesWeightT(logits, xn_.data(), wte_, nullptr, R, d, V);
  if (useClean) clean_.len++;
  if (usePast && commitPast) past_.len++;
  tr.T = T;
  tr.P = P;
  tr.hasPast = usePast;
}

void Session::backward(const float* dLogits, int P, float* dDelta) {
  const Trace& tr = pastTrace_;
  check(tr.T >= 0 && tr.hasPast, "pplm: backward needs a perturbed step first");
  check(P >= 0 && P <= tr.T, "pplm: gradient over " + std::to_string(P) + " positions, but the step attended to " +
                                 std::to_string(tr.T));
  bindWeights();
  // The past rows are the trace's first B_ rows (a joint step recorded the clean rows after them).
  const int B = B_, R = tr.rows, d = cfg_.d, H = cfg_.nHead, hs = d / H, L = cfg_.nLayer, V = cfg_.vocab,
            T = tr.T, Pw = tr.P;
  const Cache& c = past_;
  // After a commit the cache already holds the window's perturbed keys and the step's own keys at T; either
  // way the keys the step saw are: window buffer (j < Pw), cache (Pw <= j < T), this step's qkv (j == T).
  std::fill(dDelta, dDelta + (long)B * L * 2 * P * d, 0.0f);
  rowsTimesWeight(dtmp_.data(), dLogits, wte_, B, V, d);
  layernormInputBackward(dx_.data(), dtmp_.data(), tr.xf.data(), lnfw_, tr.meanf.data(), tr.rstdf.data(), B, d);
  for (int l = L - 1; l >= 0; l--) {
    const LayerW& W = lw_[l];
    const long lb = (long)l * R;
    // MLP block: x_out = xmid + proj(gelu(fc(ln2(xmid))))
    linearInputBackward(fcg_.data(), dx_.data(), W.fcprojw, B, 4 * d, d);
    geluBackward(dfc_.data(), &tr.fch[lb * 4 * d], fcg_.data(), (long)B * 4 * d);
    linearInputBackward(dtmp_.data(), dfc_.data(), W.fcw, B, d, 4 * d);
    layernormInputBackward(dxmid_.data(), dtmp_.data(), &tr.xmid[lb * d], W.ln2w, &tr.mean2[lb], &tr.rstd2[lb], B, d);
    for (long i = 0; i < (long)B * d; i++) dxmid_[i] += dx_[i];
    // Attention block: xmid = xin + proj(attention(q, keys, values))
    linearInputBackward(atty_.data(), dxmid_.data(), W.projw, B, d, d);
    const float* qkv = &tr.qkv[lb * 3 * d];
    const float* kwin = tr.kwin.data() + (long)l * B * Pw * d;
    const float* vwin = tr.vwin.data() + (long)l * B * Pw * d;
    const float scale = (float)(1.0 / std::sqrt((double)hs) / (cfg_.scaleByInverseLayer ? l + 1 : 1));
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
      const int b = bh / H, h = bh % H;
      auto key = [&](int j) -> const float* {
        if (j < Pw) return kwin + ((long)b * Pw + j) * d + h * hs;
        if (j < T) return &c.k[cacheAt(l, b, j) + h * hs];
        return qkv + (long)b * 3 * d + d + h * hs;
      };
      auto value = [&](int j) -> const float* {
        if (j < Pw) return vwin + ((long)b * Pw + j) * d + h * hs;
        if (j < T) return &c.v[cacheAt(l, b, j) + h * hs];
        return qkv + (long)b * 3 * d + 2 * d + h * hs;
      };
      const float* p = &tr.probs[((lb + b) * H + h) * cap_];
      const float* q = qkv + (long)b * 3 * d + h * hs;
      const float* g = &atty_[(long)b * d + h * hs];
      float* dq = &dqkv_[(long)b * 3 * d + h * hs];
      float* dkNew = dq + d;
      float* dvNew = dq + 2 * d;
      float* dK = dDelta + ((((long)b * L + l) * 2 + 0) * P) * d + h * hs;
      float* dV = dDelta + ((((long)b * L + l) * 2 + 1) * P) * d + h * hs;
      float* dp = &dp_[((long)b * H + h) * cap_];
      float dot = 0.0f;
      for (int j = 0; j <= T; j++) {
        const float* vj = value(j);
        float s = 0.0f;
        for (int e = 0; e < hs; e++) s += g[e] * vj[e];
        dp[j] = s;
        dot += p[j] * s;
        float* dv = j < P ? dV + (long)j * d : (j == T ? dvNew : nullptr);
        if (dv)
          for (int e = 0; e < hs; e++) dv[e] = p[j] * g[e];
      }
      std::fill(dq, dq + hs, 0.0f);
      for (int j = 0; j <= T; j++) {
        const float ds = p[j] * (dp[j] - dot) * scale;
        const float* kj = key(j);
        for (int e = 0; e < hs; e++) dq[e] += ds * kj[e];
        float* dk = j < P ? dK + (long)j * d : (j == T ? dkNew : nullptr);
        if (dk)
          for (int e = 0; e < hs; e++) dk[e] = ds * q[e];
      }
    }
    if (l == 0) break;  // nothing below the first layer depends on the cache
    linearInputBackward(dtmp_.data(), dqkv_.data(), W.qkvw, B, d, 3 * d);
    layernormInputBackward(dx_.data(), dtmp_.data(), &tr.xin[lb * d], W.ln1w, &tr.mean1[lb], &tr.rstd1[lb], B, d);
    for (long i = 0; i < (long)B * d; i++) dx_[i] += dxmid_[i];
  }
}

}  // namespace bp::pplm
