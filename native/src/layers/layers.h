// CPU layer kernels, one file per family (llm.c style): forward and backward side by side, caller-owned
// buffers, no allocation in the hot path. The CUDA twins (<family>.cu) implement the same signatures in
// namespace bp::cuda. Shapes: N = batch*seq rows, row-major; "d..." arguments accumulate (+=) unless noted.
#pragma once
#include <cstdint>

namespace bp {

// Dropout parameters of one site: keep-probability mask drawn from hash32(key, element index).
struct DropoutSite {
  float p = 0.0f;    // 0 disables
  uint32_t key = 0;  // streamKey(seed, stream)
  bool active() const { return p > 0.0f; }
};

// ---- dropout.cpp
void dropoutForward(float* x, long n, DropoutSite s);          // in place, scaled by 1/(1-p)
void dropoutBackward(float* dx, long n, DropoutSite s);        // in place: multiplies by the same mask
// out = base + dropout(branch); branch is left untouched
void residualDropoutForward(float* out, const float* base, const float* branch, long n, DropoutSite s);

// ---- embedding.cpp
struct EmbeddingOverride {
  int count = 0;
  const int32_t* ids = nullptr;  // token ids whose input row is replaced
  const float* rows = nullptr;   // [count][d]
};
// out[i] = wte[tokens[i]] + (wpe ? wpe[positions[i]] : 0)
void embeddingForward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                      const float* wpe, int N, int d, const EmbeddingOverride* ov);
void embeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                       const int32_t* positions, int N, int d, const EmbeddingOverride* ov);

// ---- layernorm.cpp
void layernormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                      int N, int C, float eps);
// dinp += ..., dw += ..., db += ...
void layernormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int N, int C);

// ---- linear.cpp (weights in Linear layout [OC][IC])
void linearForward(float* out, const float* inp, const float* w, const float* b, int N, int IC, int OC);
// dinp = (accumulate ? dinp : 0) + dout.w ; dw += dout^T.inp ; db += colsum(dout). dinp may be null.
void linearBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N,
                    int IC, int OC, bool accumulate);

// ---- gelu_mlp.cpp (tanh GELU, "gelu_new")
void geluForward(float* out, const float* inp, long n);
void geluBackward(float* dinp, const float* inp, const float* dout, long n);  // dinp = dout * gelu'(inp)

// ---- attention.cpp: causal multi-head self-attention on packed [q|k|v] rows
struct AttentionShape {
  int B, T, C, H;
  float scale;  // (C/H)^-1/2 * 1/(layer+1)
};
// probs [B][H][T][T] (before dropout; rows i hold j<=i, rest 0); out [B*T][C]; scratch >= threads*2*T*T floats;
// mask [B][H][T][T] bytes receives the dropout mask (unused without dropout)
void attentionForward(float* out, float* probs, const float* qkv, AttentionShape s, DropoutSite drop,
                      uint8_t* mask, float* scratch);
// dqkv is overwritten; mask as written by the forward pass
void attentionBackward(float* dqkv, const float* dout, const float* qkv, const float* probs, AttentionShape s,
                       DropoutSite drop, const uint8_t* mask, float* scratch);

// ---- contextualization.cpp: Backpack weights alpha [B][k][T][T] from packed [Q|K] rows [B*T][2d]
struct AlphaShape {
  int B, T, d, k;
};
struct AlphaScale {
  int sense = -1;               // -1: none
  float factor = 1.0f;
  const uint8_t* keyMask = nullptr;  // [B*T]: 1 where the key position holds one of the chosen tokens
};
void alphaForward(float* alpha, const float* qk, AlphaShape s, float* scratch);
// dqk is overwritten; dalpha is consumed as scratch
void alphaBackward(float* dqk, float* dalpha, const float* qk, const float* alpha, AlphaShape s);
void alphaApplyScale(float* alpha, AlphaShape s, const AlphaScale& sc);

// ---- backpack_output.cpp: o[b,i] = sum_l sum_{j<=i} alpha[b,l,i,j] * senses[b,j,l*d:(l+1)*d]
void backpackOutputForward(float* out, const float* alpha, const float* senses, AlphaShape s);
// dsenses overwritten; dalpha written for keys j <= i of each query row i (what alphaBackward reads)
void backpackOutputBackward(float* dalpha, float* dsenses, const float* dout, const float* alpha,
                            const float* senses, AlphaShape s);

// ---- softmax_xent.cpp: tied output head + softmax cross-entropy over all V rows, in row chunks
struct HeadArgs {
  int N, d, V;
  const float* x;           // [N][d] final features
  const float* wte;         // [V][d]
  const int32_t* targets;   // [N] or null; <0 = ignored
  float* logitsOut;         // [N][V] or null
  float* lossPerToken;      // [N] or null
  float* scratch;           // >= chunk*V floats
  int chunk;                // rows per chunk
  // backward (null = forward only)
  float* dx;                // [N][d] overwritten
  float* dwte;              // [V][d] accumulated
  float gradScale;          // d(total)/d(mean loss)
};
// Returns the sum of losses over counted targets; *counted = number of targets >= 0.
double headForwardBackward(const HeadArgs& a, long* counted);

// ---- adamw.cpp
struct AdamWArgs {
  float lr, beta1, beta2, eps, weightDecay;
  long step;  // 1-based, for bias correction
};
void adamwUpdate(float* params, const float* grads, float* m, float* v, long n, const AdamWArgs& a, bool decay);
double sumSquares(const float* x, long n);
void scale(float* x, long n, float s);

}  // namespace bp
