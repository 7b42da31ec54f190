// Fixtures and helpers shared by the ingest tests (tests/data/ingest*_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/ingest.h"
#include "data/rec_dataset.h"
#include "scratch_dir.h"

namespace reclm::ingest_test {

// A fresh temporary directory per test for the input files it writes.
class TempFiles : public ScratchDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
};

using Keys = std::vector<std::string>;

// Options reading a sequence file / a table, with ids in first-appearance order and no progress.
inline IngestOptions sequences(const std::string& path) {
  IngestOptions o;
  o.sequences_path = path;
  o.remap_items = false;
  o.progress = false;
  return o;
}

inline IngestOptions table(const std::string& path) {
  IngestOptions o;
  o.table_path = path;
  o.remap_items = false;
  o.progress = false;
  return o;
}

// A user's history as the original item keys (independent of the id remap).
inline Keys history_keys(const RecDataset& d, int64_t user) {
  Keys out;
  for (int32_t item : d.users.history(user)) out.push_back(d.items.keys[item]);
  return out;
}

inline int32_t item_id(const RecDataset& d, const std::string& key) {
  const auto it = std::find(d.items.keys.begin(), d.items.keys.end(), key);
  EXPECT_NE(it, d.items.keys.end()) << key;
  return static_cast<int32_t>(it - d.items.keys.begin());
}

inline Keys attribute_names_of(const RecDataset& d, int32_t item) {
  Keys out;
  for (int32_t a : d.items.attributes_of(item)) out.push_back(d.items.attribute_names[a]);
  return out;
}

}  // namespace reclm::ingest_test
