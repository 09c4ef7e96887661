// Backpack contextualization weights alpha_l = causal softmax(Q_l K_l^T / sqrt(d/k)), a chunk of sequences at a
// time (one batched GEMM for all (sequence, sense) score matrices).
// Alpha is written in the mixing layout [i][j][l] so the output is a single GEMM against the sense vectors
// viewed as [(j,l)][d] (see backpack_output.cu).
#include "layers.cuh"

namespace bp::BP_CUDA_NS {

// Rows (b, l, i) of a chunk: scores [b][l][i][j] -> alpha[b][(i*T + j)*k + l], lse[b][l][i]; alpha16
// (optional): alpha rounded to bf16 as well.
__global__ void alphaSoftmaxKernel(float* alpha, float* lse, const float* S, int n, int k, int T, AlphaEdit edit,
                                   const uint8_t* keyMask, half16* alpha16) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= n * k * T) return;
  int b = row / (k * T), l = (row / T) % k, i = row % T;
  const float* s = S + (long)row * T;
  float mx = -INFINITY;
  for (int j = lane; j <= i; j += 32) mx = fmaxf(mx, s[j]);
  mx = warpMax(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += 32) sum += __expf(s[j] - mx);
  sum = warpSum(sum);
  float inv = 1.0f / sum;
  const uint8_t* mask = keyMask && l == edit.sense ? keyMask + (long)b * T : nullptr;
  const long base = (long)b * T * T * k;
  for (int j = lane; j < T; j += 32) {
    float a = j <= i ? __expf(s[j] - mx) * inv : 0.0f;
    if (mask && mask[j]) a *= edit.factor;
    const long at = base + ((long)i * T + j) * k + l;
    alpha[at] = a;
    if (alpha16) alpha16[at] = round16(a);
  }
  if (lane == 0) lse[row] = mx + __logf(sum);
}

// Rows (b, l, i): dS[b][l][i][j] = a (g - sum_j a g), with a, g in the [b][i][j][l] layout.
__global__ void alphaBackKernel(float* dS, const float* alpha, const float* dalpha, int n, int k, int T) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= n * k * T) return;
  int b = row / (k * T), l = (row / T) % k, i = row % T;
  const float* A = alpha + (long)b * T * T * k;
  const float* D = dalpha + (long)b * T * T * k;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += 32) {
    long at = ((long)i * T + j) * k + l;
    dot += A[at] * D[at];
  }
  dot = warpSum(dot);
  float* o = dS + (long)row * T;
  for (int j = lane; j < T; j += 32) {
    long at = ((long)i * T + j) * k + l;
    o[j] = j <= i ? A[at] * (D[at] - dot) : 0.0f;
  }
}

// Coalesced variants: one block per query row (b, i), warp l for sense l (blockDim = 32*k). The [T][k] slice
// alpha[b][i][:][:] is contiguous, so it is staged in shared memory (padded rows of k+1 against bank conflicts)
// and written/read in its natural order. shared: T*(k+1) floats.
__global__ void alphaSoftmaxRowKernel(float* alpha, float* lse, const float* S, int n, int k, int T, AlphaEdit edit,
                                      const uint8_t* keyMask, half16* alpha16) {
  BP_DYNAMIC_SHARED(float, tile);
  const int b = blockIdx.x / T, i = blockIdx.x % T, l = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* s = S + (((long)b * k + l) * T + i) * T;
  float mx = -INFINITY;
  for (int j = lane; j <= i; j += 32) mx = fmaxf(mx, s[j]);
  mx = warpMax(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += 32) sum += __expf(s[j] - mx);
  sum = warpSum(sum);
  const float inv = 1.0f / sum;
  const uint8_t* mask = keyMask && l == edit.sense ? keyMask + (long)b * T : nullptr;
  for (int j = lane; j < T; j += 32) {
    float a = j <= i ? __expf(s[j] - mx) * inv : 0.0f;
    if (mask && mask[j]) a *= edit.factor;
    tile[j * (k + 1) + l] = a;
  }
  if (lane == 0) lse[((long)b * k + l) * T + i] = mx + __logf(sum);
  __syncthreads();
  const long row = ((long)b * T + i) * T * k;
  for (int f = threadIdx.x; f < T * k; f += blockDim.x) {
    const float a = tile[(f / k) * (k + 1) + f % k];
    alpha[row + f] = a;
    if (alpha16) alpha16[row + f] = round16(a);
  }
}

// dS[b][l][i][j] = a (g - sum_j a g) for the row (b, i): a, g read in their natural [j][l] order (blockDim is a
// multiple of k, so a thread always meets the same sense l = threadIdx.x % k), per-sense sums in shared memory,
// then the k output rows go out through a [k][T+1] shared tile. shared: k*(T+1) + blockDim floats.
__global__ void alphaBackRowKernel(float* dS, const float* alpha, const float* dalpha, int n, int k, int T) {
  BP_DYNAMIC_SHARED(float, sh);
  float* out = sh;                       // [k][T+1]
  float* part = sh + (long)k * (T + 1);  // [blockDim]
  const int b = blockIdx.x / T, i = blockIdx.x % T;
  const long row = ((long)b * T + i) * T * k;
  const float* A = alpha + row;
  const float* D = dalpha + row;
  const int limit = (i + 1) * k;  // elements j <= i
  float acc = 0.0f;
  for (int f = threadIdx.x; f < limit; f += blockDim.x) acc += A[f] * D[f];
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int l = threadIdx.x; l < k; l += blockDim.x) {
    float dot = 0.0f;
    for (int t = l; t < (int)blockDim.x; t += k) dot += part[t];
    part[l] = dot;  // thread l reads only the slots t = l (mod k), so no other thread reads part[l]
  }
  __syncthreads();
  for (int f = threadIdx.x; f < T * k; f += blockDim.x) {
    const int j = f / k, l = f % k;
    out[l * (T + 1) + j] = j <= i ? A[f] * (D[f] - part[l]) : 0.0f;
  }
  __syncthreads();
  for (int l = 0; l < k; l++) {
    float* o = dS + (((long)b * k + l) * T + i) * T;
    for (int j = threadIdx.x; j < T; j += blockDim.x) o[j] = out[l * (T + 1) + j];
  }
}

__global__ void alphaTransposeKernel(float* out, const float* alpha, int k, int T) {
  long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;  // over (i, j, l)
  long total = (long)T * T * k;
  if (idx >= total) return;
  int l = idx % k;
  long ij = idx / k;
  out[(long)l * T * T + ij] = alpha[idx];
}

void alphaChunk(const Blas& b, float* alpha, float* lse, const float* qk, int b0, int n, CtxShape s, float* scores,
                const float** ptrs, const AlphaEdit* edit, half16* alpha16) {
  const int T = s.T, d = s.d, k = s.k, hs = d / k, cnt = n * k;
  const long TT = (long)T * T;
  const float scale = 1.0f / sqrtf((float)hs);
  const float* q = qk + (long)b0 * T * 2 * d;
  fillPointers(ptrs, q, (long)T * 2 * d, hs, k, cnt, b.stream);
  fillPointers(ptrs + cnt, q + d, (long)T * 2 * d, hs, k, cnt, b.stream);
  fillPointers(ptrs + 2 * cnt, scores, TT, 0, 1, cnt, b.stream);
  gemmBatched(b, false, true, T, T, hs, scale, ptrs, 2 * d, ptrs + cnt, 2 * d, 0.0f, (float* const*)(ptrs + 2 * cnt), T,
              cnt);
  AlphaEdit e = edit ? *edit : AlphaEdit{};
  const uint8_t* mask = edit && edit->keyMask && edit->sense >= 0 ? edit->keyMask + (long)b0 * T : nullptr;
  const size_t tileBytes = sizeof(float) * T * (k + 1);
  if (s.coalesced && k <= 32 && tileBytes <= 48 * 1024)
    BP_LAUNCH(alphaSoftmaxRowKernel, (unsigned)n * T, 32 * k, tileBytes, b.stream)
    (alpha, lse + (long)b0 * k * T, scores, n, k, T, e, mask, alpha16);
  else
    BP_LAUNCH(alphaSoftmaxKernel, blocksFor((long)cnt * T, 8), 256, 0, b.stream)
    (alpha, lse + (long)b0 * k * T, scores, n, k, T, e, mask, alpha16);
  BP_LAUNCHED();
}

void alphaChunkBackward(const Blas& b, float* dqk, const float* dalpha, const float* qk, const float* alpha, int b0,
                        int n, CtxShape s, float* dS, const float** ptrs) {
  const int T = s.T, d = s.d, k = s.k, hs = d / k, cnt = n * k;
  const long TT = (long)T * T;
  const float scale = 1.0f / sqrtf((float)hs);
  const size_t backBytes = sizeof(float) * ((size_t)k * (T + 1) + 32 * k);
  if (s.coalesced && k <= 32 && backBytes <= 48 * 1024)
    BP_LAUNCH(alphaBackRowKernel, (unsigned)n * T, 32 * k, backBytes, b.stream)(dS, alpha, dalpha, n, k, T);
  else
    BP_LAUNCH(alphaBackKernel, blocksFor((long)cnt * T, 8), 256, 0, b.stream)(dS, alpha, dalpha, n, k, T);
  BP_LAUNCHED();
  const float* q = qk + (long)b0 * T * 2 * d;
  float* dq = dqk + (long)b0 * T * 2 * d;
  fillPointers(ptrs, q, (long)T * 2 * d, hs, k, cnt, b.stream);
  fillPointers(ptrs + cnt, q + d, (long)T * 2 * d, hs, k, cnt, b.stream);
  fillPointers(ptrs + 2 * cnt, dS, TT, 0, 1, cnt, b.stream);
  fillPointers(ptrs + 3 * cnt, dq, (long)T * 2 * d, hs, k, cnt, b.stream);
  fillPointers(ptrs + 4 * cnt, dq + d, (long)T * 2 * d, hs, k, cnt, b.stream);
  // dQ = scale dS K ; dK = scale dS^T Q
  gemmBatched(b, false, false, T, hs, T, scale, ptrs + 2 * cnt, T, ptrs + cnt, 2 * d, 0.0f,
              (float* const*)(ptrs + 3 * cnt), 2 * d, cnt);
  gemmBatched(b, true, false, T, hs, T, scale, ptrs + 2 * cnt, T, ptrs, 2 * d, 0.0f, (float* const*)(ptrs + 4 * cnt),
              2 * d, cnt);
}

void alphaToHeadMajor(float* out, const float* alpha, CtxShape s, cudaStream_t st) {
  long total = (long)s.T * s.T * s.k;
  BP_LAUNCH(alphaTransposeKernel, blocksFor(total, 256), 256, 0, st)(out, alpha, s.k, s.T);
  BP_LAUNCHED();
}

}  // namespace bp::BP_CUDA_NS
