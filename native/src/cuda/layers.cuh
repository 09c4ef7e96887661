// CUDA twins of the CPU layer kernels (../layers/layers.h): same math, device pointers, launched on a stream.
// One .cu per CPU family. Shapes follow the CPU conventions: N = batch*seq rows, row-major, weights in Linear
// layout [OC][IC]; "d..." arguments accumulate (+=) unless noted.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common.cuh"
#include "half16.cuh"

namespace bp::BP_CUDA_NS {

// ---- gemm.cu: row-major C[M,N] = alpha op(A) op(B) + beta C on cuBLAS. gemm/gemmStrided/gemmBatched take fp32
// operands and the compute type picks strict fp32 or TF32 (CUBLAS_COMPUTE_32F_FAST_16BF on fp32 operands still
// ran TF32 kernels when profiled); the *16 variants take bf16 operands: bf16 tensor cores, fp32 accumulation.
struct LtContext;  // gemm_lt.cu
struct Blas {
  cublasHandle_t handle = nullptr;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaStream_t stream = nullptr;
  std::shared_ptr<LtContext> lt;  // cuBLASLt for the fused-epilogue layers (set by enableLt; null: not used)
  // Matmul FLOPs issued, by operand type (benchmarks report which GEMMs actually ran on bf16 operands).
  mutable double flops16 = 0.0, flopsFp32 = 0.0;
};
void gemm(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc);
void gemmStrided(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, long sA,
                 const float* B, int ldb, long sB, float beta, float* C, int ldc, long sC, int batch);
// The same with bf16 operands on bf16 tensor cores: fp32 accumulation, fp32 C (the mixed-precision mode).
void gemm16(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const half16* A, int lda,
            const half16* B, int ldb, float beta, float* C, int ldc);
// C = A B with bf16 operands, fp32 accumulation and C rounded to bf16 (the training logits).
void gemm16to16(const Blas& b, bool tA, bool tB, int M, int N, int K, const half16* A, int lda, const half16* B,
                int ldb, half16* C, int ldc);
// (gemmStrided is also overloaded on bf16 operands, so code generic over the operand type can call one name)
void gemmStrided(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const half16* A, int lda, long sA,
                 const half16* B, int ldb, long sB, float beta, float* C, int ldc, long sC, int batch);
// Whether this cuBLAS runs bf16-operand products with fp32 output (batched: the pointer-array form), tried on
// a 16x16x16 product; the bf16 mode falls back to fp32-operand GEMMs where it does not.
bool half16GemmWorks(const Blas& b, bool batched);
// ---- gemm_lt.cu: bf16 linear layers with the bias add (and GELU) fused into the product's epilogue, bf16 out.
enum class Epilogue {
  Bias,         // out = x W^T + b
  BiasGelu,     // out = gelu(x W^T + b)
  BiasGeluAux,  // the same, and pre = x W^T + b (GELU's input, for the backward pass)
  DGelu         // backward: dinp = (dout W) * gelu'(pre)
};
// Sets up cuBLASLt on b (its stream) and probes the forward epilogues against known results; false (b.lt null)
// when they fail or BACKPACK_CUDA_LT=0. Callers then keep the plain products plus element-wise kernels. The
// GELU-gradient epilogue is probed too (ltGeluBackwardWorks).
bool enableLt(Blas& b);
// out16[N][OC] (and pre16 with BiasGeluAux); the bias in fp32, or its bf16 shadow bias16 where the probe found
// this cuBLASLt takes only that. Throws when cuBLASLt has no kernel for the shape.
void linearForwardLt(const Blas& b, half16* out16, half16* pre16, const half16* inp16, const half16* w16,
                     const float* bias, const half16* bias16, int N, int IC, int OC, Epilogue e);
// The backward product of the layer after a GELU, straight into the GELU input's gradient as the next GEMM's bf16
// operand: dinp16[N][IC] = (dout16[N][OC] w16[OC][IC]) * gelu'(pre16[N][IC]). Usable when ltGeluBackwardWorks.
void linearBackwardDataGeluLt(const Blas& b, half16* dinp16, const half16* dout16, const half16* w16,
                              const half16* pre16, int N, int IC, int OC);
bool ltGeluBackwardWorks(const Blas& b);
// dst = bf16(src), round to nearest even (weights' shadow copies, activations and gradients that feed GEMMs).
void toHalf16(half16* dst, const float* src, long n, cudaStream_t st);

// Batched products over arbitrary matrix addresses (device arrays of pointers), one launch for all of them.
void gemmBatched(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const float* const* A, int lda,
                 const float* const* B, int ldb, float beta, float* const* C, int ldc, int batch);
// The same with bf16 operands, fp32 accumulation and fp32 C.
void gemmBatched16(const Blas& b, bool tA, bool tB, int M, int N, int K, float alpha, const half16* const* A, int lda,
                   const half16* const* B, int ldb, float beta, float* const* C, int ldc, int batch);
// out[i] = base + (i / inner) * outerStride + (i % inner) * innerStride, for i < count (on the device)
void fillPointers(const float** out, const float* base, long outerStride, long innerStride, int inner, int count,
                  cudaStream_t st);
void fillPointers(const half16** out, const half16* base, long outerStride, long innerStride, int inner, int count,
                  cudaStream_t st);

struct Site {  // a dropout site (see ../layers/layers.h DropoutSite)
  float p = 0.0f;
  uint32_t key = 0;
  // Added to every element index the mask hashes: the index of this request's first element within the whole
  // micro-batch, so a data-parallel replica drops what one device running the whole batch would (mod 2^32, as
  // the CPU truncates its indices)
  uint32_t offset = 0;
};
// model.cu: the dropout site of stream `stream` of a micro-batch's seed (off unless training with p > 0)
Site dropSite(bool train, float p, uint32_t seed, uint32_t stream, uint32_t offset);

// ---- dropout.cu
void dropoutForward(float* x, long n, Site s, cudaStream_t st);
void residualDropoutForward(float* out, const float* base, const float* branch, long n, Site s, cudaStream_t st);
// The same with the bias of the linear layer that produced branch (rows of OC) added on the way:
// out = base + drop(branch + bias). Saves the separate bias pass over branch.
void biasResidualDropoutForward(float* out, const float* base, const float* branch, const float* bias, int OC, long n,
                                Site s, cudaStream_t st);
// dst = src * mask (dst may equal src)
void dropoutCopy(float* dst, const float* src, long n, Site s, cudaStream_t st);

// ---- embedding.cu (positions may be null: no position table)
struct EmbedOverride {
  int count = 0;
  const int32_t* ids = nullptr;  // device [count]
  const float* rows = nullptr;   // device [count][d]
};
void embeddingForward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte, const float* wpe,
                      int N, int d, EmbedOverride ov, cudaStream_t st);
void embeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                       int N, int d, cudaStream_t st);

// ---- layernorm.cu
// out16 (optional): the same output rounded to bf16, for the GEMM that consumes it; out may then be null.
// vectorized (the bf16 mode): float4 rows in registers when C = 128 * k (k <= 8, not 7); same results up to float
// summation order.
void layernormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                      int C, float eps, cudaStream_t st, half16* out16 = nullptr, bool vectorized = false);
// The backward kernels, by float summation order of dw/db: shared-memory atomics (fp32/TF32 keep the kernel their
// parity was measured with), per-warp partial sums (the bf16 mode), or per-lane register partials with float4
// rows (the bf16 mode; C a multiple of 128 up to 1024, else per-warp).
enum class LnBackward { SharedAtomics, WarpPrivate, Vectorized };
void layernormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int N, int C, cudaStream_t st,
                       LnBackward kind = LnBackward::SharedAtomics);

// ---- linear.cu (ones: device vector of >= N ones, for the bias gradient)
void linearForward(const Blas& b, float* out, const float* inp, const float* w, const float* bias, int N, int IC,
                   int OC);
void linearBackward(const Blas& b, float* dinp, float* dw, float* db, const float* dout, const float* inp,
                    const float* w, int N, int IC, int OC, bool accumulate, const float* ones);
// out16 (optional): the biased output rounded to bf16 as well; keepFp32 = false: only out16 is written (out keeps
// the unbiased GEMM output)
void addBias(float* out, const float* bias, int N, int OC, cudaStream_t st, half16* out16 = nullptr,
             bool keepFp32 = true);
// Mixed precision: bf16 input and weight (its shadow copy), fp32 output.
void linearForward16(const Blas& b, float* out, const half16* inp16, const half16* w16, const float* bias, int N,
                     int IC, int OC);
// The gradient at a linear layer's output in the mixed-precision mode, in one pass over its source: g = f(src),
// f the identity, the dropout of `drop` (when on) or GELU's derivative at the pre-activation geluPre (fp32) or
// geluPre16 (bf16, from a fused-epilogue layer) when one is set; writes g rounded to bf16 into dout16 and adds its
// column sums, in fp32, into db (optional): the bias gradient.
void prepareGrad16(half16* dout16, float* db, const float* src, int N, int OC, Site drop, const float* geluPre,
                   const half16* geluPre16, cudaStream_t st);
// db[c] += sum over rows of g[r][c]: the bias gradient where the output gradient's producer wrote it in bf16
// (the cuBLASLt GELU-gradient product, the fused attention's bf16 dqkv) and prepareGrad16 does not run.
void biasGradFrom16(float* db, const half16* g, int N, int OC, cudaStream_t st);
// From dout16 (prepareGrad16's output, with the bias gradient already taken): dinp = dout16 w16 (fp32, += with
// accumulate), dw += dout16^T inp16 (fp32).
void linearBackward16(const Blas& b, float* dinp, float* dw, const half16* dout16, const half16* inp16,
                      const half16* w16, int N, int IC, int OC, bool accumulate);

// ---- gelu_mlp.cu
void geluForward(float* out, const float* inp, long n, cudaStream_t st, half16* out16 = nullptr);
// pre += bias (rows of OC; pre is kept for the backward pass), then out = gelu(pre): the fc layer's bias add fused.
// With out16, out may be null (only the bf16 GEMMs read the activation).
void biasGeluForward(float* out, float* pre, const float* bias, int OC, long n, cudaStream_t st,
                     half16* out16 = nullptr);
void geluBackward(float* dinp, const float* inp, const float* dout, long n, cudaStream_t st);

// ---- attention.cu: causal multi-head attention on packed [q|k|v] rows, a chunk of sequences at a time on batched
// tensor-core GEMMs (one launch per product for all sequences and heads of the chunk); only the row log-sum-exp
// [B][H][T] is kept, probabilities are recomputed in the backward pass.
struct AttnShape {
  int B, T, C, H;
  float scale;
};
// Work space of one chunk: `seqs` sequences, `scratch` >= seqs*3*H*T*T floats, `ptrs` >= 10*seqs*H pointers.
// flash: the fused kernels of flash_attention.cu instead (mixed precision only; scratch >=
// flashBackwardScratchFloats);
// keepBits (optional, per layer: flashKeepWords words): the forward pass's dropout mask, reused by the backward.
struct AttnWork {
  int seqs;
  float* scratch;
  const float** ptrs;
  bool flash = false;
  uint64_t* keepBits = nullptr;
};
// Mixed precision (qkv16 = the bf16 twin of qkv, non-null): the four products take bf16 operands (scores and
// dS/dPd stay fp32 for the softmaxes, probabilities and dS are rounded to bf16 for the next product); the
// backward pass then needs dout16, scratch for dout rounded to bf16 (>= B*T*C).
// out16 (mixed precision): the output rounded to bf16 as well. The backward pass reads the forward output `out`
// (fused kernels only).
void attentionForward(const Blas& b, float* out, float* lse, const float* qkv, AttnShape s, Site drop, AttnWork w,
                      const half16* qkv16 = nullptr, half16* out16 = nullptr);
// dqkv16 (fused kernels only): dqkv is written there in bf16 instead, ready as the qkv layer's GEMM operand.
void attentionBackward(const Blas& b, float* dqkv, const float* dout, const float* out, const float* qkv,
                       const float* lse, AttnShape s, Site drop, AttnWork w, const half16* qkv16 = nullptr,
                       half16* dout16 = nullptr, half16* dqkv16 = nullptr);

// ---- flash_attention.cu: the fused kernels behind AttnWork::flash (bf16 tensor cores, fp32 accumulation)
bool flashAttentionSupported(const AttnShape& s);
// 64-bit words of a dropout keep mask (one per query row and 64-key block)
long flashKeepWords(const AttnShape& s);
// keepBits (optional): written with the keep mask when dropout is on
void flashAttentionForward(float* out, half16* out16, float* lse, const half16* qkv16, AttnShape s, Site drop,
                           uint64_t* keepBits, cudaStream_t st);
// keepBits: the forward pass's mask (null: the mask is recomputed); scratch: flashBackwardScratchFloats(s)
// floats, 16-byte aligned (D and the dS tiles the dQ kernel reads); dout16: scratch of B*T*C bf16 (dout rounded).
// The gradient goes to dqkv (fp32), or to dqkv16 (bf16) when that is set.
void flashAttentionBackward(float* dqkv, half16* dqkv16, const float* dout, const float* out, const half16* qkv16,
                            const float* lse, AttnShape s, Site drop, const uint64_t* keepBits, float* scratch,
                            half16* dout16, cudaStream_t st);
long flashBackwardScratchFloats(const AttnShape& s);

// ---- contextualization.cu: Backpack weights alpha for a chunk of sequences, in the mixing layout [b][i][j][l]
struct CtxShape {
  int B, T, d, k;
  // Softmax kernels that move alpha's [i][j][l] rows through shared memory (coalesced; the bf16 mode uses them,
  // fp32/TF32 keep the kernels their parity was measured with)
  bool coalesced = false;
};
struct AlphaEdit {            // inference interventions on alpha
  int sense = -1;             // alpha of this sense is multiplied by factor at key positions where keyMask[j] = 1
  float factor = 1.0f;
  const uint8_t* keyMask = nullptr;  // device [B*T]
};
// Sequences [b0, b0+n): scores (scratch [n][k][T][T]) -> alpha [n][T][T][k] (zeros above the diagonal), lse [B][k][T];
// alpha16 (optional): alpha rounded to bf16 as well.
void alphaChunk(const Blas& b, float* alpha, float* lse, const float* qk, int b0, int n, CtxShape s, float* scores,
                const float** ptrs, const AlphaEdit* edit, half16* alpha16 = nullptr);
// Backward for the chunk: dalpha [n][T][T][k] -> dqk rows of these sequences (overwritten); dS: n*k*T*T floats.
void alphaChunkBackward(const Blas& b, float* dqk, const float* dalpha, const float* qk, const float* alpha, int b0,
                        int n, CtxShape s, float* dS, const float** ptrs);
// alpha [T][T][k] of one sequence -> out [k][T][T]
void alphaToHeadMajor(float* out, const float* alpha, CtxShape s, cudaStream_t st);

// ---- backpack_output.cu: o = sum_l sum_{j<=i} alpha_l[i,j] C(x_j)_l, a chunk of sequences at a time (the
// [k][T][T] weights live in scratch only; backward recomputes them). scratch >= seqs*4.5*k*T*T floats.
// Mixed precision (senses16, the bf16 twin of senses, non-null): alpha is rounded to bf16 as well and the mixing
// products take bf16 operands; the backward pass then needs dout16, scratch for dout rounded (>= B*T*d).
// Returns whether the fused kernels of backpack_flash.cu ran instead (see there).
bool backpackForward(const Blas& b, float* out, float* lse, const float* qk, const float* senses, CtxShape s,
                     AttnWork w, const AlphaEdit* edit, float* alphaOutHost, const half16* senses16 = nullptr);
void backpackBackward(const Blas& b, float* dqk, float* dsenses, const float* dout, const float* qk,
                      const float* senses, const float* lse, CtxShape s, AttnWork w, const half16* senses16 = nullptr,
                      half16* dout16 = nullptr);

// ---- backpack_flash.cu: the same output fused flash style (bf16 operands, no [k][T][T] weights at all): lse
// [B][k][T] and out [B][T][d] from qk16 (the bf16 twin of qk) and senses16. Used by backpackForward in mixed
// precision when BACKPACK_CUDA_FUSED_CONTEXT=1 and the weights are not requested.
bool backpackFlashSupported(const CtxShape& s);
void backpackFlashForward(float* out, float* lse, const half16* qk16, const half16* senses16, CtxShape s,
                          const AlphaEdit* edit, cudaStream_t st);
// Per-position sense multipliers: out[i][l][:] = senses[i][l][:] * scale[i][l]
void scaleSenses(float* out, const float* senses, const float* scale, int N, int k, int d, cudaStream_t st);

// ---- softmax_xent.cu: tied head + softmax cross-entropy, row chunk by chunk; the logits buffer of a chunk is
// turned into dlogits in place (probabilities are never stored separately). In mixed precision the bf16 dlogits
// of several chunks (rows16 rows) gather before the dx and dwte products run once over all of them: each dwte
// product reads and writes the whole [V][d] gradient, so fewer, longer products move far less memory.
struct HeadArgs {
  int N, d, V;
  const float* x;          // [N][d]
  const float* wte;        // [V][d]
  const int32_t* targets;  // device [N] or null
  float* lossPerToken;     // device [N] (required with targets)
  float* logitsHost;       // host [N][V] or null
  float* scratch;          // >= chunk*V
  int chunk;
  float* dx;               // null: forward only
  float* dwte;
  float dscale;            // gradScale / counted targets
  // Mixed precision (all three set, or none): x and wte in bf16, and the dlogits in bf16.
  const half16* x16 = nullptr;    // [N][d]
  const half16* wte16 = nullptr;  // [V][d]
  half16* scratch16 = nullptr;    // >= rows16*V
  int rows16 = 0;               // >= chunk: whole chunks, or all N rows
  // Mixed-precision training: the logits themselves in bf16 too (where the row kernel applies; see
  // headForwardBackward). Off: fp32 logits, as evaluation always has.
  bool logits16 = false;
};
void headForwardBackward(const Blas& b, const HeadArgs& a);

// ---- adamw.cu
// Every tensor in one launch. The block table (built once per tensor layout by adamwPlan) maps each block to
// up to kAdamBlockElems elements of one tensor. p16 (optional): the bf16 shadow of p, refreshed with the new
// values; gradScale: the clipping factor, applied to g (in place) before the update.
constexpr int kAdamBlockElems = 1024;
struct AdamBlock {
  long start;  // first element (offset into the flat parameter buffer)
  long end;    // one past the last element of this block's slice
  int decay;   // 1: weight decay applies to this tensor
};
// Host: the block table of tensors (offset, size, decay) laid out in one flat buffer.
void adamwPlan(std::vector<AdamBlock>& out, const long* offsets, const long* sizes, const bool* decay, int count);
void adamwAll(float* p, float* g, float* m, float* v, const AdamBlock* blocks, int nblocks, float lr, float b1,
              float b2, float eps, float wd, float c1, float c2, cudaStream_t st, half16* p16, float gradScale);
// Adds sum(x^2) into *acc (device double).
void sumSquares(double* acc, const float* x, long n, cudaStream_t st);

// ---- decode kernels (generate.cu): one query row per (row, head) over the cached keys/values
void decodeAttention(float* out, const float* qkv, const float* kc, const float* vc, const int* rowIds,
                     const int* lens, int n, int H, int d, int cap, float scale, cudaStream_t st);

}  // namespace bp::BP_CUDA_NS
