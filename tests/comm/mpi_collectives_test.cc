// The MPI Communicator under mpirun (ctest label `mpi`, run by tests/comm/run_mpi.sh):
//
//   mpi_collectives_test collectives [seed]  every collective, odd sizes, fresh random data,
//                                            checked against a reference built from all ranks'
//                                            inputs; exit 0 when all checks pass
//   mpi_collectives_test stall    rank 1 sleeps past the 2 s timeout before a collective
//   mpi_collectives_test throw    rank 2 fails mid-run; main catches it and calls comm->abort(3)
//   mpi_collectives_test unwind   rank 2's exception escapes the communicator's scope
//   mpi_collectives_test kill     rank 1 sends itself SIGKILL mid-run
//
// The fault modes must end the whole job non-zero, promptly, naming the rank (run_mpi.sh checks
// the exit status, the wall time and the message). Each rank's input is a pure function of
// (seed, case, rank), so every rank can rebuild every other rank's input for the reference.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "collective_checks.h"
#include "runtime/comm/communicator.h"
#include "runtime/rng.h"

namespace reclm {
namespace {

const int64_t kSizes[] = {1, 7, 1000003};

using test::Checks;
using test::gathered_inputs;
using test::input;
using test::rank_inputs;
using test::same_on_every_rank;
using test::values_off;

template <typename T>
void check_all_reduce(Communicator& comm, Checks& checks, uint64_t seed, uint64_t& case_id) {
  const int ranks = comm.size();
  for (int64_t n : kSizes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
      ++case_id;
      const auto inputs = rank_inputs<T>(seed, case_id, ranks, n);
      std::vector<T> data = inputs[static_cast<size_t>(comm.rank())];
      comm.all_reduce(data.data(), n, op);
      const int64_t wrong = values_off(data, inputs, 0, op);
      checks.expect(wrong == 0, "all_reduce(%s) %s of %lld: %lld values off the reference",
                    reduce_op_name(op), sizeof(T) == 4 ? "float" : "double", static_cast<long long>(n),
                    static_cast<long long>(wrong));
      checks.expect(same_on_every_rank(comm, data), "all_reduce(%s) of %lld differs from rank 0",
                    reduce_op_name(op), static_cast<long long>(n));
    }
  }
}

void check_reduce_scatter(Communicator& comm, Checks& checks, uint64_t seed, uint64_t& case_id) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  for (int64_t n : kSizes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
      ++case_id;
      const auto inputs = rank_inputs<float>(seed, case_id, ranks, ranks * n);
      std::vector<float> out(static_cast<size_t>(n), 0.0f);
      comm.reduce_scatter(inputs[static_cast<size_t>(rank)].data(), out.data(), n, op);
      const int64_t wrong = values_off(out, inputs, rank * n, op);
      checks.expect(wrong == 0, "reduce_scatter(%s) of %lld per rank: %lld values off", reduce_op_name(op),
                    static_cast<long long>(n), static_cast<long long>(wrong));
    }
  }
}

void check_all_gather(Communicator& comm, Checks& checks, uint64_t seed, uint64_t& case_id) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  for (int64_t n : kSizes) {
    ++case_id;
    const std::vector<float> expected = gathered_inputs(seed, case_id, ranks, n);
    const std::vector<float> mine = input<float>(seed, case_id, rank, n);
    std::vector<float> out(expected.size(), 0.0f);
    comm.all_gather(mine.data(), out.data(), n);
    checks.expect(out == expected, "all_gather of %lld per rank", static_cast<long long>(n));

    // In place: this rank's block already sits in `out`, the rest is stale.
    std::vector<float> in_place(expected.size(), -7.0f);
    std::copy(mine.begin(), mine.end(), in_place.begin() + rank * n);
    comm.all_gather(in_place.data() + rank * n, in_place.data(), n);
    checks.expect(in_place == expected, "in-place all_gather of %lld per rank",
                  static_cast<long long>(n));
  }
}

void check_broadcast(Communicator& comm, Checks& checks, uint64_t seed, uint64_t& case_id) {
  for (int64_t n : kSizes) {
    for (int root = 0; root < comm.size(); ++root) {
      ++case_id;
      const std::vector<float> sent = input<float>(seed, case_id, root, n);
      std::vector<float> data = comm.rank() == root ? sent : std::vector<float>(sent.size(), 9.0f);
      comm.broadcast(data.data(), n * static_cast<int64_t>(sizeof(float)), root);
      checks.expect(data == sent, "broadcast of %lld values from rank %d",
                    static_cast<long long>(n), root);
    }
  }
}

// n floats in host memory, the buffer test::check_started_all_reduce works on.
class HostBuffer {
 public:
  explicit HostBuffer(int64_t n) : values_(static_cast<size_t>(n), std::nanf("")) {}
  float* data() { return values_.data(); }
  void upload(const std::vector<float>& values) { values_ = values; }
  std::vector<float> download() const { return values_; }

 private:
  std::vector<float> values_;
};

int run_collectives(Communicator& comm, const char* seed_arg) {
  Checks checks{comm.rank()};
  const int ranks = comm.size();
  const char* world_size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* local_rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  checks.expect(world_size == nullptr || std::stoi(world_size) == ranks, "size() %d", ranks);
  checks.expect(local_rank == nullptr || std::stoi(local_rank) == comm.local_rank(),
                "local_rank() %d", comm.local_rank());
  const std::string prefix = "mpi: " + std::to_string(ranks) + " ranks (";
  checks.expect(comm.describe().rfind(prefix, 0) == 0, "describe() '%s'", comm.describe().c_str());

  // Fresh data every run; the seed is printed so a failure can be replayed with it.
  uint64_t seed = seed_arg != nullptr ? std::stoull(seed_arg) : std::random_device{}();
  comm.broadcast(&seed, sizeof(seed), 0);
  if (comm.rank() == 0) std::printf("%s, seed %llu\n", comm.describe().c_str(),
                                    static_cast<unsigned long long>(seed));

  const auto start = std::chrono::steady_clock::now();
  uint64_t case_id = 0;
  check_all_reduce<float>(comm, checks, seed, case_id);
  check_all_reduce<double>(comm, checks, seed, case_id);
  check_reduce_scatter(comm, checks, seed, case_id);
  check_all_gather(comm, checks, seed, case_id);
  check_broadcast(comm, checks, seed, case_id);
  test::check_started_all_reduce<HostBuffer>(comm, comm, checks, seed, case_id, kSizes);
  for (int i = 0; i < 3; ++i) comm.barrier();
  float empty = 0.0f;
  comm.all_reduce(&empty, 0, ReduceOp::kSum);  // zero values: a no-op every rank agrees on
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  double totals[2] = {static_cast<double>(checks.run), static_cast<double>(checks.failed)};
  comm.all_reduce(totals, 2, ReduceOp::kSum);
  if (comm.rank() == 0) {
    std::printf("%d ranks: %.0f checks, %.0f failed, %.2f s\n", ranks, totals[0], totals[1],
                seconds);
  }
  return totals[1] == 0 ? 0 : 1;
}

// A few training-like steps; `fail` runs on one rank at step 3 while the others wait in a
// collective.
template <typename Fail>
void steps(Communicator& comm, int failing_rank, Fail fail) {
  for (int step = 0; step < 6; ++step) {
    if (step == 3 && comm.rank() == failing_rank) fail();
    std::vector<float> gradient(1000, 1.0f);
    comm.all_reduce(gradient.data(), static_cast<int64_t>(gradient.size()), ReduceOp::kAvg);
  }
}

}  // namespace
}  // namespace reclm

int main(int argc, char** argv) {
  using namespace reclm;
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "collectives" && mode != "stall" && mode != "throw" && mode != "unwind" &&
      mode != "kill") {
    std::fprintf(stderr, "usage: mpirun -np N %s collectives [seed]|stall|throw|unwind|kill\n",
                 argv[0]);
    return 2;
  }
  CommOptions options;
  options.timeout_s = mode == "stall" ? 2.0 : 60.0;

  if (mode == "unwind") {
    try {
      auto comm = make_communicator(options);
      steps(*comm, 2, [] { throw std::runtime_error("simulated failure on rank 2"); });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "unexpected: the exception reached main: %s\n", e.what());
    }
    return 0;  // the communicator's destructor must have aborted the job before this
  }

  auto comm = make_communicator(options);
  if (comm->size() < 2) {
    std::fprintf(stderr, "%s: run under mpirun -np 2 or more (got %s)\n", argv[0],
                 comm->describe().c_str());
    return 2;
  }
  try {
    if (mode == "collectives") return run_collectives(*comm, argc > 2 ? argv[2] : nullptr);
    if (mode == "stall") {
      comm->barrier();
      if (comm->rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(30));
      float values[7] = {1, 2, 3, 4, 5, 6, 7};
      comm->all_reduce(values, 7, ReduceOp::kSum);
      return 0;
    }
    if (mode == "throw") {
      steps(*comm, 2, [] { throw std::runtime_error("simulated failure at step 3"); });
    } else {  // kill
      steps(*comm, 1, [] { std::raise(SIGKILL); });
    }
  } catch (const std::exception& e) {
    comm->abort(3, e.what());
  }
  return 0;
}
