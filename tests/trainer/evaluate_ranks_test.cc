// Evaluation split across ranks (trainer/evaluator.h): N ranks, played here by N threads sharing
// an in-memory all-reduce, each return the identical report, bitwise equal to the one-process
// report, in item-score and beam-search mode, for rank counts above and below the batch count.
// The real MPI path is tests/mpi/eval_mpi.sh.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <thread>

// GCC 12 reports a false -Wrestrict in std::string's operator+ (GCC bug 105329) when it inlines
// the dataset helpers into this file; the helpers are correct.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#include "eval_test_util.h"
#pragma GCC diagnostic pop
#include "runtime/comm/communicator.h"
#include "trainer/evaluator.h"

namespace reclm {
namespace {

// What ranks of one job share: a barrier, each rank's buffer, and a count of the values reduced.
struct ThreadJob {
  explicit ThreadJob(int n) : size(n), sync(n), buffers(n) {}
  int size;
  std::barrier<> sync;
  std::vector<double*> buffers;
  std::atomic<int64_t> values_reduced{0};  // by rank 0's calls
};

// A rank of a ThreadJob. all_reduce(double, sum) adds the ranks' buffers in rank order; evaluate
// needs nothing else, so every other collective fails the test.
class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadJob& job, int rank) : job_(job), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return job_.size; }
  int local_rank() const override { return rank_; }
  std::string describe() const override { return "threads"; }

  void all_reduce(double* data, int64_t n, ReduceOp op) override {
    if (op != ReduceOp::kSum) throw std::logic_error("evaluate reduces sums only");
    job_.buffers[rank_] = data;
    job_.sync.arrive_and_wait();  // every rank's buffer is known
    std::vector<double> sum(n, 0.0);
    for (const double* buffer : job_.buffers) {
      for (int64_t i = 0; i < n; ++i) sum[i] += buffer[i];
    }
    job_.sync.arrive_and_wait();  // everyone has read every buffer before any is overwritten
    std::memcpy(data, sum.data(), n * sizeof(double));
    if (rank_ == 0) job_.values_reduced += n;
  }
  void all_reduce(float*, int64_t, ReduceOp) override { unused("all_reduce(float)"); }
  void reduce_scatter(const float*, float*, int64_t, ReduceOp) override { unused("reduce_scatter"); }
  void all_gather(const float*, float*, int64_t) override { unused("all_gather"); }
  void broadcast(void*, int64_t, int) override { unused("broadcast"); }
  void barrier() override { unused("barrier"); }
  [[noreturn]] void abort(int, const std::string& message) override {
    throw std::runtime_error("abort: " + message);
  }

 private:
  [[noreturn]] static void unused(const char* what) {
    throw std::logic_error(std::string("evaluate called ") + what);
  }
  ThreadJob& job_;
  int rank_;
};

struct JobResult {
  std::vector<EvalReport> reports;  // one per rank
  int64_t values_reduced = 0;
};

// `ranks` threads, each with its own copy of `model` (a forward writes the model's arena).
JobResult evaluate_on_threads(const Model& model, const RecDataset& dataset,
                              const InferenceSetup& setup, const EvalOptions& options, int ranks) {
  ThreadJob job(ranks);
  std::vector<Model> models;
  for (int r = 0; r < ranks; ++r) {
    models.push_back(test::copy_with_arena(model, model.acts.max_tokens));
  }
  JobResult result;
  result.reports.resize(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(job, r);
      try {
        result.reports[r] = evaluate(models[r], dataset, setup, options, &comm);
      } catch (const std::exception& e) {
        // The other ranks would wait at the barrier for ever: fail the whole test binary now.
        std::fprintf(stderr, "rank %d of %d: %s\n", r, ranks, e.what());
        std::abort();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  result.values_reduced = job.values_reduced;
  return result;
}

// Bitwise: the multi-rank report must be the one-process report, not merely close to it.
void expect_identical(const RankingResult& a, const RankingResult& b, const std::string& what) {
  EXPECT_EQ(a.n_users, b.n_users) << what;
  ASSERT_EQ(a.at_k.size(), b.at_k.size()) << what;
  for (size_t i = 0; i < a.at_k.size(); ++i) {
    EXPECT_EQ(a.at_k[i].k, b.at_k[i].k) << what;
    EXPECT_EQ(a.at_k[i].hit_rate, b.at_k[i].hit_rate) << what << " HR@" << a.at_k[i].k;
    EXPECT_EQ(a.at_k[i].ndcg, b.at_k[i].ndcg) << what << " NDCG@" << a.at_k[i].k;
  }
  EXPECT_EQ(a.mrr, b.mrr) << what;
}

void expect_job_equals_one_process(const Model& model, const RecDataset& dataset,
                                   const InferenceSetup& setup, const EvalOptions& options,
                                   const std::string& what) {
  Model single_model = test::copy_with_arena(model, model.acts.max_tokens);
  const EvalReport single = evaluate(single_model, dataset, setup, options);
  ASSERT_GT(single.n_users, 0);
  for (const int ranks : {2, 3, 5}) {
    const JobResult job = evaluate_on_threads(model, dataset, setup, options, ranks);
    // The ranks combined their users through the communicator (model and popularity rank each).
    EXPECT_EQ(job.values_reduced, 2 * single.n_users) << what << ", " << ranks << " ranks";
    for (int r = 0; r < ranks; ++r) {
      const std::string where = what + fmt::format(", {} ranks, rank {}", ranks, r);
      const EvalReport& report = job.reports[r];
      EXPECT_EQ(report.n_users, single.n_users) << where;
      EXPECT_EQ(report.mode, single.mode) << where;
      EXPECT_EQ(report.split, single.split) << where;
      expect_identical(report.model, single.model, where + " model");
      expect_identical(report.popularity, single.popularity, where + " popularity");
    }
  }
}

std::vector<int> all_ks(int n) {
  std::vector<int> ks(n);
  std::iota(ks.begin(), ks.end(), 1);
  return ks;  // every cutoff: equal HR@K curves mean equal rank multisets
}

EvalOptions quiet_options(EvalMode mode, int n_items) {
  EvalOptions options;
  options.mode = mode;
  options.ks = all_ks(n_items);
  options.progress = false;
  return options;
}

TEST(EvaluateOnRanks, ItemScoresEqualOneProcessBitwise) {
  const RecDataset dataset = test::random_dataset(30, 40, 11);
  InferenceSetup setup;
  setup.render = {ItemRendering::kId, false};
  setup.max_seq_len = 24;
  const Model model = test::tiny_model(dataset, false, 512, 5);
  EvalOptions options = quiet_options(EvalMode::kItemScores, 30);
  options.users_per_batch = 6;  // several batches per rank, a short last one
  for (const bool exclude : {true, false}) {
    options.exclude_history = exclude;
    expect_job_equals_one_process(model, dataset, setup, options,
                                  exclude ? "history excluded" : "history included");
  }
  options.split = Split::kValidation;
  options.max_users = 9;
  options.users_per_batch = 4;  // 3 batches: with 5 ranks, two ranks score nothing
  expect_job_equals_one_process(model, dataset, setup, options, "validation, 9 users");
}

TEST(EvaluateOnRanks, BeamSearchEqualsOneProcessBitwise) {
  const RecDataset dataset = test::make_dataset(
      test::prefix_titles(), {{0, 3, 6, 1}, {8, 2, 9}, {2, 2, 9, 4, 1}, {5, 7, 3, 0}, {1, 1, 1},
                              {6, 4, 2, 0, 8}, {3, 6, 7, 2}, {4, 0, 5}, {9, 8, 7}});
  InferenceSetup setup;
  setup.render = {ItemRendering::kText, false};
  setup.positions_2d = true;
  setup.max_seq_len = 24;
  const Model model = test::tiny_model(dataset, true, 256, 9);
  EvalOptions options = quiet_options(EvalMode::kBeamSearch, 10);
  options.beam_size = 3;  // narrow: some targets are not found and rank last
  options.users_per_batch = 2;
  expect_job_equals_one_process(model, dataset, setup, options, "beam search");
}

}  // namespace
}  // namespace reclm
