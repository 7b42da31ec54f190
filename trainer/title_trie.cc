// Prefix tree of item entity sequences: built once with a hash of (parent, token) edges, then
// frozen into CSR arrays (children sorted by token) so lookups are a binary search and the whole
// trie is a handful of flat vectors (Beauty: ~12k items, a few hundred thousand nodes).
#include "trainer/title_trie.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>

#include "runtime/errors.h"

namespace reclm {

int32_t ItemTokenSequences::max_length() const {
  int64_t longest = 0;
  for (int32_t i = 0; i < size(); ++i) longest = std::max(longest, offsets[i + 1] - offsets[i]);
  return static_cast<int32_t>(longest);
}

ItemTokenSequences item_token_sequences(const RecDataset& dataset, const RenderOptions& render) {
  ItemTokenSequences seqs;
  const int32_t n_items = dataset.items.size();
  seqs.offsets.reserve(n_items + 1);
  seqs.offsets.push_back(0);
  for (int32_t item = 0; item < n_items; ++item) {
    append_item_tokens(dataset, item, render, seqs.tokens);
    seqs.offsets.push_back(static_cast<int64_t>(seqs.tokens.size()));
    RECLM_CHECK(seqs.offsets[item + 1] > seqs.offsets[item], "item {} rendered to no tokens", item);
  }
  return seqs;
}

TitleTrie::TitleTrie(const ItemTokenSequences& sequences) : n_items_(sequences.size()) {
  struct Edge {
    int32_t parent, token, child;
  };
  std::vector<Edge> edges;
  std::unordered_map<uint64_t, int32_t> edge_index;  // (parent << 32 | token) → child
  std::vector<int32_t> end_node(n_items_);           // node where each item's sequence ends
  int32_t n_nodes = 1;
  for (int32_t item = 0; item < n_items_; ++item) {
    const std::span<const int32_t> seq = sequences.of(item);
    RECLM_CHECK(!seq.empty(), "item {} has an empty token sequence", item);
    max_depth_ = std::max(max_depth_, static_cast<int32_t>(seq.size()));
    int32_t node = kRoot;
    for (const int32_t token : seq) {
      const uint64_t key = (static_cast<uint64_t>(node) << 32) | static_cast<uint32_t>(token);
      auto [it, inserted] = edge_index.try_emplace(key, n_nodes);
      if (inserted) {
        edges.push_back({node, token, n_nodes});
        ++n_nodes;
      }
      node = it->second;
    }
    end_node[item] = node;
  }

  std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) {
    return std::tie(a.parent, a.token) < std::tie(b.parent, b.token);
  });
  child_offsets_.assign(n_nodes + 1, 0);
  for (const Edge& e : edges) ++child_offsets_[e.parent + 1];
  for (int32_t n = 0; n < n_nodes; ++n) child_offsets_[n + 1] += child_offsets_[n];
  child_token_.reserve(edges.size());
  child_node_.reserve(edges.size());
  for (const Edge& e : edges) {  // sorted by parent, so each node's children land in its range
    child_token_.push_back(e.token);
    child_node_.push_back(e.child);
  }

  item_offsets_.assign(n_nodes + 1, 0);
  for (const int32_t node : end_node) ++item_offsets_[node + 1];
  for (int32_t n = 0; n < n_nodes; ++n) item_offsets_[n + 1] += item_offsets_[n];
  item_ids_.resize(n_items_);
  std::vector<int64_t> fill(item_offsets_.begin(), item_offsets_.end() - 1);
  for (int32_t item = 0; item < n_items_; ++item) item_ids_[fill[end_node[item]]++] = item;
}

int32_t TitleTrie::child(int32_t node, int32_t token) const {
  const std::span<const int32_t> tokens = child_tokens(node);
  const auto it = std::lower_bound(tokens.begin(), tokens.end(), token);
  if (it == tokens.end() || *it != token) return -1;
  return child_nodes(node)[it - tokens.begin()];
}

int32_t TitleTrie::find(std::span<const int32_t> sequence) const {
  int32_t node = kRoot;
  for (const int32_t token : sequence) {
    node = child(node, token);
    if (node < 0) return -1;
  }
  return node;
}

}  // namespace reclm
