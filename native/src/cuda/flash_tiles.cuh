// The building blocks of the fused (flash-style) kernels: 64-row tiles of a bf16 matrix in shared memory, filled
// with cp.async, and the warp's tensor-core products against them (mma.cuh). Used by flash_attention.cu and
// backpack_flash.cu; internal to each (anonymous namespace).
#pragma once

#include "layers.cuh"
#include "mma.cuh"

namespace bp::BP_CUDA_NS {
namespace {

using namespace mma;

constexpr int kRows = 64;  // rows of a block (queries or keys), 16 per warp
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x on the special-function unit with denormal results flushed to zero: one instruction, where exp2f's
// denormal-safe form takes four. Softmax terms below 2^-126 are nothing beside the row maximum's 1.
__device__ __forceinline__ float exp2Ftz(float x) {
#if defined(BP_CUDA_EMULATOR) && BP_CUDA_EMULATOR
  const float y = exp2f(x);
  return y < 1.17549435e-38f ? 0.0f : y;
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#endif
}

// A shared tile of 64 rows, row-major, padded by 8 bf16 so the fragment loads of the 8 row groups fall in
// different banks.
template <int HS>
struct RowTile {
  half16 v[kRows][HS + 8];
};

// Issues the copies of rows [r0, r0+64) into a row tile (cp.async); rows at or past T are zero-filled.
// Every thread makes the same number of copies (HS is a multiple of 16), so the trip count is fixed, where a loop
// from threadIdx.x made the compiler build remainder paths. Not unrolled: unrolled, the copies' addresses stay
// live across the products and cost the forward kernel 23 registers (151 against 128 at head size 64: 3 CTAs per
// SM instead of 4); one loop over both of a block's matrices cost registers too.
template <int HS>
__device__ void copyRows(RowTile<HS>& dst, const half16* src, long ld, int r0, int T) {
  constexpr int V = HS / 8;  // 16-byte vectors per row
  static_assert(kRows * V % kThreads == 0, "a tile's vectors must spread evenly over the CTA's threads");
#pragma unroll 1
  for (int k = 0; k < kRows * V / kThreads; k++) {
    const unsigned f = threadIdx.x + k * kThreads, r = f / V, c = (f % V) * 8;
    const int row = r0 + (int)r;
    const bool in = row < T;
    copyAsync16(&dst.v[r][c], src + (long)(in ? row : 0) * ld + c, in ? 16 : 0);
  }
}

// d += a * M for a 16-row k-step k0.. and 8 columns n0.. of a block matrix M (keys or queries x head columns),
// fragments straight from its rows through ldmatrix.trans
template <int HS>
__device__ __forceinline__ void mmaMatrix(float (&d)[4], const uint32_t (&a)[4], const RowTile<HS>& m, int k0, int n0,
                                          int lane) {
  uint32_t b0, b1;
  loadBTrans(b0, b1, &m.v[k0 + (lane & 15)][n0]);
  mma16816(d, a, b0, b1);
}

// x = A B^T over the 64 rows of a row tile (8 C tiles of 16 x 8): A's fragments span KS k-steps of 16; B's come
// from the tile's rows by ldmatrix.x2, one per product (.x4, two k-steps per load, took the forward kernel from
// 128 registers to 138 and made the dK/dV kernel spill).
template <int KS, int HS>
__device__ __forceinline__ void blockProduct(float (&x)[8][4], const uint32_t (&a)[KS][4], const RowTile<HS>& tile,
                                             int lane) {
#pragma unroll
  for (int n = 0; n < 8; n++) {
    x[n][0] = x[n][1] = x[n][2] = x[n][3] = 0.0f;
    const half16* row = tile.v[n * 8 + (lane & 7)];
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
      uint32_t b0, b1;
      loadMatrices2(b0, b1, row + ks * 16 + ((lane >> 3) & 1) * 8);
      mma16816(x[n], a[ks], b0, b1);
    }
  }
}

}  // namespace
}  // namespace bp::BP_CUDA_NS
