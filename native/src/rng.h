// Counter-based random numbers: every draw is a pure function of (seed, stream, index), so dropout masks
// can be recomputed in the backward pass and a resumed run replays exactly the same numbers. The mixing
// uses only 32-bit multiplies and xor-shifts so the TypeScript reference can reproduce it with Math.imul.
#pragma once
#include <cmath>
#include <cstdint>

namespace bp {

inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// Hash of (key, index); key = streamKey(seed, stream).
inline uint32_t hash32(uint32_t key, uint32_t index) {
  return mix32(key ^ mix32(index + 0x9e3779b9U));
}

inline uint32_t streamKey(uint32_t seed, uint32_t stream) {
  return mix32(seed * 0x85ebca6bU ^ mix32(stream ^ 0xc2b2ae35U));
}

// Uniform in [0, 1) with 24 bits.
inline float uniform01(uint32_t key, uint32_t index) {
  return (float)(hash32(key, index) >> 8) * (1.0f / 16777216.0f);
}

// Attention-probability dropout: 16 bits per element, two elements per hash (element `index` takes the low half
// of hash32(key, index >> 1) when even, the high half when odd), kept when those bits reach keepThreshold16(p).
// A head has T*T probabilities, so this is the engine's hottest draw; p is quantised to 1/65536.
inline uint32_t keepThreshold16(float p) { return (uint32_t)std::ceil(p * 65536.0f); }
inline bool keep16(uint32_t key, uint32_t index, uint32_t threshold) {
  const uint32_t h = hash32(key, index >> 1);
  return ((index & 1u) ? h >> 16 : h & 0xffffu) >= threshold;
}

// Standard normal by Box-Muller on two counter draws.
inline float normal01(uint32_t key, uint32_t index) {
  double u1 = ((double)(hash32(key, 2 * index) >> 8) + 1.0) / 16777217.0;
  double u2 = (double)(hash32(key, 2 * index + 1) >> 8) / 16777216.0;
  return (float)(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace bp
