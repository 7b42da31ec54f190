// A prepared recommendation dataset in memory: the item catalog (ids, titles, attributes, their
// tokens), every user's chronological history, and the vocabulary layout. `reclm prepare` builds
// it (data/ingest.h or data/synthetic_rec.h), data/dataset_store.h keeps it in one HDF5 file,
// and the loader, the objectives and `reclm eval` read it.
//
// Ids: items and users are dense 0-based ids after preparation (items remapped by a seeded random
// permutation unless asked otherwise; `keys` keeps the original id strings). Attribute ids are
// dense too. Token ids follow the vocabulary layout below.
//
// Split (leave-one-out, the protocol of SASRec/S3-Rec/P5/RecSysLLM tables): for a user with n ≥ 3
// items, items [0, n−2) train, item n−2 is the validation target (history [0, n−2)), item n−1 the
// test target (history [0, n−1)). Users with fewer than 3 items only train.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"

namespace reclm {

// Vocabulary layout of a prepared dataset (and of the model trained on it):
//   [0, text_size)                  BPE text tokens (GPT-2's ids when GPT-2's tokenizer is used)
//   special_first + k               the 8 specials of kSpecialTokens, in that order
//   items.first + i                 <item_i>
//   attributes.first + j            <attr_j>
//   vocab_size                      everything above; ranges are contiguous and disjoint
struct VocabLayout {
  int32_t text_size = 0;
  int32_t special_first = 0;
  TokenRange items;
  TokenRange attributes;
  int32_t vocab_size = 0;

  int32_t pad() const { return special_first + 0; }
  int32_t bos() const { return special_first + 1; }
  int32_t eos() const { return special_first + 2; }
  int32_t mask() const { return special_first + 3; }
  int32_t smask() const { return special_first + 4; }
  int32_t gmask() const { return special_first + 5; }
  int32_t start() const { return special_first + 6; }
  int32_t end() const { return special_first + 7; }
  int32_t item_token(int32_t item) const { return items.first + item; }
  int32_t attribute_token(int32_t attr) const { return attributes.first + attr; }
  bool is_item_token(int32_t token) const {
    return token >= items.first && token < items.first + items.count;
  }
};

struct ItemTable {
  std::vector<std::string> keys;         // [n_items] the id in the input files
  std::vector<std::string> titles;       // [n_items] "" when the metadata has none
  std::vector<int64_t> attr_offsets;     // [n_items + 1] CSR into attr_ids
  std::vector<int32_t> attr_ids;         // attribute ids in [0, attribute_names.size())
  std::vector<std::string> attribute_names;  // [n_attributes] name (or original id) of each
  std::vector<int64_t> title_offsets;    // [n_items + 1] CSR into title_tokens
  std::vector<int32_t> title_tokens;     // BPE ids of each title (empty title: no tokens)

  int32_t size() const { return static_cast<int32_t>(keys.size()); }
  std::span<const int32_t> attributes_of(int32_t item) const {
    return {attr_ids.data() + attr_offsets[item],
            static_cast<size_t>(attr_offsets[item + 1] - attr_offsets[item])};
  }
  std::span<const int32_t> title_of(int32_t item) const {
    return {title_tokens.data() + title_offsets[item],
            static_cast<size_t>(title_offsets[item + 1] - title_offsets[item])};
  }
};

struct UserSequences {
  std::vector<std::string> keys;    // [n_users] the id in the input files
  std::vector<int64_t> offsets;     // [n_users + 1] CSR into items
  std::vector<int32_t> items;       // chronological item ids (oldest first)
  std::vector<float> ratings;       // same length as items, or empty (no ratings in the input)
  std::vector<int64_t> timestamps;  // same length as items, or empty (sequence-file input)
  std::vector<std::string> profiles;  // [n_users] free text from user metadata, or empty

  int64_t size() const { return static_cast<int64_t>(keys.size()); }
  std::span<const int32_t> history(int64_t user) const {
    return {items.data() + offsets[user], static_cast<size_t>(offsets[user + 1] - offsets[user])};
  }
};

enum class Split { kTrain, kValidation, kTest };

struct RecDataset {
  ItemTable items;
  UserSequences users;
  VocabLayout vocab;
  std::string tokenizer_json;  // Hugging Face tokenizer.json of the whole vocabulary
  uint64_t tokenizer_fingerprint = 0;  // xxhash64 of tokenizer_json
  std::string prepare_config;  // how it was made (text; stored as an attribute)
  std::string source;          // where it came from, for messages (a path or "synthetic")
};

// Leave-one-out view of user u (see the top of this file).
//   kTrain:      the training prefix (n−2 items; all n when n < 3), target none
//   kValidation: history [0, n−2), target item n−2
//   kTest:       history [0, n−1), target item n−1
// has_target is false for kValidation/kTest when n < 3.
struct SplitView {
  std::span<const int32_t> history;
  int32_t target = -1;
  bool has_target = false;
};
SplitView split_view(const UserSequences& users, int64_t user, Split split);

// Every item of every user's training prefix, concatenated (held-out items never included):
// what the popularity baseline counts (trainer/ranking_metrics.h popularity_scores).
std::vector<int32_t> training_items(const UserSequences& users);

// Users, items, interactions, mean history length and density, one line each, for `prepare`
// and `info`.
std::string describe_statistics(const RecDataset& dataset);

}  // namespace reclm
