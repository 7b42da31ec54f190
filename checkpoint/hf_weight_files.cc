#include "checkpoint/hf_weight_files.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/errors.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

json read_index(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "{}: cannot open ({})", path.string(), std::strerror(errno));
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    throw_user_error("{}: not valid JSON: {}", path.string(), e.what());
  }
  RECLM_USER_CHECK(doc.is_object() && doc.contains("weight_map") && doc["weight_map"].is_object(),
                   "{}: no \"weight_map\" object (expected {{\"weight_map\": {{tensor name: shard "
                   "file}}}})",
                   path.string());
  return doc;
}

// Shards live beside the index; a path elsewhere ("../x", "/etc/x", "sub/x") is not what a
// Hugging Face index holds, and following it would read files the user did not point us at.
bool plain_file_name(const std::string& name) {
  const fs::path p(name);
  return !name.empty() && p.filename() == p && name != "." && name != "..";
}

}  // namespace

HfWeightFiles HfWeightFiles::open(const fs::path& dir) {
  HfWeightFiles set;
  std::error_code ec;
  if (fs::exists(dir / kSingleFile, ec)) {
    set.files_.push_back(SafetensorsFile::open(dir / kSingleFile));
    for (const std::string& name : set.files_[0].names()) set.file_of_[name] = 0;
    set.description_ = (dir / kSingleFile).string();
    return set;
  }
  const fs::path index_path = dir / kIndexFile;
  RECLM_USER_CHECK(fs::exists(index_path, ec),
                   "{}: no {} and no {} (not a Hugging Face safetensors model directory)",
                   dir.string(), kSingleFile, kIndexFile);
  const json index = read_index(index_path);
  const std::string index_name = index_path.string();
  std::map<std::string, size_t> shard_slot;  // shard file name → index into files_
  for (const auto& [tensor, shard_value] : index["weight_map"].items()) {
    RECLM_USER_CHECK(shard_value.is_string(), "{}: weight_map[\"{}\"] is {}, expected a file name",
                     index_name, tensor, shard_value.dump());
    const std::string shard = shard_value.get<std::string>();
    RECLM_USER_CHECK(plain_file_name(shard),
                     "{}: weight_map[\"{}\"] = \"{}\" is not a file name in {} (shards must sit "
                     "beside the index)",
                     index_name, tensor, shard, dir.string());
    auto slot = shard_slot.find(shard);
    if (slot == shard_slot.end()) {
      RECLM_USER_CHECK(fs::exists(dir / shard, ec),
                       "{}: weight_map[\"{}\"] names shard {}, which does not exist in {}",
                       index_name, tensor, shard, dir.string());
      set.files_.push_back(SafetensorsFile::open(dir / shard));
      slot = shard_slot.emplace(shard, set.files_.size() - 1).first;
    }
    RECLM_USER_CHECK(set.files_[slot->second].contains(tensor),
                     "{}: weight_map places tensor {} in {}, which does not hold it", index_name,
                     tensor, (dir / shard).string());
    set.file_of_[tensor] = slot->second;
  }
  set.description_ = fmt::format("{} ({} shards)", index_name, set.files_.size());
  return set;
}

std::vector<std::string> HfWeightFiles::names() const {
  std::vector<std::string> out;
  out.reserve(file_of_.size());
  for (const auto& [name, slot] : file_of_) out.push_back(name);
  return out;
}

const SafetensorsFile& HfWeightFiles::file(const std::string& name) const {
  const auto found = file_of_.find(name);
  RECLM_CHECK(found != file_of_.end(), "{}: no tensor {}", description_, name);
  return files_[found->second];
}

}  // namespace reclm
