// The built-in demo corpus: deterministic shopping-story text with structure a small model can
// learn (a vocabulary of product words, users with a favourite category, and items that are
// usually followed by a fixed complementary item). It lets the quickstart and the tests train
// without any download. The recommendation-shaped synthetic dataset (`reclm prepare
// --synthetic`) belongs to the data pipeline; this is plain text for the language-model engine.
#pragma once

#include <cstdint>
#include <string>

namespace reclm {

// About `n_bytes` of text (whole lines; at least one), a pure function of (seed, n_bytes).
std::string synthetic_corpus(uint64_t seed, int64_t n_bytes);

}  // namespace reclm
