#include "runtime/rng.h"

#include <cmath>

#include "runtime/errors.h"

namespace reclm {

namespace {
// Multipliers and Weyl key increments of Philox-4x32 (Random123).
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  *lo = static_cast<uint32_t>(product);
}
}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c[0], &hi0, &lo0);
    mulhilo(kMul1, c[2], &hi1, &lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

CounterRng::CounterRng(uint64_t seed, RngPurpose purpose, uint64_t step, uint32_t rank,
                       uint64_t sample) {
  RECLM_CHECK(rank < (1u << 16), "rank {} does not fit the counter layout", rank);
  key_ = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  // sample and step are folded to 32 bits by xor of their halves: unique below 2^32, which
  // covers every step count and per-step sample index we use.
  base_ = {0, static_cast<uint32_t>(sample ^ (sample >> 32)),
           static_cast<uint32_t>(step ^ (step >> 32)),
           (static_cast<uint32_t>(purpose) << 16) | rank};
}

uint32_t CounterRng::next_u32() {
  if (used_ == 4) {
    PhiloxCounter counter = base_;
    counter[0] = block_index_++;
    block_ = philox4x32_10(counter, key_);
    used_ = 0;
  }
  return block_[used_++];
}

void CounterRng::seek(uint64_t draw) {
  RECLM_CHECK(draw >> 2 <= 0xFFFFFFFFull, "draw {} is past the stream's 2^34 draws", draw);
  block_index_ = static_cast<uint32_t>(draw >> 2);
  used_ = 4;  // (the block is made at the next draw)
  if (const int word = static_cast<int>(draw & 3); word != 0) {
    next_u32();  // makes block draw / 4 and hands out its word 0
    used_ = word;
  }
}

float CounterRng::uniform() { return static_cast<float>(next_u32() >> 8) * 0x1.0p-24f; }

uint64_t CounterRng::below(uint64_t n) {
  RECLM_CHECK(n > 0, "below(0)");
  const uint64_t draw_range = n <= 0xFFFFFFFFull ? (1ull << 32) : 0;  // 0: use 64-bit draws
  if (draw_range != 0) {
    const uint64_t limit = draw_range - draw_range % n;  // reject the biased tail
    for (;;) {
      const uint64_t x = next_u32();
      if (x < limit) return x % n;
    }
  }
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    const uint64_t x = (static_cast<uint64_t>(next_u32()) << 32) | next_u32();
    if (x < limit) return x % n;
  }
}

double CounterRng::normal() {
  // u1 in (0, 1] so log(u1) is finite.
  const double u1 = (static_cast<double>(next_u32()) + 1.0) * 0x1.0p-32;
  const double u2 = static_cast<double>(next_u32()) * 0x1.0p-32;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace reclm
