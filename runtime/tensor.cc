#include "runtime/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "runtime/errors.h"

namespace reclm {

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  RECLM_CHECK(device == Device::kCpu, "this build allocates host storage only");
  const size_t rounded = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  RECLM_CHECK(data_ != nullptr, "out of host memory allocating {} bytes", bytes);
  std::memset(data_, 0, rounded == 0 ? 64 : rounded);
}

Storage::~Storage() { std::free(data_); }

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    RECLM_CHECK(d >= 0, "negative dimension in shape");
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(std::vector<int64_t> shape, DType dtype, Device device) {
  const int64_t n = shape_numel(shape);
  auto storage = std::make_shared<Storage>(static_cast<size_t>(n) * dtype_size(dtype), device);
  return view(std::move(storage), 0, std::move(shape), dtype);
}

Tensor Tensor::view(std::shared_ptr<Storage> storage, int64_t offset_elems,
                    std::vector<int64_t> shape, DType dtype) {
  RECLM_CHECK(storage != nullptr, "view of a null storage");
  const int64_t end = offset_elems + shape_numel(shape);
  RECLM_CHECK(offset_elems >= 0 &&
                  static_cast<size_t>(end) * dtype_size(dtype) <= storage->bytes(),
              "view [{}, {}) of {} elements exceeds storage of {} bytes", offset_elems, end,
              dtype_name(dtype), storage->bytes());
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = offset_elems;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::numel() const { return shape_numel(shape_); }

Device Tensor::device() const { return storage_ ? storage_->device() : Device::kCpu; }

void* Tensor::raw() const {
  RECLM_CHECK(storage_ != nullptr, "raw() of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_);
}

namespace {
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::kBF16; }  // bf16 or f16 bits
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kI64; }
}  // namespace

template <typename T>
T* Tensor::data() const {
  const bool half_bits = std::is_same_v<T, uint16_t> && (dtype_ == DType::kF16);
  RECLM_CHECK(dtype_ == dtype_of<T>() || half_bits, "tensor of dtype {} read as another type",
              dtype_name(dtype_));
  return static_cast<T*>(raw());
}
template float* Tensor::data<float>() const;
template uint16_t* Tensor::data<uint16_t>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;

Tensor Tensor::reshape(std::vector<int64_t> shape) const {
  RECLM_CHECK(shape_numel(shape) == numel(), "reshape {} to {} changes the element count",
              shape_string(), fmt::format("[{}]", fmt::join(shape, ", ")));
  return view(storage_, offset_, std::move(shape), dtype_);
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  RECLM_CHECK(!shape_.empty() && 0 <= begin && begin <= end && end <= shape_[0],
              "slice_rows [{}, {}) of {}", begin, end, shape_string());
  std::vector<int64_t> shape = shape_;
  const int64_t row = numel() / std::max<int64_t>(shape_[0], 1);
  shape[0] = end - begin;
  return view(storage_, offset_ + begin * row, std::move(shape), dtype_);
}

std::string Tensor::shape_string() const { return fmt::format("[{}]", fmt::join(shape_, ", ")); }

}  // namespace reclm
