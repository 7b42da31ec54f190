// Counter-based random numbers: Philox-4x32-10 (Salmon et al., SC'11, "Parallel random numbers:
// as easy as 1, 2, 3").
//
// Why counter-based: every random draw is a pure function of (seed, purpose, step, rank, sample,
// index), so masking, shuffling and init are reproducible, resumable from any step without
// replaying a stream, and identical on CPU and GPU (the same function runs in a kernel).
#pragma once

#include <array>
#include <cstdint>

namespace reclm {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// One Philox-4x32 block with 10 rounds: 128 random bits from a 128-bit counter and 64-bit key.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// What a stream is used for; part of the counter so streams never overlap.
enum class RngPurpose : uint32_t {
  kInit = 1,        // weight initialisation
  kDataSample = 2,  // choosing training windows / samples
  kDataCorpus = 3,  // generating the synthetic corpus
  kMasking = 4,     // objective masking (infilling spans)
  kSyntheticRec = 5,  // generating the synthetic recommendation dataset (data/synthetic_rec.h)
  kDataPrepare = 6,   // `reclm prepare`: the item id permutation (data/ingest.h)
  kDropout = 7,       // dropout masks (kernels/cpu/dropout.cc)
  kTest = 100,      // tests
};

// A stream of draws keyed by (seed, purpose, step, rank, sample). Draw k of the stream is word
// k % 4 of philox(counter = {k / 4, sample, step, purpose << 16 | rank}, key = seed).
class CounterRng {
 public:
  CounterRng(uint64_t seed, RngPurpose purpose, uint64_t step = 0, uint32_t rank = 0,
             uint64_t sample = 0);

  uint32_t next_u32();
  // Positions the stream at its draw `draw` (0-based): the next next_u32() returns that draw, as
  // if `draw` draws had been taken. So one stream can be drawn in pieces, in parallel: a normal()
  // takes 2 draws, so a stream's normal j starts at draw 2·j. draw < 2^34.
  void seek(uint64_t draw);
  // Uniform in [0, 1) with 24 random bits (exactly representable in float).
  float uniform();
  // Uniform integer in [0, n) (n > 0), unbiased by rejection.
  uint64_t below(uint64_t n);
  // Standard normal by Box–Muller, in double for accuracy.
  double normal();

 private:
  PhiloxKey key_;
  PhiloxCounter base_;  // words 1..3 fixed; word 0 is the block index
  PhiloxCounter block_{};
  uint32_t block_index_ = 0;
  int used_ = 4;  // words of block_ already handed out
};

}  // namespace reclm
