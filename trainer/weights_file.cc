#include "trainer/weights_file.h"

#include <fmt/ranges.h>

#include <set>
#include <span>
#include <utility>
#include <vector>

#include "runtime/errors.h"
#include "runtime/hdf5_file.h"

namespace reclm {
namespace {

// The architecture as root attributes: what `reclm info` shows, and what load_weights compares
// beside the shapes (n_heads, positions_2d and tied change the math without changing a shape).
std::vector<std::pair<const char*, int64_t>> dims_attributes(const ModelDims& d) {
  return {{"vocab", d.vocab},       {"d_model", d.d_model},       {"n_layers", d.n_layers},
          {"n_heads", d.n_heads},   {"n_kv_heads", d.n_kv_heads}, {"head_dim", d.head_dim},
          {"d_ff", d.d_ff},         {"tied", d.tied ? 1 : 0},     {"positions_2d", d.positions_2d ? 1 : 0}};
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

void check_version(const hdf5::Reader& file) {
  RECLM_USER_CHECK(file.has_attribute("format_version"),
                   "{}: attribute format_version: missing (not a reclm weights file)",
                   file.file_name());
  const int64_t version = file.attribute_int64("format_version");
  RECLM_USER_CHECK(version == kWeightsFormatVersion,
                   "{}: weights format version {}, this reclm reads version {}", file.file_name(),
                   version, kWeightsFormatVersion);
}

// Every way the file's tensors and dims differ from the model's, one line each.
std::vector<std::string> mismatches(const hdf5::Reader& file, const Model& model,
                                    const WeightsLoadOptions& options) {
  std::vector<std::string> lines;
  for (const auto& [name, expected] : dims_attributes(model.dims)) {
    if (!file.has_attribute(name)) {
      lines.push_back(fmt::format("attribute {}: missing", name));
      continue;
    }
    const int64_t stored = file.attribute_int64(name);
    if (stored != expected) {
      lines.push_back(fmt::format("attribute {}: {} in the file, {} in the model", name, stored,
                                  expected));
    }
  }
  std::set<std::string> layout_names;
  for (const ParamEntry& entry : model.layout.entries()) {
    layout_names.insert(entry.name);
    const std::optional<std::vector<int64_t>> shape = file.shape("/" + entry.name);
    if (!shape) {
      if (options.keep_missing_lora && entry.kind == ParamKind::kLora) continue;
      lines.push_back(fmt::format("{}: missing", entry.name));
    } else if (*shape != entry.shape) {
      lines.push_back(fmt::format("{}: shape {} in the file, {} in the model", entry.name,
                                  shape_text(*shape), shape_text(entry.shape)));
    }
  }
  for (const std::string& name : file.root_dataset_names()) {
    if (!layout_names.contains(name)) {
      lines.push_back(fmt::format("{}: in the file, not in the model", name));
    }
  }
  return lines;
}

}  // namespace

void save_weights(const std::filesystem::path& path, const Model& model,
                  const std::string& config_text) {
  save_weights(path, model.dims, model.layout, model.param_data(), config_text);
}

void save_weights(const std::filesystem::path& path, const ModelDims& dims,
                  const ParamLayout& layout, const float* params, const std::string& config_text) {
  hdf5::write_file_atomically(path, [&](hdf5::Writer& w) {
    w.set_attribute("format_version", int64_t{kWeightsFormatVersion});
    w.set_attribute("config", std::string_view(config_text));
    for (const auto& [name, value] : dims_attributes(dims)) w.set_attribute(name, value);
    for (const ParamEntry& entry : layout.entries()) {
      const std::span<const float> values(params + entry.offset, entry.numel);
      w.write("/" + entry.name, values, hdf5::Compression::kNone, entry.shape);
    }
  });
}

void load_weights(const std::filesystem::path& path, Model& model) {
  load_weights(path, model, WeightsLoadOptions{});
}

void load_weights(const std::filesystem::path& path, Model& model,
                  const WeightsLoadOptions& options) {
  const hdf5::Reader file(path);
  check_version(file);
  // Everything is compared before anything is read, so a mismatch leaves the model untouched
  // and the message lists every difference at once.
  const std::vector<std::string> lines = mismatches(file, model, options);
  RECLM_USER_CHECK(lines.empty(), "{}: the weights do not fit this model ({} mismatches):\n  {}",
                   file.file_name(), lines.size(), fmt::join(lines, "\n  "));
  for (const ParamEntry& entry : model.layout.entries()) {
    // Only LoRA tensors can be absent here (mismatches() let them through).
    if (!file.shape("/" + entry.name)) continue;
    file.read_float32_into("/" + entry.name,
                           std::span<float>(model.param_data() + entry.offset, entry.numel));
  }
}

std::string read_weights_config(const std::filesystem::path& path) {
  const hdf5::Reader file(path);
  check_version(file);
  return file.attribute_string("config");
}

}  // namespace reclm
