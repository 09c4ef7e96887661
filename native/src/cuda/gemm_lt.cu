// bf16 linear layers on cuBLASLt whose epilogue adds the bias (and applies GELU) and writes bf16 directly: the
// plain cuBLAS path writes fp32 and a second kernel reads it back to add the bias, apply GELU and round. Used
// where every consumer of the output reads bf16 (the MLPs' hidden layer, qkv for the fused attention, the sense
// vectors in training), and (unless BACKPACK_CUDA_GRAD16=0) for the backward product that applies GELU's derivative.
// The products are written in cuBLAS's column-major terms (Product); forwardProduct and geluBackwardProduct map
// the row-major layers onto them.
#include <cublasLt.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "gelu.cuh"
#include "layers.cuh"

namespace bp::BP_CUDA_NS {

namespace {

void ltCheck(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLASLt ") + what + " failed with status " + std::to_string((int)s));
}

// The largest power of two (up to 256) dividing the address: the alignment the chosen kernel may assume.
uint32_t alignmentOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 2 && a % al) al /= 2;
  return al;
}

cublasLtEpilogue_t ltEpilogue(Epilogue e) {
  switch (e) {
    case Epilogue::Bias: return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::BiasGelu: return CUBLASLT_EPILOGUE_GELU_BIAS;
    case Epilogue::BiasGeluAux: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case Epilogue::DGelu: return CUBLASLT_EPILOGUE_DGELU;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}
bool hasBias(Epilogue e) { return e != Epilogue::DGelu; }
bool hasAux(Epilogue e) { return e == Epilogue::BiasGeluAux || e == Epilogue::DGelu; }

// One product in cuBLAS's column-major terms, every matrix bf16: D (m x n, ld m) = op(A) B with A stored k x m
// (transA) or m x k, B stored k x n; the epilogue's bias runs along D's m rows, its aux matrix is laid out like D.
struct Product {
  bool transA;
  int m, n, k;
  const half16* A;
  const half16* B;
  half16* D;
  Epilogue e;
  const void* bias;  // fp32 or bf16 (LtContext::fp32Bias); null when the epilogue takes none
  half16* aux;         // null when the epilogue takes none
};

// One product shape with its descriptors and the algorithm the heuristic picked; the bias and aux pointers are
// set per call (pointers of the same alignment as the ones the algorithm was picked for).
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  void destroy() {
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(desc);
  }
};

}  // namespace

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspaceBytes = 32u << 20;
  bool fp32Bias = true;  // the bias vector in fp32 (else its bf16 shadow); settled by the probe
  bool dgelu = false;    // the GELU-gradient epilogue passed the probe
  // (transA, m, n, k, epilogue, bias type, alignments of A, B, D, bias, aux)
  using Key = std::tuple<bool, int, int, int, int, bool, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t>;
  std::map<Key, Plan> plans;
  ~LtContext() {
    for (auto& [k, p] : plans) p.destroy();
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }
};

// The plan for this product's shape and alignments, built on first use. Returns null when the heuristic has no
// algorithm for it.
static Plan* planFor(LtContext& lt, const Product& q) {
  const LtContext::Key key{q.transA,         q.m,
                           q.n,              q.k,
                           (int)q.e,         lt.fp32Bias,
                           alignmentOf(q.A), alignmentOf(q.B),
                           alignmentOf(q.D), q.bias ? alignmentOf(q.bias) : 0u,
                           q.aux ? alignmentOf(q.aux) : 0u};
  if (auto it = lt.plans.find(key); it != lt.plans.end()) return &it->second;
  Plan p;
  ltCheck(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor");
  const cublasOperation_t opA = q.transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = CUBLAS_OP_N;
  const cublasLtEpilogue_t epi = ltEpilogue(q.e);
  auto set = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t n) {
    ltCheck(cublasLtMatmulDescSetAttribute(p.desc, attr, v, n), "descriptor attribute");
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA);
  set(CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB);
  set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (hasBias(q.e)) {
    const int32_t biasType = lt.fp32Bias ? CUDA_R_32F : kHalf16Type;
    set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasType, sizeof biasType);
    set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &q.bias, sizeof q.bias);
  }
  if (hasAux(q.e)) {
    const int64_t ld = q.m;
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &q.aux, sizeof q.aux);
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
  }
  if (q.transA)
    ltCheck(cublasLtMatrixLayoutCreate(&p.a, kHalf16Type, q.k, q.m, q.k), "layout");
  else
    ltCheck(cublasLtMatrixLayoutCreate(&p.a, kHalf16Type, q.m, q.k, q.m), "layout");
  ltCheck(cublasLtMatrixLayoutCreate(&p.b, kHalf16Type, q.k, q.n, q.k), "layout");
  ltCheck(cublasLtMatrixLayoutCreate(&p.d, kHalf16Type, q.m, q.n, q.m), "layout");
  cublasLtMatmulPreference_t pref = nullptr;
  ltCheck(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const uint32_t alA = std::get<6>(key), alB = std::get<7>(key), alD = std::get<8>(key);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.workspaceBytes,
                                       sizeof lt.workspaceBytes);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof alA);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof alB);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alD, sizeof alD);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alD, sizeof alD);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(lt.handle, p.desc, p.a, p.b, p.d, p.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    p.destroy();
    return nullptr;
  }
  p.algo = result.algo;
  return &lt.plans.emplace(key, p).first->second;
}

// Runs q; false when cuBLASLt has no algorithm for it or refuses it.
static bool run(const Blas& b, const Product& q) {
  LtContext& lt = *b.lt;
  Plan* p = planFor(lt, q);
  if (!p) return false;
  auto set = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t n) {
    ltCheck(cublasLtMatmulDescSetAttribute(p->desc, attr, v, n), "descriptor attribute");
  };
  if (hasBias(q.e)) set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &q.bias, sizeof q.bias);
  if (hasAux(q.e)) set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &q.aux, sizeof q.aux);
  const float one = 1.0f, zero = 0.0f;
  const cublasStatus_t s = cublasLtMatmul(lt.handle, p->desc, &one, q.A, p->a, q.B, p->b, &zero, q.D, p->d, q.D, p->d,
                                          &p->algo, lt.workspace, lt.workspaceBytes, b.stream);
  return s == CUBLAS_STATUS_SUCCESS;
}

static void runOrThrow(const Blas& b, const Product& q, const char* what) {
  b.flops16 += 2.0 * q.m * q.n * q.k;
  if (!run(b, q))
    throw Error(std::string("cuBLASLt has no kernel for the fused ") + what + " " + std::to_string(q.m) + "x" +
                std::to_string(q.n) + "x" + std::to_string(q.k) +
                " (run with BACKPACK_CUDA_LT=0 to use plain cuBLAS products)");
}

// Row-major out[N][OC] = inp[N][IC] w[OC][IC]^T is the column-major out^T = w^T inp^T: A = w (transposed).
static Product forwardProduct(half16* out16, half16* pre16, const half16* inp16, const half16* w16, const void* bias,
                              int N, int IC, int OC, Epilogue e) {
  return Product{true, OC, N, IC, w16, inp16, out16, e, bias, e == Epilogue::BiasGeluAux ? pre16 : nullptr};
}

// Row-major dinp[N][IC] = dout[N][OC] w[OC][IC] is the column-major dinp^T = w^T-as-stored (IC x OC) dout^T.
static Product geluBackwardProduct(half16* dinp16, const half16* dout16, const half16* w16, const half16* pre16, int N,
                                   int IC, int OC) {
  return Product{false, IC, N, OC, w16, dout16, dinp16, Epilogue::DGelu, nullptr, const_cast<half16*>(pre16)};
}

void linearForwardLt(const Blas& b, half16* out16, half16* pre16, const half16* inp16, const half16* w16,
                     const float* bias, const half16* bias16, int N, int IC, int OC, Epilogue e) {
  if (N <= 0) return;
  const void* bp = b.lt->fp32Bias ? static_cast<const void*>(bias) : static_cast<const void*>(bias16);
  runOrThrow(b, forwardProduct(out16, pre16, inp16, w16, bp, N, IC, OC, e), "linear layer");
}

void linearBackwardDataGeluLt(const Blas& b, half16* dinp16, const half16* dout16, const half16* w16,
                              const half16* pre16, int N, int IC, int OC) {
  if (N <= 0) return;
  runOrThrow(b, geluBackwardProduct(dinp16, dout16, w16, pre16, N, IC, OC), "GELU-gradient product");
}

// 64x64x64 products of ones against known values. The forward epilogues (output 64 + bias[c], through GELU)
// tell whether this cuBLASLt runs the fused layers and whether it takes the bias in fp32 or only in the output's
// bf16; the GELU-gradient epilogue (output 64 * gelu'(64 + bias[c]), from the GELU input the last forward kept)
// whether the backward product can use it too.
static bool probe(Blas& b) {
  constexpr int n = 64;
  std::vector<half16> ones(n * n, round16(1.0f)), biasH(n);
  std::vector<float> bias(n);
  for (int i = 0; i < n; i++) bias[i] = -64.0f + 0.25f * i, biasH[i] = round16(bias[i]);
  half16 *x = nullptr, *out = nullptr, *pre = nullptr, *b16 = nullptr;
  float* b32 = nullptr;
  BP_CUDA(cudaMalloc(&x, sizeof(half16) * n * n));
  BP_CUDA(cudaMalloc(&out, sizeof(half16) * n * n));
  BP_CUDA(cudaMalloc(&pre, sizeof(half16) * n * n));
  BP_CUDA(cudaMalloc(&b16, sizeof(half16) * n));
  BP_CUDA(cudaMalloc(&b32, sizeof(float) * n));
  // on b's (non-blocking) stream, so the products below are ordered after the copies
  BP_CUDA(cudaMemcpyAsync(x, ones.data(), sizeof(half16) * n * n, cudaMemcpyHostToDevice, b.stream));
  BP_CUDA(cudaMemcpyAsync(b16, biasH.data(), sizeof(half16) * n, cudaMemcpyHostToDevice, b.stream));
  BP_CUDA(cudaMemcpyAsync(b32, bias.data(), sizeof(float) * n, cudaMemcpyHostToDevice, b.stream));
  // runs q, then compares every element of m (row-major [64][64]) with want(column)
  auto check = [&](const Product& q, const half16* m, auto want) {
    if (!run(b, q)) return false;
    std::vector<half16> h(n * n);
    BP_CUDA(cudaMemcpyAsync(h.data(), m, sizeof(half16) * n * n, cudaMemcpyDeviceToHost, b.stream));
    BP_CUDA(cudaStreamSynchronize(b.stream));
    for (int i = 0; i < n * n; i++) {
      const float w = want(i % n);
      if (!(std::fabs(widen16(h[i]) - w) <= 1e-2f * (1.0f + std::fabs(w)))) return false;
    }
    return true;
  };
  auto z = [&](int c) { return 64.0f + bias[c]; };
  bool ok = false;
  for (bool fp32Bias : {true, false}) {
    b.lt->fp32Bias = fp32Bias;
    const void* bp = fp32Bias ? static_cast<const void*>(b32) : static_cast<const void*>(b16);
    auto fwd = [&](Epilogue e) { return forwardProduct(out, pre, x, x, bp, n, n, n, e); };
    ok = check(fwd(Epilogue::Bias), out, z) &&
         check(fwd(Epilogue::BiasGelu), out, [&](int c) { return geluValue(z(c)); }) &&
         check(fwd(Epilogue::BiasGeluAux), out, [&](int c) { return geluValue(z(c)); }) &&
         check(fwd(Epilogue::BiasGeluAux), pre, z);
    if (ok) break;
  }
  b.lt->dgelu = ok && check(geluBackwardProduct(out, x, x, pre, n, n, n), out,
                            [&](int c) { return 64.0f * geluGrad(z(c)); });
  cudaFree(x);
  cudaFree(out);
  cudaFree(pre);
  cudaFree(b16);
  cudaFree(b32);
  return ok;
}

bool enableLt(Blas& b) {
  if (envIs("BACKPACK_CUDA_LT", "0")) return false;
  auto lt = std::make_shared<LtContext>();
  if (cublasLtCreate(&lt->handle) != CUBLAS_STATUS_SUCCESS) return false;
  BP_CUDA(cudaMalloc(&lt->workspace, lt->workspaceBytes));
  b.lt = lt;
  if (probe(b)) return true;
  std::fprintf(stderr, "backpack: cuBLASLt fused bias/GELU products failed their probe; using plain cuBLAS\n");
  b.lt.reset();
  return false;
}

bool ltGeluBackwardWorks(const Blas& b) { return b.lt && b.lt->dgelu; }

}  // namespace bp::BP_CUDA_NS
