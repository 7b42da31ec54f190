// The CUDA backend's memory plan: one device allocation holds parameters, gradients, moments,
// activations, scratch and workspaces for micro-batches of up to max_tokens tokens (sizes in
// device_model.h). The plan runs twice: once to add up the bytes, once to hand out pointers.
#include <algorithm>
#include <array>
#include <cmath>

#include "kernels/cuda/attention_backward.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/rmsnorm.h"
#include "trainer/device/device_model.h"
#include "trainer/device/device_runtime.h"
#include "trainer/model.h"
#include "trainer/zero1.h"

namespace reclm::device {

namespace {

// Hands out 256-byte-aligned pieces of [base, base + used); with base == nullptr it only counts.
struct Carver {
  char* base = nullptr;
  size_t used = 0;
  template <typename T>
  T* take(int64_t count) {
    const size_t offset = (used + 255) / 256 * 256;
    used = offset + static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    return base ? reinterpret_cast<T*>(base + offset) : nullptr;
  }
  void* take_bytes(size_t bytes) { return take<char>(static_cast<int64_t>(bytes)); }
  // The offset the next piece would start at.
  size_t next() const { return (used + 255) / 256 * 256; }
  // count Ts at `offset` (a next() from before), over pieces already handed out: a union.
  template <typename T>
  T* overlay(size_t offset, int64_t count) {
    used = std::max(used, offset + static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T));
    return base ? reinterpret_cast<T*>(base + offset) : nullptr;
  }
};

// Logits of a head chunk, about 1 GiB at most: bf16 [chunk, Vp] that become the dlogits in place
// (DeviceModel::bf16_logits), or fp32 [chunk, Vp] plus the bf16 dlogits. Each chunk's
// weight-gradient GEMM reads and writes the whole fp32 dW [Vp, C] (8·Vp·C bytes) for
// 2·chunk·Vp·C FLOPs, so it is memory-bound below chunk ≈ 4 × the card's FLOP/byte (~1200 rows
// on an H100). 1 GiB gives 8310 rows at 64k classes with bf16 logits, 2770 with fp32: 2 or 6
// dW passes for a 16k-token micro-batch. A smaller vocabulary's chunk is the whole micro-batch.
constexpr int64_t kHeadChunkBytes = int64_t{1} << 30;

// The gradient norm's workspace: over the whole buffer, or with frozen values (LoRA) over the
// trainable segments (sum_of_squares_segments); ZeRO-1's block is shorter than the buffer.
// Vocabulary parallelism sums the replicated and the sharded tensors apart (whole tensors).
int64_t norm_workspace_doubles(const ParamLayout& layout, bool vocab_parallel) {
  int64_t doubles = cuda::sum_of_squares_workspace_doubles(layout.total_floats());
  if (!layout.any_frozen() && !vocab_parallel) return doubles;
  std::vector<int64_t> sizes;
  for (const ParamEntry& e : layout.entries()) sizes.push_back(e.numel);  // (a superset of the segments)
  const auto n = static_cast<int>(sizes.size());
  return std::max(doubles, cuda::sum_of_squares_segments_workspace_doubles(sizes.data(), n));
}

// n values of the residual stream, in its type
StreamRows take_stream(const DeviceModel& dm, Carver& c, int64_t n) {
  return {dm.bf16_residual ? static_cast<void*>(c.take<bf16>(n)) : static_cast<void*>(c.take<float>(n))};
}

void carve(DeviceModel& dm, int64_t exchange_floats, int world, int residual_gradient_buffers, Carver& c) {
  const ModelDims& d = dm.dims;
  const int64_t T = dm.max_tokens, C = d.d_model, F = d.d_ff, V = d.vocab;
  const int64_t QD = d.q_dim(), KVD = d.kv_dim(), P = dm.layout.total_floats();
  const int64_t pad = kHeadPadRows * C;
  dm.params = c.take<float>(P);
  dm.grads = c.take<float>(P + pad);
  dm.m = c.take<float>(dm.moment_floats);
  dm.v = c.take<float>(dm.moment_floats);
  dm.params_bf16 = c.take<uint16_t>(P + pad);
  dm.norm_ws = c.take<double>(norm_workspace_doubles(dm.layout, d.vocab_parallel()));
  dm.norm_result = c.take<double>(1);
  if (dm.gemm_autotune_scratch_bytes > 0) dm.gemm_autotune_scratch = c.take_bytes(dm.gemm_autotune_scratch_bytes);
  dm.stage_norms.slots = c.take<double>(static_cast<int64_t>(dm.stage_norms.sizes.size()));
  dm.stage_norms.used = c.take<int32_t>(static_cast<int64_t>(dm.stage_norms.sizes.size()));
  dm.step_guard = c.take<ops::StepGuard>(1);
  dm.part_zero = c.take<int32_t>(1);
  int64_t stage_ws = 1;
  for (const std::vector<int64_t>& sizes : dm.stage_norms.sizes) {
    stage_ws = std::max(stage_ws, cuda::sum_of_squares_segments_workspace_doubles(
                                      sizes.data(), static_cast<int>(sizes.size())));
  }
  dm.stage_norms.ws = c.take<double>(stage_ws);
  // From here on, what lives only inside a step (ZeRO-1's exchange overlays it, at the end).
  const size_t step_only = c.next();
  dm.layers.resize(d.n_layers);
  for (int64_t l = 0; l < d.n_layers; ++l) {
    LayerActivations& a = dm.layers[l];
    const StreamRows residual = take_stream(dm, c, T * C);
    // LoRA's bottlenecks (T·r each) are kept per layer even with recomputation, which stops
    // before the down projection's adapter.
    std::array<bf16*, kNumLoraTargets> lora_u{};
    for (int t = 0; t < kNumLoraTargets; ++t) {
      if (d.lora_targets_has(static_cast<LoraTarget>(t))) lora_u[t] = c.take<bf16>(T * d.lora_rank);
    }
    if (dm.recompute && l > 0) {  // everything else shared with layer 0
      a = dm.layers[0];
      a.residual = residual;
      a.lora_u = lora_u;
      continue;
    }
    a.residual = residual;
    a.lora_u = lora_u;
    a.residual_mid = take_stream(dm, c, T * C);
    a.rstd1 = c.take<float>(T);
    a.rstd2 = c.take<float>(T);
    a.norm1 = c.take<bf16>(T * C);
    a.norm2 = c.take<bf16>(T * C);
    a.qkv = c.take<bf16>(T * (QD + 2 * KVD));
    a.attn = c.take<bf16>(T * QD);
    a.lse = c.take<float>(d.n_heads * T);
    a.gate_up = c.take<bf16>(T * 2 * F);
    a.act = c.take<bf16>(T * F);
  }
  dm.residual_out = take_stream(dm, c, T * C);
  dm.final_normed = c.take<float>(T * C);
  dm.final_normed_bf = c.take<bf16>(T * C);
  dm.final_rstd = c.take<float>(T);

  dm.branch = c.take<float>(T * C);
  dm.head_h32 = c.take<float>(T * C);
  dm.head_h = c.take<bf16>(T * C);
  if (!dm.bf16_logits) dm.logits = c.take<float>(dm.head_chunk * padded_classes(V));
  dm.dlogits = c.take<bf16>(dm.head_chunk * padded_classes(V));
  dm.losses = c.take<float>(T);
  dm.row_losses = c.take<double>(dm.head_chunk);
  dm.chunk_loss = c.take<double>(dm.max_chunks);

  dm.d_residual = c.take<float>(T * C);
  if (dm.bf16_residual) dm.d_stream_bf = c.take<bf16>(T * C);
  dm.d_final_bf = c.take<bf16>(T * C);
  if (d.vocab_parallel()) dm.d_h32 = c.take<float>(T * C);
  dm.d_h = c.take<bf16>(T * C);
  for (int b = 0; b < residual_gradient_buffers; ++b) dm.d_res_bf[b] = c.take<bf16>(T * C);
  dm.d_normed_bf = c.take<bf16>(T * C);
  dm.d_act_bf = c.take<bf16>(T * F);
  dm.d_gate_up_bf[0] = c.take<bf16>(T * 2 * F);
  dm.d_attn = c.take<bf16>(T * QD);
  dm.d_qkv[0] = c.take<bf16>(T * (QD + 2 * KVD));
  if (d.has_lora()) dm.lora_du = c.take<bf16>(T * d.lora_rank);

  // the batch's pieces, in the order of batch_staging's (device_model.h)
  dm.batch_piece_words = (T + 1 + 63) / 64 * 64;
  int32_t* batch = c.take<int32_t>(DeviceModel::kBatchPieces * dm.batch_piece_words);
  const auto piece = [&](int i) { return batch ? batch + i * dm.batch_piece_words : nullptr; };
  dm.tokens = piece(0);
  dm.cu_seqlens = piece(1);
  dm.prefix_lens = piece(2);
  dm.pos_inter = piece(3);
  dm.pos_intra = piece(4);
  dm.loss_rows = piece(5);
  dm.loss_targets = piece(6);
  dm.loss_weights = reinterpret_cast<float*>(piece(7));
  dm.loss_row_of = piece(8);
  dm.rope_table = c.take<float>(T * d.head_dim);

  if (d.vocab_parallel()) {
    const int64_t W = world * T;
    DeviceVocabParallel& vp = dm.vp;
    vp.rows = c.take<float>(W * C);
    vp.h = c.take<bf16>(W * C);
    vp.dst_rows = c.take<int32_t>(W);
    vp.src_rows = c.take<int32_t>(W);
    vp.targets = c.take<int32_t>(W);
    vp.weights = c.take<float>(W);
    vp.rep_targets = c.take<int32_t>(T);
    vp.row_max = c.take<float>(W);
    vp.row_sum = c.take<double>(W);
    vp.target_logit = c.take<double>(W);
  }
  // (vocabulary parallelism: scatter_add_rows over every rank's tokens)
  dm.embedding_ws_bytes = cuda::embedding_backward_workspace_bytes(d.vocab_parallel() ? world * T : T, V);
  dm.embedding_ws = c.take_bytes(dm.embedding_ws_bytes);
  dm.rmsnorm_ws = c.take<float>(cuda::rmsnorm_backward_workspace_floats(T, C));
  const ops::AttentionShape shape{T, d.n_heads, d.n_kv_heads, d.head_dim, 1.0f};
  dm.attention_ws_bytes = cuda::attention_backward_workspace_bytes(shape, T, T, /*deterministic=*/true);
  dm.attention_ws = c.take_bytes(dm.attention_ws_bytes);
  if (exchange_floats > 0) dm.exchange = c.overlay<float>(step_only, exchange_floats);
}

}  // namespace

DeviceModel::DeviceModel(const ModelDims& d, const ParamLayout& l, const DevicePlanOptions& options)
    : dims(d), layout(l), max_tokens(options.max_tokens), recompute(options.recompute),
      bf16_logits(!options.fp32_logits && !d.vocab_parallel()), bf16_residual(options.bf16_residual) {
  RECLM_CHECK(max_tokens > 0 && options.head_chunk_rows >= 0 && options.moment_floats >= 0 &&
                  options.exchange_floats >= 0,
              "max_tokens {}, head_chunk_rows {}, moment_floats {}, exchange_floats {}", max_tokens,
              options.head_chunk_rows, options.moment_floats, options.exchange_floats);
  const int64_t bytes_per_logit = bf16_logits ? 2 : 4 + 2;
  const int64_t chunk = options.head_chunk_rows > 0 ? options.head_chunk_rows
                                                    : kHeadChunkBytes / (padded_classes(d.vocab) * bytes_per_logit);
  head_chunk = std::clamp<int64_t>(chunk, 1, max_tokens);
  max_chunks = (max_tokens + head_chunk - 1) / head_chunk;
  moment_floats = options.moment_floats > 0 ? options.moment_floats : layout.total_floats();
  // the gradient norm's stages (StageNorms): each tensor in its backward stage
  const auto n_stages = static_cast<size_t>(d.n_layers + 3);
  stage_norms.offsets.resize(n_stages);
  stage_norms.sizes.resize(n_stages);
  for (const ParamEntry& e : layout.entries()) {
    const auto stage = static_cast<size_t>(backward_stage(e.name, d.n_layers));
    RECLM_CHECK(stage < n_stages, "backward stage {} of {}", stage, e.name);
    stage_norms.offsets[stage].push_back(e.offset);
    stage_norms.sizes[stage].push_back(e.numel);
  }
  if (options.gemm_autotune) {
    int64_t largest = 0;  // floats of the largest weight gradient (dW += doutᵀ·inp: timed into scratch)
    for (const ParamEntry& e : layout.entries()) largest = std::max(largest, e.numel);
    gemm_autotune_scratch_bytes = static_cast<size_t>(largest + kHeadPadRows * d.d_model) * sizeof(float);
  }
  RECLM_CHECK(options.residual_gradient_buffers == 1 || options.residual_gradient_buffers == 2,
              "residual_gradient_buffers {}: 1 or 2", options.residual_gradient_buffers);
  const int residual_gradient_buffers = options.second_stream ? options.residual_gradient_buffers : 1;
  Carver count;
  carve(*this, options.exchange_floats, options.world, residual_gradient_buffers, count);
  arena_bytes = count.used;
  arena = allocate(arena_bytes);
  batch_staging = static_cast<int32_t*>(allocate_pinned(kBatchPieces * batch_piece_words * sizeof(int32_t)));
  guard_readout = static_cast<ops::StepGuard*>(allocate_pinned(sizeof(ops::StepGuard)));
  stream = create_stream(/*high_priority=*/true);
  clock.attach(stream);
  if (options.second_stream) side = std::make_unique<SideStream>(stream);
  weights_updated.assign(d.n_layers + 2, 0);
  // Poisoned (every float NaN): a step that reads memory nothing wrote shows in the loss.
  fill_bytes(arena, 0xFF, arena_bytes, stream);
  Carver real{static_cast<char*>(arena), 0};
  carve(*this, options.exchange_floats, options.world, residual_gradient_buffers, real);
  if (side && options.side_gemm_sms > 0) side->gemm().set_sm_count_target(options.side_gemm_sms);
  if (options.gemm_autotune) {  // (one scratch for both streams: what the timing writes there is never read)
    gemm.set_autotune(true, gemm_autotune_scratch, gemm_autotune_scratch_bytes);
    if (side) side->gemm().set_autotune(true, gemm_autotune_scratch, gemm_autotune_scratch_bytes);
  }
  std::vector<int32_t> used_stages;  // (the stages a tied head leaves empty are not summed)
  for (size_t s = 0; s < stage_norms.sizes.size(); ++s)
    if (!stage_norms.sizes[s].empty()) used_stages.push_back(static_cast<int32_t>(s));
  stage_norms.n_used = static_cast<int>(used_stages.size());
  copy_to_device(stage_norms.used, used_stages.data(), used_stages.size() * sizeof(int32_t));  // (after the fill)
  const int32_t zero = 0;
  copy_to_device(part_zero, &zero, sizeof(zero));
  const int64_t P = layout.total_floats(), pad = kHeadPadRows * d.d_model;
  fill_zero(grads + P, pad * sizeof(float), stream);
  fill_zero(params_bf16 + P, pad * sizeof(uint16_t), stream);
  param_tensors = model_tensors(params, layout, dims);
  grad_tensors = model_tensors(grads, layout, dims);
  // device_step runs q/k/v_proj and gate/up_proj as one GEMM each over their adjacent rows
  for (const LayerTensors& w : param_tensors.layers) {
    RECLM_CHECK(w.wk == w.wq + d.q_dim() * d.d_model && w.wv == w.wk + d.kv_dim() * d.d_model,
                "q_proj, k_proj and v_proj are not adjacent in the layout");
    RECLM_CHECK(w.w_up == w.w_gate + d.d_ff * d.d_model, "gate_proj and up_proj are not adjacent in the layout");
  }
  // (LoRA: the base matrices skip their weight-gradient GEMMs, and a layer's gradient is not written whole)
  for (const LayerTensors& w : d.has_lora() ? std::vector<LayerTensors>{} : grad_tensors.layers) {
    const int64_t C = d.d_model;
    RECLM_CHECK(w.wq == w.input_norm + C && w.wo == w.wv + d.kv_dim() * C && w.post_norm == w.wo + C * d.q_dim() &&
                    w.w_gate == w.post_norm + C && w.w_down == w.w_up + d.d_ff * C,
                "a layer's tensors are not adjacent in the layout");
    layer_grad_ranges.push_back({w.input_norm - grads, w.w_down + C * d.d_ff - grads});
  }
}

DeviceModel::~DeviceModel() {
  synchronize();
  side.reset();
  destroy_stream(stream);
  release(arena);
  release_pinned(batch_staging);
  release_pinned(guard_readout);
}

}  // namespace reclm::device
