// Small hand-made catalogs, tiny models and naive (one segment, double precision) references
// shared by the evaluator and beam-search tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "data/rec_dataset.h"
#include "data/rec_samples.h"
#include "trainer/model.h"
#include "trainer/tiny_dims.h"

namespace reclm::test {

// Vocabulary: text 0..49, the 8 specials 50..57, items 58..58+n, no attributes.
inline RecDataset make_dataset(const std::vector<std::vector<int32_t>>& titles,
                               const std::vector<std::vector<int32_t>>& histories) {
  RecDataset d;
  const auto n_items = static_cast<int32_t>(titles.size());
  d.vocab.text_size = 50;
  d.vocab.special_first = 50;
  d.vocab.items = {58, n_items};
  d.vocab.attributes = {58 + n_items, 0};
  d.vocab.vocab_size = 58 + n_items;
  d.items.title_offsets = {0};
  d.items.attr_offsets.assign(n_items + 1, 0);
  for (int32_t i = 0; i < n_items; ++i) {
    d.items.keys.push_back("i" + std::to_string(i));
    d.items.titles.push_back(titles[i].empty() ? "" : "title " + std::to_string(i));
    d.items.title_tokens.insert(d.items.title_tokens.end(), titles[i].begin(), titles[i].end());
    d.items.title_offsets.push_back(static_cast<int64_t>(d.items.title_tokens.size()));
  }
  d.users.offsets = {0};
  for (size_t u = 0; u < histories.size(); ++u) {
    d.users.keys.push_back("u" + std::to_string(u));
    d.users.items.insert(d.users.items.end(), histories[u].begin(), histories[u].end());
    d.users.offsets.push_back(static_cast<int64_t>(d.users.items.size()));
  }
  d.source = "test";
  return d;
}

// Titles of 1..4 random text tokens (some items untitled), histories of 2..9 random items with
// repeats allowed (so exclusion lists hold duplicates and sometimes the target itself).
inline RecDataset random_dataset(int32_t n_items, int32_t n_users, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::vector<int32_t>> titles(n_items), histories(n_users);
  for (auto& title : titles) {
    const int len = static_cast<int>(gen() % 5);  // 0 = untitled (rendered as its ID token)
    for (int k = 0; k < len; ++k) title.push_back(static_cast<int32_t>(gen() % 50));
  }
  for (auto& history : histories) {
    const int len = 2 + static_cast<int>(gen() % 8);
    for (int k = 0; k < len; ++k) history.push_back(static_cast<int32_t>(gen() % n_items));
  }
  return make_dataset(titles, histories);
}

// Shared prefixes, one title the prefix of another, two identical titles, an untitled item.
inline std::vector<std::vector<int32_t>> prefix_titles() {
  return {{1, 2, 3}, {1, 2, 4}, {1, 5}, {6}, {1, 2, 3, 7}, {6}, {8, 9, 10, 11}, {}, {2, 3}, {12, 13}};
}

inline ModelDims tiny_dims(int64_t vocab, bool positions_2d) {
  return tiny_model_dims({.vocab = vocab, .d_model = 32, .d_ff = 48, .tied = false,
                          .positions_2d = positions_2d});
}

// A large init so the random model's distributions are far from uniform (scores well apart).
inline Model tiny_model(const RecDataset& dataset, bool positions_2d, int64_t max_tokens,
                        uint64_t seed = 11) {
  Model model(tiny_dims(dataset.vocab.vocab_size, positions_2d), max_tokens);
  init_weights(model, seed, 0.5f);
  return model;
}

// Same weights, another arena size.
inline Model copy_with_arena(const Model& model, int64_t max_tokens) {
  Model copy(model.dims, max_tokens);
  std::copy_n(model.param_data(), model.layout.total_floats(), copy.param_data());
  return copy;
}

// Logits [n_positions][V] in double of `sample` forwarded alone.
inline std::vector<std::vector<double>> naive_logits(Model& model, const Sample& sample) {
  Batch batch;
  append_sample(batch, sample);
  forward_hidden(model, batch);
  const int64_t C = model.dims.d_model, V = model.dims.vocab;
  std::vector<std::vector<double>> out(sample.size(), std::vector<double>(V));
  for (int32_t t = 0; t < sample.size(); ++t) {
    const float* h = model.acts.final_normed + t * C;
    for (int64_t c = 0; c < V; ++c) {
      double dot = 0;
      for (int64_t j = 0; j < C; ++j) dot += double{h[j]} * model.params.lm_head[c * C + j];
      out[t][c] = dot;
    }
  }
  return out;
}

inline double naive_log_softmax(const std::vector<double>& logits, int32_t token) {
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const double x : logits) sum += std::exp(x - max);
  return logits[token] - max - std::log(sum);
}

// Log-likelihood of `entity` after `prompt`: the segment is built by hand (inter positions
// continue, intra 1, 2, … over the entity in 2D), independently of extend_segment.
inline double naive_entity_loglikelihood(Model& model, const Sample& prompt,
                                         std::span<const int32_t> entity) {
  Sample s = prompt;
  const int32_t n = prompt.size();
  for (size_t k = 0; k + 1 < entity.size(); ++k) {
    s.tokens.push_back(entity[k]);
    s.targets.push_back(0);
    s.loss_weights.push_back(0);
    s.pos_inter.push_back(n + static_cast<int32_t>(k));
    if (!prompt.pos_intra.empty()) s.pos_intra.push_back(1 + static_cast<int32_t>(k));
  }
  const auto logits = naive_logits(model, s);
  double sum = 0;
  for (size_t k = 0; k < entity.size(); ++k) sum += naive_log_softmax(logits[n - 1 + k], entity[k]);
  return sum;
}

}  // namespace reclm::test
