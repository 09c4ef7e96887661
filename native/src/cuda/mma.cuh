// Warp-level bf16 tensor-core building blocks (mma.sync m16n8k16, fp32 accumulation) for the hand-written
// fused kernels. Fragment ownership (PTX ISA, "matrix fragments for mma.m16n8k16"), with g = lane / 4 and
// t = lane % 4:
//   A (16 x 16, row-major), 4 registers of 2 bf16: {row g, cols 2t..2t+1}, {row g+8, cols 2t..}, {row g, cols
//     2t+8..}, {row g+8, cols 2t+8..};
//   B (16 x 8, "col": element (k, n) read from an n-major array), 2 registers: {k 2t..2t+1, col g}, {k 2t+8.., g};
//   C/D (16 x 8 fp32), 4 floats: {row g, cols 2t, 2t+1}, {row g+8, cols 2t, 2t+1}.
// So two neighbouring C tiles of a 16 x 16 product are, once rounded to bf16, exactly the A fragment of the next
// product: attention probabilities never leave registers.
#pragma once

#include <cstdint>

#include "half16.cuh"

namespace bp::BP_CUDA_NS::mma {

#if defined(BP_CUDA_EMULATOR) && BP_CUDA_EMULATOR
// mma16816, loadBTrans, transpose8x8 and the cp.async helpers, as warp collectives of the CPU emulator
#include "emulator/mma_emulated.h"
#else
// d += a * b
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." BP_MMA_TYPE16 "." BP_MMA_TYPE16
               ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

// Two floats as one register of bf16 (lo in the low half: the lower column index)
__device__ __forceinline__ uint32_t pack16(float lo, float hi) {
  half16x2 v = round16x2(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
// Two adjacent bf16 (4-byte aligned) as one register
__device__ __forceinline__ uint32_t load2(const half16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// The A fragment of k-step ks of 16 rows starting at `rows` (row stride ld elements); rows at or past `limit`
// read as zero.
__device__ __forceinline__ void loadA(uint32_t (&a)[4], const half16* rows, long ld, int ks, int row0,
                                      int limit, int g, int t) {
  const int c = ks * 16 + 2 * t;
  const bool ra = row0 + g < limit, rb = row0 + g + 8 < limit;
  const half16* pa = rows + (long)g * ld + c;
  const half16* pb = rows + (long)(g + 8) * ld + c;
  a[0] = ra ? load2(pa) : 0u;
  a[1] = rb ? load2(pb) : 0u;
  a[2] = ra ? load2(pa + 8) : 0u;
  a[3] = rb ? load2(pb + 8) : 0u;
}

// C tiles 2kk and 2kk+1 (16 x 16 of a row block) as the A fragment of k-step kk of the next product
__device__ __forceinline__ void accumToA(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack16(lo[0], lo[1]);
  a[1] = pack16(lo[2], lo[3]);
  a[2] = pack16(hi[0], hi[1]);
  a[3] = pack16(hi[2], hi[3]);
}

#if !(defined(BP_CUDA_EMULATOR) && BP_CUDA_EMULATOR)
// The B fragment of a product against a row-major matrix m in shared memory, element (k, n) = m[k][n]: the two
// 8x8 blocks at rows k0..k0+15, columns n0..n0+7, transposed by ldmatrix. Each lane passes &m[k0 + (lane & 15)][n0]
// (16-byte aligned rows; lanes 16-31 are ignored).
__device__ __forceinline__ void loadBTrans(uint32_t& b0, uint32_t& b1, const half16* rowOfLane) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(rowOfLane));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(b0), "=r"(b1)
               : "r"(addr)
               : "memory");
}

// Fragments of two 8x8 matrices (ldmatrix.x2, not transposed): matrix i's rows come from the addresses of lanes
// 8i..8i+7 (16-byte aligned, 8 consecutive values each; lanes 16-31 are ignored), and lane l gets
// {M_i[g][2t], M_i[g][2t+1]} in r_i. With rows of a tile that is the B fragment of a product against the tile's
// transpose: one instruction instead of two 32-bit loads.
__device__ __forceinline__ void loadMatrices2(uint32_t& r0, uint32_t& r1, const half16* rowOfLane) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(rowOfLane));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(addr)
               : "memory");
}

// The transpose of an 8x8 bf16 matrix held one register per lane (lane l: row l/4, columns 2(l%4), 2(l%4)+1;
// the layout of each 8x8 block of an mma fragment)
__device__ __forceinline__ uint32_t transpose8x8(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// 16 bytes global -> shared without passing through registers; bytes < 16 zero-fills the rest (0: all zeros)
__device__ __forceinline__ void copyAsync16(void* dst, const void* src, int bytes) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void copyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most `pending` committed groups are still in flight
template <int pending>
__device__ __forceinline__ void copyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}
#endif  // BP_CUDA_EMULATOR

// Reductions over the 4 lanes that share a row of a C fragment
__device__ __forceinline__ float quadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace bp::BP_CUDA_NS::mma
