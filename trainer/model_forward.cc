// Forward pass and the fused LM head + cross-entropy.
//   T tokens (packed), C = d_model, F = d_ff, NH/NKV heads of HD dims, V = vocabulary.
#include <cmath>
#include <cstring>

#include "kernels/ops.h"
#include "runtime/errors.h"
#include "trainer/model.h"
#include "trainer/model_internal.h"
#include "trainer/vocab_parallel.h"

namespace reclm {

void check_batch_fits(const Model& model, const Batch& batch) {
  const int64_t T = batch.n_tokens();
  RECLM_CHECK(T > 0 && T <= model.acts.max_tokens, "batch of {} tokens, arena holds {}", T,
              model.acts.max_tokens);
  RECLM_CHECK(batch.targets.size() == static_cast<size_t>(T) &&
                  batch.loss_weights.size() == static_cast<size_t>(T) &&
                  batch.pos_inter.size() == static_cast<size_t>(T),
              "batch arrays disagree in length");
  RECLM_CHECK(batch.n_segments() >= 1 && batch.cu_seqlens.front() == 0 &&
                  batch.cu_seqlens.back() == T,
              "cu_seqlens must cover [0, {})", T);
  for (int32_t id : batch.tokens) {
    RECLM_CHECK(id >= 0 && id < model.dims.vocab, "token id {} outside vocabulary {}", id,
                model.dims.vocab);
  }
}

BatchGeometry batch_geometry(const Model& model, const Batch& batch) {
  const ModelDims& d = model.dims;
  const int64_t T = batch.n_tokens();
  const int32_t* intra = nullptr;
  if (d.positions_2d) {  // 2D model fed 1D batches: every token is standalone (intra 0)
    intra = batch.pos_intra.empty() ? model.acts.zero_positions.data() : batch.pos_intra.data();
  }
  return {T, batch.prefix_lens.empty() ? nullptr : batch.prefix_lens.data(), batch.pos_inter.data(),
          intra,
          {T, d.n_heads, d.n_kv_heads, d.head_dim, 1.0f / std::sqrt(static_cast<float>(d.head_dim))}};
}

LoraSite lora_site(const Model& model, const ModelTensors& tensors, int64_t layer, LoraTarget target) {
  const int t = static_cast<int>(target);
  const LayerTensors& w = tensors.layers[layer];
  if (w.lora_a[t] == nullptr) return {};
  const ModelDims& d = model.dims;
  return {w.lora_a[t], w.lora_b[t], model.acts.lora_u[layer][t], d.lora_rank, d.lora_scale(),
          d.proj_in(target), d.proj_out(target)};
}

// The scale is folded into the saved u, so the up-projection is one accumulating GEMM and
// backward's dB = dyᵀ·u needs no extra pass.
void lora_forward(float* y, const float* x, const LoraSite& site, int64_t T) {
  if (site.a == nullptr) return;
  ops::linear_forward(site.u, x, site.a, T, site.in, site.rank);
  ops::scale_inplace(site.u, site.scale, T * site.rank);
  ops::linear_forward(y, site.u, site.b, T, site.rank, site.out, /*accumulate_out=*/true);
}

// out[T, OC] = skip + dropout(inp[T, IC] · Wᵀ + LoRA). Without dropout the projection
// accumulates straight onto the copied skip; with it the branch goes through `scratch` [T, OC]
// first (the adapter's output is part of the branch, so it is dropped with it).
static void add_branch(float* out, const float* skip, const float* inp, const float* weight,
                       const LoraSite& lora, int64_t T, int64_t IC, int64_t OC,
                       const DropoutState& drop, uint32_t site, float* scratch) {
  if (!drop.active()) {
    std::memcpy(out, skip, T * OC * sizeof(float));
    ops::linear_forward(out, inp, weight, T, IC, OC, /*accumulate_out=*/true);
    lora_forward(out, inp, lora, T);
    return;
  }
  ops::linear_forward(scratch, inp, weight, T, IC, OC);
  lora_forward(scratch, inp, lora, T);
  ops::dropout(scratch, scratch, T * OC, drop.rate, drop.seed, drop.stream, site);
  ops::residual_forward(out, skip, scratch, T * OC);
}

void forward_layers(Model& model, const Batch& batch) {
  const ModelDims& d = model.dims;
  Activations& a = model.acts;
  const BatchGeometry geo = batch_geometry(model, batch);
  const int64_t T = geo.T, C = d.d_model, F = d.d_ff;

  if (d.vocab_parallel()) {
    RECLM_CHECK(model.comm != nullptr, "vocabulary parallelism without a communicator");
    vocab_parallel_embedding_forward(*model.comm, d.vocab_shard, model.params.embed_rows,
                                     batch.tokens.data(), T, C, a.residual[0]);
  } else {
    ops::embedding_forward(a.residual[0], model.params.embed, batch.tokens.data(), T, C);
  }
  const DropoutState& drop = model.dropout;
  if (drop.active()) {
    ops::dropout(a.residual[0], a.residual[0], T * C, drop.rate, drop.seed, drop.stream,
                 dropout_site(-1, 0));
  }
  for (int64_t l = 0; l < d.n_layers; ++l) {
    const LayerTensors& w = model.params.layers[l];
    const auto lora = [&](LoraTarget t) { return lora_site(model, model.params, l, t); };
    // attention block: residual_mid = x + o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x)
    ops::rmsnorm_forward(a.norm1[l], a.rstd1[l], a.residual[l], w.input_norm, T, C, d.norm_eps);
    ops::linear_forward(a.q[l], a.norm1[l], w.wq, T, C, d.q_dim());
    lora_forward(a.q[l], a.norm1[l], lora(LoraTarget::kQ), T);
    ops::linear_forward(a.k[l], a.norm1[l], w.wk, T, C, d.kv_dim());
    lora_forward(a.k[l], a.norm1[l], lora(LoraTarget::kK), T);
    ops::linear_forward(a.v[l], a.norm1[l], w.wv, T, C, d.kv_dim());
    lora_forward(a.v[l], a.norm1[l], lora(LoraTarget::kV), T);
    ops::rope_forward(a.q[l], a.q[l], geo.pos_inter, geo.pos_intra, T, d.n_heads, d.head_dim, d.rope_theta);
    ops::rope_forward(a.k[l], a.k[l], geo.pos_inter, geo.pos_intra, T, d.n_kv_heads, d.head_dim, d.rope_theta);
    ops::attention_forward(a.attn[l], a.lse[l], a.q[l], a.k[l], a.v[l], batch.cu_seqlens.data(),
                           geo.prefix_lens, batch.n_segments(), geo.attention);
    add_branch(a.residual_mid[l], a.residual[l], a.attn[l], w.wo, lora(LoraTarget::kO), T,
               d.q_dim(), C, drop, dropout_site(l, 0), a.d_normed);
    // MLP block: residual_out = residual_mid + down(silu(gate(h)) · up(h)), h = rmsnorm(residual_mid)
    ops::rmsnorm_forward(a.norm2[l], a.rstd2[l], a.residual_mid[l], w.post_norm, T, C, d.norm_eps);
    ops::linear_forward(a.gate[l], a.norm2[l], w.w_gate, T, C, F);
    lora_forward(a.gate[l], a.norm2[l], lora(LoraTarget::kGate), T);
    ops::linear_forward(a.up[l], a.norm2[l], w.w_up, T, C, F);
    lora_forward(a.up[l], a.norm2[l], lora(LoraTarget::kUp), T);
    ops::swiglu_forward(a.act[l], a.gate[l], a.up[l], T * F);
    add_branch(a.residual[l + 1], a.residual_mid[l], a.act[l], w.w_down, lora(LoraTarget::kDown),
               T, F, C, drop, dropout_site(l, 1), a.d_normed);
  }
  ops::rmsnorm_forward(a.final_normed, a.final_rstd, a.residual[d.n_layers], model.params.final_norm,
                       T, C, d.norm_eps);
}

// LM head and loss, a chunk of tokens at a time so only [chunk, V'] logits ever exist, where V'
// is the batch's softmax class range (the whole vocabulary, or e.g. the item tokens). Only rows
// with a nonzero loss weight reach the head: when some have none (infilling's Part A, a
// history's first item) their hidden states, targets and weights are first gathered into
// contiguous scratch, so the head's cost follows the tokens that carry loss. With
// grad_scale != 0 the chunk's dlogits are formed in place and pushed straight through the head:
// d_h[chunk] = dlogits · W[range] and dW[range] += dlogitsᵀ · h[chunk]; d_final is d_h scattered
// back to its rows (zero elsewhere).
double head_and_loss(Model& model, const Batch& batch, float grad_scale, bool backward) {
  const ModelDims& d = model.dims;
  Activations& a = model.acts;
  const int64_t T = batch.n_tokens(), C = d.d_model;
  const int64_t first = batch.class_begin;
  const int64_t V = batch.class_count > 0 ? batch.class_count : d.vocab - first;
  RECLM_CHECK(first >= 0 && V > 0 && first + V <= d.vocab, "softmax range [{}, {}) outside vocabulary {}",
              first, first + V, d.vocab);
  // (null under vocabulary parallelism, which uses model.params.head_rows instead)
  const float* head = model.params.lm_head == nullptr ? nullptr : model.params.lm_head + first * C;
  // A wholly frozen head (LoRA, embeddings not trained) needs no weight gradient.
  float* d_head = model.head_trains && model.grads.lm_head != nullptr ? model.grads.lm_head + first * C : nullptr;

  // Rows with loss. Scratch: d_normed holds gathered h, d_residual gathered d_h (both are free
  // until backward_layers starts).
  std::vector<int32_t>& rows = a.loss_rows;
  rows.clear();
  for (int64_t t = 0; t < T; ++t) {
    if (batch.loss_weights[t] != 0.0f) rows.push_back(static_cast<int32_t>(t));
  }
  const int64_t R = static_cast<int64_t>(rows.size());
  const bool gathered = R < T;
  const float* h_all = a.final_normed;
  const int32_t* targets = batch.targets.data();
  const float* weights = batch.loss_weights.data();
  float* d_h_all = a.d_final;
  if (gathered) {
    a.loss_targets.resize(R);
    a.loss_weights.resize(R);
    for (int64_t i = 0; i < R; ++i) {
      std::memcpy(a.d_normed + i * C, a.final_normed + rows[i] * C, C * sizeof(float));
      a.loss_targets[i] = batch.targets[rows[i]];
      a.loss_weights[i] = batch.loss_weights[rows[i]];
    }
    h_all = a.d_normed;
    targets = a.loss_targets.data();
    weights = a.loss_weights.data();
    d_h_all = a.d_residual;
  }

  double loss_sum = 0.0;
  if (d.vocab_parallel()) {  // the head's rows are spread over the ranks: one collective call
    RECLM_CHECK(model.comm != nullptr, "vocabulary parallelism without a communicator");
    loss_sum = vocab_parallel_cross_entropy(*model.comm, d.vocab_shard, model.params.head_rows,
                                            h_all, targets, weights, R, C, first, V,
                                            backward ? grad_scale : 0.0f,
                                            backward ? d_h_all : nullptr, model.grads.head_rows);
  }
  for (int64_t t0 = 0; t0 < R && !d.vocab_parallel(); t0 += a.head_chunk) {
    const int64_t n = std::min(a.head_chunk, R - t0);
    const float* h = h_all + t0 * C;
    ops::linear_forward(a.logits, h, head, n, C, V);
    if (backward) {
      loss_sum += ops::cross_entropy_forward_backward(a.logits, a.losses + t0, a.logits,
                                                      targets + t0, weights + t0, n, V, first,
                                                      grad_scale);
      ops::linear_backward(d_h_all + t0 * C, d_head, a.logits, h, head, n, C, V,
                           /*accumulate_dinp=*/false);
    } else {
      loss_sum += ops::cross_entropy_forward(a.losses + t0, a.logits, targets + t0, weights + t0,
                                             n, V, first);
    }
  }
  if (backward && gathered) {
    std::memset(a.d_final, 0, T * C * sizeof(float));
    for (int64_t i = 0; i < R; ++i) {
      std::memcpy(a.d_final + rows[i] * C, a.d_residual + i * C, C * sizeof(float));
    }
  }
  return loss_sum;
}

void forward_hidden(Model& model, const Batch& batch) {
  check_batch_fits(model, batch);
  const bool dropout_enabled = model.dropout.enabled;
  model.dropout.enabled = false;  // inference
  forward_layers(model, batch);
  model.dropout.enabled = dropout_enabled;
}

double forward_loss(Model& model, const Batch& batch) {
  check_batch_fits(model, batch);
  forward_layers(model, batch);
  return head_and_loss(model, batch, 0.0f, /*backward=*/false);
}

}  // namespace reclm
