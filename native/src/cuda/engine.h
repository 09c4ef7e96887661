// The CUDA backend as the addon sees it (plain C++: no CUDA types here). An Engine owns the host model (tensor
// table, initialisation, host copies for checkpoints) and one replica per GPU. Training splits each batch
// over the replicas, one thread per device, and sums the gradients with NCCL all-reduce; the optimizer then
// runs identically on every replica, so parameters stay equal without a broadcast.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../model.h"
#include "namespace.h"

namespace bp::BP_CUDA_NS {

// Number of usable CUDA devices (0 when there is no driver or GPU).
int deviceCount();
std::string deviceName(int device);

class DeviceModel;
struct Nccl;

class Engine {
 public:
  // precision: "fp32" (strict), "tf32", or "bf16": GEMM operands in bf16 (a bf16 shadow of the weights, bf16
  // twins of the activations and gradients that feed GEMMs) with fp32 accumulation; fp32 master weights,
  // optimizer state, softmaxes, normalisations and residual stream.
  Engine(const Config& cfg, const std::vector<int>& devices, const std::string& precision);
  ~Engine();

  Model host;
  const std::vector<int> devices;
  const std::string precision;

  void pushParams();          // host.params -> every replica
  void pullParams();          // replica 0 -> host.params
  void pullGrads();           // replica 0 -> host.grads (all-reduced first)
  void pushOptimizerState();  // host.m, host.v, host.adamStep -> replicas
  void pullOptimizerState();  // replica 0 -> host.m, host.v

  // Inference on replica 0.
  double forward(const ForwardRequest& r, long* counted);
  // Forward + backward of one micro-batch; rows are split over the replicas. Several GPUs: each replica
  // accumulates its own gradient sum; the sums are all-reduced during the backward pass of the last micro-batch
  // (r.lastMicroBatch), bucket by bucket while the earlier layers' backward still runs, or else before anything
  // reads them (optimizer step, pullGrads).
  double trainStep(const ForwardRequest& r, long* counted);
  void zeroGrad();
  double optimizerStep(const OptimizerArgs& o);  // as Model::optimizerStep
  void senseVectors(const int32_t* ids, int n, float* out, const Interventions* iv);
  void cacheReset(int rows, int cap);
  void cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits, const Interventions* iv);
  void cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const Interventions* iv);

  // Matmul FLOPs replica 0 has issued since the last reset, by operand type: what the benchmarks report as the
  // GEMM data type that actually ran (bf16 mode keeps a few small products, e.g. bias gradients, in fp32).
  struct GemmFlops {
    double half16 = 0.0, fp32 = 0.0;
  };
  GemmFlops gemmFlops() const;
  void resetGemmFlops();
  // The optional kernel paths the first replica runs, comma-separated (bf16, flash, lt, grad16-gelu, grad16-qkv,
  // logits16):
  // what a benchmark line measured, whatever the environment asked for.
  std::string kernelPaths() const;

 private:
  std::vector<std::unique_ptr<DeviceModel>> replicas;
  std::unique_ptr<Nccl> nccl;
  long adamStep = 0;
  // Several GPUs: what the replicas' gradient buffers hold. Local: each its own partial sum; Reduced: all the
  // global sum (after an all-reduce); Zero: all zero (either).
  enum class Grads { Zero, Local, Reduced } grads = Grads::Zero;
  // An all-reduce sums every replica's buffer, so reduced buffers must become partial sums again before more
  // micro-batches add to them: replica 0 keeps the global sum, the others restart at 0.
  void makeGradsLocal();
  void allReduceGrads();  // blocking, the whole buffer; no-op unless Local
  void trainReplica(size_t replica, const ForwardRequest& r, int row0, int rows, long total, bool reduce,
                    double* loss);
  void reduceBucket(size_t replica, long offset, long count);  // overlapped with the backward pass
  void finishReduce(size_t replica, bool idle);
  void abortReduction();  // after a replica failed mid-reduction (the others would wait for it forever)
  void checkCommunicators() const;  // throws once abortReduction has run
};

}  // namespace bp::BP_CUDA_NS
