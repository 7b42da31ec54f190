// The training step on a CUDA device (runtime.device: "cuda"), behind one interface so the train
// loop needs no CUDA: the implementation (trainer/device/) is compiled twice, by nvcc for GPUs
// and by g++ for the host SIMT emulator (kernels/simt), and each binary links one of them:
//   bin/reclm      the GPU backend (CUDA builds), or none (then "cuda" is refused at start);
//   bin/reclm-emu  the same program with every kernel on the SIMT emulator and "device memory"
//                  in host memory: slow, for tests of the GPU path on machines without a GPU.
//
// The host Model stays the run's canonical state for checkpoints, evaluation and export: the
// backend keeps its own copy of the parameters, gradients and AdamW moments on the device, and
// upload()/download() move them between the two at the start, before a checkpoint or evaluation,
// and at the end. Between those, a step never leaves the device except for the loss and the
// gradient norm (two doubles), and under vocabulary parallelism the ids, targets and per-row
// softmax statistics its exchanges share through the host communicator. Under ZeRO-1 the
// device holds this rank's shard of the moments (as the host AdamW does); LoRA's frozen base
// matrices get no weight gradient.
//
// Precision (DESIGN.md §5): fp32 master weights, gradients and moments; a bf16 copy of the
// weights (refreshed by the AdamW kernel) feeds the GEMMs and attention; activations that GEMMs
// and attention read are bf16, and so are the q/k/v projection (RoPE rotates it in fp32) and
// the gate and up projections SwiGLU reads; the residual stream, the norms' statistics and the
// o/down projections' outputs (added to the stream) are fp32, and every kernel computes in fp32.
// The LM head's logits are bf16 (as PyTorch autocast's; the cross-entropy widens them), or fp32
// with runtime.fp32_logits and under vocabulary parallelism.
// Gradients are fp32 because they are summed over micro-batches and ranks (a bf16 sum of many
// small terms loses them) and the optimizer reads them once per step anyway.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/batch.h"
#include "runtime/config.h"
#include "runtime/errors.h"
#include "trainer/grad_buckets.h"
#include "trainer/model.h"

namespace reclm {

class AdamW;
class Communicator;

struct DeviceInfo {
  std::string name;            // e.g. "NVIDIA H100 80GB HBM3", or "SIMT emulator (host)"
  bool emulated = false;
  int64_t total_bytes = 0;     // device memory (0 on the emulator)
  int64_t planned_bytes = 0;   // what the backend allocated at start (it allocates nothing later)
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual DeviceInfo info() const = 0;
  // Host → device: the model's parameters, the optimizer's moments and update count.
  virtual void upload(const Model& model, const AdamW& optimizer) = 0;
  // Device → host: parameters into `model`, and (when non-null) moments and update count into
  // `optimizer`, so a checkpoint or evaluation on the host sees exactly the device's state.
  virtual void download(Model& model, AdamW* optimizer) = 0;
  // Device → host: the gradient buffer into model.grads (tests and diagnostics).
  virtual void download_gradients(Model& model) = 0;
  // The gradient buffer to zeros (nothing to do right after adamw_step, which leaves it so).
  virtual void zero_grads() = 0;
  // One micro-batch forward and backward; gradients accumulate (as forward_backward in model.h).
  // With gradient buckets enabled, `last_micro_batch` starts their all-reduces during backward.
  // `dropout`: the model's dropout for this micro-batch (Model::dropout); its masks are the CPU's,
  // drawn from the same counter-based stream. Returns Σ weight·loss.
  virtual double forward_backward(const Batch& batch, float grad_scale, bool last_micro_batch,
                                  const DropoutState& dropout = {}) = 0;
  // Forward only (validation): Σ weight·loss.
  virtual double forward_loss(const Batch& batch) = 0;
  // Forward only (ranking evaluation): out [n_rows, C] (host) ← the final norm's output at the
  // batch's token rows rows[0, n_rows). Not under vocabulary parallelism (its lookup is collective).
  // (Pointer and count: nvcc builds the backend as C++17, without std::span.)
  virtual void forward_hidden(const Batch& batch, const int32_t* rows, int64_t n_rows, float* out) = 0;
  // Gradient buckets of about bucket_floats values all-reduced over `comm` while backward runs
  // (trainer/grad_buckets.h): on GPUs NCCL's stream, ordered after the compute stream by an
  // event per bucket. Returns the number of buckets.
  virtual size_t enable_gradient_buckets(Communicator& comm, int64_t bucket_floats) = 0;
  // The gradient sum over the job's ranks (no-op for one process): waits for the buckets started
  // during backward (and their overlap), or one all-reduce without buckets; under ZeRO-1 a
  // reduce-scatter: only this rank's shard is summed (trainer/zero1.h).
  virtual std::optional<OverlapStats> all_reduce_gradients(Communicator* comm) = 0;
  // L2 norm of the gradient (deterministic, double accumulation; under ZeRO-1 over the shards).
  virtual double grad_norm() = 0;
  // One AdamW update (gradients scaled by grad_scale), also refreshing the bf16 weights; the
  // gradients are zero afterwards. Under ZeRO-1 of this rank's shard, then every rank's weights
  // are all-gathered. (It may still run while the next forward starts: runtime.second_stream.)
  virtual void adamw_step(float lr, float grad_scale) = 0;
  // Queued steps (runtime.queued_steps): the host queues a whole step, then reads the one before
  // it, so the device does not sit idle between steps while the host reads the loss and the
  // gradient norm and queues the update. The step's loss, norm, clipping coefficient and
  // non-finite check stay on the device (kernels/step_guard.h), where AdamW reads them and skips
  // a non-finite step; the values are the bits the synchronous calls give. One rank, without
  // ZeRO-1 or vocabulary parallelism (the norm summed by backward stages, or under LoRA over the
  // trained values after backward): can_queue_steps() says so.
  struct QueuedStep {
    double loss_sum = 0.0;   // Σ weight·loss over the step's micro-batches
    double grad_norm = 0.0;
    bool finite = true;      // false: the update was skipped
    double device_ms = 0.0;  // the device's time for the step: from the end of the step before it
                             // when it was queued behind that one, else from its first queued work
    bool queued_behind = false;  // it was queued while the step before was unread
  };
  virtual bool can_queue_steps() const { return false; }
  // forward_backward, with the micro-batch's loss added to the step's on the device.
  virtual void forward_backward_queued(const Batch& batch, float grad_scale, bool last_micro_batch,
                                       const DropoutState& dropout) {
    (void)batch, (void)grad_scale, (void)last_micro_batch, (void)dropout;
    throw InternalError("this device backend has no queued steps");
  }
  // After the step's last micro-batch: the step's guard (norm, clip to max_norm, the mean loss
  // over total_weight finite), then the AdamW update (learning rate lr) that reads it.
  virtual void queue_update(float lr, float max_norm, double total_weight) {
    (void)lr, (void)max_norm, (void)total_weight;
    throw InternalError("this device backend has no queued steps");
  }
  // Waits for the step queued last and returns its values. One step is unread at a time: it is
  // read before the next queue_update.
  virtual QueuedStep read_queued_step() { throw InternalError("this device backend has no queued steps"); }
  // The time by phase when RECLM_DEVICE_PROFILE=1 (trainer/device/phase_clock.h), else "".
  virtual std::string profile_report() const = 0;
};

struct DeviceOptions {
  int64_t max_tokens = 0;  // tokens per micro-batch the device plans for
  int local_rank = 0;      // picks the GPU: one per rank on a node
  bool recompute_activations = false;  // runtime.recompute_activations
  bool fp32_logits = false;            // runtime.fp32_logits
  bool bf16_residual = false;          // runtime.bf16_residual
  bool second_stream = true;  // runtime.second_stream
  bool gemm_autotune = false;  // runtime.gemm_autotune
  // Buffers of the residual stream's bf16 gradient, which the norms' backward rewrites and the
  // side stream's o/down weight-gradient GEMMs read: 2 (a norm need not wait for the GEMM just
  // queued), or 1 (RECLM_RESIDUAL_GRADIENT_BUFFERS=1).
  int residual_gradient_buffers = 2;
  config::OptimConfig optim;           // AdamW's betas, eps and weight decay
  int64_t head_chunk_rows = 0;         // LM-head rows per chunk; 0: as memory allows (tests set it)
  // The job's ranks (host communicator). Needed when `optimizer` is sharded (ZeRO-1): the device
  // then keeps and updates only this rank's shard of the moments and exchanges the rest.
  Communicator* comm = nullptr;
};

// The backend this binary was linked with (trainer/device/). `model` gives the dimensions and
// layout (its own host activation arena may be smaller: the host then only evaluates),
// `optimizer` the per-tensor weight decay. Throws UserError when this binary has no CUDA backend
// or the device cannot be used.
std::unique_ptr<DeviceBackend> make_device_backend(const Model& model, const AdamW& optimizer,
                                                   const DeviceOptions& options);

// The linked backend registers its factory before main (a static object in trainer/device/), so
// reclm_trainer and the programs that never use a device need no CUDA library at all.
using DeviceBackendFactory = std::unique_ptr<DeviceBackend> (*)(const Model&, const AdamW&, const DeviceOptions&);
bool register_device_backend(DeviceBackendFactory factory);

}  // namespace reclm
