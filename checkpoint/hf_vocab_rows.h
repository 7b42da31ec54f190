// Vocabulary extension for a Hugging Face import (DESIGN.md §1 "LoRA fine-tuning … with the item
// vocabulary added"): which embedding row of the pretrained model each token of a prepared
// dataset takes, and how the rows a pretrained model never had are initialised.
//
// Rows are matched by token STRING, never by id: the dataset's token t takes the pretrained row
// of the same string in DIR/tokenizer.json (model.vocab plus added_tokens). That covers every
// text token of a dataset prepared with the model's own tokenizer.json, and also the specials,
// item and attribute tokens of a directory `reclm export` wrote. The others are new rows:
//   text token missing from the pretrained vocabulary  mean of the copied text rows (at most 1%
//                                                      of the text tokens may be missing)
//   special ([PAD] … [END])                            mean of the copied text rows
//   <item_i>                                           mean of the rows of item i's title tokens
//                                                      (untitled: mean of the text rows)
//   <attr_j>                                           mean of the rows of its name's tokens
//                                                      (empty name: mean of the text rows)
// The means are taken over the matrix being filled (embed_tokens, or an untied lm_head), so a new
// item's output row is its title's mean output row too. Rows beyond the dataset's vocabulary (a
// model.vocab_size larger than the data's) keep their random initialisation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/rec_dataset.h"

namespace reclm {

// A tokenizer.json's vocabulary: token string → id. model.vocab may be an object (BPE,
// WordPiece, WordLevel) or a list of [piece, score] pairs (Unigram, id = index); added_tokens
// ({"id", "content"}) are included. A missing file, invalid JSON or no readable vocabulary is a
// UserError naming the file.
struct HfVocabulary {
  std::unordered_map<std::string, int64_t> ids;
  std::string source;  // the file, for messages
};
HfVocabulary read_hf_vocabulary(const std::filesystem::path& tokenizer_json);

// Per dataset token: the pretrained row it copies, or -1 for a new row.
struct VocabRowPlan {
  std::vector<int64_t> pretrained_row;  // [dataset vocab_size]
  int64_t copied = 0;                   // rows with pretrained_row >= 0
  int64_t missing_text = 0;             // text tokens without a pretrained row
};

// Matches the dataset's tokens (tokenizer = dataset_tokenizer(dataset)) against `vocab`.
// UserError naming vocab.source when more than 1% of the dataset's text tokens are missing (the
// dataset was prepared with another tokenizer; the message says how to prepare it with this one,
// `model_dir`), or when a matched id is not a row of the pretrained matrix (`pretrained_rows`).
VocabRowPlan plan_vocab_rows(const HfVocabulary& vocab, const BpeTokenizer& tokenizer,
                             const RecDataset& dataset, int64_t pretrained_rows,
                             const std::filesystem::path& model_dir);

struct VocabRowCounts {
  int64_t copied = 0;      // rows copied from the pretrained matrix
  int64_t text_mean = 0;   // specials, missing text tokens, untitled items, unnamed attributes
  int64_t title_mean = 0;  // item rows from their title tokens
  int64_t name_mean = 0;   // attribute rows from their name tokens
};

// Fills rows [0, dataset.vocab.vocab_size) of `ours` [≥ vocab_size, C] from `pretrained`
// [pretrained_rows, C] following `plan`, then initialises the new rows as described at the top.
VocabRowCounts fill_vocab_rows(const VocabRowPlan& plan, std::span<const float> pretrained,
                               int64_t d_model, const RecDataset& dataset,
                               const BpeTokenizer& tokenizer, float* ours);

}  // namespace reclm
