// sum_of_squares: Σ x[i]² over up to ~1e9 floats, deterministic.
//
// Algorithm. Split x into an unaligned head (< 4 values up to the first 16-byte boundary), an
// aligned float4 body and a tail (< 4 values). The body's float4s are cut into P contiguous
// chunks, P and the chunk length a function of n only (not of the device or the schedule):
//   pass 1 (P blocks): block b sums the squares of chunk b in double — each thread a fixed
//     strided subset, then a fixed warp-shuffle tree and a fixed tree over the warps — and
//     writes workspace[b];
//   pass 2 (one block): sums workspace[0..P) plus the head and tail the same fixed way.
// No atomics, so the result is bitwise reproducible. Memory-bound: 16-byte loads, P up to
// kMaxPartials blocks of kThreads threads (enough to fill 132 SMs several times over).
#include "kernels/cuda/grad_norm.h"

#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxPartials = 2048;
constexpr int64_t kMinVecsPerBlock = 4 * kThreads;  // below this a block is mostly launch cost
constexpr int kUnroll = 4;                          // float4 loads in flight per thread

// Block-wide sum in a fixed order; the result is valid in thread 0. Every thread must call it.
__device__ double block_sum(double value, double* warp_sums /* [kWarps] shared */) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) warp_sums[warp] = value;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
  }
  return total;
}

struct Split {
  int64_t head;        // scalars before the first 16-byte boundary
  int64_t n_vec;       // float4s in the body
  int64_t tail;        // scalars after the body
  int64_t partials;    // P: blocks of pass 1 (≥ 1)
  int64_t chunk_vecs;  // float4s per block
};

Split split_of(const float* x, int64_t n) {
  Split s{};
  const uintptr_t misalign = reinterpret_cast<uintptr_t>(x) % 16;
  s.head = misalign == 0 ? 0 : (16 - static_cast<int64_t>(misalign)) / 4;
  if (s.head > n) s.head = n;
  s.n_vec = (n - s.head) / 4;
  s.tail = n - s.head - 4 * s.n_vec;
  int64_t p = (s.n_vec + kMinVecsPerBlock - 1) / kMinVecsPerBlock;
  p = p < 1 ? 1 : (p > kMaxPartials ? kMaxPartials : p);
  s.chunk_vecs = (s.n_vec + p - 1) / p;
  s.partials = s.chunk_vecs == 0 ? 1 : (s.n_vec + s.chunk_vecs - 1) / s.chunk_vecs;
  return s;
}

__device__ double square_sum4(float4 v) {
  const double a = v.x, b = v.y, c = v.z, d = v.w;
  return (a * a + b * b) + (c * c + d * d);
}

// Pass 1's work for one block: Σ over body float4s [block·chunk, min((block+1)·chunk, n_vec)),
// valid in thread 0.
__device__ double chunk_square_sum(const float4* body, int64_t n_vec, int64_t chunk_vecs, int64_t block,
                                   double* warp_sums) {
  const int64_t begin = block * chunk_vecs;
  const int64_t end = begin + chunk_vecs < n_vec ? begin + chunk_vecs : n_vec;
  double acc = 0.0;
  int64_t i = begin + threadIdx.x;
  // kUnroll independent loads per iteration (constant trip counts: nvcc unrolls them), then
  // their squares added in a fixed order.
  for (; i + (kUnroll - 1) * kThreads < end; i += kUnroll * kThreads) {
    float4 v[kUnroll];
    for (int u = 0; u < kUnroll; ++u) v[u] = __ldcs(body + i + u * kThreads);
    for (int u = 0; u < kUnroll; ++u) acc += square_sum4(v[u]);
  }
  for (; i < end; i += kThreads) acc += square_sum4(__ldcs(body + i));
  return block_sum(acc, warp_sums);
}

// Pass 2's work: Σ partials + Σ head² + Σ tail², fixed order, valid in thread 0.
__device__ double final_square_sum(const double* partials, int64_t n_partials, const float* head, int64_t n_head,
                                   const float* tail, int64_t n_tail, double* warp_sums) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n_partials; i += kThreads) acc += partials[i];
  if (threadIdx.x < n_head) acc += static_cast<double>(head[threadIdx.x]) * head[threadIdx.x];
  if (threadIdx.x < n_tail) acc += static_cast<double>(tail[threadIdx.x]) * tail[threadIdx.x];
  return block_sum(acc, warp_sums);
}

__global__ void sum_of_squares_partials_kernel(const float4* body, int64_t n_vec, int64_t chunk_vecs,
                                               double* partials) {
  RECLM_SHARED(double, warp_sums, [kWarps]);
  const double total = chunk_square_sum(body, n_vec, chunk_vecs, blockIdx.x, warp_sums);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// (one block)
__global__ void sum_of_squares_final_kernel(const double* partials, int64_t n_partials,
                                            const float* head, int64_t n_head, const float* tail,
                                            int64_t n_tail, double* result) {
  RECLM_SHARED(double, warp_sums, [kWarps]);
  const double total = final_square_sum(partials, n_partials, head, n_head, tail, n_tail, warp_sums);
  if (threadIdx.x == 0) *result = total;
}

// Segments, up to kGroupSegments at a time: each summed exactly as sum_of_squares sums it (the
// same split, chunks and trees), but the group's pass 1 is one launch and its pass 2 another.
// The trainer sums each backward stage's tensors (9 for a layer) this way: 2 launches instead
// of 19, each of which would queue behind the GEMMs for a free SM (docs/gpu.md).
constexpr int kGroupSegments = 16;

struct SegmentSplit {
  const float* x;
  Split split;
  double* partials;     // its pass 1's outputs: split.partials doubles of the workspace
  int64_t first_block;  // its first block in the group's pass 1
};

struct SegmentGroup {
  SegmentSplit segments[kGroupSegments];
  int n = 0;
  int64_t blocks = 0;  // pass 1's blocks over all of the group's segments
};

__device__ const float4* body_of(const SegmentSplit& s) {
  return reinterpret_cast<const float4*>(s.x + s.split.head);
}

__global__ void sum_of_squares_group_partials_kernel(SegmentGroup group) {
  RECLM_SHARED(double, warp_sums, [kWarps]);
  int k = 0;  // the segment block blockIdx.x belongs to (segments without a body have no blocks)
  while (k + 1 < group.n && group.segments[k + 1].first_block <= blockIdx.x) ++k;
  const SegmentSplit& s = group.segments[k];
  const int64_t block = blockIdx.x - s.first_block;
  const double total = chunk_square_sum(body_of(s), s.split.n_vec, s.split.chunk_vecs, block, warp_sums);
  if (threadIdx.x == 0) s.partials[block] = total;
}

// (one block) slots[k] = segment k's sum; with result, also *result = Σ_k slots[k] (as
// sum_of_squares_final_kernel over the slots: thread k holds slot k, then the same tree).
__global__ void sum_of_squares_group_final_kernel(SegmentGroup group, double* slots, double* result) {
  RECLM_SHARED(double, warp_sums, [kWarps]);
  RECLM_SHARED(double, group_slots, [kGroupSegments]);
  for (int k = 0; k < group.n; ++k) {
    const SegmentSplit& s = group.segments[k];
    const int64_t n_partials = s.split.n_vec > 0 ? s.split.partials : 0;
    const double total = final_square_sum(s.partials, n_partials, s.x, s.split.head,
                                          s.x + s.split.head + 4 * s.split.n_vec, s.split.tail, warp_sums);
    if (threadIdx.x == 0) slots[k] = group_slots[k] = total;
    __syncthreads();  // (warp_sums is reused by the next segment)
  }
  if (result == nullptr) return;
  const bool holds_slot = static_cast<int>(threadIdx.x) < group.n;
  const double total = block_sum(holds_slot ? 0.0 + group_slots[threadIdx.x] : 0.0, warp_sums);
  if (threadIdx.x == 0) *result = total;
}

}  // namespace

int64_t sum_of_squares_workspace_doubles(int64_t n) {
  // The partial count is largest when x is 16-byte aligned (no head), so that bounds every x.
  return split_of(nullptr, n < 0 ? 0 : n).partials;
}

cudaError_t sum_of_squares(double* result, const float* x, int64_t n, double* workspace,
                           cudaStream_t stream) {
  if (n < 0) n = 0;
  const Split s = split_of(x, n);
  const float4* body = reinterpret_cast<const float4*>(x + s.head);
  if (s.n_vec > 0) {
    const cudaError_t status = simt::launch(sum_of_squares_partials_kernel, dim3(static_cast<unsigned>(s.partials)),
                                            dim3(kThreads), 0, stream, body, s.n_vec, s.chunk_vecs, workspace);
    if (status != cudaSuccess) return status;
  }
  const int64_t n_partials = s.n_vec > 0 ? s.partials : 0;
  return simt::launch(sum_of_squares_final_kernel, dim3(1), dim3(kThreads), 0, stream,
                      static_cast<const double*>(workspace), n_partials, x, s.head,
                      x + s.head + 4 * s.n_vec, s.tail, result);
}

int64_t sum_of_squares_segments_workspace_doubles(const int64_t* sizes, int n_segments) {
  int64_t total = n_segments > 0 ? n_segments : 1;  // one slot per segment (≥ 1 for the final pass)
  for (int k = 0; k < n_segments; ++k) total += sum_of_squares_workspace_doubles(sizes[k]);
  return total;
}

cudaError_t sum_of_squares_segments(double* result, const float* const* segments, const int64_t* sizes,
                                    int n_segments, double* workspace, cudaStream_t stream) {
  // workspace = [segment slots: max(n_segments, 1)][segment 0's partials][segment 1's] ...
  double* slots = workspace;
  double* partials = workspace + (n_segments > 0 ? n_segments : 1);
  const bool one_group = n_segments <= kGroupSegments;
  for (int first = 0; first < n_segments; first += kGroupSegments) {
    SegmentGroup group;
    group.n = n_segments - first < kGroupSegments ? n_segments - first : kGroupSegments;
    for (int k = 0; k < group.n; ++k) {
      const int64_t n = sizes[first + k] < 0 ? 0 : sizes[first + k];
      const Split split = split_of(segments[first + k], n);
      group.segments[k] = {segments[first + k], split, partials, group.blocks};
      if (split.n_vec > 0) group.blocks += split.partials;
      partials += sum_of_squares_workspace_doubles(n);
    }
    if (group.blocks > 0) {
      const cudaError_t status = simt::launch(sum_of_squares_group_partials_kernel,
                                              dim3(static_cast<unsigned>(group.blocks)), dim3(kThreads), 0, stream,
                                              group);
      if (status != cudaSuccess) return status;
    }
    const cudaError_t status = simt::launch(sum_of_squares_group_final_kernel, dim3(1), dim3(kThreads), 0, stream,
                                            group, slots + first, one_group ? result : nullptr);
    if (status != cudaSuccess) return status;
  }
  if (n_segments > 0 && one_group) return cudaSuccess;
  return simt::launch(sum_of_squares_final_kernel, dim3(1), dim3(kThreads), 0, stream,
                      static_cast<const double*>(slots), static_cast<int64_t>(n_segments),
                      static_cast<const float*>(nullptr), int64_t{0}, static_cast<const float*>(nullptr),
                      int64_t{0}, result);
}

}  // namespace reclm::cuda
