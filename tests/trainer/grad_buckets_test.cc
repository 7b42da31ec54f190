// Gradient buckets (trainer/grad_buckets.h) in one process: which values each bucket reduces, and
// that backward starts a bucket only once its gradients are final. The overlapped all-reduce
// across real ranks runs under mpirun in tests/mpi/train_mpi.sh.
#include "trainer/grad_buckets.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "trainer/model.h"
#include "trainer/random_batch.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

ModelDims dims_of(bool tied, bool lora) {
  ModelDims d = test::tiny_model_dims({.tied = tied});
  if (lora) {
    d.lora_rank = 2;
    d.lora_alpha = 8.0f;
    d.lora_targets = kAllLoraTargets;
    d.first_new_token = 30;
  }
  return d;
}

std::string describe(const ModelDims& d) {
  return std::string(d.tied ? "tied" : "untied") + (d.has_lora() ? " LoRA" : "");
}

// One rank whose started all-reduces copy the values they were given at the moment they start,
// and complete after `tests_to_complete` calls of test_started (of any ticket: as with MPI,
// every test moves every started collective along).
class RecordingCommunicator final : public Communicator {
 public:
  explicit RecordingCommunicator(int tests_to_complete) : tests_to_complete_(tests_to_complete) {}
  struct Start {
    int64_t offset;  // from `base`
    std::vector<float> values;
  };
  const float* base = nullptr;
  std::vector<Start> starts;
  int waits = 0;

  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string describe() const override { return "recording"; }
  void all_reduce(float*, int64_t, ReduceOp) override { ADD_FAILURE() << "blocking all_reduce"; }
  void all_reduce(double*, int64_t, ReduceOp) override { ADD_FAILURE() << "blocking all_reduce"; }
  void reduce_scatter(const float*, float*, int64_t, ReduceOp) override { ADD_FAILURE(); }
  void all_gather(const float*, float*, int64_t) override { ADD_FAILURE(); }
  void broadcast(void*, int64_t, int) override { ADD_FAILURE(); }
  void barrier() override { ADD_FAILURE(); }
  [[noreturn]] void abort(int, const std::string& message) override {
    throw std::runtime_error(message);
  }
  int start_all_reduce(float* data, int64_t n, ReduceOp op) override {
    EXPECT_EQ(op, ReduceOp::kSum);
    starts.push_back({data - base, std::vector<float>(data, data + n)});
    tests_at_start_.push_back(tests_);
    return static_cast<int>(tests_at_start_.size() - 1);
  }
  bool test_started(int ticket) override {
    return ++tests_ - tests_at_start_.at(static_cast<size_t>(ticket)) >= tests_to_complete_;
  }
  void wait_started() override {
    ++waits;
    tests_at_start_.clear();
  }

 private:
  int tests_to_complete_;
  int64_t tests_ = 0;
  std::vector<int64_t> tests_at_start_;
};

// Every trainable value is in exactly one bucket; anything else a bucket covers is alignment
// padding or a frozen value of a tensor finished by then; buckets come in backward order and
// each but the last holds at least bucket_floats values.
TEST(GradBuckets, EveryTrainableValueOnceInBackwardOrder) {
  for (const ModelDims& dims : {dims_of(true, false), dims_of(false, false), dims_of(true, true)}) {
    const ParamLayout layout(dims);
    // owner stage per buffer position (-2: padding), trainable flag
    std::vector<int> stage_at(layout.total_floats(), -2);
    std::vector<bool> trainable(layout.total_floats(), false);
    for (const ParamEntry& e : layout.entries()) {
      for (int64_t j = 0; j < e.numel; ++j) {
        stage_at[e.offset + j] = backward_stage(e.name, dims.n_layers);
        trainable[e.offset + j] = j >= e.train_begin && j < e.train_end;
      }
    }
    for (int64_t bucket_floats : {int64_t{1}, int64_t{97}, int64_t{1000}, int64_t{1} << 40}) {
      SCOPED_TRACE(describe(dims) + ", bucket_floats " + std::to_string(bucket_floats));
      const std::vector<GradBucket> buckets = make_grad_buckets(layout, dims.n_layers, bucket_floats);
      std::vector<int> covered(layout.total_floats(), 0);
      int previous_stage = -1;
      for (size_t b = 0; b < buckets.size(); ++b) {
        const GradBucket& bucket = buckets[b];
        EXPECT_GE(bucket.stage, previous_stage);
        previous_stage = bucket.stage;
        int64_t trainable_in_bucket = 0;
        for (const GradBucket::Range& r : bucket.ranges) {
          for (int64_t i = r.offset; i < r.offset + r.count; ++i) {
            ++covered[i];
            EXPECT_LE(stage_at[i], bucket.stage) << "offset " << i;
            trainable_in_bucket += trainable[i];
          }
        }
        if (b + 1 < buckets.size()) {
          EXPECT_GE(trainable_in_bucket, bucket_floats);
        }
      }
      for (int64_t i = 0; i < layout.total_floats(); ++i) {
        if (trainable[i]) {
          ASSERT_EQ(covered[i], 1) << "offset " << i;
        }
        EXPECT_LE(covered[i], 1) << "offset " << i;
      }
      if (bucket_floats == (int64_t{1} << 40)) {
        EXPECT_EQ(buckets.size(), 1u);
      }
      if (bucket_floats == 1) {  // one bucket per tensor; the embedding finishes last
        EXPECT_EQ(buckets.back().stage, dims.n_layers + 2);
      }
    }
  }
}

// Backward starts each bucket only when its gradients are final: what each all-reduce saw when
// it started equals the finished gradient bitwise. All buckets start before backward returns.
TEST(GradBuckets, BackwardStartsEachBucketWhenItsGradientsAreFinal) {
  for (const ModelDims& dims : {dims_of(true, false), dims_of(false, false), dims_of(true, true)}) {
    SCOPED_TRACE(describe(dims));
    std::mt19937 gen(7);
    const Batch batch = test::random_batch(dims, gen);
    Model model(dims, static_cast<int64_t>(batch.tokens.size()));
    init_weights(model, 11, 0.3f);
    zero_grads(model);
    forward_backward(model, batch, 0.05f);
    const std::vector<float> finished(model.grad_data(), model.grad_data() + model.layout.total_floats());

    RecordingCommunicator comm(/*tests_to_complete=*/2);
    comm.base = model.grad_data();
    GradientBuckets buckets(model.layout, dims.n_layers, comm, /*bucket_floats=*/150);
    ASSERT_GT(buckets.buckets().size(), 4u);
    zero_grads(model);
    forward_backward(model, batch, 0.05f, buckets.hook(model.grad_data()));
    size_t ranges = 0;
    for (const GradBucket& b : buckets.buckets()) ranges += b.ranges.size();
    ASSERT_EQ(comm.starts.size(), ranges) << "every bucket starts during backward";
    for (const RecordingCommunicator::Start& s : comm.starts) {
      for (size_t j = 0; j < s.values.size(); ++j) {
        ASSERT_EQ(s.values[j], finished[s.offset + j]) << "offset " << s.offset + j;
      }
    }
    const OverlapStats stats = buckets.finish(model.grad_data());
    EXPECT_EQ(comm.waits, 1);
    EXPECT_EQ(stats.buckets, static_cast<int>(buckets.buckets().size()));
    int64_t floats = 0;
    for (const GradBucket& b : buckets.buckets()) floats += b.floats;
    EXPECT_EQ(stats.floats, floats);
    // Every start is followed by at least two tests (a poll, then finish's look at each ticket),
    // so everything completed before finish() waited.
    EXPECT_EQ(stats.floats_done_in_backward, floats);
    EXPECT_DOUBLE_EQ(stats.overlap(), 1.0);
  }
}

// Without the hook (a micro-batch that only accumulates), finish starts every bucket itself and
// reports no overlap; collectives that never completed during backward count as exposed.
TEST(GradBuckets, FinishStartsWhatBackwardDidNot) {
  const ModelDims dims = dims_of(false, false);
  std::mt19937 gen(3);
  const Batch batch = test::random_batch(dims, gen);
  Model model(dims, static_cast<int64_t>(batch.tokens.size()));
  init_weights(model, 5, 0.3f);
  RecordingCommunicator comm(/*tests_to_complete=*/1000);
  comm.base = model.grad_data();
  GradientBuckets buckets(model.layout, dims.n_layers, comm, 150);
  zero_grads(model);
  forward_backward(model, batch, 0.05f);
  const OverlapStats stats = buckets.finish(model.grad_data());
  size_t ranges = 0;
  for (const GradBucket& b : buckets.buckets()) ranges += b.ranges.size();
  EXPECT_EQ(comm.starts.size(), ranges);
  EXPECT_EQ(stats.floats_done_in_backward, 0);
  EXPECT_DOUBLE_EQ(stats.overlap(), 0.0);
  // The next step starts from ticket 0 again.
  comm.starts.clear();
  zero_grads(model);
  forward_backward(model, batch, 0.05f, buckets.hook(model.grad_data()));
  EXPECT_EQ(comm.starts.size(), ranges);
  buckets.finish(model.grad_data());
  EXPECT_EQ(comm.waits, 2);
}

}  // namespace
}  // namespace reclm
