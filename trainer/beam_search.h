// Generative item scoring for text renderings (DESIGN.md §1, Inference): constrained beam search
// over the item trie and title log-likelihood. Both score an item by the same number — the sum of
// its entity tokens' log-probabilities after the history, each a log-softmax over the FULL
// vocabulary (probability the model puts on words that continue no title counts against every
// item) — and both place the entity's tokens at the same positions, so for an item that beam
// search reaches the two scores agree up to float round-off.
//
// Positions of generated tokens (extend_segment): the inter position continues after the
// history's last token (last + 1, last + 2, …, as for an entity inside a training history), and
// with 2D positions the intra position counts 1, 2, 3, … from the entity's first generated token:
// RecSysLLM's dynamic intra rule (count up while a beam continues an entity, restart at 1 on a new
// one — here every beam generates exactly one entity).
//
// Cost: there is no KV cache, so every beam step recomputes the whole forward of every live beam
// (history + generated prefix): about depth × beams × (history + depth) tokens per user, against
// history + beams × depth with a cache. All beams of a batch of users share forwards (packed
// segments up to model.acts.max_tokens). Title likelihood costs n_items × (history + title)
// tokens per user — small catalogs or few users only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/rec_samples.h"
#include "trainer/model.h"
#include "trainer/title_trie.h"

namespace reclm {

// `prompt` (a history_prompt) followed by `generated` tokens at the positions above; no loss.
Sample extend_segment(const Sample& prompt, std::span<const int32_t> generated);

// log p(token | segment tokens [0, position]) under the full-vocabulary softmax at `position`.
struct TokenQuery {
  int32_t segment = 0;
  int32_t position = 0;
  int32_t token = 0;
};

// Answers queries (sorted by (segment, position)) with as few forwards as the arena allows:
// segments are packed in order into batches of at most model.acts.max_tokens tokens (each
// segment must fit alone), and the logits of each distinct (segment, position) are computed once,
// a few rows at a time. Log-softmax in double.
//   returns [queries.size()] log-probabilities
std::vector<double> token_logprobs(Model& model, std::span<const Sample> segments,
                                   std::span<const TokenQuery> queries);

struct ScoredItem {
  int32_t item = -1;
  double logprob = 0;  // sum of the entity tokens' log-probabilities
};

// Constrained beam search, one search per prompt, all searches advancing together.
// Each step extends every live beam by every token its trie node allows, scores the extensions by
// beam score + log p(token), and keeps the best beam_size extensions of each prompt (ties: lower
// node id first, so the result does not depend on evaluation order). A kept extension that ends
// items finishes them with its score (every item ending at that node, so identical sequences tie);
// it stays live while its node has children. The search ends when no beam is live.
// At least min(beam_size, n_items) items finish; with beam_size ≥ n_items every item does.
//   returns per prompt the finished items, best first (ties: lower item id first)
std::vector<std::vector<ScoredItem>> constrained_beam_search(Model& model, const TitleTrie& trie,
                                                             std::span<const Sample> prompts,
                                                             int32_t beam_size);

// Every item's log-likelihood after each prompt: one segment per (prompt, item).
//   returns [prompts.size() · n_items], row-major by prompt
std::vector<double> title_loglikelihoods(Model& model, const ItemTokenSequences& items,
                                         std::span<const Sample> prompts);

}  // namespace reclm
