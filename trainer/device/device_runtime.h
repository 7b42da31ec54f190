// The thin runtime layer of the CUDA backend: device memory, copies, fills and the device's
// name. Under nvcc these are the CUDA runtime calls; compiled by g++ for the SIMT emulator,
// "device memory" is host memory (what emulated kernels address), copies are memcpy and
// synchronization is a no-op (emulated launches are synchronous). Everything else the backend
// does goes through the kernels (kernels/cuda), the GEMMs (kernels/cuda/gemm.h: cuBLASLt or the
// CPU BLAS) and the Communicator (NCCL or MPI).
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "runtime/errors.h"

namespace reclm::device {

inline void check(cudaError_t status, const char* what) {
#if defined(__CUDACC__)
  RECLM_CHECK(status == cudaSuccess, "{}: {}", what, cudaGetErrorString(status));
#else
  RECLM_CHECK(status == cudaSuccess, "{}: CUDA error {}", what, static_cast<int>(status));
#endif
}

inline constexpr bool kEmulated =
#if defined(__CUDACC__)
    false;
#else
    true;
#endif

// Picks the GPU of this rank and returns its name and memory; on the emulator a description.
inline std::string select_device(int local_rank, size_t* total_bytes) {
#if defined(__CUDACC__)
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  RECLM_USER_CHECK(status == cudaSuccess && count > 0,
                   "field runtime.device: \"cuda\" but no CUDA device is usable here ({})",
                   status == cudaSuccess ? "0 devices" : cudaGetErrorString(status));
  const int device = local_rank % count;
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  *total_bytes = prop.totalGlobalMem;
  return std::string(prop.name);
#else
  (void)local_rank;
  *total_bytes = 0;
  return "SIMT emulator (host)";
#endif
}

// The one allocation of the plan; too large: UserError (exit 2) saying what to lower.
inline void* allocate(size_t bytes) {
  constexpr const char* kTooLarge =
      "the {} has not enough free memory for this model and batch ({:.2f} GiB asked{}); lower "
      "train.micro_batch or data.seq_len, or set runtime.recompute_activations";
#if defined(__CUDACC__)
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  RECLM_USER_CHECK(status == cudaSuccess, kTooLarge, "GPU", bytes / 1073741824.0,
                   std::string(": ") + cudaGetErrorString(status));
  return p;
#else
  try {
    return ::operator new(bytes > 0 ? bytes : 1, std::align_val_t{256});
  } catch (const std::bad_alloc&) {
    throw_user_error(kTooLarge, "emulated device (host memory)", bytes / 1073741824.0, "");
  }
#endif
}

inline void release(void* p) {
  if (p == nullptr) return;
#if defined(__CUDACC__)
  cudaFree(p);
#else
  ::operator delete(p, std::align_val_t{256});
#endif
}

// Milliseconds the host has spent inside the blocking calls below (the synchronous copies wait
// for the device's queued work first), for RECLM_DEVICE_PROFILE=host (phase_clock.h).
inline double& host_blocked_ms() {
  static double total = 0.0;
  return total;
}

// Adds the wall time of its scope to host_blocked_ms().
class BlockedTimer {
 public:
  BlockedTimer() : start_(std::chrono::steady_clock::now()) {}
  ~BlockedTimer() {
    host_blocked_ms() += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }
  BlockedTimer(const BlockedTimer&) = delete;
  BlockedTimer& operator=(const BlockedTimer&) = delete;

 private:
  std::chrono::steady_clock::time_point start_;
};

inline void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  const BlockedTimer timer;
#if defined(__CUDACC__)
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
#else
  std::memcpy(dst, src, bytes);
#endif
}

inline void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  const BlockedTimer timer;
#if defined(__CUDACC__)
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
#else
  std::memcpy(dst, src, bytes);
#endif
}

// Page-locked host memory, the staging of asynchronous uploads (copy_async); on the
// emulator plain host memory.
inline void* allocate_pinned(size_t bytes) {
#if defined(__CUDACC__)
  void* p = nullptr;
  check(cudaMallocHost(&p, bytes > 0 ? bytes : 1), "cudaMallocHost");
  return p;
#else
  return ::operator new(bytes > 0 ? bytes : 1);
#endif
}

inline void release_pinned(void* p) {
  if (p == nullptr) return;
#if defined(__CUDACC__)
  cudaFreeHost(p);
#else
  ::operator delete(p);
#endif
}

// Waits for everything launched so far (emulated launches are synchronous: nothing to wait for).
inline void synchronize() {
#if defined(__CUDACC__)
  const BlockedTimer timer;
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#endif
}

// A point on a stream's timeline, for the phase profile (phase_clock.h): on a GPU a CUDA event
// recorded on the stream, whose time is known once the work queued before it has run; on the
// emulator, whose launches run before they return, the host clock when it is recorded.
class StreamPoint {
 public:
  StreamPoint() {
#if defined(__CUDACC__)
    check(cudaEventCreate(&event_), "cudaEventCreate");
#endif
  }
  ~StreamPoint() {
#if defined(__CUDACC__)
    if (event_ != nullptr) cudaEventDestroy(event_);
#endif
  }
  StreamPoint(StreamPoint&& other) noexcept : event_(other.event_), at_(other.at_) { other.event_ = nullptr; }
  StreamPoint& operator=(StreamPoint&& other) noexcept {
    std::swap(event_, other.event_);
    std::swap(at_, other.at_);
    return *this;
  }
  StreamPoint(const StreamPoint&) = delete;
  StreamPoint& operator=(const StreamPoint&) = delete;

  void record(cudaStream_t stream) {
#if defined(__CUDACC__)
    check(cudaEventRecord(event_, stream), "cudaEventRecord");
#else
    (void)stream;
    at_ = std::chrono::steady_clock::now();
#endif
  }
  // Waits until the device has reached this point (at once if it was never recorded).
  void wait() const {
#if defined(__CUDACC__)
    const BlockedTimer timer;
    check(cudaEventSynchronize(event_), "cudaEventSynchronize");
#endif
  }
  // Whether the device has reached this point (never waits; on the emulator always).
  bool reached() const {
#if defined(__CUDACC__)
    const cudaError_t status = cudaEventQuery(event_);
    if (status == cudaErrorNotReady) return false;
    check(status, "cudaEventQuery");
#endif
    return true;
  }
  // Milliseconds from `earlier` to this point; waits until the device has reached it.
  double ms_since(const StreamPoint& earlier) const {
#if defined(__CUDACC__)
    check(cudaEventSynchronize(event_), "cudaEventSynchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, earlier.event_, event_), "cudaEventElapsedTime");
    return ms;
#else
    return std::chrono::duration<double, std::milli>(at_ - earlier.at_).count();
#endif
  }

 private:
  cudaEvent_t event_ = nullptr;
  std::chrono::steady_clock::time_point at_;
};

// A blocking stream (cudaStreamCreate), so the synchronous copies above, on the legacy default
// stream, stay ordered with it, while other blocking streams (NCCL's, side_stream.h's) can
// overlap it. high_priority: the device's highest stream priority, whose pending blocks are
// scheduled first (the compute stream, as NCCL's, ahead of the side stream); else the default,
// which is the lowest. Null on the emulator.
inline cudaStream_t create_stream(bool high_priority) {
#if defined(__CUDACC__)
  int lowest = 0, highest = 0;
  check(cudaDeviceGetStreamPriorityRange(&lowest, &highest), "cudaDeviceGetStreamPriorityRange");
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithPriority(&stream, cudaStreamDefault, high_priority ? highest : lowest),
        "cudaStreamCreateWithPriority");
  return stream;
#else
  (void)high_priority;
  return nullptr;
#endif
}
inline void destroy_stream(cudaStream_t stream) {
#if defined(__CUDACC__)
  if (stream != nullptr) cudaStreamDestroy(stream);
#else
  (void)stream;
#endif
}

// bytes from src to dst queued on the stream: device to device, or between pinned host memory
// (allocate_pinned) and the device, the direction from the addresses (unified addressing). The
// host goes on at once, so a host src must stay unchanged, and a host dst unread, until the
// stream has passed the copy (StreamPoint::wait).
inline void copy_async(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
#if defined(__CUDACC__)
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync");
#else
  (void)stream;
  std::memcpy(dst, src, bytes);
#endif
}

inline void fill_bytes(void* p, int byte, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
#if defined(__CUDACC__)
  check(cudaMemsetAsync(p, byte, bytes, stream), "cudaMemsetAsync");
#else
  (void)stream;
  std::memset(p, byte, bytes);
#endif
}
inline void fill_zero(void* p, size_t bytes, cudaStream_t stream) { fill_bytes(p, 0, bytes, stream); }

}  // namespace reclm::device
