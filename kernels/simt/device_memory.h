// Device buffers for code written once for both targets (tests, benchmarks): GPU memory under
// nvcc, host memory under g++ where "device" memory is what the emulated kernels address.
// A new buffer is poisoned (every byte 0xFF: NaN for floating types, -1 for integers) on both
// targets, so a kernel that leaves an output element unwritten fails its test.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace reclm::simt {

// Throws std::runtime_error naming `what` when a CUDA runtime call failed.
inline void check_cuda(cudaError_t status, const char* what) {
#if defined(__CUDACC__)
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
#else
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": CUDA error " + std::to_string(status));
#endif
}

// Waits for every launched kernel (a no-op on the emulator, whose launches are synchronous).
inline void device_synchronize() {
#if defined(__CUDACC__)
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#endif
}

// `count` elements of T in device memory. Move-only.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) : count_(count) {
#if defined(__CUDACC__)
    check_cuda(cudaMalloc(&data_, bytes()), "cudaMalloc");
    check_cuda(cudaMemset(data_, 0xFF, bytes()), "cudaMemset");
#else
    // 256-byte alignment, as cudaMalloc gives, so 16-byte vector loads are legal.
    data_ = static_cast<T*>(::operator new(bytes() > 0 ? bytes() : 1, std::align_val_t{256}));
    std::memset(static_cast<void*>(data_), 0xFF, bytes());
#endif
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

  // Host -> device; `host` must hold size() elements.
  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::invalid_argument("DeviceBuffer::upload: size mismatch");
#if defined(__CUDACC__)
    check_cuda(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
#else
    std::memcpy(static_cast<void*>(data_), host.data(), bytes());
#endif
  }

  // Device -> host, after the kernels that write the buffer have finished.
  std::vector<T> download() const {
    std::vector<T> host(count_);
#if defined(__CUDACC__)
    check_cuda(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
#else
    std::memcpy(static_cast<void*>(host.data()), data_, bytes());
#endif
    return host;
  }

 private:
  void release() {
    if (!data_) return;
#if defined(__CUDACC__)
    cudaFree(data_);
#else
    ::operator delete(static_cast<void*>(data_), std::align_val_t{256});
#endif
    data_ = nullptr;
  }

  T* data_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace reclm::simt
