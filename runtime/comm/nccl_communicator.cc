// The NCCL Communicator over device buffers (nccl_communicator.h).
//
// Never a hang: the NCCL communicator is non-blocking (ncclConfig_t::blocking = 0), so joining
// it and enqueueing a collective return at once (possibly ncclInProgress), and wait() polls
// ncclCommGetAsyncError and cudaStreamQuery until the work is done, an error shows, or
// CommOptions::timeout_s passes — then the rank names the collective, aborts NCCL and ends the
// job through the host communicator (MPI_Abort). NCCL's own blocking mode would wait forever for
// a dead peer inside ncclCommInitRank or a kernel that never completes.
#include "runtime/comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "runtime/comm/poll_with_timeout.h"
#include "runtime/errors.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "reclm needs NCCL >= 2.14 (non-blocking communicators, ncclAvg, ncclGetLastError)"
#endif

namespace reclm {
namespace {

// A CUDA error → InternalError naming the rank, the call and CUDA's reason.
void check_cuda(cudaError_t error, int rank, const char* call) {
  if (error == cudaSuccess) return;
  throw InternalError("rank " + std::to_string(rank) + ": " + call + " failed: " +
                      cudaGetErrorString(error) + " (" + cudaGetErrorName(error) + ")");
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;  // sum divided by the number of ranks, inside NCCL
    case ReduceOp::kMax: return ncclMax;
  }
  throw_internal_error(__FILE__, __LINE__, "op",
                       "unknown ReduceOp " + std::to_string(static_cast<int>(op)));
}

// "2.28.9" from ncclGetVersion's 22809.
std::string nccl_version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) + "." +
         std::to_string(code % 100);
}

// The device count, or UserError when this process sees no usable GPU (no driver, no device,
// CUDA_VISIBLE_DEVICES empty): the NCCL communicator cannot exist on such a rank.
int usable_device_count(int rank) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  RECLM_USER_CHECK(error == cudaSuccess && count > 0,
                   "rank {}: no CUDA device is usable (cudaGetDeviceCount: {}); the NCCL "
                   "communicator needs a GPU on every rank — check the driver (nvidia-smi) and "
                   "CUDA_VISIBLE_DEVICES, or train on the CPU",
                   rank, error == cudaSuccess ? "0 devices" : cudaGetErrorString(error));
  return count;
}

// What a pending operation is, for the error and timeout messages: "all_reduce(sum) of 7
// values".
struct Pending {
  std::string collective;
  int64_t count = 0;
  const char* unit = "values";

  std::string subject() const {
    if (collective == "barrier" || collective == "ncclCommInitRank") return collective;
    return collective + " of " + std::to_string(count) + " " + unit;
  }
};

class NcclCommunicatorImpl final : public NcclCommunicator {
 public:
  NcclCommunicatorImpl(Communicator& host, const CommOptions& options)
      : host_(host),
        rank_(host.rank()),
        size_(host.size()),
        local_rank_(host.local_rank()),
        timeout_s_(options.timeout_s) {
    RECLM_USER_CHECK(timeout_s_ > 0, "runtime.comm_timeout_s must be > 0 seconds, got {}",
                     timeout_s_);
    const int devices = usable_device_count(rank_);
    device_ = local_rank_ % devices;
    check_cuda(cudaSetDevice(device_), rank_, "cudaSetDevice");
    cudaDeviceProp properties{};
    check_cuda(cudaGetDeviceProperties(&properties, device_), rank_, "cudaGetDeviceProperties");
    // The highest stream priority, as the trainer's compute stream has: a collective's blocks are
    // not queued behind the compute kernels' (nor behind the weight-gradient GEMMs' stream).
    int lowest_priority = 0, highest_priority = 0;
    check_cuda(cudaDeviceGetStreamPriorityRange(&lowest_priority, &highest_priority), rank_,
               "cudaDeviceGetStreamPriorityRange");
    check_cuda(cudaStreamCreateWithPriority(&stream_, cudaStreamDefault, highest_priority), rank_,
               "cudaStreamCreateWithPriority");
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&barrier_value_), sizeof(float)), rank_,
               "cudaMalloc");
    check_cuda(cudaMemset(barrier_value_, 0, sizeof(float)), rank_, "cudaMemset");

    // Rank 0's id reaches every rank over the host communicator (MPI), then all join.
    ncclUniqueId id{};
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", nullptr);
    host_.broadcast(&id, sizeof(id), 0);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const Pending joining{"ncclCommInitRank", size_};
    check_nccl(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig",
               &joining);
    wait(joining);

    describe_ = "nccl: " + std::to_string(size_) + " ranks (NCCL " + nccl_version() +
                "), this is rank " + std::to_string(rank_) + " on GPU " + std::to_string(device_) +
                " (" + properties.name + ") of " + std::to_string(devices) + "; host " +
                host_.describe();
  }

  ~NcclCommunicatorImpl() override {
    if (comm_ != nullptr) {
      // Finalize flushes outstanding work; if that cannot finish (a peer is gone) or NCCL failed
      // earlier, abort instead, which returns without waiting for the peers.
      bool clean = !failed_;
      if (clean) {
        const ncclResult_t result = ncclCommFinalize(comm_);  // in progress: non-blocking comm
        clean = (result == ncclSuccess || result == ncclInProgress) && settle(timeout_s_);
      }
      if (clean) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    if (barrier_value_ != nullptr) cudaFree(barrier_value_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string describe() const override { return describe_; }
  cudaStream_t stream() const override { return stream_; }
  int device() const override { return device_; }

  void all_reduce(float* data, int64_t n, ReduceOp op) override {
    all_reduce_typed(data, n, op, ncclFloat32);
  }
  void all_reduce(double* data, int64_t n, ReduceOp op) override {
    all_reduce_typed(data, n, op, ncclFloat64);
  }

  void reduce_scatter(const float* in, float* out, int64_t n, ReduceOp op) override {
    check_count(in, n, "reduce_scatter");
    check_count(out, n, "reduce_scatter");
    if (n == 0) return;
    const Pending what{std::string("reduce_scatter(") + reduce_op_name(op) + ")", n};
    check_nccl(ncclReduceScatter(in, out, static_cast<size_t>(n), ncclFloat32, nccl_op(op), comm_,
                                 stream_),
               "ncclReduceScatter", &what);
    wait(what);
  }

  // NCCL itself handles the in-place case (in == out + rank·n).
  void all_gather(const float* in, float* out, int64_t n) override {
    check_count(in, n, "all_gather");
    check_count(out, n, "all_gather");
    if (n == 0) return;
    const Pending what{"all_gather", n};
    check_nccl(ncclAllGather(in, out, static_cast<size_t>(n), ncclFloat32, comm_, stream_),
               "ncclAllGather", &what);
    wait(what);
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    check_count(data, bytes, "broadcast");
    RECLM_CHECK(root >= 0 && root < size_, "broadcast from root {} of {} ranks", root, size_);
    if (bytes == 0) return;
    const Pending what{"broadcast from rank " + std::to_string(root), bytes, "bytes"};
    check_nccl(ncclBroadcast(data, data, static_cast<size_t>(bytes), ncclUint8, root, comm_,
                             stream_),
               "ncclBroadcast", &what);
    wait(what);
  }

  // A one-value all-reduce: returns once every rank has reached it.
  void barrier() override {
    const Pending what{"barrier", 1};
    check_nccl(ncclAllReduce(barrier_value_, barrier_value_, 1, ncclFloat32, ncclSum, comm_,
                             stream_),
               "ncclAllReduce", &what);
    wait(what);
  }

  // Enqueued on stream() with an event behind it; the caller orders it after the kernels that
  // wrote `data` (cudaStreamWaitEvent(stream(), ...)) before starting it.
  int start_all_reduce(float* data, int64_t n, ReduceOp op) override {
    check_count(data, n, "start_all_reduce");
    const Pending what{std::string("started all_reduce(") + reduce_op_name(op) + ")", n};
    if (n > 0) {
      check_nccl(ncclAllReduce(data, data, static_cast<size_t>(n), ncclFloat32, nccl_op(op), comm_,
                               stream_),
                 "ncclAllReduce", &what);
    }
    cudaEvent_t event = nullptr;
    check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), rank_, "cudaEventCreate");
    started_.push_back(event);
    check_cuda(cudaEventRecord(event, stream_), rank_, "cudaEventRecord");
    return static_cast<int>(started_.size() - 1);
  }

  bool test_started(int ticket) override {
    RECLM_CHECK(ticket >= 0 && ticket < static_cast<int>(started_.size()),
                "test_started({}) of {} started", ticket, started_.size());
    const Pending what{"started all_reduce #" + std::to_string(ticket), 0};
    ncclResult_t state = ncclSuccess;
    check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", &what);
    check_nccl(state, "the asynchronous NCCL operation", &what);
    const cudaError_t query = cudaEventQuery(started_[static_cast<size_t>(ticket)]);
    if (query == cudaErrorNotReady) return false;
    check_cuda(query, rank_, "cudaEventQuery");
    return true;
  }

  void wait_started() override {
    if (!started_.empty()) wait({"started all_reduce", static_cast<int64_t>(started_.size()), "collectives"});
    for (cudaEvent_t event : started_) cudaEventDestroy(event);
    started_.clear();
  }

  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    host_.abort(exit_code, message);
    std::_Exit(exit_code);  // host_.abort does not return; this is for [[noreturn]]
  }

 private:
  template <typename T>
  void all_reduce_typed(T* data, int64_t n, ReduceOp op, ncclDataType_t type) {
    check_count(data, n, "all_reduce");
    if (n == 0) return;
    const Pending what{std::string("all_reduce(") + reduce_op_name(op) + ")", n};
    check_nccl(ncclAllReduce(data, data, static_cast<size_t>(n), type, nccl_op(op), comm_, stream_),
               "ncclAllReduce", &what);
    wait(what);
  }

  static void check_count(const void* data, int64_t n, const char* collective) {
    RECLM_CHECK(n >= 0, "{} over {} values", collective, n);
    RECLM_CHECK(n == 0 || data != nullptr, "{} over {} values of a null buffer", collective, n);
  }

  // An NCCL result other than success or in-progress → the communicator is aborted (NCCL cannot
  // be used after an error) and InternalError names the call, NCCL's reason and its last message.
  void check_nccl(ncclResult_t result, const char* call, const Pending* what) {
    if (result == ncclSuccess || result == ncclInProgress) return;
    failed_ = true;
    std::string reason = ncclGetErrorString(result);
    const char* detail = ncclGetLastError(comm_);
    if (detail != nullptr && detail[0] != '\0') reason += ": " + std::string(detail);
    const std::string context = what == nullptr ? "" : " (" + what->subject() + ")";
    throw InternalError("rank " + std::to_string(rank_) + ": " + call + context +
                        " failed: " + reason);
  }

  // Waits until NCCL has no work in progress on the communicator, polling its asynchronous
  // state; false when it reports an error or `limit_s` passes.
  bool settle(double limit_s) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) return false;
      if (state == ncclSuccess) return true;
      if (state != ncclInProgress) return false;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
          limit_s) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  // Polls until the operation is done: NCCL's state leaves ncclInProgress (the enqueue finished,
  // or joining finished), then the stream drains. Spins for the first microseconds (small
  // collectives finish there), yields for the next 20 ms, then sleeps in short steps.
  void wait(const Pending& what) {
    const bool on_stream = what.collective != "ncclCommInitRank";
    const auto done = [&] {
      ncclResult_t state = ncclSuccess;
      check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", &what);
      check_nccl(state, "the asynchronous NCCL operation", &what);
      if (state != ncclSuccess) return false;  // ncclInProgress
      if (!on_stream) return true;
      const cudaError_t query = cudaStreamQuery(stream_);
      if (query == cudaSuccess) return true;
      if (query != cudaErrorNotReady) {
        failed_ = true;
        check_cuda(query, rank_, ("cudaStreamQuery (" + what.subject() + ")").c_str());
      }
      return false;
    };
    poll_with_timeout(done, timeout_s_, [&](double waited) { abort_on_timeout(what, waited); });
  }

  // The line comes first: aborting NCCL or MPI may take a moment or kill this process.
  [[noreturn]] void abort_on_timeout(const Pending& what, double waited) {
    std::fprintf(stderr,
                 "rank %d: nccl %s has waited %.1f s for the other ranks (a peer stalled or "
                 "died); aborting the job\n",
                 rank_, what.subject().c_str(), waited);
    std::fflush(stderr);
    failed_ = true;
    ncclCommAbort(comm_);
    comm_ = nullptr;
    host_.abort(kExitInternal, "NCCL communicator aborted after the timeout");
    std::_Exit(kExitInternal);
  }

  Communicator& host_;
  int rank_;
  int size_;
  int local_rank_;
  double timeout_s_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  float* barrier_value_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::string describe_;
  bool failed_ = false;  // an NCCL call failed: abort, never finalize
  std::vector<cudaEvent_t> started_;  // one per started all-reduce, by ticket
};

}  // namespace

std::unique_ptr<NcclCommunicator> make_nccl_communicator(Communicator& host,
                                                         const CommOptions& options) {
  return std::make_unique<NcclCommunicatorImpl>(host, options);
}

}  // namespace reclm
