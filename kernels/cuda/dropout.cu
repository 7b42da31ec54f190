// Dropout (kernels/cuda/dropout.h): one Philox block per 4 consecutive elements, so each thread
// of a grid-stride loop takes a unit of 4 values and one Philox call; units are 16-byte (fp32) or
// 8-byte (bf16) accesses when every pointer is aligned, else scalar. The keep test and the scale
// are the CPU's: u = (r >> 8) · 2⁻²⁴ compared with rate, scale = 1 / (1 − rate) computed once on
// the host; the product is rounded before dropout_add's sum (__fmul_rn: no fused multiply-add),
// as the CPU stores the dropped branch before adding it.
#include "kernels/cuda/dropout.h"

#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

constexpr int kThreads = 256;
// Philox-4x32 multipliers and Weyl key increments (runtime/rng.cc, Random123).
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;
constexpr uint32_t kDropoutPurpose = 7u << 16;  // RngPurpose::kDropout << 16 (runtime/rng.h)

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c.x;
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c.z;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = make_uint4(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

struct Mask {
  uint32_t k0, k1, site, stream32;
  float rate, scale;
  // The 4 kept-and-scaled values of unit b, applied to x.
  __device__ float4 apply(int64_t b, float4 x) const {
    const uint4 r =
        philox4x32_10(make_uint4(static_cast<uint32_t>(b), site, stream32, kDropoutPurpose), k0, k1);
    return make_float4(keep(r.x, x.x), keep(r.y, x.y), keep(r.z, x.z), keep(r.w, x.w));
  }
  __device__ float keep(uint32_t r, float x) const {
    const float u = static_cast<float>(r >> 8) * (1.0f / 16777216.0f);
    return u >= rate ? __fmul_rn(x, scale) : 0.0f;
  }
};

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z), __fadd_rn(a.w, b.w));
}

// out = [skip +] dropout(in) over n values; Out, Skip, In float or uint16_t (bf16 bits); skip may
// be null.
template <typename Out, typename Skip, typename In>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(Out* out, const Skip* skip, const In* in, int64_t n, Mask mask, bool vec) {
  const int64_t units = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; b < units; b += stride) {
    const int64_t i = 4 * b;
    if (vec && i + 4 <= n) {
      float4 v = mask.apply(b, load4(in + i));
      if (skip != nullptr) v = add4(load4(skip + i), v);
      store4(out + i, v);
      continue;
    }
    float x[4] = {0.f, 0.f, 0.f, 0.f};
    for (int j = 0; j < 4 && i + j < n; ++j) x[j] = load1(in + i + j);
    const float4 v = mask.apply(b, make_float4(x[0], x[1], x[2], x[3]));
    const float kept[4] = {v.x, v.y, v.z, v.w};
    for (int j = 0; j < 4 && i + j < n; ++j)
      store1(out + i + j, skip != nullptr ? __fadd_rn(load1(skip + i + j), kept[j]) : kept[j]);
  }
}

template <typename Out, typename Skip, typename In>
cudaError_t launch(Out* out, const Skip* skip, const In* in, int64_t n, const DropoutKey& key, cudaStream_t stream) {
  if (n < 0 || !(key.rate >= 0.0f && key.rate < 1.0f)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const Mask mask{static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32), key.site,
                  static_cast<uint32_t>(key.rng_stream ^ (key.rng_stream >> 32)), key.rate,
                  1.0f / (1.0f - key.rate)};
  const bool vec = unit_aligned(out) && unit_aligned(in) && (skip == nullptr || unit_aligned(skip));
  return simt::launch(dropout_kernel<Out, Skip, In>, dim3(grid_stride_blocks((n + 3) / 4, kThreads)), dim3(kThreads), 0,
                      stream, out, skip, in, n, mask, vec);
}

}  // namespace

cudaError_t dropout(float* out, const float* in, int64_t n, const DropoutKey& key, cudaStream_t stream) {
  return launch(out, static_cast<const float*>(nullptr), in, n, key, stream);
}

cudaError_t dropout_add(float* out, const float* skip, const float* branch, int64_t n, const DropoutKey& key,
                        cudaStream_t stream) {
  return launch(out, skip, branch, n, key, stream);
}

cudaError_t dropout_bf16(__nv_bfloat16* out, const float* in, int64_t n, const DropoutKey& key, cudaStream_t stream) {
  return launch(bf16_bits_of(out), static_cast<const float*>(nullptr), in, n, key, stream);
}

cudaError_t dropout_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, int64_t n, const DropoutKey& key,
                         cudaStream_t stream) {
  return launch(bf16_bits_of(out), static_cast<const uint16_t*>(nullptr), bf16_bits_of(in), n, key, stream);
}

cudaError_t dropout_add(__nv_bfloat16* out, const __nv_bfloat16* skip, const float* branch, int64_t n,
                        const DropoutKey& key, cudaStream_t stream) {
  return launch(bf16_bits_of(out), bf16_bits_of(skip), branch, n, key, stream);
}

}  // namespace reclm::cuda
