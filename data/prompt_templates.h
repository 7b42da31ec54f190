// P5-style prompt templates (Geng et al. 2022): the history and the answer embedded in natural
// language, so one model serves several tasks and templates held out of training test zero-shot
// generalisation.
//
// Families (every template has a stable name: "seq-1", "direct-2", "rating-1", …):
//   sequential  "Customer {user} has bought {history} … buy next?" → the next item's entity
//   direct      "… which of these … {candidates}?" → the target's entity. Candidates: the target
//               and up to 19 items the user never had (neither in the user's whole sequence nor
//               in `history`; fewer when the catalog has fewer left), in an order shuffled by the
//               caller's rng.
//   rating      "… what star rating … give {item}?" → the rating as text ("4", "4.5"), then
//               [EOS]. Only for datasets with ratings: the loader never picks these otherwise,
//               and asking anyway is an internal error.
// Each family has several wordings; every template has {history} once, direct ones {candidates}
// once, rating ones {item} once; {user} (any number of times) is the user's key.
//
// A sample: [BOS], the wording's text (BPE-encoded piece by piece around the entity slots),
// entities rendered by append_item_tokens (list entities joined by ", "), and the answer right
// after the wording's final newline. Targets are next tokens; the loss (weight 1) covers exactly
// the positions predicting the answer tokens; the last position predicts nothing ([PAD], 0).
// Plain causal (prefix_len 0). Positions: pos_inter 0..n−1; with 2D positions pos_intra is 0 on
// text, specials and the rating answer, 1..len inside each entity (the answer entity included).
// Too long for max_tokens: the history is cropped to its most recent items (down to none), then
// non-target candidates are dropped; if it still does not fit, a UserError naming the template
// and data.seq_len.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/rec_dataset.h"
#include "data/rec_samples.h"
#include "runtime/rng.h"

namespace reclm {

enum class PromptFamily { kSequential, kDirect, kRating };

struct PromptTemplate {
  std::string name;    // stable id, e.g. "seq-2"
  PromptFamily family;
  std::string text;    // wording with {user}, {history}, {candidates}, {item} placeholders
};

const std::vector<PromptTemplate>& prompt_templates();
// The template called `name`; a UserError listing the valid names otherwise.
const PromptTemplate& find_prompt_template(const std::string& name);

// A training sample of `tmpl` for user `user` whose history is `history` and answer `target`
// (item, or for kRating the item whose rating is asked: `rating` holds the rating). `rng` is drawn
// only by direct templates (candidates); the same key gives the same sample.
Sample prompt_sample(const RecDataset& dataset, const BpeTokenizer& tokenizer,
                     const PromptTemplate& tmpl, int64_t user, std::span<const int32_t> history,
                     int32_t target, float rating, const RenderOptions& render, bool positions_2d,
                     int32_t max_tokens, CounterRng& rng);

// Inference input for a sequential template: the prompt up to the answer, no loss; the hidden
// state at the last token scores the next item (zero-shot evaluation of held-out templates).
// Equal to the start of prompt_sample's tokens when nothing is cropped (here only the prompt
// must fit max_tokens). Another family is a UserError (a held-out name from the config).
Sample sequential_prompt_for_eval(const RecDataset& dataset, const BpeTokenizer& tokenizer,
                                  const PromptTemplate& tmpl, int64_t user,
                                  std::span<const int32_t> history, const RenderOptions& render,
                                  bool positions_2d, int32_t max_tokens);

}  // namespace reclm
