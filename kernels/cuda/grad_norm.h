// Deterministic global sum of squares (the gradient norm for clipping): Σ x[i]² over n floats of
// device memory, accumulated in double, bitwise the same for every run, schedule and device.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// Doubles of device workspace sum_of_squares needs for n values (one partial per block; ≥ 1).
int64_t sum_of_squares_workspace_doubles(int64_t n);

// *result (device) = Σ_{i<n} x[i]² (ops::sum_of_squares; equal within ~1e-12 relative, as both
// sum in double in different orders). workspace: ≥ sum_of_squares_workspace_doubles(n) doubles.
// x needs only 4-byte alignment. The summation order depends only on n and x's address mod 16.
cudaError_t sum_of_squares(double* result, const float* x, int64_t n, double* workspace,
                           cudaStream_t stream);

// Over a list of segments (e.g. parameter tensors not in one flat buffer): *result (device) =
// Σ_k Σ_{i<sizes[k]} segments[k][i]², each segment summed as above into its own slot, then the
// slots in segment order (bitwise what summing each alone gives, added in one fixed tree), in two
// launches per 16 segments. segments/sizes: host arrays of n_segments device pointers and sizes.
// workspace: ≥ sum_of_squares_segments_workspace_doubles(sizes, n_segments) doubles.
int64_t sum_of_squares_segments_workspace_doubles(const int64_t* sizes, int n_segments);
cudaError_t sum_of_squares_segments(double* result, const float* const* segments, const int64_t* sizes,
                                    int n_segments, double* workspace, cudaStream_t stream);

}  // namespace reclm::cuda
