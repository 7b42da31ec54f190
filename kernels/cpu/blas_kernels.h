// Which of OpenBLAS's kernels the CPU GEMMs run, and the fix for a CPU newer than the library.
//
// OpenBLAS (a DYNAMIC_ARCH build, as Debian's) picks its kernels for the CPU it finds when it
// loads, before main. A CPU it does not know gets its generic SSE3 kernels, "Prescott": Debian
// 12's 0.3.21 on an Intel family 6 model 207 VM (2026-11-27) ran bench_linear's GEMMs 4.5x
// slower than with its AVX-512 kernels (docs/architecture.md). OPENBLAS_CORETYPE in the
// environment overrides the pick, so the programs restart themselves with it set
// (restart_with_fitting_blas_kernels).
#pragma once

#include <string>
#include <string_view>

namespace reclm::ops {

struct CpuVectorFeatures {
  bool avx2_fma = false;  // AVX2 and FMA: OpenBLAS's Haswell kernels
  bool avx512 = false;    // AVX-512 F, CD, BW, DQ and VL: its SkylakeX kernels
};

// This CPU's (the compiler's CPUID reading).
CpuVectorFeatures cpu_vector_features();

// The kernels OpenBLAS chose (openblas_get_corename), e.g. "Haswell", "Prescott".
std::string blas_core_name();

// The OPENBLAS_CORETYPE that fits a CPU with `features` when OpenBLAS chose `core` by itself, or
// "" when its choice stands. Only its fallback for CPUs it does not know, Prescott, is replaced:
// by SkylakeX on a CPU with AVX-512, by Haswell on one with AVX2 and FMA.
std::string blas_core_override(std::string_view core, CpuVectorFeatures features);

// When blas_core_override replaces OpenBLAS's choice and OPENBLAS_CORETYPE is not set (by the
// user, or by an earlier restart): says so on stderr and starts the program over (execv of
// /proc/self/exe with the same arguments) with OPENBLAS_CORETYPE set. Call it first in main,
// before any thread or MPI connection exists. If the restart fails, the program goes on as it is.
void restart_with_fitting_blas_kernels(char** argv);

}  // namespace reclm::ops
