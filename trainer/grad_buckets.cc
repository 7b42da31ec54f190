#include "trainer/grad_buckets.h"

#include <algorithm>

#include "runtime/errors.h"
#include "runtime/timer.h"

namespace reclm {

namespace {

// Ranges this close (in floats) are merged: only alignment padding (64 bytes) lies between.
constexpr int64_t kMergeGap = 16;

struct Segment {
  int stage;
  int64_t offset;
  int64_t count;
};

void close_bucket(GradBucket& bucket, std::vector<GradBucket>& buckets) {
  std::sort(bucket.ranges.begin(), bucket.ranges.end(),
            [](const GradBucket::Range& a, const GradBucket::Range& b) { return a.offset < b.offset; });
  std::vector<GradBucket::Range> merged;
  for (const GradBucket::Range& r : bucket.ranges) {
    if (!merged.empty() && r.offset - (merged.back().offset + merged.back().count) < kMergeGap) {
      merged.back().count = r.offset + r.count - merged.back().offset;
    } else {
      merged.push_back(r);
    }
  }
  bucket.ranges = std::move(merged);
  bucket.floats = 0;
  for (const GradBucket::Range& r : bucket.ranges) bucket.floats += r.count;
  buckets.push_back(std::move(bucket));
  bucket = GradBucket{};
}

}  // namespace

std::vector<GradBucket> make_grad_buckets(const ParamLayout& layout, int64_t n_layers,
                                          int64_t bucket_floats) {
  RECLM_CHECK(bucket_floats >= 1, "gradient buckets of {} floats", bucket_floats);
  std::vector<Segment> segments;
  for (const ParamEntry& e : layout.entries()) {
    if (e.frozen() || e.sharded_rows) continue;  // sharded rows: complete, never reduced
    segments.push_back({backward_stage(e.name, n_layers), e.offset + e.train_begin,
                        e.train_end - e.train_begin});
  }
  // Backward order: by stage, and within a stage from the end of the buffer (the order in which
  // a layer's tensors finish does not matter, they are all final at the stage).
  std::stable_sort(segments.begin(), segments.end(), [](const Segment& a, const Segment& b) {
    return a.stage != b.stage ? a.stage < b.stage : a.offset > b.offset;
  });
  std::vector<GradBucket> buckets;
  GradBucket open;
  int64_t open_floats = 0;
  for (const Segment& s : segments) {
    open.ranges.push_back({s.offset, s.count});
    open.stage = std::max(open.stage, s.stage);
    open_floats += s.count;
    if (open_floats >= bucket_floats) {
      close_bucket(open, buckets);
      open_floats = 0;
    }
  }
  if (!open.ranges.empty()) close_bucket(open, buckets);
  return buckets;
}

GradientBuckets::GradientBuckets(const ParamLayout& layout, int64_t n_layers, Communicator& comm,
                                 int64_t bucket_floats)
    : comm_(comm), buckets_(make_grad_buckets(layout, n_layers, bucket_floats)) {}

BackwardHook GradientBuckets::hook(float* grads) {
  return [this, grads](int stage) {
    if (stage != kBackwardPoll) start_ready(grads, stage);
    poll();
  };
}

void GradientBuckets::start_ready(float* grads, int stage) {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].stage <= stage) {
    for (const GradBucket::Range& r : buckets_[next_bucket_].ranges) {
      const int ticket = comm_.start_all_reduce(grads + r.offset, r.count, ReduceOp::kSum);
      started_.push_back({ticket, r.count, false});
    }
    ++next_bucket_;
  }
}

// MPI completes collectives roughly in start order; testing the oldest running one advances all.
void GradientBuckets::poll() {
  while (oldest_running_ < started_.size()) {
    Started& s = started_[oldest_running_];
    if (!comm_.test_started(s.ticket)) return;
    s.done = true;
    ++oldest_running_;
  }
}

OverlapStats GradientBuckets::finish(float* grads) {
  OverlapStats stats;
  stats.buckets = static_cast<int>(buckets_.size());
  for (Started& s : started_) {  // one look at each before waiting
    if (!s.done) s.done = comm_.test_started(s.ticket);
    if (s.done) stats.floats_done_in_backward += s.floats;
  }
  Stopwatch waiting;
  start_ready(grads, INT32_MAX);
  comm_.wait_started();
  stats.wait_seconds = waiting.seconds();
  for (const GradBucket& b : buckets_) stats.floats += b.floats;
  started_.clear();
  next_bucket_ = 0;
  oldest_running_ = 0;
  return stats;
}

}  // namespace reclm
