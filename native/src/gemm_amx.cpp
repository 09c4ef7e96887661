// bf16 matrix products on Intel AMX tiles with fp32 accumulation (the CPU's "mixed precision" path).
// Operands are rounded to bf16 (round-to-nearest-even) while being packed into the tile layouts; products
// accumulate in fp32 tile registers; C is read and written in fp32. Everything here is compiled for AMX through
// function attributes rather than file-wide flags, so no AVX-512/AMX code can leak into shared inline functions,
// and it only runs after amxAvailable() has checked the CPU and asked the kernel for tile state.
#include "gemm_amx.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define BP_AMX_BUILD 1
#endif

namespace bp {

#ifdef BP_AMX_BUILD

namespace {

constexpr int kTile = 16;        // rows of a tile; also the fp32 columns of an accumulator tile
constexpr int kPairs = 16;       // bf16 pairs per B-tile row = 32 values of K
constexpr int kKStep = 32;       // K consumed by one tile product
constexpr int kTileBytes = 1024; // 16 rows x 64 bytes

struct TileConfig {
  uint8_t palette = 1;
  uint8_t startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsBytes[16] = {};
  uint8_t rows[16] = {};
};

bool requestTileState() {
  constexpr long kReqXcompPerm = 0x1023;  // arch_prctl: ARCH_REQ_XCOMP_PERM
  constexpr long kXtileData = 18;         // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
}

bool detectAmx() {
  if (std::getenv("BACKPACK_NO_AMX")) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
  return tile && bf16 && requestTileState();
}

inline uint16_t toBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

// Packs op(A)[m0 .. m0+mRows) x [k0 .. k0+kc) into A tiles: for row group g (16 rows) and K step s, a 16 x 32 bf16
// tile at Ap + (g * kSteps + s) * 512. Rows past mRows and columns past kc are zero.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void packA(bool transA, const float* A, int lda, int m0,
                                                                 int mRows, int k0, int kc, int kSteps, uint16_t* Ap) {
  const int groups = (mRows + kTile - 1) / kTile;
  std::memset(Ap, 0, (size_t)groups * kSteps * kTileBytes);
  if (!transA) {
    for (int i = 0; i < mRows; i++) {
      uint16_t* rowBase = Ap + (size_t)(i / kTile) * kSteps * 512 + (i % kTile) * kKStep;
      const float* src = A + (size_t)(m0 + i) * lda + k0;
      int k = 0;
      for (; k + 32 <= kc; k += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
        _mm512_storeu_si512(rowBase + (size_t)(k / kKStep) * 512, (__m512i)v);
      }
      for (; k < kc; k++) rowBase[(size_t)(k / kKStep) * 512 + k % kKStep] = toBf16(src[k]);
    }
    return;
  }
  // op(A)[i][k] = A[k][i]: rows k of the stored matrix hold 16 consecutive i; convert two rows (k, k+1) into
  // (k, k+1) pairs per i, collect the 16 pairs of a K step, and transpose the 16 x 16 block of pairs.
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                              22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  alignas(64) uint32_t block[16][16];
  for (int g = 0; g * kTile < mRows; g++) {
    const int i0 = g * kTile, rows = mRows - i0 < kTile ? mRows - i0 : kTile;
    const __mmask16 mask = (__mmask16)((1u << rows) - 1);
    for (int s = 0; s < kSteps; s++) {
      for (int p = 0; p < kPairs; p++) {
        const int k = s * kKStep + 2 * p;
        __m512 r0 = k < kc ? _mm512_maskz_loadu_ps(mask, A + (size_t)(k0 + k) * lda + m0 + i0) : _mm512_setzero_ps();
        __m512 r1 = k + 1 < kc ? _mm512_maskz_loadu_ps(mask, A + (size_t)(k0 + k + 1) * lda + m0 + i0) : _mm512_setzero_ps();
        __m512i both = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);  // lanes 0..15: row k, 16..31: row k+1
        _mm512_store_si512(block[p], _mm512_permutexvar_epi16(interleave, both));
      }
      uint32_t* tile = (uint32_t*)(Ap + ((size_t)g * kSteps + s) * 512);
      for (int i = 0; i < rows; i++)
        for (int p = 0; p < kPairs; p++) tile[i * 16 + p] = block[p][i];
    }
  }
}

// Packs op(B)[k0 .. k0+K) x [n0 .. n0+nCols) into VNNI B tiles: for column group g (16 columns) and K step s, a tile
// whose row p holds (B[2p][j], B[2p+1][j]) for the 16 columns j, at Bp + (g * kSteps + s) * 512.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void packB(bool transB, const float* B, int ldb, int n0,
                                                                 int nCols, int k0, int K, int kSteps, uint16_t* Bp) {
  const int groups = (nCols + kTile - 1) / kTile;
  std::memset(Bp, 0, (size_t)groups * kSteps * kTileBytes);
  if (transB) {
    // op(B)[k][j] = B[j][k]: each stored row j already holds consecutive k, i.e. the pairs; convert 32 at a time
    // and scatter the 16 pairs (one 32-bit lane each) down the tile rows.
    for (int j = 0; j < nCols; j++) {
      const float* src = B + (size_t)(n0 + j) * ldb + k0;
      uint32_t* colBase = (uint32_t*)(Bp + (size_t)(j / kTile) * kSteps * 512) + (j % kTile);
      int k = 0;
      alignas(64) uint32_t pairs[16];
      for (; k + 32 <= K; k += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
        _mm512_store_si512(pairs, (__m512i)v);
        uint32_t* dst = colBase + (size_t)(k / kKStep) * 256;
        for (int p = 0; p < kPairs; p++) dst[p * 16] = pairs[p];
      }
      for (; k < K; k++) {
        uint16_t* dst = (uint16_t*)(colBase + (size_t)(k / kKStep) * 256 + ((k % kKStep) / 2) * 16);
        dst[k & 1] = toBf16(src[k]);
      }
    }
  } else {
    // op(B)[k][j] = B[k][j]: interleave rows k and k+1 column by column.
    const __m512i interleaveLo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7,
                                                  38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i interleaveHi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55,
                                                  23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
    for (int k = 0; k < K; k += 2) {
      const float* r0 = B + (size_t)(k0 + k) * ldb + n0;
      const float* r1 = k + 1 < K ? r0 + ldb : nullptr;
      uint16_t* stepBase = Bp + (size_t)(k / kKStep) * 512 + ((k % kKStep) / 2) * 32;
      int j = 0;
      for (; j + 32 <= nCols; j += 32) {
        // bf16 of row k in lanes 0..31 of a, of row k+1 in lanes 0..31 of b; interleave into (k, k+1) pairs.
        __m512i a = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(r0 + j + 16), _mm512_loadu_ps(r0 + j));
        __m512i b = r1 ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(r1 + j + 16), _mm512_loadu_ps(r1 + j))
                       : _mm512_setzero_si512();
        __m512i lo = _mm512_permutex2var_epi16(a, interleaveLo, b);  // columns j .. j+15
        __m512i hi = _mm512_permutex2var_epi16(a, interleaveHi, b);  // columns j+16 .. j+31
        _mm512_storeu_si512(stepBase + (size_t)(j / kTile) * kSteps * 512, lo);
        _mm512_storeu_si512(stepBase + (size_t)(j / kTile + 1) * kSteps * 512, hi);
      }
      for (; j < nCols; j++) {
        uint16_t* dst = stepBase + (size_t)(j / kTile) * kSteps * 512 + (j % kTile) * 2;
        dst[0] = toBf16(r0[j]);
        dst[1] = r1 ? toBf16(r1[j]) : 0;
      }
    }
  }
}

inline void writeBack(const float* acc, int rows, int cols, float alpha, float beta, float* C, int ldc) {
  for (int i = 0; i < rows; i++) {
    float* c = C + (size_t)i * ldc;
    const float* t = acc + i * 32;
    if (beta == 0.0f)
      for (int j = 0; j < cols; j++) c[j] = alpha * t[j];
    else
      for (int j = 0; j < cols; j++) c[j] = alpha * t[j] + beta * c[j];
  }
}

// C block of 32 x 32 from two A row groups and two B column groups (tiles 0-3 accumulate, 4-5 hold A, 6-7 B).
__attribute__((target("amx-tile,amx-bf16"))) void kernel32x32(const uint16_t* a0, const uint16_t* a1,
                                                             const uint16_t* b0, const uint16_t* b1, int kSteps,
                                                             float* acc) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int s = 0; s < kSteps; s++) {
    _tile_loadd(4, a0 + (size_t)s * 512, 64);
    _tile_loadd(6, b0 + (size_t)s * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, b1 + (size_t)s * 512, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + (size_t)s * 512, 64);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  _tile_stored(2, acc + 16 * 32, 128);
  _tile_stored(3, acc + 16 * 32 + 16, 128);
}

__attribute__((target("amx-tile"))) void configureTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = kTile;
    cfg.colsBytes[t] = 64;
  }
  // Own asm with the whole struct as the operand: GCC 12's _tile_loadconfig declares only 8 bytes as read, so
  // the stores above may be dropped as dead.
  asm volatile("ldtilecfg %0" ::"m"(cfg));
}

__attribute__((target("amx-tile"))) void releaseTiles() { _tile_release(); }

void* alignedAlloc(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return nullptr;
  return p;
}

}  // namespace

bool amxAvailable() {
  static const bool ok = detectAmx();
  return ok;
}

bool amxGemmSerial(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc) {
  if (!amxAvailable()) return false;
  // Blocking: K in windows of kBlockK; per window, op(B) is packed once for all N (padded to 32 columns) and
  // op(A) once per kBlockM rows; every 32 x 32 block of C then accumulates in tiles and is added into C.
  constexpr int kBlockK = 512, kBlockM = 256;
  const int nPad = (N + 31) / 32 * 32;
  const int kWindow = K < kBlockK ? K : kBlockK;
  const int stepsMax = (kWindow + kKStep - 1) / kKStep;
  uint16_t* Ap = (uint16_t*)alignedAlloc((size_t)(kBlockM / kTile) * stepsMax * kTileBytes);
  uint16_t* Bp = (uint16_t*)alignedAlloc((size_t)(nPad / kTile) * stepsMax * kTileBytes);
  if (!Ap || !Bp) {
    std::free(Ap);
    std::free(Bp);
    return false;
  }
  alignas(64) float acc[32 * 32];
  configureTiles();
  for (int k0 = 0; k0 < K; k0 += kBlockK) {
    const int kc = K - k0 < kBlockK ? K - k0 : kBlockK;
    const int kSteps = (kc + kKStep - 1) / kKStep;
    const float betaHere = k0 == 0 ? beta : 1.0f;
    packB(transB, B, ldb, 0, N, k0, kc, kSteps, Bp);
    if (nPad > ((N + kTile - 1) / kTile) * kTile)  // an odd column-group count: the pair's second group is zero
      std::memset(Bp + (size_t)((N + kTile - 1) / kTile) * kSteps * 512, 0, (size_t)kSteps * kTileBytes);
    for (int m0 = 0; m0 < M; m0 += kBlockM) {
      const int mRows = M - m0 < kBlockM ? M - m0 : kBlockM;
      packA(transA, A, lda, m0, mRows, k0, kc, kSteps, Ap);
      const int groups = (mRows + kTile - 1) / kTile;
      if (groups % 2) std::memset(Ap + (size_t)groups * kSteps * 512, 0, (size_t)kSteps * kTileBytes);
      for (int i = 0; i < mRows; i += 32) {
        const uint16_t* a0 = Ap + (size_t)(i / kTile) * kSteps * 512;
        const uint16_t* a1 = a0 + (size_t)kSteps * 512;
        const int rows = mRows - i < 32 ? mRows - i : 32;
        for (int j = 0; j < N; j += 32) {
          const uint16_t* b0 = Bp + (size_t)(j / kTile) * kSteps * 512;
          const uint16_t* b1 = b0 + (size_t)kSteps * 512;
          kernel32x32(a0, a1, b0, b1, kSteps, acc);
          writeBack(acc, rows, N - j < 32 ? N - j : 32, alpha, betaHere, C + (size_t)(m0 + i) * ldc + j, ldc);
        }
      }
    }
  }
  releaseTiles();
  std::free(Ap);
  std::free(Bp);
  return true;
}

#else

bool amxAvailable() { return false; }
bool amxGemmSerial(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int) {
  return false;
}

#endif

}  // namespace bp
