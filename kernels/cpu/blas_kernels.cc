#include "kernels/cpu/blas_kernels.h"

#include <cblas.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace reclm::ops {

CpuVectorFeatures cpu_vector_features() {
  CpuVectorFeatures f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif  // (elsewhere none: OpenBLAS's own choice stands)
  return f;
}

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

std::string blas_core_override(std::string_view core, CpuVectorFeatures features) {
  if (core.size() != 8 || strncasecmp(core.data(), "prescott", 8) != 0) return "";
  if (features.avx512) return "SkylakeX";
  if (features.avx2_fma) return "Haswell";
  return "";
}

void restart_with_fitting_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const std::string core = blas_core_name();
  const std::string fit = blas_core_override(core, cpu_vector_features());
  if (fit.empty()) return;
  const char* slash = std::strrchr(argv[0], '/');
  const char* program = slash != nullptr ? slash + 1 : argv[0];
  std::fprintf(stderr,
               "%s: OpenBLAS does not know this CPU and chose its generic %s kernels; starting over with "
               "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE yourself to choose)\n",
               program, core.c_str(), fit.c_str());
  setenv("OPENBLAS_CORETYPE", fit.c_str(), 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "%s: could not start over (%s); going on with the %s kernels\n", program,
               std::strerror(errno), core.c_str());
}

}  // namespace reclm::ops
