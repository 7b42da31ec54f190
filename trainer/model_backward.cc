// Backward pass, layer by layer in reverse. One buffer, d_residual, carries ∂L/∂(residual
// stream): the skip connections pass it through unchanged and each block's branch adds to it
// (rmsnorm_backward accumulates into dx), so no separate residual-gradient copies exist.
#include <cstring>
#include <string>

#include "kernels/ops.h"
#include "runtime/errors.h"
#include "trainer/model.h"
#include "trainer/model_internal.h"
#include "trainer/vocab_parallel.h"

namespace reclm {

namespace {

// Gradient reaching a branch's output: d_residual itself, or (dropout) d_residual through the
// branch's mask, written to `scratch` (free once the LM head's backward is done).
const float* branch_grad(const float* d_residual, const DropoutState& drop, uint32_t site,
                         int64_t n, float* scratch) {
  if (!drop.active()) return d_residual;
  ops::dropout(scratch, d_residual, n, drop.rate, drop.seed, drop.stream, site);
  return scratch;
}

// A projection's adapter, given dy [T, out] at the projection's output and its input x [T, in]:
//   dB += dyᵀ·u (u already holds scale·x·Aᵀ),  du = scale·dy·B,  dA += duᵀ·x,  dx += du·A.
// dx must already hold the base projection's input gradient (this accumulates onto it).
void lora_backward(Model& model, int64_t layer, LoraTarget target, float* dx, const float* dy,
                   const float* x, int64_t T) {
  const LoraSite p = lora_site(model, model.params, layer, target);
  if (p.a == nullptr) return;
  const LoraSite g = lora_site(model, model.grads, layer, target);
  float* du = model.acts.d_lora_u;
  ops::linear_backward(du, g.b, dy, p.u, p.b, T, p.rank, p.out, /*accumulate_dinp=*/false);
  ops::scale_inplace(du, p.scale, T * p.rank);
  ops::linear_backward(dx, g.a, du, x, p.a, T, p.in, p.rank, /*accumulate_dinp=*/true);
}

void backward_layers(Model& model, const Batch& batch, const BackwardHook& hook) {
  const auto reached = [&](int stage) {
    if (hook) hook(stage);
  };
  const ModelDims& d = model.dims;
  Activations& a = model.acts;
  const BatchGeometry geo = batch_geometry(model, batch);
  const int64_t T = geo.T, C = d.d_model, F = d.d_ff;

  const DropoutState& drop = model.dropout;
  const bool frozen_base = d.has_lora();
  std::memset(a.d_residual, 0, T * C * sizeof(float));
  ops::rmsnorm_backward(a.d_residual, model.grads.final_norm, a.d_final, a.residual[d.n_layers],
                        model.params.final_norm, a.final_rstd, T, C);
  reached(1);
  for (int64_t l = d.n_layers - 1; l >= 0; --l) {
    const LayerTensors& w = model.params.layers[l];
    const LayerTensors& g = model.grads.layers[l];
    // Under LoRA the base matrices are frozen: null weight gradients skip their GEMMs.
    const auto dW = [&](float* grad) { return frozen_base ? nullptr : grad; };
    // MLP block (with dropout, the branch's gradient is d_residual through the same mask)
    const float* d_mlp_out = branch_grad(a.d_residual, drop, dropout_site(l, 1), T * C, a.d_final);
    ops::linear_backward(a.d_act, dW(g.w_down), d_mlp_out, a.act[l], w.w_down, T, F, C, false);
    lora_backward(model, l, LoraTarget::kDown, a.d_act, d_mlp_out, a.act[l], T);
    ops::swiglu_backward(a.d_gate, a.d_up, a.d_act, a.gate[l], a.up[l], T * F);
    ops::linear_backward(a.d_normed, dW(g.w_gate), a.d_gate, a.norm2[l], w.w_gate, T, C, F, false);
    lora_backward(model, l, LoraTarget::kGate, a.d_normed, a.d_gate, a.norm2[l], T);
    ops::linear_backward(a.d_normed, dW(g.w_up), a.d_up, a.norm2[l], w.w_up, T, C, F, true);
    lora_backward(model, l, LoraTarget::kUp, a.d_normed, a.d_up, a.norm2[l], T);
    ops::rmsnorm_backward(a.d_residual, g.post_norm, a.d_normed, a.residual_mid[l], w.post_norm,
                          a.rstd2[l], T, C);
    reached(kBackwardPoll);
    // attention block
    const float* d_attn_out = branch_grad(a.d_residual, drop, dropout_site(l, 0), T * C, a.d_final);
    ops::linear_backward(a.d_attn, dW(g.wo), d_attn_out, a.attn[l], w.wo, T, d.q_dim(), C, false);
    lora_backward(model, l, LoraTarget::kO, a.d_attn, d_attn_out, a.attn[l], T);
    ops::attention_backward(a.dq, a.dk, a.dv, a.d_attn, a.q[l], a.k[l], a.v[l], a.attn[l],
                            a.lse[l], batch.cu_seqlens.data(), geo.prefix_lens, batch.n_segments(),
                            geo.attention);
    reached(kBackwardPoll);
    ops::rope_backward(a.dq, a.dq, geo.pos_inter, geo.pos_intra, T, d.n_heads, d.head_dim, d.rope_theta);
    ops::rope_backward(a.dk, a.dk, geo.pos_inter, geo.pos_intra, T, d.n_kv_heads, d.head_dim, d.rope_theta);
    ops::linear_backward(a.d_normed, dW(g.wq), a.dq, a.norm1[l], w.wq, T, C, d.q_dim(), false);
    lora_backward(model, l, LoraTarget::kQ, a.d_normed, a.dq, a.norm1[l], T);
    ops::linear_backward(a.d_normed, dW(g.wk), a.dk, a.norm1[l], w.wk, T, C, d.kv_dim(), true);
    lora_backward(model, l, LoraTarget::kK, a.d_normed, a.dk, a.norm1[l], T);
    ops::linear_backward(a.d_normed, dW(g.wv), a.dv, a.norm1[l], w.wv, T, C, d.kv_dim(), true);
    lora_backward(model, l, LoraTarget::kV, a.d_normed, a.dv, a.norm1[l], T);
    ops::rmsnorm_backward(a.d_residual, g.input_norm, a.d_normed, a.residual[l], w.input_norm,
                          a.rstd1[l], T, C);
    reached(static_cast<int>(2 + (d.n_layers - 1 - l)));
  }
  if (drop.active()) {
    ops::dropout(a.d_residual, a.d_residual, T * C, drop.rate, drop.seed, drop.stream,
                 dropout_site(-1, 0));
  }
  if (d.vocab_parallel()) {
    vocab_parallel_embedding_backward(*model.comm, d.vocab_shard, model.grads.embed_rows,
                                      a.d_residual, batch.tokens.data(), T, C);
  } else {
    ops::embedding_backward(model.grads.embed, a.d_residual, batch.tokens.data(), T, C);
  }
  reached(static_cast<int>(d.n_layers + 2));
}

}  // namespace

int backward_stage(const std::string& name, int64_t n_layers) {
  if (name == "model.norm.weight") return 1;
  // (also the pieces "model.embed_tokens.weight@replicated" / "@items" of vocabulary parallelism)
  if (name.starts_with("lm_head.weight")) return 0;
  if (name.starts_with("model.embed_tokens.weight")) return static_cast<int>(n_layers + 2);
  const std::string prefix = "model.layers.";
  RECLM_CHECK(name.rfind(prefix, 0) == 0, "backward_stage: unknown parameter {}", name);
  const int64_t layer = std::stoll(name.substr(prefix.size()));
  RECLM_CHECK(layer >= 0 && layer < n_layers, "backward_stage: {} of {} layers", name, n_layers);
  return static_cast<int>(2 + (n_layers - 1 - layer));
}

double forward_backward(Model& model, const Batch& batch, float grad_scale,
                        const BackwardHook& hook) {
  check_batch_fits(model, batch);
  forward_layers(model, batch);
  const double loss_sum = head_and_loss(model, batch, grad_scale, /*backward=*/true);
  if (hook) hook(0);
  backward_layers(model, batch, hook);
  return loss_sum;
}

}  // namespace reclm
