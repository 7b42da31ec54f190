// Byte-level tokenizer: every UTF-8 byte is its own token (ids 0..255), followed by the special
// tokens every reclm vocabulary carries. No merges: it exists so a text corpus can train the
// engine before the BPE tokenizer (GPT-2 compatible) of the data pipeline is in place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reclm {

// Special tokens in id order after the 256 bytes (DESIGN.md §1; [MASK]/[sMASK]/[gMASK],
// [START]/[END] serve GLM item infilling).
inline constexpr std::string_view kSpecialTokens[] = {"[PAD]",  "[BOS]",   "[EOS]",   "[MASK]",
                                                      "[sMASK]", "[gMASK]", "[START]", "[END]"};

struct ByteTokenizer {
  static constexpr int32_t kNumBytes = 256;
  static constexpr int32_t kPad = 256;
  static constexpr int32_t kBos = 257;
  static constexpr int32_t kEos = 258;
  static constexpr int32_t kVocabSize = 256 + 8;

  static std::vector<int32_t> encode(std::string_view text);
  // Special tokens decode to their names; ids outside the vocabulary are an internal error.
  static std::string decode(const std::vector<int32_t>& ids);
};

}  // namespace reclm
