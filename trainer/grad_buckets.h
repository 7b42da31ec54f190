// Gradient buckets all-reduced while backward runs (DESIGN.md §6, plain data parallelism).
//
// Backward finishes the gradients stage by stage in reverse layout order (model.h: head, final
// norm, layer L−1 … 0, embedding). The trainable gradient ranges are grouped, in that order, into
// buckets of about `bucket_floats` values; a bucket's all-reduce (sum) is started the moment its
// last stage is reached, and backward's poll points (model.h kBackwardPoll) keep the started ones
// moving. After backward, finish() waits for what is still in flight. So the communication of
// the late layers hides behind the backward of the early ones; only the last buckets — the
// embedding, which backward finishes last — are exposed.
//
// Only the last micro-batch of an optimizer step uses the hook: earlier ones only accumulate.
// The reduced buffer equals all_reduce_gradients (data_parallel.h) up to summation order over
// ranks (bitwise with 2 ranks, where a + b is the only order). Every rank builds the same buckets
// from the same layout, so their collectives match.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/comm/communicator.h"
#include "trainer/model.h"

namespace reclm {

// A bucket: ranges of the padded gradient buffer reduced together once backward reached `stage`.
struct GradBucket {
  struct Range {
    int64_t offset;
    int64_t count;
  };
  std::vector<Range> ranges;  // ascending offsets; neighbours closer than 64 bytes are merged
  int stage = 0;              // the last backward stage any of its values depends on
  int64_t floats = 0;         // Σ range counts
};

// The buckets of a layout: every trainable value exactly once (frozen LoRA weights skipped, and
// the item rows of vocabulary parallelism, whose gradient is complete on its rank; the alignment
// padding between merged ranges rides along, it is zero), in backward order, each closed once it
// holds ≥ bucket_floats values (the last may hold fewer).
std::vector<GradBucket> make_grad_buckets(const ParamLayout& layout, int64_t n_layers,
                                          int64_t bucket_floats);

// One optimizer step's overlap, for the metrics log.
struct OverlapStats {
  int buckets = 0;
  int64_t floats = 0;
  int64_t floats_done_in_backward = 0;  // reduced before backward returned
  double wait_seconds = 0.0;            // blocked in finish(): the exposed communication
  double overlap() const { return floats > 0 ? double(floats_done_in_backward) / floats : 0.0; }
};

class GradientBuckets {
 public:
  GradientBuckets(const ParamLayout& layout, int64_t n_layers, Communicator& comm,
                  int64_t bucket_floats);

  const std::vector<GradBucket>& buckets() const { return buckets_; }
  // The hook for the last micro-batch's backward into the gradient buffer `grads` (the layout's
  // padded buffer: Model::grad_data(), or the CUDA backend's device copy): starts the buckets
  // whose stage is reached and polls the started ones.
  BackwardHook hook(float* grads);
  // After that backward: starts whatever has not started (a backward without the hook), waits
  // for every bucket, and says how much had finished during backward.
  OverlapStats finish(float* grads);

 private:
  void start_ready(float* grads, int stage);
  void poll();

  Communicator& comm_;
  std::vector<GradBucket> buckets_;
  struct Started {
    int ticket;
    int64_t floats;
    bool done;
  };
  std::vector<Started> started_;  // this step's collectives, in start order
  size_t next_bucket_ = 0;        // buckets_[next_bucket_..] not started yet
  size_t oldest_running_ = 0;     // started_[oldest_running_..] may still be running
};

}  // namespace reclm
