// NCCL for the CPU emulator: the all-reduces of the data-parallel engine across emulated devices
// (BACKPACK_EMULATED_GPUS, runtime.cpp). ncclCommInitAll makes one clique; every collective a rank issues gets the
// next sequence number of its communicator, as NCCL matches collectives by their order. When the last rank has
// posted operation k, the sum is taken in rank order (deterministic) and written to every rank's output. Outside a
// group a rank waits for its operation to complete; inside ncclGroupStart/End (one thread posting for several
// ranks) the waits happen at ncclGroupEnd. ncclCommAbort wakes every waiting rank with an error.
#if __has_include(<nccl.h>)  // (without it the engine builds single-device, as on a GPU)
#include <nccl.h>

#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace {

struct Operation {
  std::vector<const void*> send;
  std::vector<void*> recv;
  size_t count = 0;
  int arrived = 0, collected = 0;
  bool done = false;
};

struct Clique {
  explicit Clique(int n) : ranks(n) {}
  const int ranks;
  std::mutex mu;
  std::condition_variable changed;
  std::map<unsigned long, Operation> operations;
  bool aborted = false;
};

thread_local int groupDepth = 0;
thread_local std::vector<std::pair<ncclComm_t, unsigned long>> groupWaits;

}  // namespace

struct ncclComm {
  std::shared_ptr<Clique> clique;
  int rank;
  unsigned long issued = 0;  // the next collective's sequence number
};

namespace {

ncclResult_t post(ncclComm_t comm, const void* send, void* recv, size_t count, unsigned long* seq) {
  Clique& c = *comm->clique;
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.aborted) return ncclRemoteError;
  *seq = comm->issued++;
  Operation& op = c.operations[*seq];
  if (op.arrived == 0) {
    op.send.assign(c.ranks, nullptr);
    op.recv.assign(c.ranks, nullptr);
    op.count = count;
  } else if (op.count != count) {
    return ncclInvalidUsage;  // ranks disagree on the collective at this position
  }
  op.send[comm->rank] = send;
  op.recv[comm->rank] = recv;
  if (++op.arrived == c.ranks) {
    std::vector<float> sum(count, 0.0f);
    for (int r = 0; r < c.ranks; r++) {
      const float* x = static_cast<const float*>(op.send[r]);
      for (size_t i = 0; i < count; i++) sum[i] += x[i];
    }
    for (int r = 0; r < c.ranks; r++) std::memcpy(op.recv[r], sum.data(), count * sizeof(float));
    op.done = true;
    c.changed.notify_all();
  }
  return ncclSuccess;
}

ncclResult_t wait(ncclComm_t comm, unsigned long seq) {
  Clique& c = *comm->clique;
  std::unique_lock<std::mutex> lock(c.mu);
  c.changed.wait(lock, [&] { return c.aborted || c.operations[seq].done; });
  if (!c.operations[seq].done) return ncclRemoteError;
  if (++c.operations[seq].collected == c.ranks) c.operations.erase(seq);
  return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int* devlist) {
  if (ndev < 1) return ncclInvalidArgument;
  auto clique = std::make_shared<Clique>(ndev);
  for (int i = 0; i < ndev; i++) {
    if (devlist && devlist[i] < 0) return ncclInvalidArgument;
    comms[i] = new ncclComm{clique, i};
  }
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  {
    std::lock_guard<std::mutex> lock(comm->clique->mu);
    comm->clique->aborted = true;
  }
  comm->clique->changed.notify_all();
  return ncclSuccess;  // not freed: other ranks' threads may still be returning from a wait on the clique
}

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "no error";
    case ncclInvalidArgument:
      return "invalid argument";
    case ncclInvalidUsage:
      return "invalid usage (ranks issued different collectives)";
    case ncclRemoteError:
      return "remote process exited or there was a network error (the communicator was aborted)";
    default:
      return "NCCL emulator error";
  }
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t) {
  if (type != ncclFloat32 || op != ncclSum) return ncclInvalidArgument;  // what the engine issues
  unsigned long seq = 0;
  const ncclResult_t r = post(comm, send, recv, count, &seq);
  if (r != ncclSuccess) return r;
  if (groupDepth > 0) {
    groupWaits.emplace_back(comm, seq);
    return ncclSuccess;
  }
  return wait(comm, seq);
}

ncclResult_t ncclGroupStart() {
  groupDepth++;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (groupDepth == 0) return ncclInvalidUsage;
  if (--groupDepth > 0) return ncclSuccess;
  std::vector<std::pair<ncclComm_t, unsigned long>> waits;
  waits.swap(groupWaits);
  ncclResult_t result = ncclSuccess;
  for (const auto& w : waits) {
    const ncclResult_t r = wait(w.first, w.second);
    if (r != ncclSuccess) result = r;
  }
  return result;
}

}  // extern "C"

#endif  // __has_include(<nccl.h>)
