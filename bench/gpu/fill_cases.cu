// fill_f32 (kernels/cuda/fill.cu): writes 4 bytes per element.
#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/fill.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {
namespace {

std::vector<KernelCase> fill_cases() {
  const int64_t n = int64_t{1} << 28;  // 1 GiB of floats
  auto out = std::make_shared<simt::DeviceBuffer<float>>(static_cast<size_t>(n));
  KernelCase c;
  c.name = "fill_f32 268M floats";
  c.bytes = 4 * n;
  c.run = [out, n](cudaStream_t s) { return cuda::fill_f32(out->data(), 0.5f, n, s); };
  c.buffers = out;
  return {c};
}

[[maybe_unused]] const bool registered = register_cases("fill", &fill_cases);

}  // namespace
}  // namespace reclm::bench
