// Fused causal attention for the mixed-precision mode, flash style: scores, softmax, dropout and the value
// product of a block of queries stay in registers (bf16 tensor cores, fp32 accumulation, online softmax), so no
// T x T tensor is ever written, and causally empty key blocks are skipped. Same contract as the batched path of
// attention.cu: lse [B][H][T] (natural log) is the only saved statistic, dropout masks are the CPU backend's
// (keep16 of index (b*H + h)*T*T + i*T + j), probabilities are rounded to bf16 for the value product.
//
// Backward pass in two kernels so every output has one writer (deterministic, no atomics): per key block dK and
// dV (looping over the query blocks that see it; recomputes the probabilities from lse), then per query block dQ
// (looping over its key blocks) from the dS tiles the first kernel stored, in bf16 and in the order of the second
// kernel's mma fragments. D_i = dO_i . O_i (= sum_j P_ij dP_ij, dropout included) comes first.
// With dropout, the forward pass also writes the keep mask as bits (one 64-bit word per query row and key
// block, [B*H][T][key blocks]), so the backward kernels test a bit instead of hashing each element again.
//
// A CTA is 4 warps over a block of 64 rows, 16 per warp; the head size is a template parameter (multiple of 16).
// The row tiles and their products are flash_tiles.cuh's, shared with the fused Backpack contextualization.
//
// The blocks a kernel walks (keys and values, or queries and dO) live in shared memory as row tiles, double
// buffered and filled with cp.async one block ahead; products against a matrix itself (P.V, Pd^T.dO, dS^T.Q,
// dS.K) take their fragments through ldmatrix.trans, so no transposed copy is kept.
#include <type_traits>

#include "flash_tiles.cuh"
#include "layers.cuh"
#include "mma.cuh"

namespace bp::BP_CUDA_NS {
namespace {

using namespace mma;

// The two matrices a kernel walks block by block (forward: K, V; dK/dV: Q, dO; dQ: K, V), rows of 64.
struct BlockSource {
  const half16 *m0, *m1;
  long ld0, ld1;
  int T;
};

// The tile schedule. A kernel calls start(src, first block, fill) once, then per visited block: acquire(src,
// next block or -1, step, fill), the products on rows0/rows1(step), release(). fill(blk, stage) stores the
// kernel's per-block extras (stage-indexed shared arrays) and is called where the block's copies are issued.
// Row tiles of the matrices (kMats: both, or m0 only) in two stages: block blk+1's copies fly while blk is
// computed.
template <int HS, int kMats = 2>
struct BlockTiles {
  RowTile<HS> r[kMats][2];
  __device__ void issue(const BlockSource& s, int blk, int stage) {
    copyRows<HS>(r[0][stage], s.m0, s.ld0, blk * kRows, s.T);
    if constexpr (kMats == 2) copyRows<HS>(r[1][stage], s.m1, s.ld1, blk * kRows, s.T);
    copyAsyncCommit();
  }
  template <class Fill>
  __device__ void start(const BlockSource& s, int blk, Fill fill) {
    issue(s, blk, 0);
    fill(blk, 0);
  }
  template <class Fill>
  __device__ void acquire(const BlockSource& s, int next, int step, Fill fill) {
    if (next >= 0) {  // stage (step+1)&1 was last read in step-1, before its release barrier
      issue(s, next, (step + 1) & 1);
      fill(next, (step + 1) & 1);
      copyAsyncWait<1>();
    } else {
      copyAsyncWait<0>();
    }
    __syncthreads();
  }
  __device__ void release() { __syncthreads(); }
  __device__ const RowTile<HS>& rows0(int step) const { return r[0][step & 1]; }
  __device__ const RowTile<HS>& rows1(int step) const { return r[kMats - 1][step & 1]; }
};

// The dropout element index of query row i's key 0, (bh*T + i)*T, as the 32 bits the hash takes (key j adds j:
// the same bits as the 64-bit index truncated), plus the site's offset (Site::offset: where this part of a
// data-parallel micro-batch starts in it)
__device__ __forceinline__ uint32_t dropRowBase(long bh, int T, int i, uint32_t offset) {
  return offset + (uint32_t)((bh * T + i) * (long)T);
}
__device__ __forceinline__ float keepScale(float p, uint32_t key, uint32_t rowBase, int j) {
  return dkeepAttention(p, key, rowBase + (uint32_t)j);
}
// The word of the keep bits of query row i, key block kb
__device__ __forceinline__ long keepWord(long bh, int T, int i, int kb) {
  return (bh * T + i) * (long)((T + kRows - 1) / kRows) + kb;
}
// The bit of key column c (0..63 within its block) in a keep word. Lane t of a quad holds columns n*8 + 2t + e
// (n < 8, e < 2) of the forward kernel's score tiles; their bits are 16t + 2n + e, so each lane packs its 16
// bits with constant shifts and one shift by 16t places them.
__device__ __forceinline__ int keepBit(int c) { return ((c >> 1) & 3) * 16 + (c >> 3) * 2 + (c & 1); }
// The stored dS tiles: one per causal pair of blocks (qb, kb <= qb), 16 fragments (4 query warps x 4 key steps)
// of 32 lanes x 16 bytes each
__device__ __forceinline__ long dsPair(int qb, int kb) { return (long)qb * (qb + 1) / 2 + kb; }
__device__ __forceinline__ long dsFragment(long bh, int nPairs, int qb, int kb, int qWarp, int kStep) {
  return ((bh * nPairs + dsPair(qb, kb)) * 16 + qWarp * 4 + kStep) * 32;
}
// Where the dK/dV kernel takes the dropout mask from: none, the forward pass's bits, or drawn again
enum class KeepSource { kNoDropout, kKeptBits, kRedrawn };
// Keep-scale from a mask word: dkeep's value (keepVal = 1/(1-p), or 0) for bit `bit`
__device__ __forceinline__ float keepFromBits(uint64_t w, int bit, float keepVal) {
  return (w >> bit) & 1u ? keepVal : 0.0f;
}

// The 16-bit draws (keep16) of attention probabilities index and index + 1: one hash when index is even (kEven:
// known to be), an odd index's pair straddles two
template <bool kEven>
__device__ __forceinline__ void draws16(uint32_t key, uint32_t index, uint32_t& d0, uint32_t& d1) {
  const uint32_t h = dhash32(key, index >> 1);
  if (kEven || !(index & 1u)) {
    d0 = h & 0xffffu;
    d1 = h >> 16;
  } else {
    d0 = h >> 16;
    d1 = dhash32(key, (index + 1) >> 1) & 0xffffu;
  }
}

// x if its draw keeps it (draw >= threshold), else 0; with kBits, `bit` is set in bits when kept. In PTX (one
// compare feeding a select and a predicated or): from C++ the compiler turned each bit into a select, a shift and
// an or, 660 instructions for a block's dropout against 556.
template <bool kBits>
__device__ __forceinline__ float keepOrZero(float x, uint32_t draw, uint32_t threshold, uint32_t& bits, uint32_t bit) {
#if defined(BP_CUDA_EMULATOR) && BP_CUDA_EMULATOR
  const bool keep = draw >= threshold;
  if (kBits && keep) bits |= bit;
  return keep ? x : 0.0f;
#else
  float y;
  if constexpr (kBits)
    asm("{\n .reg .pred k;\n setp.ge.u32 k, %2, %3;\n selp.f32 %0, %4, 0f00000000, k;\n @k or.b32 %1, %1, %5;\n}"
        : "=f"(y), "+r"(bits)
        : "r"(draw), "r"(threshold), "f"(x), "r"(bit));
  else
    asm("{\n .reg .pred k;\n setp.ge.u32 k, %1, %2;\n selp.f32 %0, %3, 0f00000000, k;\n}"
        : "=f"(y)
        : "r"(draw), "r"(threshold), "f"(x));
  return y;
#endif
}

// The forward kernels' dropout on one 64-key block of a lane's rows A and B: s holds the raw scores (masked ones
// -inf); they become the kept numerators 2^(s*sl2 + nA) (nA = -maxA * sl2; their 1/(1-p) is applied to the output
// rows at the end), lA/lB gain the undropped ones, and with keepBits the block's mask is stored (one word per row,
// see keepBit). kEven: both rows' dropout bases are even, so a lane's column pair 2t, 2t+1 shares one hash. kBits:
// keepBits is given (a template flag, so the mask words are packed where the draws are made).
template <bool kEven, bool kBits>
__device__ __forceinline__ void dropoutBlock(float (&s)[8][4], float sl2, float nA, float nB, float& lA, float& lB,
                                             uint32_t threshold, uint32_t key, uint32_t baseA, uint32_t baseB,
                                             int kb, int t, uint64_t* keepBits, long bh, int T, int rowA,
                                             int rowB) {
  uint32_t bitsA = 0, bitsB = 0;  // this lane's 16 keep bits of rows A and B
  const uint32_t j0 = kb * kRows + 2 * t;
#pragma unroll
  for (int n = 0; n < 8; n++) {
    uint32_t dA[2], dB[2];
    draws16<kEven>(key, baseA + j0 + n * 8, dA[0], dA[1]);
    draws16<kEven>(key, baseB + j0 + n * 8, dB[0], dB[1]);
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const float pa = exp2Ftz(fmaf(s[n][e], sl2, nA)), pb = exp2Ftz(fmaf(s[n][2 + e], sl2, nB));
      lA += pa;
      lB += pb;
      s[n][e] = keepOrZero<kBits>(pa, dA[e], threshold, bitsA, 1u << (2 * n + e));
      s[n][2 + e] = keepOrZero<kBits>(pb, dB[e], threshold, bitsB, 1u << (2 * n + e));
    }
  }
  if constexpr (kBits) {  // the quad's four lanes hold disjoint columns of the same two rows
    uint64_t wA = (uint64_t)bitsA << (16 * t), wB = (uint64_t)bitsB << (16 * t);
    wA |= __shfl_xor_sync(0xffffffffu, wA, 1);
    wA |= __shfl_xor_sync(0xffffffffu, wA, 2);
    wB |= __shfl_xor_sync(0xffffffffu, wB, 1);
    wB |= __shfl_xor_sync(0xffffffffu, wB, 2);
    if (t == 0 && rowA < T) keepBits[keepWord(bh, T, rowA, kb)] = wA;
    if (t == 0 && rowB < T) keepBits[keepWord(bh, T, rowB, kb)] = wB;
  }
}

// One warp's 16 query rows in the forward kernel: their Q fragments, output accumulators and online-softmax state.
template <int HS>
struct ForwardRows {
  static constexpr int KS = HS / 16, NT = HS / 8;
  int i0, rowA, rowB;  // first row; this lane's two rows (g, g + 8)
  uint32_t baseA, baseB;  // their dropout element bases
  uint32_t qf[KS][4];
  float o[NT][4];
  float mA, mB, lA, lB;  // running maxima of the raw scores; partial sums of 2^((s - m) * scale * log2 e)

  __device__ __forceinline__ void start(const half16* Q, long ld, int first, long bh, int T, uint32_t dropOffset, int g,
                                        int t) {
    i0 = first;
    rowA = i0 + g;
    rowB = i0 + g + 8;
    baseA = dropRowBase(bh, T, rowA, dropOffset);
    baseB = dropRowBase(bh, T, rowB, dropOffset);
#pragma unroll
    for (int ks = 0; ks < KS; ks++) loadA(qf[ks], Q + (long)i0 * ld, ld, ks, i0, T, g, t);
#pragma unroll
    for (int n = 0; n < NT; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    mA = mB = -INFINITY;
    lA = lB = 0.0f;
  }

  // Scores, online softmax, dropout and the value product against key block kb (K rows k, V rows v). diag: the
  // block may hold keys past a row (or past T), so they are masked. sl2 = scale * log2 e; threshold: keep16's.
  __device__ __forceinline__ void block(const RowTile<HS>& k, const RowTile<HS>& v, int kb, bool diag, int T,
                                        float sl2, float p, uint32_t threshold, uint32_t key, uint64_t* keepBits,
                                        long bh, int g, int t, int lane) {
    float s[8][4];
    blockProduct<KS>(s, qf, k, lane);
    float mxA = mA, mxB = mB;
    if (diag) {
#pragma unroll
      for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int j = kb * kRows + n * 8 + 2 * t + e;
          if (!(j <= rowA && j < T)) s[n][e] = -INFINITY;
          if (!(j <= rowB && j < T)) s[n][2 + e] = -INFINITY;
        }
    }
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        mxA = fmaxf(mxA, s[n][e]);
        mxB = fmaxf(mxB, s[n][2 + e]);
      }
    // every row has key 0 <= its index and block 0 comes first, so the maxima are finite from then on (the scale
    // is positive, so the raw scores' maximum is the scaled scores' too)
    mxA = quadMax(mxA);
    mxB = quadMax(mxB);
    const float cA = exp2Ftz((mA - mxA) * sl2), cB = exp2Ftz((mB - mxB) * sl2);
    mA = mxA;
    mB = mxB;
    lA *= cA;
    lB *= cB;
#pragma unroll
    for (int n = 0; n < NT; n++) {
      o[n][0] *= cA;
      o[n][1] *= cA;
      o[n][2] *= cB;
      o[n][3] *= cB;
    }
    const float nA = -mA * sl2, nB = -mB * sl2;
    // the softmax denominator takes the undropped probabilities
    if (p > 0.0f) {
      const bool even = ((baseA | baseB) & 1u) == 0;
      auto drop = [&](auto kEven, auto kBits) {
        dropoutBlock<decltype(kEven)::value, decltype(kBits)::value>(s, sl2, nA, nB, lA, lB, threshold, key, baseA,
                                                                     baseB, kb, t, keepBits, bh, T, rowA, rowB);
      };
      using Yes = std::true_type;
      using No = std::false_type;
      if (keepBits)
        even ? drop(Yes{}, Yes{}) : drop(No{}, Yes{});
      else
        even ? drop(Yes{}, No{}) : drop(No{}, No{});
    } else {
#pragma unroll
      for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          s[n][e] = exp2Ftz(fmaf(s[n][e], sl2, nA));
          s[n][2 + e] = exp2Ftz(fmaf(s[n][2 + e], sl2, nB));
          lA += s[n][e];
          lB += s[n][2 + e];
        }
    }
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
      uint32_t pf[4];
      accumToA(pf, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int n = 0; n < NT; n++) mmaMatrix(o[n], pf, v, kk * 16, n * 8, lane);
    }
  }

  // out (fp32) and out16 (bf16) rows, and lse; keepVal: dropout's 1/(1-p) (or 1), which the kept numerators lack
  __device__ __forceinline__ void finish(float* out, half16* out16, float* lse, long bh, int b, int h, int T, int C,
                                         float sl2, float keepVal, int t) {
    lA = quadSum(lA);
    lB = quadSum(lB);
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int row = half ? rowB : rowA;
      if (row >= T) continue;
      const float l = half ? lB : lA, inv = keepVal / l;
      const long at = ((long)b * T + row) * C + h * HS;
#pragma unroll
      for (int n = 0; n < NT; n++) {
        const int c = n * 8 + 2 * t;
        const float x0 = o[n][2 * half] * inv, x1 = o[n][2 * half + 1] * inv;
        *reinterpret_cast<float2*>(out + at + c) = make_float2(x0, x1);
        *reinterpret_cast<half16x2*>(out16 + at + c) = round16x2(x0, x1);
      }
      if (t == 0) lse[bh * T + row] = ((half ? mB : mA) * sl2 + log2f(l)) * kLn2;
    }
  }
};

// grid (query blocks of 64 * Groups rows, B*H). Writes out (fp32) and out16 (bf16) rows of this head, and lse.
// Groups: 16-row groups per warp; 2 (BACKPACK_CUDA_FLASH_FWD_ROWS=128) lets each key tile serve twice the rows and
// gives a warp two independent groups in flight. MinBlocks: CTAs per SM the compiler must fit (4, from
// BACKPACK_CUDA_FLASH_FWD_BLOCKS=4, caps registers at 128; 1 passes no minimum).
template <int HS, int Groups, int MinBlocks>
__global__ void __launch_bounds__(kThreads, MinBlocks > 1 ? MinBlocks : 0)
    flashForwardKernel(float* out, half16* out16, float* lse, const half16* qkv, int T, int H, int C, float scale,
                       float p, uint32_t key, uint32_t dropOffset, uint64_t* keepBits) {
  __shared__ __align__(16) BlockTiles<HS> tiles;  // key and value rows
  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest rows first
  const int bh = blockIdx.y, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const long ld = 3L * C;
  const half16* Q = qkv + (long)b * T * ld + h * HS;
  const half16* K = Q + C;
  const half16* V = Q + 2 * C;
  ForwardRows<HS> rows[Groups];
#pragma unroll
  for (int r = 0; r < Groups; r++) rows[r].start(Q, ld, (qb * Groups + r) * kRows + warp * 16, bh, T, dropOffset, g, t);
  const float sl2 = scale * kLog2e;
  const float keepVal = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
  const uint32_t threshold = p > 0.0f ? dkeepThreshold16(p) : 0u;
  const BlockSource src{K, V, ld, ld, T};
  auto noExtras = [](int, int) {};
  // the key blocks up to the CTA's last row (and T)
  const int last = min(qb * Groups + Groups - 1, (T - 1) / kRows);
  tiles.start(src, 0, noExtras);
  for (int kb = 0; kb <= last; kb++) {
    tiles.acquire(src, kb < last ? kb + 1 : -1, kb, noExtras);
#pragma unroll
    for (int r = 0; r < Groups; r++) {
      // (warp-uniform) a block wholly past the group's rows adds nothing; one reaching past its first row is masked
      if (kb * kRows > rows[r].i0 + 15) continue;
      const bool diag = kb * kRows + kRows - 1 > rows[r].i0;
      rows[r].block(tiles.rows0(kb), tiles.rows1(kb), kb, diag, T, sl2, p, threshold, key, keepBits, bh, g, t, lane);
    }
    tiles.release();
  }
#pragma unroll
  for (int r = 0; r < Groups; r++) rows[r].finish(out, out16, lse, bh, b, h, T, C, sl2, keepVal, t);
}

// One warp per (row, head): D = dO . O over the head's columns, and dO rounded to bf16 for the kernels below.
// Column pairs per lane (hs is even and a row's pairs are 8-byte aligned: C % 8 == 0): at head size 64 one load of
// each input per lane, where single columns took two.
__global__ void flashPrepKernel(float* D, half16* dout16, const float* dout, const float* out, int B, int T, int H,
                                int hs, int C) {
  const long w = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (w >= (long)B * T * H) return;
  const long row = w / H;  // b*T + i
  const int h = (int)(w % H), b = (int)(row / T), i = (int)(row % T);
  const long at = row * C + (long)h * hs;
  float acc = 0.0f;
  for (int c = 2 * lane; c < hs; c += 64) {
    const float2 g = *reinterpret_cast<const float2*>(dout + at + c);
    const float2 o = *reinterpret_cast<const float2*>(out + at + c);
    acc += g.x * o.x + g.y * o.y;
    *reinterpret_cast<half16x2*>(dout16 + at + c) = round16x2(g.x, g.y);
  }
  acc = warpSum(acc);
  if (lane == 0) D[((long)b * H + h) * T + i] = acc;
}

// grid (key blocks, B*H): dK, dV of the block's keys (fp32, overwritten) over the query blocks qb >= kb.
// Per warp, with 16 key rows: S^T = K Q^T and dPd^T = V dO^T, then dV += Pd^T dO and dK += dS^T Q; dS^T goes
// to global memory (bf16 fragments) for the dQ kernel.
// Two adjacent gradient columns, as fp32 or (the mixed mode's GEMM operand straight away) bf16
__device__ __forceinline__ void storePair(float* p, float x, float y) {
  *reinterpret_cast<float2*>(p) = make_float2(x, y);
}
__device__ __forceinline__ void storePair(half16* p, float x, float y) {
  *reinterpret_cast<half16x2*>(p) = round16x2(x, y);
}

template <int HS, typename Out>
__global__ void __launch_bounds__(kThreads) flashBackwardKVKernel(Out* dqkv, const half16* qkv, const half16* dout16,
                                                                  const float* lse, const float* D, uint4* dS,
                                                                  int T, int H, int C, float scale, float p,
                                                                  uint32_t key, uint32_t dropOffset,
                                                                  const uint64_t* keepBits) {
  constexpr int KS = HS / 16, NT = HS / 8;
  __shared__ __align__(16) BlockTiles<HS> tiles;  // query and dO rows
  // per query block (by stage): lse (log2 units), D, and the keep bits against this key block
  __shared__ float lseS[2][kRows], DS[2][kRows];
  __shared__ uint64_t bitsS[2][kRows];
  const int nQ = (T + kRows - 1) / kRows, nPairs = nQ * (nQ + 1) / 2;
  const int kb = blockIdx.x;  // key block 0 sees every query block: the longest first
  const int bh = blockIdx.y, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const long ld = 3L * C;
  const half16* Q = qkv + (long)b * T * ld + h * HS;
  const half16* K = Q + C;
  const half16* V = Q + 2 * C;
  const half16* dO = dout16 + (long)b * T * C + h * HS;
  const int j0 = kb * kRows + warp * 16, keyA = j0 + g, keyB = j0 + g + 8;
  uint32_t kf[KS][4], vf[KS][4];
#pragma unroll
  for (int ks = 0; ks < KS; ks++) {
    loadA(kf[ks], K + (long)j0 * ld, ld, ks, j0, T, g, t);
    loadA(vf[ks], V + (long)j0 * ld, ld, ks, j0, T, g, t);
  }
  float dk[NT][4], dv[NT][4];
#pragma unroll
  for (int n = 0; n < NT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.0f;
  const float sl2 = scale * kLog2e;
  const float keepVal = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
  const bool useBits = keepBits && p > 0.0f;
  const int bitA = keepBit(keyA - kb * kRows), bitB = keepBit(keyB - kb * kRows);  // this lane's keys' bits
  const BlockSource src{Q, dO, ld, C, T};
  auto extras = [&](int blk, int stage) {
    for (int f = threadIdx.x; f < kRows; f += kThreads) {
      const int i = blk * kRows + f;
      lseS[stage][f] = i < T ? lse[(long)bh * T + i] * kLog2e : 0.0f;
      DS[stage][f] = i < T ? D[(long)bh * T + i] : 0.0f;
      bitsS[stage][f] = i < T && keepBits ? keepBits[keepWord(bh, T, i, kb)] : 0u;
    }
  };
  tiles.start(src, kb, extras);
  for (int qb = kb; qb < nQ; qb++) {
    const int step = qb - kb, stage = step & 1;
    tiles.acquire(src, qb + 1 < nQ ? qb + 1 : -1, step, extras);
    float st[8][4], dp[8][4];  // rows: this warp's keys; columns: the block's queries
    blockProduct<KS>(st, kf, tiles.rows0(step), lane);
    blockProduct<KS>(dp, vf, tiles.rows1(step), lane);
    // kEdge: the causal diagonal or a block with rows past T, where elements need their mask. kMask: where the
    // dropout mask comes from (compile-time, so the per-element code has no branches).
    auto elements = [&](auto edge, auto mask) {
      constexpr bool kEdge = decltype(edge)::value;
      constexpr KeepSource kMask = decltype(mask)::value;
#pragma unroll
      for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int jk = e < 2 ? keyA : keyB, qi = n * 8 + 2 * t + (e & 1), i = qb * kRows + qi;
          const bool live = !kEdge || (jk <= i && i < T && jk < T);
          const float pr = live ? exp2Ftz(fmaf(st[n][e], sl2, -lseS[stage][qi])) : 0.0f;
          float keep = live ? 1.0f : 0.0f;
          if constexpr (kMask == KeepSource::kKeptBits)
            keep = live ? keepFromBits(bitsS[stage][qi], e < 2 ? bitA : bitB, keepVal) : 0.0f;
          if constexpr (kMask == KeepSource::kRedrawn)
            keep = live ? keepScale(p, key, dropRowBase(bh, T, i, dropOffset), jk) : 0.0f;
          st[n][e] = pr * keep;                               // Pd^T
          dp[n][e] = pr * (dp[n][e] * keep - DS[stage][qi]);  // dS^T
        }
    };
    auto withMask = [&](auto edge) {
      if (!(p > 0.0f))
        elements(edge, std::integral_constant<KeepSource, KeepSource::kNoDropout>{});
      else if (useBits)
        elements(edge, std::integral_constant<KeepSource, KeepSource::kKeptBits>{});
      else
        elements(edge, std::integral_constant<KeepSource, KeepSource::kRedrawn>{});
    };
    if (qb == kb || (qb + 1) * kRows > T)
      withMask(std::true_type{});
    else
      withMask(std::false_type{});
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
      uint32_t pa[4], sa[4];
      accumToA(pa, st[2 * kk], st[2 * kk + 1]);
      accumToA(sa, dp[2 * kk], dp[2 * kk + 1]);
      // dS^T of this warp's 16 keys x queries 16kk..: the dQ kernel's query warp kk, key step `warp`
      dS[dsFragment(bh, nPairs, qb, kb, kk, warp) + lane] = make_uint4(sa[0], sa[1], sa[2], sa[3]);
#pragma unroll
      for (int n = 0; n < NT; n++) {
        mmaMatrix(dv[n], pa, tiles.rows1(step), kk * 16, n * 8, lane);
        mmaMatrix(dk[n], sa, tiles.rows0(step), kk * 16, n * 8, lane);
      }
    }
    tiles.release();
  }
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = half ? keyB : keyA;
    if (row >= T) continue;
    Out* dK = dqkv + ((long)b * T + row) * ld + C + h * HS;
    Out* dV = dK + C;
#pragma unroll
    for (int n = 0; n < NT; n++) {
      const int c = n * 8 + 2 * t;
      storePair(dK + c, dk[n][2 * half] * scale, dk[n][2 * half + 1] * scale);
      storePair(dV + c, dv[n][2 * half], dv[n][2 * half + 1]);
    }
  }
}

// grid (query blocks, B*H): dQ of the block's queries (fp32, overwritten) = scale * sum over key blocks kb <= qb
// of dS K, with dS from the tiles the dK/dV kernel stored (transposed into A fragments by movmatrix).
template <int HS, typename Out>
__global__ void __launch_bounds__(kThreads) flashBackwardQKernel(Out* dqkv, const half16* qkv, const uint4* dS, int T,
                                                                 int H, int C, float scale) {
  constexpr int NT = HS / 8;
  __shared__ __align__(16) BlockTiles<HS, 1> tiles;  // key rows
  const int nQ = (T + kRows - 1) / kRows, nPairs = nQ * (nQ + 1) / 2;
  const int qb = gridDim.x - 1 - blockIdx.x;
  const int bh = blockIdx.y, b = bh / H, h = bh % H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const long ld = 3L * C;
  const half16* K = qkv + (long)b * T * ld + C + h * HS;
  float dq[NT][4];
#pragma unroll
  for (int n = 0; n < NT; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
  const BlockSource src{K, K, ld, ld, T};
  auto noExtras = [](int, int) {};
  tiles.start(src, 0, noExtras);
  for (int kb = 0; kb <= qb; kb++) {
    uint4 f[4];  // this warp's dS^T fragments of the 4 key steps, loaded before the wait for the key tile
#pragma unroll
    for (int ks = 0; ks < 4; ks++) f[ks] = dS[dsFragment(bh, nPairs, qb, kb, warp, ks) + lane];
    tiles.acquire(src, kb < qb ? kb + 1 : -1, kb, noExtras);
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      // the 8x8 blocks of dS^T {keys 0-7, 8-15} x {queries 0-7, 8-15}, transposed: dS's A fragment
      const uint32_t a[4] = {transpose8x8(f[ks].x), transpose8x8(f[ks].z), transpose8x8(f[ks].y),
                             transpose8x8(f[ks].w)};
#pragma unroll
      for (int n = 0; n < NT; n++) mmaMatrix(dq[n], a, tiles.rows0(kb), ks * 16, n * 8, lane);
    }
    tiles.release();
  }
  const int rowA = qb * kRows + warp * 16 + g, rowB = rowA + 8;
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int row = half ? rowB : rowA;
    if (row >= T) continue;
    Out* dQ = dqkv + ((long)b * T + row) * ld + h * HS;
#pragma unroll
    for (int n = 0; n < NT; n++) {
      const int c = n * 8 + 2 * t;
      storePair(dQ + c, dq[n][2 * half] * scale, dq[n][2 * half + 1] * scale);
    }
  }
}

// Experiments the GPU check times against the default (not yet measured): BACKPACK_CUDA_FLASH_FWD_BLOCKS=4, the
// forward kernel built for 4 resident CTAs per SM instead of 3; BACKPACK_CUDA_FLASH_FWD_ROWS=128, 128 query rows
// per CTA (two 16-row groups per warp) instead of 64.
template <int HS>
void launchForward(float* out, half16* out16, float* lse, const half16* qkv16, AttnShape s, Site drop, uint64_t* bits,
                   cudaStream_t st) {
  static const bool fourBlocks = envIs("BACKPACK_CUDA_FLASH_FWD_BLOCKS", "4");
  static const bool twoGroups = envIs("BACKPACK_CUDA_FLASH_FWD_ROWS", "128");
  const int rowsPerCta = twoGroups ? 2 * kRows : kRows;
  const dim3 grid((s.T + rowsPerCta - 1) / rowsPerCta, s.B * s.H);
  auto kernel = twoGroups    ? flashForwardKernel<HS, 2, 1>
                : fourBlocks ? flashForwardKernel<HS, 1, 4>
                             : flashForwardKernel<HS, 1, 1>;
  BP_LAUNCH(kernel, grid, kThreads, 0, st)
  (out, out16, lse, qkv16, s.T, s.H, s.C, s.scale, drop.p, drop.key, drop.offset, bits);
  BP_LAUNCHED();
}
template <int HS, typename Out>
void launchBackward(Out* dqkv, const half16* qkv16, const half16* dout16, const float* lse, const float* D, uint4* dS,
                    AttnShape s, Site drop, const uint64_t* bits, cudaStream_t st) {
  const dim3 grid((s.T + kRows - 1) / kRows, s.B * s.H);
  auto keysAndValues = flashBackwardKVKernel<HS, Out>;
  BP_LAUNCH(keysAndValues, grid, kThreads, 0, st)
  (dqkv, qkv16, dout16, lse, D, dS, s.T, s.H, s.C, s.scale, drop.p, drop.key, drop.offset, bits);
  BP_LAUNCHED();
  auto queries = flashBackwardQKernel<HS, Out>;
  BP_LAUNCH(queries, grid, kThreads, 0, st)(dqkv, qkv16, dS, s.T, s.H, s.C, s.scale);
  BP_LAUNCHED();
}
template <int HS>
void launchBackward(float* dqkv, half16* dqkv16, const half16* qkv16, const half16* dout16, const float* lse,
                    const float* D, uint4* dS, AttnShape s, Site drop, const uint64_t* bits, cudaStream_t st) {
  if (dqkv16)
    launchBackward<HS, half16>(dqkv16, qkv16, dout16, lse, D, dS, s, drop, bits, st);
  else
    launchBackward<HS, float>(dqkv, qkv16, dout16, lse, D, dS, s, drop, bits, st);
}

}  // namespace

bool flashAttentionSupported(const AttnShape& s) {
  const int hs = s.C / s.H;
  // head sizes instantiated below; C % 8 keeps every 8-element row vector 16-byte aligned
  return s.C % s.H == 0 && s.C % 8 == 0 && (hs == 16 || hs == 32 || hs == 48 || hs == 64 || hs == 80);
}

long flashKeepWords(const AttnShape& s) { return (long)s.B * s.H * s.T * ((s.T + kRows - 1) / kRows); }

// The backward scratch: D (B*H*T floats, padded to 16 bytes), then the stored dS tiles
static long dsOffsetFloats(const AttnShape& s) { return ((long)s.B * s.H * s.T + 3) / 4 * 4; }
long flashBackwardScratchFloats(const AttnShape& s) {
  const long nQ = (s.T + kRows - 1) / kRows;
  return dsOffsetFloats(s) + (long)s.B * s.H * (nQ * (nQ + 1) / 2) * kRows * kRows / 2;  // bf16 pairs
}

void flashAttentionForward(float* out, half16* out16, float* lse, const half16* qkv16, AttnShape s, Site drop,
                           uint64_t* keepBits, cudaStream_t st) {
  switch (s.C / s.H) {
    case 16: launchForward<16>(out, out16, lse, qkv16, s, drop, keepBits, st); break;
    case 32: launchForward<32>(out, out16, lse, qkv16, s, drop, keepBits, st); break;
    case 48: launchForward<48>(out, out16, lse, qkv16, s, drop, keepBits, st); break;
    case 64: launchForward<64>(out, out16, lse, qkv16, s, drop, keepBits, st); break;
    case 80: launchForward<80>(out, out16, lse, qkv16, s, drop, keepBits, st); break;
    default: throw Error("flash attention: head size " + std::to_string(s.C / s.H) + " not instantiated");
  }
}

void flashAttentionBackward(float* dqkv, half16* dqkv16, const float* dout, const float* out, const half16* qkv16,
                            const float* lse, AttnShape s, Site drop, const uint64_t* keepBits, float* scratch,
                            half16* dout16, cudaStream_t st) {
  float* D = scratch;
  uint4* dS = reinterpret_cast<uint4*>(scratch + dsOffsetFloats(s));
  const int hs = s.C / s.H;
  const long warps = (long)s.B * s.T * s.H;
  BP_LAUNCH(flashPrepKernel, blocksFor(warps, 8), 256, 0, st)(D, dout16, dout, out, s.B, s.T, s.H, hs, s.C);
  BP_LAUNCHED();
  switch (hs) {
    case 16: launchBackward<16>(dqkv, dqkv16, qkv16, dout16, lse, D, dS, s, drop, keepBits, st); break;
    case 32: launchBackward<32>(dqkv, dqkv16, qkv16, dout16, lse, D, dS, s, drop, keepBits, st); break;
    case 48: launchBackward<48>(dqkv, dqkv16, qkv16, dout16, lse, D, dS, s, drop, keepBits, st); break;
    case 64: launchBackward<64>(dqkv, dqkv16, qkv16, dout16, lse, D, dS, s, drop, keepBits, st); break;
    case 80: launchBackward<80>(dqkv, dqkv16, qkv16, dout16, lse, D, dS, s, drop, keepBits, st); break;
    default: throw Error("flash attention: head size " + std::to_string(hs) + " not instantiated");
  }
}

}  // namespace bp::BP_CUDA_NS
