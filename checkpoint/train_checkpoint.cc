#include "checkpoint/train_checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>
#include <xxhash.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <iterator>
#include <set>
#include <span>

#include "checkpoint/canonical_order.h"
#include "runtime/errors.h"
#include "runtime/hdf5_file.h"
#include "runtime/logging.h"
#include "runtime/tensor.h"
#include "trainer/weights_file.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;
namespace pb = google::protobuf;

constexpr const char* kManifestFile = "manifest.pb";
constexpr const char* kManifestTextFile = "manifest.pbtxt";
constexpr const char* kWeightsFile = "model.h5";

std::string shard_file_name(int rank, int world_size) {
  return fmt::format("optim_shard_{:05d}_of_{:05d}.h5", rank, world_size);
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.flush();
  RECLM_USER_CHECK(file.good(), "{}: cannot write (disk full?)", path.string());
}

std::string read_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  RECLM_USER_CHECK(file.good(), "{}: missing or unreadable (not a checkpoint directory?)",
                   path.string());
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

checkpoint::TensorRecord tensor_record(const std::string& name, const std::vector<int64_t>& shape,
                                       const std::string& file, int64_t offset, const float* values,
                                       int64_t numel) {
  checkpoint::TensorRecord record;
  record.set_name(name);
  for (int64_t d : shape) record.add_shape(d);
  record.set_dtype("F32");
  record.set_file(file);
  record.set_offset(offset);
  record.set_numel(numel);
  record.set_xxhash64(tensor_checksum(values, numel));
  return record;
}

void check_record(const checkpoint::TensorRecord& record, const float* values, int64_t numel,
                  const fs::path& dir) {
  RECLM_USER_CHECK(record.numel() == numel,
                   "{}: tensor {}: {} values in the manifest, {} in the file",
                   (dir / record.file()).string(), record.name(), record.numel(), numel);
  RECLM_USER_CHECK(tensor_checksum(values, numel) == record.xxhash64(),
                   "{}: tensor {}: checksum mismatch (the file is corrupted)",
                   (dir / record.file()).string(), record.name());
}

std::string field_text(const pb::Message& message, const pb::FieldDescriptor* field) {
  const pb::Reflection* reflection = message.GetReflection();
  if (!field->is_repeated()) {
    std::string text;
    pb::TextFormat::PrintFieldValueToString(message, field, -1, &text);
    return text;
  }
  std::vector<std::string> values;
  for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
    values.emplace_back();
    pb::TextFormat::PrintFieldValueToString(message, field, i, &values.back());
  }
  return fmt::format("[{}]", fmt::join(values, ", "));
}

void restore_weights(const fs::path& dir, const checkpoint::Manifest& manifest, Model& model) {
  load_weights(dir / kWeightsFile, model);  // shapes, dims and presence of every tensor
  std::set<std::string> checked;
  for (const checkpoint::TensorRecord& record : manifest.tensors()) {
    const ParamEntry& entry = [&]() -> const ParamEntry& {
      for (const ParamEntry& e : model.layout.entries())
        if (e.name == record.name()) return e;
      throw_user_error("{}: tensor {} is in the manifest but not in the model",
                       (dir / kManifestFile).string(), record.name());
    }();
    check_record(record, model.param_data() + entry.offset, entry.numel, dir);
    checked.insert(record.name());
  }
  for (const ParamEntry& e : model.layout.entries()) {
    RECLM_USER_CHECK(checked.contains(e.name), "{}: tensor {} has no checksum in the manifest",
                     (dir / kManifestFile).string(), e.name);
  }
}

// Reads the moments of the canonical range the optimizer holds from whatever shards the
// checkpoint has (any rank count), into the padded layout or, for a ZeRO-1 optimizer, its shard.
void restore_optimizer(const fs::path& dir, const checkpoint::Manifest& manifest,
                       const ParamLayout& layout, AdamW& optimizer) {
  const int64_t total = canonical_size(layout);
  std::vector<checkpoint::OptimizerShard> shards(manifest.optimizer_shards().begin(),
                                                 manifest.optimizer_shards().end());
  std::sort(shards.begin(), shards.end(),
            [](const auto& a, const auto& b) { return a.begin() < b.begin(); });
  int64_t covered = 0;
  for (const checkpoint::OptimizerShard& shard : shards) {
    RECLM_USER_CHECK(shard.begin() == covered && shard.end() >= shard.begin(),
                     "{}: optimizer shards do not tile [0, {}) (shard {} starts at {}, expected {})",
                     (dir / kManifestFile).string(), total, shard.file(), shard.begin(), covered);
    covered = shard.end();
  }
  RECLM_USER_CHECK(covered == total, "{}: optimizer shards cover {} values, the model has {}",
                   (dir / kManifestFile).string(), covered, total);
  const FlatRange mine{optimizer.shard().begin, optimizer.shard().end};
  for (const checkpoint::OptimizerShard& shard : shards) {
    const FlatRange range{std::max(shard.begin(), mine.begin), std::min(shard.end(), mine.end)};
    if (range.begin >= range.end) continue;
    const hdf5::Reader file(dir / shard.file());
    for (const auto& [record, target] :
         {std::pair{&shard.m(), optimizer.first_moment()}, {&shard.v(), optimizer.second_moment()}}) {
      const std::vector<float> values = file.read_float32("/" + record->name());
      check_record(*record, values.data(), static_cast<int64_t>(values.size()), dir);
      RECLM_USER_CHECK(static_cast<int64_t>(values.size()) == shard.end() - shard.begin(),
                       "{}: {} holds {} values for the range [{}, {})", file.file_name(),
                       record->name(), values.size(), shard.begin(), shard.end());
      const float* from = values.data() + (range.begin - shard.begin());
      if (optimizer.sharded()) {  // moments in canonical order from mine.begin
        std::copy(from, from + range.size(), target + (range.begin - mine.begin));
      } else {
        scatter_canonical(layout, from, range, target);
      }
    }
  }
}

}  // namespace

uint64_t tensor_checksum(const float* values, int64_t n) {
  return XXH64(values, static_cast<size_t>(n) * sizeof(float), 0);
}

CheckpointSnapshot take_snapshot(const Config& config, const Model& model, const AdamW& optimizer,
                                 const TrainProgress& progress, const std::string& data_source,
                                 int world_size, bool with_weights) {
  CheckpointSnapshot s;
  s.config = config;
  s.dims = model.dims;
  if (with_weights) {
    s.params.assign(model.param_data(), model.param_data() + model.layout.total_floats());
  }
  const CanonicalRange held = optimizer.shard();
  s.moments_begin = held.begin;
  s.m.resize(held.size());
  s.v.resize(held.size());
  if (optimizer.sharded()) {  // already canonical
    std::copy(optimizer.first_moment(), optimizer.first_moment() + held.size(), s.m.begin());
    std::copy(optimizer.second_moment(), optimizer.second_moment() + held.size(), s.v.begin());
  } else {
    gather_canonical(model.layout, optimizer.first_moment(), {held.begin, held.end}, s.m.data());
    gather_canonical(model.layout, optimizer.second_moment(), {held.begin, held.end}, s.v.data());
  }
  s.progress = progress;
  s.optimizer_steps = optimizer.steps_taken();
  s.micro_batches_per_step = config.train().grad_accum();
  s.world_size = world_size;
  s.data_source = data_source;
  s.unix_time = static_cast<int64_t>(std::time(nullptr));
  return s;
}

checkpoint::OptimizerShard write_optimizer_shard(const fs::path& dir, const CheckpointSnapshot& s,
                                                 int rank, int world) {
  const ParamLayout layout(s.dims);
  const FlatRange range = shard_range(canonical_size(layout), rank, world);
  const int64_t held_end = s.moments_begin + static_cast<int64_t>(s.m.size());
  RECLM_CHECK(range.begin >= s.moments_begin && range.end <= held_end,
              "shard [{}, {}) outside the snapshot's moments [{}, {})", range.begin, range.end,
              s.moments_begin, held_end);
  const std::span<const float> m(s.m.data() + (range.begin - s.moments_begin), range.size());
  const std::span<const float> v(s.v.data() + (range.begin - s.moments_begin), range.size());
  const std::string file = shard_file_name(rank, world);
  hdf5::write_file_atomically(dir / file, [&](hdf5::Writer& w) {
    w.set_attribute("begin", range.begin);
    w.set_attribute("end", range.end);
    w.set_attribute("rank", int64_t{rank});
    w.set_attribute("world_size", int64_t{world});
    w.write("/m", m);
    w.write("/v", v);
  });
  checkpoint::OptimizerShard shard;
  shard.set_file(file);
  shard.set_rank(rank);
  shard.set_begin(range.begin);
  shard.set_end(range.end);
  *shard.mutable_m() = tensor_record("m", {range.size()}, file, range.begin, m.data(), range.size());
  *shard.mutable_v() = tensor_record("v", {range.size()}, file, range.begin, v.data(), range.size());
  return shard;
}

void write_weights_and_manifest(const fs::path& dir, const CheckpointSnapshot& s,
                                const std::vector<checkpoint::OptimizerShard>& shards) {
  const ParamLayout layout(s.dims);
  RECLM_CHECK(static_cast<int64_t>(s.params.size()) == layout.total_floats(),
              "snapshot of {} floats for a layout of {}", s.params.size(), layout.total_floats());
  int64_t covered = 0;
  for (const checkpoint::OptimizerShard& shard : shards) {
    RECLM_CHECK(shard.begin() == covered, "optimizer shard {} starts at {}, expected {}",
                shard.file(), shard.begin(), covered);
    covered = shard.end();
  }
  RECLM_CHECK(covered == canonical_size(layout), "optimizer shards cover {} of {} values", covered,
              canonical_size(layout));
  checkpoint::Manifest manifest;
  manifest.set_format_version(kCheckpointFormatVersion);
  manifest.set_step(s.progress.step);
  manifest.set_tokens_seen(s.progress.tokens_seen);
  *manifest.mutable_config() = s.config;
  manifest.set_data_next_step(s.progress.step);
  manifest.set_data_micro_batches_per_step(s.micro_batches_per_step);
  manifest.set_data_source(s.data_source);
  manifest.set_rng_seed(s.config.runtime().seed());
  // trainer/data_parallel.h dropout_stream: the global micro-batch index.
  manifest.set_rng_next_dropout_stream(s.progress.step * s.micro_batches_per_step * s.world_size);
  manifest.set_world_size(s.world_size);
  manifest.set_optimizer("adamw");
  manifest.set_optimizer_steps(s.optimizer_steps);
  manifest.set_learning_rate(s.progress.last_lr);
  manifest.set_skipped_steps(s.progress.skipped_steps);
  manifest.set_unix_time(s.unix_time);
  manifest.set_num_parameters(layout.num_parameters());

  save_weights(dir / kWeightsFile, s.dims, layout, s.params.data(), config_to_text(s.config));
  int64_t canonical = 0;
  for (const ParamEntry& e : layout.entries()) {
    *manifest.add_tensors() =
        tensor_record(e.name, e.shape, kWeightsFile, canonical, s.params.data() + e.offset, e.numel);
    canonical += e.numel;
  }
  for (const checkpoint::OptimizerShard& shard : shards) *manifest.add_optimizer_shards() = shard;

  std::string bytes;
  {
    pb::io::StringOutputStream stream(&bytes);
    pb::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    RECLM_CHECK(manifest.SerializeToCodedStream(&coded), "serializing the manifest");
  }
  checkpoint::ManifestEnvelope envelope;
  envelope.set_xxhash64(XXH64(bytes.data(), bytes.size(), 0));
  envelope.set_manifest(std::move(bytes));
  write_bytes(dir / kManifestFile, envelope.SerializeAsString());
  std::string text;
  pb::TextFormat::PrintToString(manifest, &text);
  write_bytes(dir / kManifestTextFile, text);
}

void write_checkpoint_files(const fs::path& dir, const CheckpointSnapshot& s, int optimizer_shards) {
  RECLM_CHECK(optimizer_shards > 0, "optimizer_shards {}", optimizer_shards);
  std::vector<checkpoint::OptimizerShard> shards;
  for (int rank = 0; rank < optimizer_shards; ++rank)
    shards.push_back(write_optimizer_shard(dir, s, rank, optimizer_shards));
  write_weights_and_manifest(dir, s, shards);
}

checkpoint::Manifest read_manifest(const fs::path& dir) {
  const fs::path path = dir / kManifestFile;
  const std::string bytes = read_bytes(path);
  checkpoint::ManifestEnvelope envelope;
  RECLM_USER_CHECK(envelope.ParseFromString(bytes) && envelope.has_manifest() &&
                       envelope.has_xxhash64(),
                   "{}: not a reclm checkpoint manifest (truncated or corrupted)", path.string());
  RECLM_USER_CHECK(
      XXH64(envelope.manifest().data(), envelope.manifest().size(), 0) == envelope.xxhash64(),
      "{}: checksum mismatch (the manifest is corrupted)", path.string());
  checkpoint::Manifest manifest;
  RECLM_USER_CHECK(manifest.ParseFromString(envelope.manifest()), "{}: manifest does not parse",
                   path.string());
  RECLM_USER_CHECK(manifest.format_version() == kCheckpointFormatVersion,
                   "{}: checkpoint format version {}, this reclm reads version {}", path.string(),
                   manifest.format_version(), kCheckpointFormatVersion);
  return manifest;
}

std::vector<std::string> config_differences(const pb::Message& saved, const pb::Message& current,
                                            const std::string& prefix) {
  RECLM_CHECK(saved.GetDescriptor() == current.GetDescriptor(), "comparing different messages");
  std::vector<std::string> lines;
  const pb::Descriptor* descriptor = saved.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    const std::string path = prefix + field->name();
    if (!field->is_repeated() && field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      const auto& sub_saved = saved.GetReflection()->GetMessage(saved, field);
      const auto& sub_current = current.GetReflection()->GetMessage(current, field);
      for (std::string& line : config_differences(sub_saved, sub_current, path + "."))
        lines.push_back(std::move(line));
      continue;
    }
    const std::string a = field_text(saved, field), b = field_text(current, field);
    if (a != b) lines.push_back(fmt::format("{}: {} in the checkpoint, {} in the config", path, a, b));
  }
  return lines;
}

int64_t verify_checkpoint_files(const fs::path& dir) {
  const checkpoint::Manifest manifest = read_manifest(dir);
  int64_t checked = 0;
  const auto verify = [&](const hdf5::Reader& file, const checkpoint::TensorRecord& record,
                          const std::string& dataset) {
    const std::optional<std::vector<int64_t>> shape = file.shape(dataset);
    RECLM_USER_CHECK(shape.has_value(), "{}: tensor {}: missing", file.file_name(), record.name());
    std::vector<float> values(shape_numel(*shape));
    file.read_float32_into(dataset, values);
    check_record(record, values.data(), static_cast<int64_t>(values.size()), dir);
    checked += static_cast<int64_t>(values.size());
  };
  {
    const hdf5::Reader weights(dir / kWeightsFile);
    for (const checkpoint::TensorRecord& record : manifest.tensors())
      verify(weights, record, "/" + record.name());
  }
  for (const checkpoint::OptimizerShard& shard : manifest.optimizer_shards()) {
    const hdf5::Reader file(dir / shard.file());
    verify(file, shard.m(), "/m");
    verify(file, shard.v(), "/v");
  }
  return checked;
}

void restore_checkpoint(const fs::path& dir, const Config& config, Model& model, AdamW& optimizer,
                        TrainProgress& progress) {
  const checkpoint::Manifest manifest = read_manifest(dir);
  const std::vector<std::string> architecture =
      config_differences(manifest.config().model(), config.model(), "model.");
  RECLM_USER_CHECK(architecture.empty(),
                   "{}: the checkpoint's model differs from the config ({} fields):\n  {}",
                   dir.string(), architecture.size(), fmt::join(architecture, "\n  "));
  for (const std::string& line : config_differences(manifest.config(), config, ""))
    log_warn("resuming with a changed setting: {}", line);
  restore_weights(dir, manifest, model);
  restore_optimizer(dir, manifest, model.layout, optimizer);
  optimizer.set_steps_taken(manifest.optimizer_steps());
  progress.step = manifest.step();
  progress.tokens_seen = manifest.tokens_seen();
  progress.skipped_steps = manifest.skipped_steps();
  progress.last_lr = manifest.learning_rate();
  log_info("resumed from {}: step {}, {} tokens seen", dir.string(), manifest.step(),
           manifest.tokens_seen());
}

}  // namespace reclm
