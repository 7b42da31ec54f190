// The deterministic scatter-add behind embedding_backward and embedding_bag_backward
// (detail::sorted_scatter_add in embedding.h):
//   1. Stable LSD radix sort of (id, position) pairs by id, kRadixBits per pass, as many passes
//      as the vocabulary needs. A pass: (a) each block of kSortChunk positions counts its digits
//      (shared-memory integer atomics) into counts[digit][block]; (b) one block scans the counts
//      (digit-major, so the scan gives every (digit, block) its first output slot); (c) each block
//      walks its chunk in rounds of kThreads positions and places them: rank within the round =
//      number of earlier threads with the same digit (warp ballots on the digit bits plus
//      per-warp digit counts in shared memory), so positions with equal digits keep their
//      order -> the sort is stable and, after the last pass, the positions of each id are in
//      increasing (token) order.
//   2. Segment heads (first sorted slot of each distinct id) are collected into a list with one
//      warp-aggregated integer atomic per warp; the list order does not matter, only who owns a row.
//   3. One warp per (segment, column chunk of 32 lanes x 1 or 4 floats): load the dtable chunk,
//      add the gradient rows of the segment in sorted (= token) order, store. Every dtable
//      element is written by exactly one thread, in the CPU reference's order: bitwise equal.
//      Rows no id touches are never read or written. Cost: a row hit by L tokens is a chain of
//      L in-order additions per element (kReduceUnroll loads in flight), so one very frequent
//      id (padding) is latency-bound; the atomic variant has no such chain.
#include "kernels/cuda/embedding.h"

#include "kernels/cuda/embedding_warps.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {
namespace {

using namespace embedding_detail;

constexpr int kRadixBits = 8;
constexpr int kRadixBins = 1 << kRadixBits;  // == kThreads: thread d owns bin d
static_assert(kRadixBins == kThreads, "the sort kernels give each thread one digit bin");
constexpr int kSortRounds = 16;                     // rounds of kThreads positions per block
constexpr int kSortChunk = kThreads * kSortRounds;  // positions per block of a sort pass
constexpr int kScanThreads = 1024;                  // one block scans the digit counts
// Gradient rows in flight per lane in the segment reduce. A row's additions must stay in token
// order (bitwise equality with the CPU), so a row hit by many tokens is bound by this depth.
constexpr int kReduceUnroll = 8;

// ---- deterministic backward: stable radix sort by id ----------------------------------------

__device__ __forceinline__ int digit_of(int32_t key, int shift) {
  return static_cast<int>((static_cast<uint32_t>(key) >> shift) & (kRadixBins - 1));
}

// counts[d * n_blocks + block] = how many keys of this block's chunk have digit d.
__global__ void sort_count_digits_kernel(const int32_t* keys, int64_t n, int shift,
                                         int32_t* counts, int n_blocks) {
  RECLM_SHARED(int, bin_count, [kRadixBins]);
  bin_count[threadIdx.x] = 0;
  __syncthreads();
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kSortChunk;
  const int64_t end = begin + kSortChunk < n ? begin + kSortChunk : n;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    atomicAdd(&bin_count[digit_of(keys[i], shift)], 1);
  }
  __syncthreads();
  counts[static_cast<int64_t>(threadIdx.x) * n_blocks + blockIdx.x] = bin_count[threadIdx.x];
}

// data[0, m) <- its exclusive prefix sum. One block of kScanThreads: each thread scans a
// contiguous slice serially; the slice totals are scanned with warp shuffles.
__global__ void exclusive_scan_kernel(int32_t* data, int64_t m) {
  RECLM_SHARED(int32_t, warp_base, [kScanThreads / kWarpSize]);
  const int lane = lane_id();
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int64_t per_thread = (m + kScanThreads - 1) / kScanThreads;
  const int64_t begin = threadIdx.x * per_thread;
  const int64_t end = begin + per_thread < m ? begin + per_thread : m;
  int32_t local = 0;
  for (int64_t i = begin; i < end; ++i) local += data[i];
  int32_t inclusive = local;
  for (int d = 1; d < kWarpSize; d *= 2) {
    const int32_t up = __shfl_up_sync(kFullMask, inclusive, d);
    if (lane >= d) inclusive += up;
  }
  if (lane == kWarpSize - 1) warp_base[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {  // kScanThreads / kWarpSize == kWarpSize warp totals: one per lane
    const int32_t total = warp_base[lane];
    int32_t before = total;
    for (int d = 1; d < kWarpSize; d *= 2) {
      const int32_t up = __shfl_up_sync(kFullMask, before, d);
      if (lane >= d) before += up;
    }
    warp_base[lane] = before - total;
  }
  __syncthreads();
  int32_t running = warp_base[warp] + inclusive - local;
  for (int64_t i = begin; i < end; ++i) {
    const int32_t v = data[i];
    data[i] = running;
    running += v;
  }
}

// One stable pass: (keys_in[i], vals_in[i] or i) goes to slot first_slot(digit, block) + number
// of earlier positions of this block with the same digit. Per round of kThreads positions: the
// lanes of a warp sharing a digit are found with kRadixBits ballots (rank = earlier peers), each
// warp's count per digit goes to shared memory, and earlier warps' counts are added.
__global__ void sort_place_kernel(const int32_t* keys_in, const int32_t* vals_in, int64_t n,
                                  int shift, const int32_t* first_slots, int n_blocks,
                                  int32_t* keys_out, int32_t* vals_out) {
  RECLM_SHARED(int32_t, warp_count, [kWarpsPerBlock][kRadixBins]);
  RECLM_SHARED(int32_t, next_slot, [kRadixBins]);
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / kWarpSize;
  const int lane = lane_id();
  next_slot[tid] = first_slots[static_cast<int64_t>(tid) * n_blocks + blockIdx.x];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kSortChunk;
  for (int round = 0; round < kSortRounds; ++round) {
    const int64_t round_begin = begin + static_cast<int64_t>(round) * kThreads;
    if (round_begin >= n) break;  // uniform over the block: no thread is left at a barrier
    for (int w = 0; w < kWarpsPerBlock; ++w) warp_count[w][tid] = 0;  // thread tid owns bin tid
    const int64_t i = round_begin + tid;
    const bool active = i < n;
    const int32_t key = active ? keys_in[i] : 0;
    const int digit = digit_of(key, shift);
    // peers: the lanes of this warp with the same activity and digit (this lane included).
    const unsigned active_lanes = __ballot_sync(kFullMask, active);
    unsigned peers = active ? active_lanes : ~active_lanes;
    for (int bit = 0; bit < kRadixBits; ++bit) {
      const bool set = (digit >> bit) & 1;
      const unsigned lanes_set = __ballot_sync(kFullMask, set);
      peers &= set ? lanes_set : ~lanes_set;
    }
    const int rank_in_warp = __popc(peers & ((1u << lane) - 1u));
    const bool last_in_warp = (peers >> lane) == 1u;
    __syncthreads();  // counts zeroed; the last round's next_slot updates visible
    if (active && last_in_warp) warp_count[warp][digit] = rank_in_warp + 1;
    __syncthreads();  // counts written
    int before = rank_in_warp, later = 0;
    for (int w = 0; w < kWarpsPerBlock; ++w) {
      const int32_t count = warp_count[w][digit];
      before += w < warp ? count : 0;
      later += w > warp ? count : 0;
    }
    const int32_t slot = active ? next_slot[digit] + before : 0;
    __syncthreads();  // every read of warp_count and next_slot done before they change
    if (active) {
      keys_out[slot] = key;
      vals_out[slot] = vals_in ? vals_in[i] : static_cast<int32_t>(i);
      // The digit's last position in this round advances its slot past the round.
      if (last_in_warp && later == 0) next_slot[digit] += before + 1;
    }
  }
}

__global__ void zero_counter_kernel(int32_t* counter) { *counter = 0; }

// segment_start[0, *n_segments) <- every slot i where sorted_ids changes (any order).
// Launched with exactly ceil(n / kThreads) full blocks: every lane reaches the ballot.
__global__ void find_segments_kernel(const int32_t* sorted_ids, int64_t n, int32_t* segment_start,
                                     int32_t* n_segments) {
  const int lane = lane_id();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool head = i < n && (i == 0 || sorted_ids[i] != sorted_ids[i - 1]);
  const unsigned heads = __ballot_sync(kFullMask, head);
  int32_t base = 0;
  if (lane == 0 && heads != 0) base = atomicAdd(n_segments, __popc(heads));
  base = __shfl_sync(kFullMask, base, 0);
  if (head) segment_start[base + __popc(heads & ((1u << lane) - 1u))] = static_cast<int32_t>(i);
}

// Gradient row of sorted slot k (see detail::sorted_scatter_add), chunk at column c.
template <typename VecT>
__device__ __forceinline__ VecT gradient_chunk(const float* dout, int64_t dim, int64_t c,
                                               int32_t position, const int32_t* bag_of,
                                               const int32_t* offsets, bool mean) {
  const int64_t row = bag_of ? bag_of[position] : position;
  VecT g = *reinterpret_cast<const VecT*>(dout + row * dim + c);
  if (mean) detail::divide_by(g, static_cast<float>(offsets[row + 1] - offsets[row]));
  return g;
}

// One warp per (segment, chunk of kWarpSize * VecT columns): dtable chunk += the segment's
// gradient rows in sorted order. Warp-uniform loops: every lane reaches every ballot.
template <typename VecT>
__global__ void segment_reduce_kernel(float* dtable, const float* dout, const int32_t* sorted_ids,
                                      const int32_t* sorted_pos, const int32_t* segment_start,
                                      const int32_t* n_segments, int64_t n, int64_t dim,
                                      const int32_t* bag_of, const int32_t* offsets, bool mean) {
  constexpr int kVec = sizeof(VecT) / sizeof(float);
  constexpr int64_t kChunkCols = kWarpSize * kVec;
  const int lane = lane_id();
  const int64_t n_chunks = (dim + kChunkCols - 1) / kChunkCols;
  const int64_t n_items = static_cast<int64_t>(*n_segments) * n_chunks;
  for (int64_t item = global_warp(); item < n_items; item += grid_warps()) {
    const int64_t segment = item / n_chunks;
    const int64_t c = (item - segment * n_chunks) * kChunkCols + lane * kVec;
    const bool active = c < dim;
    const int64_t start = segment_start[segment];
    const int32_t id = sorted_ids[start];
    // Segment end: the first slot after start with another id (ballot over 32 slots at a time).
    int64_t end = start + 1;
    for (;;) {
      const int64_t k = end + lane;
      const unsigned same = __ballot_sync(kFullMask, k < n && sorted_ids[k] == id);
      if (same != kFullMask) {
        end += __ffs(static_cast<int>(~same)) - 1;
        break;
      }
      end += kWarpSize;
    }
    VecT* dst = reinterpret_cast<VecT*>(dtable + static_cast<int64_t>(id) * dim + c);
    if (!active) continue;  // no barrier or warp collective below
    VecT acc = *dst;
    // kReduceUnroll gradient rows in flight, added in token order. Past the segment's end the
    // slot is clamped to its last one, so every load is unconditional (no branch splits the
    // batch) and only the additions are predicated.
    for (int64_t k = start; k < end; k += kReduceUnroll) {
      VecT g[kReduceUnroll];
      RECLM_UNROLL
      for (int u = 0; u < kReduceUnroll; ++u) {
        const int64_t kk = k + u < end ? k + u : end - 1;
        g[u] = gradient_chunk<VecT>(dout, dim, c, sorted_pos[kk], bag_of, offsets, mean);
      }
      RECLM_UNROLL
      for (int u = 0; u < kReduceUnroll; ++u) {
        if (k + u < end) detail::add_to(acc, g[u]);
      }
    }
    *dst = acc;
  }
}

int radix_passes(int64_t vocab) {
  int bits = 0;
  while ((int64_t{1} << bits) < vocab) ++bits;
  return bits <= kRadixBits ? 1 : (bits + kRadixBits - 1) / kRadixBits;
}

int64_t sort_blocks(int64_t n) { return (n + kSortChunk - 1) / kSortChunk; }
int64_t round_up4(int64_t n) { return (n + 3) / 4 * 4; }  // keeps each array 16-byte aligned

}  // namespace

size_t embedding_backward_workspace_bytes(int64_t n_tokens, int64_t vocab) {
  (void)vocab;
  const int64_t n = n_tokens > 0 ? n_tokens : 0;
  // keys x2, positions x2 (ping-pong), digit counts, segment starts, the segment counter.
  const int64_t ints = 5 * round_up4(n) + round_up4(kRadixBins * sort_blocks(n)) + 4;
  return static_cast<size_t>(ints) * sizeof(int32_t);
}

namespace detail {

cudaError_t sorted_scatter_add(float* dtable, const float* dout, const int32_t* ids, int64_t n_ids,
                               int64_t vocab, int64_t dim, const int32_t* bag_of,
                               const int32_t* offsets, bool mean, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream) {
  if (n_ids <= 0 || dim <= 0) return cudaSuccess;
  if (n_ids > INT32_MAX || vocab <= 0 || vocab > INT32_MAX || workspace == nullptr ||
      workspace_bytes < embedding_backward_workspace_bytes(n_ids, vocab)) {
    return cudaErrorInvalidValue;
  }
  const int64_t n = n_ids;
  const int n_blocks = static_cast<int>(sort_blocks(n));
  int32_t* keys[2];
  int32_t* positions[2];
  int32_t* next = static_cast<int32_t*>(workspace);
  for (int b = 0; b < 2; ++b) {
    keys[b] = next;
    next += round_up4(n);
    positions[b] = next;
    next += round_up4(n);
  }
  int32_t* counts = next;
  next += round_up4(int64_t{kRadixBins} * n_blocks);
  int32_t* segment_start = next;
  next += round_up4(n);
  int32_t* n_segments = next;

  const int passes = radix_passes(vocab);
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = pass * kRadixBits;
    const int32_t* keys_in = pass == 0 ? ids : keys[(pass - 1) % 2];
    const int32_t* positions_in = pass == 0 ? nullptr : positions[(pass - 1) % 2];
    cudaError_t status = simt::launch(sort_count_digits_kernel, dim3(n_blocks), dim3(kThreads), 0,
                                      stream, keys_in, n, shift, counts, n_blocks);
    if (status != cudaSuccess) return status;
    status = simt::launch(exclusive_scan_kernel, dim3(1), dim3(kScanThreads), 0, stream, counts,
                          int64_t{kRadixBins} * n_blocks);
    if (status != cudaSuccess) return status;
    status = simt::launch(sort_place_kernel, dim3(n_blocks), dim3(kThreads), 0, stream, keys_in,
                          positions_in, n, shift, static_cast<const int32_t*>(counts), n_blocks,
                          keys[pass % 2], positions[pass % 2]);
    if (status != cudaSuccess) return status;
  }
  const int32_t* sorted_ids = keys[(passes - 1) % 2];
  const int32_t* sorted_pos = positions[(passes - 1) % 2];

  cudaError_t status = simt::launch(zero_counter_kernel, dim3(1), dim3(1), 0, stream, n_segments);
  if (status != cudaSuccess) return status;
  status = simt::launch(find_segments_kernel, dim3(static_cast<unsigned>((n + kThreads - 1) / kThreads)),
                        dim3(kThreads), 0, stream, sorted_ids, n, segment_start, n_segments);
  if (status != cudaSuccess) return status;

  // Warps for at most n segments x the column chunks; each warp loops over what it is given.
  const bool vec4 = can_use_float4(dim, dtable, dout);
  const int64_t chunk_cols = kWarpSize * (vec4 ? 4 : 1);
  const int64_t max_items = n * ((dim + chunk_cols - 1) / chunk_cols);
  const dim3 grid(grid_stride_blocks(max_items, kWarpsPerBlock));
  const int32_t* starts = segment_start;
  const int32_t* count = n_segments;
  if (vec4) {
    return simt::launch(segment_reduce_kernel<float4>, grid, dim3(kThreads), 0, stream, dtable,
                        dout, sorted_ids, sorted_pos, starts, count, n, dim, bag_of, offsets, mean);
  }
  return simt::launch(segment_reduce_kernel<float>, grid, dim3(kThreads), 0, stream, dtable, dout,
                      sorted_ids, sorted_pos, starts, count, n, dim, bag_of, offsets, mean);
}

}  // namespace detail


}  // namespace reclm::cuda
