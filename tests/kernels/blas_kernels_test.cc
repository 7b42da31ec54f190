// kernels/cpu/blas_kernels.h: which OPENBLAS_CORETYPE the launcher restarts with. Only OpenBLAS's
// fallback for a CPU it does not know (Prescott) is replaced, by the best kernels the CPU runs;
// every choice OpenBLAS made by itself from a CPU it knows stands.
#include "kernels/cpu/blas_kernels.h"

#include <gtest/gtest.h>

namespace reclm::ops {
namespace {

TEST(BlasKernels, OnlyThePrescottFallbackIsReplacedByKernelsTheCpuRuns) {
  const CpuVectorFeatures none{}, avx2{.avx2_fma = true}, avx512{.avx2_fma = true, .avx512 = true};
  EXPECT_EQ(blas_core_override("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(blas_core_override("PRESCOTT", avx2), "Haswell");
  EXPECT_EQ(blas_core_override("Prescott", none), "");  // a CPU without AVX2: nothing better
  for (const char* known : {"Haswell", "SkylakeX", "Cooperlake", "Zen", "SapphireRapids", "Prescott2", ""}) {
    EXPECT_EQ(blas_core_override(known, avx512), "") << known;
  }
}

TEST(BlasKernels, TheLibraryNamesItsKernelsAndTheirFixFitsThisCpu) {
  const std::string core = blas_core_name();
  EXPECT_FALSE(core.empty());
  // After the launcher's restart (or on a CPU OpenBLAS knows) nothing is left to replace.
  const std::string fit = blas_core_override(core, cpu_vector_features());
  if (!fit.empty()) {
    EXPECT_TRUE(fit == "Haswell" || fit == "SkylakeX") << fit;
    EXPECT_TRUE(cpu_vector_features().avx2_fma) << "kernels the CPU cannot run: " << fit;
  }
}

}  // namespace
}  // namespace reclm::ops
