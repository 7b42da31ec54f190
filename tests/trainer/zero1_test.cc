// ZeRO-1 shard math (trainer/zero1.h) in one process: the ranks are simulated by calling the
// shard functions for each rank and combining what the collectives would move. The collectives
// themselves run under mpirun in tests/mpi/train_mpi.sh.
#include "trainer/zero1.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/ops.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

ModelDims plain_dims() { return test::tiny_model_dims({.tied = false}); }

ModelDims lora_dims() {
  ModelDims d = test::tiny_model_dims({.tied = true});
  d.lora_rank = 2;
  d.lora_alpha = 8.0f;
  d.lora_targets = kAllLoraTargets;
  d.first_new_token = 30;  // rows 30..36 of the tiny vocabulary train
  return d;
}

// Padded offsets of the trainable values, in canonical order.
std::vector<int64_t> trainable_offsets(const ParamLayout& layout) {
  std::vector<int64_t> out;
  for (const ParamEntry& e : layout.entries())
    for (int64_t j = e.train_begin; j < e.train_end; ++j) out.push_back(e.offset + j);
  return out;
}

// The shards of every world size tile the canonical order, and their segments list each
// trainable value exactly once, in canonical order, with moments at its canonical index.
TEST(Zero1, ShardSegmentsTileTheTrainableValues) {
  for (const ModelDims& dims : {plain_dims(), lora_dims()}) {
    const ParamLayout layout(dims);
    const std::vector<int64_t> expected = trainable_offsets(layout);
    ASSERT_EQ(static_cast<int64_t>(expected.size()), layout.num_trainable());
    for (int world = 1; world <= 5; ++world) {
      std::vector<int64_t> seen;
      int64_t next_begin = 0;
      for (int rank = 0; rank < world; ++rank) {
        const CanonicalRange shard = zero1_shard_range(layout, rank, world);
        EXPECT_EQ(shard.begin, next_begin);
        EXPECT_LE(shard.size(), layout.num_parameters() / world + 1);
        next_begin = shard.end;
        for (const UpdateSegment& s : shard_update_segments(layout, shard)) {
          EXPECT_GE(s.moment_offset, 0);
          EXPECT_LE(s.moment_offset + s.count, shard.size());
          for (int64_t j = 0; j < s.count; ++j) seen.push_back(s.param_offset + j);
        }
      }
      EXPECT_EQ(next_begin, layout.num_parameters()) << "world " << world;
      EXPECT_EQ(seen, expected) << "world " << world << (dims.has_lora() ? " (LoRA)" : "");
    }
    // One shard of one rank is the whole layout: the same values as plain AdamW's segments.
    std::vector<int64_t> whole;
    for (const UpdateSegment& s : layout_update_segments(layout))
      for (int64_t j = 0; j < s.count; ++j) whole.push_back(s.param_offset + j);
    EXPECT_EQ(whole, expected);
  }
}

// Pack then unpack restores exactly the segment values and touches nothing else.
TEST(Zero1, PackUnpackRoundTrip) {
  const ParamLayout layout(lora_dims());
  const CanonicalRange shard = zero1_shard_range(layout, 1, 3);
  const std::vector<UpdateSegment> segments = shard_update_segments(layout, shard);
  std::vector<float> buffer(layout.total_floats());
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<float>(i) * 0.5f;
  std::vector<float> packed(segment_values(segments));
  pack_segments(segments, buffer.data(), packed.data());
  std::vector<float> target(layout.total_floats(), -1.0f);
  unpack_segments(segments, packed.data(), target.data());
  int64_t written = 0;
  for (size_t i = 0; i < buffer.size(); ++i) {
    if (target[i] != -1.0f) {
      EXPECT_EQ(target[i], buffer[i]);
      ++written;
    }
  }
  EXPECT_EQ(written, segment_values(segments));
}

// The simulated ZeRO-1 step (summed gradients per shard, per-shard sum of squares added up,
// sharded AdamW per rank, all-gather) equals plain data parallelism: bitwise parameters without
// clipping, the same grad norm up to summation order, and moments equal to plain AdamW's at the
// shard's canonical positions (frozen LoRA values: untouched weights, zero moments).
TEST(Zero1, SimulatedStepsEqualPlainDataParallel) {
  for (const ModelDims& dims : {plain_dims(), lora_dims()}) {
    for (int world : {2, 3}) {
      config::OptimConfig optim;
      optim.set_grad_clip(0.0f);  // clipping scales by the norm, whose summation order differs
      optim.set_decay_norms(true);
      optim.set_decay_embeddings(true);
      Model plain(dims, 8);
      init_weights(plain, 5, 0.2f);
      const std::vector<float> initial(plain.param_data(),
                                       plain.param_data() + plain.layout.total_floats());
      const ParamLayout& layout = plain.layout;
      AdamW plain_adamw(layout, optim);
      std::vector<std::unique_ptr<Model>> ranks;
      std::vector<AdamW> sharded;
      std::vector<std::vector<UpdateSegment>> segments;
      for (int r = 0; r < world; ++r) {
        ranks.push_back(std::make_unique<Model>(dims, 8));
        std::copy(initial.begin(), initial.end(), ranks.back()->param_data());
        sharded.emplace_back(layout, optim, zero1_shard_range(layout, r, world));
        segments.push_back(shard_update_segments(layout, zero1_shard_range(layout, r, world)));
      }
      std::mt19937 gen(world);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (int step = 0; step < 3; ++step) {
        // Each rank's own gradient; plain data parallelism sums them in rank order.
        std::vector<std::vector<float>> grads(world, std::vector<float>(layout.total_floats(), 0.0f));
        for (auto& g : grads)
          for (int64_t at : trainable_offsets(layout)) g[at] = normal(gen);
        zero_grads(plain);
        for (int r = 0; r < world; ++r)
          for (int64_t i = 0; i < layout.total_floats(); ++i) plain.grad_data()[i] += grads[r][i];
        const double plain_norm = AdamW::grad_norm(plain);
        plain_adamw.step(plain, 1e-2f, 1.0f);

        // ZeRO-1: rank r holds the summed gradient of its shard (the reduce-scatter).
        double sum_of_squares = 0.0;
        for (int r = 0; r < world; ++r) {
          Model& model = *ranks[r];
          std::copy(grads[r].begin(), grads[r].end(), model.grad_data());
          std::vector<float> block(segment_values(segments[r]), 0.0f), piece(block.size());
          for (int from = 0; from < world; ++from) {
            pack_segments(segments[r], grads[from].data(), piece.data());
            for (size_t i = 0; i < block.size(); ++i) block[i] += piece[i];
          }
          unpack_segments(segments[r], block.data(), model.grad_data());
          for (const UpdateSegment& s : segments[r])
            sum_of_squares += ops::sum_of_squares(model.grad_data() + s.param_offset, s.count);
        }
        EXPECT_NEAR(std::sqrt(sum_of_squares), plain_norm, 1e-12 * plain_norm);
        for (int r = 0; r < world; ++r) sharded[r].step(*ranks[r], 1e-2f, 1.0f);
        // The all-gather: every rank takes each owner's updated values.
        for (int owner = 0; owner < world; ++owner) {
          std::vector<float> values(segment_values(segments[owner]));
          pack_segments(segments[owner], ranks[owner]->param_data(), values.data());
          for (int r = 0; r < world; ++r)
            unpack_segments(segments[owner], values.data(), ranks[r]->param_data());
        }
      }
      for (int r = 0; r < world; ++r) {
        int64_t differ = 0;
        for (int64_t i = 0; i < layout.total_floats(); ++i)
          differ += ranks[r]->param_data()[i] != plain.param_data()[i];
        EXPECT_EQ(differ, 0) << "rank " << r << " of " << world << (dims.has_lora() ? " (LoRA)" : "");
        // Moments: the shard's canonical slice of plain AdamW's.
        const CanonicalRange shard = sharded[r].shard();
        EXPECT_EQ(sharded[r].moment_floats(), shard.size());
        std::vector<float> expected(shard.size(), 0.0f);
        int64_t canonical = 0;
        for (const ParamEntry& e : layout.entries()) {
          for (int64_t j = 0; j < e.numel; ++j, ++canonical) {
            if (canonical >= shard.begin && canonical < shard.end)
              expected[canonical - shard.begin] = plain_adamw.second_moment()[e.offset + j];
          }
        }
        const std::vector<float> got(sharded[r].second_moment(),
                                     sharded[r].second_moment() + shard.size());
        EXPECT_EQ(got, expected) << "rank " << r << " of " << world;
        EXPECT_EQ(sharded[r].steps_taken(), 3);
      }
      // Sanity: the steps did move the weights.
      int64_t moved = 0;
      for (int64_t i = 0; i < layout.total_floats(); ++i) moved += plain.param_data()[i] != initial[i];
      EXPECT_EQ(moved, layout.num_trainable());
    }
  }
}

}  // namespace
}  // namespace reclm
