// Fused softmax cross-entropy, one block per row of logits [T, n_classes] (row of up to ~10^5
// classes, read twice, dlogits written once, no probabilities stored).
//
// Algorithm per row (block):
//   pass 1  each thread folds its elements into an online (max, Σ exp(x − max)): per float4 the
//           local max first, the running sum rescaled by exp(old − new) when the max grows, so
//           every exp has argument ≤ 0 and logits of ±80 stay finite. The block then takes the
//           row max M (warp shuffles + one shared slot per warp) and the row sum S in double
//           of each thread's sum rescaled to M (fixed tree order: deterministic).
//   loss    w·(M + log S − x[target]) in double, x[target] read before any write.
//   pass 2  dlogits = k·exp(x − M) − (grad_scale·w at the target), k = grad_scale·w / S; each
//           value is read before it is overwritten, so dlogits may alias logits.
// Rows start at any 4-byte offset (n_classes is odd for real vocabularies): each row splits into
// a scalar head up to the first 16-byte boundary, a float4 body and a scalar tail. Pass 1 loads
// are plain (the row should stay in L2 for pass 2); pass 2 runs back to front, so it meets the
// most recently read part of the row first, with streaming (evict-first) loads and stores.
// The loss sum: a second kernel, one block, adds the per-row double losses in a fixed order.
// The GPU trainer's forms write dlogits as bf16 (the operand of the GEMMs after it) from the same
// fp32 values, rounded as convert_f32_to_bf16 rounds them, and zeros in the rows' padding; they
// read fp32 logits, or bf16 logits (widened exactly, so every sum and exp is the fp32 form's on
// the widened values; the rows then split at 8-byte units of 4 values, and the output may be the
// same buffer).
// Rows in registers (bf16 logits to bf16 dlogits at the same phase, the trainer's LM head, rows of
// up to kMaxThreads · kMaxResidentUnits units): each thread loads all its units at once and keeps
// them, so pass 2 computes from registers and the row is read once instead of twice. On an H100
// (docs/benchmarks.md, run 13) that paid only 3.5% at gpu_350m's 64,553 classes (0.646 against
// 0.669 ms for 4,096 rows, 0.55 of copy bandwidth): most of pass 2's reads were L2 hits. What
// bounds it is one 512-thread block per SM (115 registers a thread), which waits on each row's
// loads and reductions with nothing beside it. So where rows start 16-byte aligned (the trainer's
// rows, padded to 64 classes) a block takes 4 rows and copies the next one into shared memory
// (cp.async) while it reduces and writes this one (cross_entropy_pipelined_bf16_kernel; since
// 2026-11-28, not measured on a GPU yet: `kernel_bench` has it beside the one-row-per-block form).
// The units, their order per thread and the reductions are pass 1's, so the results are bitwise
// the two-pass kernel's.
#include "kernels/cuda/cross_entropy.h"

#include "kernels/cuda/bf16_round.h"
#include "kernels/simt/async_copy.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kMaxThreads = 512;  // per row block: 50257 classes = 25 float4 per thread
constexpr int kMaxWarps = kMaxThreads / 32;
constexpr int kSumThreads = 512;  // the loss-sum block
constexpr int kMaxResidentUnits = 32;  // units of 4 bf16 per thread kept in registers: 65,536 classes
constexpr unsigned kFullMask = 0xffffffffu;

enum class Mode { kForward, kForwardBackward, kPartialStats };

// Elements [0, head) and [head + 4·n_vec, n) are scalars; the body of 4-value units (16 bytes of
// fp32, 8 of bf16) lies between.
struct RowSplit {
  int64_t head;
  int64_t n_vec;
  int64_t n_scalar;  // head + tail
  __device__ int64_t scalar_index(int64_t j) const { return j < head ? j : j + 4 * n_vec; }
};

template <typename In>
__device__ inline RowSplit split_row(const In* x, int64_t n, bool vec) {
  RowSplit s{n, 0, n};
  if (vec) {
    constexpr int64_t kUnitBytes = 4 * sizeof(In);
    const int64_t misalign = static_cast<int64_t>(reinterpret_cast<uintptr_t>(x) % kUnitBytes) / sizeof(In);
    s.head = misalign == 0 ? 0 : (4 - misalign < n ? 4 - misalign : n);
    s.n_vec = (n - s.head) / 4;
    s.n_scalar = n - 4 * s.n_vec;
  }
  return s;
}

struct OnlineSoftmax {
  float max;  // running max of the values seen
  float sum;  // Σ exp(value − max)
  __device__ void add_max(float local) {
    if (local > max) {
      sum *= expf(max - local);  // exp(−inf) = 0 at the start
      max = local;
    }
  }
  __device__ void add(float a) {
    add_max(a);
    sum += expf(a - max);
  }
  __device__ void add4(float4 v) {
    add_max(fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));
    sum += (expf(v.x - max) + expf(v.y - max)) + (expf(v.z - max) + expf(v.w - max));
  }
};

// Block-wide max/sum, the result in every thread. blockDim.x is a multiple of 32. Each helper
// owns its shared slots, so it may be called once per kernel without a trailing barrier.
__device__ float block_max(float value, float* warp_slots) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  if (threadIdx.x % 32 == 0) warp_slots[threadIdx.x / 32] = value;
  __syncthreads();
  float result = warp_slots[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) result = fmaxf(result, warp_slots[w]);
  return result;
}

__device__ double block_sum(double value, double* warp_slots) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  if (threadIdx.x % 32 == 0) warp_slots[threadIdx.x / 32] = value;
  __syncthreads();
  double result = 0.0;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) result += warp_slots[w];
  return result;
}

// dx[c] = f(x[c], c) over the row, x[c] read before dx[c] is written (they may alias).
// Back to front: pass 1 read the row front to back, so its end is the likeliest still in L2
// (a 50257-class row is 201 KB and hundreds of rows are in flight, more than L2 holds).
// dx is fp32, or bf16 bits (uint16_t: each value rounded to nearest even as convert_f32_to_bf16
// rounds, 4 values per 8-byte store). The units are streaming (evict-first) stores, unlike
// bf16_round.h's store4; single values use its store1.
__device__ __forceinline__ void store_unit(float* dx, int64_t i, float4 v) {
  __stcs(reinterpret_cast<float4*>(dx) + i, v);
}
__device__ __forceinline__ void store_unit(uint16_t* dx, int64_t i, float4 v) {
  __stcs(reinterpret_cast<uint2*>(dx) + i, make_uint2(pack2_bf16(v.x, v.y), pack2_bf16(v.z, v.w)));
}
// Unit i of x (streaming: evict-first), as fp32.
__device__ __forceinline__ float4 load_unit_streaming(const float* x, int64_t i) {
  return __ldcs(reinterpret_cast<const float4*>(x) + i);
}
__device__ __forceinline__ float4 widen_unit(uint2 w) {
  return make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
}
__device__ __forceinline__ float4 load_unit_streaming(const uint16_t* x, int64_t i) {
  return widen_unit(__ldcs(reinterpret_cast<const uint2*>(x) + i));
}

template <typename Out, typename In, typename F>
__device__ void write_row(Out* dx, const In* x, const RowSplit& s, F f) {
  for (int64_t i = s.n_vec - 1 - threadIdx.x; i >= 0; i -= blockDim.x) {
    const float4 v = load_unit_streaming(x + s.head, i);
    const int64_t c = s.head + 4 * i;
    store_unit(dx + s.head, i, make_float4(f(v.x, c), f(v.y, c + 1), f(v.z, c + 2), f(v.w, c + 3)));
  }
  for (int64_t j = threadIdx.x; j < s.n_scalar; j += blockDim.x) {
    const int64_t c = s.scalar_index(j);
    store1(dx + c, f(load1(x + c), c));
  }
}

struct Zero {
  __device__ float operator()(float, int64_t) const { return 0.0f; }
};

// k·exp(x − M), minus `onehot` at the target (target −1: in no column of this part).
struct SoftmaxGrad {
  float max, k, onehot;
  int64_t target;
  __device__ float operator()(float x, int64_t c) const {
    const float d = k * expf(x - max);
    return c == target ? d - onehot : d;
  }
};

// The bf16 form's padding columns [n_classes, row_stride): zeros, so a GEMM may run over them.
__device__ void zero_padding(float*, int64_t, int64_t) {}
__device__ void zero_padding(uint16_t* dx, int64_t n_classes, int64_t row_stride) {
  for (int64_t c = n_classes + threadIdx.x; c < row_stride; c += blockDim.x) dx[c] = 0;
}

// The loss of a row with weight w from its statistics (row max M, Σ exp(x − M)) into losses and
// row_loss, by thread 0 (NaN for a target outside the row: it had a weight).
__device__ void store_row_loss(float* losses, double* row_loss, int64_t row, float w, float row_m, double row_s,
                               bool target_here, double target_value) {
  if (threadIdx.x != 0) return;
  const double lse = static_cast<double>(row_m) + log(row_s);
  const double loss = target_here ? static_cast<double>(w) * (lse - target_value) : NAN;
  row_loss[row] = loss;
  losses[row] = static_cast<float>(loss);
}

template <Mode kMode, typename Out, typename In>
__global__ void cross_entropy_rows_kernel(Out* dlogits, float* losses, double* row_loss, float* row_max,
                                          double* row_sum, double* target_logit, const In* logits,
                                          const int32_t* targets, const float* weights, int64_t n_classes,
                                          int64_t row_stride, int64_t class_begin, float grad_scale,
                                          bool vec_out) {
  RECLM_SHARED(float, warp_max, [kMaxWarps]);
  RECLM_SHARED(double, warp_sum, [kMaxWarps]);
  const int64_t row = blockIdx.x;
  const In* x = logits + row * row_stride;
  [[maybe_unused]] Out* dx = kMode == Mode::kForwardBackward ? dlogits + row * row_stride : nullptr;
  // Pass 1 reads units whatever the output's alignment, so the losses never depend on it; the
  // writes are unit-shaped only when dlogits rows share the logits rows' phase.
  const RowSplit split = split_row(x, n_classes, /*vec=*/true);
  [[maybe_unused]] const RowSplit write_split = vec_out ? split : split_row(x, n_classes, /*vec=*/false);
  const float w = weights[row];
  const int64_t target = static_cast<int64_t>(targets[row]) - class_begin;
  const bool target_here = target >= 0 && target < n_classes;
  if (w == 0.0f) {  // the same for the whole block: no barrier is skipped by only some threads
    if constexpr (kMode == Mode::kForwardBackward) {
      write_row(dx, x, write_split, Zero{});
      zero_padding(dx, n_classes, row_stride);
    }
    if (threadIdx.x == 0) {
      if constexpr (kMode == Mode::kPartialStats) {
        row_max[row] = -INFINITY;
        row_sum[row] = 0.0;
        target_logit[row] = 0.0;
      } else {
        row_loss[row] = 0.0;
        losses[row] = 0.0f;
      }
    }
    return;
  }
  // Read before pass 2 overwrites it; pass 2 starts after the barriers of the reductions.
  const double target_value = threadIdx.x == 0 && target_here ? static_cast<double>(load1(x + target)) : 0.0;

  OnlineSoftmax st{-INFINITY, 0.0f};
  for (int64_t i = threadIdx.x; i < split.n_vec; i += blockDim.x) st.add4(load4(x + split.head + 4 * i));
  for (int64_t j = threadIdx.x; j < split.n_scalar; j += blockDim.x) st.add(load1(x + split.scalar_index(j)));
  const float row_m = block_max(st.max, warp_max);
  const double mine = st.sum == 0.0f ? 0.0 : static_cast<double>(st.sum) * expf(st.max - row_m);
  const double row_s = block_sum(mine, warp_sum);

  if (threadIdx.x == 0) {
    if constexpr (kMode == Mode::kPartialStats) {
      row_max[row] = row_m;
      row_sum[row] = row_s;
      target_logit[row] = target_value;
    }
  }
  if constexpr (kMode != Mode::kPartialStats)
    store_row_loss(losses, row_loss, row, w, row_m, row_s, target_here, target_value);
  if constexpr (kMode == Mode::kForwardBackward) {
    const double scale = static_cast<double>(grad_scale) * w;
    const SoftmaxGrad grad{row_m, static_cast<float>(scale / row_s), static_cast<float>(scale),
                           target_here ? target : -1};
    write_row(dx, x, write_split, grad);
    zero_padding(dx, n_classes, row_stride);
  }
}

// Row `row` of cross_entropy_rows_kernel<kForwardBackward> on bf16 logits whose dlogits have the
// logits' phase, once this thread's units of the row are in registers: mine[k] holds unit
// threadIdx.x + k·blockDim.x of the row (zeros past its units; kUnits >= this thread's unit count),
// and the head and tail scalars are read from memory, as there. The statistics, the loss and the
// dlogits, written from the registers: the row is read from memory once (a row without weight
// gets zeros). Nothing of the row may have been written before.
template <int kUnits>
__device__ void resident_row(const uint2 (&mine)[kUnits], uint16_t* dlogits, float* losses, double* row_loss,
                             const uint16_t* logits, const int32_t* targets, const float* weights, int64_t row,
                             int64_t n_classes, int64_t row_stride, int64_t class_begin, float grad_scale,
                             float* warp_max, double* warp_sum) {
  const uint16_t* x = logits + row * row_stride;
  uint16_t* dx = dlogits + row * row_stride;
  const RowSplit split = split_row(x, n_classes, /*vec=*/true);
  const float w = weights[row];
  const int64_t target = static_cast<int64_t>(targets[row]) - class_begin;
  const bool target_here = target >= 0 && target < n_classes;
  if (w == 0.0f) {  // (the whole block)
    write_row(dx, x, split, Zero{});
    zero_padding(dx, n_classes, row_stride);
    if (threadIdx.x == 0) row_loss[row] = 0.0, losses[row] = 0.0f;
    return;
  }
  const double target_value = threadIdx.x == 0 && target_here ? static_cast<double>(load1(x + target)) : 0.0;
  OnlineSoftmax st{-INFINITY, 0.0f};
  RECLM_UNROLL
  for (int k = 0; k < kUnits; ++k) {
    if (threadIdx.x + int64_t{k} * blockDim.x < split.n_vec) st.add4(widen_unit(mine[k]));
  }
  for (int64_t j = threadIdx.x; j < split.n_scalar; j += blockDim.x) st.add(load1(x + split.scalar_index(j)));
  const float row_m = block_max(st.max, warp_max);
  const double thread_sum = st.sum == 0.0f ? 0.0 : static_cast<double>(st.sum) * expf(st.max - row_m);
  const double row_s = block_sum(thread_sum, warp_sum);
  store_row_loss(losses, row_loss, row, w, row_m, row_s, target_here, target_value);

  const double scale = static_cast<double>(grad_scale) * w;
  const SoftmaxGrad grad{row_m, static_cast<float>(scale / row_s), static_cast<float>(scale),
                         target_here ? target : -1};
  RECLM_UNROLL
  for (int k = 0; k < kUnits; ++k) {
    const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
    if (i >= split.n_vec) continue;
    const float4 v = widen_unit(mine[k]);
    const int64_t c = split.head + 4 * i;
    store_unit(dx + split.head, i, make_float4(grad(v.x, c), grad(v.y, c + 1), grad(v.z, c + 2), grad(v.w, c + 3)));
  }
  for (int64_t j = threadIdx.x; j < split.n_scalar; j += blockDim.x) {
    const int64_t c = split.scalar_index(j);
    store1(dx + c, grad(load1(x + c), c));
  }
  zero_padding(dx, n_classes, row_stride);
}

// resident_row, one block per row, each thread loading its units straight into registers (every
// load issued before the first is used). At 32 units a thread ptxas gives the kernel 115
// registers: one 512-thread block per SM, which waits on each row's loads and reductions with
// nothing beside it (0.55 of copy bandwidth on an H100, run 13).
template <int kUnits>
__global__ void __launch_bounds__(kMaxThreads)
    cross_entropy_resident_bf16_kernel(uint16_t* dlogits, float* losses, double* row_loss, const uint16_t* logits,
                                       const int32_t* targets, const float* weights, int64_t n_classes,
                                       int64_t row_stride, int64_t class_begin, float grad_scale) {
  RECLM_SHARED(float, warp_max, [kMaxWarps]);
  RECLM_SHARED(double, warp_sum, [kMaxWarps]);
  const int64_t row = blockIdx.x;
  const uint16_t* x = logits + row * row_stride;
  const RowSplit split = split_row(x, n_classes, /*vec=*/true);
  const uint2* units = reinterpret_cast<const uint2*>(x + split.head);
  uint2 mine[kUnits];  // (a row without weight loads them for nothing: rare)
  RECLM_UNROLL
  for (int k = 0; k < kUnits; ++k) {
    const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
    mine[k] = i < split.n_vec ? __ldcs(units + i) : make_uint2(0u, 0u);
  }
  resident_row(mine, dlogits, losses, row_loss, logits, targets, weights, row, n_classes, row_stride, class_begin,
               grad_scale, warp_max, warp_sum);
}

// Rows per block of cross_entropy_pipelined_bf16_kernel: the first row's loads are waited for
// with nothing beside them, the next ones arrive while the row before is reduced and written;
// few enough that the blocks still spread over the SMs as they come free (the side stream's
// GEMMs hold some of them).
constexpr int64_t kPipelinedRows = 4;

// resident_row over kPipelinedRows consecutive rows per block, the next row copied into shared
// memory (cp.async, 16-byte chunks) while this one is reduced and written, so an SM's loads do not
// wait for its reductions. Each thread then takes its units from shared memory. Rows start 16-byte
// aligned (logits so, row_stride a multiple of 8 classes): no head scalars, and the row's units
// are whole chunks but an odd last one, whose second half is zero-filled. Dynamic shared memory:
// the row's chunks, up to 128 KiB at 65,536 classes.
template <int kUnits>
__global__ void __launch_bounds__(kMaxThreads)
    cross_entropy_pipelined_bf16_kernel(uint16_t* dlogits, float* losses, double* row_loss, const uint16_t* logits,
                                        const int32_t* targets, const float* weights, int64_t T, int64_t n_classes,
                                        int64_t row_stride, int64_t class_begin, float grad_scale) {
  RECLM_SHARED(float, warp_max, [kMaxWarps]);
  RECLM_SHARED(double, warp_sum, [kMaxWarps]);
  RECLM_DYNAMIC_SHARED(uint2, staged);  // [2 · chunks]: the row's units
  // (32-bit counts: a row has at most 16,384 units; the 64-bit row offsets live in stage only)
  const int n_vec = static_cast<int>(n_classes / 4), chunks = (n_vec + 1) / 2;
  const int64_t first = blockIdx.x * kPipelinedRows;
  const int64_t end = first + kPipelinedRows < T ? first + kPipelinedRows : T;
  const auto stage = [&](int64_t row) {  // this thread's chunks of the row, as one group
    const uint4* src = reinterpret_cast<const uint4*>(logits + row * row_stride);
    for (int c = static_cast<int>(threadIdx.x); c < chunks; c += static_cast<int>(blockDim.x))
      simt::cp_async_16_zfill(staged + 2 * c, src + c, 2 * c + 1 < n_vec ? 16 : 8);
    simt::cp_async_commit();
  };
  stage(first);
  for (int64_t row = first; row < end; ++row) {
    simt::cp_async_wait<0>();
    __syncthreads();  // every thread's chunks of the row have landed
    uint2 mine[kUnits];
    RECLM_UNROLL
    for (int k = 0; k < kUnits; ++k) {
      const int i = static_cast<int>(threadIdx.x + k * blockDim.x);
      mine[k] = i < n_vec ? staged[i] : make_uint2(0u, 0u);
    }
    __syncthreads();  // every thread has its units: the next row may land over them
    if (row + 1 < end) stage(row + 1);
    resident_row(mine, dlogits, losses, row_loss, logits, targets, weights, row, n_classes, row_stride, class_begin,
                 grad_scale, warp_max, warp_sum);
  }
}

// dlogits from the combined statistics: pass 2 alone (no barriers); fp32 or bf16 out as above.
template <typename Out>
__global__ void cross_entropy_backward_from_stats_kernel(Out* dlogits, const float* logits, const int32_t* targets,
                                                         const float* weights, const float* row_max,
                                                         const double* row_sum, int64_t n_classes,
                                                         int64_t row_stride, int64_t class_begin, float grad_scale,
                                                         bool vec) {
  const int64_t row = blockIdx.x;
  const float* x = logits + row * row_stride;
  Out* dx = dlogits + row * row_stride;
  const RowSplit split = split_row(x, n_classes, vec);
  const float w = weights[row];
  if (w == 0.0f) {
    write_row(dx, x, split, Zero{});
  } else {
    const int64_t target = static_cast<int64_t>(targets[row]) - class_begin;
    const double scale = static_cast<double>(grad_scale) * w;
    const SoftmaxGrad grad{row_max[row], static_cast<float>(scale / row_sum[row]), static_cast<float>(scale),
                           target >= 0 && target < n_classes ? target : -1};
    write_row(dx, x, split, grad);
  }
  zero_padding(dx, n_classes, row_stride);
}


// *loss_sum = Σ_t row_loss[t]: thread i adds rows i, i + kSumThreads, ...; then a fixed tree.
__global__ void cross_entropy_loss_sum_kernel(const double* row_loss, int64_t T, double* loss_sum) {
  RECLM_SHARED(double, warp_sum, [kSumThreads / 32]);
  double acc = 0.0;
  for (int64_t t = threadIdx.x; t < T; t += kSumThreads) acc += row_loss[t];
  const double total = block_sum(acc, warp_sum);
  if (threadIdx.x == 0) *loss_sum = total;
}

// Threads per row block: a float4 per thread at least, a multiple of 32, at most kMaxThreads.
unsigned row_threads(int64_t n_classes) {
  const int64_t per_vec = (n_classes + 3) / 4;
  const int64_t rounded = (per_vec + 31) / 32 * 32;
  return static_cast<unsigned>(rounded < 32 ? 32 : (rounded > kMaxThreads ? kMaxThreads : rounded));
}

// float4 access needs the output rows at the same 16-byte phase as the input rows; bf16 output
// rows (half the bytes per value) at the same 8-byte phase.
bool same_phase(const float* logits, const float* dlogits) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(logits), b = reinterpret_cast<uintptr_t>(dlogits);
  return a % 4 == 0 && (a - b) % 16 == 0;
}
bool same_phase(const float* logits, const uint16_t* dlogits) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(logits), b = reinterpret_cast<uintptr_t>(dlogits);
  return a % 4 == 0 && b % 2 == 0 && (a - 2 * b) % 16 == 0;
}
bool same_phase(const uint16_t* logits, const uint16_t* dlogits) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(logits), b = reinterpret_cast<uintptr_t>(dlogits);
  return a % 2 == 0 && (a - b) % 8 == 0;
}

template <typename Out>
cudaError_t launch_backward_from_stats(Out* dlogits, const float* logits, const int32_t* targets,
                                       const float* weights, const float* row_max, const double* row_sum, int64_t T,
                                       int64_t n_classes, int64_t row_stride, int64_t class_begin, float grad_scale,
                                       cudaStream_t stream) {
  if (row_stride == 0) row_stride = n_classes;
  if (row_stride < n_classes) return cudaErrorInvalidValue;
  if (T <= 0) return cudaSuccess;
  return simt::launch(cross_entropy_backward_from_stats_kernel<Out>, dim3(static_cast<unsigned>(T)),
                      dim3(row_threads(n_classes)), 0, stream, dlogits, logits, targets, weights, row_max, row_sum,
                      n_classes, row_stride, class_begin, grad_scale, same_phase(logits, dlogits));
}

// *loss_sum = Σ row_loss[0, T) (nothing without loss_sum).
cudaError_t launch_loss_sum(double* loss_sum, const double* row_loss, int64_t T, cudaStream_t stream) {
  if (loss_sum == nullptr) return cudaSuccess;
  return simt::launch(cross_entropy_loss_sum_kernel, dim3(1), dim3(kSumThreads), 0, stream, row_loss, T, loss_sum);
}

template <Mode kMode, typename Out, typename In>
cudaError_t launch_rows(Out* dlogits, float* losses, double* loss_sum, double* row_loss, float* row_max,
                        double* row_sum, double* target_logit, const In* logits, const int32_t* targets,
                        const float* weights, int64_t T, int64_t n_classes, int64_t row_stride,
                        int64_t class_begin, float grad_scale, bool vec_out, cudaStream_t stream) {
  if (row_stride == 0) row_stride = n_classes;
  if (row_stride < n_classes) return cudaErrorInvalidValue;
  if (T > 0) {
    const cudaError_t status =
        simt::launch(cross_entropy_rows_kernel<kMode, Out, In>, dim3(static_cast<unsigned>(T)),
                     dim3(row_threads(n_classes)), 0, stream, dlogits, losses, row_loss, row_max, row_sum,
                     target_logit, logits, targets, weights, n_classes, row_stride, class_begin, grad_scale, vec_out);
    if (status != cudaSuccess) return status;
  }
  if (kMode == Mode::kPartialStats) return cudaSuccess;
  return launch_loss_sum(loss_sum, row_loss, T, stream);
}

// The rows in registers where they fit: in place or at the logits' phase, at most
// kMaxResidentUnits units per thread; pipelined (cross_entropy_pipelined_bf16_kernel) where every
// row starts 16-byte aligned, unless one_row_per_block (the form before it, for the benchmark's
// comparison), else cross_entropy_resident_bf16_kernel. Else cudaErrorNotSupported, before anything
// is queued.
cudaError_t forward_backward_resident_bf16(uint16_t* dlogits, float* losses, double* loss_sum, double* row_loss,
                                           const uint16_t* logits, const int32_t* targets, const float* weights,
                                           int64_t T, int64_t n_classes, int64_t class_begin, float grad_scale,
                                           cudaStream_t stream, int64_t row_stride, bool one_row_per_block = false) {
  if (row_stride == 0) row_stride = n_classes;
  if (row_stride < n_classes) return cudaErrorInvalidValue;
  const unsigned threads = row_threads(n_classes);
  const int64_t units_per_thread = ((n_classes + 3) / 4 + threads - 1) / threads;  // (a row's units <= ceil(n/4))
  if (!same_phase(logits, dlogits) || units_per_thread > kMaxResidentUnits) return cudaErrorNotSupported;
  const bool pipelined = !one_row_per_block && reinterpret_cast<uintptr_t>(logits) % 16 == 0 && row_stride % 8 == 0;
  if (T > 0) {
    const auto launch = [&](auto resident, auto piped) {
      if (!pipelined) {
        return simt::launch(resident, dim3(static_cast<unsigned>(T)), dim3(threads), 0, stream, dlogits, losses,
                            row_loss, logits, targets, weights, n_classes, row_stride, class_begin, grad_scale);
      }
      const int shared = static_cast<int>(((n_classes / 4 + 1) / 2) * 16);  // the row's 16-byte chunks
      const cudaError_t status = simt::set_max_dynamic_shared_bytes(piped, shared);
      if (status != cudaSuccess) return status;
      const auto blocks = static_cast<unsigned>((T + kPipelinedRows - 1) / kPipelinedRows);
      return simt::launch(piped, dim3(blocks), dim3(threads), shared, stream, dlogits, losses, row_loss, logits,
                          targets, weights, T, n_classes, row_stride, class_begin, grad_scale);
    };
#define RECLM_CE_UNITS(n) cross_entropy_resident_bf16_kernel<n>, cross_entropy_pipelined_bf16_kernel<n>
    const cudaError_t status = units_per_thread <= 1    ? launch(RECLM_CE_UNITS(1))
                               : units_per_thread <= 2  ? launch(RECLM_CE_UNITS(2))
                               : units_per_thread <= 4  ? launch(RECLM_CE_UNITS(4))
                               : units_per_thread <= 8  ? launch(RECLM_CE_UNITS(8))
                               : units_per_thread <= 16 ? launch(RECLM_CE_UNITS(16))
                                                        : launch(RECLM_CE_UNITS(32));
#undef RECLM_CE_UNITS
    if (status != cudaSuccess) return status;
  }
  return launch_loss_sum(loss_sum, row_loss, T, stream);
}

// The forward-backward forms over fp32 or bf16 (uint16_t bits) logits and dlogits.
template <typename Out, typename In>
cudaError_t forward_backward_rows(Out* dlogits, float* losses, double* loss_sum, double* row_loss, const In* logits,
                                  const int32_t* targets, const float* weights, int64_t T, int64_t n_classes,
                                  int64_t class_begin, float grad_scale, cudaStream_t stream, int64_t row_stride) {
  return launch_rows<Mode::kForwardBackward>(dlogits, losses, loss_sum, row_loss, nullptr, nullptr, nullptr, logits,
                                             targets, weights, T, n_classes, row_stride, class_begin, grad_scale,
                                             same_phase(logits, dlogits), stream);
}

}  // namespace

cudaError_t cross_entropy_forward_backward(float* dlogits, float* losses, double* loss_sum,
                                           double* row_loss_workspace, const float* logits,
                                           const int32_t* targets, const float* weights, int64_t T,
                                           int64_t n_classes, int64_t class_begin, float grad_scale,
                                           cudaStream_t stream, int64_t row_stride) {
  return forward_backward_rows(dlogits, losses, loss_sum, row_loss_workspace, logits, targets, weights, T, n_classes,
                               class_begin, grad_scale, stream, row_stride);
}

cudaError_t cross_entropy_forward_backward_bf16(__nv_bfloat16* dlogits, float* losses, double* loss_sum,
                                                double* row_loss_workspace, const float* logits,
                                                const int32_t* targets, const float* weights, int64_t T,
                                                int64_t n_classes, int64_t class_begin, float grad_scale,
                                                cudaStream_t stream, int64_t row_stride) {
  return forward_backward_rows(bf16_bits_of(dlogits), losses, loss_sum, row_loss_workspace, logits, targets, weights,
                               T, n_classes, class_begin, grad_scale, stream, row_stride);
}

cudaError_t cross_entropy_forward_backward_bf16(__nv_bfloat16* dlogits, float* losses, double* loss_sum,
                                                double* row_loss_workspace, const __nv_bfloat16* logits,
                                                const int32_t* targets, const float* weights, int64_t T,
                                                int64_t n_classes, int64_t class_begin, float grad_scale,
                                                cudaStream_t stream, int64_t row_stride) {
  const cudaError_t resident = forward_backward_resident_bf16(
      bf16_bits_of(dlogits), losses, loss_sum, row_loss_workspace, bf16_bits_of(logits), targets, weights, T,
      n_classes, class_begin, grad_scale, stream, row_stride);
  if (resident != cudaErrorNotSupported) return resident;
  return cross_entropy_forward_backward_bf16_two_pass(dlogits, losses, loss_sum, row_loss_workspace, logits, targets,
                                                      weights, T, n_classes, class_begin, grad_scale, stream,
                                                      row_stride);
}

cudaError_t cross_entropy_forward_backward_bf16_one_row_per_block(
    __nv_bfloat16* dlogits, float* losses, double* loss_sum, double* row_loss_workspace, const __nv_bfloat16* logits,
    const int32_t* targets, const float* weights, int64_t T, int64_t n_classes, int64_t class_begin, float grad_scale,
    cudaStream_t stream, int64_t row_stride) {
  return forward_backward_resident_bf16(bf16_bits_of(dlogits), losses, loss_sum, row_loss_workspace,
                                        bf16_bits_of(logits), targets, weights, T, n_classes, class_begin, grad_scale,
                                        stream, row_stride, /*one_row_per_block=*/true);
}

cudaError_t cross_entropy_forward_backward_bf16_two_pass(__nv_bfloat16* dlogits, float* losses, double* loss_sum,
                                                         double* row_loss_workspace, const __nv_bfloat16* logits,
                                                         const int32_t* targets, const float* weights, int64_t T,
                                                         int64_t n_classes, int64_t class_begin, float grad_scale,
                                                         cudaStream_t stream, int64_t row_stride) {
  return forward_backward_rows(bf16_bits_of(dlogits), losses, loss_sum, row_loss_workspace, bf16_bits_of(logits),
                               targets, weights, T, n_classes, class_begin, grad_scale, stream, row_stride);
}

cudaError_t cross_entropy_forward(float* losses, double* loss_sum, double* row_loss_workspace,
                                  const __nv_bfloat16* logits, const int32_t* targets, const float* weights,
                                  int64_t T, int64_t n_classes, int64_t class_begin, cudaStream_t stream,
                                  int64_t row_stride) {
  const uint16_t* in = bf16_bits_of(logits);
  return launch_rows<Mode::kForward>(static_cast<uint16_t*>(nullptr), losses, loss_sum, row_loss_workspace, nullptr,
                                     nullptr, nullptr, in, targets, weights, T, n_classes, row_stride, class_begin,
                                     0.0f, same_phase(in, in), stream);
}

cudaError_t cross_entropy_forward(float* losses, double* loss_sum, double* row_loss_workspace,
                                  const float* logits, const int32_t* targets, const float* weights,
                                  int64_t T, int64_t n_classes, int64_t class_begin,
                                  cudaStream_t stream, int64_t row_stride) {
  return launch_rows<Mode::kForward>(static_cast<float*>(nullptr), losses, loss_sum, row_loss_workspace, nullptr,
                                     nullptr, nullptr,
                                     logits, targets, weights, T, n_classes, row_stride, class_begin, 0.0f,
                                     same_phase(logits, logits), stream);
}

cudaError_t cross_entropy_partial_stats(float* row_max, double* row_sum, double* target_logit,
                                        const float* logits, const int32_t* targets,
                                        const float* weights, int64_t T, int64_t n_classes,
                                        int64_t class_begin, cudaStream_t stream, int64_t row_stride) {
  return launch_rows<Mode::kPartialStats>(static_cast<float*>(nullptr), nullptr, nullptr, nullptr, row_max, row_sum,
                                          target_logit, logits, targets, weights, T, n_classes, row_stride,
                                          class_begin, 0.0f, same_phase(logits, logits), stream);
}

cudaError_t cross_entropy_backward_from_stats(float* dlogits, const float* logits,
                                              const int32_t* targets, const float* weights,
                                              const float* row_max, const double* row_sum,
                                              int64_t T, int64_t n_classes, int64_t class_begin,
                                              float grad_scale, cudaStream_t stream, int64_t row_stride) {
  return launch_backward_from_stats(dlogits, logits, targets, weights, row_max, row_sum, T, n_classes, row_stride,
                                    class_begin, grad_scale, stream);
}

cudaError_t cross_entropy_backward_from_stats_bf16(__nv_bfloat16* dlogits, const float* logits,
                                                   const int32_t* targets, const float* weights,
                                                   const float* row_max, const double* row_sum, int64_t T,
                                                   int64_t n_classes, int64_t class_begin, float grad_scale,
                                                   cudaStream_t stream, int64_t row_stride) {
  return launch_backward_from_stats(bf16_bits_of(dlogits), logits, targets, weights, row_max, row_sum, T, n_classes,
                                    row_stride, class_begin, grad_scale, stream);
}

}  // namespace reclm::cuda
