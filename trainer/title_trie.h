// The item catalog as a prefix tree of entity token sequences: what constrained beam search walks
// so that only real items can come out of generation (DESIGN.md §1, Inference).
//
// The sequences are the items' rendered entities (data/rec_samples.h append_item_tokens), not the
// raw titles, so the same trie serves every rendering: kText walks title tokens, kIdText walks
// "<item_i> title…" (its first step already names one item), kId is a depth-1 trie.
//
// Shape: node 0 is the root (the empty prefix). Every node but the root is reached by exactly one
// token sequence. An item ends at the node of its full sequence; several items may end at the same
// node (identical titles) and a node may both end an item and continue (one title a prefix of
// another), so "has children" and "ends items" are independent properties.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/rec_dataset.h"
#include "data/rec_samples.h"

namespace reclm {

// Every item's entity tokens under one rendering, CSR: item i is tokens[offsets[i] .. offsets[i+1]).
struct ItemTokenSequences {
  std::vector<int64_t> offsets;  // [n_items + 1]
  std::vector<int32_t> tokens;

  int32_t size() const { return static_cast<int32_t>(offsets.size()) - 1; }
  std::span<const int32_t> of(int32_t item) const {
    return {tokens.data() + offsets[item], static_cast<size_t>(offsets[item + 1] - offsets[item])};
  }
  int32_t max_length() const;
};

// Renders every item of the catalog (never empty: an item without a title falls back to its ID
// token, see append_item_tokens).
ItemTokenSequences item_token_sequences(const RecDataset& dataset, const RenderOptions& render);

class TitleTrie {
 public:
  static constexpr int32_t kRoot = 0;

  explicit TitleTrie(const ItemTokenSequences& sequences);

  int64_t n_nodes() const { return static_cast<int64_t>(child_offsets_.size()) - 1; }
  int32_t n_items() const { return n_items_; }
  int32_t max_depth() const { return max_depth_; }  // longest sequence, in tokens

  // Tokens that may follow the prefix of `node`, ascending, and the nodes they lead to (aligned).
  std::span<const int32_t> child_tokens(int32_t node) const {
    return {child_token_.data() + child_offsets_[node],
            static_cast<size_t>(child_offsets_[node + 1] - child_offsets_[node])};
  }
  std::span<const int32_t> child_nodes(int32_t node) const {
    return {child_node_.data() + child_offsets_[node],
            static_cast<size_t>(child_offsets_[node + 1] - child_offsets_[node])};
  }
  bool has_children(int32_t node) const {
    return child_offsets_[node + 1] > child_offsets_[node];
  }
  // The node reached from `node` by `token`, or −1 when no item continues that way.
  int32_t child(int32_t node, int32_t token) const;
  // The node of a whole sequence from the root, or −1.
  int32_t find(std::span<const int32_t> sequence) const;
  // Items whose full sequence is the prefix of `node`, ascending (empty for most inner nodes).
  std::span<const int32_t> items_ending_at(int32_t node) const {
    return {item_ids_.data() + item_offsets_[node],
            static_cast<size_t>(item_offsets_[node + 1] - item_offsets_[node])};
  }

 private:
  // CSR over nodes: children sorted by token; items ending at each node.
  std::vector<int64_t> child_offsets_;  // [n_nodes + 1]
  std::vector<int32_t> child_token_;    // [n_nodes − 1]
  std::vector<int32_t> child_node_;     // [n_nodes − 1]
  std::vector<int64_t> item_offsets_;   // [n_nodes + 1]
  std::vector<int32_t> item_ids_;       // [n_items]
  int32_t n_items_ = 0;
  int32_t max_depth_ = 0;
};

}  // namespace reclm
