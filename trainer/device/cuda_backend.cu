// DeviceBackend (trainer/device_backend.h) on a CUDA device or the SIMT emulator: the device
// model (device_model.h), AdamW and the gradient norm by our kernels, and the gradient sum over
// ranks — NCCL on GPUs (device buffers), the host Communicator (MPI) on the emulator, whose
// device buffers are host memory — or, with a sharded optimizer, ZeRO-1's reduce-scatter and
// all-gather (device_zero1.h).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention_backward.h"
#include "kernels/cuda/attention_head_dims.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/step_guard.h"
#include "runtime/comm/communicator.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/data_parallel.h"
#include "trainer/device/device_model.h"
#include "trainer/device/device_runtime.h"
#include "trainer/device/device_zero1.h"
#include "trainer/device_backend.h"
#include "trainer/grad_buckets.h"
#include "trainer/optimizer.h"
#include "trainer/zero1.h"

#if defined(__CUDACC__) && defined(RECLM_HAVE_NCCL)
#include "runtime/comm/nccl_communicator.h"
#endif

namespace reclm {

namespace {

// A setting from the environment variable `name`, for measuring its effect (docs/gpu.md): unset
// or empty gives `fallback`; else a whole number in [lo, hi] (`expected` says what it is). A bad
// value stops the run naming the variable (exit 2).
int setting_from_environment(const char* name, const char* expected, long lo, long hi, int fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(env, &end, 10);
  RECLM_USER_CHECK(*end == '\0' && value >= lo && value <= hi, "environment {}={}: expected {}, {} to {}", name,
                   env, expected, lo, hi);
  return static_cast<int>(value);
}
// The same for a setting of the side stream: a value other than `fallback` without one stops the run too.
int side_setting_from_environment(const char* name, const char* expected, long lo, long hi, int fallback,
                                  bool second_stream) {
  const int value = setting_from_environment(name, expected, lo, hi, fallback);
  RECLM_USER_CHECK(value == fallback || second_stream,
                   "environment {}={}: runtime.second_stream is false, so there is no side stream", name,
                   std::getenv(name));
  return value;
}

// What runtime.gemm_autotune's timing found on one stream's GEMMs (GemmContext::autotune_stats),
// for the profile report.
std::string autotune_report(const char* stream, const cuda::GemmContext::AutotuneStats& a) {
  char line[320];
  std::snprintf(line, sizeof line,
                "\n  GEMM algorithms timed (runtime.gemm_autotune), %s: %lld shapes, cuBLASLt's first choice the "
                "fastest in %lld, %lld left untimed to it\n    %d runs of each: the first choices %.3f ms, the chosen "
                "%.3f ms (%.1f%% less)",
                stream, static_cast<long long>(a.timed), static_cast<long long>(a.first_fastest),
                static_cast<long long>(a.untimed), cuda::GemmContext::kAutotuneRuns, a.first_ms, a.chosen_ms,
                a.first_ms > 0 ? 100.0 * (1.0 - a.chosen_ms / a.first_ms) : 0.0);
  return line;
}

#if defined(__CUDACC__) && defined(RECLM_HAVE_NCCL)
// NCCL on its own stream, ordered after the compute stream's work at each collective by an event:
// a bucket's all-reduce reads only finished gradients, and backward's later kernels run beside
// it. Everything else is NCCL's (nccl_communicator.h).
class ComputeOrderedNccl final : public Communicator {
 public:
  ComputeOrderedNccl(std::unique_ptr<NcclCommunicator> nccl, cudaStream_t compute)
      : nccl_(std::move(nccl)), compute_(compute) {
    device::check(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~ComputeOrderedNccl() override { cudaEventDestroy(event_); }
  int rank() const override { return nccl_->rank(); }
  int size() const override { return nccl_->size(); }
  int local_rank() const override { return nccl_->local_rank(); }
  std::string describe() const override { return nccl_->describe(); }
  void all_reduce(float* data, int64_t n, ReduceOp op) override { after_compute(), nccl_->all_reduce(data, n, op); }
  void all_reduce(double* data, int64_t n, ReduceOp op) override { after_compute(), nccl_->all_reduce(data, n, op); }
  void reduce_scatter(const float* in, float* out, int64_t n, ReduceOp op) override {
    after_compute(), nccl_->reduce_scatter(in, out, n, op);
  }
  void all_gather(const float* in, float* out, int64_t n) override { after_compute(), nccl_->all_gather(in, out, n); }
  void broadcast(void* data, int64_t bytes, int root) override { after_compute(), nccl_->broadcast(data, bytes, root); }
  void barrier() override { nccl_->barrier(); }
  int start_all_reduce(float* data, int64_t n, ReduceOp op) override {
    after_compute();
    return nccl_->start_all_reduce(data, n, op);
  }
  bool test_started(int ticket) override { return nccl_->test_started(ticket); }
  void wait_started() override { nccl_->wait_started(); }
  [[noreturn]] void abort(int exit_code, const std::string& message) override {
    nccl_->abort(exit_code, message);
    std::abort();  // (not reached: NCCL's abort ends the process)
  }

 private:
  void after_compute() {
    device::check(cudaEventRecord(event_, compute_), "cudaEventRecord");
    device::check(cudaStreamWaitEvent(nccl_->stream(), event_, 0), "cudaStreamWaitEvent");
  }
  std::unique_ptr<NcclCommunicator> nccl_;
  cudaStream_t compute_;
  cudaEvent_t event_ = nullptr;
};
#endif

class CudaBackend final : public DeviceBackend {
 public:
  CudaBackend(const Model& model, const AdamW& optimizer, const DeviceOptions& options)
      : optim_(options.optim), host_comm_(options.comm) {
    size_t total = 0;
    info_.name = device::select_device(options.local_rank, &total);
    info_.emulated = device::kEmulated;
    info_.total_bytes = static_cast<int64_t>(total);
    if (optimizer.sharded()) zero1_.emplace(model.layout, host_comm_->rank(), host_comm_->size());
    // RECLM_SIDE_GEMM_SMS: the SMs the side stream's GEMMs are planned for (0: all;
    // GemmContext::set_sm_count_target); RECLM_RESIDUAL_GRADIENT_BUFFERS: 1 to keep one buffer of the
    // residual stream's bf16 gradient instead of two (DevicePlanOptions::residual_gradient_buffers).
    const int side_gemm_sms = side_setting_from_environment(
        "RECLM_SIDE_GEMM_SMS", "a number of SMs for the side stream's GEMMs (0: all)", 0, 4096, 0,
        options.second_stream);
    const int residual_gradient_buffers = side_setting_from_environment(
        "RECLM_RESIDUAL_GRADIENT_BUFFERS", "the buffers of the residual stream's bf16 gradient", 1, 2,
        options.residual_gradient_buffers, options.second_stream);
    dm_ = std::make_unique<device::DeviceModel>(
        model.dims, model.layout,
        device::DevicePlanOptions{.max_tokens = options.max_tokens,
                                  .recompute = options.recompute_activations,
                                  .fp32_logits = options.fp32_logits,
                                  .bf16_residual = options.bf16_residual,
                                  .head_chunk_rows = options.head_chunk_rows,
                                  .moment_floats = optimizer.moment_floats(),
                                  .exchange_floats = zero1_ ? zero1_->exchange_floats() : 0,
                                  .world = host_comm_ ? host_comm_->size() : 1,
                                  .second_stream = options.second_stream,
                                  .gemm_autotune = options.gemm_autotune,
                                  .side_gemm_sms = side_gemm_sms,
                                  .residual_gradient_buffers = residual_gradient_buffers});
    if (side_gemm_sms > 0) {
      log_info("device: the side stream's GEMMs planned for {} SMs (RECLM_SIDE_GEMM_SMS)", side_gemm_sms);
    }
    if (residual_gradient_buffers != options.residual_gradient_buffers) {
      log_info("device: buffers of the residual stream's bf16 gradient: {} (RECLM_RESIDUAL_GRADIENT_BUFFERS)",
               residual_gradient_buffers);
    }
    // the attention backward's one-block segments (kernels/cuda/attention_backward.h): up to 256
    // tokens at head_dim <= 64 to compare with the default 128 (docs/gpu.md)
    const int64_t block_max_len = model.dims.head_dim <= 64 ? cuda::kAttentionLongSegmentBlockMaxLen
                                                            : cuda::kAttentionSegmentBlockMaxLen;
    dm_->attention_segment_block_max_len = setting_from_environment(
        "RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN", "the longest segment of the attention backward's one-block path",
        0, block_max_len, static_cast<int>(cuda::kAttentionSegmentBlockMaxLen));
    if (dm_->attention_segment_block_max_len != cuda::kAttentionSegmentBlockMaxLen) {
      log_info("device: the attention backward takes segments of up to {} tokens in one block "
               "(RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN)", dm_->attention_segment_block_max_len);
    }
    dm_->head_trains = model.head_trains;
    if (model.dims.vocab_parallel()) {  // (every rank constructs its backend at the same point)
      RECLM_CHECK(host_comm_ != nullptr, "vocabulary parallelism needs the job's communicator");
      dm_->vp.host = host_comm_;
      dm_->vp.device = &gradient_comm(*host_comm_);
    }
    const size_t gemm_contexts = dm_->side ? 2 : 1;  // (each with its cuBLASLt workspace)
    info_.planned_bytes = static_cast<int64_t>(dm_->arena_bytes + gemm_contexts * cuda::GemmContext::kWorkspaceBytes);
    for (const UpdateSegment& s : zero1_ ? zero1_->shard_segments() : layout_update_segments(model.layout))
      segments_.push_back({s, optimizer.weight_decay_for(s.kind)});
    // AdamW on the side stream, stage by stage of the forward (not under ZeRO-1, whose update is
    // followed by an exchange, nor under LoRA, whose merged weights are made from all of it)
    if (dm_->side && !zero1_ && !model.dims.has_lora()) plan_side_updates(model.layout);
    queueable_ = !zero1_ && !model.dims.vocab_parallel() && (host_comm_ == nullptr || host_comm_->size() == 1);
    stage_norms_usable_ = queueable_ && !model.layout.any_frozen();
    if (model.layout.any_frozen()) {  // the norm covers what trains (as AdamW::grad_norm)
      for (const UpdateSegment& s : layout_update_segments(model.layout))
        trained_.add(dm_->grads + s.param_offset, s.count);
    }
    if (model.dims.vocab_parallel()) {  // job_grad_norm's two sums: replicated tensors, this rank's rows
      for (const ParamEntry& e : model.layout.entries())
        norm_parts_[e.sharded_rows].add(dm_->grads + e.offset, e.numel);
    }
  }

  DeviceInfo info() const override { return info_; }

  void upload(const Model& model, const AdamW& optimizer) override {
    finish_side_work();
    RECLM_CHECK(optimizer.sharded() == zero1_.has_value() && optimizer.moment_floats() == dm_->moment_floats,
                "the optimizer's state does not match the device's plan");
    device::copy_to_device(dm_->params, model.param_data(), floats() * sizeof(float));
    device::copy_to_device(dm_->m, optimizer.first_moment(), moment_bytes());
    device::copy_to_device(dm_->v, optimizer.second_moment(), moment_bytes());
    steps_ = optimizer.steps_taken();
    device::check(cuda::convert_f32_to_bf16(reinterpret_cast<__nv_bfloat16*>(dm_->params_bf16), dm_->params,
                                            floats(), dm_->stream),
                  "convert_f32_to_bf16");
    device::merge_lora_weights(*dm_);
  }

  void download(Model& model, AdamW* optimizer) override {
    RECLM_CHECK(!step_unread_, "download with a queued step unread (its update may have been skipped)");
    finish_side_work();
    device::copy_to_host(model.param_data(), dm_->params, floats() * sizeof(float));
    if (optimizer == nullptr) return;
    RECLM_CHECK(optimizer->moment_floats() == dm_->moment_floats, "the optimizer's state does not match the device's");
    device::copy_to_host(optimizer->first_moment(), dm_->m, moment_bytes());
    device::copy_to_host(optimizer->second_moment(), dm_->v, moment_bytes());
    optimizer->set_steps_taken(steps_);
  }

  void download_gradients(Model& model) override {
    finish_side_work();
    zero_stale_gradients();
    device::copy_to_host(model.grad_data(), dm_->grads, floats() * sizeof(float));
  }

  void zero_grads() override {
    if (grads_zero_) return;  // (adamw_step left them zero)
    finish_side_work();
    zero_gradients(0, floats(), dm_->stream);
    mark_layer_grads_stale();
    grads_zero_ = true;
  }

  double forward_backward(const Batch& batch, float grad_scale, bool last_micro_batch,
                          const DropoutState& dropout) override {
    grads_zero_ = false;
    // the last micro-batch's backward sums the gradient norm stage by stage (StageNorms), where
    // the norm is over this rank's whole gradient buffer and nothing changes it after backward
    dm_->stage_norms.armed = last_micro_batch && stage_norms_usable_ && !buckets_;
    stage_norms_ready_ = false;
    const double loss = device::device_forward_backward(
        *dm_, batch, grad_scale, dropout, buckets_ && last_micro_batch ? buckets_->hook(dm_->grads) : BackwardHook{});
    stage_norms_ready_ = dm_->stage_norms.armed;
    dm_->stage_norms.armed = false;
    return loss;
  }

  size_t enable_gradient_buckets(Communicator& comm, int64_t bucket_floats) override {
    buckets_.emplace(dm_->layout, dm_->dims.n_layers, gradient_comm(comm), bucket_floats);
    return buckets_->buckets().size();
  }

  double forward_loss(const Batch& batch) override { return device::device_forward_loss(*dm_, batch); }

  void forward_hidden(const Batch& batch, const int32_t* rows, int64_t n_rows, float* out) override {
    device::device_forward_hidden(*dm_, batch, rows, n_rows, out);
  }

  std::optional<OverlapStats> all_reduce_gradients(Communicator* comm) override {
    zero_stale_gradients();
    if (zero1_) {  // (also on one rank: grad_norm and adamw_step read the exchange's block)
      zero1_->reduce_scatter_gradients(*dm_, gradient_comm(*host_comm_));
      return std::nullopt;
    }
    if (comm == nullptr || comm->size() == 1) return std::nullopt;
    if (buckets_) return buckets_->finish(dm_->grads);
    all_reduce_gradient_buffer(gradient_comm(*comm), dm_->layout, dm_->dims.vocab_parallel(), dm_->grads);
    return std::nullopt;
  }

  double grad_norm() override {
    if (stage_norms_ready_) {  // summed stage by stage during backward: the stages' sums, in order
      stage_norms_ready_ = false;
      finish_side_work();
      const device::DeviceModel::StageNorms& norms = dm_->stage_norms;
      std::vector<double> slots(norms.sizes.size());
      device::copy_to_host(slots.data(), norms.slots, slots.size() * sizeof(double));
      double sum = 0.0;
      for (size_t s = 0; s < slots.size(); ++s) {
        if (!norms.sizes[s].empty()) sum += slots[s];
      }
      return std::sqrt(sum);
    }
    zero_stale_gradients();
    if (zero1_) return zero1_->grad_norm(*dm_, *host_comm_);
    if (dm_->dims.vocab_parallel()) {  // each rank's item rows are its own: their squares add up
      double squares[2] = {squares_of(norm_parts_[0]), squares_of(norm_parts_[1])};
      if (host_comm_ != nullptr) host_comm_->all_reduce(&squares[1], 1, ReduceOp::kSum);
      return std::sqrt(squares[0] + squares[1]);
    }
    if (!trained_.grads.empty()) return std::sqrt(squares_of(trained_));
    device::check(cuda::sum_of_squares(dm_->norm_result, dm_->grads, floats(), dm_->norm_ws, dm_->stream),
                  "sum_of_squares");
    double sum = 0.0;
    device::copy_to_host(&sum, dm_->norm_result, sizeof(double));
    return std::sqrt(sum);
  }

  std::string profile_report() const override {
    std::string report = dm_->clock.report();
    if (dm_->side && dm_->side->clock.on())
      report += "\n  the side stream (runtime.second_stream), beside the compute stream:" + dm_->side->clock.report();
    if (dm_->gemm_autotune_scratch_bytes > 0 && dm_->clock.on()) {
      report += autotune_report("compute stream", dm_->gemm.autotune_stats());
      if (dm_->side) report += autotune_report("side stream", dm_->side->gemm().autotune_stats());
    }
    return report;
  }

  // AdamW (update_weights below).
  void adamw_step(float lr, float grad_scale) override {
    RECLM_CHECK(!step_unread_, "adamw_step with a queued step unread");
    update_weights(lr, grad_scale, nullptr);
  }

  bool can_queue_steps() const override { return queueable_ && !buckets_; }

  void forward_backward_queued(const Batch& batch, float grad_scale, bool last_micro_batch,
                               const DropoutState& dropout) override {
    RECLM_CHECK(can_queue_steps(), "queued steps: not for this run (DeviceBackend::can_queue_steps)");
    const bool first = queued_micro_batches_ == 0;
    if (first) {  // where the step's device time starts: right behind the step before, or here
      starts_behind_previous_ = step_unread_;
      if (!starts_behind_previous_) dm_->step_start.record(dm_->stream);
    }
    grads_zero_ = false;
    dm_->stage_norms.armed = last_micro_batch && stage_norms_usable_;
    stage_norms_ready_ = false;
    device::device_forward_backward(*dm_, batch, grad_scale, dropout, BackwardHook{}, dm_->step_guard, first);
    dm_->stage_norms.armed = false;
    ++queued_micro_batches_;
  }

  void queue_update(float lr, float max_norm, double total_weight) override {
    RECLM_CHECK(queued_micro_batches_ > 0 && !step_unread_,
                "queue_update: {} micro-batches queued, the step before {}", queued_micro_batches_,
                step_unread_ ? "unread" : "read");
    finish_side_work();  // (the last stage's norm is side work: the guard reads it)
    if (stage_norms_usable_) {
      const device::DeviceModel::StageNorms& norms = dm_->stage_norms;
      device::check(cuda::step_guard_finish(dm_->step_guard, norms.slots, norms.used, norms.n_used, total_weight,
                                            max_norm, dm_->stream),
                    "step_guard_finish");
    } else {  // frozen values (LoRA): the trained ones' Σ x², as grad_norm sums them, is the one part
      RECLM_CHECK(!trained_.grads.empty(), "queued steps with frozen values but none trained");
      zero_stale_gradients();
      queue_squares_of(trained_);
      device::check(cuda::step_guard_finish(dm_->step_guard, dm_->norm_result, dm_->part_zero, 1, total_weight,
                                            max_norm, dm_->stream),
                    "step_guard_finish");
    }
    device::copy_async(dm_->guard_readout, dm_->step_guard, sizeof(ops::StepGuard), dm_->stream);
    step_end_slot_ ^= 1;
    dm_->step_end[step_end_slot_].record(dm_->stream);
    step_behind_[step_end_slot_] = starts_behind_previous_;  // (the next step's first micro-batch resets it)
    step_unread_ = true;
    queued_micro_batches_ = 0;
    update_weights(lr, 1.0f, dm_->step_guard);
  }

  QueuedStep read_queued_step() override {
    RECLM_CHECK(step_unread_, "read_queued_step: no step queued");
    const device::StreamPoint& end = dm_->step_end[step_end_slot_];
    end.wait();
    QueuedStep step;
    step.loss_sum = dm_->guard_readout->loss_sum;
    step.grad_norm = dm_->guard_readout->grad_norm;
    step.finite = dm_->guard_readout->finite != 0;
    step.queued_behind = step_behind_[step_end_slot_];
    step.device_ms = end.ms_since(step.queued_behind ? dm_->step_end[step_end_slot_ ^ 1] : dm_->step_start);
    if (!step.finite) --steps_;  // (the device skipped the update the count was raised for)
    step_unread_ = false;
    return step;
  }

 private:
  // AdamW (gradients scaled by grad_scale, or by a step guard's clip, skipped when it is not
  // finite), then the gradients zeroed (the next zero_grads has nothing to do). On the side stream
  // (side_updates_), stage by stage: the next forward waits for each stage's weights only
  // (DeviceModel::weights_updated), so the update of the later layers runs beside the first
  // layers' forward; else on the compute stream.
  void update_weights(float lr, float grad_scale, const ops::StepGuard* guard) {
    ++steps_;
    zero_stale_gradients();  // (no backward since the last zeroing: AdamW reads zeros)
    if (!side_updates_.empty()) {
      for (size_t stage = 0; stage < side_updates_.size(); ++stage) {
        const SideUpdate& u = side_updates_[stage];
        const auto work = [this, &u, lr, grad_scale, guard, step = steps_](cudaStream_t stream, cuda::GemmContext&) {
          for (const Segment& s : u.segments) update(s, lr, grad_scale, guard, step, stream);
          zero_gradients(u.begin, u.end, stream);
        };
        dm_->weights_updated[stage] = dm_->side->queue("AdamW", work);
      }
      mark_layer_grads_stale();
      grads_zero_ = true;
      return;
    }
    for (const Segment& s : segments_) update(s, lr, grad_scale, guard, steps_, dm_->stream);
    zero_gradients(0, floats(), dm_->stream);
    mark_layer_grads_stale();
    grads_zero_ = true;
    if (zero1_) zero1_->all_gather_parameters(*dm_, gradient_comm(*host_comm_));  // every rank whole again
    device::merge_lora_weights(*dm_);  // (the adapters changed)
  }

  struct Segment {
    UpdateSegment segment;
    float weight_decay;
  };
  // AdamW of one segment (the bf16 copy written in the same pass) on `stream`.
  void update(const Segment& s, float lr, float grad_scale, const ops::StepGuard* guard, int64_t step,
              cudaStream_t stream) {
    const ops::AdamWHyper hyper{lr, optim_.beta1(), optim_.beta2(), optim_.eps(), s.weight_decay, step, grad_scale};
    const int64_t at = s.segment.param_offset, moment = s.segment.moment_offset;
    device::check(cuda::adamw_update_bf16(dm_->params + at, dm_->grads + at, dm_->m + moment, dm_->v + moment,
                                          s.segment.count, hyper, dm_->params_bf16 + at,
                                          ops::Bf16Rounding::kNearestEven, 0, at, stream, guard),
                  "adamw_update_bf16");
  }
  // One stage of the forward (DeviceModel::weights_updated) for the side stream's AdamW: its
  // segments, and the gradient floats [begin, end) to zero after them (padding included).
  struct SideUpdate {
    std::vector<Segment> segments;
    int64_t begin = 0, end = 0;
  };
  // The stages of the layout: the embedding, each layer, then the rest (final norm, LM head), by
  // the entries' names (param_layout.cc), which come in that order.
  void plan_side_updates(const ParamLayout& layout) {
    const int64_t n_layers = dm_->dims.n_layers;
    side_updates_.resize(static_cast<size_t>(n_layers + 2));
    const auto stage_of = [&](const std::string& name) -> int64_t {  // (C++17 under nvcc: no starts_with)
      const auto starts = [&](std::string_view prefix) { return name.compare(0, prefix.size(), prefix) == 0; };
      constexpr std::string_view kLayers = "model.layers.";
      if (starts("model.embed_tokens.")) return 0;
      return starts(kLayers) ? 1 + std::stoll(name.substr(kLayers.size())) : n_layers + 1;
    };
    int64_t stage = 0;
    for (const ParamEntry& e : layout.entries()) {
      const int64_t s = stage_of(e.name);
      RECLM_CHECK(s >= stage && s <= n_layers + 1, "parameter {} out of the forward's order", e.name);
      for (; stage < s; ++stage) side_updates_[stage].end = side_updates_[stage + 1].begin = e.offset;
    }
    for (; stage <= n_layers; ++stage) side_updates_[stage].end = side_updates_[stage + 1].begin = floats();
    side_updates_.back().end = floats();
    for (const Segment& s : segments_) {
      for (SideUpdate& u : side_updates_) {
        if (s.segment.param_offset >= u.begin && s.segment.param_offset < u.end) u.segments.push_back(s);
      }
    }
  }
  // The compute stream (and so the host's next copy) after all of the side stream's work.
  void finish_side_work() {
    if (dm_->side) dm_->side->wait_for(dm_->side->queued());
  }
  // The gradients in [begin, end) as zeros on `stream`: written, except the layers' (their next
  // backward writes them whole, DeviceModel::layer_grad_ranges), which are left stale.
  void zero_gradients(int64_t begin, int64_t end, cudaStream_t stream) {
    int64_t at = begin;
    for (const auto& [skip_begin, skip_end] : dm_->layer_grad_ranges) {  // (in layout order)
      if (skip_end <= at || skip_begin >= end) continue;
      if (skip_begin > at) device::fill_zero(dm_->grads + at, (skip_begin - at) * sizeof(float), stream);
      at = skip_end;
    }
    if (at < end) device::fill_zero(dm_->grads + at, (end - at) * sizeof(float), stream);
  }
  // After zero_gradients over the whole buffer is queued (set on the host when it is queued: the
  // emulator's side stream runs the work only later).
  void mark_layer_grads_stale() { dm_->layer_grads_stale = !dm_->layer_grad_ranges.empty(); }
  // The zeros the stale layer gradients stand for, written: before anything but a backward reads them.
  void zero_stale_gradients() {
    if (!dm_->layer_grads_stale) return;
    finish_side_work();
    for (const auto& [begin, end] : dm_->layer_grad_ranges)
      device::fill_zero(dm_->grads + begin, (end - begin) * sizeof(float), dm_->stream);
    dm_->layer_grads_stale = false;
  }
  int64_t floats() const { return dm_->layout.total_floats(); }
  size_t moment_bytes() const { return dm_->moment_floats * sizeof(float); }
  // Gradient segments the norm sums apart from the rest.
  struct NormPart {
    std::vector<const float*> grads;
    std::vector<int64_t> sizes;
    void add(const float* g, int64_t n) { grads.push_back(g), sizes.push_back(n); }
  };
  // *norm_result (device) = Σ x² over a part's segments (deterministic, double), queued.
  void queue_squares_of(const NormPart& part) {
    device::check(cuda::sum_of_squares_segments(dm_->norm_result, part.grads.data(), part.sizes.data(),
                                                static_cast<int>(part.sizes.size()), dm_->norm_ws, dm_->stream),
                  "sum_of_squares_segments");
  }
  // The same, read.
  double squares_of(const NormPart& part) {
    queue_squares_of(part);
    double sum = 0.0;
    device::copy_to_host(&sum, dm_->norm_result, sizeof(double));
    return sum;
  }

  // The communicator that can read the gradient buffer: the host one where device memory is host
  // memory (emulator), NCCL on GPUs (made on first use: every rank gets here together).
  Communicator& gradient_comm(Communicator& host) {
#if defined(__CUDACC__)
#if defined(RECLM_HAVE_NCCL)
    if (!nccl_) nccl_ = std::make_unique<ComputeOrderedNccl>(make_nccl_communicator(host), dm_->stream);
    return *nccl_;
#else
    (void)host;
    throw UserError("field runtime.device: \"cuda\" under mpirun needs NCCL, and this build has none "
                    "(install libnccl-dev and rebuild with RECLM_NCCL=ON)");
#endif
#else
    return host;
#endif
  }

  config::OptimConfig optim_;
  Communicator* host_comm_;  // the job's ranks (ZeRO-1, vocabulary parallelism; null in one process)
  // Queued steps (can_queue_steps): one rank, no ZeRO-1, no vocabulary parallelism.
  bool queueable_ = false;
  // The gradient norm by backward stages (DeviceModel::StageNorms): possible for this run (one
  // rank, the norm over the whole buffer), and done by the last forward_backward for grad_norm.
  bool stage_norms_usable_ = false;
  bool stage_norms_ready_ = false;
  std::optional<device::DeviceZero1> zero1_;  // a sharded optimizer
  DeviceInfo info_;
  std::unique_ptr<device::DeviceModel> dm_;
  std::vector<Segment> segments_;
  std::vector<SideUpdate> side_updates_;  // per forward stage; empty: AdamW on the compute stream
  bool grads_zero_ = false;  // the gradient buffer holds zeros (no micro-batch since adamw_step / zero_grads)
  NormPart trained_;        // with frozen values (LoRA): the trainable gradients; else empty (the whole buffer)
  NormPart norm_parts_[2];  // vocabulary parallelism: [0] replicated tensors, [1] sharded rows
  int64_t steps_ = 0;
  // Queued steps (DeviceBackend::queue_update): the micro-batches of the step being queued;
  // whether a queued step is unread; whether the step being queued follows an unread one, and
  // where its time starts when it does not (DeviceModel::step_start); which of DeviceModel::step_end
  // holds the last step's end, and whether each was queued behind the step before it.
  int queued_micro_batches_ = 0;
  bool step_unread_ = false;
  bool starts_behind_previous_ = false;
  bool step_behind_[2] = {false, false};
  int step_end_slot_ = 0;
#if defined(__CUDACC__) && defined(RECLM_HAVE_NCCL)
  std::unique_ptr<ComputeOrderedNccl> nccl_;
#endif
  std::optional<GradientBuckets> buckets_;  // after nccl_: its collectives are destroyed first
};

std::unique_ptr<DeviceBackend> make_cuda_backend(const Model& model, const AdamW& optimizer,
                                                 const DeviceOptions& options) {
  const ModelDims& d = model.dims;
  RECLM_USER_CHECK(cuda::attention_supports_head_dim(d.head_dim),
                   "field runtime.device: \"cuda\" needs head_dim {} (model.d_model / model.n_heads), "
                   "this model has {}",
                   cuda::kAttentionHeadDimsText, d.head_dim);
  RECLM_USER_CHECK(d.d_model <= 8192, "field runtime.device: \"cuda\" supports model.d_model up to 8192, not {}",
                   d.d_model);
  RECLM_CHECK(!d.vocab_parallel() || options.comm != nullptr, "vocabulary parallelism needs the job's communicator");
  RECLM_CHECK(!optimizer.sharded() || options.comm != nullptr,
              "a sharded optimizer needs the job's communicator");
  return std::make_unique<CudaBackend>(model, optimizer, options);
}

const bool registered = register_device_backend(make_cuda_backend);

}  // namespace

}  // namespace reclm
