#include "checkpoint/safetensors.h"


#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "runtime/atomic_file.h"
#include "runtime/errors.h"

namespace reclm {

// Tensor bytes are copied to and from the file as they lie in memory.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

// The reference implementation refuses bigger headers; so do we, before allocating one.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
constexpr const char* kMetadataKey = "__metadata__";

// Every dtype the format defines, with its element size in bytes.
const std::map<std::string, uint64_t>& known_dtypes() {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},
      {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8},     {"F64", 8}};
  return sizes;
}

std::string stored_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    default: break;
  }
  RECLM_CHECK(false, "safetensors export supports F32, BF16 and F16, not {}", dtype_name(dtype));
}

// product(shape), or false on overflow (a 0-d shape is one element).
bool checked_element_count(const std::vector<int64_t>& shape, int64_t& count) {
  count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(count, dim, &count)) return false;
  }
  return true;
}

// ---- writing -------------------------------------------------------------------------------

// Converts `count` floats to `dtype` and appends them to `out` in bounded chunks, so exporting a
// large model needs no second full-size copy.
void write_converted(std::ofstream& out, const float* data, int64_t count, DType dtype) {
  if (dtype == DType::kF32) {
    out.write(reinterpret_cast<const char*>(data), count * static_cast<int64_t>(sizeof(float)));
    return;
  }
  constexpr int64_t kChunk = 1 << 16;
  std::vector<uint16_t> halves(static_cast<size_t>(std::min(count, kChunk)));
  for (int64_t start = 0; start < count; start += kChunk) {
    const int64_t n = std::min(kChunk, count - start);
    for (int64_t i = 0; i < n; ++i) {
      const float value = data[start + i];
      halves[static_cast<size_t>(i)] =
          dtype == DType::kBF16 ? f32_to_bf16(value) : f32_to_f16(value);
    }
    out.write(reinterpret_cast<const char*>(halves.data()), n * 2);
  }
}

// The header text, padded with spaces to a multiple of 8 bytes.
std::string build_header(const std::vector<SafetensorsEntry>& entries,
                         const std::map<std::string, std::string>& metadata,
                         std::vector<int64_t>& counts) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const SafetensorsEntry& entry : entries) {
    RECLM_CHECK(!entry.name.empty() && entry.name != kMetadataKey,
                "safetensors: invalid tensor name '{}'", entry.name);
    RECLM_CHECK(seen.insert(entry.name).second, "safetensors: duplicate tensor name {}",
                entry.name);
    int64_t count = 0;
    RECLM_CHECK(checked_element_count(entry.shape, count), "safetensors: tensor {}: bad shape",
                entry.name);
    RECLM_CHECK(count == 0 || entry.data != nullptr, "safetensors: tensor {}: null data",
                entry.name);
    const uint64_t bytes = static_cast<uint64_t>(count) * dtype_size(entry.dtype);
    header[entry.name] = {{"dtype", stored_dtype_name(entry.dtype)},
                          {"shape", entry.shape},
                          {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    counts.push_back(count);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<int64_t> counts;
  const std::string header = build_header(entries, metadata, counts);
  replace_file_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    RECLM_USER_CHECK(out.good(), "{}: cannot create {}: {}", path.string(), tmp.string(),
                     std::strerror(errno));
    const uint64_t header_size = header.size();
    out.write(reinterpret_cast<const char*>(&header_size), sizeof(header_size));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (size_t i = 0; i < entries.size(); ++i) {
      write_converted(out, entries[i].data, counts[i], entries[i].dtype);
    }
    out.close();
    RECLM_USER_CHECK(!out.fail(), "{}: writing {} failed (disk full?)", path.string(),
                     tmp.string());
  });
}

// ---- reading -------------------------------------------------------------------------------

namespace {

uint64_t offset_value(const nlohmann::json& offsets, size_t index, const std::string& file,
                      const std::string& name) {
  const nlohmann::json& value = offsets[index];
  RECLM_USER_CHECK(value.is_number_unsigned(),
                   "{}: tensor {}: data_offsets must be non-negative integers", file, name);
  return value.get<uint64_t>();
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile result;
  result.path_ = path;
  const std::string file = path.string();
  std::error_code error;
  const uint64_t file_size = std::filesystem::file_size(path, error);
  RECLM_USER_CHECK(!error, "{}: cannot open safetensors file: {}", file, error.message());
  RECLM_USER_CHECK(file_size >= 8, "{}: not a safetensors file: {} bytes, shorter than the 8-byte "
                   "header length", file, file_size);
  std::ifstream in(path, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "{}: cannot open safetensors file: {}", file, std::strerror(errno));
  uint64_t header_size = 0;
  in.read(reinterpret_cast<char*>(&header_size), sizeof(header_size));
  RECLM_USER_CHECK(header_size <= file_size - 8,
                   "{}: header length {} runs beyond the end of the file ({} bytes): truncated "
                   "or not a safetensors file", file, header_size, file_size);
  RECLM_USER_CHECK(header_size <= kMaxHeaderBytes, "{}: header length {} exceeds the {}-byte limit",
                   file, header_size, kMaxHeaderBytes);
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  RECLM_USER_CHECK(in.good(), "{}: cannot read the {}-byte header", file, header_size);
  result.buffer_start_ = 8 + header_size;
  const uint64_t buffer_size = file_size - result.buffer_start_;

  // nlohmann keeps the last of two equal keys silently; the callback sees every top-level key.
  std::string duplicate;
  std::set<std::string> keys;
  const auto find_duplicates = [&](int depth, nlohmann::json::parse_event_t event,
                                   nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
        !keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, find_duplicates);
  } catch (const nlohmann::json::exception& e) {
    throw_user_error("{}: header is not valid JSON: {}", file, e.what());
  }
  RECLM_USER_CHECK(header.is_object(), "{}: header must be a JSON object", file);
  RECLM_USER_CHECK(duplicate.empty(), "{}: tensor {}: name appears twice in the header", file,
                   duplicate);

  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      RECLM_USER_CHECK(entry.is_object(), "{}: {} must be an object of strings", file, name);
      for (const auto& [key, value] : entry.items()) {
        RECLM_USER_CHECK(value.is_string(), "{}: {}: value of '{}' must be a string", file, name,
                         key);
        result.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    RECLM_USER_CHECK(entry.is_object(), "{}: tensor {}: entry must be an object", file, name);
    TensorInfo info;
    const auto dtype = entry.find("dtype");
    RECLM_USER_CHECK(dtype != entry.end() && dtype->is_string(),
                     "{}: tensor {}: missing string field dtype", file, name);
    info.dtype = dtype->get<std::string>();
    const auto size = known_dtypes().find(info.dtype);
    RECLM_USER_CHECK(size != known_dtypes().end(), "{}: tensor {}: unknown dtype '{}'", file, name,
                     info.dtype);
    const auto shape = entry.find("shape");
    RECLM_USER_CHECK(shape != entry.end() && shape->is_array(),
                     "{}: tensor {}: missing array field shape", file, name);
    for (const nlohmann::json& dim : *shape) {
      RECLM_USER_CHECK(dim.is_number_unsigned() && dim.get<uint64_t>() <= INT64_MAX,
                       "{}: tensor {}: shape must hold non-negative integers", file, name);
      info.shape.push_back(dim.get<int64_t>());
    }
    const auto offsets = entry.find("data_offsets");
    RECLM_USER_CHECK(offsets != entry.end() && offsets->is_array() && offsets->size() == 2,
                     "{}: tensor {}: data_offsets must be [begin, end]", file, name);
    info.begin = offset_value(*offsets, 0, file, name);
    info.end = offset_value(*offsets, 1, file, name);
    RECLM_USER_CHECK(info.begin <= info.end && info.end <= buffer_size,
                     "{}: tensor {}: data_offsets [{}, {}] out of range of the {}-byte buffer",
                     file, name, info.begin, info.end, buffer_size);
    uint64_t expected = 0;
    RECLM_USER_CHECK(checked_element_count(info.shape, info.element_count) &&
                         !__builtin_mul_overflow(static_cast<uint64_t>(info.element_count),
                                                 size->second, &expected),
                     "{}: tensor {}: shape too large", file, name);
    RECLM_USER_CHECK(info.end - info.begin == expected,
                     "{}: tensor {}: data_offsets span {} bytes, but shape × {} needs {}", file,
                     name, info.end - info.begin, info.dtype, expected);
    result.tensors_.emplace(name, std::move(info));
  }

  // Sorted by offset, each tensor must start where the previous one ends and the last must end
  // at the end of the file: no overlap, no gap, no trailing bytes.
  std::vector<std::tuple<uint64_t, uint64_t, const std::string*>> order;  // begin, end, name
  for (const auto& [name, info] : result.tensors_) order.emplace_back(info.begin, info.end, &name);
  std::sort(order.begin(), order.end());
  uint64_t expected_begin = 0;
  for (const auto& [begin, end, name] : order) {
    RECLM_USER_CHECK(begin == expected_begin,
                     "{}: tensor {}: data starts at {}, expected {} ({} the previous tensor)",
                     file, *name, begin, expected_begin,
                     begin < expected_begin ? "overlaps" : "leaves a gap after");
    expected_begin = end;
  }
  RECLM_USER_CHECK(expected_begin == buffer_size,
                   "{}: tensors cover {} bytes of the {}-byte buffer: truncated or trailing data",
                   file, expected_begin, buffer_size);
  return result;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  for (const auto& [name, info] : tensors_) names.push_back(name);
  return names;
}

const SafetensorsFile::TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto found = tensors_.find(name);
  RECLM_USER_CHECK(found != tensors_.end(), "{}: tensor {}: missing", path_.string(), name);
  return found->second;
}

const std::vector<int64_t>& SafetensorsFile::shape(const std::string& name) const {
  return info(name).shape;
}

const std::string& SafetensorsFile::dtype(const std::string& name) const {
  return info(name).dtype;
}

int64_t SafetensorsFile::element_count(const std::string& name) const {
  return info(name).element_count;
}

std::vector<uint8_t> SafetensorsFile::read_bytes(const std::string& name) const {
  const TensorInfo& tensor = info(name);
  std::vector<uint8_t> bytes(tensor.end - tensor.begin);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(buffer_start_ + tensor.begin));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  RECLM_USER_CHECK(in.good(), "{}: tensor {}: cannot read its {} bytes (file changed or "
                   "truncated since it was opened?)", path_.string(), name, bytes.size());
  return bytes;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  std::vector<float> values(static_cast<size_t>(info(name).element_count));
  read_f32_into(name, values);
  return values;
}

void SafetensorsFile::read_f32_into(const std::string& name, std::span<float> out) const {
  const TensorInfo& tensor = info(name);
  RECLM_CHECK(static_cast<int64_t>(out.size()) == tensor.element_count,
              "{}: tensor {}: buffer of {} floats for {} elements", path_.string(), name,
              out.size(), tensor.element_count);
  RECLM_USER_CHECK(tensor.dtype == "F32" || tensor.dtype == "BF16" || tensor.dtype == "F16" ||
                       tensor.dtype == "F64",
                   "{}: tensor {}: dtype {} cannot be read as floats (F32, BF16, F16 or F64)",
                   path_.string(), name, tensor.dtype);
  const std::vector<uint8_t> bytes = read_bytes(name);
  const uint8_t* raw = bytes.data();
  if (tensor.dtype == "F32") {
    std::memcpy(out.data(), raw, bytes.size());
  } else if (tensor.dtype == "F64") {
    for (size_t i = 0; i < out.size(); ++i) {
      double value = 0;
      std::memcpy(&value, raw + 8 * i, 8);
      out[i] = static_cast<float>(value);
    }
  } else {
    float (*const widen)(uint16_t) = tensor.dtype == "BF16" ? bf16_to_f32 : f16_to_f32;
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t half = 0;
      std::memcpy(&half, raw + 2 * i, 2);
      out[i] = widen(half);
    }
  }
}

}  // namespace reclm
