// The CUDA backend's device state (trainer/device_backend.h): every buffer a training step
// touches, carved once from one device allocation sized for `max_tokens` tokens per micro-batch,
// so nothing is allocated inside a step. Compiled by nvcc (GPU) and by g++ (SIMT emulator).
//   T tokens, C = d_model, QD = n_heads·head_dim, KVD = n_kv_heads·head_dim, F = d_ff,
//   V = vocabulary, P = ParamLayout::total_floats() (the host layout, padding included).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/attention_backward.h"
#include "kernels/cuda/gemm.h"
#include "kernels/simt/cuda_compat.h"
#include "kernels/step_guard.h"
#include "runtime/comm/communicator.h"
#include "trainer/device/phase_clock.h"
#include "trainer/device/side_stream.h"
#include "trainer/model.h"

namespace reclm::device {

using bf16 = __nv_bfloat16;

// The LM head's GEMMs run over the softmax range's classes rounded up to a multiple of 64, which
// is also the logits' row stride: cuBLASLt's GEMMs are much slower on an odd class count (an
// H100 ran the whole gpu_350m step 1.35x faster with the vocabulary padded from 64,553 to 64,576,
// docs/benchmarks.md). The extra classes are the weight rows after the range (or the zero rows
// past the end of the parameters, kHeadPadRows), with zero dlogits: their logits are ignored,
// their gradient rows get += 0, and d_h is unchanged.
inline constexpr int64_t kClassMultiple = 64;
inline int64_t padded_classes(int64_t classes) {
  return (classes + kClassMultiple - 1) / kClassMultiple * kClassMultiple;
}
inline constexpr int64_t kHeadPadRows = kClassMultiple - 1;

// An array of the residual stream or its gradient: fp32, or bf16 with runtime.bf16_residual
// (DeviceModel::bf16_residual); the step's code reads it as the type that flag says.
struct StreamRows {
  void* rows = nullptr;
  float* f32() const { return static_cast<float*>(rows); }
  __nv_bfloat16* bf() const { return static_cast<__nv_bfloat16*>(rows); }
};

// Per layer, what backward reads from the forward (with recomputation every layer's pointers but
// `residual` and `lora_u` are the same scratch).
struct LayerActivations {
  StreamRows residual;      // [T, C] the layer's input (the residual stream)
  StreamRows residual_mid;  // [T, C] after the attention block
  float* rstd1;         // [T]
  float* rstd2;         // [T]
  bf16* norm1;          // [T, C] input of q/k/v
  bf16* norm2;          // [T, C] input of gate/up
  bf16* qkv;            // [T, QD + 2·KVD] the fused q/k/v projection, q and k rotated (RoPE) in place
  bf16* attn;           // [T, QD] attention output
  float* lse;           // [NH, T]
  bf16* gate_up;        // [T, 2F] one GEMM's output: each row's gate, then its up
  bf16* act;            // [T, F] silu(gate)·up, input of down
  // LoRA: per targeted projection the adapter's scaled bottleneck u = scale·x·Aᵀ [T, r] (as the
  // CPU's Activations::lora_u); null where the projection has no adapter.
  std::array<bf16*, kNumLoraTargets> lora_u{};
};

// What the plan sizes besides the model's dimensions.
struct DevicePlanOptions {
  int64_t max_tokens = 0;       // tokens per micro-batch
  bool recompute = false;       // activation recomputation (DeviceModel::recompute)
  bool fp32_logits = false;     // the unsharded LM head's logits in fp32 (DeviceModel::bf16_logits)
  bool bf16_residual = false;   // runtime.bf16_residual (DeviceModel::bf16_residual)
  int64_t head_chunk_rows = 0;  // LM-head rows per chunk (at most max_tokens); 0: as kHeadChunkBytes allows
  int64_t moment_floats = 0;    // each AdamW moment: 0 for the whole layout (P), or a ZeRO-1 shard's size
  int64_t exchange_floats = 0;  // ZeRO-1's collective buffers (device_zero1.h), used between steps only
  int world = 1;                // ranks of the job (vocabulary parallelism's buffers hold every rank's rows)
  bool second_stream = true;    // the weight gradients and AdamW on a SideStream
  bool gemm_autotune = false;   // the GEMMs' algorithms chosen by timing (GemmContext::set_autotune)
  int side_gemm_sms = 0;        // the side stream's GEMMs planned for this many SMs (0: all; RECLM_SIDE_GEMM_SMS)
  // Buffers of the residual stream's bf16 gradient (DeviceModel::d_res_bf): 2, or 1 to measure
  // what the second buys (RECLM_RESIDUAL_GRADIENT_BUFFERS). With one stream there is one.
  int residual_gradient_buffers = 2;
};

// Vocabulary parallelism on the device (dims.vocab_parallel(), device_vocab_parallel.h): the
// exchanges of trainer/vocab_parallel.h over device buffers. W = world · max_tokens rows.
struct DeviceVocabParallel {
  Communicator* host = nullptr;    // ids, targets, weights and softmax statistics (host memory)
  Communicator* device = nullptr;  // activations (device memory: NCCL, or the host one on the emulator)
  float* rows = nullptr;           // [W, C] the lookup's per-rank partial rows, then ∂ of gathered rows
  bf16* h = nullptr;               // [W, C] every rank's loss rows (bf16, the head GEMMs' operand)
  int32_t* dst_rows = nullptr;     // [W] index pairs for scatter_add_rows
  int32_t* src_rows = nullptr;     // [W]
  int32_t* targets = nullptr;      // [W] every rank's targets
  float* weights = nullptr;        // [W] every rank's loss weights
  int32_t* rep_targets = nullptr;  // [max_tokens] this rank's targets as replicated rows (−1: an item)
  float* row_max = nullptr;        // [W] softmax statistics of the gathered rows
  double* row_sum = nullptr;       // [W]
  double* target_logit = nullptr;  // [W]
  // The embedding's gathered ids of the current micro-batch, from forward to backward.
  std::vector<int32_t> ids;
  int64_t t_max = 0;
};

struct DeviceModel {
  ModelDims dims;
  ParamLayout layout;
  int64_t max_tokens = 0;
  int64_t head_chunk = 0;  // rows of logits per LM-head chunk
  int64_t max_chunks = 0;  // ceil(max_tokens / head_chunk)
  // Activation recomputation: only each layer's input (residual) is kept per layer; the other
  // saved activations share one layer's worth of memory and backward recomputes each layer's
  // forward from its input first (one more forward of the layers: ~1/3 more compute).
  bool recompute = false;
  // Model::head_trains: false when the LM head's weights are wholly frozen (LoRA without trained
  // embeddings), and its weight-gradient GEMM is skipped, as the base matrices' are under LoRA.
  bool head_trains = true;
  // The unsharded LM head writes bf16 logits (runtime.fp32_logits off) into dlogits and the
  // cross-entropy turns them into dlogits in place: 2 bytes per logit in a chunk, not 4 + 2.
  // Vocabulary parallelism keeps fp32 logits.
  bool bf16_logits = false;
  // runtime.bf16_residual: the residual stream (each layer's residual and residual_mid,
  // residual_out) and its gradient in backward (d_res_bf, or d_stream_bf with dropout) are bf16;
  // the o/down GEMMs add onto a bf16 stream and the norms read it and update its gradient in bf16.
  // The embedding's lookup and gradient stay fp32 (d_residual), converted at the stream's ends.
  bool bf16_residual = false;
  PhaseClock clock;

  // Parameters and gradients in the host layout [P] (fp32), and the weights' bf16 copy [P] (the
  // GEMMs' operands). grads and params_bf16 hold kHeadPadRows · d_model more values after P,
  // zeros, for the head GEMMs' padded class range (padded_classes). The AdamW moments
  // [moment_floats] (fp32): the host layout, or under ZeRO-1 this rank's shard in canonical order
  // (as the host AdamW's).
  float* params = nullptr;
  float* grads = nullptr;
  int64_t moment_floats = 0;
  float* m = nullptr;
  float* v = nullptr;
  uint16_t* params_bf16 = nullptr;
  ModelTensors param_tensors;  // pointers into params
  ModelTensors grad_tensors;   // pointers into grads

  std::vector<LayerActivations> layers;
  StreamRows residual_out;        // [T, C] the stream after the last layer
  float* final_normed = nullptr;  // [T, C] fp32: forward_hidden's hidden states
  bf16* final_normed_bf = nullptr;  // [T, C] the same in bf16: training's and forward_loss's
  float* final_rstd = nullptr;    // [T]

  // Forward scratch
  float* branch = nullptr;   // [T, C] o/down projection output before dropout (dropout runs only)
  // LM head: rows with a loss weight, gathered
  float* head_h32 = nullptr;   // [T, C] forward_hidden's gathered final_normed rows
  bf16* head_h = nullptr;      // [T, C] the rows with a loss, gathered from final_normed_bf
  float* logits = nullptr;     // [head_chunk, padded_classes(V)] fp32 logits (null with bf16_logits)
  bf16* dlogits = nullptr;     // [head_chunk, padded_classes(V)] (with bf16_logits first the logits)
  float* losses = nullptr;     // [T]
  double* row_losses = nullptr;  // [head_chunk]
  double* chunk_loss = nullptr;  // [max_chunks]
  // Backward scratch
  float* d_residual = nullptr;  // [T, C] the stream's gradient; with bf16_residual the embedding's side only
  // bf16_residual with dropout: the stream's gradient [T, C], updated in place by the norms, while
  // d_res_bf gets each branch's masked copy (without dropout d_res_bf is the stream's gradient).
  // Planned with every bf16_residual plan: dropout is a call's choice (DropoutState), not the plan's.
  bf16* d_stream_bf = nullptr;
  bf16* d_final_bf = nullptr;   // [T, C] gradient at the final norm's output: d_h's rows by loss_row_of
  float* d_h32 = nullptr;       // [T, C] vocabulary parallelism's sum of the gathered rows' head gradient
  bf16* d_h = nullptr;          // [T, C] rows [0, R): the gathered rows' head gradient; row R (if R < T) zeros
  // The bf16 gradients a weight-gradient GEMM reads on the side stream, which the compute stream
  // writes anew for each projection (device_step.cu SideOperand: a rewrite waits for the buffer's
  // last reader). d_res_bf has a second buffer with a side stream, written in turn: each norm's
  // backward rewrites it right after the o/down GEMM that reads it is queued, so it then rewrites
  // the buffer of the value before, whose GEMM was queued six kernels earlier, instead of waiting
  // for the one just queued. The gate/up and q/k/v gradients are rewritten six kernels after their
  // GEMMs are queued already: one buffer each (the second null, as d_res_bf's with one stream or
  // RECLM_RESIDUAL_GRADIENT_BUFFERS=1).
  using SideOperandBuffers = std::array<bf16*, 2>;
  SideOperandBuffers d_res_bf{};      // [T, C] d_residual in bf16 (a branch's output gradient), from the norms
  bf16* d_normed_bf = nullptr;        // [T, C]
  bf16* d_act_bf = nullptr;           // [T, F]
  SideOperandBuffers d_gate_up_bf{};  // [T, 2F] paired like gate_up
  bf16* d_attn = nullptr;             // [T, QD]
  SideOperandBuffers d_qkv{};         // [T, QD + 2·KVD] dq, dk (rotated back), dv in the fused rows
  bf16* lora_du = nullptr;      // [T, r] an adapter's bottleneck gradient (LoRA only)

  // The batch on the device: the pieces of one block (kBatchPieces of batch_piece_words words
  // each), which the host fills in batch_staging (pinned memory, the same pieces at the same
  // offsets) and uploads with one asynchronous copy per piece (device_step.cu upload_batch), so a
  // micro-batch never waits for the previous one's work to drain. upload_done: the stream's point
  // after the last upload, which the next one waits for before it rewrites the staging.
  int32_t* tokens = nullptr;       // [T]
  int32_t* cu_seqlens = nullptr;   // [T + 1]
  int32_t* prefix_lens = nullptr;  // [T]
  int32_t* pos_inter = nullptr;    // [T]
  int32_t* pos_intra = nullptr;    // [T]
  int32_t* loss_rows = nullptr;    // [T] the tokens with a loss weight (the LM head's rows)
  int32_t* loss_targets = nullptr; // [T] their targets
  float* loss_weights = nullptr;   // [T] their weights
  // [T] each token's row among loss_rows, or R (the zero row of d_h) for a token without a loss:
  // the head's gradient goes back to the tokens by a gather, d_final_bf[t] = d_h[loss_row_of[t]]
  int32_t* loss_row_of = nullptr;
  static constexpr int kBatchPieces = 9;
  int64_t batch_piece_words = 0;   // T + 1 rounded up to 64 words (256 bytes)
  int32_t* batch_staging = nullptr;  // host, pinned: [kBatchPieces · batch_piece_words]
  ops::StepGuard* guard_readout = nullptr;  // host, pinned: [1], step_guard's copy (queued steps)
  StreamPoint step_start, step_end[2];      // on the compute stream: the queued steps' times
  StreamPoint upload_done;
  float* rope_table = nullptr;     // [T, head_dim] the micro-batch's RoPE (cos, sin) (cuda::rope_table)

  DeviceVocabParallel vp;  // (vocabulary parallelism only)

  // ZeRO-1's exchange buffers [exchange_floats] (device_zero1.h). They are used only between
  // steps (after backward, around the optimizer), when no activation is live, so they share the
  // activations' memory: the plan grows only when they are the larger.
  float* exchange = nullptr;

  // Workspaces
  void* embedding_ws = nullptr;
  size_t embedding_ws_bytes = 0;
  float* rmsnorm_ws = nullptr;
  void* attention_ws = nullptr;
  size_t attention_ws_bytes = 0;
  // cuda::attention_backward's segment_block_max_len (RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN)
  int64_t attention_segment_block_max_len = cuda::kAttentionSegmentBlockMaxLen;
  double* norm_ws = nullptr;
  double* norm_result = nullptr;  // [1]

  // The gradient norm's sum of squares, stage by stage of the last micro-batch's backward (model.h's
  // stage numbering), each as soon as the stage's gradients are final, beside the rest of backward
  // (on the side stream with runtime.second_stream): the step's norm is then these slots' sum,
  // with no pass over the whole gradient after backward. Armed by the backend for the last
  // micro-batch of a step when the norm is Σ over the whole local gradient buffer (one rank; no
  // ZeRO-1, frozen parameters or vocabulary parallelism: those sum other parts).
  struct StageNorms {
    bool armed = false;
    std::vector<std::vector<int64_t>> offsets, sizes;  // [stage]: its tensors in the gradient buffer
    double* slots = nullptr;                          // [stages]: Σ x² of each stage's tensors
    double* ws = nullptr;                             // sum_of_squares_segments' workspace
    int32_t* used = nullptr;  // [stages]: the stages with tensors, in order (the queued steps' guard)
    int n_used = 0;
  } stage_norms;
  ops::StepGuard* step_guard = nullptr;  // [1]: runtime.queued_steps' loss, norm, clip, finite
  int32_t* part_zero = nullptr;          // [1] = {0}: the step guard's one part when it is norm_result

  // Each layer's gradients, [input_norm, down_proj's end) of grads (adjacent in the layout), which
  // a micro-batch's backward writes whole: the weight-gradient GEMMs and the two norms' dweight;
  // none under LoRA (its frozen base matrices skip their GEMMs). 81% of gpu_350m's gradient.
  // Zeroing the gradients (AdamW, zero_grads) leaves these as they are and sets
  // layer_grads_stale; the next micro-batch's backward then writes them (beta 0, dweight =)
  // instead of adding onto zeros: at gpu_350m 1.13 GB of zeros a step neither written nor read
  // back. The backend writes the zeros after all when something else would read the gradients
  // first (cuda_backend.cu zero_stale_gradients).
  std::vector<std::array<int64_t, 2>> layer_grad_ranges;  // [begin, end) floats into grads, by layer
  bool layer_grads_stale = false;

  void* arena = nullptr;
  size_t arena_bytes = 0;
  cudaStream_t stream = nullptr;  // every kernel and GEMM of the step (device_runtime.h), but:
  // with runtime.second_stream (else null) the weight-gradient GEMMs (layers, LM head) and AdamW
  std::unique_ptr<SideStream> side;
  // The side stream's AdamW of the weights each stage of the forward reads, which the forward
  // waits for: [0] the embedding, [1 + l] layer l, [n_layers + 1] the final norm and the LM head
  // (0: nothing queued).
  std::vector<SideStream::Ticket> weights_updated;
  cuda::GemmContext gemm;  // (one per stream)
  // runtime.gemm_autotune: the scratch output both streams' GemmContexts time the GEMMs that add
  // onto their output with (the largest weight gradient, the head's padding included); else 0
  void* gemm_autotune_scratch = nullptr;
  size_t gemm_autotune_scratch_bytes = 0;

  DeviceModel(const ModelDims& dims, const ParamLayout& layout, const DevicePlanOptions& options);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  bf16* weight_bf16(const float* param) const {  // the bf16 copy of a device parameter
    return reinterpret_cast<bf16*>(params_bf16 + (param - params));
  }
};

// One micro-batch forward and backward on the device; gradients accumulate into dm.grads with
// dL/dlogit scaled by grad_scale; dropout as the CPU backend's (the same masks). `hook` is called
// at each backward stage and poll point as in model.h's forward_backward (gradient buckets).
// Returns Σ weight·loss; or, with `queued_loss` (runtime.queued_steps), adds it to that step
// guard's on the device instead (onto zero for the step's first micro-batch) and returns 0, so
// nothing waits for the device.
double device_forward_backward(DeviceModel& dm, const Batch& batch, float grad_scale, const DropoutState& dropout,
                               const BackwardHook& hook, ops::StepGuard* queued_loss = nullptr,
                               bool first_micro_batch = true);
// Forward and loss only.
double device_forward_loss(DeviceModel& dm, const Batch& batch);
// LoRA: the bf16 copy of each adapted base matrix becomes W' = W + scale·B·A (W the fp32 master,
// rounded to bf16, then the product added and rounded once), which the step's GEMMs read: run
// after every change of A or B (upload, each optimizer step). Nothing without LoRA.
void merge_lora_weights(DeviceModel& dm);
// Forward only: out [n_rows, C] (host) ← final_normed at the batch's token rows.
void device_forward_hidden(DeviceModel& dm, const Batch& batch, const int32_t* rows, int64_t n_rows, float* out);

}  // namespace reclm::device
