// Demonstration kernels for the SIMT emulator tests, written once for nvcc and g++
// (kernels/simt/cuda_compat.h): block and warp reductions, a shared/global atomic histogram,
// bf16 and float4 memory access, cp.async staging, a tensor-core GEMM, and one deliberately
// broken reduction.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"
#include "kernels/simt/async_copy.h"
#include "kernels/simt/tensor_core.h"

// An unnamed namespace: each test file that includes this header compiles its own copy of the
// kernels (a __global__ function cannot be `inline`); [[maybe_unused]] for the ones it skips.
namespace reclm::simt::demo {
namespace {

// block_sums[b] = sum of x[b*kThreads .. b*kThreads + kThreads) ∩ [0, n). Tree reduction in
// shared memory; blockDim.x == kThreads (a power of 2). Out-of-range threads add 0 and stay
// alive for the barriers.
template <int kThreads>
__global__ void __launch_bounds__(kThreads) block_sum_kernel(const float* __restrict__ x, int n, float* __restrict__ block_sums) {
  RECLM_SHARED(float, partial, [kThreads]);
  const int t = threadIdx.x;
  const int i = blockIdx.x * kThreads + t;
  partial[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t == 0) block_sums[blockIdx.x] = partial[0];
}

// The same reduction with the barrier inside the loop left out: a thread may add a partial
// sum that its partner has not finished yet. Wrong on a GPU, and under the emulator's random
// schedule.
template <int kThreads>
__global__ void block_sum_missing_barrier_kernel(const float* __restrict__ x, int n, float* __restrict__ block_sums) {
  RECLM_SHARED(float, partial, [kThreads]);
  const int t = threadIdx.x;
  const int i = blockIdx.x * kThreads + t;
  partial[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
  }
  __syncthreads();
  if (t == 0) block_sums[blockIdx.x] = partial[0];
}

// Sum over a warp's 32 lanes with butterfly shuffles; every lane gets the total.
[[maybe_unused]] __device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// block_sums[b] = sum of a grid-stride slice of x: thread g adds x[g], x[g + G], ... (G =
// gridDim.x * blockDim.x); warps reduce by shuffles (__shfl_down_sync), warp totals meet in
// shared memory. blockDim.x a multiple of 32, at most 1024.
[[maybe_unused]] __global__ void grid_stride_warp_sum_kernel(const float* __restrict__ x, long long n, float* __restrict__ block_sums) {
  RECLM_SHARED(float, warp_totals, [32]);
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  float sum = 0.0f;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) sum += x[i];
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  if (lane == 0) warp_totals[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    const int n_warps = blockDim.x / 32;
    float total = lane < n_warps ? warp_totals[lane] : 0.0f;
    total = warp_sum(total);
    if (lane == 0) block_sums[blockIdx.x] = total;
  }
}

// bins[v] += count of v in values (0 <= v < n_bins): a per-block histogram in dynamic shared
// memory (n_bins unsigned), merged into the global one with atomics. Grid-stride over values.
[[maybe_unused]] __global__ void histogram_kernel(const int* __restrict__ values, int n, unsigned* __restrict__ bins, int n_bins) {
  RECLM_DYNAMIC_SHARED(unsigned, local_bins);
  for (int b = threadIdx.x; b < n_bins; b += blockDim.x) local_bins[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    atomicAdd(&local_bins[values[i]], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < n_bins; b += blockDim.x) {
    if (local_bins[b] != 0) atomicAdd(&bins[b], local_bins[b]);
  }
}

// y[i] = bf16(float(x[i]) * scale + bias[i % n_bias]) with the bias staged in dynamic shared
// memory as float; 2D grid of 2D blocks (rows x cols), so both index dimensions are used.
[[maybe_unused]] __global__ void bf16_scale_bias_kernel(const __nv_bfloat16* __restrict__ x, int rows, int cols,
                                       const float* __restrict__ bias, float scale, __nv_bfloat16* __restrict__ y) {
  RECLM_DYNAMIC_SHARED(float, bias_tile);  // blockDim.x floats
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  if (threadIdx.y == 0) bias_tile[threadIdx.x] = col < cols ? bias[col] : 0.0f;
  __syncthreads();
  if (row < rows && col < cols) {
    const float v = __bfloat162float(x[row * cols + col]) * scale + bias_tile[threadIdx.x];
    y[row * cols + col] = __float2bfloat16(v);
  }
}

// A __host__ __device__ helper: compiled for both sides under nvcc, a plain function on g++.
__host__ __device__ inline float axpy_element(float a, float x, float y) { return fmaf(a, x, y); }

// y = a * x + y over n floats: 16-byte float4 loads for the first n/4*4 elements, a scalar
// tail for the rest (x and y 16-byte aligned). Grid-stride over float4 groups.
[[maybe_unused]] __global__ void float4_axpy_kernel(float a, const float* __restrict__ x, float* __restrict__ y, int n) {
  const int n_vec = n / 4;
  const int stride = gridDim.x * blockDim.x;
  const int first = blockIdx.x * blockDim.x + threadIdx.x;
  for (int v = first; v < n_vec; v += stride) {
    const float4 xv = __ldg(reinterpret_cast<const float4*>(x) + v);
    float4 yv = reinterpret_cast<float4*>(y)[v];
    yv.x = axpy_element(a, xv.x, yv.x);
    yv.y = axpy_element(a, xv.y, yv.y);
    yv.z = axpy_element(a, xv.z, yv.z);
    yv.w = axpy_element(a, xv.w, yv.w);
    reinterpret_cast<float4*>(y)[v] = yv;
  }
  for (int i = n_vec * 4 + first; i < n; i += stride) y[i] = axpy_element(a, x[i], y[i]);
}

// c[M x N] (f32) = a[M x K] * b[K x N] (bf16, row-major), M % 16 == 0, N % 8 == 0, K % 16 == 0.
// One warp per 16 x 8 output tile (grid N/8 x M/16); per K step it stages the A and B tiles in
// shared memory and loads the fragments with ldmatrix (A: x4, B: x2.trans).
[[maybe_unused]] __global__ void gemm_bf16_mma_kernel(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c, int n, int k) {
  RECLM_SHARED(__nv_bfloat16, a_tile, [16 * 16]);
  RECLM_SHARED(__nv_bfloat16, b_tile, [16 * 8]);
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  const int row0 = blockIdx.y * 16, col0 = blockIdx.x * 8;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < k; k0 += 16) {
    for (int i = lane; i < 256; i += 32) a_tile[i] = a[(row0 + i / 16) * k + k0 + i % 16];
    for (int i = lane; i < 128; i += 32) b_tile[i] = b[(k0 + i / 8) * n + col0 + i % 8];
    __syncwarp();
    std::uint32_t af[4], bf[2];
    ldmatrix_x4(af, &a_tile[(lane % 8 + 8 * ((lane / 8) % 2)) * 16 + 8 * (lane / 16)]);
    ldmatrix_x2_trans(bf, &b_tile[(lane % 16) * 8]);
    mma_m16n8k16_bf16_f32(acc, af, bf, acc);
    __syncwarp();  // the next step overwrites the tiles
  }
  c[(row0 + g) * n + col0 + 2 * t] = acc[0];
  c[(row0 + g) * n + col0 + 2 * t + 1] = acc[1];
  c[(row0 + g + 8) * n + col0 + 2 * t] = acc[2];
  c[(row0 + g + 8) * n + col0 + 2 * t + 1] = acc[3];
}

// y[i] = a * x[i], each block staging its 4 * blockDim.x elements in dynamic shared memory
// with 16-byte cp.async copies (zero-filled past n); x and y 16-byte aligned.
[[maybe_unused]] __global__ void async_staged_scale_kernel(const float* __restrict__ x, int n, float a,
                                                           float* __restrict__ y) {
  RECLM_DYNAMIC_SHARED(float, tile);  // 4 * blockDim.x floats
  const int first = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  const int valid = min(max(n - first, 0), 4);
  cp_async_16_zfill(&tile[4 * threadIdx.x], valid > 0 ? x + first : x, valid * 4);
  cp_async_commit();
  cp_async_wait<0>();  // this thread reads only its own four floats: no barrier needed
  for (int k = 0; k < valid; ++k) y[first + k] = a * tile[4 * threadIdx.x + k];
}

}  // namespace
}  // namespace reclm::simt::demo
