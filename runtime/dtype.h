// Element types and the bf16/f16 <-> f32 conversions the host needs (checkpoints, export, and
// the reference for GPU kernels). Conversions round to nearest even, as the hardware does.
#pragma once

#include <cstdint>
#include <string_view>

namespace reclm {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "f32", "bf16", "f16", "i32", "i64"

uint16_t f32_to_bf16(float value);
float bf16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t bits);

}  // namespace reclm
