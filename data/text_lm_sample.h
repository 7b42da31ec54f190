// The text-LM objective of the recommendation mix (DESIGN.md §1 "text LM keeps language
// ability"): plain next-token prediction on the titles of a user's items.
#pragma once

#include <cstdint>
#include <span>

#include "data/rec_dataset.h"
#include "data/rec_samples.h"

namespace reclm {

// [BOS] t_1 [EOS] t_2 [EOS] … t_n [EOS] over the titles of `items` (untitled items skipped), every
// position predicting the next token with weight 1 (the last position: [PAD], weight 0).
// Cropped to the most recent whole titles that fit max_tokens; when even the last title does not
// fit, its leading max_tokens − 1 tokens are kept (plain text may be cut; entities are not used
// here). Positions: pos_inter 0 … size−1; 2D samples have pos_intra 0 everywhere (plain text is
// not an entity). Returns an empty sample when no item has a title.
Sample text_lm_sample(const RecDataset& dataset, std::span<const int32_t> items,
                      bool positions_2d, int32_t max_tokens);

}  // namespace reclm
