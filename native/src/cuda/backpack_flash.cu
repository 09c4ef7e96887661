// The Backpack contextualization fused flash style (mixed precision, BACKPACK_CUDA_FUSED_CONTEXT=1):
//   o_i = sum_l sum_{j<=i} alpha_l[i,j] C(x_j)_l,  alpha_l = causal softmax_j(q_l,i . k_l,j * scale),
// an attention with k heads whose values are the sense vectors (width d each), summed over the heads. The
// weights never leave registers: no (k, T, T) tensor is written, and causally empty key blocks are skipped
// (the GEMM path of contextualization.cu + backpack_output.cu multiplies the zeros above the diagonal too).
//
// Two kernels, so the mixing needs no online rescaling of an accumulator shared by k softmaxes:
//   1. senseLseKernel: lse[b][l][i] of every sense's rows (scores only, an online max and sum);
//   2. senseMixKernel: per block of 64 query rows and DV output columns, for each sense and each key block up to
//      the diagonal: the scores again, p = exp(s - lse) (already normalised, rounded to bf16 as the A fragment),
//      acc += p . C_l[keys][columns]. The scores are recomputed once per column block (d / DV times); at Small
//      (head size 48, DV = 64) that is 0.75 score products per value product.
// Head sizes d/k that are multiples of 8 up to 80 are supported (Small 48, Mini 40, Micro 24): tiles and Q
// fragments are zero-padded to the next multiple of 16. The alpha edit of the interventions (one sense's weights
// scaled at masked keys, after normalisation) is applied to p as the GEMM path applies it to alpha.
// Checked on the CPU emulator against a double-precision reference (test/emulated/backpack_flash_check.cpp).
#include "flash_tiles.cuh"
#include "layers.cuh"

namespace bp::BP_CUDA_NS {
namespace {

constexpr int kValueColumns = 64;  // DV: output columns per CTA of the mixing kernel

// Copies rows [r0, r0+64) of a matrix `width` columns wide (a multiple of 8) into a tile of W >= width columns;
// columns past width and rows past T are zero-filled, so the padded k-steps of a product add nothing.
template <int W>
__device__ void copyRowsPadded(RowTile<W>& dst, const half16* src, long ld, int r0, int T, int width) {
  constexpr int V = W / 8;
  for (int f = threadIdx.x; f < kRows * V; f += kThreads) {
    const int r = f / V, c = (f % V) * 8;
    const bool in = r0 + r < T && c < width;
    copyAsync16(&dst.v[r][c], src + (in ? (long)(r0 + r) * ld + c : 0), in ? 16 : 0);
  }
}

// A warp's A fragments of 16 query rows i0.. of one sense (width columns, zero past width and past row T)
template <int KS>
__device__ __forceinline__ void loadQ(uint32_t (&qf)[KS][4], const half16* Q, long ld, int i0, int T, int width, int g,
                                      int t) {
  const bool ra = i0 + g < T, rb = i0 + g + 8 < T;
#pragma unroll
  for (int ks = 0; ks < KS; ks++) {
    const int c = ks * 16 + 2 * t;
    const bool lo = c < width, hi = c + 8 < width;  // width % 8 == 0: each 8-column half is all in or all out
    const half16* pa = Q + (long)(i0 + g) * ld + c;
    const half16* pb = Q + (long)(i0 + g + 8) * ld + c;
    qf[ks][0] = ra && lo ? load2(pa) : 0u;
    qf[ks][1] = rb && lo ? load2(pb) : 0u;
    qf[ks][2] = ra && hi ? load2(pa + 8) : 0u;
    qf[ks][3] = rb && hi ? load2(pb + 8) : 0u;
  }
}

// Scores of key block kb in log2 units; keys past a row or past T (only in the diagonal block) are -inf.
__device__ __forceinline__ void scaleAndMask(float (&s)[8][4], float sl2, int kb, bool diag, int rowA, int rowB, int T,
                                             int t) {
#pragma unroll
  for (int n = 0; n < 8; n++)
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int j = kb * kRows + n * 8 + 2 * t + e;
      const bool okA = !diag || (j <= rowA && j < T), okB = !diag || (j <= rowB && j < T);
      s[n][e] = okA ? s[n][e] * sl2 : -INFINITY;
      s[n][2 + e] = okB ? s[n][2 + e] * sl2 : -INFINITY;
    }
}

// grid (query blocks, k senses, B). qk: [B][T][2d] bf16 (queries, then keys; sense l's head at columns l*dk).
template <int W>
__global__ void __launch_bounds__(kThreads)
    senseLseKernel(float* lse, const half16* qk, int T, int d, int k, int dk, float scale) {
  constexpr int KS = W / 16;
  __shared__ __align__(16) RowTile<W> keys[2];
  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest rows first
  const int l = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const long ld = 2L * d;
  const half16* Q = qk + (long)b * T * ld + (long)l * dk;
  const half16* K = Q + d;
  const int i0 = qb * kRows + warp * 16, rowA = i0 + g, rowB = rowA + 8;
  uint32_t qf[KS][4];
  loadQ<KS>(qf, Q, ld, i0, T, dk, g, t);
  const float sl2 = scale * kLog2e;
  float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f;  // running max (log2 units) and partial sums
  copyRowsPadded<W>(keys[0], K, ld, 0, T, dk);
  copyAsyncCommit();
  for (int kb = 0; kb <= qb; kb++) {
    if (kb < qb) {  // the other stage was released at the end of the previous block
      copyRowsPadded<W>(keys[(kb + 1) & 1], K, ld, (kb + 1) * kRows, T, dk);
      copyAsyncCommit();
      copyAsyncWait<1>();
    } else {
      copyAsyncWait<0>();
    }
    __syncthreads();
    float s[8][4];
    blockProduct<KS>(s, qf, keys[kb & 1], lane);
    scaleAndMask(s, sl2, kb, kb == qb, rowA, rowB, T, t);
    float mxA = mA, mxB = mB;
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        mxA = fmaxf(mxA, s[n][e]);
        mxB = fmaxf(mxB, s[n][2 + e]);
      }
    // key 0 is in block 0 and at or before every row, so the row maxima are finite from the first block on
    mxA = quadMax(mxA);
    mxB = quadMax(mxB);
    lA *= exp2Ftz(mA - mxA);
    lB *= exp2Ftz(mB - mxB);
    mA = mxA;
    mB = mxB;
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        lA += exp2Ftz(s[n][e] - mA);
        lB += exp2Ftz(s[n][2 + e] - mB);
      }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  lA = quadSum(lA);
  lB = quadSum(lB);
  float* out = lse + ((long)b * k + l) * T;
  if (t == 0 && rowA < T) out[rowA] = (mA + log2f(lA)) * kLn2;
  if (t == 0 && rowB < T) out[rowB] = (mB + log2f(lB)) * kLn2;
}

// grid (query blocks, d / DV column blocks, B). senses: [B][T][k][d] bf16; lse from senseLseKernel;
// keyMask (the edit's, [B][T]) or null.
template <int W, int DV>
__global__ void __launch_bounds__(kThreads)
    senseMixKernel(float* out, const float* lse, const half16* qk, const half16* senses, int T, int d, int k, int dk,
                   float scale, int editSense, float editFactor, const uint8_t* keyMask) {
  constexpr int KS = W / 16, NT = DV / 8;
  __shared__ __align__(16) RowTile<W> keys[2];
  __shared__ __align__(16) RowTile<DV> values[2];
  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest rows first
  const int c0 = blockIdx.y * DV, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const long ld = 2L * d, ldSenses = (long)k * d;
  const half16* QK = qk + (long)b * T * ld;
  const half16* C = senses + (long)b * T * ldSenses + c0;  // sense l of position j: C + j*ldSenses + l*d
  const uint8_t* mask = keyMask ? keyMask + (long)b * T : nullptr;
  const int i0 = qb * kRows + warp * 16, rowA = i0 + g, rowB = rowA + 8;
  const float sl2 = scale * kLog2e;
  // steps walk (sense l, key block kb) with kb fastest; each step's key and value tiles are copied a step ahead
  const int blocks = qb + 1, steps = k * blocks;
  auto issue = [&](int step) {
    const int l = step / blocks, kb = step % blocks;
    copyRowsPadded<W>(keys[step & 1], QK + d + (long)l * dk, ld, kb * kRows, T, dk);
    copyRows<DV>(values[step & 1], C + (long)l * d, ldSenses, kb * kRows, T);
    copyAsyncCommit();
  };
  float acc[NT][4];
#pragma unroll
  for (int n = 0; n < NT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  uint32_t qf[KS][4];
  float lseA = 0.0f, lseB = 0.0f;  // this sense's row log-sum-exp, log2 units
  issue(0);
  for (int step = 0; step < steps; step++) {
    const int l = step / blocks, kb = step % blocks;
    if (kb == 0) {
      loadQ<KS>(qf, QK + (long)l * dk, ld, i0, T, dk, g, t);
      const float* rowLse = lse + ((long)b * k + l) * T;
      lseA = rowA < T ? rowLse[rowA] * kLog2e : 0.0f;
      lseB = rowB < T ? rowLse[rowB] * kLog2e : 0.0f;
    }
    if (step + 1 < steps) {  // the other stage was released at the end of the previous step
      issue(step + 1);
      copyAsyncWait<1>();
    } else {
      copyAsyncWait<0>();
    }
    __syncthreads();
    float s[8][4];
    blockProduct<KS>(s, qf, keys[step & 1], lane);
    scaleAndMask(s, sl2, kb, kb == qb, rowA, rowB, T, t);
    const bool edited = mask && l == editSense;
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int j = kb * kRows + n * 8 + 2 * t + e;
        const float f = edited && j < T && mask[j] ? editFactor : 1.0f;
        s[n][e] = exp2Ftz(s[n][e] - lseA) * f;
        s[n][2 + e] = exp2Ftz(s[n][2 + e] - lseB) * f;
      }
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
      uint32_t pf[4];
      accumToA(pf, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int n = 0; n < NT; n++) mmaMatrix(acc[n], pf, values[step & 1], kk * 16, n * 8, lane);
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = half ? rowB : rowA;
    if (row >= T) continue;
    float* o = out + ((long)b * T + row) * d + c0;
#pragma unroll
    for (int n = 0; n < NT; n++)
      *reinterpret_cast<float2*>(o + n * 8 + 2 * t) = make_float2(acc[n][2 * half], acc[n][2 * half + 1]);
  }
}

template <int W>
void launchContext(float* out, float* lse, const half16* qk16, const half16* senses16, CtxShape s, float scale,
                   int editSense, float editFactor, const uint8_t* keyMask, cudaStream_t st) {
  const int dk = s.d / s.k, qBlocks = (s.T + kRows - 1) / kRows;
  auto stats = senseLseKernel<W>;
  BP_LAUNCH(stats, dim3(qBlocks, s.k, s.B), kThreads, 0, st)(lse, qk16, s.T, s.d, s.k, dk, scale);
  BP_LAUNCHED();
  auto mix = senseMixKernel<W, kValueColumns>;
  BP_LAUNCH(mix, dim3(qBlocks, s.d / kValueColumns, s.B), kThreads, 0, st)
  (out, lse, qk16, senses16, s.T, s.d, s.k, dk, scale, editSense, editFactor, keyMask);
  BP_LAUNCHED();
}

}  // namespace

bool backpackFlashSupported(const CtxShape& s) {
  if (s.k <= 0 || s.d % s.k != 0 || s.d % kValueColumns != 0) return false;
  const int dk = s.d / s.k;
  return dk % 8 == 0 && dk <= 80;
}

void backpackFlashForward(float* out, float* lse, const half16* qk16, const half16* senses16, CtxShape s,
                          const AlphaEdit* edit, cudaStream_t st) {
  if (!backpackFlashSupported(s))
    throw Error("fused Backpack contextualization: d=" + std::to_string(s.d) + ", k=" + std::to_string(s.k) +
                " not supported (d/k a multiple of 8 up to 80, d a multiple of 64)");
  const float scale = 1.0f / std::sqrt((float)(s.d / s.k));
  const bool edits = edit && edit->keyMask && edit->sense >= 0;
  const int sense = edits ? edit->sense : -1;
  const float factor = edits ? edit->factor : 1.0f;
  const uint8_t* mask = edits ? edit->keyMask : nullptr;
  // the kernels for the head width padded to 16 columns (16 .. 80)
  using Launch = void (*)(float*, float*, const half16*, const half16*, CtxShape, float, int, float, const uint8_t*,
                          cudaStream_t);
  static constexpr Launch byWidth[] = {launchContext<16>, launchContext<32>, launchContext<48>, launchContext<64>,
                                       launchContext<80>};
  byWidth[(s.d / s.k + 15) / 16 - 1](out, lse, qk16, senses16, s, scale, sense, factor, mask, st);
}

}  // namespace bp::BP_CUDA_NS
