// Generation with a KV cache on the GPU (mirrors ../generate.cpp). Per row and position the cache holds the
// Transformer keys/values of every layer and, for the Backpack, the weight-net keys and the unscaled sense
// vectors, so one new token costs one row through every layer plus one alpha row per sense.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "device_model.cuh"

namespace bp::BP_CUDA_NS {

// Copies a [n][width] block (row pitch srcPitch floats) into cache rows: dst + ((rowIds[b]*cap + pos[b]) * width).
__global__ void appendRowsKernel(float* cache, const float* src, long srcPitch, const int* rowIds, const int* pos,
                                 int cap, long width) {
  const int b = blockIdx.x;
  float* dst = cache + ((long)rowIds[b] * cap + pos[b]) * width;
  const float* s = src + b * srcPitch;
  for (long c = threadIdx.x; c < width; c += blockDim.x) dst[c] = s[c];
}

// One block per (row b, head h): softmax(q . K[0..pos]) . V over the cached positions (new one included).
__global__ void decodeAttentionKernel(float* out, const float* qkv, const float* kc, const float* vc,
                                      const int* rowIds, const int* pos, int H, int d, int cap, float scale) {
  BP_DYNAMIC_SHARED(float, sc);
  __shared__ float red[32];
  const int b = blockIdx.x / H, h = blockIdx.x % H, hs = d / H, T = pos[b] + 1;
  const float* q = qkv + (long)b * 3 * d + h * hs;
  const float* K = kc + (long)rowIds[b] * cap * d + h * hs;
  const float* Vv = vc + (long)rowIds[b] * cap * d + h * hs;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    float acc = 0.0f;
    for (int c = 0; c < hs; c++) acc += q[c] * K[(long)j * d + c];
    sc[j] = acc * scale;
    mx = fmaxf(mx, sc[j]);
  }
  mx = warpMax(mx);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < (int)blockDim.x / 32; w++) mx = fmaxf(mx, red[w]);
  __syncthreads();
  float sum = 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    sc[j] = __expf(sc[j] - mx);
    sum += sc[j];
  }
  sum = warpSum(sum);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0.0f;
  for (int w = 0; w < (int)blockDim.x / 32; w++) sum += red[w];
  const float inv = 1.0f / sum;
  for (int c = threadIdx.x; c < hs; c += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < T; j++) acc += sc[j] * Vv[(long)j * d + c];
    out[(long)b * d + h * hs + c] = acc * inv;
  }
}

// One block per (row b, sense l): alpha row over the cached weight-net keys, edits, then the weighted sum of
// the cached sense vectors into part[b][l][:].
__global__ void decodeBackpackKernel(float* part, const float* qk, const float* akeys, const float* senses,
                                     const int* rowIds, const int* pos, int k, int d, int cap, int editSense,
                                     float editFactor, const uint8_t* keyMask, const float* senseScale,
                                     int scaleStride) {
  BP_DYNAMIC_SHARED(float, sc);
  __shared__ float red[32];
  const int b = blockIdx.x / k, l = blockIdx.x % k, hs = d / k, T = pos[b] + 1, row = rowIds[b];
  const float scale = rsqrtf((float)hs);
  const float* q = qk + (long)b * 2 * d + l * hs;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    const float* kj = akeys + ((long)row * cap + j) * d + l * hs;
    float acc = 0.0f;
    for (int c = 0; c < hs; c++) acc += q[c] * kj[c];
    sc[j] = acc * scale;
    mx = fmaxf(mx, sc[j]);
  }
  mx = warpMax(mx);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < (int)blockDim.x / 32; w++) mx = fmaxf(mx, red[w]);
  __syncthreads();
  float sum = 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    sc[j] = __expf(sc[j] - mx);
    sum += sc[j];
  }
  sum = warpSum(sum);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0.0f;
  for (int w = 0; w < (int)blockDim.x / 32; w++) sum += red[w];
  const float inv = 1.0f / sum;
  __syncthreads();
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    float w = sc[j] * inv;
    if (l == editSense && keyMask && keyMask[(long)b * cap + j]) w *= editFactor;
    if (senseScale) w *= senseScale[((long)b * scaleStride + j) * k + l];
    sc[j] = w;
  }
  __syncthreads();
  const long kd = (long)k * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < T; j++) acc += sc[j] * senses[((long)row * cap + j) * kd + (long)l * d + c];
    part[((long)b * k + l) * d + c] = acc;
  }
}

__global__ void sumSensesKernel(float* out, const float* part, int k, int d) {
  const int b = blockIdx.x;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int l = 0; l < k; l++) acc += part[((long)b * k + l) * d + c];
    out[(long)b * d + c] = acc;
  }
}

void DeviceModel::cacheReset(int rows, int cap) {
  BP_CUDA(cudaSetDevice(device));
  check(rows >= 1 && cap >= 1 && cap <= cfg.maxPos, "cache needs rows >= 1 and 1 <= capacity <= n_positions");
  const long d = cfg.d, L = cfg.nLayer;
  cache.rows = rows;
  cache.cap = cap;
  cache.len.assign(rows, 0);
  cache.ids.assign((long)rows * cap, 0);
  cache.k.release();
  cache.v.release();
  cache.k.resize(L * rows * cap * d);
  cache.v.resize(L * rows * cap * d);
  if (cfg.arch == Arch::Backpack) {
    cache.senses.release();
    cache.akeys.release();
    cache.senses.resize((long)rows * cap * cfg.senses * d);
    cache.akeys.resize((long)rows * cap * d);
  }
}

// Logits of n feature rows (row pitch `pitch` floats) -> host [n][V], through the head scratch in chunks.
static void logitsToHost(const Blas& blas, float* scratch, int chunk, const float* feats, long pitch, int n, int d,
                         const float* wte, int V, float* host) {
  for (int r0 = 0; r0 < n; r0 += chunk) {
    const int m = std::min(chunk, n - r0);
    gemm(blas, false, true, m, V, d, 1.0f, feats + r0 * pitch, (int)pitch, wte, d, 0.0f, scratch, V);
    BP_CUDA(cudaMemcpyAsync(host + (long)r0 * V, scratch, sizeof(float) * (long)m * V, cudaMemcpyDeviceToHost,
                            blas.stream));
    BP_CUDA(cudaStreamSynchronize(blas.stream));
  }
}

void DeviceModel::cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits,
                               DeviceInterventions* iv) {
  check(row0 >= 0 && row0 + n <= cache.rows, "prefill rows outside the cache");
  check(T >= 1 && T <= cache.cap, "prompt length " + std::to_string(T) + " exceeds the cache capacity");
  ForwardRequest r;
  r.tokens = tokens;
  r.B = n;
  r.T = T;
  forward(r, 0, nullptr, iv);
  const long d = cfg.d, cap = cache.cap, rows = cache.rows;
  for (int l = 0; l < cfg.nLayer; l++)
    for (int b = 0; b < n; b++) {
      const float* q = a.layer[l].qkv + (long)b * T * 3 * d;
      const long at = (((long)l * rows + row0 + b) * cap) * d;
      BP_CUDA(cudaMemcpy2DAsync(cache.k.p + at, d * sizeof(float), q + d, 3 * d * sizeof(float), d * sizeof(float), T,
                                cudaMemcpyDeviceToDevice, stream));
      BP_CUDA(cudaMemcpy2DAsync(cache.v.p + at, d * sizeof(float), q + 2 * d, 3 * d * sizeof(float), d * sizeof(float),
                                T, cudaMemcpyDeviceToDevice, stream));
    }
  const float* feats = a.lnf;
  if (cfg.arch == Arch::Backpack) {
    const long kd = (long)cfg.senses * d;
    for (int b = 0; b < n; b++) {
      BP_CUDA(cudaMemcpyAsync(cache.senses.p + (long)(row0 + b) * cap * kd, a.senses + (long)b * T * kd,
                              sizeof(float) * T * kd, cudaMemcpyDeviceToDevice, stream));
      BP_CUDA(cudaMemcpy2DAsync(cache.akeys.p + (long)(row0 + b) * cap * d, d * sizeof(float), a.qk + (long)b * T * 2 * d + d,
                                2 * d * sizeof(float), d * sizeof(float), T, cudaMemcpyDeviceToDevice, stream));
    }
    feats = a.out;
  }
  for (int b = 0; b < n; b++) {
    std::memcpy(&cache.ids[(long)(row0 + b) * cap], tokens + (long)b * T, sizeof(int32_t) * T);
    cache.len[row0 + b] = T;
  }
  if (lastLogits) logitsToHost(blas, a.headScratch, headChunk, feats + (long)(T - 1) * d, (long)T * d, n, cfg.d, P(wte),
                               cfg.vocab, lastLogits);
  sync();
}

void DeviceModel::cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const Interventions* hiv,
                              DeviceInterventions* iv) {
  BP_CUDA(cudaSetDevice(device));
  const int d = cfg.d, H = cfg.nHead, cap = cache.cap, rows = cache.rows;
  std::vector<int32_t> pos(n);
  for (int b = 0; b < n; b++) {
    check(rowIds[b] >= 0 && rowIds[b] < rows, "decode row outside the cache");
    check(cache.len[rowIds[b]] >= 1, "decode row " + std::to_string(rowIds[b]) + " was not prefilled");
    check(cache.len[rowIds[b]] < cap, "sequence reached the cache capacity (n_positions)");
    check(tokens[b] >= 0 && tokens[b] < cfg.vocab, "token id outside the vocabulary");
    pos[b] = cache.len[rowIds[b]];
  }
  ensureActivations(n, 1);
  // dTargets holds the row ids during decode (no targets here).
  BP_CUDA(cudaMemcpyAsync(dTokens.p, tokens, sizeof(int32_t) * n, cudaMemcpyHostToDevice, stream));
  BP_CUDA(cudaMemcpyAsync(dPositions.p, pos.data(), sizeof(int32_t) * n, cudaMemcpyHostToDevice, stream));
  BP_CUDA(cudaMemcpyAsync(dTargets.p, rowIds, sizeof(int32_t) * n, cudaMemcpyHostToDevice, stream));
  const int* dRows = dTargets.p;
  const int* dPos = dPositions.p;
  float* x = a.encoded;
  float* xn = a.lnf;
  float* qkv = a.layer[0].qkv;
  float* atty = a.layer[0].atty;
  float* fc = a.layer[0].fch;
  float* fcg = a.layer[0].fchg;
  embeddingForward(x, dTokens.p, dPos, P(wte), P(wpe), n, d, iv ? iv->embed() : EmbedOverride{}, stream);
  const long Nd = (long)n * d;
  for (int l = 0; l < cfg.nLayer; l++) {
    const LayerOff& W = layers[l];
    layernormForward(xn, a.lnfm, a.lnfr, x, P(W.ln1w), P(W.ln1b), n, d, cfg.lnEps, stream);
    linearForward(blas, qkv, xn, P(W.qkvw), P(W.qkvb), n, d, 3 * d);
    float* kc = cache.k.p + (long)l * rows * cap * d;
    float* vc = cache.v.p + (long)l * rows * cap * d;
    BP_LAUNCH(appendRowsKernel, n, 256, 0, stream)(kc, qkv + d, 3 * d, dRows, dPos, cap, d);
    BP_LAUNCH(appendRowsKernel, n, 256, 0, stream)(vc, qkv + 2 * d, 3 * d, dRows, dPos, cap, d);
    BP_LAUNCHED();
    const float scale = (float)(1.0 / std::sqrt((double)(d / H)) / (cfg.scaleByInverseLayer ? l + 1 : 1));
    BP_LAUNCH(decodeAttentionKernel, n * H, 128, sizeof(float) * cap, stream)
    (atty, qkv, kc, vc, dRows, dPos, H, d, cap, scale);
    BP_LAUNCHED();
    linearForward(blas, a.branch, atty, P(W.projw), P(W.projb), n, d, d);
    residualDropoutForward(x, x, a.branch, Nd, Site{}, stream);
    layernormForward(xn, a.lnfm, a.lnfr, x, P(W.ln2w), P(W.ln2b), n, d, cfg.lnEps, stream);
    linearForward(blas, fc, xn, P(W.fcw), P(W.fcb), n, d, 4 * d);
    geluForward(fcg, fc, (long)n * 4 * d, stream);
    linearForward(blas, a.branch, fcg, P(W.fcprojw), P(W.fcprojb), n, 4 * d, d);
    residualDropoutForward(x, x, a.branch, Nd, Site{}, stream);
  }
  layernormForward(xn, a.lnfm, a.lnfr, x, P(lnfw), P(lnfb), n, d, cfg.lnEps, stream);
  for (int b = 0; b < n; b++) cache.ids[(long)rowIds[b] * cap + pos[b]] = tokens[b];
  const float* feats = xn;
  if (cfg.arch == Arch::Backpack) {
    const int k = cfg.senses;
    const long kd = (long)k * d;
    senseForward(dTokens.p, n, false, 0, 0.0f, iv);
    linearForward(blas, a.qk, xn, P(aw), P(ab), n, d, 2 * d);
    BP_LAUNCH(appendRowsKernel, n, 256, 0, stream)(cache.senses.p, a.senses, kd, dRows, dPos, cap, kd);
    BP_LAUNCH(appendRowsKernel, n, 256, 0, stream)(cache.akeys.p, a.qk + d, 2 * d, dRows, dPos, cap, d);
    BP_LAUNCHED();
    // Alpha edit mask over each row's cached token ids, and per-position sense multipliers.
    DevBuf<uint8_t> mask;
    DevBuf<float> scaleBuf;
    const uint8_t* dMask = nullptr;
    const float* dScale = nullptr;
    int stride = 0;
    if (hiv && hiv->alphaSense >= 0) {
      std::vector<uint8_t> m((long)n * cap, 0);
      for (int b = 0; b < n; b++)
        for (int j = 0; j <= pos[b]; j++) {
          const int32_t t = cache.ids[(long)rowIds[b] * cap + j];
          m[(long)b * cap + j] = std::find(hiv->alphaTokens.begin(), hiv->alphaTokens.end(), t) != hiv->alphaTokens.end();
        }
      mask.resize(m.size());
      BP_CUDA(cudaMemcpyAsync(mask.p, m.data(), m.size(), cudaMemcpyHostToDevice, stream));
      dMask = mask.p;
      sync();
    }
    if (hiv && hiv->senseScale) {
      stride = hiv->scaleStride;
      const long count = (long)n * stride * k;
      scaleBuf.resize(count);
      BP_CUDA(cudaMemcpyAsync(scaleBuf.p, hiv->senseScale, sizeof(float) * count, cudaMemcpyHostToDevice, stream));
      dScale = scaleBuf.p;
    }
    BP_LAUNCH(decodeBackpackKernel, n * k, 128, sizeof(float) * cap, stream)
    (a.gBig, a.qk, cache.akeys.p, cache.senses.p, dRows, dPos, k, d, cap, hiv ? hiv->alphaSense : -1,
     hiv ? hiv->alphaFactor : 1.0f, dMask, dScale, stride);
    BP_LAUNCHED();
    BP_LAUNCH(sumSensesKernel, n, 256, 0, stream)(a.out, a.gBig, k, d);
    BP_LAUNCHED();
    feats = a.out;
    sync();  // the edit buffers are freed at scope end
  }
  for (int b = 0; b < n; b++) cache.len[rowIds[b]]++;
  logitsToHost(blas, a.headScratch, headChunk, feats, d, n, d, P(wte), cfg.vocab, logits);
}

}  // namespace bp::BP_CUDA_NS
