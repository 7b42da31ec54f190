// The weight files of a Hugging Face model directory, as `train.init_from: "hf:DIR"` reads them:
// either one DIR/model.safetensors, or the sharded form — DIR/model.safetensors.index.json whose
// "weight_map" maps every tensor name to a shard file in DIR (model-00001-of-00002.safetensors…).
// Headers are read and checked when the set is opened; tensor bytes only when asked for, so a
// multi-gigabyte model is never held whole.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace reclm {

class HfWeightFiles {
 public:
  // model.safetensors when it exists, else the index and its shards. UserErrors, each naming the
  // file: neither present; an index that is not JSON or has no "weight_map" object; a shard name
  // that is not a plain file name in DIR; a shard that does not exist or is not valid
  // safetensors; a tensor the index places in a shard that does not hold it.
  static HfWeightFiles open(const std::filesystem::path& dir);

  std::vector<std::string> names() const;  // every tensor, in name order
  bool contains(const std::string& name) const { return file_of_.count(name) != 0; }
  // The file holding `name` (InternalError when absent: check contains() first).
  const SafetensorsFile& file(const std::string& name) const;
  // "DIR/model.safetensors" or "DIR/model.safetensors.index.json (3 shards)", for messages.
  const std::string& description() const { return description_; }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> file_of_;  // tensor name → index into files_
  std::string description_;
};

}  // namespace reclm
