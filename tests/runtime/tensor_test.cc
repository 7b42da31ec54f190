// Storage and Tensor: zeroed 64-byte-aligned storage, bounds-checked views, reshape and row
// slices that alias their parent, and the dtype check on typed access.
#include "runtime/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

bool is_aligned_64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }


TEST(Storage, IsZeroedAndAlignedForAnySize) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{1000}}) {
    Storage storage(bytes);
    EXPECT_EQ(storage.bytes(), bytes);
    EXPECT_EQ(storage.device(), Device::kCpu);
    ASSERT_NE(storage.data(), nullptr) << bytes;
    EXPECT_TRUE(is_aligned_64(storage.data())) << bytes;
    const auto* p = static_cast<const unsigned char*>(storage.data());
    for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(p[i], 0) << "byte " << i << " of " << bytes;
  }
}

TEST(Tensor, EmptyIsZeroedAlignedAndShaped) {
  const Tensor t = Tensor::empty({4, 33}, DType::kF32);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{4, 33}));
  EXPECT_EQ(t.numel(), 132);
  EXPECT_EQ(t.dtype(), DType::kF32);
  EXPECT_EQ(t.device(), Device::kCpu);
  EXPECT_EQ(t.offset(), 0);
  EXPECT_EQ(t.dim(0), 4);
  EXPECT_EQ(t.dim(1), 33);
  EXPECT_EQ(t.dim(-1), 33);
  EXPECT_EQ(t.dim(-2), 4);
  EXPECT_THROW(t.dim(2), std::out_of_range);
  EXPECT_TRUE(is_aligned_64(t.raw()));
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(p[i], 0.0f) << i;
}

TEST(Tensor, EmptyOfEveryDtypeIsZeroed) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kI32, DType::kI64}) {
    const Tensor t = Tensor::empty({3, 5}, dtype);
    EXPECT_EQ(t.dtype(), dtype);
    EXPECT_TRUE(is_aligned_64(t.raw()));
    const auto* p = static_cast<const unsigned char*>(t.raw());
    for (size_t i = 0; i < 15 * dtype_size(dtype); ++i) ASSERT_EQ(p[i], 0) << dtype_name(dtype);
  }
}

TEST(Tensor, ScalarAndZeroSizedShapes) {
  const Tensor scalar = Tensor::empty({}, DType::kI64);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.shape_string(), "[]");
  EXPECT_EQ(*scalar.data<int64_t>(), 0);
  const Tensor none = Tensor::empty({0, 8}, DType::kF32);
  EXPECT_EQ(none.numel(), 0);
  EXPECT_TRUE(none.defined());
}

TEST(Tensor, UndefinedTensorHasNoData) {
  const Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_THROW(t.raw(), InternalError);
  EXPECT_THROW(t.data<float>(), InternalError);
}

TEST(Tensor, NegativeDimensionIsRejected) {
  EXPECT_THROW(Tensor::empty({2, -1}, DType::kF32), InternalError);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({2, 0}), 0);
  EXPECT_THROW(shape_numel({-1}), InternalError);
}

TEST(Tensor, ViewsAliasTheirStorageAtTheirOffset) {
  auto storage = std::make_shared<Storage>(64);  // 16 f32 or 32 bf16
  const Tensor whole = Tensor::view(storage, 0, {16}, DType::kF32);
  const Tensor tail = Tensor::view(storage, 4, {3, 4}, DType::kF32);
  EXPECT_EQ(tail.offset(), 4);
  EXPECT_EQ(tail.raw(), static_cast<char*>(storage->data()) + 4 * sizeof(float));
  whole.data<float>()[5] = 2.5f;
  EXPECT_EQ(tail.data<float>()[1], 2.5f);
  const Tensor halves = Tensor::view(storage, 1, {31}, DType::kBF16);
  EXPECT_EQ(halves.raw(), static_cast<char*>(storage->data()) + 2);
}

TEST(Tensor, ViewOutsideStorageThrows) {
  auto storage = std::make_shared<Storage>(64);
  EXPECT_NO_THROW(Tensor::view(storage, 0, {16}, DType::kF32));
  EXPECT_NO_THROW(Tensor::view(storage, 16, {0}, DType::kF32));  // empty view at the end
  EXPECT_NO_THROW(Tensor::view(storage, 0, {32}, DType::kBF16));
  EXPECT_THROW(Tensor::view(storage, 0, {17}, DType::kF32), InternalError);
  EXPECT_THROW(Tensor::view(storage, 1, {16}, DType::kF32), InternalError);
  EXPECT_THROW(Tensor::view(storage, 0, {33}, DType::kBF16), InternalError);
  EXPECT_THROW(Tensor::view(storage, 0, {9}, DType::kI64), InternalError);
  EXPECT_THROW(Tensor::view(storage, -1, {1}, DType::kF32), InternalError);
  EXPECT_THROW(Tensor::view(nullptr, 0, {1}, DType::kF32), InternalError);
  const std::string message =
      thrown_message<InternalError>([&] { Tensor::view(storage, 10, {2, 4}, DType::kF32); });
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "[10, 18)", message);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "64 bytes", message);
}

TEST(Tensor, ReshapeKeepsElementsAndChecksCount) {
  const Tensor t = Tensor::empty({4, 6}, DType::kI32);
  for (int i = 0; i < 24; ++i) t.data<int32_t>()[i] = i;
  const Tensor r = t.reshape({2, 3, 4});
  EXPECT_EQ(r.shape(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(r.raw(), t.raw());
  EXPECT_EQ(r.data<int32_t>()[23], 23);
  EXPECT_EQ(t.reshape({24}).numel(), 24);
  EXPECT_THROW(t.reshape({5, 5}), InternalError);
  EXPECT_THROW(t.reshape({-4, -6}), InternalError);
  const std::string message = thrown_message<InternalError>([&] { t.reshape({5, 5}); });
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "[4, 6]", message);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "[5, 5]", message);
}

TEST(Tensor, ReshapeOfAViewKeepsItsOffset) {
  const Tensor t = Tensor::empty({6, 2}, DType::kF32);
  const Tensor rows = t.slice_rows(2, 5);
  const Tensor flat = rows.reshape({6});
  EXPECT_EQ(flat.offset(), 4);
  EXPECT_EQ(flat.raw(), rows.raw());
}

TEST(Tensor, SliceRowsOffsetsByWholeRows) {
  const Tensor t = Tensor::empty({5, 3}, DType::kF32);
  for (int i = 0; i < 15; ++i) t.data<float>()[i] = static_cast<float>(i);
  const Tensor s = t.slice_rows(1, 4);
  EXPECT_EQ(s.shape(), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(s.offset(), 3);
  EXPECT_EQ(s.data<float>()[0], 3.0f);
  EXPECT_EQ(s.data<float>()[8], 11.0f);
  const Tensor nested = s.slice_rows(1, 2);  // row 2 of t
  EXPECT_EQ(nested.offset(), 6);
  EXPECT_EQ(nested.data<float>()[0], 6.0f);
  nested.data<float>()[2] = -1.0f;
  EXPECT_EQ(t.data<float>()[8], -1.0f);
  const Tensor none = t.slice_rows(5, 5);
  EXPECT_EQ(none.shape(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(t.slice_rows(0, 5).numel(), 15);
}

TEST(Tensor, SliceRowsOfThreeDimensions) {
  const Tensor t = Tensor::empty({4, 2, 3}, DType::kBF16);
  const Tensor s = t.slice_rows(3, 4);
  EXPECT_EQ(s.shape(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(s.offset(), 18);
  EXPECT_EQ(s.raw(), static_cast<char*>(t.raw()) + 18 * 2);
}

TEST(Tensor, SliceRowsOutOfRangeThrows) {
  const Tensor t = Tensor::empty({5, 3}, DType::kF32);
  EXPECT_THROW(t.slice_rows(3, 6), InternalError);
  EXPECT_THROW(t.slice_rows(3, 2), InternalError);
  EXPECT_THROW(t.slice_rows(-1, 1), InternalError);
  EXPECT_THROW(Tensor::empty({}, DType::kF32).slice_rows(0, 1), InternalError);
}

TEST(Tensor, TypedAccessChecksDtype) {
  const Tensor f32 = Tensor::empty({2}, DType::kF32);
  EXPECT_NO_THROW(f32.data<float>());
  EXPECT_THROW(f32.data<int32_t>(), InternalError);
  EXPECT_THROW(f32.data<uint16_t>(), InternalError);
  EXPECT_THROW(f32.data<int64_t>(), InternalError);
  // bf16 and f16 are both read as their uint16_t bit patterns.
  EXPECT_NO_THROW(Tensor::empty({2}, DType::kBF16).data<uint16_t>());
  EXPECT_NO_THROW(Tensor::empty({2}, DType::kF16).data<uint16_t>());
  EXPECT_THROW(Tensor::empty({2}, DType::kBF16).data<float>(), InternalError);
  const Tensor i32 = Tensor::empty({2}, DType::kI32);
  EXPECT_NO_THROW(i32.data<int32_t>());
  EXPECT_THROW(i32.data<float>(), InternalError);
  EXPECT_THROW(i32.data<int64_t>(), InternalError);
  const Tensor i64 = Tensor::empty({2}, DType::kI64);
  EXPECT_NO_THROW(i64.data<int64_t>());
  EXPECT_THROW(i64.data<int32_t>(), InternalError);
  const std::string message = thrown_message<InternalError>([&] { f32.data<int32_t>(); });
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "f32", message);
}

TEST(Tensor, ShapeString) {
  EXPECT_EQ(Tensor::empty({4, 32}, DType::kF32).shape_string(), "[4, 32]");
  EXPECT_EQ(Tensor::empty({7}, DType::kF32).shape_string(), "[7]");
  EXPECT_EQ(Tensor::empty({2, 0, 3}, DType::kF32).shape_string(), "[2, 0, 3]");
  EXPECT_EQ(Tensor().shape_string(), "[]");
}

}  // namespace
}  // namespace reclm
