// bf16 x bf16 -> fp32 matrix products on Intel AMX (Sapphire Rapids and later), same contract as gemmSerial.
#pragma once

namespace bp {

// True when the CPU has AMX-TILE and AMX-BF16 and the kernel granted tile state (cached; BACKPACK_NO_AMX=1 in
// the environment turns it off).
bool amxAvailable();

// C[M,N] = alpha * op(A) op(B) + beta * C with op(A), op(B) rounded to bf16 and fp32 accumulation, on the
// calling thread. Returns false (and leaves C untouched) when AMX is unavailable.
bool amxGemmSerial(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace bp
