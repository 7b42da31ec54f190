// Linear layer without bias, Hugging Face layout W[OC, C] (DESIGN.md §4). All three products
// go to OpenBLAS sgemm (row-major), which owns its own threading and blocking:
//   forward:  out[T, OC]   = inp[T, C] · Wᵀ            (NoTrans, Trans;   beta 0 or 1)
//   backward: dinp[T, C]   = dout[T, OC] · W[OC, C]     (NoTrans, NoTrans; beta 0 or 1)
//             dweight[OC, C] += dout[T, OC]ᵀ · inp[T, C] (Trans, NoTrans;  beta 1)
// With beta 0 sgemm never reads C, so an uninitialised (even NaN) output is fine.
#include <cblas.h>

#include "kernels/ops.h"

namespace reclm::ops {

namespace {
// sgemm takes int dimensions; our shapes stay far below 2^31.
blasint as_blas(int64_t n) { return static_cast<blasint>(n); }
}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, int64_t T, int64_t C,
                    int64_t OC, bool accumulate_out) {
  if (T == 0 || OC == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, as_blas(T), as_blas(OC), as_blas(C), 1.0f,
              inp, as_blas(C), weight, as_blas(C), accumulate_out ? 1.0f : 0.0f, out, as_blas(OC));
}

void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int64_t T, int64_t C, int64_t OC, bool accumulate_dinp) {
  if (T == 0 || C == 0) return;
  if (dinp != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, as_blas(T), as_blas(C), as_blas(OC),
                1.0f, dout, as_blas(OC), weight, as_blas(C), accumulate_dinp ? 1.0f : 0.0f, dinp,
                as_blas(C));
  }
  if (dweight != nullptr && OC > 0) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, as_blas(OC), as_blas(C), as_blas(T), 1.0f,
                dout, as_blas(OC), inp, as_blas(C), 1.0f, dweight, as_blas(C));
  }
}

}  // namespace reclm::ops
