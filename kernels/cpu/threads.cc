#include <cblas.h>
#include <omp.h>

#include "kernels/ops.h"

namespace reclm::ops {

int set_cpu_threads(int n_threads) {
  const int n = n_threads > 0 ? n_threads : omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

}  // namespace reclm::ops
