// fp32 <-> bf16 conversion of device arrays, bitwise equal to the host conversions of
// runtime/dtype.h (round to nearest even; a NaN stays a NaN: quieted, sign and top payload kept).
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// out[i] = bf16(in[i]) (round to nearest even), as reclm::f32_to_bf16.
cudaError_t convert_f32_to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream);
// out[i] = float(in[i]) (exact), as reclm::bf16_to_f32.
cudaError_t convert_bf16_to_f32(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream);

}  // namespace reclm::cuda
