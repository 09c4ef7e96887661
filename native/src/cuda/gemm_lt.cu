// bf16 linear layers on cuBLASLt whose epilogue adds the bias (and applies GELU) and writes bf16 directly: the
// plain cuBLAS path writes fp32 and a second kernel reads it back to add the bias, apply GELU and round. Used
// where every consumer of the output reads bf16 (the MLPs' hidden layer, qkv for the fused attention, the sense
// vectors in training). Row-major out[N][OC] = inp[N][IC] w[OC][IC]^T is the column-major out^T = w^T inp^T,
// so cuBLASLt sees A = w (transposed), B = inp, and the bias runs along D's rows (OC).
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

namespace bp::cuda {

namespace {

void ltCheck(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLASLt ") + what + " failed with status " + std::to_string((int)s));
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
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// One product shape with its descriptors and the algorithm the heuristic picked; the bias and aux pointers are
// set per call (pointers of the same alignment as the ones the algorithm was picked for).
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

}  // namespace

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspaceBytes = 32u << 20;
  bool fp32Bias = true;  // the bias vector in fp32 (else its bf16 shadow); settled by the probe
  // (N, IC, OC, epilogue and bias type, alignments of inp, w, out, bias, aux)
  using Key = std::tuple<int, int, int, int, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t>;
  std::map<Key, Plan> plans;
  ~LtContext() {
    for (auto& [k, p] : plans) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.d);
      cublasLtMatmulDescDestroy(p.desc);
    }
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }
};

// The plan for this call's shape and alignments, built on first use. Returns null when the heuristic has no
// algorithm for it.
static Plan* planFor(LtContext& lt, int N, int IC, int OC, Epilogue e, const void* inp, const void* w, const void* out,
                     const void* bias, const void* aux) {
  const LtContext::Key key{N, IC, OC, 2 * (int)e + lt.fp32Bias, alignmentOf(inp), alignmentOf(w), alignmentOf(out), alignmentOf(bias),
                           aux ? alignmentOf(aux) : 0u};
  if (auto it = lt.plans.find(key); it != lt.plans.end()) return &it->second;
  Plan p;
  ltCheck(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor");
  const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  const cublasLtEpilogue_t epi = ltEpilogue(e);
  const int32_t biasType = lt.fp32Bias ? CUDA_R_32F : CUDA_R_16BF;
  auto set = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t n) {
    ltCheck(cublasLtMatmulDescSetAttribute(p.desc, attr, v, n), "descriptor attribute");
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT);
  set(CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN);
  set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &biasType, sizeof biasType);
  set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  if (aux) {
    const int64_t ld = OC;
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
  }
  ltCheck(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, IC, OC, IC), "layout");
  ltCheck(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, IC, N, IC), "layout");
  ltCheck(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16BF, OC, N, OC), "layout");
  cublasLtMatmulPreference_t pref = nullptr;
  ltCheck(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const uint32_t alA = std::get<5>(key), alB = std::get<4>(key), alD = std::get<6>(key);
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
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.desc);
    return nullptr;
  }
  p.algo = result.algo;
  return &lt.plans.emplace(key, p).first->second;
}

static bool tryLinear(const Blas& b, bf16* out16, bf16* pre16, const bf16* inp16, const bf16* w16, const void* bias,
                      int N, int IC, int OC, Epilogue e) {
  LtContext& lt = *b.lt;
  Plan* p = planFor(lt, N, IC, OC, e, inp16, w16, out16, bias, e == Epilogue::BiasGeluAux ? pre16 : nullptr);
  if (!p) return false;
  ltCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "bias");
  if (e == Epilogue::BiasGeluAux)
    ltCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &pre16, sizeof pre16),
            "aux");
  const float one = 1.0f, zero = 0.0f;
  const cublasStatus_t s = cublasLtMatmul(lt.handle, p->desc, &one, w16, p->a, inp16, p->b, &zero, out16, p->d, out16,
                                          p->d, &p->algo, lt.workspace, lt.workspaceBytes, b.stream);
  return s == CUBLAS_STATUS_SUCCESS;
}

void linearForwardLt(const Blas& b, bf16* out16, bf16* pre16, const bf16* inp16, const bf16* w16, const float* bias,
                     const bf16* bias16, int N, int IC, int OC, Epilogue e) {
  if (N <= 0) return;
  b.flopsBf16 += 2.0 * N * OC * IC;
  const void* bp = b.lt->fp32Bias ? static_cast<const void*>(bias) : static_cast<const void*>(bias16);
  if (!tryLinear(b, out16, pre16, inp16, w16, bp, N, IC, OC, e))
    throw Error("cuBLASLt has no kernel for the fused linear layer " + std::to_string(N) + "x" + std::to_string(IC) +
                " -> " + std::to_string(OC) + " (run with BACKPACK_CUDA_LT=0 to use plain cuBLAS products)");
}

// A 64x64x64 product of ones (each output 64 + bias) against the expected values, per epilogue: tells whether
// this cuBLASLt runs the fused layers, and whether it takes the bias in fp32 or only in the output's bf16.
static bool probe(Blas& b) {
  constexpr int n = 64;
  std::vector<bf16> ones(n * n, __float2bfloat16_rn(1.0f)), biasH(n);
  std::vector<float> bias(n);
  for (int i = 0; i < n; i++) bias[i] = -64.0f + 0.25f * i, biasH[i] = __float2bfloat16_rn(bias[i]);
  bf16 *x = nullptr, *out = nullptr, *pre = nullptr, *b16 = nullptr;
  float* b32 = nullptr;
  BP_CUDA(cudaMalloc(&x, sizeof(bf16) * n * n));
  BP_CUDA(cudaMalloc(&out, sizeof(bf16) * n * n));
  BP_CUDA(cudaMalloc(&pre, sizeof(bf16) * n * n));
  BP_CUDA(cudaMalloc(&b16, sizeof(bf16) * n));
  BP_CUDA(cudaMalloc(&b32, sizeof(float) * n));
  // on b's (non-blocking) stream, so the products below are ordered after the copies
  BP_CUDA(cudaMemcpyAsync(x, ones.data(), sizeof(bf16) * n * n, cudaMemcpyHostToDevice, b.stream));
  BP_CUDA(cudaMemcpyAsync(b16, biasH.data(), sizeof(bf16) * n, cudaMemcpyHostToDevice, b.stream));
  BP_CUDA(cudaMemcpyAsync(b32, bias.data(), sizeof(float) * n, cudaMemcpyHostToDevice, b.stream));
  bool ok = false;
  for (bool fp32Bias : {true, false}) {
    b.lt->fp32Bias = fp32Bias;
    ok = true;
    for (Epilogue e : {Epilogue::Bias, Epilogue::BiasGelu, Epilogue::BiasGeluAux}) {
      if (!ok) break;
      if (!tryLinear(b, out, pre, x, x, fp32Bias ? (const void*)b32 : (const void*)b16, n, n, n, e)) {
        ok = false;
        break;
      }
      std::vector<bf16> o(n * n), q(n * n);
      BP_CUDA(cudaMemcpyAsync(o.data(), out, sizeof(bf16) * n * n, cudaMemcpyDeviceToHost, b.stream));
      BP_CUDA(cudaMemcpyAsync(q.data(), pre, sizeof(bf16) * n * n, cudaMemcpyDeviceToHost, b.stream));
      BP_CUDA(cudaStreamSynchronize(b.stream));
      for (int r = 0; r < n && ok; r++)
        for (int c = 0; c < n && ok; c++) {  // out[r][c] = 64 + bias[c]
          const float z = 64.0f + bias[c];
          const float want = e == Epilogue::Bias ? z : geluValue(z);
          ok = std::fabs(__bfloat162float(o[r * n + c]) - want) <= 1e-2f * (1.0f + std::fabs(want));
          if (ok && e == Epilogue::BiasGeluAux) ok = std::fabs(__bfloat162float(q[r * n + c]) - z) <= 1e-2f * (1.0f + std::fabs(z));
        }
    }
    if (ok) break;
  }
  cudaFree(x);
  cudaFree(out);
  cudaFree(pre);
  cudaFree(b16);
  cudaFree(b32);
  return ok;
}

bool enableLt(Blas& b) {
  if (const char* e = std::getenv("BACKPACK_CUDA_LT"); e && std::string(e) == "0") return false;
  auto lt = std::make_shared<LtContext>();
  if (cublasLtCreate(&lt->handle) != CUBLAS_STATUS_SUCCESS) return false;
  BP_CUDA(cudaMalloc(&lt->workspace, lt->workspaceBytes));
  b.lt = lt;
  if (probe(b)) return true;
  std::fprintf(stderr, "backpack: cuBLASLt fused bias/GELU products failed their probe; using plain cuBLAS\n");
  b.lt.reset();
  return false;
}

}  // namespace bp::cuda
