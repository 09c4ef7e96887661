// Backpack output o_i = sum_l sum_{j<=i} alpha_l[i,j] C(x_j)_l. With alpha of a sequence laid out [i][(j,l)]
// and its sense vectors [(j,l)][d] (their natural [T][k*d] layout), the sum over positions AND senses is one
// GEMM of depth T*k. Weights exist for one chunk of sequences at a time; the backward pass recomputes them.
#include <algorithm>

#include "layers.cuh"

namespace bp::BP_CUDA_NS {

__global__ void scaleSensesKernel(float* out, const float* senses, const float* scale, long total, int d) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total) out[i] = senses[i] * scale[i / d];
}

void scaleSenses(float* out, const float* senses, const float* scale, int N, int k, int d, cudaStream_t st) {
  long total = (long)N * k * d;
  if (total <= 0) return;
  BP_LAUNCH(scaleSensesKernel, blocksFor(total, 256), 256, 0, st)(out, senses, scale, total, d);
  BP_LAUNCHED();
}

// The bf16 twin of a chunk's alpha, after `chunks` fp32 buffers of the chunk in scratch
static half16* alpha16In(const AttnWork& w, int chunks, long chunkFloats) {
  return reinterpret_cast<half16*>(w.scratch + chunks * chunkFloats);
}

// The fused kernels (backpack_flash.cu), a chunk of sequences at a time: qk rounded to bf16 into the scratch the
// GEMM path would use for its weights (4 * seqs * k*T*T floats hold 4 * seqs * k*T / d sequences of qk16).
// False when they cannot run (knob off, shape, scratch, or the weights are wanted).
static bool fusedForward(const Blas& b, float* out, float* lse, const float* qk, CtxShape s, AttnWork w,
                         const AlphaEdit* edit, const float* alphaOutHost, const half16* senses16) {
  static const bool enabled = envIs("BACKPACK_CUDA_FUSED_CONTEXT", "1");
  if (!enabled || !senses16 || alphaOutHost || !backpackFlashSupported(s)) return false;
  const long fit = 4L * w.seqs * s.k * s.T / s.d;
  if (fit < 1) return false;
  const int T = s.T, d = s.d, k = s.k;
  half16* qk16 = reinterpret_cast<half16*>(w.scratch);
  for (int b0 = 0; b0 < s.B; b0 += (int)fit) {
    const int n = (int)std::min<long>(fit, s.B - b0);
    toHalf16(qk16, qk + (long)b0 * T * 2 * d, (long)n * T * 2 * d, b.stream);
    AlphaEdit e = edit ? *edit : AlphaEdit{};
    if (e.keyMask) e.keyMask += (long)b0 * T;
    backpackFlashForward(out + (long)b0 * T * d, lse + (long)b0 * k * T, qk16, senses16 + (long)b0 * T * k * d,
                         CtxShape{n, T, d, k, s.coalesced}, edit ? &e : nullptr, b.stream);
  }
  return true;
}

bool backpackForward(const Blas& b, float* out, float* lse, const float* qk, const float* senses, CtxShape s,
                     AttnWork w, const AlphaEdit* edit, float* alphaOutHost, const half16* senses16) {
  if (fusedForward(b, out, lse, qk, s, w, edit, alphaOutHost, senses16)) return true;
  const int T = s.T, d = s.d, k = s.k;
  const long kTT = (long)k * T * T, kd = (long)k * d;
  for (int b0 = 0; b0 < s.B; b0 += w.seqs) {
    const int n = std::min(w.seqs, s.B - b0);
    float* scores = w.scratch;
    float* alpha = w.scratch + n * kTT;
    half16* alpha16 = senses16 ? alpha16In(w, 2, n * kTT) : nullptr;
    alphaChunk(b, alpha, lse, qk, b0, n, s, scores, w.ptrs, edit, alpha16);
    // out_b [T][d] = alpha_b [T][T*k] . C_b [T*k][d], for every sequence of the chunk (bf16 or fp32 operands)
    auto mix = [&](const auto* a, const auto* C) {
      gemmStrided(b, false, false, T, d, T * k, 1.0f, a, T * k, kTT, C + (long)b0 * T * kd, d, (long)T * kd, 0.0f,
                  out + (long)b0 * T * d, d, (long)T * d, n);
    };
    if (senses16)
      mix(alpha16, senses16);
    else
      mix(alpha, senses);
    if (alphaOutHost)
      for (int i = 0; i < n; i++) {
        alphaToHeadMajor(scores, alpha + i * kTT, s, b.stream);
        BP_CUDA(cudaMemcpyAsync(alphaOutHost + (b0 + i) * kTT, scores, sizeof(float) * kTT, cudaMemcpyDeviceToHost,
                                b.stream));
        BP_CUDA(cudaStreamSynchronize(b.stream));
      }
  }
  return false;
}

void backpackBackward(const Blas& b, float* dqk, float* dsenses, const float* dout, const float* qk,
                      const float* senses, const float* lse, CtxShape s, AttnWork w, const half16* senses16,
                      half16* dout16) {
  const int T = s.T, d = s.d, k = s.k;
  const long kTT = (long)k * T * T, kd = (long)k * d;
  float* lseTmp = const_cast<float*>(lse);  // recomputation rewrites the same values
  if (senses16) toHalf16(dout16, dout, (long)s.B * T * d, b.stream);
  for (int b0 = 0; b0 < s.B; b0 += w.seqs) {
    const int n = std::min(w.seqs, s.B - b0);
    float* scores = w.scratch;
    float* alpha = w.scratch + n * kTT;
    float* dalpha = w.scratch + 2 * n * kTT;
    float* dS = w.scratch + 3 * n * kTT;
    half16* alpha16 = senses16 ? alpha16In(w, 4, n * kTT) : nullptr;
    alphaChunk(b, alpha, lseTmp, qk, b0, n, s, scores, w.ptrs, nullptr, alpha16);
    // dalpha[T][T*k] = dO C^T ; dC[T*k][d] = alpha^T dO   (per sequence, batched; bf16 or fp32 operands)
    auto products = [&](const auto* dO, const auto* C, const auto* a) {
      dO += (long)b0 * T * d;
      C += (long)b0 * T * kd;
      gemmStrided(b, false, true, T, T * k, d, 1.0f, dO, d, (long)T * d, C, d, (long)T * kd, 0.0f, dalpha, T * k, kTT,
                  n);
      gemmStrided(b, true, false, T * k, d, T, 1.0f, a, T * k, kTT, dO, d, (long)T * d, 0.0f,
                  dsenses + (long)b0 * T * kd, d, (long)T * kd, n);
    };
    if (senses16)
      products(dout16, senses16, alpha16);
    else
      products(dout, senses, alpha);
    alphaChunkBackward(b, dqk, dalpha, qk, alpha, b0, n, s, dS, w.ptrs);
  }
}

}  // namespace bp::BP_CUDA_NS
