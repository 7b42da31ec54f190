// A second stream for the work off the step's critical path (runtime.second_stream, on by
// default): backward's weight-gradient GEMMs, and the optimizer's update.
//
// Why: in backward, a projection's input-gradient GEMM (dinp = dout·W) feeds the next kernel
// (SwiGLU's, a norm's or attention's backward), but its weight-gradient GEMM (dW += doutᵀ·inp)
// feeds nothing else in the step. And the next step's forward of layer l needs only layer l's
// updated weights, not the whole AdamW pass. On one stream the memory-bound kernels and the GEMMs
// take turns; here the side work runs while the compute stream goes on, so the GPU can run a
// bandwidth-bound or latency-bound kernel (AdamW, the norms, attention over short histories) on
// the SMs a GEMM's last wave leaves idle and with the memory bandwidth a tensor-core GEMM does not
// use. The compute stream has the higher priority: its blocks go first whenever SMs come free.
//
// The rules, which the backend follows (device_step.cu, cuda_backend.cu):
//   - queued work runs after everything queued so far on the compute stream (an event), so what
//     it reads is written;
//   - before the compute stream rewrites what queued work reads, or reads what it writes, it
//     waits for that work (wait_for(its ticket));
//   - before the host reads or writes device memory the side work touches, the compute stream
//     waits for all of it (wait_for(queued())).
// The stream has its own cuBLASLt context: a workspace must not be shared by GEMMs that run at
// the same time.
//
// Emulator: launches run before they return, which would hide a missing wait. So queued work is
// held back here and runs only when the compute stream waits for it: the latest a GPU could run
// it. A missing wait then lets the work read what was already overwritten, or the compute stream
// read what the work has not written yet, and the results differ from one stream's (the
// DeviceBackend tests compare them bitwise).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "trainer/device/device_runtime.h"
#include "trainer/device/phase_clock.h"

namespace reclm::device {

class SideStream {
 public:
  // Queued work, in queue order from 1; 0 stands for none (wait_for(0) does nothing).
  using Ticket = int64_t;
  // Kernels and GEMMs launched on the given stream, with this stream's GEMM context.
  using Work = std::function<void(cudaStream_t, cuda::GemmContext&)>;

  explicit SideStream(cudaStream_t compute) : compute_(compute), stream_(create_stream(/*high_priority=*/false)) {
    clock.attach(stream_);
#if defined(__CUDACC__)
    inputs_ready_ = new_event();
#endif
  }
  ~SideStream() {
#if defined(__CUDACC__)
    cudaStreamSynchronize(stream_);
    cudaEventDestroy(inputs_ready_);
    for (const auto& [ticket, e] : pending_) cudaEventDestroy(e);
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
#endif
    destroy_stream(stream_);
  }
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  // Queues `work` after the compute stream's work so far; `phase` names its time in the profile.
  Ticket queue(const char* phase, Work work) {
    const auto run = [this, phase, work = std::move(work)] {
      clock.mark("waiting");
      work(stream_, gemm_);
      clock.mark(phase);
    };
    ++queued_;
#if defined(__CUDACC__)
    check(cudaEventRecord(inputs_ready_, compute_), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream_, inputs_ready_, 0), "cudaStreamWaitEvent");
    run();
    cudaEvent_t done = free_.empty() ? new_event() : free_.back();
    if (!free_.empty()) free_.pop_back();
    check(cudaEventRecord(done, stream_), "cudaEventRecord");
    pending_.emplace_back(queued_, done);
#else
    held_.push_back(run);
#endif
    return queued_;
  }

  // The compute stream's later work waits until the work `ticket` (and all before it) is done.
  // Returns false when it already did (nothing new to wait for).
  bool wait_for(Ticket ticket) {
    RECLM_CHECK(ticket <= queued_, "side stream: ticket {} not queued (the last is {})", ticket, queued_);
    if (ticket <= waited_) return false;
#if defined(__CUDACC__)
    // pending_ holds the tickets after waited_, in order: this one's event, then the events of
    // this and the earlier ones back to the free list (a wait takes the event's state when it is
    // queued, and the stream runs in order, so no later wait needs them)
    check(cudaStreamWaitEvent(compute_, pending_[static_cast<size_t>(ticket - waited_ - 1)].second, 0),
          "cudaStreamWaitEvent");
    for (; !pending_.empty() && pending_.front().first <= ticket; pending_.pop_front())
      free_.push_back(pending_.front().second);
#else
    for (Ticket t = waited_; t < ticket; ++t) {
      held_.front()();
      held_.pop_front();
    }
#endif
    waited_ = ticket;
    return true;
  }
  // The last ticket handed out: waiting for it waits for all queued work.
  Ticket queued() const { return queued_; }

  // This stream's time by phase (RECLM_DEVICE_PROFILE=1): its work, and waiting for its inputs.
  PhaseClock clock;
  // This stream's GEMM context (the work gets it too), for its settings.
  cuda::GemmContext& gemm() { return gemm_; }
  const cuda::GemmContext& gemm() const { return gemm_; }

 private:
  cudaStream_t compute_;
  cudaStream_t stream_;
  cuda::GemmContext gemm_;
  Ticket queued_ = 0;  // work queued so far
  Ticket waited_ = 0;  // the compute stream waits for the work up to here
#if defined(__CUDACC__)
  static cudaEvent_t new_event() {
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    return e;
  }
  cudaEvent_t inputs_ready_ = nullptr;
  // The end of each queued work the compute stream has not waited for yet (ticket, event), and
  // events free for reuse: as many as the work outstanding at once (a step's AdamW stages).
  std::deque<std::pair<Ticket, cudaEvent_t>> pending_;
  std::vector<cudaEvent_t> free_;
#else
  std::deque<std::function<void()>> held_;  // queued work not run yet, in order
#endif
};

}  // namespace reclm::device
