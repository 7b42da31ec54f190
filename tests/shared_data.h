// Test helper: where the shared, read-only data (Amazon Beauty, the GPT-2 tokenizer) lives next
// to the repository. It is absent in some checkouts, so tests that read it skip without it.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

namespace reclm {

// The shared data directory (../shared/data next to the source tree).
inline const std::filesystem::path kSharedDataDir =
    std::filesystem::path(RECLM_SOURCE_DIR) / ".." / "shared" / "data";

// GPT-2's encoder.json and vocab.bpe.
inline const std::filesystem::path kGpt2Dir = kSharedDataDir / "tokenizers" / "gpt2";

}  // namespace reclm

// Skips the calling test when the GPT-2 tokenizer files are not there.
#define SKIP_WITHOUT_GPT2()                                                        \
  if (!std::filesystem::exists(::reclm::kGpt2Dir / "encoder.json"))                \
  GTEST_SKIP() << "GPT-2 tokenizer files not found at " << ::reclm::kGpt2Dir.string() \
               << " (../shared/data is absent in this checkout)"
