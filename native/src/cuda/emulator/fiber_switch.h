// Switching between the emulator's fibers. On x86-64 a switch saves the callee-saved registers on the running
// stack and swaps stack pointers (a few nanoseconds; the emulator switches at every warp collective).
// Elsewhere it falls back to ucontext, whose swapcontext also saves the signal mask with a system call.
// Included by emulator.cpp only (it defines the switch routine).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && !defined(BP_EMU_UCONTEXT)

extern "C" void bp_emu_switch(void** saveSp, void* loadSp);
// rdi: where to save the running stack pointer, rsi: the stack pointer to resume
asm(R"(
  .text
  .globl bp_emu_switch
  .type bp_emu_switch, @function
bp_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size bp_emu_switch, .-bp_emu_switch
)");

namespace bp::emu {

struct FiberContext {
  void* sp = nullptr;
};

// Prepares a fiber that starts in entry (which must never return) on the given stack.
inline void startFiber(FiberContext& c, void* stack, size_t bytes, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(static_cast<char*>(stack) + bytes) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                              // entry's return address: none (keeps the ABI's 16-byte alignment)
  *--sp = reinterpret_cast<void*>(entry);       // where bp_emu_switch's ret goes
  for (int r = 0; r < 6; r++) *--sp = nullptr;  // rbp, rbx, r12-r15
  c.sp = sp;
}

inline void switchFiber(FiberContext& from, FiberContext& to) { bp_emu_switch(&from.sp, to.sp); }

}  // namespace bp::emu

#else

#include <ucontext.h>

namespace bp::emu {

struct FiberContext {
  ucontext_t uc;
};

inline void startFiber(FiberContext& c, void* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

inline void switchFiber(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

}  // namespace bp::emu

#endif
