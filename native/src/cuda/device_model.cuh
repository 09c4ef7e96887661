// One model replica on one GPU: fp32 master parameters, gradients and AdamW moments in single device buffers
// laid out exactly like the CPU model (same tensor table), plus an activation arena. The Engine (engine.cu)
// owns one replica per device and keeps the host copy in sync.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../model.h"
#include "layers.cuh"

namespace bp::BP_CUDA_NS {

// Mixed16: GEMM operands in half16 (bf16, or fp16 in the fp16 build) with fp32 accumulation and master weights.
enum class Precision { FP32 = 0, TF32 = 1, Mixed16 = 2 };

// Device buffer that frees itself.
template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { release(); }
  void release() {
    if (p) cudaFree(p);
    p = nullptr;
    n = 0;
  }
  void resize(size_t count) {
    if (count <= n) return;
    release();
    BP_CUDA(cudaMalloc(&p, sizeof(T) * (count ? count : 1)));
    n = count;
  }
};

struct LayerOff {
  long ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};
struct SenseOff {
  long ln0w, ln0b, ln1w, ln1b, faw, fab, fapw, fapb, ln2w, ln2b, fbw, fbb, fbpw, fbpb;
};

// Intervention inputs uploaded for one call.
struct DeviceInterventions {
  DevBuf<float> senseScale, replaceVectors, embedRows;
  DevBuf<int32_t> replaceIds, embedIds;
  DevBuf<uint8_t> keyMask;
  int replaceCount = 0, embedCount = 0;
  bool hasScale = false, hasAlphaEdit = false;
  AlphaEdit edit;
  EmbedOverride embed() const { return EmbedOverride{embedCount, embedIds.p, embedRows.p}; }
};

struct DeviceCache {
  int rows = 0, cap = 0;
  std::vector<int> len;
  std::vector<int32_t> ids;  // host copy [rows][cap] (alpha edits need the cached token ids)
  DevBuf<float> k, v;        // [L][rows][cap][d]
  DevBuf<float> senses;      // [rows][cap][k*d]
  DevBuf<float> akeys;       // [rows][cap][d]
};

class DeviceModel {
 public:
  DeviceModel(const Config& cfg, const std::vector<TensorInfo>& tensors, int device, Precision prec);
  ~DeviceModel();

  const Config cfg;
  const int device;
  cudaStream_t stream = nullptr;
  Blas blas;
  long numParams = 0;
  DevBuf<float> params, grads, m, v;
  // Mixed precision (Precision::Mixed16): the big GEMMs take bf16 operands. params16 is a bf16 shadow of params,
  // refreshed by refreshShadow() after an upload and by the AdamW kernel after every step; activations that feed
  // GEMMs get a bf16 twin where they are produced (arena16); gradients are rounded once per GEMM input.
  bool mixed = false;   // bf16-operand GEMMs (Precision::Mixed16 and the probe in the constructor passed)
  bool attn16 = false;  // ... and for the attention's batched products too
  bool sensesRounded = false;  // a.senses16 holds the last sense forward's vectors (no replacement intervention)
  // The fused attention kernels (flash_attention.cu) in mixed mode; BACKPACK_CUDA_FLASH=0 keeps the batched
  // products (the path the fused kernels are checked against)
  bool flashAttn = false;
  // cuBLASLt products with the bias add (and GELU) in their epilogue, bf16 out (mixed mode, unless its probe
  // failed or BACKPACK_CUDA_LT=0): the MLPs' hidden layers, and in training qkv and the sense vectors
  bool fusedLinear = false;
  // Gradient operands straight from their producers in bf16 (mixed mode; BACKPACK_CUDA_GRAD16=0 turns it off):
  // the cuBLASLt GELU-gradient product writes an MLP's hidden gradient (geluGrad16), the fused attention writes
  // dqkv (qkvGrad16); the bias gradients then come from those. On an H200 it passed the same parity checks and
  // trained Small 2-3% faster than the fp32 gradients plus a rounding pass (bench/results/gpu-check.txt).
  bool geluGrad16 = false, qkvGrad16 = false;
  // Training's logits in bf16 (mixed mode; BACKPACK_CUDA_LOGITS16=0: fp32), as autocast has them: the softmax and
  // the loss read them once, half the bytes of fp32. Evaluation's logits stay fp32.
  bool logits16 = false;
  // The last Backpack forward pass ran the fused contextualization (backpack_flash.cu, BACKPACK_CUDA_FUSED_CONTEXT=1)
  bool fusedContext = false;
  // Site::offset of the current request's dropout sites (from ForwardRequest::row0): the [N][d] ones and attention's
  uint32_t dropOffset = 0, attnDropOffset = 0;
  void setDropOffsets(const ForwardRequest& r);
  // LayerNorm backward kernel: shared atomics in fp32/TF32, register partials (vectorised) in mixed mode
  LnBackward lnBack = LnBackward::SharedAtomics;
  DevBuf<half16> params16;
  void refreshShadow();

  // Forward; with train, activations are kept and the head also writes dlogits -> gX (dscale = gradScale/count).
  // Returns the loss summed over targets >= 0 (double, on the host).
  double forward(const ForwardRequest& r, long countForScale, long* counted, DeviceInterventions* iv);
  void backward(const ForwardRequest& r);
  // Ranges {offset, count} of the flat gradient buffer, in the order the backward pass finishes them: the tail
  // (ln_f, and the Backpack's sense network and weight net), the blocks from last to first, then the embeddings.
  // They cover the buffer exactly once. With onGradsReady set, backward() calls it with each range as soon as the
  // range's gradient of this micro-batch is complete (data parallel: the engine all-reduces it meanwhile).
  std::vector<std::pair<long, long>> gradBuckets() const;
  std::function<void(long offset, long count)> onGradsReady;
  void zeroGrad();
  double gradSumSquares();
  void adamwStep(const std::vector<TensorInfo>& tensors, float lr, float wd, float b1, float b2, float eps, long step,
                 float gradScaleBeforeStep);
  void senseVectors(const int32_t* ids, int n, float* out, DeviceInterventions* iv);

  DeviceCache cache;
  void cacheReset(int rows, int cap);
  void cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits, DeviceInterventions* iv);
  void cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const Interventions* hostIv,
                   DeviceInterventions* iv);

  void sync() { BP_CUDA(cudaStreamSynchronize(stream)); }

 private:
  float* P(long off) { return params.p + off; }
  float* G(long off) { return grads.p + off; }
  const half16* W16(long off) const { return params16.p + off; }
  // An fp32 activation that only GEMMs read: in mixed mode they read its bf16 twin, so it is not written.
  float* fp32Input(float* p) const { return mixed ? nullptr : p; }
  // Linear layers by parameter offsets: bf16 tensor cores in mixed mode (inp16 = the bf16 twin of inp),
  // the configured fp32/TF32 GEMMs otherwise. b = kBiasLater: the consumer kernel adds the bias (fused).
  static constexpr long kBiasLater = -1;
  void linear(float* out, const float* inp, const half16* inp16, long w, long b, int N, int IC, int OC);
  // The gradient at a linear layer's output: src seen through the dropout of `drop` (when on) or through GELU's
  // derivative at geluPre (when set). Mixed mode applies that while rounding it to bf16 (prepareGrad16, which
  // also takes the bias gradient); fp32/TF32 write it into `work` first (work may be src: in place).
  struct GradIn {
    const float* src;
    float* work = nullptr;
    Site drop{};
    const float* geluPre = nullptr;
    const half16* geluPre16 = nullptr;  // GELU's input kept by a fused-epilogue layer (mixed mode only)
  };
  // An MLP's hidden layer act = gelu(inp W^T + b): fused on cuBLASLt (act16 only; training keeps GELU's input in
  // pre16) or the product into pre plus the bias+GELU kernel (act in fp32 mode, act16 in mixed mode).
  // geluIn(src, ...) is the GradIn of its backward.
  void mlpHidden(float* pre, half16* pre16, float* act, half16* act16, const float* inp, const half16* inp16, long w,
                 long b, int N, int IC, int OC, bool train);
  GradIn geluIn(float* src, const float* pre, const half16* pre16) const {
    return fusedLinear ? GradIn{src, src, {}, nullptr, pre16} : GradIn{src, src, {}, pre, nullptr};
  }
  void linearBack(float* dinp, long w, long b, const GradIn& g, const float* inp, const half16* inp16, int N, int IC,
                  int OC);
  // Backward of a linear layer whose output gradient its producer wrote in bf16 (dout16): bias gradient from it,
  // then the weight gradient and dinp (fp32).
  void linearBackFrom16(float* dinp, long w, long b, const half16* dout16, const half16* inp16, int N, int IC, int OC);
  // Backward of x -> fc -> GELU -> proj from proj's output gradient g into dx (fp32, overwritten); dhidden: fp32
  // scratch for GELU's output gradient [N][H] (unused with geluGrad16).
  struct MlpOff {
    long fcw, fcb, projw, projb;
  };
  struct MlpActs {  // the forward pass's x, GELU's input (pre) and output (act), each with its bf16 twin
    const float* x;
    const half16* x16;
    const float* pre;
    const half16* pre16;
    const float* act;
    const half16* act16;
  };
  void mlpBackward(float* dx, float* dhidden, const MlpOff& W, const GradIn& g, const MlpActs& A, int N, int IC,
                   int H, int OC);
  void ensureActivations(int B, int T);
  void upload(const int32_t* tokens, const int32_t* targets, int B, int T);
  void senseForward(const int32_t* dTokens, int N, bool train, uint32_t seed, float p, DeviceInterventions* iv);
  Site senseSite(bool train, float p, uint32_t seed, uint32_t stream) const;
  void senseBackward(const int32_t* dTokens, int N, uint32_t seed, float p);

  long wte = 0, wpe = 0, lnfw = 0, lnfb = 0, aw = 0, ab = 0;
  std::vector<LayerOff> layers;
  SenseOff sense{};

  int capB = 0, capT = 0;
  DevBuf<float> arena;
  DevBuf<int32_t> dTokens, dTargets, dPositions;
  DevBuf<float> dLoss, ones;
  std::vector<float> hLoss;
  struct LayerActs {
    float *ln1, *ln1m, *ln1r, *qkv, *atty, *lse, *res2, *ln2, *ln2m, *ln2r, *fch, *fchg, *res3;
    uint64_t* keepBits;  // the fused attention's dropout mask (flashAttn only; null otherwise)
    half16 *ln1h, *qkvh, *attyh, *ln2h, *fchgh;  // bf16 twins (mixed mode only; null otherwise)
    half16* fchh;  // GELU's input in bf16 (fusedLinear only; fch is not written then)
  };
  struct Acts {
    float *encoded, *lnf, *lnfm, *lnfr;
    std::vector<LayerActs> layer;
    float *r0, *h0, *h0m, *h0r, *r1, *h1, *h1m, *h1r, *fa, *fag, *r2, *h2, *h2m, *h2r, *fb, *fbg, *senses;
    float *qk, *alse, *out;
    float *branch, *attScratch, *headScratch;
    float *gRes, *gA, *gB, *gBig, *gBig2, *gX;
    // bf16 twins (mixed mode only): GEMM inputs, the rounded dY of a linear backward, the head's dlogits
    half16 *lnfh, *outh, *h1h, *fagh, *h2h, *fbgh, *g16, *headScratch16;
    half16* senses16;  // the sense vectors' bf16 twin (Backpack, mixed mode), valid while sensesRounded
    half16 *fah, *fbh;  // the sense MLPs' GELU inputs in bf16 (fusedLinear only; fa, fb are not written then)
    half16* gBig16;     // an MLP's hidden gradient from the GELU-gradient product (geluGrad16 only)
    half16* gq16;       // dqkv in bf16 from the fused attention (qkvGrad16 only)
  } a{};
  DevBuf<half16> arena16;
  int headChunk = 0, headRows16 = 0;  // logits rows per chunk; bf16 dlogits rows gathered (HeadArgs)
  int attnSeqs = 0, ctxSeqs = 0;  // sequences per attention / Backpack-mixing chunk
  DevBuf<const float*> ptrs;      // pointer arrays of the batched GEMMs
  AttnWork attnWork(const LayerActs& L) {
    return AttnWork{attnSeqs, a.attScratch, ptrs.p, flashAttn, L.keepBits};
  }
  AttnWork ctxWork() { return AttnWork{ctxSeqs, a.attScratch, ptrs.p}; }
  DevBuf<double> normAcc;
  DevBuf<AdamBlock> adamBlocks;  // the optimizer's block table (one launch for every tensor), built on first use
  int adamBlockCount = 0;
};

}  // namespace bp::BP_CUDA_NS
