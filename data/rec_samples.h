// Rendering items as entities and turning histories into training/inference segments
// (DESIGN.md §1). A Sample is one packed segment; data/rec_source.h mixes and packs them.
//
// Rendering (config data.rendering), per item:
//   kId      <item_i>
//   kText    the title's tokens (an item without a title falls back to <item_i>)
//   kIdText  <item_i> followed by the title's tokens
// With attributes, the item's <attr_j> tokens follow inside the same entity. Every rendered item
// is one Entity whose token span is recorded, so no objective ever splits it.
//
// Positions: 1D samples use pos_inter = 0, 1, 2, … and leave pos_intra empty. 2D samples (GLM /
// RecSysLLM): pos_inter = position in the (corrupted) text; pos_intra = 0 for standalone tokens
// ([BOS], prompt words, mask tokens), 1..len consecutively over an entity's tokens, and 1..len+1
// inside a Part B span counting its [START].
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/batch.h"
#include "data/rec_dataset.h"

namespace reclm {

enum class ItemRendering { kId, kText, kIdText };

struct RenderOptions {
  ItemRendering rendering = ItemRendering::kId;
  bool attributes = false;  // append the item's attribute tokens inside its entity
};

struct Entity {
  int32_t begin = 0;   // first token, relative to the rendered sequence
  int32_t length = 0;  // tokens
  int32_t item = -1;
};

struct RenderedItems {
  std::vector<int32_t> tokens;
  std::vector<int32_t> intra;     // 1..length within each entity
  std::vector<Entity> entities;   // chronological; consecutive and covering `tokens`
};

// The tokens of one item (its entity) under `options`.
void append_item_tokens(const RecDataset& dataset, int32_t item, const RenderOptions& options,
                        std::vector<int32_t>& out);

// Items in order as consecutive entities.
RenderedItems render_items(const RecDataset& dataset, std::span<const int32_t> items,
                           const RenderOptions& options);

// One segment of the batch: inputs, targets, loss weights, positions, bidirectional prefix.
struct Sample {
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;      // next token to predict (any value where weight is 0)
  std::vector<float> loss_weights;
  std::vector<int32_t> pos_inter;
  std::vector<int32_t> pos_intra;    // empty for 1D samples
  int32_t prefix_len = 0;            // Part A length (bidirectional); 0 = plain causal

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
};

// Next-item prediction, causal: tokens [BOS] e_1 … e_n. Cropping keeps the most recent WHOLE
// items whose tokens fit max_tokens together with [BOS] (an item is never split); if even the
// last item does not fit, that is a UserError naming data.seq_len. At every position the target
// is the next token, with weight 1 where that token belongs to entity e_2 … e_n of the kept
// items (the first kept item has no history to predict it from); the last position's target is
// [PAD] with weight 0. With only_last, only the last item's tokens carry weight — even when it is
// the only item (validation: the held-out target). Needs at least one item.
// Positions: pos_inter 0 … size−1; 2D adds pos_intra 0 for [BOS], 1..len within each entity.
// tail_weight: in ID and ID_TEXT rendering, the loss weight of an item's tokens after its <item>
// token (title, attributes); the <item> token — what ranking reads — keeps weight 1.
Sample next_item_sample(const RecDataset& dataset, std::span<const int32_t> items,
                        const RenderOptions& options, bool positions_2d, int32_t max_tokens,
                        bool only_last = false, float tail_weight = 1.0f);

// Inference input for "what comes after this history": [BOS] e_1 … e_n (cropped as above), no
// loss (all weights 0). An empty history gives [BOS] alone. The hidden state at the last token
// scores the next item.
Sample history_prompt(const RecDataset& dataset, std::span<const int32_t> history,
                      const RenderOptions& options, bool positions_2d, int32_t max_tokens);

// Appends a sample to a batch as one new segment: cu_seqlens gains its end (starting from {0} on
// an empty batch). prefix_lens stays empty while every segment is plain causal; the first sample
// with prefix_len > 0 fills it with 0 for the earlier segments, and from then on every segment
// gets an entry. pos_intra is present iff the samples are 2D; all samples of a batch must agree
// (mixing is an InternalError, as are sample fields of unequal lengths).
void append_sample(Batch& batch, const Sample& sample);

}  // namespace reclm
