// The warp-level PTX of mma.cuh as CPU-emulator collectives (BP_CUDA_EMULATOR=1). Included by mma.cuh inside
// namespace bp::BP_CUDA_NS::mma, where half16 is this build's 16-bit operand type. Each function follows the
// fragment layouts documented at the top of mma.cuh (PTX ISA, mma.m16n8k16 and ldmatrix/movmatrix): lane l owns
// row g = l/4 and the column pair 2t, 2t+1 (t = l%4) of each 8x8 block.
// Rounding: the products of 16-bit operands are exact in fp32; they are summed in fp32 in k order, then added to
// the accumulator (the tensor cores' order of summation is unspecified, so the checks use tolerances).

// The two 16-bit values of a register (lo: the lower column or row index)
inline float lowHalf16(uint32_t r) {
  const uint16_t bits = (uint16_t)(r & 0xffffu);
  half16 h;
  std::memcpy(&h, &bits, 2);
  return widen16(h);
}
inline float highHalf16(uint32_t r) { return lowHalf16(r >> 16); }
inline uint32_t packBits16(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

// d += a * b
inline void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct Operands {
    uint32_t a[4], b[2];
    float c[4];
  } in{{a[0], a[1], a[2], a[3]}, {b0, b1}, {d[0], d[1], d[2], d[3]}};
  float out[4];
  ::bp::emu::warpCollective(&in, sizeof in, out, sizeof out,
                            [](const unsigned char* ins, unsigned char* outs, const void*) {
                              float A[16][16], B[16][8], C[16][8];
                              for (int lane = 0; lane < 32; lane++) {
                                Operands x;
                                std::memcpy(&x, ins + lane * ::bp::emu::kSlotBytes, sizeof x);
                                const int g = lane / 4, t = lane % 4;
                                for (int half = 0; half < 2; half++) {
                                  auto get = half ? highHalf16 : lowHalf16;
                                  A[g][2 * t + half] = get(x.a[0]);
                                  A[g + 8][2 * t + half] = get(x.a[1]);
                                  A[g][2 * t + 8 + half] = get(x.a[2]);
                                  A[g + 8][2 * t + 8 + half] = get(x.a[3]);
                                  B[2 * t + half][g] = get(x.b[0]);
                                  B[2 * t + 8 + half][g] = get(x.b[1]);
                                  C[g][2 * t + half] = x.c[half];
                                  C[g + 8][2 * t + half] = x.c[2 + half];
                                }
                              }
                              for (int lane = 0; lane < 32; lane++) {
                                const int g = lane / 4, t = lane % 4;
                                float r[4];
                                for (int e = 0; e < 4; e++) {
                                  const int row = g + (e / 2) * 8, col = 2 * t + e % 2;
                                  float sum = 0.0f;
                                  for (int k = 0; k < 16; k++) sum += A[row][k] * B[k][col];
                                  r[e] = C[row][col] + sum;
                                }
                                std::memcpy(outs + lane * ::bp::emu::kSlotBytes, r, sizeof r);
                              }
                            });
  for (int e = 0; e < 4; e++) d[e] = out[e];
}

// 8x8 matrices of 16-bit values given by the rows' addresses (rows[r] -> 8 consecutive values), as fragment
// registers: lane l gets {M[g][2t], M[g][2t+1]}, or from the transpose {M[2t][g], M[2t+1][g]}.
inline uint32_t rowFragment(const uint16_t* const* rows, int lane) {
  const int g = lane / 4, t = lane % 4;
  return packBits16(rows[g][2 * t], rows[g][2 * t + 1]);
}
inline uint32_t transposedFragment(const uint16_t* const* rows, int lane) {
  const int g = lane / 4, t = lane % 4;
  return packBits16(rows[2 * t][g], rows[2 * t + 1][g]);
}

// ldmatrix.x2 as a warp collective: matrix 0's rows from lanes 0-7, matrix 1's from lanes 8-15; Fragment says what
// a lane takes of each
template <uint32_t (*Fragment)(const uint16_t* const*, int)>
inline void loadTwoMatrices(uint32_t& r0, uint32_t& r1, const half16* rowOfLane) {
  const uint16_t* mine = reinterpret_cast<const uint16_t*>(rowOfLane);
  uint32_t out[2];
  ::bp::emu::warpCollective(&mine, sizeof mine, out, sizeof out,
                            [](const unsigned char* ins, unsigned char* outs, const void*) {
                              const uint16_t* rows[16];
                              for (int lane = 0; lane < 16; lane++)
                                std::memcpy(&rows[lane], ins + lane * ::bp::emu::kSlotBytes, sizeof rows[lane]);
                              for (int lane = 0; lane < 32; lane++) {
                                const uint32_t r[2] = {Fragment(rows, lane), Fragment(rows + 8, lane)};
                                std::memcpy(outs + lane * ::bp::emu::kSlotBytes, r, sizeof r);
                              }
                            });
  r0 = out[0];
  r1 = out[1];
}

// ldmatrix.x2.trans and ldmatrix.x2
inline void loadBTrans(uint32_t& b0, uint32_t& b1, const half16* rowOfLane) {
  loadTwoMatrices<transposedFragment>(b0, b1, rowOfLane);
}
inline void loadMatrices2(uint32_t& r0, uint32_t& r1, const half16* rowOfLane) {
  loadTwoMatrices<rowFragment>(r0, r1, rowOfLane);
}

// movmatrix.trans: the input is one register per lane in the fragment layout
inline uint32_t transpose8x8(uint32_t x) {
  uint32_t y;
  ::bp::emu::warpCollective(&x, sizeof x, &y, sizeof y, [](const unsigned char* ins, unsigned char* outs, const void*) {
    uint16_t m[8][8];
    for (int lane = 0; lane < 32; lane++) {
      uint32_t r;
      std::memcpy(&r, ins + lane * ::bp::emu::kSlotBytes, sizeof r);
      m[lane / 4][2 * (lane % 4)] = (uint16_t)(r & 0xffffu);
      m[lane / 4][2 * (lane % 4) + 1] = (uint16_t)(r >> 16);
    }
    const uint16_t* rows[8];
    for (int r = 0; r < 8; r++) rows[r] = m[r];
    for (int lane = 0; lane < 32; lane++) {
      const uint32_t v = transposedFragment(rows, lane);
      std::memcpy(outs + lane * ::bp::emu::kSlotBytes, &v, sizeof v);
    }
  });
  return y;
}

inline void copyAsync16(void* dst, const void* src, int bytes) { ::bp::emu::copyAsync(dst, src, bytes); }
inline void copyAsyncCommit() { ::bp::emu::copyAsyncCommit(); }
template <int pending>
inline void copyAsyncWait() {
  ::bp::emu::copyAsyncWait(pending);
}
