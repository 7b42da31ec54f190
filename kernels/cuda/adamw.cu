// AdamW update of the flat parameter buffer, one fused memory-bound pass:
//   read p, g, m, v; write p, m, v (and optionally the bf16 copy of p).
// Per element, exactly ops::adamw_update (kernels/cpu/adamw.cc), g = grad · grad_scale:
//   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p·(1 − lr·wd) − step_size·m / (√v / √bc2 + eps)
// with step_size = lr / (1 − β1^t) and √bc2 = √(1 − β2^t) computed on the host in double and
// rounded to float, as the CPU does. √ and ÷ are IEEE-rounded (nvcc's default -prec-sqrt/-prec-div).
// The bf16 copy: round to nearest even with integer arithmetic (bitwise runtime/dtype.h's
// f32_to_bf16, NaN included), or stochastic rounding with 16 bits of splitmix64 of
// (key(seed, step) + index · golden), the hash of kernels/cpu/adamw_bf16.cc.
// Layout: float4 loads/stores (8-byte stores of 4 bf16) in a grid-stride loop when every buffer
// is 16-byte aligned (bf16: 8-byte), the last n % 4 values by scalar threads; otherwise all scalar.
#include "kernels/cuda/adamw.h"

#include <cmath>

#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 256;
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

enum class Bf16Mode { kNone, kNearestEven, kStochastic };

struct AdamWConstants {
  float step_size, sqrt_bc2, decay;
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, grad_scale;
  uint64_t hash_key;   // splitmix64(seed + step · golden)
  int64_t index_base;  // hash index of element 0
};

__host__ __device__ inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__device__ inline uint32_t bf16_bits_nearest_even(float x) {
  const uint32_t bits = __float_as_uint(x);
  if (x != x) return (bits >> 16) | 0x0040u;  // quiet NaN, as the host conversion
  return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

__device__ inline uint32_t bf16_bits_stochastic(float x, uint64_t key, int64_t index) {
  const uint32_t bits = __float_as_uint(x);
  if (x != x) return (bits >> 16) | 0x0040u;
  const uint32_t random16 = static_cast<uint32_t>(splitmix64_mix(key + static_cast<uint64_t>(index) * kGolden) >> 48);
  return (bits + random16) >> 16;
}

template <Bf16Mode kMode>
__device__ inline uint32_t bf16_bits(float x, const AdamWConstants& c, int64_t i) {
  if constexpr (kMode == Bf16Mode::kStochastic) {
    return bf16_bits_stochastic(x, c.hash_key, c.index_base + i);
  } else {
    return bf16_bits_nearest_even(x);
  }
}

// One value, the CPU's expression order.
__device__ inline void adamw_element(float& p, float grad, float& m, float& v, const AdamWConstants& c) {
  const float g = grad * c.grad_scale;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  p = p * c.decay - c.step_size * m / (sqrtf(v) / c.sqrt_bc2 + c.eps);
}

template <Bf16Mode kMode>
__device__ inline void adamw_scalar(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16,
                                    int64_t i, const AdamWConstants& c) {
  float p = params[i], mi = m[i], vi = v[i];
  adamw_element(p, grads[i], mi, vi, c);
  params[i] = p;
  m[i] = mi;
  v[i] = vi;
  if constexpr (kMode != Bf16Mode::kNone) params_bf16[i] = static_cast<uint16_t>(bf16_bits<kMode>(p, c, i));
}

// With a step guard (runtime.queued_steps): its clipping coefficient scales the gradients, and a
// non-finite step writes nothing.
__device__ inline bool apply_guard(const ops::StepGuard* guard, AdamWConstants& c) {
  if (guard == nullptr) return true;
  if (guard->finite == 0) return false;
  c.grad_scale = guard->clip;
  return true;
}

// Vector path: float4 i4 covers values 4·i4 .. 4·i4+3; the n % 4 tail values go to the first
// threads of the grid.
template <Bf16Mode kMode>
__global__ void adamw_vec4_kernel(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16,
                                  int64_t n, AdamWConstants c, const ops::StepGuard* guard) {
  if (!apply_guard(guard, c)) return;
  const int64_t n_vec = n / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float4* p4 = reinterpret_cast<float4*>(params);
  const float4* g4 = reinterpret_cast<const float4*>(grads);
  float4* m4 = reinterpret_cast<float4*>(m);
  float4* v4 = reinterpret_cast<float4*>(v);
  for (int64_t i4 = first; i4 < n_vec; i4 += stride) {
    float4 p = p4[i4], mi = m4[i4], vi = v4[i4];
    const float4 g = __ldcs(g4 + i4);  // read once: do not keep it in L2
    adamw_element(p.x, g.x, mi.x, vi.x, c);
    adamw_element(p.y, g.y, mi.y, vi.y, c);
    adamw_element(p.z, g.z, mi.z, vi.z, c);
    adamw_element(p.w, g.w, mi.w, vi.w, c);
    p4[i4] = p;
    m4[i4] = mi;
    v4[i4] = vi;
    if constexpr (kMode != Bf16Mode::kNone) {
      const int64_t i = 4 * i4;
      uint2 packed;
      packed.x = bf16_bits<kMode>(p.x, c, i) | (bf16_bits<kMode>(p.y, c, i + 1) << 16);
      packed.y = bf16_bits<kMode>(p.z, c, i + 2) | (bf16_bits<kMode>(p.w, c, i + 3) << 16);
      reinterpret_cast<uint2*>(params_bf16)[i4] = packed;
    }
  }
  const int64_t tail = 4 * n_vec + first;
  if (tail < n) adamw_scalar<kMode>(params, grads, m, v, params_bf16, tail, c);
}

template <Bf16Mode kMode>
__global__ void adamw_scalar_kernel(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16,
                                    int64_t n, AdamWConstants c, const ops::StepGuard* guard) {
  if (!apply_guard(guard, c)) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    adamw_scalar<kMode>(params, grads, m, v, params_bf16, i, c);
  }
}

// The host-side constants, computed exactly as kernels/cpu/adamw.cc does.
AdamWConstants constants_of(const ops::AdamWHyper& hyper, uint64_t seed, int64_t index_base) {
  AdamWConstants c{};
  const double t = static_cast<double>(hyper.step);
  c.step_size = static_cast<float>(hyper.lr / (1.0 - std::pow(hyper.beta1, t)));
  c.sqrt_bc2 = static_cast<float>(std::sqrt(1.0 - std::pow(hyper.beta2, t)));
  c.decay = 1.0f - hyper.lr * hyper.weight_decay;
  c.beta1 = hyper.beta1;
  c.one_minus_beta1 = 1.0f - hyper.beta1;
  c.beta2 = hyper.beta2;
  c.one_minus_beta2 = 1.0f - hyper.beta2;
  c.eps = hyper.eps;
  c.grad_scale = hyper.grad_scale;
  c.hash_key = splitmix64_mix(seed + static_cast<uint64_t>(hyper.step) * kGolden);
  c.index_base = index_base;
  return c;
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <Bf16Mode kMode>
cudaError_t launch_adamw(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16, int64_t n,
                         const AdamWConstants& c, const ops::StepGuard* guard, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vec = aligned(params, 16) && aligned(grads, 16) && aligned(m, 16) && aligned(v, 16) &&
                   (kMode == Bf16Mode::kNone || aligned(params_bf16, 8));
  if (vec) {
    const int64_t work = n / 4 > n % 4 ? n / 4 : n % 4;  // enough threads for the tail too
    return simt::launch(adamw_vec4_kernel<kMode>, dim3(grid_stride_blocks(work, kThreads)), dim3(kThreads), 0,
                        stream, params, grads, m, v, params_bf16, n, c, guard);
  }
  return simt::launch(adamw_scalar_kernel<kMode>, dim3(grid_stride_blocks(n, kThreads)), dim3(kThreads), 0, stream,
                      params, grads, m, v, params_bf16, n, c, guard);
}

}  // namespace

cudaError_t adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                         const ops::AdamWHyper& hyper, cudaStream_t stream) {
  return launch_adamw<Bf16Mode::kNone>(params, grads, m, v, nullptr, n, constants_of(hyper, 0, 0), nullptr, stream);
}

cudaError_t adamw_update_bf16(float* params, const float* grads, float* m, float* v, int64_t n,
                              const ops::AdamWHyper& hyper, uint16_t* params_bf16,
                              ops::Bf16Rounding rounding, uint64_t seed, int64_t index_base,
                              cudaStream_t stream, const ops::StepGuard* guard) {
  const AdamWConstants c = constants_of(hyper, seed, index_base);
  if (rounding == ops::Bf16Rounding::kStochastic) {
    return launch_adamw<Bf16Mode::kStochastic>(params, grads, m, v, params_bf16, n, c, guard, stream);
  }
  return launch_adamw<Bf16Mode::kNearestEven>(params, grads, m, v, params_bf16, n, c, guard, stream);
}

}  // namespace reclm::cuda
