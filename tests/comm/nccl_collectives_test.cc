// The NCCL Communicator on device buffers (ctest label `gpu`):
//
//   nccl_collectives_test [seed]                  one rank, no launcher needed
//   mpirun -np 2 nccl_collectives_test [seed]     one GPU per rank (local rank % GPUs)
//   nccl_collectives_test join-timeout            rank 0 of 2 whose peer never joins: joining
//                                                 must end the process after the 3 s timeout
//
// Every collective, odd sizes (1, 7, 1000003), fresh random data uploaded to the GPU, outputs
// poisoned (NaN) before the run, results checked against a host reference built from all ranks'
// inputs. Exit 0 when all checks pass. Where this process sees no CUDA device it checks that
// make_nccl_communicator refuses with a UserError, prints "SKIPPED: no CUDA device" and exits 0
// (ctest reports the test as skipped); likewise with more ranks on a node than GPUs.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "collective_checks.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/nccl_communicator.h"
#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm {
namespace {

const int64_t kSizes[] = {1, 7, 1000003};

void cuda_ok(cudaError_t error, const char* call) {
  if (error != cudaSuccess) {
    throw InternalError(std::string(call) + " failed: " + cudaGetErrorString(error));
  }
}

// n values of T in this GPU's memory, poisoned with all-ones bytes (NaN for floats) until
// written.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(int64_t n) : n_(n) {
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&data_), bytes() == 0 ? 1 : bytes()), "cudaMalloc");
    cuda_ok(cudaMemset(data_, 0xFF, bytes()), "cudaMemset");
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return data_; }
  size_t bytes() const { return static_cast<size_t>(n_) * sizeof(T); }
  void upload(const std::vector<T>& values, int64_t offset = 0) {
    cuda_ok(cudaMemcpy(data_ + offset, values.data(), values.size() * sizeof(T),
                       cudaMemcpyHostToDevice),
            "cudaMemcpy to the device");
  }
  std::vector<T> download() const {
    std::vector<T> values(static_cast<size_t>(n_));
    cuda_ok(cudaMemcpy(values.data(), data_, bytes(), cudaMemcpyDeviceToHost),
            "cudaMemcpy to the host");
    return values;
  }

 private:
  T* data_ = nullptr;
  int64_t n_;
};

using test::Checks;
using test::gathered_inputs;
using test::input;
using test::rank_inputs;
using test::same_on_every_rank;
using test::values_off;

// A blocking collective has finished its work on the communicator's stream when it returns.
bool stream_idle(NcclCommunicator& comm) { return cudaStreamQuery(comm.stream()) == cudaSuccess; }

template <typename T>
void check_all_reduce(Communicator& host, NcclCommunicator& comm, Checks& checks, uint64_t seed,
                      uint64_t& case_id) {
  const int ranks = comm.size();
  const char* type = sizeof(T) == 4 ? "float" : "double";
  for (int64_t n : kSizes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
      ++case_id;
      const auto inputs = rank_inputs<T>(seed, case_id, ranks, n);
      DeviceBuffer<T> data(n);
      data.upload(inputs[static_cast<size_t>(comm.rank())]);
      comm.all_reduce(data.data(), n, op);
      checks.expect(stream_idle(comm), "all_reduce returned before its stream drained");
      const std::vector<T> got = data.download();
      const int64_t wrong = values_off(got, inputs, 0, op);
      checks.expect(wrong == 0, "all_reduce(%s) %s of %lld: %lld values off the reference",
                    reduce_op_name(op), type, static_cast<long long>(n), static_cast<long long>(wrong));
      checks.expect(same_on_every_rank(host, got), "all_reduce(%s) %s of %lld differs from rank 0",
                    reduce_op_name(op), type, static_cast<long long>(n));
    }
  }
}

void check_reduce_scatter(NcclCommunicator& comm, Checks& checks, uint64_t seed,
                          uint64_t& case_id) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  for (int64_t n : kSizes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax}) {
      ++case_id;
      const auto inputs = rank_inputs<float>(seed, case_id, ranks, ranks * n);
      DeviceBuffer<float> in(ranks * n);
      DeviceBuffer<float> out(n);
      in.upload(inputs[static_cast<size_t>(rank)]);
      comm.reduce_scatter(in.data(), out.data(), n, op);
      const std::vector<float> got = out.download();
      const int64_t wrong = values_off(got, inputs, rank * n, op);
      checks.expect(wrong == 0, "reduce_scatter(%s) of %lld per rank: %lld values off",
                    reduce_op_name(op), static_cast<long long>(n), static_cast<long long>(wrong));
    }
  }
}

void check_all_gather(NcclCommunicator& comm, Checks& checks, uint64_t seed, uint64_t& case_id) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  for (int64_t n : kSizes) {
    ++case_id;
    const std::vector<float> expected = gathered_inputs(seed, case_id, ranks, n);
    const std::vector<float> mine = input<float>(seed, case_id, rank, n);
    DeviceBuffer<float> in(n);
    DeviceBuffer<float> out(ranks * n);
    in.upload(mine);
    comm.all_gather(in.data(), out.data(), n);
    checks.expect(out.download() == expected, "all_gather of %lld per rank",
                  static_cast<long long>(n));

    // In place: this rank's block already sits in `out`, the rest is poison.
    DeviceBuffer<float> in_place(ranks * n);
    in_place.upload(mine, rank * n);
    comm.all_gather(in_place.data() + rank * n, in_place.data(), n);
    checks.expect(in_place.download() == expected, "in-place all_gather of %lld per rank",
                  static_cast<long long>(n));
  }
}

void check_broadcast(NcclCommunicator& comm, Checks& checks, uint64_t seed, uint64_t& case_id) {
  for (int64_t n : kSizes) {
    for (int root = 0; root < comm.size(); ++root) {
      ++case_id;
      const std::vector<float> sent = input<float>(seed, case_id, root, n);
      DeviceBuffer<float> data(n);
      if (comm.rank() == root) data.upload(sent);
      comm.broadcast(data.data(), n * static_cast<int64_t>(sizeof(float)), root);
      checks.expect(data.download() == sent, "broadcast of %lld values from rank %d",
                    static_cast<long long>(n), root);
    }
  }
}

int run_collectives(Communicator& host, NcclCommunicator& comm, int devices,
                    const char* seed_arg) {
  Checks checks{comm.rank()};
  checks.expect(comm.rank() == host.rank() && comm.size() == host.size() &&
                    comm.local_rank() == host.local_rank(),
                "rank/size/local_rank %d/%d/%d differ from the host communicator's", comm.rank(),
                comm.size(), comm.local_rank());
  checks.expect(comm.device() == host.local_rank() % devices, "bound GPU %d, local rank %d",
                comm.device(), host.local_rank());
  int current = -1;
  cuda_ok(cudaGetDevice(&current), "cudaGetDevice");
  checks.expect(current == comm.device(), "current device %d, bound %d", current, comm.device());
  checks.expect(comm.stream() != nullptr, "stream() is the legacy default stream");
  const std::string prefix = "nccl: " + std::to_string(comm.size()) + " ranks (NCCL ";
  checks.expect(comm.describe().rfind(prefix, 0) == 0, "describe() '%s'", comm.describe().c_str());

  uint64_t seed = seed_arg != nullptr ? std::stoull(seed_arg) : std::random_device{}();
  host.broadcast(&seed, sizeof(seed), 0);
  if (comm.rank() == 0) {
    std::printf("%s, seed %llu\n", comm.describe().c_str(),
                static_cast<unsigned long long>(seed));
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t case_id = 0;
  check_all_reduce<float>(host, comm, checks, seed, case_id);
  check_all_reduce<double>(host, comm, checks, seed, case_id);
  check_reduce_scatter(comm, checks, seed, case_id);
  check_all_gather(comm, checks, seed, case_id);
  check_broadcast(comm, checks, seed, case_id);
  test::check_started_all_reduce<DeviceBuffer<float>>(comm, host, checks, seed, case_id, kSizes);
  for (int i = 0; i < 3; ++i) comm.barrier();
  comm.all_reduce(static_cast<float*>(nullptr), 0, ReduceOp::kSum);  // zero values: a no-op
  checks.expect(stream_idle(comm), "stream busy after the barriers");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  double totals[2] = {static_cast<double>(checks.run), static_cast<double>(checks.failed)};
  host.all_reduce(totals, 2, ReduceOp::kSum);
  if (comm.rank() == 0) {
    std::printf("nccl %d ranks: %.0f checks, %.0f failed, %.2f s\n", comm.size(), totals[0],
                totals[1], seconds);
  }
  return totals[1] == 0 ? 0 : 1;
}

// Without a GPU the factory must refuse with a UserError that says so.
int check_refusal_without_device(Communicator& host, const CommOptions& options,
                                 cudaError_t why) {
  try {
    make_nccl_communicator(host, options);
  } catch (const UserError& e) {
    if (std::string(e.what()).find("no CUDA device") == std::string::npos) {
      std::fprintf(stderr, "FAILED: the UserError does not say 'no CUDA device': %s\n", e.what());
      return 1;
    }
    std::printf("SKIPPED: no CUDA device (%s); make_nccl_communicator refused: %s\n",
                cudaGetErrorString(why), e.what());
    return 0;
  }
  std::fprintf(stderr, "FAILED: make_nccl_communicator gave no UserError without a CUDA device\n");
  return 1;
}

// Claims to be rank 0 of two ranks whose other rank never comes, so joining NCCL must time out;
// abort() ends this process as MPI_Abort would end the job.
class LonelyHost final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  std::string describe() const override { return "rank 0 of 2; rank 1 never comes"; }
  void all_reduce(float*, int64_t, ReduceOp) override {}
  void all_reduce(double*, int64_t, ReduceOp) override {}
  void reduce_scatter(const float*, float*, int64_t, ReduceOp) override {}
  void all_gather(const float*, float*, int64_t) override {}
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    std::fprintf(stderr, "rank 0: %s\n", message.c_str());
    std::fflush(stderr);
    std::_Exit(exit_code);
  }
};

int join_timeout() {
  LonelyHost host;
  CommOptions options;
  options.timeout_s = 3.0;
  const auto start = std::chrono::steady_clock::now();
  auto comm = make_nccl_communicator(host, options);
  std::fprintf(stderr, "FAILED: joined a 2-rank NCCL communicator alone after %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 1;
}

}  // namespace
}  // namespace reclm

int main(int argc, char** argv) {
  using namespace reclm;
  CommOptions options;
  options.timeout_s = 120.0;
  // MPI under mpirun; started plainly, the single-process communicator (no MPI launcher needed).
  auto host = make_communicator(options);
  int devices = 0;
  const cudaError_t count_error = cudaGetDeviceCount(&devices);
  if (count_error != cudaSuccess || devices == 0) {
    return check_refusal_without_device(*host, options, count_error);
  }
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "join-timeout") return join_timeout();
  // Every rank skips together when some node has more ranks than GPUs (NCCL refuses two ranks on
  // one GPU).
  double crowded = host->local_rank() >= devices ? 1.0 : 0.0;
  host->all_reduce(&crowded, 1, ReduceOp::kMax);
  if (crowded > 0) {
    if (host->rank() == 0) {
      std::printf("SKIPPED: %d ranks but some node has fewer CUDA devices (%d here)\n",
                  host->size(), devices);
    }
    return 0;
  }
  try {
    auto comm = make_nccl_communicator(*host, options);
    return run_collectives(*host, *comm, devices, argc > 1 ? argv[1] : nullptr);
  } catch (const std::exception& e) {
    host->abort(1, e.what());
  }
}
