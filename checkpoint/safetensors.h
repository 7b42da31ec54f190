// The safetensors format (Hugging Face), the weights file of an export (`reclm export` writes
// model.safetensors) and of a Hugging Face import (`--init-from hf:DIR` reads it).
//
// Layout: an 8-byte little-endian uint64 N, then N bytes of UTF-8 JSON header, then the byte
// buffer. The header maps each tensor name to {"dtype": "F32"|"BF16"|..., "shape": [...],
// "data_offsets": [begin, end]} (offsets relative to the buffer start), plus an optional
// "__metadata__" object of string -> string. Tensors are row-major, little-endian and packed
// back to back: together they cover the buffer exactly, with no gap and no overlap (the
// reference implementation refuses anything else, so we refuse it too and never write it).
// We pad the header with spaces so the buffer starts at an 8-byte-aligned file offset.
//
// Errors: every defect of a file being read (too short, header length beyond the file, invalid
// JSON, unknown dtype, bad shape, offsets out of range / overlapping / leaving gaps / not equal
// to shape × dtype size, duplicate names, a missing tensor) is a UserError naming the file and,
// where there is one, the tensor. A failed write (missing directory, disk full) is a UserError
// naming the file too. Entries a caller builds wrongly (duplicate names, null data) are bugs:
// InternalError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace reclm {

// One tensor to write: product(shape) floats at `data` (a 0-d tensor, shape {}, holds one value;
// a shape with a zero holds none and `data` may be null), stored as `dtype`: kF32 (bit exact),
// kBF16 or kF16 (rounded to nearest even by runtime/dtype.h's conversions).
struct SafetensorsEntry {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  DType dtype = DType::kF32;
};

// Writes PATH.tmp, fsyncs it and renames it over PATH: an existing file survives a failed write.
// Tensors are laid out in `entries` order; `metadata` becomes "__metadata__" (omitted if empty).
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

// A safetensors file opened for reading: open() reads and validates the header only; each
// read_* call reads just that tensor's bytes, so a multi-gigabyte file is never held whole.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // in name order
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // The lookups below throw UserError "FILE: tensor NAME: missing" for an unknown name.
  const std::vector<int64_t>& shape(const std::string& name) const;
  const std::string& dtype(const std::string& name) const;  // as stored: "F32", "BF16", "I64"...
  int64_t element_count(const std::string& name) const;     // product(shape); 1 for 0-d
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The values converted to float; the stored dtype must be F32, BF16, F16 or F64 (else a
  // UserError naming the tensor and its dtype).
  std::vector<float> read_f32(const std::string& name) const;
  // Same into a caller's buffer, which must hold exactly element_count(name) floats.
  void read_f32_into(const std::string& name, std::span<float> out) const;
  // The stored bytes, whatever the dtype.
  std::vector<uint8_t> read_bytes(const std::string& name) const;

 private:
  struct TensorInfo {
    std::string dtype;
    std::vector<int64_t> shape;
    int64_t element_count = 0;
    uint64_t begin = 0;  // offsets into the byte buffer
    uint64_t end = 0;
  };
  const TensorInfo& info(const std::string& name) const;

  std::filesystem::path path_;
  uint64_t buffer_start_ = 0;  // file offset of the byte buffer: 8 + header length
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace reclm
