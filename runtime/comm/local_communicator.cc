// The single-process Communicator: one rank, so every collective is the identity on its data —
// a sum or max over one rank is that rank's value, an average divides by 1, reduce-scatter and
// all-gather copy the one block. Used without an MPI launcher and in unit tests.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/comm/communicator.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string describe() const override { return "single process"; }

  void all_reduce(float* data, int64_t n, ReduceOp /*op*/) override { check_count(data, n); }
  void all_reduce(double* data, int64_t n, ReduceOp /*op*/) override { check_count(data, n); }

  // in[n] → out[n]. memmove: callers may pass the same buffer.
  void reduce_scatter(const float* in, float* out, int64_t n, ReduceOp /*op*/) override {
    check_count(in, n);
    if (n > 0 && in != out) std::memmove(out, in, static_cast<size_t>(n) * sizeof(float));
  }
  void all_gather(const float* in, float* out, int64_t n) override {
    check_count(in, n);
    if (n > 0 && in != out) std::memmove(out, in, static_cast<size_t>(n) * sizeof(float));
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    check_count(data, bytes);
    RECLM_CHECK(root == 0, "broadcast from root {} in a single-process job", root);
  }
  void barrier() override {}

  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    std::fflush(stderr);
    std::exit(exit_code);
  }

 private:
  static void check_count(const void* data, int64_t n) {
    RECLM_CHECK(n >= 0, "collective over {} values", n);
    RECLM_CHECK(n == 0 || data != nullptr, "collective over {} values of a null buffer", n);
  }
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

}  // namespace reclm
