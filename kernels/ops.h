// kernels/ops.h — every op of the trainer, declared once (DESIGN.md §4).
//
// kernels/cpu/ implements each op on the host (fp32, OpenMP + OpenBLAS): it is the CPU backend
// and the reference that CUDA kernels are held to. Conventions for every op here:
//   * Tensors are dense row-major float buffers; shapes are given in the comment as [rows, cols].
//   * Linear weights use the Hugging Face nn.Linear layout W[out_features, in_features].
//   * Gradients of *parameters* accumulate (+=), so micro-batch accumulation needs no extra pass;
//     gradients of *activations* overwrite unless the op says it accumulates.
//   * Results are deterministic for a fixed OpenMP thread count (no racy float reductions).
#pragma once

#include <cstdint>

namespace reclm::ops {

// ---- embedding ---------------------------------------------------------------------------
// out[t, :] = table[ids[t], :]                    out [n_tokens, dim], table [vocab, dim]
void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n_tokens,
                       int64_t dim);
// dtable[ids[t], :] += dout[t, :]                 (accumulates; rows summed in token order)
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n_tokens,
                        int64_t dim);

// ---- embedding bag ---------------------------------------------------------------------------
// Bag b covers ids[offsets[b] .. offsets[b+1]) (offsets [n_bags + 1], offsets[0] == 0,
// non-decreasing): an item built from several feature tokens.
//   kSum:  out[b, :] = Σ_j table[ids[j], :]   summed in position order from 0.0f
//   kMean: out[b, :] = (Σ_j table[ids[j], :]) / count_b      an empty bag gives zeros
enum class EmbeddingBagMode { kSum, kMean };
void embedding_bag_forward(float* out, const float* table, const int32_t* ids,
                           const int32_t* offsets, int64_t n_bags, int64_t dim,
                           EmbeddingBagMode mode);
// dtable[ids[j], :] += g_b, g_b = dout[b, :] (kSum) or dout[b, :] / count_b (kMean), for every j
// of bag b; each row accumulates in (bag, position) order (accumulates; deterministic).
void embedding_bag_backward(float* dtable, const float* dout, const int32_t* ids,
                            const int32_t* offsets, int64_t n_bags, int64_t dim,
                            EmbeddingBagMode mode);

// ---- linear (GEMM) ---------------------------------------------------------------------------
// out[T, OC] = inp[T, C] · W[OC, C]ᵀ  (+ out if accumulate_out)
void linear_forward(float* out, const float* inp, const float* weight, int64_t T, int64_t C,
                    int64_t OC, bool accumulate_out = false);
// dinp[T, C] = dout[T, OC] · W  (+= if accumulate_dinp);  dweight[OC, C] += doutᵀ · inp.
// Either output may be null (frozen weight / input needs no gradient).
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int64_t T, int64_t C, int64_t OC, bool accumulate_dinp);

// ---- dropout -------------------------------------------------------------------------------
// Inverted dropout with a counter-based mask: out[i] = in[i] · keep_i / (1 − rate), where
// keep_i = [u_i ≥ rate] and u_i is a Philox draw keyed by (seed, stream, site, i) — the mask is
// never stored; backward calls the same function on the gradient with the same key. out may
// alias in. rate in [0, 1).
void dropout(float* out, const float* in, int64_t n, float rate, uint64_t seed, uint64_t stream,
             uint32_t site);

// ---- residual ------------------------------------------------------------------------------
// out[n] = a[n] + b[n]   (out may alias a or b)
void residual_forward(float* out, const float* a, const float* b, int64_t n);

// ---- RMSNorm -------------------------------------------------------------------------------
// y = x · rstd · weight,  rstd[row] = 1 / sqrt(mean(x[row]²) + eps)
// y, x [n_rows, dim], weight [dim], rstd [n_rows] (saved for backward)
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* weight, int64_t n_rows,
                     int64_t dim, float eps);
// dx += ∂L/∂x (accumulates: dx is the residual stream's gradient), dweight += ∂L/∂weight
void rmsnorm_backward(float* dx, float* dweight, const float* dy, const float* x,
                      const float* weight, const float* rstd, int64_t n_rows, int64_t dim);

// ---- RoPE ----------------------------------------------------------------------------------
// Rotary position embedding on x [n_tokens, n_heads, head_dim], Hugging Face "rotate_half"
// pairing. 1D (pos_intra == nullptr): pairs (i, i + head_dim/2), angle pos_inter[t] · θ^(-2i/head_dim).
// 2D (ChatGLM): the head is two rotary blocks of head_dim/2; the first block rotates by
// pos_inter, the second by pos_intra, each with pairs (i, i + head_dim/4) and
// angle pos · θ^(-2i/(head_dim/2)). head_dim must be divisible by 2 (1D) or 4 (2D).
// out may alias inp.
void rope_forward(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                  int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta);
// dinp = Rᵀ · dout (rotation by the negative angle); dinp may alias dout.
void rope_backward(float* dinp, const float* dout, const int32_t* pos_inter,
                   const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                   float theta);

// ---- attention -----------------------------------------------------------------------------
// Packed variable-length batch: segment s covers tokens [cu_seqlens[s], cu_seqlens[s+1]).
// A token attends only within its segment. With local indices i (query) and j (key) in the
// segment, i may see j iff  j <= i  or  j < prefix_lens[s]  (causal with a bidirectional
// prefix: Part A of GLM infilling). prefix_lens == nullptr means plain causal; a prefix equal
// to the segment length means fully bidirectional.
// Grouped-query: query head h reads kv head h / (n_heads / n_kv_heads).
struct AttentionShape {
  int64_t n_tokens;     // T, total over all segments
  int64_t n_heads;      // query heads
  int64_t n_kv_heads;   // divides n_heads
  int64_t head_dim;
  float scale;          // softmax scale, usually 1/sqrt(head_dim)
};
// q [T, n_heads, head_dim], k/v [T, n_kv_heads, head_dim] → out [T, n_heads, head_dim],
// lse [n_heads, T] (natural-log log-sum-exp of the scaled scores, saved for backward).
// Tiled with an online softmax: memory is linear in T, no T×T matrix is ever formed.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const int32_t* cu_seqlens, const int32_t* prefix_lens, int64_t n_segments,
                       const AttentionShape& shape);
// dq/dk/dv overwrite (same shapes as q/k/v). Probabilities are recomputed from lse.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                        const float* k, const float* v, const float* out, const float* lse,
                        const int32_t* cu_seqlens, const int32_t* prefix_lens,
                        int64_t n_segments, const AttentionShape& shape);

// ---- SwiGLU --------------------------------------------------------------------------------
// out = silu(gate) · up, elementwise over n values; silu(x) = x · sigmoid(x)
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// dgate, dup overwrite
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n);

// ---- cross-entropy -------------------------------------------------------------------------
// Fused softmax cross-entropy over one vocabulary range, forward and backward in one pass.
// logits [T, n_classes] hold the scores of classes [class_begin, class_begin + n_classes)
// (e.g. only the item tokens); targets [T] are absolute token ids. weights [T] scale each
// token's loss (0 = no loss; a target outside the range with weight != 0 is an error).
//   losses[t]  = weights[t] · (logsumexp(logits[t]) - logits[t, target - class_begin])
//   dlogits[t] = grad_scale · weights[t] · (softmax(logits[t]) - onehot(target))
// dlogits may alias logits (computed in place, no probability matrix is kept); rows with
// weight 0 get dlogits 0. Returns the weighted loss sum Σ losses[t] (double accumulation).
double cross_entropy_forward_backward(float* dlogits, float* losses, const float* logits,
                                      const int32_t* targets, const float* weights, int64_t T,
                                      int64_t n_classes, int64_t class_begin, float grad_scale);
// Forward only (evaluation): same losses, no gradient written.
double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets,
                             const float* weights, int64_t T, int64_t n_classes,
                             int64_t class_begin);

// Vocabulary-parallel pieces (trainer/vocab_parallel.h): the class range is split into parts
// held by different ranks; each part yields per-row partial statistics, the ranks combine them
// (max, then rescaled sums), and each part's dlogits follow from the combined statistics.
// Partial statistics of the classes [class_begin, class_begin + n_classes) (logits [T, n_classes]):
//   row_max[t] = max_c logits[t, c]  (−inf when n_classes is 0 or weights[t] is 0)
//   row_sum[t] = Σ_c exp(logits[t, c] − row_max[t])  (0 likewise)
//   target_logit[t] = logits[t, targets[t] − class_begin] when the target is in this part, else 0
void cross_entropy_partial_stats(float* row_max, double* row_sum, double* target_logit,
                                 const float* logits, const int32_t* targets, const float* weights,
                                 int64_t T, int64_t n_classes, int64_t class_begin);
// Given the statistics over the whole class range (row_max M, row_sum S of exp(x − M)):
//   dlogits[t, c] = grad_scale · weights[t] · (exp(logits[t, c] − M[t]) / S[t] − onehot)
// where the onehot is 1 at the target when it lies in this part. dlogits may alias logits.
void cross_entropy_backward_from_stats(float* dlogits, const float* logits, const int32_t* targets,
                                       const float* weights, const float* row_max,
                                       const double* row_sum, int64_t T, int64_t n_classes,
                                       int64_t class_begin, float grad_scale);

// ---- optimizer -----------------------------------------------------------------------------
struct AdamWHyper {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;  // decoupled: param -= lr · weight_decay · param
  int64_t step;        // 1-based, for bias correction
  float grad_scale;    // gradients are multiplied by this first (clipping coefficient)
};
// In-place AdamW on n values: m, v are the first/second moments (fp32).
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const AdamWHyper& hyper);
// Σ x[i]² over n values, accumulated in double in a fixed order (deterministic).
double sum_of_squares(const float* x, int64_t n);
// x[i] *= factor
void scale_inplace(float* x, float factor, int64_t n);

// ---- optimizer: bf16 copy of the updated weights (kernels/cpu/adamw_bf16.cc) ---------------
// The reference the CUDA AdamW's bf16 output is held to bitwise.
enum class Bf16Rounding { kNearestEven, kStochastic };
// The 16 random bits stochastic rounding uses for element `index` at `step`: a counter-based
// hash of (seed, step, index) (splitmix64 finalizer), so any device reproduces them.
uint32_t stochastic_rounding_bits(uint64_t seed, int64_t step, int64_t index);
// bf16 bits of x: NaN -> quiet NaN (as runtime/dtype.h f32_to_bf16); otherwise round up with
// probability (low 16 bits of x) / 2^16, i.e. (bits(x) + random16) >> 16.
uint16_t f32_to_bf16_stochastic(float x, uint32_t random16);
// adamw_update, then params_bf16[i] = bf16(params[i]) rounded to nearest even (f32_to_bf16) or
// stochastically with stochastic_rounding_bits(seed, hyper.step, index_base + i).
void adamw_update_bf16(float* params, const float* grads, float* m, float* v, int64_t n,
                       const AdamWHyper& hyper, uint16_t* params_bf16, Bf16Rounding rounding,
                       uint64_t seed, int64_t index_base);

// ---- CPU backend threads -------------------------------------------------------------------
// Sets the OpenMP and OpenBLAS thread counts together (0 = one per available core) and
// returns the count in effect. Results are bitwise reproducible for a fixed count.
int set_cpu_threads(int n_threads);

}  // namespace reclm::ops
