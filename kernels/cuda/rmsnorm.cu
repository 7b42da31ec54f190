// RMSNorm fused with the residual add, forward and backward (fp32).
//
// Forward, one row per row group: a row group is one warp (dim <= 512; 4 rows per 128-thread
// block) or one block of 128, 256 or 512 threads (dim <= 8192), so that each thread holds at
// most kMaxChunks = 4 float4 chunks of the row. Each thread owns the float4 chunks
// c = (k · kRowThreads + lane) · 4, k < kChunks, so loads are coalesced 16-byte accesses. Pass 1
// reads a (+ b), writes the residual, keeps x in registers and sums x²; a warp-shuffle (plus,
// for a block, a shared-memory) reduction gives mean(x²); pass 2 writes y = x · rstd · w from
// the registers. a and b are read exactly once.
//
// Backward, with g = dy · w and r = rstd (as kernels/cpu/rmsnorm.cc):
//   dx += r · (g − x · r² · mean(g · x)),   dweight += Σ_rows dy · x · r
// The grid is one wave: as many blocks as the device holds at once (occupancy API; a fixed
// count on the emulator). Row group i takes rows i, i + n_groups, ...; a thread always owns the
// same columns, so it accumulates its dweight partial in registers (with x and dy; weight is
// re-read, from L1, to save registers) and writes one partial row per row group to the
// workspace. A second kernel sums the partial rows column by column in a fixed order (in
// double). The row partition depends only on n_rows, dim and the device (SM count, occupancy),
// so dweight is bitwise reproducible run to run on a given GPU; there are no atomics.
//
// Unaligned pointers or dim % 4 != 0 take the same path with scalar loads (`vec` false).
//
// The GPU trainer's forms read dy / write y as bf16 (4 values = 8 bytes per chunk), and backward
// can also write the updated dx rounded to bf16 (the next GEMM's input): the same kernels
// instantiated for uint16_t rows, bitwise equal to the fp32 kernels composed with
// convert_f32_to_bf16 / convert_bf16_to_f32 (the same rounding, kernels/cuda/bf16_round.h).
// With runtime.bf16_residual the stream itself is bf16: x is read as bf16 (forward and backward)
// and backward's dx is a bf16 array read and written (dx_in, dx_out), instances of the same
// kernels again.
#include <type_traits>

#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xFFFFFFFFu;
constexpr int kWarpRowBlockThreads = 128;  // warp-per-row kernels: 4 rows per block
constexpr int kMaxChunks = 4;              // float4 chunks of a row per thread, at most
// Backward grid when the device cannot be asked (emulator): 2 blocks per SM of a 132-SM H100.
constexpr int kFallbackBackwardBlocks = 264;
// Partial-sum kernel: a tile of kReduceColumns columns, kReduceSlices threads per column.
constexpr int kReduceColumns = 32;
constexpr int kReduceSlices = 8;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
// A row chunk's vector width: 16 bytes of fp32, 8 of bf16.
bool vec_aligned(const float* p) { return aligned16(p); }
bool vec_aligned(const uint16_t* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; }

// Chunk [c, c + 4) of a row of length dim, zeros past the end.
__device__ __forceinline__ float4 load_chunk(const float* row, int c, int dim, bool vec) {
  if (vec) return c < dim ? *reinterpret_cast<const float4*>(row + c) : make_float4(0.f, 0.f, 0.f, 0.f);
  float4 v;
  v.x = c < dim ? row[c] : 0.f;
  v.y = c + 1 < dim ? row[c + 1] : 0.f;
  v.z = c + 2 < dim ? row[c + 2] : 0.f;
  v.w = c + 3 < dim ? row[c + 3] : 0.f;
  return v;
}

// The same for a bf16 row (widened exactly).
__device__ __forceinline__ float4 load_chunk(const uint16_t* row, int c, int dim, bool vec) {
  if (vec) {
    if (c >= dim) return make_float4(0.f, 0.f, 0.f, 0.f);
    const uint2 w = *reinterpret_cast<const uint2*>(row + c);
    return make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
  }
  float4 v;
  v.x = c < dim ? __uint_as_float(static_cast<unsigned>(row[c]) << 16) : 0.f;
  v.y = c + 1 < dim ? __uint_as_float(static_cast<unsigned>(row[c + 1]) << 16) : 0.f;
  v.z = c + 2 < dim ? __uint_as_float(static_cast<unsigned>(row[c + 2]) << 16) : 0.f;
  v.w = c + 3 < dim ? __uint_as_float(static_cast<unsigned>(row[c + 3]) << 16) : 0.f;
  return v;
}

// Rounded to bf16 (nearest even).
__device__ __forceinline__ void store_chunk(uint16_t* row, int c, int dim, bool vec, float4 v) {
  if (vec) {
    if (c < dim) *reinterpret_cast<uint2*>(row + c) = make_uint2(pack2_bf16(v.x, v.y), pack2_bf16(v.z, v.w));
    return;
  }
  if (c < dim) row[c] = static_cast<uint16_t>(bf16_bits_rn(v.x));
  if (c + 1 < dim) row[c + 1] = static_cast<uint16_t>(bf16_bits_rn(v.y));
  if (c + 2 < dim) row[c + 2] = static_cast<uint16_t>(bf16_bits_rn(v.z));
  if (c + 3 < dim) row[c + 3] = static_cast<uint16_t>(bf16_bits_rn(v.w));
}

__device__ __forceinline__ void store_chunk(float* row, int c, int dim, bool vec, float4 v) {
  if (vec) {
    if (c < dim) *reinterpret_cast<float4*>(row + c) = v;
    return;
  }
  if (c < dim) row[c] = v.x;
  if (c + 1 < dim) row[c + 1] = v.y;
  if (c + 2 < dim) row[c + 2] = v.z;
  if (c + 3 < dim) row[c + 3] = v.w;
}

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// Sum of `value` over the kRowThreads threads of a row group. Block row groups use `scratch`
// (one float per warp) between two barriers, so the caller may call it again right away;
// every thread of the block must call it (no early exits).
// Threads of a block: a block of 4 warp rows, or one row of kRowThreads.
__host__ __device__ constexpr int block_threads(int row_threads) {
  return row_threads == kWarp ? kWarpRowBlockThreads : row_threads;
}

template <int kRowThreads>
__device__ __forceinline__ float row_sum(float value, float* scratch) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  if constexpr (kRowThreads == kWarp) {
    (void)scratch;
    return value;
  } else {
    constexpr int kWarps = kRowThreads / kWarp;
    if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = value;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < kWarps; ++w) total += scratch[w];  // same order in every thread
    __syncthreads();
    return total;
  }
}

// X: float, or uint16_t (a bf16 residual stream: b and residual_out null, x = a widened).
template <int kRowThreads, int kChunks, typename Y, typename X>
__global__ void __launch_bounds__(block_threads(kRowThreads))
    rmsnorm_forward_kernel(Y* y, float* rstd, X* residual_out, const X* a, const X* b, const float* weight,
                           int64_t n_rows, int dim, float eps, bool vec) {
  constexpr int kBlockThreads = block_threads(kRowThreads);
  constexpr int kRowsPerBlock = kBlockThreads / kRowThreads;
  RECLM_SHARED(float, warp_sums, [kBlockThreads / kWarp]);
  const int lane = static_cast<int>(threadIdx.x) % kRowThreads;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  const bool active = row < n_rows;  // inactive threads stay for the barriers
  const int64_t offset = (active ? row : 0) * dim;

  float4 x[kChunks];
  float sum_sq = 0.f;
  RECLM_UNROLL
  for (int k = 0; k < kChunks; ++k) {
    const int c = (k * kRowThreads + lane) * 4;
    x[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (active) {
      x[k] = load_chunk(a + offset, c, dim, vec);
      if (b != nullptr) {
        x[k] = add4(x[k], load_chunk(b + offset, c, dim, vec));
        store_chunk(residual_out + offset, c, dim, vec, x[k]);
      }
    }
    sum_sq += (x[k].x * x[k].x + x[k].y * x[k].y) + (x[k].z * x[k].z + x[k].w * x[k].w);
  }
  const float total = row_sum<kRowThreads>(sum_sq, warp_sums);
  const float r = 1.0f / sqrtf(total / static_cast<float>(dim) + eps);
  if (!active) return;  // no barrier follows
  if (lane == 0) rstd[row] = r;
  RECLM_UNROLL
  for (int k = 0; k < kChunks; ++k) {
    const int c = (k * kRowThreads + lane) * 4;
    const float4 w = load_chunk(weight, c, dim, vec);
    const float4 out = make_float4(x[k].x * r * w.x, x[k].y * r * w.y, x[k].z * r * w.z, x[k].w * r * w.w);
    store_chunk(y + offset, c, dim, vec, out);
  }
}

// Row group i of the grid handles rows i, i + n_groups, ... and writes its dweight partial
// (Σ over its rows of dy · x · r) to partials[i, :]. dx_out = dx_in + ∂L/∂x (dx_in null: zeros;
// it may alias dx_out, each value is read before it is written, by the same thread). Dy, X, Dx:
// float or uint16_t (bf16) each.
template <int kRowThreads, int kChunks, typename Dy, typename X, typename Dx>
__global__ void __launch_bounds__(block_threads(kRowThreads))
    rmsnorm_backward_kernel(Dx* dx_out, const Dx* dx_in, uint16_t* dx_bf16, float* partials, const Dy* dy,
                            const X* x, const float* weight, const float* rstd, int64_t n_rows, int dim,
                            bool vec) {
  constexpr int kBlockThreads = block_threads(kRowThreads);
  constexpr int kRowsPerBlock = kBlockThreads / kRowThreads;
  RECLM_SHARED(float, warp_sums, [kBlockThreads / kWarp]);
  const int lane = static_cast<int>(threadIdx.x) % kRowThreads;
  const int64_t group = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  const int64_t n_groups = static_cast<int64_t>(gridDim.x) * kRowsPerBlock;

  float4 acc[kChunks];
  RECLM_UNROLL
  for (int k = 0; k < kChunks; ++k) acc[k] = make_float4(0.f, 0.f, 0.f, 0.f);
  // The loop bound is uniform over a row group (a warp, or the whole block for block groups),
  // so the barriers inside row_sum are reached by all threads of the block.
  for (int64_t row = group; row < n_rows; row += n_groups) {
    const int64_t offset = row * dim;
    const float r = rstd[row];
    float4 xv[kChunks];
    float4 d[kChunks];
    float dot = 0.f;  // Σ g · x with g = dy · w
    RECLM_UNROLL
    for (int k = 0; k < kChunks; ++k) {
      const int c = (k * kRowThreads + lane) * 4;
      xv[k] = load_chunk(x + offset, c, dim, vec);
      d[k] = load_chunk(dy + offset, c, dim, vec);
      const float4 w = load_chunk(weight, c, dim, vec);
      dot += ((d[k].x * w.x) * xv[k].x + (d[k].y * w.y) * xv[k].y) +
             ((d[k].z * w.z) * xv[k].z + (d[k].w * w.w) * xv[k].w);
      acc[k] = add4(acc[k], make_float4(d[k].x * xv[k].x * r, d[k].y * xv[k].y * r, d[k].z * xv[k].z * r,
                                        d[k].w * xv[k].w * r));
    }
    const float coef = row_sum<kRowThreads>(dot, warp_sums) / static_cast<float>(dim) * r * r;
    RECLM_UNROLL
    for (int k = 0; k < kChunks; ++k) {
      const int c = (k * kRowThreads + lane) * 4;
      if (c >= dim) continue;
      const float4 w = load_chunk(weight, c, dim, vec);
      float4 grad = dx_in != nullptr ? load_chunk(dx_in + offset, c, dim, vec) : make_float4(0.f, 0.f, 0.f, 0.f);
      grad.x += r * (d[k].x * w.x - xv[k].x * coef);
      grad.y += r * (d[k].y * w.y - xv[k].y * coef);
      grad.z += r * (d[k].z * w.z - xv[k].z * coef);
      grad.w += r * (d[k].w * w.w - xv[k].w * coef);
      store_chunk(dx_out + offset, c, dim, vec, grad);
      if (dx_bf16 != nullptr) store_chunk(dx_bf16 + offset, c, dim, vec, grad);
    }
  }
  RECLM_UNROLL
  for (int k = 0; k < kChunks; ++k) {
    store_chunk(partials + group * dim, (k * kRowThreads + lane) * 4, dim, vec, acc[k]);
  }
}

// dweight[c] += Σ_p partials[p, c] over p < n_partials (= without accumulate). Block
// (kReduceColumns, kReduceSlices): slice s sums p = s, s + kReduceSlices, ... in double; thread
// (x, 0) adds the slices in order.
__global__ void __launch_bounds__(kReduceColumns* kReduceSlices)
    rmsnorm_dweight_reduce_kernel(float* dweight, const float* partials, int64_t n_partials, int dim,
                                  bool accumulate) {
  RECLM_SHARED(double, slice_sums, [kReduceSlices][kReduceColumns]);
  const int c = static_cast<int>(blockIdx.x) * kReduceColumns + static_cast<int>(threadIdx.x);
  double sum = 0.0;
  if (c < dim) {
    for (int64_t p = threadIdx.y; p < n_partials; p += kReduceSlices) sum += partials[p * dim + c];
  }
  slice_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < dim) {
    double total = 0.0;
    for (int s = 0; s < kReduceSlices; ++s) total += slice_sums[s][threadIdx.x];
    const float sum = static_cast<float>(total);
    dweight[c] = accumulate ? dweight[c] + sum : 0.0f + sum;  // (0 + sum: −0 as += onto zeros gives it)
  }
}

// The (row threads, chunks) instance for a row of `dim`: a warp while it covers the row with
// at most kMaxChunks float4 chunks per thread, else the smallest block that does (2 or 4 chunks).
struct RowShape {
  int row_threads;
  int chunks;
};
RowShape row_shape(int64_t dim) {
  static_assert(kMaxChunks == 4, "the table below assumes 4 chunks at most");
  if (dim <= 128) return {kWarp, 1};
  if (dim <= 256) return {kWarp, 2};
  if (dim <= 512) return {kWarp, 4};
  if (dim <= 1024) return {128, 2};
  if (dim <= 2048) return {256, 2};
  if (dim <= 4096) return {256, 4};
  return {512, 4};
}

int rows_per_block(const RowShape& shape) {
  return shape.row_threads == kWarp ? kWarpRowBlockThreads / kWarp : 1;
}

// Calls f(std::integral_constant<int, row threads>, std::integral_constant<int, chunks>) with
// the instance row_shape chose, so each kernel is instantiated once per shape.
template <typename F>
auto with_row_shape(const RowShape& shape, F&& f) {
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  using Four = std::integral_constant<int, 4>;
  switch (shape.row_threads) {
    case kWarp:
      return shape.chunks == 1   ? f(std::integral_constant<int, kWarp>{}, One{})
             : shape.chunks == 2 ? f(std::integral_constant<int, kWarp>{}, Two{})
                                 : f(std::integral_constant<int, kWarp>{}, Four{});
    case 128:
      return f(std::integral_constant<int, 128>{}, Two{});
    case 256:
      return shape.chunks == 2 ? f(std::integral_constant<int, 256>{}, Two{})
                               : f(std::integral_constant<int, 256>{}, Four{});
    default:
      return f(std::integral_constant<int, 512>{}, Four{});
  }
}

// Backward blocks: as many as the device holds at once, so the grid is one wave of equally
// loaded blocks, and no more row groups than rows.
int64_t backward_blocks(int64_t n_rows, const RowShape& shape) {
  const int64_t resident = with_row_shape(shape, [](auto row_threads, auto chunks) -> int64_t {
    (void)row_threads;
    (void)chunks;
#if defined(__CUDACC__)
    constexpr int kRowThreads = decltype(row_threads)::value;
    int device = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&device) == cudaSuccess &&
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess &&
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, rmsnorm_backward_kernel<kRowThreads, decltype(chunks)::value, float, float, float>,
            block_threads(kRowThreads), 0) == cudaSuccess &&
        sms > 0 && per_sm > 0) {
      return int64_t{sms} * per_sm;
    }
#endif
    return kFallbackBackwardBlocks;
  });
  const int64_t rows = rows_per_block(shape);
  const int64_t blocks = (n_rows + rows - 1) / rows;
  return blocks < 1 ? 1 : (blocks > resident ? resident : blocks);
}

template <typename Y, typename X>
cudaError_t launch_forward(Y* y, float* rstd, X* residual_out, const X* a, const X* b, const float* weight,
                           int64_t n_rows, int64_t dim, float eps, cudaStream_t stream) {
  if (dim < 1 || dim > kRmsnormMaxDim || n_rows < 0) return cudaErrorInvalidValue;
  if (b != nullptr && residual_out == nullptr) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  const bool vec = dim % 4 == 0 && vec_aligned(y) && vec_aligned(a) && aligned16(weight) &&
                   (b == nullptr || (vec_aligned(b) && vec_aligned(residual_out)));
  const int d = static_cast<int>(dim);
  return with_row_shape(row_shape(dim), [&](auto row_threads, auto chunks) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    constexpr int kRowsPerBlock = block_threads(kRowThreads) / kRowThreads;
    const dim3 grid(static_cast<unsigned>((n_rows + kRowsPerBlock - 1) / kRowsPerBlock));
    return simt::launch(rmsnorm_forward_kernel<kRowThreads, decltype(chunks)::value, Y, X>, grid,
                        dim3(kRowsPerBlock * kRowThreads), 0, stream, y, rstd, residual_out, a, b, weight,
                        n_rows, d, eps, vec);
  });
}

template <typename Dy, typename X, typename Dx>
cudaError_t launch_backward(Dx* dx_out, const Dx* dx_in, uint16_t* dx_bf16, float* dweight, float* workspace,
                            const Dy* dy, const X* x, const float* weight, const float* rstd, int64_t n_rows,
                            int64_t dim, cudaStream_t stream, bool accumulate_dweight) {
  if (dim < 1 || dim > kRmsnormMaxDim || n_rows < 0) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  const RowShape shape = row_shape(dim);
  // (the fp32 kernel's block count for both forms: the workspace is sized by it)
  const int64_t blocks = backward_blocks(n_rows, shape);
  const bool vec = dim % 4 == 0 && vec_aligned(dx_out) && (dx_in == nullptr || vec_aligned(dx_in)) &&
                   aligned16(workspace) && vec_aligned(dy) && vec_aligned(x) && aligned16(weight) &&
                   (dx_bf16 == nullptr || vec_aligned(dx_bf16));
  const int d = static_cast<int>(dim);
  const cudaError_t status = with_row_shape(shape, [&](auto row_threads, auto chunks) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    constexpr int kBlockThreads = block_threads(kRowThreads);
    return simt::launch(rmsnorm_backward_kernel<kRowThreads, decltype(chunks)::value, Dy, X, Dx>,
                        dim3(static_cast<unsigned>(blocks)), dim3(kBlockThreads), 0, stream, dx_out, dx_in,
                        dx_bf16, workspace, dy, x, weight, rstd, n_rows, d, vec);
  });
  if (status != cudaSuccess) return status;
  const int64_t n_partials = blocks * rows_per_block(shape);
  const dim3 grid(static_cast<unsigned>((dim + kReduceColumns - 1) / kReduceColumns));
  return simt::launch(rmsnorm_dweight_reduce_kernel, grid, dim3(kReduceColumns, kReduceSlices), 0, stream,
                      dweight, workspace, n_partials, d, accumulate_dweight);
}

}  // namespace

cudaError_t rmsnorm_forward(float* y, float* rstd, float* residual_out, const float* a, const float* b,
                            const float* weight, int64_t n_rows, int64_t dim, float eps,
                            cudaStream_t stream) {
  return launch_forward(y, rstd, residual_out, a, b, weight, n_rows, dim, eps, stream);
}

cudaError_t rmsnorm_forward_bf16(__nv_bfloat16* y, float* rstd, float* residual_out, const float* a,
                                 const float* b, const float* weight, int64_t n_rows, int64_t dim, float eps,
                                 cudaStream_t stream) {
  return launch_forward(reinterpret_cast<uint16_t*>(y), rstd, residual_out, a, b, weight, n_rows, dim, eps, stream);
}

int64_t rmsnorm_backward_workspace_floats(int64_t n_rows, int64_t dim) {
  const RowShape shape = row_shape(dim);
  return backward_blocks(n_rows, shape) * rows_per_block(shape) * dim;
}

cudaError_t rmsnorm_backward(float* dx, float* dweight, float* workspace, const float* dy, const float* x,
                             const float* weight, const float* rstd, int64_t n_rows, int64_t dim,
                             cudaStream_t stream, __nv_bfloat16* dx_bf16, bool accumulate_dweight) {
  return launch_backward(dx, static_cast<const float*>(dx), reinterpret_cast<uint16_t*>(dx_bf16), dweight, workspace,
                         dy, x, weight, rstd, n_rows, dim, stream, accumulate_dweight);
}

cudaError_t rmsnorm_backward_bf16(float* dx, float* dweight, float* workspace, const __nv_bfloat16* dy,
                                  const float* x, const float* weight, const float* rstd, int64_t n_rows,
                                  int64_t dim, cudaStream_t stream, __nv_bfloat16* dx_bf16,
                                  bool accumulate_dweight) {
  return launch_backward(dx, static_cast<const float*>(dx), reinterpret_cast<uint16_t*>(dx_bf16), dweight,
                         workspace, bf16_bits_of(dy), x, weight, rstd, n_rows, dim, stream, accumulate_dweight);
}

cudaError_t rmsnorm_forward(float* y, float* rstd, const __nv_bfloat16* x, const float* weight, int64_t n_rows,
                            int64_t dim, float eps, cudaStream_t stream) {
  return launch_forward<float, uint16_t>(y, rstd, nullptr, bf16_bits_of(x), nullptr, weight, n_rows, dim, eps, stream);
}

cudaError_t rmsnorm_forward_bf16(__nv_bfloat16* y, float* rstd, const __nv_bfloat16* x, const float* weight,
                                 int64_t n_rows, int64_t dim, float eps, cudaStream_t stream) {
  return launch_forward<uint16_t, uint16_t>(bf16_bits_of(y), rstd, nullptr, bf16_bits_of(x), nullptr, weight,
                                            n_rows, dim, eps, stream);
}

cudaError_t rmsnorm_backward_bf16(__nv_bfloat16* dx_out, const __nv_bfloat16* dx_in, float* dweight,
                                  float* workspace, const __nv_bfloat16* dy, const __nv_bfloat16* x,
                                  const float* weight, const float* rstd, int64_t n_rows, int64_t dim,
                                  cudaStream_t stream, bool accumulate_dweight) {
  return launch_backward(bf16_bits_of(dx_out), bf16_bits_of(dx_in), nullptr, dweight, workspace, bf16_bits_of(dy),
                         bf16_bits_of(x), weight, rstd, n_rows, dim, stream, accumulate_dweight);
}

}  // namespace reclm::cuda
