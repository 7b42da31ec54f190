// The network of DESIGN.md §1 on the CPU backend: token embedding → n_layers × [RMSNorm →
// attention (RoPE, grouped-query) → residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm →
// LM head (tied or untied), with a fused, chunked cross-entropy.
//
// Forward and backward are written per layer by hand (llm.c style), no autograd graph.
// Memory: parameters and gradients are each one buffer in the named layout (param_layout.h);
// activations live in one arena sized once for `max_tokens` tokens per micro-batch.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "runtime/tensor.h"
#include "trainer/param_layout.h"

namespace reclm {

class Communicator;

// Pointers to one layer's tensors inside a layout-shaped buffer (parameters or gradients).
struct LayerTensors {
  float* input_norm;   // [C]
  float* wq;           // [NH·HD, C]
  float* wk;           // [NKV·HD, C]
  float* wv;           // [NKV·HD, C]
  float* wo;           // [C, NH·HD]
  float* post_norm;    // [C]
  float* w_gate;       // [F, C]
  float* w_up;         // [F, C]
  float* w_down;       // [C, F]
  // LoRA adapters per projection, indexed by LoraTarget; null where the projection has none.
  std::array<float*, kNumLoraTargets> lora_a{};  // [r, in]
  std::array<float*, kNumLoraTargets> lora_b{};  // [out, r]
};
struct ModelTensors {
  float* embed;        // [V, C]; null under vocabulary parallelism (then embed_rows)
  std::vector<LayerTensors> layers;
  float* final_norm;   // [C]
  float* lm_head;      // [V, C]; == embed when tied; null under vocabulary parallelism
  // Vocabulary parallelism (ModelDims::vocab_parallel): the tables' two pieces.
  ShardedRows embed_rows{};
  ShardedRows head_rows{};  // == embed_rows when tied
};
ModelTensors model_tensors(float* base, const ParamLayout& layout, const ModelDims& dims);

// Saved forward activations and backward scratch, carved from one arena.
struct Activations {
  int64_t max_tokens = 0;
  int64_t head_chunk = 0;  // tokens per LM-head chunk (bounds the logits buffer)
  std::vector<float*> residual;  // [L+1] × [T, C]: residual[l] is layer l's input
  std::vector<float*> residual_mid, norm1, norm2, q, k, v, attn, lse, gate, up, act;
  std::vector<float*> rstd1, rstd2;
  float* final_normed;  // [T, C]
  float* final_rstd;    // [T]
  float* logits;        // [head_chunk, V], reused per chunk, becomes dlogits in place
  float* losses;        // [T]
  // backward scratch
  float* d_residual;    // [T, C]
  float* d_normed;      // [T, C]
  float* d_final;       // [T, C]  gradient at the final norm's output
  float* dq;            // [T, NH·HD]
  float* dk;            // [T, NKV·HD]
  float* dv;            // [T, NKV·HD]
  float* d_attn;        // [T, NH·HD]
  float* d_gate;        // [T, F]
  float* d_up;          // [T, F]
  float* d_act;         // [T, F]
  // LoRA (only when dims.lora_rank > 0): per layer and targeted projection the adapter's
  // scaled bottleneck u = scale·(x·Aᵀ) [T, r]; d_lora_u [T, r] is backward scratch.
  std::vector<std::array<float*, kNumLoraTargets>> lora_u;
  float* d_lora_u = nullptr;
  std::vector<int32_t> zero_positions;  // [T] intra positions for 2D models fed 1D batches
  std::vector<int32_t> loss_rows;       // [≤ T] rows with a loss weight (head_and_loss)
  std::vector<int32_t> loss_targets;    // [≤ T] their targets
  std::vector<float> loss_weights;      // [≤ T] their weights
  std::shared_ptr<Storage> arena;
};

// Dropout (GPT-2 style: on the embedding output and on each block's attention and MLP branch
// before it joins the residual stream). Applied by forward_backward and forward_loss only while
// `enabled` — the train loop enables it for training micro-batches and disables it for
// validation and evaluation; forward_hidden never applies it. Masks are regenerated from
// (seed, stream) (kernels ops::dropout), so every micro-batch gets its own masks and a rerun the
// same ones.
struct DropoutState {
  float rate = 0.0f;
  bool enabled = false;
  uint64_t seed = 0;
  uint64_t stream = 0;  // e.g. the global micro-batch index
  bool active() const { return enabled && rate > 0.0f; }
};

struct Model {
  ModelDims dims;
  DropoutState dropout;
  ParamLayout layout;
  std::shared_ptr<Storage> param_storage;  // [layout.total_floats()]
  std::shared_ptr<Storage> grad_storage;   // same layout
  ModelTensors params;
  ModelTensors grads;
  Activations acts;
  // False when the LM head's weights are wholly frozen (LoRA without trained embeddings): its
  // weight gradient is then skipped. Base matrices under LoRA skip theirs likewise.
  bool head_trains = true;
  // The job's ranks, for the collectives of vocabulary parallelism (dims.vocab_parallel()): the
  // embedding lookup and the LM head exchange activations, so every rank runs forward and
  // backward the same number of times. Unused (may be null) otherwise.
  Communicator* comm = nullptr;

  Model(const ModelDims& dims, int64_t max_tokens);
  float* param_data() const { return static_cast<float*>(param_storage->data()); }
  float* grad_data() const { return static_cast<float*>(grad_storage->data()); }
};

// Normal(0, init_std) for matrices and embeddings (o_proj and down_proj further scaled by
// 1/sqrt(2·n_layers), GPT-2 style), ones for norms. Keyed per tensor by (seed, tensor index).
// LoRA: lora_A ~ Normal(0, 1/sqrt(in_features)), lora_B = 0, so a fresh adapter changes
// nothing; adapters come last in the layout, so base tensors draw exactly as without LoRA.
void init_weights(Model& model, uint64_t seed, float init_std);

void zero_grads(Model& model);

// Backward finishes the parameter gradients in reverse layout order, in stages: 0 the LM head
// (untied: lm_head.weight), 1 the final norm, 2 + (n_layers − 1 − l) layer l's tensors (LoRA
// adapters included), n_layers + 2 the token embedding (tied: the head's share too). A hook
// given to forward_backward is called with each stage as soon as its gradients are final, and
// with kBackwardPoll between the big operations of a layer, so that data parallelism can start
// all-reducing finished gradients and keep them moving while backward goes on
// (trainer/grad_buckets.h).
using BackwardHook = std::function<void(int stage)>;
inline constexpr int kBackwardPoll = -1;
// The stage that finishes parameter `name`'s gradient (a layout entry name).
int backward_stage(const std::string& name, int64_t n_layers);

// One micro-batch forward and backward. Parameter gradients ACCUMULATE into model.grads with
// dL/dlogit scaled by grad_scale (1 / total loss weight of the optimizer step gives the mean).
// Under LoRA the frozen base matrices get no gradient (left as they are, zero after zero_grads);
// norms and embeddings still get theirs, which the optimizer ignores outside the train ranges.
// LoRA projections compute y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ, scale = alpha/rank, no dropout inside.
// Returns Σ weight·loss over the batch.
double forward_backward(Model& model, const Batch& batch, float grad_scale,
                        const BackwardHook& hook = {});

// Forward only (validation). Returns Σ weight·loss over the batch.
double forward_loss(Model& model, const Batch& batch);

// Forward through the final norm only (inference): model.acts.final_normed [T, C] then holds each
// token's hidden state; logits of token t for class c are final_normed[t] · lm_head[c].
void forward_hidden(Model& model, const Batch& batch);

}  // namespace reclm
