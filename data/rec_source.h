// The training loader of recommendation data: mixes the objectives of DESIGN.md §1 by configured
// ratios and packs samples into micro-batches (segments back to back, no padding).
//
// Training users: users whose leave-one-out training prefix (split_view kTrain) holds at least 2
// items — one to predict from and one to predict (next-item and prompt samples need both; users
// with exactly 3 items thus only supply validation/test targets). None at all is a UserError.
//
// Determinism and resume: the training users are visited once per epoch in a seeded random order
// (epoch_order in data/history_sampling.h: Fisher–Yates keyed by seed and epoch). Global sample s
// belongs to epoch s / n_train_users and reads user order[s % n_train_users]; its objective,
// history window and prompt template come from CounterRng(seed, kDataSample, epoch, rank=0, s),
// its infilling masks from CounterRng(seed, kMasking, epoch, 0, s). So a batch is a pure function
// of its index: micro-batch `micro` of step `step` on rank `rank` holds global samples
//   first = ((step·grad_accum + micro)·world + rank)·micro_batch,  first … first + micro_batch − 1.
// What holds across world sizes: the ranks of one (step, micro) together hold the samples
// [((step·grad_accum + micro)·world)·micro_batch, + world·micro_batch) in rank order — exactly
// what one rank with micro_batch·world gets. The cursor is rank 0's first sample; restoring it
// reproduces the uninterrupted stream exactly, on any number of ranks whose product with
// micro_batch is unchanged (grad_accum unchanged too).
//
// One sample, in order of draws:
//   1. objective   by the mix ratios (an objective of weight 0 is never chosen)
//   2. window      history_sampling: sample_history_window over the training prefix (RecSysLLM
//                  long/medium/short-term windows of 50/20/5 items at 10/30/60%, ending at a
//                  random point ≥ 2 items in); otherwise the whole training prefix. Every
//                  objective crops to max_seq_len keeping the most recent items.
//   3. the sample  next-item  next_item_sample (loss on items 2…n of the window)
//                  infill     item_infill_sample with the kMasking stream
//                  text LM    text_lm_sample over the titles of the window's items (a user none of
//                             whose items has a title gets a next-item sample instead)
//                  prompt     a uniformly drawn trainable template (not in held_out_prompts; rating
//                             templates only when the dataset has ratings) via prompt_sample, with
//                             the window's last item as the answer and the rest as history
//                             (its rating from dataset.users.ratings when present)
//
// ID-mode softmax: with ID rendering, no attributes (or attributes at title_loss_weight 0: input
// only) and next-item as the only objective, every weighted target is an item token, so train and
// validation batches set class_begin/class_count to the item token range (data/batch.h).
// Otherwise the softmax spans the whole vocabulary.
//
// Validation: val_batch(i) holds users with a validation target, in user order, micro_batch per
// batch and rank — on rank r of world the users (i·world + r)·micro_batch … + micro_batch − 1 —
// wrapping around when there are fewer: next_item_sample(history + [target],
// only_last = true, title_loss_weight), i.e. loss only on the held-out target's tokens, weighted
// as in training. No history sampling.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/rec_dataset.h"
#include "data/infill_objective.h"
#include "data/rec_samples.h"

namespace reclm {

struct ObjectiveMix {  // relative weights; normalised; at least one > 0
  double next_item = 1.0;
  double infill = 0.0;
  double text_lm = 0.0;
  double prompt = 0.0;
};

struct RecSourceOptions {
  RenderOptions render;
  ObjectiveMix mix;
  InfillOptions infill;
  std::vector<std::string> held_out_prompts;  // P5 template names never trained on (checked:
                                              // an unknown name is a UserError)
  bool history_sampling = false;
  float title_loss_weight = 1.0f;  // next-item: weight of an entity's tokens after its <item>  // RecSysLLM windows: long/medium/short-term at 10/30/60%
  int32_t max_seq_len = 256;      // tokens per segment (longest sample)
  int32_t micro_batch = 64;       // samples (segments) per micro-batch
  int32_t grad_accum = 1;
  int32_t val_batches = 8;        // validation micro-batches (validation users in order)
  bool positions_2d = false;
  uint64_t seed = 1234;
  int rank = 0;
  int world = 1;
};

struct LoaderCursor {
  int64_t next_sample = 0;  // global sample index of the next batch's first sample (rank 0)
  int64_t epoch = 0;        // next_sample / training users (informational)
};

class RecSource final : public BatchSource {
 public:
  // Keeps a reference to `dataset`, which must outlive the source. Bad options (mix weights,
  // seq_len, micro_batch, held-out names) and a dataset without training users are UserErrors.
  RecSource(const RecDataset& dataset, RecSourceOptions options);

  Batch train_batch(int64_t step, int micro) const override;
  Batch val_batch(int index) const override;
  int64_t max_batch_tokens() const override;
  int64_t min_vocab_size() const override;
  std::string describe() const override;

  // Where the stream stands before micro-batch `micro` of `step` (what a checkpoint saves):
  // next_sample = ((step·grad_accum + micro)·world)·micro_batch.
  LoaderCursor cursor(int64_t step, int micro) const;
  // This rank's micro-batch at `cursor`: samples from next_sample + rank·micro_batch. Equal to
  // the train_batch the cursor came from.
  Batch batch_at(const LoaderCursor& cursor) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace reclm
