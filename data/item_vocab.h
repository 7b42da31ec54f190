// `reclm prepare`, step 2: the vocabulary of a dataset — a byte-level BPE tokenizer (GPT-2's, or
// one learned from the item text), the 8 specials, one token per item and one per attribute —
// and every item title tokenized (DESIGN.md §1 "items as entities").
#pragma once

#include <cstdint>
#include <string>

#include "data/bpe_tokenizer.h"
#include "data/rec_dataset.h"

namespace reclm {

struct VocabOptions {
  // A directory with tokenizer.json or encoder.json + vocab.bpe (e.g. GPT-2's). Empty: learn a BPE
  // vocabulary from the item titles (and attribute names) with `learned_vocab_size` base tokens.
  std::string tokenizer_dir;
  int32_t learned_vocab_size = 2048;
};

// Builds the tokenizer, appends <item_i> for every item and <attr_j> for every attribute, fills
// dataset.items.title_offsets/title_tokens, dataset.vocab, dataset.tokenizer_json and
// dataset.tokenizer_fingerprint. Returns the tokenizer (with the added tokens).
//
// Layout (data/rec_dataset.h VocabLayout): text_size = special_first = the id of [PAD]; the 8
// specials follow in kSpecialTokens order, then the items, then the attributes, ending the
// vocabulary. A tokenizer directory reclm exported (tokenizer.json already carrying the item and
// attribute tokens) is reused when its counts match the catalog; other counts, or a tokenizer file
// whose added tokens break this layout, are a UserError naming the directory. tokenizer_json is
// BpeTokenizer::to_hf_json() (deterministic), tokenizer_fingerprint = XXH64(tokenizer_json, 0).
BpeTokenizer build_item_vocabulary(RecDataset& dataset, const VocabOptions& options);

// The tokenizer stored in a dataset (parsed from tokenizer_json). A fingerprint that does not
// match tokenizer_json, JSON that does not parse, or a tokenizer whose layout differs from
// dataset.vocab or whose item/attribute counts differ from the catalog is a UserError naming
// dataset.source.
BpeTokenizer dataset_tokenizer(const RecDataset& dataset);

}  // namespace reclm
