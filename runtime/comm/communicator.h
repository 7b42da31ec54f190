// Collective communication between the ranks of one job (DESIGN.md §6): one interface, with a
// single-process implementation (no MPI needed) and an MPI one over host buffers (NCCL over device
// buffers comes with the CUDA trainer). Launched by `mpirun -np N`, every rank makes the MPI one;
// started plainly, the program is one rank and needs no MPI launcher.
//
// Every collective is called by all ranks in the same order with the same sizes. A collective that
// has not completed within `timeout_s` (a peer stalled, deadlocked or died without the launcher
// noticing) ends the whole job: the rank prints which collective timed out after how long and
// aborts every rank (MPI_Abort) — a job never hangs.
//
// Failures: an MPI error throws InternalError("rank R: MPI_Iallreduce (all_reduce(sum)) failed:
// <MPI's reason>"). A rank that fails on its own (its own exception, bad input only it reads)
// must end the job with abort(), not by returning from main: the MPI communicator finalizes MPI
// when destroyed, and MPI_Finalize waits for ranks that are still waiting in a collective for
// this one. As a safety net, an MPI communicator destroyed while an exception unwinds, or after an
// MPI error, aborts the whole job (exit 1) instead of finalizing.
//
// Threads: call it from one thread at a time (MPI_THREAD_SERIALIZED); buffers are host memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace reclm {

enum class ReduceOp { kSum, kAvg, kMax };
// "sum", "avg", "max": for messages ("all_reduce(sum) of 7 values").
const char* reduce_op_name(ReduceOp op);

struct CommOptions {
  double timeout_s = 600.0;  // per collective; runtime.comm_timeout_s
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank among the processes of this node (GPU binding); 0 for a single process.
  virtual int local_rank() const = 0;
  // "mpi: 3 ranks (Open MPI v4.1.4), this is rank 1 on node-a" / "single process".
  virtual std::string describe() const = 0;

  // In place over all ranks: data[n] ← op(data of every rank). kAvg divides the sum by size().
  // The result is the same on every rank (bitwise).
  virtual void all_reduce(float* data, int64_t n, ReduceOp op) = 0;
  virtual void all_reduce(double* data, int64_t n, ReduceOp op) = 0;
  // in[size()·n] on every rank; out[n] on rank r ← op over ranks of in[r·n, (r+1)·n).
  // `in` and `out` do not overlap.
  virtual void reduce_scatter(const float* in, float* out, int64_t n, ReduceOp op) = 0;
  // in[n] on every rank; out[size()·n] ← the ranks' `in` in rank order. In place when `in` is
  // this rank's block of `out` (in == out + rank()·n); otherwise they do not overlap.
  virtual void all_gather(const float* in, float* out, int64_t n) = 0;
  // bytes from `root` to every rank.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Started all-reduces, for overlapping communication with computation (gradient buckets
  // during backward, trainer/grad_buckets.h). start_all_reduce begins data[n] ← op over ranks
  // and returns with a ticket: 0, 1, 2, ... counted since the last wait_started(). `data` must
  // not be read or written until that ticket is done. Every rank starts the same all-reduces in
  // the same order. n ≤ 2^30. The defaults here run the all-reduce at once (blocking), which is
  // correct for any communicator but overlaps nothing; MPI and NCCL start it non-blocking.
  virtual int start_all_reduce(float* data, int64_t n, ReduceOp op) {
    all_reduce(data, n, op);
    return blocking_started_++;
  }
  // Lets the started collectives advance without blocking (MPI moves a non-blocking collective
  // along only inside MPI calls, so the caller polls between pieces of work) and says whether
  // `ticket` has completed.
  virtual bool test_started(int /*ticket*/) { return true; }
  // Blocks until every started all-reduce has completed — with the timeout and abort of the
  // blocking collectives — then tickets count from 0 again.
  virtual void wait_started() { blocking_started_ = 0; }

  // Ends every rank of the job with `exit_code` after printing "rank R: message" (stderr).
  // For a single process: prints and exits.
  [[noreturn]] virtual void abort(int exit_code, const std::string& message) = 0;

 private:
  int blocking_started_ = 0;  // tickets of the default start_all_reduce
};

// The communicator of this process: MPI when started by an MPI launcher (OMPI_COMM_WORLD_SIZE,
// PMI_SIZE or PMIX_RANK in the environment) and this build has MPI, else the single-process one.
// Launched by mpirun in a build without MPI: UserError saying so. Created once per process; MPI
// is finalized when the returned object is destroyed.
std::unique_ptr<Communicator> make_communicator(const CommOptions& options = {});

// Runs `body` (a command's work on every rank). An exception on one rank must end the whole job
// at once — its peers would otherwise wait in their next collective until the timeout — so with
// more than one rank it prints "rank R: error: ..." and aborts every rank with the exit code of
// its kind (UserError 2, anything else 1). With one rank the exception propagates unchanged.
void run_or_abort_job(Communicator& comm, const std::function<void()>& body);

// The single-process communicator (tests, and runs without a launcher).
std::unique_ptr<Communicator> make_local_communicator();

}  // namespace reclm
