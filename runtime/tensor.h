// Tensor: a typed, shaped view of a storage. Storage owns 64-byte-aligned bytes on a device;
// tensors never own memory themselves, so the flat parameter buffer, its gradients and the
// activation arena are each one storage and every named tensor is a view into one of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace reclm {

enum class Device : uint8_t { kCpu, kCuda };

// Owns `bytes` of zero-initialised memory aligned to 64 bytes (a cache line; AVX-512 loads).
class Storage {
 public:
  Storage(size_t bytes, Device device = Device::kCpu);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;
  // A new contiguous tensor with its own storage.
  static Tensor empty(std::vector<int64_t> shape, DType dtype, Device device = Device::kCpu);
  // A view of `storage` starting `offset_elems` elements in; must fit inside it.
  static Tensor view(std::shared_ptr<Storage> storage, int64_t offset_elems,
                     std::vector<int64_t> shape, DType dtype);

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int64_t numel() const;
  DType dtype() const { return dtype_; }
  Device device() const;
  int64_t offset() const { return offset_; }
  bool defined() const { return storage_ != nullptr; }

  void* raw() const;
  // Typed pointer; the element type must match dtype (checked).
  template <typename T>
  T* data() const;

  // The same elements under another shape (numel must match).
  Tensor reshape(std::vector<int64_t> shape) const;
  // Rows [begin, end) of the first dimension.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  std::string shape_string() const;  // "[4, 32]"

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  std::vector<int64_t> shape_;
  DType dtype_ = DType::kF32;
};

int64_t shape_numel(const std::vector<int64_t>& shape);

}  // namespace reclm
