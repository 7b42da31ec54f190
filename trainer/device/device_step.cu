// One micro-batch on the device: the forward, the LM head with the fused cross-entropy, and the
// backward, in the order of the CPU backend (trainer/model_forward.cc, model_backward.cc) with
// the precision split of trainer/device_backend.h:
//   GEMMs and attention take bf16 operands (weights from the bf16 copy, saved activations in
//   bf16) and accumulate in fp32; the residual stream, the norms' statistics, the o/down
//   projections' outputs and all parameter gradients are fp32, and so is every kernel's
//   arithmetic (RoPE, SwiGLU and the cross-entropy widen their bf16 inputs). The LM head's
//   logits are bf16, as under PyTorch autocast (fp32 with runtime.fp32_logits, and under
//   vocabulary parallelism). The kernels next to a GEMM read and write its bf16 side themselves
//   (norms, RoPE, SwiGLU, the cross-entropy), and the LM head's rows go to it and their gradients
//   back as bf16 row gathers (head_and_loss).
// The q/k/v projections are one GEMM each way, and so are gate and up: their weights, gradients
// and bf16 copies are adjacent in the parameter layout (checked by the plan), so
// [T, QD + 2·KVD] = norm1 · [W_q; W_k; W_v]ᵀ and [T, 2F] = norm2 · [W_gate; W_up]ᵀ. RoPE rotates
// k in those rows in place, the attention forward q as it loads it (writing it back rotated); the
// attention reads q, k, v from the rows, and its backward writes
// dq, dk (rotated back through RoPE as it stores them) and dv into the rows of d_qkv that the
// backward GEMM reads (attention_backward.h, AttentionQkvRows): no copies either way.
// The o_proj / down_proj GEMMs add their outputs to the residual stream themselves (cuBLASLt's
// C ≠ D: beta · C with C the stream), so no separate add or branch buffer.
// Dropout: the CPU's masks (kernels/cuda/dropout.h) at the CPU's sites: the embedding output and
// each branch before it joins the stream; backward runs the same masks over the gradients.
// LoRA (trainer/lora.h): the GEMMs read merged weights, W' = W + scale·B·A in the bf16 copy of
// the frozen base matrix (merge_lora_weights, after every update of A and B), so the forward's
// output and the input gradient dy·W' include the adapters with no extra pass over the
// activations. The forward saves u = scale·x·Aᵀ (bf16) for the adapters' own gradients, and the
// frozen base matrices skip their weight-gradient GEMMs, as on the CPU.
// Vocabulary parallelism: the embedding lookup and the LM head's cross-entropy run the exchanges of
// device_vocab_parallel.h instead.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/attention_backward.h"
#include "kernels/cuda/attention_forward.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/step_guard.h"
#include "kernels/cuda/swiglu.h"
#include "trainer/device/device_model.h"
#include "trainer/device/device_runtime.h"
#include "trainer/device/device_vocab_parallel.h"
#include "trainer/model_internal.h"

namespace reclm::device {

namespace {

void ok(cudaError_t status, const char* what) { check(status, what); }

void to_bf16(const DeviceModel& dm, bf16* out, const float* in, int64_t n) {
  ok(cuda::convert_f32_to_bf16(out, in, n, dm.stream), "convert");
}

// out[T, OC] = inp · weightᵀ (+ addend [T, OC], out's type), weight the bf16 copy of a device parameter.
void linear(DeviceModel& dm, void* out, bool out_fp32, const bf16* inp, const float* weight, int64_t T,
            int64_t C, int64_t OC, const void* addend = nullptr) {
  ok(cuda::linear_forward_bf16(dm.gemm, out, out_fp32, inp, dm.weight_bf16(weight), nullptr, T, C, OC, false,
                               dm.stream, 0, addend),
     "linear_forward_bf16");
}
// dinp[T, C] = dout[T, OC] · W, the input gradient, on the compute stream (weight_grad: W's).
void input_grad(DeviceModel& dm, bf16* dinp, const bf16* dout, const float* weight, int64_t T, int64_t C, int64_t OC) {
  ok(cuda::linear_backward_bf16(dm.gemm, dinp, false, nullptr, nullptr, dout, nullptr, dm.weight_bf16(weight), T, C,
                                OC, dm.stream),
     "linear_backward_bf16");
}
// dweight[OC, C] += doutᵀ · inp (= without accumulate; dweight null: frozen, nothing to do), dout's
// rows ld_dout apart: on the side stream when there is one (side_stream.h), else here. Returns the
// ticket to wait for before dout or inp is rewritten (0: none).
SideStream::Ticket weight_grad(DeviceModel& dm, float* dweight, const bf16* dout, int64_t ld_dout, const bf16* inp,
                               int64_t T, int64_t C, int64_t OC, bool accumulate = true) {
  if (dweight == nullptr) return 0;
  const auto gemm = [=](cudaStream_t stream, cuda::GemmContext& context) {
    ok(cuda::linear_backward_bf16(context, nullptr, false, dweight, nullptr, dout, inp, nullptr, T, C, OC, stream,
                                  ld_dout, 1.0f, accumulate),
       "linear_backward_bf16 (weight gradient)");
  };
  if (dm.side) return dm.side->queue("weight-gradient GEMMs", gemm);
  gemm(dm.stream, dm.gemm);
  return 0;
}
// The compute stream's next work waits for the side stream's work `ticket` and all before it
// (0, or no side stream: nothing to wait for); the wait's time goes to `phase` in the profile.
void wait_for_side(DeviceModel& dm, SideStream::Ticket ticket, const char* phase) {
  if (!dm.side || !dm.side->wait_for(ticket)) return;
  dm.clock.mark(phase);
}
void wait_for_weight_grad(DeviceModel& dm, SideStream::Ticket ticket) {
  wait_for_side(dm, ticket, "backward: waiting for dW GEMMs");
}
void join_weight_grads(DeviceModel& dm) {
  if (dm.side) wait_for_weight_grad(dm, dm.side->queued());
}

// One of backward's bf16 gradients that a weight-gradient GEMM reads on the side stream
// (DeviceModel::SideOperandBuffers), within one backward: the buffer written last, and each
// buffer's last reader on the side stream.
struct SideOperand {
  DeviceModel::SideOperandBuffers buffers;
  std::array<SideStream::Ticket, 2> last_read{};
  int current = 0;
  bf16* get() const { return buffers[current]; }
  // weight_grad's `ticket` reads the current buffer.
  void read_by(SideStream::Ticket ticket) { last_read[current] = ticket; }
};
// The buffer to write the operand's next value into, after its last reader: the other one when
// there are two (its reader was queued a projection earlier), else the only one.
bf16* rewrite(DeviceModel& dm, SideOperand& op) {
  if (op.buffers[1] != nullptr) op.current ^= 1;
  wait_for_weight_grad(dm, op.last_read[op.current]);
  return op.get();
}
// A layer matrix's gradient, or null under LoRA, where the base matrices are frozen.
float* base_grad(const DeviceModel& dm, float* grad) { return dm.dims.has_lora() ? nullptr : grad; }

// LoRA, the adapter of projection `target` of layer l (none: nothing to do), input x [T, in]:
// u = scale·x·Aᵀ [T, r], saved in bf16 for backward (scale as the GEMM's alpha, one rounding).
// The adapter's output u·Bᵀ needs no GEMM: it is in the merged weights.
void lora_bottleneck(DeviceModel& dm, const bf16* x, int64_t l, LoraTarget target, int64_t T) {
  const int t = static_cast<int>(target);
  const LayerTensors& w = dm.param_tensors.layers[l];
  if (w.lora_a[t] == nullptr) return;
  const ModelDims& d = dm.dims;
  ok(cuda::linear_forward_bf16(dm.gemm, dm.layers[l].lora_u[t], false, x, dm.weight_bf16(w.lora_a[t]), nullptr, T,
                               d.proj_in(target), d.lora_rank, false, dm.stream, 0, nullptr, d.lora_scale()),
     "lora_bottleneck");
}

// The adapter's gradients, given dy [T, out] (rows ld_dy apart) at the projection's output:
//   dB += dyᵀ·u,  du = scale·dy·B (bf16),  dA += duᵀ·x.
// The input gradient's share, du·A, is in the base projection's dy·W' (merged weights).
void lora_backward(DeviceModel& dm, const bf16* dy, int64_t ld_dy, const bf16* x, int64_t l, LoraTarget target,
                   int64_t T) {
  const int t = static_cast<int>(target);
  const LayerTensors& w = dm.param_tensors.layers[l];
  if (w.lora_a[t] == nullptr) return;
  const LayerTensors& g = dm.grad_tensors.layers[l];
  const ModelDims& d = dm.dims;
  const int64_t in = d.proj_in(target), out = d.proj_out(target), r = d.lora_rank;
  const bf16* u = dm.layers[l].lora_u[t];
  const bf16* b = dm.weight_bf16(w.lora_b[t]);
  ok(cuda::linear_backward_bf16(dm.gemm, nullptr, false, g.lora_b[t], nullptr, dy, u, b, T, r, out, dm.stream, ld_dy),
     "lora_backward dB");
  ok(cuda::linear_backward_bf16(dm.gemm, dm.lora_du, false, nullptr, nullptr, dy, u, b, T, r, out, dm.stream, ld_dy,
                                d.lora_scale()),
     "lora_backward du");
  ok(cuda::linear_backward_bf16(dm.gemm, nullptr, false, g.lora_a[t], nullptr, dm.lora_du, x,
                                dm.weight_bf16(w.lora_a[t]), T, in, r, dm.stream),
     "lora_backward dA");
}

// The mask of one dropout site (trainer/model_internal.h dropout_site), the CPU's.
cuda::DropoutKey dropout_key(const DropoutState& drop, int64_t layer, int branch) {
  return {drop.rate, drop.seed, drop.stream, dropout_site(layer, branch)};
}

// What the layers and the LM head read of the batch, uploaded once per micro-batch.
struct Geometry {
  int64_t T = 0, n_segments = 0, max_seqlen = 0;
  const int32_t* host_tokens = nullptr;  // the batch's tokens on the host (vocabulary parallelism)
  const int32_t* prefix_lens = nullptr;  // device, or null (plain causal)
  const int32_t* pos_intra = nullptr;    // device, or null (1D positions)
  ops::AttentionShape shape{};
  cuda::QkvHeads rope_heads{};  // the fused QKV rows' heads, for the rotations (2D with pos_intra)
  // The LM head: the softmax range [class_first, class_first + classes), and the R tokens with a
  // loss weight (on the device: dm.loss_rows, loss_targets, loss_weights; their targets and
  // weights also here, for vocabulary parallelism's exchanges).
  int64_t class_first = 0, classes = 0, R = 0;
  std::vector<int32_t> targets;
  std::vector<float> weights;
};

// The batch's pieces into dm.batch_staging and onto the device, each with one asynchronous copy
// on the compute stream (the host does not wait for the step before), then the rotations' table.
// with_loss: also the LM head's rows (not for hidden states, where the targets are not read).
// Every check of the batch runs first, so a bad batch stops before anything is queued.
Geometry upload_batch(DeviceModel& dm, const Batch& batch, bool with_loss) {
  const ModelDims& d = dm.dims;
  const int64_t T = batch.n_tokens();
  RECLM_CHECK(T > 0 && T <= dm.max_tokens, "batch of {} tokens, the device plan holds {}", T, dm.max_tokens);
  for (int32_t id : batch.tokens) {
    RECLM_CHECK(id >= 0 && id < d.vocab, "token id {} outside vocabulary {}", id, d.vocab);
  }
  Geometry g;
  g.T = T;
  g.host_tokens = batch.tokens.data();
  g.n_segments = batch.n_segments();
  for (int64_t s = 0; s < g.n_segments; ++s)
    g.max_seqlen = std::max<int64_t>(g.max_seqlen, batch.cu_seqlens[s + 1] - batch.cu_seqlens[s]);
  g.class_first = batch.class_begin;
  g.classes = batch.class_count > 0 ? batch.class_count : d.vocab - g.class_first;
  const int64_t first = g.class_first, V = g.classes;
  RECLM_CHECK(!with_loss || (first >= 0 && V > 0 && first + V <= d.vocab),
              "softmax range [{}, {}) outside vocabulary {}", first, first + V, d.vocab);
  std::vector<int32_t> rows, row_of;
  for (int64_t t = 0; with_loss && t < T; ++t) {
    if (batch.loss_weights[t] == 0.0f) continue;
    RECLM_CHECK(batch.targets[t] >= first && batch.targets[t] < first + V,
                "target {} of token {} outside the softmax range [{}, {})", batch.targets[t], t, first, first + V);
    rows.push_back(static_cast<int32_t>(t));
    g.targets.push_back(batch.targets[t]);
    g.weights.push_back(batch.loss_weights[t]);
  }
  g.R = static_cast<int64_t>(rows.size());
  if (with_loss) {  // DeviceModel::loss_row_of: R (d_h's zero row) for the tokens without a loss
    row_of.assign(T, static_cast<int32_t>(g.R));
    for (int64_t i = 0; i < g.R; ++i) row_of[rows[i]] = static_cast<int32_t>(i);
  }

  dm.upload_done.wait();  // the previous upload has left the staging
  int32_t* const staging = dm.batch_staging;
  const auto stage = [&](int32_t* device_piece, const void* host, int64_t words) {
    if (words == 0) return;
    int32_t* at = staging + (device_piece - dm.tokens);  // the same offset in the staging
    std::memcpy(at, host, words * sizeof(int32_t));
    copy_async(device_piece, at, words * sizeof(int32_t), dm.stream);
  };
  stage(dm.tokens, batch.tokens.data(), T);
  stage(dm.cu_seqlens, batch.cu_seqlens.data(), g.n_segments + 1);
  stage(dm.pos_inter, batch.pos_inter.data(), T);
  if (!batch.prefix_lens.empty()) {
    stage(dm.prefix_lens, batch.prefix_lens.data(), g.n_segments);
    g.prefix_lens = dm.prefix_lens;
  }
  if (d.positions_2d) {  // a 2D model fed 1D batches: every token is standalone (intra 0)
    const std::vector<int32_t> standalone(batch.pos_intra.empty() ? T : 0, 0);
    stage(dm.pos_intra, batch.pos_intra.empty() ? standalone.data() : batch.pos_intra.data(), T);
    g.pos_intra = dm.pos_intra;
  }
  stage(dm.loss_rows, rows.data(), g.R);
  stage(dm.loss_targets, g.targets.data(), g.R);
  static_assert(sizeof(float) == sizeof(int32_t));
  stage(reinterpret_cast<int32_t*>(dm.loss_weights), g.weights.data(), g.R);
  stage(dm.loss_row_of, row_of.data(), static_cast<int64_t>(row_of.size()));
  dm.upload_done.record(dm.stream);
  // the rotations' (cos, sin), once for all layers and both directions
  ok(cuda::rope_table(dm.rope_table, dm.pos_inter, g.pos_intra, T, d.head_dim, d.rope_theta, dm.stream), "rope_table");
  g.rope_heads = {d.n_heads, d.n_kv_heads, d.head_dim, g.pos_intra != nullptr};
  g.shape = {T, d.n_heads, d.n_kv_heads, d.head_dim, 1.0f / std::sqrt(static_cast<float>(d.head_dim))};
  return g;
}

// y[T, C] (bf16, a GEMM's operand) = rmsnorm(x) with its weight, x a stream array; rstd [T].
void norm_forward(DeviceModel& dm, bf16* y, float* rstd, StreamRows x, const float* weight, int64_t T) {
  const int64_t C = dm.dims.d_model;
  const float eps = dm.dims.norm_eps;
  ok(dm.bf16_residual ? cuda::rmsnorm_forward_bf16(y, rstd, x.bf(), weight, T, C, eps, dm.stream)
                      : cuda::rmsnorm_forward_bf16(y, rstd, nullptr, x.f32(), nullptr, weight, T, C, eps, dm.stream),
     "rmsnorm_forward_bf16");
  dm.clock.mark("forward: norms");
}

// out[T, C] = skip + dropout(inp[T, IC] · Wᵀ + LoRA), dropout site (l, branch), the projection
// `target`: without dropout the GEMM adds the skip itself (an addend of the stream's type), and
// the adapter adds onto out; with it the projection and the adapter go through dm.branch (fp32,
// dropped together).
void add_branch(DeviceModel& dm, StreamRows out, StreamRows skip, const bf16* inp, const float* weight, int64_t T,
                int64_t IC, const DropoutState& drop, int64_t l, int branch, LoraTarget target) {
  const int64_t C = dm.dims.d_model;
  if (!drop.active()) {
    linear(dm, out.rows, !dm.bf16_residual, inp, weight, T, IC, C, skip.rows);
    lora_bottleneck(dm, inp, l, target, T);
    dm.clock.mark("forward: GEMMs");
    return;
  }
  linear(dm, dm.branch, true, inp, weight, T, IC, C);
  lora_bottleneck(dm, inp, l, target, T);
  dm.clock.mark("forward: GEMMs");
  const cuda::DropoutKey key = dropout_key(drop, l, branch);
  ok(dm.bf16_residual ? cuda::dropout_add(out.bf(), skip.bf(), dm.branch, T * C, key, dm.stream)
                      : cuda::dropout_add(out.f32(), skip.f32(), dm.branch, T * C, key, dm.stream),
     "dropout_add");
  dm.clock.mark("forward: dropout");
}

// Layer l's forward from its input x = residual[l] (the embedding's or the previous layer's
// output). The o_proj and down_proj GEMMs add their outputs to the stream themselves (an fp32
// addend: residual_mid = x + o_proj(attn), and the next layer's input, or residual_out after the
// last layer, = residual_mid + down_proj(act)), so the norms read one array; with dropout the
// projection goes to dm.branch and dropout_add adds it. `to_output`: also the down_proj; the
// recompute in backward stops before it, since backward needs nothing after act.
void forward_layer(DeviceModel& dm, const Geometry& g, int64_t l, bool to_output, const DropoutState& drop) {
  const ModelDims& d = dm.dims;
  const int64_t T = g.T, C = d.d_model, F = d.d_ff, QD = d.q_dim(), KVD = d.kv_dim();
  const LayerTensors& w = dm.param_tensors.layers[l];
  LayerActivations& a = dm.layers[l];
  PhaseClock& clock = dm.clock;
  norm_forward(dm, a.norm1, a.rstd1, a.residual, w.input_norm, T);
  const int64_t QKV = QD + 2 * KVD;
  linear(dm, a.qkv, false, a.norm1, w.wq, T, C, QKV);  // q_proj, k_proj, v_proj: adjacent rows
  for (LoraTarget t : {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV}) lora_bottleneck(dm, a.norm1, l, t, T);
  clock.mark("forward: GEMMs");
  // RoPE rotates k in the fused rows; the attention rotates q as it loads it and writes it back
  // rotated (for the backward), and reads k and v from the rows as they are
  ok(cuda::rope_qk_forward_bf16(a.qkv, dm.rope_table, T, g.rope_heads, dm.stream, /*rotate_q=*/false),
     "rope_qk_forward_bf16");
  clock.mark("forward: RoPE");
  ok(cuda::attention_forward(a.attn, a.lse, a.qkv, a.qkv + QD, a.qkv + QD + KVD, dm.cu_seqlens, g.prefix_lens,
                             g.n_segments, g.max_seqlen, g.shape, dm.stream, /*heads_per_block=*/0,
                             {QKV, dm.rope_table, g.rope_heads.two_d, a.qkv}),
     "attention_forward");
  clock.mark("forward: attention");
  add_branch(dm, a.residual_mid, a.residual, a.attn, w.wo, T, QD, drop, l, 0, LoraTarget::kO);
  // MLP block
  norm_forward(dm, a.norm2, a.rstd2, a.residual_mid, w.post_norm, T);
  linear(dm, a.gate_up, false, a.norm2, w.w_gate, T, C, 2 * F);  // gate_proj and up_proj: adjacent rows
  for (LoraTarget t : {LoraTarget::kGate, LoraTarget::kUp}) lora_bottleneck(dm, a.norm2, l, t, T);
  clock.mark("forward: GEMMs");
  ok(cuda::swiglu_forward_bf16(a.act, a.gate_up, T, F, dm.stream), "swiglu_forward_bf16");
  clock.mark("forward: SwiGLU");
  if (!to_output) return;
  const StreamRows next = l + 1 < d.n_layers ? dm.layers[l + 1].residual : dm.residual_out;
  add_branch(dm, next, a.residual_mid, a.act, w.w_down, T, F, drop, l, 1, LoraTarget::kDown);
}

// The final norm's output: bf16 in final_normed_bf (the LM head's GEMM operand), or with
// fp32_hidden fp32 in final_normed (forward_hidden's hidden states).
void forward_layers(DeviceModel& dm, const Geometry& g, const DropoutState& drop, bool fp32_hidden = false) {
  const ModelDims& d = dm.dims;
  const int64_t T = g.T, C = d.d_model;
  // the lookup in fp32: into the stream, or for a bf16 stream into d_residual (free until
  // backward), rounded into the stream after the embedding's dropout
  float* x = dm.bf16_residual ? dm.d_residual : dm.layers[0].residual.f32();
  // each stage after the side stream's AdamW of its weights (cuda_backend.cu adamw_step)
  const auto updated = [&](size_t stage) {
    wait_for_side(dm, dm.weights_updated[stage], "forward: waiting for AdamW");
  };
  updated(0);
  if (d.vocab_parallel()) {
    vp_embedding_forward(dm, g.host_tokens, T, x);
  } else {
    ok(cuda::embedding_forward(x, dm.param_tensors.embed, dm.tokens, T, C, dm.stream), "embedding_forward");
  }
  if (drop.active()) ok(cuda::dropout(x, x, T * C, dropout_key(drop, -1, 0), dm.stream), "dropout");
  if (dm.bf16_residual) to_bf16(dm, dm.layers[0].residual.bf(), x, T * C);
  dm.clock.mark("embedding");
  for (int64_t l = 0; l < d.n_layers; ++l) {
    updated(static_cast<size_t>(1 + l));
    forward_layer(dm, g, l, /*to_output=*/true, drop);
  }
  updated(static_cast<size_t>(d.n_layers + 1));  // (the LM head's too)
  const float* weight = dm.param_tensors.final_norm;
  const StreamRows x_out = dm.residual_out;
  if (fp32_hidden) {
    ok(dm.bf16_residual
           ? cuda::rmsnorm_forward(dm.final_normed, dm.final_rstd, x_out.bf(), weight, T, C, d.norm_eps, dm.stream)
           : cuda::rmsnorm_forward(dm.final_normed, dm.final_rstd, nullptr, x_out.f32(), nullptr, weight, T, C,
                                   d.norm_eps, dm.stream),
       "rmsnorm_forward");
    dm.clock.mark("forward: norms");
  } else {
    norm_forward(dm, dm.final_normed_bf, dm.final_rstd, x_out, weight, T);
  }
}

// The unsharded LM head over the R gathered rows (dm.head_h, dm.loss_targets, dm.loss_weights) and
// classes [first, first + V), a chunk of rows at a time: Σ weight·loss of each chunk into
// dm.chunk_loss (read later: LossSum), and with backward dm.d_h and the head's weight gradient
// (weight_grad: on the side stream when there is one; *weight_grad_ticket gets the last one's
// ticket). The GEMMs run over Vp >= V classes (padded_classes: the weight rows after the range,
// zero dlogits there), the cross-entropy over V; Vp is also the logits' row stride. Returns the
// number of chunks.
int64_t chunked_head(DeviceModel& dm, int64_t R, int64_t first, int64_t V, float grad_scale, bool backward,
                     SideStream::Ticket* weight_grad_ticket) {
  const int64_t C = dm.dims.d_model, Vp = padded_classes(V);
  const float* head = dm.param_tensors.lm_head + first * C;
  float* d_head = dm.head_trains ? dm.grad_tensors.lm_head + first * C : nullptr;  // frozen: no dW GEMM
  int64_t chunks = 0;
  SideStream::Ticket dlogits_read = 0;  // the previous chunk's weight-gradient GEMM
  for (int64_t t0 = 0; t0 < R; t0 += dm.head_chunk, ++chunks) {
    const int64_t n = std::min(dm.head_chunk, R - t0);
    wait_for_side(dm, dlogits_read, "head: waiting for dW GEMMs");  // (this chunk rewrites the dlogits)
    // the chunk's logits: bf16 in dm.dlogits, which the cross-entropy overwrites with the
    // dlogits, or fp32 in dm.logits (runtime.fp32_logits)
    const auto cross_entropy = [&](const auto* logits) {
      if (backward) {
        ok(cuda::cross_entropy_forward_backward_bf16(dm.dlogits, dm.losses + t0, dm.chunk_loss + chunks,
                                                     dm.row_losses, logits, dm.loss_targets + t0,
                                                     dm.loss_weights + t0, n, V, first, grad_scale, dm.stream, Vp),
           "cross_entropy_forward_backward_bf16");
      } else {
        ok(cuda::cross_entropy_forward(dm.losses + t0, dm.chunk_loss + chunks, dm.row_losses, logits,
                                       dm.loss_targets + t0, dm.loss_weights + t0, n, V, first, dm.stream, Vp),
           "cross_entropy_forward");
      }
    };
    if (dm.bf16_logits) {
      linear(dm, dm.dlogits, false, dm.head_h + t0 * C, head, n, C, Vp);
      dm.clock.mark("head: GEMMs");
      cross_entropy(static_cast<const bf16*>(dm.dlogits));
    } else {
      linear(dm, dm.logits, true, dm.head_h + t0 * C, head, n, C, Vp);
      dm.clock.mark("head: GEMMs");
      cross_entropy(static_cast<const float*>(dm.logits));
    }
    dm.clock.mark("head: cross-entropy");
    if (backward) {
      input_grad(dm, dm.d_h + t0 * C, dm.dlogits, head, n, C, Vp);
      dlogits_read = weight_grad(dm, d_head, dm.dlogits, Vp, dm.head_h + t0 * C, n, C, Vp);
      dm.clock.mark("head: GEMMs");  // (else the next chunk's wait would take in this GEMM's time)
    }
  }
  *weight_grad_ticket = dlogits_read;
  return chunks;
}

// A micro-batch's Σ weight·loss: known on the host (vocabulary parallelism's exchanges), or the
// sums of device_chunks head chunks still on the device. Reading those waits for the stream, so
// device_forward_backward reads them only after backward is queued: no drain of the GPU mid-step.
struct LossSum {
  double host = 0.0;
  int64_t device_chunks = 0;
  SideStream::Ticket head_weight_grad = 0;  // the LM head's last weight-gradient GEMM (chunked_head)
  double read(const DeviceModel& dm) const {
    std::vector<double> sums(device_chunks);
    copy_to_host(sums.data(), dm.chunk_loss, device_chunks * sizeof(double));
    double total = host;
    for (double s : sums) total += s;
    return total;
  }
};

// LM head and loss over the rows with a loss weight, gathered (the head's cost follows the rows
// that carry loss): chunked_head, or under vocabulary parallelism vp_head_and_loss. With
// backward: d_h = dlogits · W[range], dW[range] += dlogitsᵀ · h, and d_final_bf = d_h's rows back
// at their tokens, zeros at the others. Both moves are bf16 row gathers (the embedding lookup's
// kernel): h from final_normed_bf by loss_rows, the gradient from d_h by loss_row_of, whose
// tokens without a loss read d_h's zero row R. So every token's row is written once, with no
// zero fill of d_final_bf, no atomics and no fp32 copies; the bits are those of the fp32 gather
// and scatter-add onto zeros, rounded (a −0 now stays −0).
LossSum head_and_loss(DeviceModel& dm, const Geometry& g, float grad_scale, bool backward) {
  const ModelDims& d = dm.dims;
  const int64_t T = g.T, C = d.d_model, R = g.R;
  const auto gradient_to_tokens = [&] {
    if (!backward) return;
    if (R < T) fill_zero(dm.d_h + R * C, C * sizeof(bf16), dm.stream);
    ok(cuda::embedding_forward(dm.d_final_bf, dm.d_h, dm.loss_row_of, T, C, dm.stream), "scatter rows");
    dm.clock.mark("head: row gather + scatter");
  };
  if (R == 0 && !d.vocab_parallel()) {  // (vocabulary parallelism: a collective all the same)
    gradient_to_tokens();
    return {};
  }
  ok(cuda::embedding_forward(dm.head_h, dm.final_normed_bf, dm.loss_rows, R, C, dm.stream), "gather rows");
  dm.clock.mark("head: row gather + scatter");
  LossSum loss;
  if (d.vocab_parallel()) {
    loss.host = vp_head_and_loss(dm, R, g.targets.data(), g.weights.data(), g.class_first, g.classes, grad_scale,
                                 backward);
  } else {
    loss.device_chunks = chunked_head(dm, R, g.class_first, g.classes, grad_scale, backward, &loss.head_weight_grad);
  }
  dm.clock.mark("head: GEMMs");
  gradient_to_tokens();
  return loss;
}

// The gradient norm's partial sum for a backward stage whose gradients are final
// (DeviceModel::StageNorms): on the side stream, after the stage's weight-gradient GEMMs there
// and (by the queue's event) the compute stream's writes so far, so it runs beside the rest of
// backward; on the compute stream without one. The same kernels either way: the same bits.
void sum_stage_norm(DeviceModel& dm, int stage) {
  const DeviceModel::StageNorms& norms = dm.stage_norms;
  const auto s = static_cast<size_t>(stage);
  if (!norms.armed || norms.sizes[s].empty()) return;  // (a tied head has no stage 0)
  std::vector<const float*> grads;
  for (const int64_t offset : norms.offsets[s]) grads.push_back(dm.grads + offset);
  const auto run = [grads, sizes = norms.sizes[s], slot = norms.slots + s, ws = norms.ws](cudaStream_t stream) {
    ok(cuda::sum_of_squares_segments(slot, grads.data(), sizes.data(), static_cast<int>(sizes.size()), ws, stream),
       "sum_of_squares_segments");
  };
  if (dm.side) {
    dm.side->queue("gradient norm", [run](cudaStream_t stream, cuda::GemmContext&) { run(stream); });
  } else {
    run(dm.stream);
    dm.clock.mark("backward: gradient norm");
  }
}

// The stages and poll points of model.h's BackwardHook, in the same places as the CPU backward.
// The layers' weight-gradient GEMMs may run on the side stream (side_stream.h): each gradient they
// read is a SideOperand, whose rewrite() waits for the last GEMM reading the buffer it rewrites
// (DeviceModel::d_res_bf says which have two buffers, and why).
// head_weight_grad: the LM head's last weight-gradient GEMM, which a tied embedding's gradient
// (the same rows) must follow.
void backward_layers(DeviceModel& dm, const Geometry& g, const DropoutState& drop, const BackwardHook& hook,
                     SideStream::Ticket head_weight_grad) {
  const auto reached = [&](int stage) {
    if (stage != kBackwardPoll) sum_stage_norm(dm, stage);
    if (!hook) return;
    if (stage != kBackwardPoll) join_weight_grads(dm);  // the stage's bucket reads finished gradients
    hook(stage);
  };
  const ModelDims& d = dm.dims;
  const int64_t T = g.T, C = d.d_model, F = d.d_ff, QD = d.q_dim(), KVD = d.kv_dim(), QKV = QD + 2 * KVD;
  PhaseClock& clock = dm.clock;
  SideOperand d_res_bf{dm.d_res_bf}, d_gate_up{dm.d_gate_up_bf}, d_qkv{dm.d_qkv};
  // The layers' gradients are written (=), not added onto, after a zeroing that left them stale
  // (DeviceModel::layer_grads_stale); each is written by one GEMM or norm.
  const bool add_to_layer_grads = !dm.layer_grads_stale;
  // dinp[T, IC] = dout · W, then W's gradient (weight_grad); returns the latter's ticket.
  const auto project_back = [&](bf16* dinp, float* dweight, const bf16* dout, const bf16* inp, const float* weight,
                                int64_t IC, int64_t OC) {
    input_grad(dm, dinp, dout, weight, T, IC, OC);
    return weight_grad(dm, dweight, dout, OC, inp, T, IC, OC, add_to_layer_grads);
  };
  // The gradient at a branch's output, in bf16 for its projection's backward. An fp32 stream:
  // d_residual itself, which each norm's backward writes as d_res_bf beside its fp32 update (none
  // after layer 0: the embedding reads fp32). A bf16 stream: the stream's gradient is d_res_bf
  // itself, which each norm's backward reads and writes anew (d_stream). With dropout, the
  // stream's gradient (d_residual, or d_stream_bf in place) through the branch's mask instead.
  const bool dropout = drop.active();
  const bf16* d_stream = nullptr;  // a bf16 stream's gradient so far (null: zeros, before the final norm)
  // The norm's backward from dy = d_normed_bf (the final norm's: d_final_bf), dweight = or +=.
  const auto norm_back = [&](float* dweight, StreamRows x, const float* weight, const float* rstd, bool next_branch,
                             const bf16* dy = nullptr, bool accumulate_dweight = true) {
    if (dy == nullptr) dy = dm.d_normed_bf;
    if (dm.bf16_residual) {
      bf16* const out = dropout ? dm.d_stream_bf : rewrite(dm, d_res_bf);
      ok(cuda::rmsnorm_backward_bf16(out, d_stream, dweight, dm.rmsnorm_ws, dy, x.bf(), weight, rstd, T, C,
                                     dm.stream, accumulate_dweight),
         "rmsnorm_backward_bf16");
      d_stream = out;
    } else {
      bf16* d_res_bf_out = next_branch && !dropout ? rewrite(dm, d_res_bf) : nullptr;
      ok(cuda::rmsnorm_backward_bf16(dm.d_residual, dweight, dm.rmsnorm_ws, dy, x.f32(), weight, rstd, T, C,
                                     dm.stream, d_res_bf_out, accumulate_dweight),
         "rmsnorm_backward_bf16");
    }
    clock.mark("backward: norms");
  };
  const auto branch_grad = [&](int64_t l, int branch) {
    if (!dropout) return;  // d_res_bf is the norm's output
    const cuda::DropoutKey key = dropout_key(drop, l, branch);
    ok(dm.bf16_residual ? cuda::dropout_bf16(rewrite(dm, d_res_bf), d_stream, T * C, key, dm.stream)
                        : cuda::dropout_bf16(rewrite(dm, d_res_bf), dm.d_residual, T * C, key, dm.stream),
       "dropout_bf16");
    clock.mark("backward: dropout");
  };
  if (!dm.bf16_residual) fill_zero(dm.d_residual, T * C * sizeof(float), dm.stream);
  norm_back(dm.grad_tensors.final_norm, dm.residual_out, dm.param_tensors.final_norm, dm.final_rstd,
            /*next_branch=*/true, dm.d_final_bf);
  reached(1);
  for (int64_t l = d.n_layers - 1; l >= 0; --l) {
    // activation recomputation: layer l's saved activations are refilled from its input (the
    // previous layer's weight-gradient GEMMs read the same scratch)
    if (dm.recompute) {
      join_weight_grads(dm);
      forward_layer(dm, g, l, /*to_output=*/false, drop);
    }
    const LayerTensors& w = dm.param_tensors.layers[l];
    const LayerTensors& gw = dm.grad_tensors.layers[l];
    const LayerActivations& a = dm.layers[l];
    // MLP block
    branch_grad(l, 1);
    d_res_bf.read_by(project_back(dm.d_act_bf, base_grad(dm, gw.w_down), d_res_bf.get(), a.act, w.w_down, F, C));
    lora_backward(dm, d_res_bf.get(), C, a.act, l, LoraTarget::kDown, T);
    clock.mark("backward: GEMMs");
    ok(cuda::swiglu_backward_bf16(rewrite(dm, d_gate_up), dm.d_act_bf, a.gate_up, T, F, dm.stream),
       "swiglu_backward_bf16");
    clock.mark("backward: SwiGLU");
    d_gate_up.read_by(
        project_back(dm.d_normed_bf, base_grad(dm, gw.w_gate), d_gate_up.get(), a.norm2, w.w_gate, C, 2 * F));
    lora_backward(dm, d_gate_up.get(), 2 * F, a.norm2, l, LoraTarget::kGate, T);
    lora_backward(dm, d_gate_up.get() + F, 2 * F, a.norm2, l, LoraTarget::kUp, T);
    clock.mark("backward: GEMMs");
    norm_back(gw.post_norm, a.residual_mid, w.post_norm, a.rstd2, /*next_branch=*/true, nullptr,
              add_to_layer_grads);
    reached(kBackwardPoll);
    // attention block
    branch_grad(l, 0);
    d_res_bf.read_by(project_back(dm.d_attn, base_grad(dm, gw.wo), d_res_bf.get(), a.attn, w.wo, QD, C));
    lora_backward(dm, d_res_bf.get(), C, a.attn, l, LoraTarget::kO, T);
    clock.mark("backward: GEMMs");
    // dq, dk (rotated back through RoPE) and dv straight into the fused rows, the input of one
    // backward GEMM
    bf16* const dqkv = rewrite(dm, d_qkv);
    const cuda::AttentionQkvRows rows{QKV, dm.rope_table, g.rope_heads.two_d};
    ok(cuda::attention_backward(dqkv, dqkv + QD, dqkv + QD + KVD, dm.d_attn, a.qkv, a.qkv + QD,
                                a.qkv + QD + KVD, a.attn, a.lse, dm.cu_seqlens, g.prefix_lens, g.n_segments,
                                g.max_seqlen, g.shape, /*deterministic=*/true, dm.attention_ws, dm.attention_ws_bytes,
                                dm.stream, dm.attention_segment_block_max_len, rows),
       "attention_backward");
    clock.mark("backward: attention");
    reached(kBackwardPoll);
    d_qkv.read_by(project_back(dm.d_normed_bf, base_grad(dm, gw.wq), dqkv, a.norm1, w.wq, C, QKV));
    lora_backward(dm, dqkv, QKV, a.norm1, l, LoraTarget::kQ, T);
    lora_backward(dm, dqkv + QD, QKV, a.norm1, l, LoraTarget::kK, T);
    lora_backward(dm, dqkv + QD + KVD, QKV, a.norm1, l, LoraTarget::kV, T);
    clock.mark("backward: GEMMs");
    norm_back(gw.input_norm, a.residual, w.input_norm, a.rstd1, /*next_branch=*/l > 0, nullptr,
              add_to_layer_grads);
    reached(static_cast<int>(2 + (d.n_layers - 1 - l)));
  }
  // the embedding's side in fp32 (a bf16 stream's gradient widened exactly)
  if (dm.bf16_residual) ok(cuda::convert_bf16_to_f32(dm.d_residual, d_stream, T * C, dm.stream), "convert");
  if (dropout) {  // the embedding output's mask
    ok(cuda::dropout(dm.d_residual, dm.d_residual, T * C, dropout_key(drop, -1, 0), dm.stream), "dropout");
  }
  if (d.vocab_parallel()) {
    vp_embedding_backward(dm, g.host_tokens, T, dm.d_residual);
  } else {
    if (dm.dims.tied) wait_for_weight_grad(dm, head_weight_grad);
    ok(cuda::embedding_backward(dm.grad_tensors.embed, dm.d_residual, dm.tokens, T, d.vocab, C, dm.embedding_ws,
                                dm.embedding_ws_bytes, dm.stream),
       "embedding_backward");
  }
  clock.mark("embedding");
  join_weight_grads(dm);  // the gradients are whole, and the next micro-batch may rewrite the operands
  reached(static_cast<int>(d.n_layers + 2));
}

}  // namespace

double device_forward_backward(DeviceModel& dm, const Batch& batch, float grad_scale, const DropoutState& dropout,
                               const BackwardHook& hook, ops::StepGuard* queued_loss, bool first_micro_batch) {
  // (only the points the device has passed: with queued steps the step before may still run, and
  // reading its last points would make the host wait for it, which the profile must not cause)
  dm.clock.step_started("other (host, optimizer)", /*only_reached=*/true);
  if (dm.side) dm.side->clock.step_started("waiting", /*only_reached=*/true);
  const Geometry g = upload_batch(dm, batch, /*with_loss=*/true);
  dm.clock.mark("batch to the device");
  forward_layers(dm, g, dropout);
  const LossSum loss = head_and_loss(dm, g, grad_scale, /*backward=*/true);
  sum_stage_norm(dm, 0);  // (an untied LM head's gradient)
  if (hook) {  // (stage 0's bucket holds the head's gradient)
    join_weight_grads(dm);
    hook(0);
  }
  backward_layers(dm, g, dropout, hook, loss.head_weight_grad);
  dm.layer_grads_stale = false;  // (written now)
  if (queued_loss == nullptr) return loss.read(dm);
  RECLM_CHECK(loss.host == 0.0, "queued steps: a loss known on the host (vocabulary parallelism)");
  ok(cuda::step_guard_add_loss(queued_loss, dm.chunk_loss, loss.device_chunks, first_micro_batch, dm.stream),
     "step_guard_add_loss");
  return 0.0;
}

void device_forward_hidden(DeviceModel& dm, const Batch& batch, const int32_t* rows, int64_t R, float* out) {
  RECLM_CHECK(!dm.dims.vocab_parallel(), "forward_hidden under vocabulary parallelism (a collective lookup)");
  const int64_t C = dm.dims.d_model;
  dm.clock.mark("other (host, optimizer)");
  const Geometry g = upload_batch(dm, batch, /*with_loss=*/false);
  for (int64_t r = 0; r < R; ++r)
    RECLM_CHECK(rows[r] >= 0 && rows[r] < g.T, "row {} outside the batch's {} tokens", rows[r], g.T);
  dm.clock.mark("batch to the device");
  forward_layers(dm, g, DropoutState{}, /*fp32_hidden=*/true);
  copy_to_device(dm.loss_rows, rows, R * sizeof(int32_t));
  ok(cuda::embedding_forward(dm.head_h32, dm.final_normed, dm.loss_rows, R, C, dm.stream), "gather rows");
  copy_to_host(out, dm.head_h32, R * C * sizeof(float));
  dm.clock.mark("head: row gather + scatter");
}

double device_forward_loss(DeviceModel& dm, const Batch& batch) {
  dm.clock.mark("other (host, optimizer)");
  const Geometry g = upload_batch(dm, batch, /*with_loss=*/true);
  dm.clock.mark("batch to the device");
  forward_layers(dm, g, DropoutState{});  // evaluation: no dropout
  return head_and_loss(dm, g, 0.0f, /*backward=*/false).read(dm);
}

void merge_lora_weights(DeviceModel& dm) {
  const ModelDims& d = dm.dims;
  if (!d.has_lora()) return;
  for (int64_t l = 0; l < d.n_layers; ++l) {
    const LayerTensors& w = dm.param_tensors.layers[l];
    const std::array<const float*, kNumLoraTargets> base = {w.wq, w.wk, w.wv, w.wo, w.w_gate, w.w_up, w.w_down};
    for (int t = 0; t < kNumLoraTargets; ++t) {
      if (w.lora_a[t] == nullptr) continue;
      const auto target = static_cast<LoraTarget>(t);
      const int64_t in = d.proj_in(target), out = d.proj_out(target);
      bf16* merged = dm.weight_bf16(base[t]);
      to_bf16(dm, merged, base[t], out * in);
      // merged [out, in] += scale · B [out, r] · A [r, in]: the input-gradient GEMM's form (dinp = dout·W)
      ok(cuda::linear_backward_bf16(dm.gemm, merged, true, nullptr, nullptr, dm.weight_bf16(w.lora_b[t]), nullptr,
                                    dm.weight_bf16(w.lora_a[t]), out, in, d.lora_rank, dm.stream, 0, d.lora_scale()),
         "merge_lora_weights");
    }
  }
}

}  // namespace reclm::device
