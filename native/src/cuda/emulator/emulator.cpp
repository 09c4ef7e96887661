// The CPU emulator's scheduler (see emulator.h): one fiber per CUDA thread of the running block, run in turn on
// the calling OS thread until each reaches a barrier, the barriers released when complete.
#include "emulator.h"

#include <sys/mman.h>

#include <deque>
#include <string>
#include <vector>

#include "fiber_switch.h"

namespace bp::emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // per fiber; mapped lazily, so only the pages touched cost memory

enum class State { Ready, AtWarp, AtBlock, Done };

struct PendingCopy {
  void* dst;
  const void* src;
  int bytes;
};

struct Fiber {
  FiberContext context;
  ThreadState ids;
  State state = State::Ready;
  int warp = 0, lane = 0;
  // cp.async groups in AtWait mode: the open group, then committed groups oldest first
  std::vector<PendingCopy> openGroup;
  std::deque<std::vector<PendingCopy>> committed;
};

struct Warp {
  int size = 0, live = 0, arrived = 0;
  Combine combine = nullptr;
  const void* ctx = nullptr;
  unsigned char ins[32 * kSlotBytes], outs[32 * kSlotBytes];
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  FiberContext scheduler;
  const std::function<void()>* body = nullptr;
  int current = -1, live = 0, arrivedAtBlock = 0;
  std::string error;
  std::vector<float4> dynamicShared;  // float4: 16-byte aligned
};

thread_local Block* block = nullptr;
thread_local CopyMode copyMode = CopyMode::Eager;
thread_local Schedule schedule = Schedule::RoundRobin;

struct Stacks {  // reused across blocks and launches
  std::vector<void*> mapped;
  void* get(size_t i) {
    while (mapped.size() <= i) {
      void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("CUDA emulator: cannot map a fiber stack");
      mapped.push_back(p);
    }
    return mapped[i];
  }
  ~Stacks() {
    for (void* p : mapped) munmap(p, kStackBytes);
  }
};
thread_local Stacks stacks;

Fiber& running() {
  if (!block || block->current < 0) throw std::runtime_error("CUDA emulator: device code called outside a launch");
  return block->fibers[block->current];
}

void yieldToScheduler() {
  Fiber& f = running();
  switchFiber(f.context, block->scheduler);
}

// An error inside device code: the block stops and the launch throws it (exceptions cannot unwind a fiber's
// stack, which has no caller).
[[noreturn]] void fail(const std::string& message) {
  if (block->error.empty()) block->error = message;
  for (;;) yieldToScheduler();
}

void releaseBlockBarrier() {
  for (Fiber& f : block->fibers)
    if (f.state == State::AtBlock) f.state = State::Ready;
  block->arrivedAtBlock = 0;
}

[[noreturn]] void fiberMain() {
  Fiber& f = running();
  (*block->body)();
  f.state = State::Done;
  block->live--;
  Warp& w = block->warps[f.warp];
  w.live--;
  // an exited thread no longer holds back a __syncthreads the others wait at
  if (block->arrivedAtBlock > 0 && block->arrivedAtBlock == block->live) releaseBlockBarrier();
  if (w.arrived > 0 && w.live < w.size && block->error.empty())
    block->error = "a warp collective in warp " + std::to_string(f.warp) + " while its lane " + std::to_string(f.lane) +
                   " exited (a full-warp collective needs every lane)";
  for (;;) yieldToScheduler();  // a Done fiber is never resumed
}

const char* stateName(State s) {
  switch (s) {
    case State::Ready:
      return "ready";
    case State::AtWarp:
      return "at a warp collective";
    case State::AtBlock:
      return "at __syncthreads";
    case State::Done:
      return "exited";
  }
  return "?";
}

std::string describeDeadlock(const Block& b) {
  std::string s = "deadlock: no thread can proceed;";
  for (size_t w = 0; w < b.warps.size(); w++) {
    int counts[4] = {0, 0, 0, 0};
    for (int l = 0; l < b.warps[w].size; l++) counts[(int)b.fibers[w * 32 + l].state]++;
    s += " warp " + std::to_string(w) + ":";
    for (int k = 1; k < 4; k++)
      if (counts[k]) s += " " + std::to_string(counts[k]) + " " + stateName((State)k);
    s += ";";
  }
  return s;
}

std::string where(dim3 blockIdx) {
  return "block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) +
         ")";
}

void runBlock(Block& b, dim3 grid, dim3 blockDim, uint3 blockIdx) {
  const int n = (int)(blockDim.x * blockDim.y * blockDim.z);
  b.fibers.assign(n, Fiber{});
  b.warps.assign((n + 31) / 32, Warp{});
  b.live = n;
  b.arrivedAtBlock = 0;
  // uninitialised on a GPU: NaN here, so a read before the block wrote it shows in the results
  std::memset(b.dynamicShared.data(), 0xff, b.dynamicShared.size() * sizeof(float4));
  b.error.clear();
  for (int i = 0; i < n; i++) {
    Fiber& f = b.fibers[i];
    f.ids.threadIdx = make_uint3(i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y));
    f.ids.blockIdx = blockIdx;
    f.ids.blockDim = blockDim;
    f.ids.gridDim = grid;
    f.warp = i / 32;
    f.lane = i % 32;
    Warp& w = b.warps[f.warp];
    w.size++;
    w.live++;
    startFiber(f.context, stacks.get(i), kStackBytes, fiberMain);
  }
  auto resume = [&](int i) {
    b.current = i;
    switchFiber(b.scheduler, b.fibers[i].context);
    b.current = -1;
    if (!b.error.empty()) throw std::runtime_error("CUDA emulator, " + where(blockIdx) + ": " + b.error);
  };
  while (b.live > 0) {
    int ran = 0;
    if (schedule == Schedule::RoundRobin) {
      for (int i = 0; i < n; i++)
        if (b.fibers[i].state == State::Ready) resume(i), ran++;
    } else {  // the first ready thread from one end, again and again
      const bool low = schedule == Schedule::LowWarpsFirst;
      for (int k = 0; k < n; k++) {
        const int i = low ? k : n - 1 - k;
        if (b.fibers[i].state == State::Ready) {
          resume(i), ran++;
          break;
        }
      }
    }
    if (!ran) throw std::runtime_error("CUDA emulator, " + where(blockIdx) + ": " + describeDeadlock(b));
  }
  for (Fiber& f : b.fibers)
    if (!f.openGroup.empty() || !f.committed.empty())
      throw std::runtime_error("CUDA emulator, " + where(blockIdx) +
                               ": a thread exited with cp.async copies it never waited for");
}

void landCopies(const std::vector<PendingCopy>& group) {
  for (const PendingCopy& c : group) {
    std::memcpy(c.dst, c.src, c.bytes);
    std::memset(static_cast<char*>(c.dst) + c.bytes, 0, 16 - c.bytes);
  }
}

}  // namespace

const ThreadState& self() { return running().ids; }

void deviceError(const std::string& message) { fail(message); }

void syncBlock() {
  Fiber& f = running();
  f.state = State::AtBlock;
  if (++block->arrivedAtBlock == block->live) releaseBlockBarrier();
  yieldToScheduler();
}

void warpCollective(const void* in, size_t inBytes, void* out, size_t outBytes, Combine combine, const void* ctx) {
  if (inBytes > kSlotBytes || outBytes > kSlotBytes) fail("a warp collective's operands exceed its slot");
  Fiber& f = running();
  Warp& w = block->warps[f.warp];
  if (w.size != 32) fail("a full-warp collective in a warp of " + std::to_string(w.size) + " threads");
  if (w.arrived == 0) {
    w.combine = combine;
    w.ctx = ctx;
  } else if (w.combine != combine) {
    fail("lanes of warp " + std::to_string(f.warp) + " meet different collectives (divergence)");
  }
  std::memcpy(w.ins + f.lane * kSlotBytes, in, inBytes);
  f.state = State::AtWarp;
  if (++w.arrived == w.live) {
    if (w.live < w.size)
      fail("a warp collective in warp " + std::to_string(f.warp) + " after some of its lanes exited");
    w.combine(w.ins, w.outs, w.ctx);
    w.arrived = 0;
    for (int l = 0; l < w.size; l++) block->fibers[f.warp * 32 + l].state = State::Ready;
  }
  yieldToScheduler();
  std::memcpy(out, w.outs + f.lane * kSlotBytes, outBytes);
}

void setCopyMode(CopyMode m) { copyMode = m; }
void setSchedule(Schedule s) { schedule = s; }

void copyAsync(void* dst, const void* src, int bytes) {
  if (bytes < 0 || bytes > 16) fail("cp.async of " + std::to_string(bytes) + " bytes (0 to 16)");
  if (copyMode == CopyMode::Eager) {
    landCopies({PendingCopy{dst, src, bytes}});
    return;
  }
  running().openGroup.push_back(PendingCopy{dst, src, bytes});
}

void copyAsyncCommit() {
  Fiber& f = running();
  if (copyMode == CopyMode::Eager) return;
  f.committed.push_back(std::move(f.openGroup));
  f.openGroup.clear();
}

void copyAsyncWait(int pending) {
  Fiber& f = running();
  while ((int)f.committed.size() > pending) {
    landCopies(f.committed.front());
    f.committed.pop_front();
  }
}

void* dynamicShared() {
  Block& b = *block;
  if (b.dynamicShared.empty()) fail("dynamic shared memory used by a launch that asked for none");
  return b.dynamicShared.data();
}

void runGrid(dim3 grid, dim3 blockDim, size_t dynamicSharedBytes, const std::function<void()>& body) {
  if (block) throw std::runtime_error("CUDA emulator: a launch from device code");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || blockDim.x * blockDim.y * blockDim.z == 0 ||
      blockDim.x * blockDim.y * blockDim.z > 1024) {
    launchFailed(cudaErrorInvalidConfiguration);  // as a GPU reports it: cudaGetLastError after the launch
    return;
  }
  Block b;
  b.body = &body;
  b.dynamicShared.resize((dynamicSharedBytes + sizeof(float4) - 1) / sizeof(float4));
  block = &b;
  try {
    for (unsigned z = 0; z < grid.z; z++)
      for (unsigned y = 0; y < grid.y; y++)
        for (unsigned x = 0; x < grid.x; x++) runBlock(b, grid, blockDim, make_uint3(x, y, z));
  } catch (...) {
    block = nullptr;
    throw;
  }
  block = nullptr;
}

}  // namespace bp::emu
