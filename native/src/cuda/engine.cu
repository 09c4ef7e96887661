#include "engine.h"

// NCCL is optional for single-GPU builds (e.g. the bench harness built with nvcc alone); CMake builds require it.
#if !defined(BP_NO_NCCL_HEADER) && __has_include(<nccl.h>)
#include <nccl.h>
#define BP_HAVE_NCCL 1
#else
#define BP_HAVE_NCCL 0
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "device_model.cuh"

namespace bp::BP_CUDA_NS {

int deviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string deviceName(int device) {
  cudaDeviceProp p{};
  BP_CUDA(cudaGetDeviceProperties(&p, device));
  return p.name;
}

#if BP_HAVE_NCCL
// One communicator per replica, and per replica a stream for its all-reduces (so they overlap the backward
// pass on the compute stream) with the events that order the two.
struct Nccl {
  std::vector<ncclComm_t> comms;
  std::vector<int> devices;
  std::vector<cudaStream_t> streams;
  std::vector<cudaEvent_t> ready, done;  // compute -> comm: a bucket is final; comm -> compute: all reduced
  std::atomic<bool> aborted{false};
  // A replica that fails after issuing part of its buckets leaves the others' all-reduces waiting for it:
  // aborting the communicators ends those, so the other threads return instead of hanging.
  void abort() {
    if (aborted.exchange(true)) return;
    for (ncclComm_t c : comms) ncclCommAbort(c);
  }
  ~Nccl() {
    for (size_t i = 0; i < devices.size(); i++) {
      cudaSetDevice(devices[i]);
      if (i < streams.size()) cudaStreamDestroy(streams[i]);
      if (i < ready.size()) cudaEventDestroy(ready[i]);
      if (i < done.size()) cudaEventDestroy(done[i]);
    }
    if (!aborted)
      for (ncclComm_t c : comms) ncclCommDestroy(c);
  }
};

static void ncclCheck(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("NCCL ") + what + ": " + ncclGetErrorString(r));
}
#else
struct Nccl {  // single-GPU builds (several devices are refused in the constructor)
  std::atomic<bool> aborted{false};
  void abort() {}
};
#endif

// The bf16 build runs fp32, tf32 and bf16; the fp16 build only fp16 (its other modes would repeat the first's).
static Precision parsePrecision(const std::string& s) {
  if (s == kHalf16Name) return Precision::Mixed16;
  if (!kFp16Build) {
    if (s == "fp32") return Precision::FP32;
    if (s == "tf32") return Precision::TF32;
    throw Error("precision must be fp32, tf32, bf16 (or fp16, on the fp16 build), got '" + s + "'");
  }
  throw Error(std::string("this build of the CUDA backend runs precision ") + kHalf16Name + " only, got '" + s + "'");
}

Engine::Engine(const Config& cfg, const std::vector<int>& devs, const std::string& prec)
    : host(cfg), devices(devs), precision(prec) {
  const Precision p = parsePrecision(prec);
  const int available = deviceCount();
  check(!devices.empty(), "CUDA backend: no devices given");
  for (int d : devices)
    check(d >= 0 && d < available, "CUDA device " + std::to_string(d) + " does not exist (" + std::to_string(available) +
                                       " visible)");
  for (int d : devices) replicas.push_back(std::make_unique<DeviceModel>(host.cfg, host.tensors, d, p));
  if (devices.size() > 1) {
#if !BP_HAVE_NCCL
    throw Error("this build has no NCCL: use one GPU");
#else
    nccl = std::make_unique<Nccl>();
    nccl->comms.resize(devices.size());
    ncclCheck(ncclCommInitAll(nccl->comms.data(), (int)devices.size(), devices.data()), "init");
    nccl->devices = devices;
    for (int d : devices) {
      BP_CUDA(cudaSetDevice(d));
      nccl->streams.emplace_back();
      BP_CUDA(cudaStreamCreateWithFlags(&nccl->streams.back(), cudaStreamNonBlocking));
      for (auto* ev : {&nccl->ready, &nccl->done}) {
        ev->emplace_back();
        BP_CUDA(cudaEventCreateWithFlags(&ev->back(), cudaEventDisableTiming));
      }
    }
#endif
  }
  pushParams();
}

Engine::~Engine() = default;

// Runs fn(replica index) on one thread per replica; rethrows the first failure.
template <typename Fn>
static void onEach(size_t n, Fn fn) {
  if (n == 1) {
    fn(0);
    return;
  }
  std::vector<std::thread> threads;
  std::exception_ptr first;
  std::mutex mu;
  for (size_t i = 0; i < n; i++)
    threads.emplace_back([&, i]() {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

static void copyTo(DevBuf<float>& dst, const std::vector<float>& src, int device, cudaStream_t st) {
  BP_CUDA(cudaSetDevice(device));
  dst.resize(src.size());
  BP_CUDA(cudaMemcpyAsync(dst.p, src.data(), sizeof(float) * src.size(), cudaMemcpyHostToDevice, st));
  BP_CUDA(cudaStreamSynchronize(st));
}

static void copyFrom(std::vector<float>& dst, const DevBuf<float>& src, long n, int device, cudaStream_t st) {
  BP_CUDA(cudaSetDevice(device));
  dst.resize(n);
  BP_CUDA(cudaMemcpyAsync(dst.data(), src.p, sizeof(float) * n, cudaMemcpyDeviceToHost, st));
  BP_CUDA(cudaStreamSynchronize(st));
}

void Engine::pushParams() {
  for (auto& r : replicas) {
    copyTo(r->params, host.params, r->device, r->stream);
    r->refreshShadow();  // bf16 copies of the weights (mixed precision only)
    r->sync();
  }
}
void Engine::pullParams() { copyFrom(host.params, replicas[0]->params, host.numParams(), devices[0], replicas[0]->stream); }
void Engine::pullGrads() {
  allReduceGrads();
  copyFrom(host.grads, replicas[0]->grads, host.numParams(), devices[0], replicas[0]->stream);
}

void Engine::pushOptimizerState() {
  adamStep = host.adamStep;
  for (auto& r : replicas) {
    if (host.m.empty()) {
      r->m.release();
      r->v.release();
      continue;
    }
    copyTo(r->m, host.m, r->device, r->stream);
    copyTo(r->v, host.v, r->device, r->stream);
  }
}

void Engine::pullOptimizerState() {
  host.adamStep = adamStep;
  DeviceModel& r = *replicas[0];
  if (r.m.n < (size_t)host.numParams()) {
    host.m.clear();
    host.v.clear();
    return;
  }
  copyFrom(host.m, r.m, host.numParams(), r.device, r.stream);
  copyFrom(host.v, r.v, host.numParams(), r.device, r.stream);
}

// Uploads one call's interventions; `tokens`/`n` give the positions an alpha edit looks at.
static std::unique_ptr<DeviceInterventions> uploadInterventions(const Interventions* iv, const Config& cfg,
                                                                 const int32_t* tokens, long n, bool withScale,
                                                                 int device) {
  if (!iv) return nullptr;
  BP_CUDA(cudaSetDevice(device));
  auto d = std::make_unique<DeviceInterventions>();
  auto put = [](auto& buf, const auto* src, long count) {
    buf.resize(count);
    BP_CUDA(cudaMemcpy(buf.p, src, sizeof(*src) * count, cudaMemcpyHostToDevice));
  };
  if (iv->embedding.count > 0) {
    d->embedCount = iv->embedding.count;
    put(d->embedIds, iv->embedding.ids, iv->embedding.count);
    put(d->embedRows, iv->embedding.rows, (long)iv->embedding.count * cfg.d);
  }
  if (!iv->replaceIds.empty()) {
    d->replaceCount = (int)iv->replaceIds.size();
    put(d->replaceIds, iv->replaceIds.data(), d->replaceCount);
    put(d->replaceVectors, iv->replaceVectors, (long)d->replaceCount * cfg.senses * cfg.d);
  }
  if (withScale && iv->senseScale) {
    d->hasScale = true;
    put(d->senseScale, iv->senseScale, n * cfg.senses);
  }
  if (iv->alphaSense >= 0 && tokens) {
    std::vector<uint8_t> mask(n);
    for (long i = 0; i < n; i++)
      mask[i] = std::find(iv->alphaTokens.begin(), iv->alphaTokens.end(), tokens[i]) != iv->alphaTokens.end();
    put(d->keyMask, mask.data(), n);
    d->hasAlphaEdit = true;
    d->edit.sense = iv->alphaSense;
    d->edit.factor = iv->alphaFactor;
    d->edit.keyMask = d->keyMask.p;
  }
  return d;
}

double Engine::forward(const ForwardRequest& r, long* counted) {
  auto iv = uploadInterventions(r.interventions, host.cfg, r.tokens, (long)r.B * r.T, true, devices[0]);
  ForwardRequest q = r;
  q.train = false;
  return replicas[0]->forward(q, 0, counted, iv.get());
}

double Engine::trainStep(const ForwardRequest& r, long* counted) {
  const int R = (int)replicas.size();
  check(r.targets != nullptr, "trainStep needs targets");
  long total = 0;
  for (long i = 0; i < (long)r.B * r.T; i++) total += r.targets[i] >= 0;
  if (counted) *counted = total;
  // Rows of the batch are split as evenly as possible; the loss is normalised by the GLOBAL target count so
  // the summed gradients equal the single-device gradient of the same batch.
  std::vector<int> b0(R + 1, 0);
  for (int i = 0; i < R; i++) b0[i + 1] = b0[i] + r.B / R + (i < r.B % R ? 1 : 0);
  std::vector<double> loss(R, 0.0);
  if (R > 1) {
    checkCommunicators();
    // Replicas must issue the same collectives, so a cancel is honoured here, between micro-batches, and not by
    // one replica in the middle of its pass.
    if (r.cancel && r.cancel->load(std::memory_order_relaxed)) throw Cancelled();
    makeGradsLocal();
  }
  const bool reduce = R > 1 && r.lastMicroBatch;
  onEach(R, [&](size_t i) {
    try {
      trainReplica(i, r, b0[i], b0[i + 1] - b0[i], total, reduce, &loss[i]);
    } catch (...) {
      if (reduce) abortReduction();
      throw;
    }
  });
  if (R > 1) grads = reduce ? Grads::Reduced : Grads::Local;
  double sum = 0.0;
  for (double l : loss) sum += l;
  return sum;
}

// Replica i's share of a micro-batch: rows [row0, row0 + rows), forward and backward (with the overlapped
// all-reduce when `reduce`).
void Engine::trainReplica(size_t i, const ForwardRequest& r, int row0, int rows, long total, bool reduce,
                          double* loss) {
  const bool parallel = replicas.size() > 1;
  DeviceModel& rep = *replicas[i];
  rep.onGradsReady = nullptr;
  if (reduce) rep.onGradsReady = [this, i](long offset, long count) { reduceBucket(i, offset, count); };
  if (rows > 0) {
    ForwardRequest q = r;
    q.B = rows;
    q.tokens = r.tokens + (long)row0 * r.T;
    q.targets = r.targets + (long)row0 * r.T;
    q.train = true;
    q.logitsOut = q.hiddenOut = q.alphaOut = nullptr;
    q.lossPerToken = r.lossPerToken ? r.lossPerToken + (long)row0 * r.T : nullptr;
    q.row0 = r.row0 + row0;  // the dropout masks of these rows are the ones one device would draw
    if (parallel) {
      q.cancel = nullptr;  // trainStep checks it for all replicas at once
    }
    *loss = rep.forward(q, total, nullptr, nullptr);
    rep.backward(q);
  }
  if (reduce) finishReduce(i, rows == 0);
}

void Engine::abortReduction() { nccl->abort(); }

// Called by replica i's backward pass for each finished bucket: its all-reduce goes on the replica's comm stream
// once the compute stream has written the bucket, and overlaps the backward pass of the layers before it.
void Engine::reduceBucket(size_t i, long offset, long count) {
#if BP_HAVE_NCCL
  DeviceModel& rep = *replicas[i];
  BP_CUDA(cudaEventRecord(nccl->ready[i], rep.stream));
  BP_CUDA(cudaStreamWaitEvent(nccl->streams[i], nccl->ready[i], 0));
  ncclCheck(ncclAllReduce(rep.grads.p + offset, rep.grads.p + offset, (size_t)count, ncclFloat, ncclSum,
                          nccl->comms[i], nccl->streams[i]),
            "all-reduce");
#else
  (void)i, (void)offset, (void)count;
  throw Error("this build has no NCCL: use one GPU");
#endif
}

// After replica i's backward pass: NCCL matches collectives by their order, so a replica that had no rows issues
// the same buckets (its zero buffer is its contribution); then the compute stream waits for the reduction.
void Engine::finishReduce(size_t i, bool idle) {
  DeviceModel& rep = *replicas[i];
  rep.onGradsReady = nullptr;
  BP_CUDA(cudaSetDevice(rep.device));
  if (idle)
    for (const auto& b : rep.gradBuckets()) reduceBucket(i, b.first, b.second);
#if BP_HAVE_NCCL
  BP_CUDA(cudaEventRecord(nccl->done[i], nccl->streams[i]));
  BP_CUDA(cudaStreamWaitEvent(rep.stream, nccl->done[i], 0));
#endif
  rep.sync();
}

void Engine::makeGradsLocal() {
  if (grads == Grads::Reduced)
    for (size_t i = 1; i < replicas.size(); i++) replicas[i]->zeroGrad();
  grads = Grads::Local;
}

void Engine::checkCommunicators() const {
  check(!nccl || !nccl->aborted,
        "data parallel: the GPUs' communicators were aborted after an earlier failure; create the model again");
}

void Engine::allReduceGrads() {
  if (grads != Grads::Local) return;
  checkCommunicators();
  grads = Grads::Reduced;
#if BP_HAVE_NCCL
  ncclCheck(ncclGroupStart(), "group start");
  for (size_t i = 0; i < replicas.size(); i++) {
    DeviceModel& r = *replicas[i];
    ncclCheck(ncclAllReduce(r.grads.p, r.grads.p, r.numParams, ncclFloat, ncclSum, nccl->comms[i], r.stream),
              "all-reduce");
  }
  ncclCheck(ncclGroupEnd(), "group end");
  for (auto& r : replicas) {
    BP_CUDA(cudaSetDevice(r->device));
    r->sync();
  }
#endif
}

void Engine::zeroGrad() {
  for (auto& r : replicas) r->zeroGrad();
  grads = Grads::Zero;
}

double Engine::optimizerStep(const OptimizerArgs& o) {
  allReduceGrads();
  const double norm = std::sqrt(replicas[0]->gradSumSquares()) * o.unscale;
  if (!std::isfinite(norm)) return norm;  // skipped; the all-reduced gradients are equal, so every replica agrees
  const float s = gradientFactor(o, norm);
  adamStep++;
  onEach(replicas.size(), [&](size_t i) {
    replicas[i]->adamwStep(host.tensors, o.lr, o.weightDecay, o.beta1, o.beta2, o.eps, adamStep, s);
    replicas[i]->sync();
  });
  host.adamStep = adamStep;
  return norm;
}

void Engine::senseVectors(const int32_t* ids, int n, float* out, const Interventions* iv) {
  auto d = uploadInterventions(iv, host.cfg, nullptr, 0, false, devices[0]);
  replicas[0]->senseVectors(ids, n, out, d.get());
}

Engine::GemmFlops Engine::gemmFlops() const {
  const Blas& b = replicas[0]->blas;
  return GemmFlops{b.flops16, b.flopsFp32};
}

std::string Engine::kernelPaths() const {
  const DeviceModel& r = *replicas[0];
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : ",") + std::string(name);
  };
  add(r.mixed, kHalf16Name);
  add(r.flashAttn, "flash");
  add(r.fusedLinear, "lt");
  add(r.geluGrad16, "grad16-gelu");
  add(r.qkvGrad16, "grad16-qkv");
  add(r.mixed && r.logits16, "logits16");
  add(r.fusedContext, "fused-context");
  return s;
}

void Engine::resetGemmFlops() {
  for (auto& r : replicas) r->blas.flops16 = r->blas.flopsFp32 = 0.0;
}

void Engine::cacheReset(int rows, int cap) { replicas[0]->cacheReset(rows, cap); }

void Engine::cachePrefill(int row0, int n, const int32_t* tokens, int T, float* lastLogits, const Interventions* iv) {
  auto d = uploadInterventions(iv, host.cfg, tokens, (long)n * T, true, devices[0]);
  replicas[0]->cachePrefill(row0, n, tokens, T, lastLogits, d.get());
}

void Engine::cacheDecode(const int* rowIds, int n, const int32_t* tokens, float* logits, const Interventions* iv) {
  // Decode reads senseScale/alpha edits from the host struct (they index cached positions, not the new tokens).
  auto d = uploadInterventions(iv, host.cfg, nullptr, 0, false, devices[0]);
  replicas[0]->cacheDecode(rowIds, n, tokens, logits, iv, d.get());
}

}  // namespace bp::BP_CUDA_NS
