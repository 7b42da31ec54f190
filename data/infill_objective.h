// RecSysLLM item infilling (DESIGN.md §1): GLM autoregressive blank infilling in which spans never
// split an entity and Part B keeps the spans in chronological order.
//
//   Part A  [BOS] + the rendered history with each chosen span of whole entities replaced by one
//           mask token. One corruption kind per sample, drawn by the option weights:
//             [MASK]  entity level: k single entities chosen uniformly, each its own span;
//             [sMASK] sentence level: k entities in s ≥ 1 runs of consecutive entities, any two
//                     runs separated by at least one visible entity;
//             [gMASK] document level: one span over the last c entities, c uniform in
//                     [ceil(n/2), n] (50–100%; the whole history when n = 1);
//           with k = round(mask_fraction · n) clamped to [1, n]. Bidirectional:
//           prefix_len = |Part A|. No loss in Part A (targets [PAD], weight 0 — so the position
//           whose next token is the first [START] is not trained either).
//   Part B  for each span, in the order of the history: [START] t_1 … t_m, whose targets are
//           t_1 … t_m [END] with weight 1 (every masked token predicted exactly once, plus [END]).
//           Causal; sees all of Part A. [END] is only ever a target, never an input.
//   2D positions: Part A token i has inter i; intra 0 for standalone tokens and masks, 1..len
//           over an unmasked entity's tokens. Part B span tokens all get the inter position of
//           their mask token and intra 1..m+1 ([START] is 1).
//   1D positions (a 1D model): 0, 1, 2, … over the whole segment; pos_intra empty.
// Example (text rendering, titles [5 6] [7] [8 9 10], [MASK] on the middle item):
//   tokens  [BOS] 5 6 [MASK] 8 9 10 | [START] 7        prefix_len 7
//   targets  -    - -   -    - -  - |   7    [END]     (weight 1 only after the bar)
//   inter    0    1 2   3    4 5  6 |   3    3
//   intra    0    1 2   0    1 2  3 |   1    2
// Masking draws come from the caller's CounterRng (keyed by seed/epoch/sample,
// RngPurpose::kMasking): the same key gives the same sample.
#pragma once

#include <cstdint>
#include <span>

#include "data/rec_dataset.h"
#include "data/rec_samples.h"
#include "runtime/rng.h"

namespace reclm {

struct InfillOptions {
  // Which corruption a sample gets (relative weights).
  double entity_weight = 0.5;    // [MASK] single-entity spans
  double sentence_weight = 0.25; // [sMASK] runs of consecutive entities
  double document_weight = 0.25; // [gMASK] one span over 50–100% of the tail
  double mask_fraction = 0.15;   // fraction of entities masked by [MASK] / [sMASK] spans (≥ 1 span)
};

// The history is cropped to its most recent items so that Parts A and B surely fit max_tokens
// (room is kept for the most spans the drawn kind can make). Needs at least one item; a most
// recent item too long to fit on its own is a UserError naming data.seq_len. Weights outside
// their ranges (negative, all zero, mask_fraction outside [0, 1]) are a UserError.
Sample item_infill_sample(const RecDataset& dataset, std::span<const int32_t> items,
                          const RenderOptions& render, const InfillOptions& options,
                          bool positions_2d, int32_t max_tokens, CounterRng& rng);

}  // namespace reclm
