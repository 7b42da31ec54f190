#include "data/byte_tokenizer.h"

#include "runtime/errors.h"

namespace reclm {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) {
    RECLM_CHECK(id >= 0 && id < kVocabSize, "token id {} outside the byte vocabulary", id);
    if (id < kNumBytes) {
      text.push_back(static_cast<char>(id));
    } else {
      text.append(kSpecialTokens[id - kNumBytes]);
    }
  }
  return text;
}

}  // namespace reclm
