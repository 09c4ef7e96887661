// A CPU emulator for the CUDA backend, so its arithmetic is checked where no GPU exists (CI). This file is the
// kernel side; runtime.cpp and cublas.cpp stand in for NVIDIA's libraries, so the whole engine runs. The sources
// compile with the host compiler (BP_CUDA_EMULATOR=1, see cuda_shim.h; launches are written BP_LAUNCH); each CUDA
// thread of a block runs as a fiber, and the fibers of a block take turns on one OS thread, switching only at
// synchronisation points:
//   - __syncthreads: all live threads of the block;
//   - warp collectives (shuffles, and mma.sync, ldmatrix, movmatrix through mma.cuh's emulated twins): the 32
//     lanes of a warp publish their operands, the last lane to arrive computes every lane's result.
// Blocks of a grid run one after another. A barrier that can never complete (a __syncthreads in divergent code, a
// collective after some lanes exited) is reported as an error naming the block and the waiting threads, instead
// of hanging. cp.async copies run eagerly or are held back until the wait that covers them (CopyMode), so the
// checks can run a kernel both ways and catch a tile read before its copy was waited for; the scheduling order can
// be skewed the same way (Schedule) to catch a missing __syncthreads.
//
// Atomics are plain read-modify-writes (threads switch only at barriers). Not emulated: timing, occupancy, memory
// ordering between blocks (they run one after another).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace bp::emu {

struct ThreadState {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
};

// The running CUDA thread's indices (fiber-local)
const ThreadState& self();

// An error in device code (the emulator's own checks): stops the block; the launch throws it
[[noreturn]] void deviceError(const std::string& message);

// __syncthreads: waits until every live thread of the block arrives
void syncBlock();

// A warp collective: each of the 32 lanes passes `inBytes` (<= kSlotBytes) of operands; when the last lane
// arrives, combine(ins, outs) computes all lanes' results (ins/outs: 32 slots of kSlotBytes, lane-major); each
// lane then receives its `outBytes` of outs.
constexpr size_t kSlotBytes = 64;
using Combine = void (*)(const unsigned char* ins, unsigned char* outs, const void* ctx);
void warpCollective(const void* in, size_t inBytes, void* out, size_t outBytes, Combine combine,
                    const void* ctx = nullptr);

// __shfl_xor_sync over the full warp, for any 4- or 8-byte value
template <class T>
T shuffleXor(T v, int laneMask) {
  static_assert(sizeof(T) <= kSlotBytes, "shuffle value too large");
  struct Ctx {
    int mask;
  } ctx{laneMask};
  T r;
  warpCollective(
      &v, sizeof(T), &r, sizeof(T),
      [](const unsigned char* ins, unsigned char* outs, const void* c) {
        const int m = static_cast<const Ctx*>(c)->mask;
        for (int lane = 0; lane < 32; lane++)
          std::memcpy(outs + lane * kSlotBytes, ins + (lane ^ m) * kSlotBytes, sizeof(T));
      },
      &ctx);
  return r;
}

// The order in which the fibers of a block take turns between synchronisation points. A missing __syncthreads
// lets one warp run ahead into a tile the others still read; WarpsRunAhead runs the lowest (or highest) warp as
// far as it can get before the others move, so such a race changes the result instead of hiding.
enum class Schedule {
  RoundRobin,      // every ready thread in turn
  LowWarpsFirst,   // always the lowest-numbered ready thread
  HighWarpsFirst,  // always the highest-numbered ready thread
};
void setSchedule(Schedule s);

// cp.async: how the emulated asynchronous copies land
enum class CopyMode {
  Eager,   // at issue (the earliest a GPU may complete them)
  AtWait,  // at the cp.async.wait_group that covers them (the latest)
};
void setCopyMode(CopyMode m);
void copyAsync(void* dst, const void* src, int bytes);  // 16 bytes; bytes < 16 zero-fills the rest
void copyAsyncCommit();
void copyAsyncWait(int pending);

// Runs body once per thread of every block of the grid; each block gets dynamicSharedBytes of dynamic shared memory.
void runGrid(dim3 grid, dim3 block, size_t dynamicSharedBytes, const std::function<void()>& body);
// The running block's dynamic shared memory (16-byte aligned)
void* dynamicShared();
// A launch that could not start: the error cudaGetLastError returns next (runtime.cpp)
void launchFailed(cudaError_t e);

// kernel<<<grid, block, smem, stream>>>(args...) as Launch(kernel, grid, block, smem)(args...): the arguments are
// converted to the kernel's parameter types once, as a launch copies them, and every thread sees the same copy.
template <class... P>
struct KernelCall {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t dynamicSharedBytes;
  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    const std::tuple<P...> params(std::forward<A>(args)...);
    runGrid(grid, block, dynamicSharedBytes, [&] { std::apply(kernel, params); });
  }
};
template <class... P>
KernelCall<P...> Launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t dynamicSharedBytes) {
  return KernelCall<P...>{kernel, grid, block, dynamicSharedBytes};
}

}  // namespace bp::emu
