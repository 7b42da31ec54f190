// The CUDA backend (trainer/device_backend.h) against the CPU backend, built twice: with the
// backend on the SIMT emulator (device_emu_test, label emu) and on a GPU (device_gpu_test, label
// gpu; skipped without a device).
//  - Loss and every parameter's gradient of one micro-batch match the CPU's fp32 forward and
//    backward to bf16 accuracy (the device's GEMM and attention operands are bf16): shapes with
//    GQA, head dims 32, 64 and 128, tied and untied heads, causal and bidirectional-prefix segments
//    of odd lengths, 2D positions, a softmax class range, rows without loss, dropout (the device
//    draws the CPU's masks), LoRA (adapters on every projection, or on q and v with an odd
//    rank; frozen base matrices and a frozen head get no weight gradient on either backend), and
//    vocabulary parallelism on one rank (the item block's rows as that rank's pieces: the
//    sharded lookup, and the head's item and replicated parts, over a class range that holds
//    both), and GEMM algorithms chosen by timing on the step's own operands (runtime.gemm_autotune:
//    on a GPU the timing runs must leave outputs and weight gradients as one call would).
//  - The device's AdamW step and gradient norm equal the CPU's AdamW applied to the device's own
//    gradients (same arithmetic: a few ulp), weight decay by tensor kind included.
//  - upload/download carry weights, moments and the update count exactly; a repeated
//    micro-batch gives bitwise the same gradients (no float atomics in the step).
//  - ZeRO-1's exchange on one rank (on GPUs: NCCL with one rank) trains bitwise like plain AdamW.
//  - The weight-gradient GEMMs and AdamW on a side stream (runtime.second_stream) train bitwise
//    as one stream.
//  - forward_hidden (the ranking evaluation's forward) gives the CPU's hidden states.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/errors.h"
#include "trainer/device_backend.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"
#include "trainer/tiny_dims.h"
#include "trainer/vocab_shard.h"
#include "trainer/zero1.h"

namespace reclm {
namespace {

constexpr int64_t kMaxTokens = 64;

struct Case {
  std::string name;
  test::TinyShape shape;
  bool prefix = false;          // bidirectional prefixes in some segments
  bool partial_loss = false;    // some rows carry no loss
  int32_t class_begin = 0;      // softmax range [class_begin, vocab) when > 0
  float dropout = 0.0f;         // model dropout (the CPU's masks: seed kDropoutSeed, stream 9)
  int64_t lora_rank = 0;        // LoRA adapters of this rank (alpha 8) on lora_targets
  uint32_t lora_targets = 0;
  bool lora_train_embeddings = true;  // (rows >= vocab − 40 are the new ones)
  int64_t vp_items = 0;         // > 0: vocabulary parallelism, items [vocab − 7 − vp_items, vocab − 7)
  bool fp32_logits = false;     // runtime.fp32_logits (the default head writes bf16 logits)
  bool gemm_autotune = false;   // runtime.gemm_autotune (on a GPU: each GEMM's algorithm timed on its operands)
  bool bf16_residual = false;   // runtime.bf16_residual (the residual stream and its gradient in bf16)
};

// The one-rank job of the vocabulary-parallel cases (its collectives copy).
Communicator& local_comm() {
  static const std::unique_ptr<Communicator> comm = make_local_communicator();
  return *comm;
}

ModelDims dims_of(const Case& c) {
  ModelDims d = test::tiny_model_dims(c.shape);
  d.lora_rank = c.lora_rank;
  d.lora_alpha = 8.0f;
  d.lora_targets = c.lora_targets;
  d.lora_train_embeddings = c.lora_train_embeddings;
  d.first_new_token = c.lora_rank > 0 ? d.vocab - 40 : 0;
  if (c.vp_items > 0) d.vocab_shard = make_vocab_shard(d.vocab, d.vocab - 7 - c.vp_items, d.vocab - 7, 0, 1);
  return d;
}

// init_weights, and under LoRA random B too (a fresh adapter's B is 0, which would leave A's
// gradient 0 and the adapters' backward untested).
void init_for(Model& model, uint64_t seed) {
  init_weights(model, seed, 0.08f);
  std::mt19937 gen(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (const ParamEntry& e : model.layout.entries()) {
    if (!e.name.ends_with(".lora_B.weight")) continue;
    for (int64_t i = 0; i < e.numel; ++i) model.param_data()[e.offset + i] = normal(gen);
  }
}

constexpr uint64_t kDropoutSeed = 0xD5A0C0FFEEull;
DropoutState dropout_of(const Case& c) { return {c.dropout, c.dropout > 0.0f, kDropoutSeed, 9}; }

std::vector<Case> cases() {
  return {
      {"gqa2 d64 tied causal", {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200}},
      {"untied prefix class range",
       {.vocab = 257, .d_model = 128, .n_heads = 2, .n_kv_heads = 2, .head_dim = 64, .d_ff = 96, .tied = false},
       true, true, 101},
      {"2D positions", {.vocab = 199, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 128,
                        .positions_2d = true}, false, true},
      {"d128", {.vocab = 173, .d_model = 128, .n_heads = 1, .n_kv_heads = 1, .head_dim = 128, .d_ff = 136}, true},
      {"d96 gqa2 prefix", {.vocab = 181, .d_model = 192, .n_heads = 2, .n_kv_heads = 1, .head_dim = 96, .d_ff = 160},
       true, true},
      {"dropout 0.3 prefix head_dim 32",
       {.vocab = 211, .d_model = 64, .n_heads = 2, .n_kv_heads = 1, .head_dim = 32, .d_ff = 200}, true, true, 0,
       0.3f},
      {"lora every projection rank 4 dropout 0.2 new embedding rows",
       {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200}, true, true, 0,
       0.2f, 4, kAllLoraTargets},
      {"lora q v rank 3 frozen untied head",
       {.vocab = 257, .d_model = 128, .n_heads = 2, .n_kv_heads = 2, .head_dim = 64, .d_ff = 96, .tied = false},
       false, true, 0, 0.0f, 3, (1u << static_cast<int>(LoraTarget::kQ)) | (1u << static_cast<int>(LoraTarget::kV)),
       false},
      {"vocab parallel tied whole vocabulary",
       {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200}, true, true, 0,
       0.0f, 0, 0, true, 200},
      {"vocab parallel untied item range",
       {.vocab = 257, .d_model = 128, .n_heads = 2, .n_kv_heads = 2, .head_dim = 64, .d_ff = 96, .tied = false},
       false, true, 257 - 7 - 150, 0.0f, 0, 0, true, 150},
      {.name = "fp32 logits untied prefix class range",
       .shape = {.vocab = 257, .d_model = 128, .n_heads = 2, .n_kv_heads = 2, .head_dim = 64, .d_ff = 96,
                 .tied = false},
       .prefix = true, .partial_loss = true, .class_begin = 101, .fp32_logits = true},
      // On a GPU the first micro-batch's GEMMs run each candidate algorithm several times on
      // their own operands before the real call: outputs rewritten in place, weight gradients
      // (+=) timed into a scratch. Either way the gradients must come out as without timing.
      {.name = "gemm autotune, lora q v rank 3 dropout 0.2",
       .shape = {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200},
       .prefix = true, .partial_loss = true, .dropout = 0.2f, .lora_rank = 3,
       .lora_targets = (1u << static_cast<int>(LoraTarget::kQ)) | (1u << static_cast<int>(LoraTarget::kV)),
       .gemm_autotune = true},
      {.name = "gemm autotune gqa2 d64 tied causal",
       .shape = {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200},
       .gemm_autotune = true},
      // runtime.bf16_residual: the stream's adds and its gradient's updates rounded to bf16, with
      // the dropout sites on the stream, LoRA and the vocabulary-parallel lookup around it
      {.name = "bf16 residual gqa2 d64 tied causal",
       .shape = {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200},
       .bf16_residual = true},
      {.name = "bf16 residual dropout 0.3 prefix head_dim 32",
       .shape = {.vocab = 211, .d_model = 64, .n_heads = 2, .n_kv_heads = 1, .head_dim = 32, .d_ff = 200},
       .prefix = true, .partial_loss = true, .dropout = 0.3f, .bf16_residual = true},
      {.name = "bf16 residual lora every projection rank 4 dropout 0.2 new embedding rows",
       .shape = {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64, .d_ff = 200},
       .prefix = true, .partial_loss = true, .dropout = 0.2f, .lora_rank = 4, .lora_targets = kAllLoraTargets,
       .bf16_residual = true},
      {.name = "bf16 residual vocab parallel untied item range",
       .shape = {.vocab = 257, .d_model = 128, .n_heads = 2, .n_kv_heads = 2, .head_dim = 64, .d_ff = 96,
                 .tied = false},
       .partial_loss = true, .class_begin = 257 - 7 - 150, .vp_items = 150, .bf16_residual = true},
  };
}

// Segments of 13, 1 and 37 tokens (51 in all), random tokens, targets in the softmax range.
Batch make_batch(const Case& c, const ModelDims& d, uint32_t seed) {
  std::mt19937 gen(seed);
  Batch b;
  b.cu_seqlens = {0, 13, 14, 51};
  if (c.prefix) b.prefix_lens = {5, 1, 20};
  if (c.class_begin > 0) {
    b.class_begin = c.class_begin;
    b.class_count = static_cast<int32_t>(d.vocab) - c.class_begin;
  }
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(d.vocab) - 1);
  std::uniform_int_distribution<int32_t> target(c.class_begin, static_cast<int32_t>(d.vocab) - 1);
  std::uniform_int_distribution<int32_t> intra(0, 3);
  for (int32_t s = 0; s + 1 < static_cast<int32_t>(b.cu_seqlens.size()); ++s) {
    for (int32_t i = 0; i < b.cu_seqlens[s + 1] - b.cu_seqlens[s]; ++i) {
      b.tokens.push_back(token(gen));
      b.targets.push_back(target(gen));
      b.loss_weights.push_back(c.partial_loss && (i % 3 == 1) ? 0.0f : 1.0f + 0.25f * static_cast<float>(i % 2));
      b.pos_inter.push_back(i);
      if (d.positions_2d) b.pos_intra.push_back(intra(gen));
    }
  }
  return b;
}

config::OptimConfig optim_config() {
  config::OptimConfig o;
  o.set_weight_decay(0.1f);  // matrices decay, norms and embeddings not (the defaults)
  return o;
}

// The backend, or null when this build's device is not usable here (the gpu binary on a host
// without a GPU).
std::unique_ptr<DeviceBackend> backend_or_skip(const Model& model, const AdamW& optimizer, bool recompute = false,
                                               int64_t head_chunk_rows = 0, bool fp32_logits = false,
                                               bool second_stream = true, bool gemm_autotune = false,
                                               int residual_gradient_buffers = 2, bool bf16_residual = false) {
  try {
    return make_device_backend(model, optimizer,
                               {.max_tokens = kMaxTokens,
                                .recompute_activations = recompute,
                                .fp32_logits = fp32_logits,
                                .bf16_residual = bf16_residual,
                                .second_stream = second_stream,
                                .gemm_autotune = gemm_autotune,
                                .residual_gradient_buffers = residual_gradient_buffers,
                                .optim = optim_config(),
                                .head_chunk_rows = head_chunk_rows,
                                .comm = model.comm});
  } catch (const UserError& e) {
    if (std::string(e.what()).find("no CUDA device") != std::string::npos) return nullptr;
    throw;
  }
}
#define SKIP_WITHOUT_DEVICE(backend) \
  if (!(backend)) GTEST_SKIP() << "SKIPPED: no CUDA device"

// A case's host model (weights init_for(seed); vocabulary-parallel cases on the one-rank job), a
// plain AdamW, and the backend with both uploaded (null without a device).
struct Uploaded {
  Model host;
  AdamW optimizer;
  std::unique_ptr<DeviceBackend> device;
  Uploaded(const Case& c, uint64_t seed) : host(dims_of(c), kMaxTokens), optimizer(host.layout, optim_config()) {
    if (host.dims.vocab_parallel()) host.comm = &local_comm();
    init_for(host, seed);
    device = backend_or_skip(host, optimizer, false, 0, c.fp32_logits, true, c.gemm_autotune, 2, c.bf16_residual);
    if (device) device->upload(host, optimizer);
  }
};

double norm_of(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return std::sqrt(s);
}

TEST(DeviceBackend, LossAndGradientsMatchCpu) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Uploaded u(c, 7);
    SKIP_WITHOUT_DEVICE(u.device);
    Model& cpu = u.host;
    DeviceBackend* device = u.device.get();
    const ModelDims& d = cpu.dims;
    const Batch batch = make_batch(c, d, 11);
    double weight = 0;
    for (float w : batch.loss_weights) weight += w;
    const auto scale = static_cast<float>(1.0 / weight);

    zero_grads(cpu);
    cpu.dropout = dropout_of(c);
    const double cpu_loss = forward_backward(cpu, batch, scale);
    device->zero_grads();
    const double dev_loss = device->forward_backward(batch, scale, true, cpu.dropout);
    Model dev(d, 1);
    device->download_gradients(dev);
    EXPECT_NEAR(dev_loss, cpu_loss, 2e-3 * std::abs(cpu_loss)) << "loss";
    if (c.dropout == 0.0f) {  // (validation has no dropout)
      EXPECT_DOUBLE_EQ(device->forward_loss(batch), dev_loss) << "forward_loss vs forward_backward";
    } else {  // the masks matter: without them the loss is another
      EXPECT_GT(std::abs(device->forward_loss(batch) - dev_loss), 1e-3 * std::abs(dev_loss)) << "dropout had no effect";
    }

    double worst = 0;
    std::string worst_name;
    for (const ParamEntry& e : cpu.layout.entries()) {
      const float* want = cpu.grad_data() + e.offset;
      const float* got = dev.grad_data() + e.offset;
      std::vector<float> diff(e.numel);
      for (int64_t i = 0; i < e.numel; ++i) diff[i] = got[i] - want[i];
      const double ref = norm_of(want, e.numel);
      if (ref == 0.0 && e.frozen()) {  // a frozen matrix whose weight-gradient GEMM both skip
        EXPECT_EQ(norm_of(got, e.numel), 0.0) << e.name << ": the device computed a frozen weight's gradient";
        continue;
      }
      ASSERT_GT(ref, 0.0) << e.name << ": zero reference gradient";
      const double rel = norm_of(diff.data(), e.numel) / ref;
      // bf16 operands: ~2^-9 per rounding, amplified where a gradient is a small difference of
      // large terms (the softmax's dK, near-uniform attention): measured up to 1.9e-2 on dW_k, dW_q.
      EXPECT_LT(rel, 3e-2) << e.name << " (‖device − cpu‖ / ‖cpu‖)";  // NaN fails too
      if (rel > worst) worst = rel, worst_name = e.name;
    }
    std::printf("%s: loss cpu %.6f device %.6f; worst gradient %.2e (%s)\n", c.name.c_str(), cpu_loss, dev_loss,
                worst, worst_name.c_str());

    // The same micro-batch again: bitwise the same gradients.
    device->zero_grads();
    EXPECT_EQ(device->forward_backward(batch, scale, true, cpu.dropout), dev_loss);
    Model again(d, 1);
    device->download_gradients(again);
    EXPECT_EQ(std::memcmp(again.grad_data(), dev.grad_data(), cpu.layout.total_floats() * sizeof(float)), 0)
        << "gradients differ between two runs of the same micro-batch";
  }
}

// A micro-batch in which no token carries a loss: loss 0 and every gradient exactly 0, right after
// one whose LM-head gradient filled the device's scratch rows (each token's gradient then comes
// from d_h's zero row, which must be rewritten every time: a stale one would leak the previous
// micro-batch's gradient). Tied and vocabulary-parallel heads.
TEST(DeviceBackend, MicroBatchWithoutLossRowsGivesZeroLossAndGradients) {
  for (const Case& c : cases()) {
    if (c.name != "gqa2 d64 tied causal" && c.name != "vocab parallel tied whole vocabulary") continue;
    SCOPED_TRACE(c.name);
    Uploaded u(c, 13);
    SKIP_WITHOUT_DEVICE(u.device);
    const Batch with_loss = make_batch(c, u.host.dims, 17);
    Batch without_loss = make_batch(c, u.host.dims, 19);
    std::fill(without_loss.loss_weights.begin(), without_loss.loss_weights.end(), 0.0f);
    u.device->zero_grads();
    EXPECT_GT(u.device->forward_backward(with_loss, 0.03f, true, {}), 0.0);
    u.device->zero_grads();
    EXPECT_EQ(u.device->forward_backward(without_loss, 0.03f, true, {}), 0.0);
    Model dev(u.host.dims, 1);
    u.device->download_gradients(dev);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < u.host.layout.total_floats(); ++i) nonzero += dev.grad_data()[i] != 0.0f;
    EXPECT_EQ(nonzero, 0) << "gradient values not 0 (NaN counts too)";
  }
}

// Micro-batches accumulate: the gradient of two equals the sum of each one's (per tensor within
// 1e-6 of it), and so it does right after an AdamW step, whose zeroing leaves the layers'
// gradients stale for the next backward to write over (DeviceModel::layer_grad_ranges): there the
// first micro-batch must write them and the second add to them, bitwise as before the step.
TEST(DeviceBackend, MicroBatchesAccumulateAlsoAfterAdamW) {
  for (const Case& c : cases()) {
    if (c.name != "gqa2 d64 tied causal" && c.name != "dropout 0.3 prefix head_dim 32") continue;
    SCOPED_TRACE(c.name);
    Uploaded u(c, 23);
    SKIP_WITHOUT_DEVICE(u.device);
    DeviceBackend& device = *u.device;
    const Batch first = make_batch(c, u.host.dims, 29), second = make_batch(c, u.host.dims, 31);
    const DropoutState dropout = dropout_of(c);
    const auto gradients = [&](const std::vector<const Batch*>& batches) {
      device.zero_grads();
      for (size_t b = 0; b < batches.size(); ++b) device.forward_backward(*batches[b], 0.03f, b + 1 == batches.size(),
                                                                         dropout);
      Model out(u.host.dims, 1);
      device.download_gradients(out);
      return std::vector<float>(out.grad_data(), out.grad_data() + u.host.layout.total_floats());
    };
    const std::vector<float> g1 = gradients({&first}), g2 = gradients({&second});
    const std::vector<float> both = gradients({&first, &second});
    // per tensor: the tied embedding's rows add the head's gradient and each token's in another
    // order for two micro-batches than for one, so single values may differ by more than a rounding
    for (const ParamEntry& e : u.host.layout.entries()) {
      std::vector<float> sum(e.numel), diff(e.numel);
      for (int64_t i = 0; i < e.numel; ++i) {
        sum[i] = g1[e.offset + i] + g2[e.offset + i];
        diff[i] = both[e.offset + i] - sum[i];
      }
      EXPECT_LT(norm_of(diff.data(), e.numel), 1e-6 * norm_of(sum.data(), e.numel))  // NaN fails too
          << e.name << ": two micro-batches' gradient is not the sum of each one's";
    }
    device.adamw_step(1e-2f, 1.0f);  // (moves the weights: upload puts them back)
    device.upload(u.host, u.optimizer);
    device.zero_grads();  // (nothing to do: AdamW zeroed)
    device.forward_backward(first, 0.03f, false, dropout);
    device.forward_backward(second, 0.03f, true, dropout);
    Model out(u.host.dims, 1);
    device.download_gradients(out);
    EXPECT_EQ(std::memcmp(out.grad_data(), both.data(), both.size() * sizeof(float)), 0)
        << "the two micro-batches after an AdamW step give other gradients";
    // read before any backward: zeros, not the stale values
    device.adamw_step(1e-2f, 1.0f);
    device.download_gradients(out);
    EXPECT_EQ(std::count(out.grad_data(), out.grad_data() + both.size(), 0.0f), static_cast<int64_t>(both.size()))
        << "gradients read right after AdamW are not all zero";
  }
}

// RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=256 (head_dim 64): the attention backward's segments of
// 129 to 256 tokens go to 256-key blocks. On a batch with a 200-token segment the gradients match
// the CPU's as the default's do (on the emulator they are the default's bits: both paths add the
// same bf16 products in the same order); an out-of-range value stops the backend naming the
// variable.
TEST(DeviceBackend, LongSegmentAttentionBlocksMatchCpu) {
  const Case c{.name = "gqa2 d64", .shape = {.vocab = 301, .d_model = 128, .n_heads = 2, .n_kv_heads = 1,
                                              .head_dim = 64, .d_ff = 200}};
  const int64_t max_tokens = 260;
  Model cpu(dims_of(c), max_tokens);
  init_for(cpu, 43);
  AdamW optimizer(cpu.layout, optim_config());
  Batch batch;
  batch.cu_seqlens = {0, 200, 203, 260};
  std::mt19937 gen(47);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(cpu.dims.vocab) - 1);
  for (int32_t s = 0; s + 1 < static_cast<int32_t>(batch.cu_seqlens.size()); ++s) {
    for (int32_t i = 0; i < batch.cu_seqlens[s + 1] - batch.cu_seqlens[s]; ++i) {
      batch.tokens.push_back(token(gen));
      batch.targets.push_back(token(gen));
      batch.loss_weights.push_back(1.0f);
      batch.pos_inter.push_back(i);
    }
  }
  const float scale = 1.0f / 260;
  zero_grads(cpu);
  forward_backward(cpu, batch, scale);
  for (const char* setting : {"", "256"}) {
    ASSERT_EQ(setenv("RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN", setting, 1), 0);
    std::unique_ptr<DeviceBackend> device;
    try {
      device = make_device_backend(cpu, optimizer, {.max_tokens = max_tokens, .optim = optim_config()});
    } catch (const UserError& e) {
      ASSERT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
    SKIP_WITHOUT_DEVICE(device);
    device->upload(cpu, optimizer);
    device->zero_grads();
    device->forward_backward(batch, scale, true, {});
    Model out(cpu.dims, 1);
    device->download_gradients(out);
    for (const ParamEntry& e : cpu.layout.entries()) {
      std::vector<float> diff(e.numel);
      for (int64_t i = 0; i < e.numel; ++i) diff[i] = out.grad_data()[e.offset + i] - cpu.grad_data()[e.offset + i];
      EXPECT_LT(norm_of(diff.data(), e.numel), 3e-2 * norm_of(cpu.grad_data() + e.offset, e.numel))
          << e.name << " with RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=" << setting;  // NaN fails too
    }
  }
  ASSERT_EQ(setenv("RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN", "257", 1), 0);
  try {
    make_device_backend(cpu, optimizer, {.max_tokens = max_tokens, .optim = optim_config()});
    ADD_FAILURE() << "RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=257 was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN=257"), std::string::npos) << e.what();
  }
  ASSERT_EQ(unsetenv("RECLM_ATTENTION_SEGMENT_BLOCK_MAX_LEN"), 0);
}

// forward_hidden (the ranking evaluation's forward on the device): the final norm's output at
// chosen rows, against the CPU's forward_hidden, to bf16 accuracy: ‖device − cpu‖ / ‖cpu‖ per row
// below 2e-2 (measured up to 1.1e-2: every layer's GEMMs and attention read bf16 operands).
TEST(DeviceBackend, ForwardHiddenMatchesCpu) {
  // untied + prefix, 2D positions, LoRA, a bf16 stream (its final norm's fp32 form), under LoRA
  for (const Case& c : {cases()[1], cases()[2], cases()[6], cases()[13], cases()[15]}) {
    SCOPED_TRACE(c.name);
    Uploaded u(c, 37);
    SKIP_WITHOUT_DEVICE(u.device);
    Model& cpu = u.host;
    const ModelDims& d = cpu.dims;
    const Batch batch = make_batch(c, d, 41);
    const std::vector<int32_t> rows = {12, 13, 50, 0, 30};  // segment ends, a start, a middle
    const int64_t C = d.d_model, R = static_cast<int64_t>(rows.size());
    std::vector<float> got(R * C, std::nanf(""));
    u.device->forward_hidden(batch, rows.data(), R, got.data());
    forward_hidden(cpu, batch);
    double worst = 0;
    for (int64_t r = 0; r < R; ++r) {
      const float* want = cpu.acts.final_normed + rows[r] * C;
      std::vector<float> diff(C);
      for (int64_t i = 0; i < C; ++i) diff[i] = got[r * C + i] - want[i];
      const double rel = norm_of(diff.data(), C) / norm_of(want, C);
      EXPECT_LT(rel, 2e-2) << "row " << rows[r];  // NaN fails too
      worst = std::max(worst, rel);
    }
    std::printf("%s: hidden states within %.2e of the CPU's\n", c.name.c_str(), worst);
  }
}

// One micro-batch (gradient scale 0.03) on `device` from the host's weights: loss and gradients.
struct DeviceStep {
  double loss;
  std::vector<float> grads;
};
DeviceStep run_step(DeviceBackend& device, const Model& host, const AdamW& optimizer, const Batch& batch,
                    const DropoutState& dropout = {}) {
  device.upload(host, optimizer);
  device.zero_grads();
  const double loss = device.forward_backward(batch, 0.03f, true, dropout);
  Model out(host.dims, 1);
  device.download_gradients(out);
  return {loss, std::vector<float>(out.grad_data(), out.grad_data() + host.layout.total_floats())};
}

// runtime.recompute_activations: backward recomputes each layer's activations from its input;
// the kernels are deterministic, so the gradients are bitwise those of the saved activations.
TEST(DeviceBackend, RecomputedActivationsGiveTheSameGradients) {
  // [4]: the masks recomputed too; [5]: the adapters' bottlenecks too
  // [14], [15]: a bf16 stream, with dropout
  for (const Case& c : {cases()[0], cases()[2], cases()[4], cases()[5], cases()[14], cases()[15]}) {
    SCOPED_TRACE(c.name);
    const ModelDims d = dims_of(c);
    Model host(d, kMaxTokens);
    init_for(host, 13);
    AdamW optimizer(host.layout, optim_config());
    auto saved = backend_or_skip(host, optimizer, false, 0, false, true, false, 2, c.bf16_residual);
    SKIP_WITHOUT_DEVICE(saved);
    auto recomputed = backend_or_skip(host, optimizer, true, 0, false, true, false, 2, c.bf16_residual);
    EXPECT_LT(recomputed->info().planned_bytes, saved->info().planned_bytes);
    const Batch batch = make_batch(c, d, 17);
    const DeviceStep a = run_step(*saved, host, optimizer, batch, dropout_of(c));
    const DeviceStep b = run_step(*recomputed, host, optimizer, batch, dropout_of(c));
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_TRUE(a.grads == b.grads) << "recomputed activations changed the gradients";
  }
}

// runtime.second_stream (the default: the weight-gradient GEMMs and AdamW on a side stream)
// against one stream: bitwise the same micro-batch losses, gradients, gradient norms, weights and
// moments over four optimizer steps of two accumulated micro-batches each (the second skips its
// update, as train.on_nonfinite SKIP does, so the third must start from zeroed gradients and give
// the second's), and the same validation loss after them; every case, with saved activations and
// an LM head in chunks of 7 rows, and with recomputed activations and one chunk. The residual
// stream's bf16 gradient, which the side stream's o/down GEMMs read, has two buffers (the
// default), and with saved activations also one (RECLM_RESIDUAL_GRADIENT_BUFFERS=1). On the
// emulator the side stream's work runs only when the compute stream waits for it (side_stream.h),
// the latest a GPU could run it, so a missing wait shows here as a weight-gradient GEMM reading
// an overwritten operand, a forward reading weights before their update, or a download before
// the update.
TEST(DeviceBackend, SecondStreamTrainsBitwiseLikeOneStream) {
  struct Run {
    std::vector<double> losses;    // per micro-batch and the gradient norms, then the validation loss
    std::vector<float> grads[2];   // after the backward of the steps 2 and 3 (the same weights)
    std::vector<float> state;      // weights, then moments, at the end
  };
  const auto bits_differ = [](const std::vector<float>& a, const std::vector<float>& b) {
    int64_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return differ;
  };
  for (const Case& c : cases()) {
    if (c.gemm_autotune) continue;  // (another case's shapes; timed choices differ between backends)
    for (const bool recompute : {false, true}) {
      SCOPED_TRACE(c.name + (recompute ? ", recomputed" : ", saved"));
      Model host(dims_of(c), kMaxTokens);
      if (host.dims.vocab_parallel()) host.comm = &local_comm();
      init_for(host, 29);
      AdamW optimizer(host.layout, optim_config());
      const int64_t head_chunk_rows = recompute ? 0 : 7;  // (chunks: each rewrites the last one's dlogits)
      // [0] one stream, the reference; [1] the side stream; [2] the side stream, one residual buffer
      std::vector<std::unique_ptr<DeviceBackend>> backends;
      backends.push_back(backend_or_skip(host, optimizer, recompute, head_chunk_rows, c.fp32_logits,
                                         /*second_stream=*/false, false, 2, c.bf16_residual));
      SKIP_WITHOUT_DEVICE(backends[0]);
      backends.push_back(
          backend_or_skip(host, optimizer, recompute, head_chunk_rows, c.fp32_logits, true, false, 2, c.bf16_residual));
      // (the second buffers, and the side stream's cuBLASLt workspace)
      EXPECT_GT(backends[1]->info().planned_bytes, backends[0]->info().planned_bytes);
      if (!recompute) {
        backends.push_back(backend_or_skip(host, optimizer, recompute, head_chunk_rows, c.fp32_logits,
                                           /*second_stream=*/true, /*gemm_autotune=*/false,
                                           /*residual_gradient_buffers=*/1, c.bf16_residual));
        EXPECT_GT(backends[1]->info().planned_bytes, backends[2]->info().planned_bytes);
        EXPECT_GT(backends[2]->info().planned_bytes, backends[0]->info().planned_bytes);
      }
      const Batch first = make_batch(c, host.dims, 31), second = make_batch(c, host.dims, 37);
      std::vector<Run> runs(backends.size());
      for (size_t r = 0; r < backends.size(); ++r) {
        DeviceBackend& device = *backends[r];
        Run& run = runs[r];
        device.upload(host, optimizer);
        for (int step = 0; step < 4; ++step) {
          device.zero_grads();
          run.losses.push_back(device.forward_backward(first, 0.03f, false, dropout_of(c)));
          run.losses.push_back(device.forward_backward(second, 0.03f, true, dropout_of(c)));
          if (step == 1 || step == 2) {
            Model out(host.dims, 1);
            device.download_gradients(out);
            run.grads[step - 1].assign(out.grad_data(), out.grad_data() + host.layout.total_floats());
          }
          run.losses.push_back(device.grad_norm());
          if (step != 1) device.adamw_step(1e-2f, 1.0f);
        }
        Model out(host.dims, 1);  // right after the update: the download waits for it
        AdamW moments(host.layout, optim_config());
        device.download(out, &moments);
        run.state.assign(out.param_data(), out.param_data() + host.layout.total_floats());
        run.state.insert(run.state.end(), moments.first_moment(), moments.first_moment() + moments.moment_floats());
        run.state.insert(run.state.end(), moments.second_moment(), moments.second_moment() + moments.moment_floats());
        run.losses.push_back(device.forward_loss(first));
      }
      for (size_t r = 0; r < runs.size(); ++r) {
        SCOPED_TRACE(r == 0 ? "one stream" : r == 1 ? "side stream" : "side stream, one residual gradient buffer");
        EXPECT_EQ(bits_differ(runs[r].grads[0], runs[r].grads[1]), 0) << "not zeroed after a skip";
        if (r == 0) continue;
        EXPECT_EQ(runs[0].losses, runs[r].losses);
        EXPECT_EQ(bits_differ(runs[0].grads[0], runs[r].grads[0]), 0) << "gradients differ";
        EXPECT_EQ(bits_differ(runs[0].state, runs[r].state), 0) << "weights or moments differ";
      }
    }
  }
}

// runtime.queued_steps (DeviceBackend::queue_update) against the synchronous calls, in the train
// loop's order: each step's micro-batches queued, then the step before read, then its update
// queued. Four steps of two micro-batches, the gradients clipped to 0.5; the second step's loss
// weight is so small that its mean loss overflows, so the guard must skip its update as
// train.on_nonfinite SKIP does. Bitwise the same loss sums, norms and finite flags, the same
// weights and moments after them and the same validation loss; with the side stream, and with one
// stream for a tied and an untied head (whose gradient norm has one stage more); under LoRA (the
// norm over the trained values, summed after backward) with its merged weights. The cases that
// only change the layers' shapes are left out (nothing there depends on the queueing). Runs that
// cannot queue (vocabulary parallelism) say so, and misuse is refused.
TEST(DeviceBackend, QueuedStepsTrainBitwiseLikeReadSteps) {
  const auto bits_differ = [](const std::vector<float>& a, const std::vector<float>& b) {
    int64_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return differ;
  };
  const double weights[4] = {3.5, 1e-310, 2.25, 7.0};  // (Σ weight·loss / 1e-310 is +inf)
  const float max_norm = 0.5f, lr = 1e-2f;
  int queued_cases = 0;
  for (const Case& c : cases()) {
    if (c.gemm_autotune || c.name == "2D positions" || c.name == "d128" || c.name == "d96 gqa2 prefix") continue;
    for (const bool second_stream : {false, true}) {
      if (!second_stream && c.name != "gqa2 d64 tied causal" && c.name != "untied prefix class range") continue;
      SCOPED_TRACE(c.name + (second_stream ? ", side stream" : ", one stream"));
      Model host(dims_of(c), kMaxTokens);
      if (host.dims.vocab_parallel()) host.comm = &local_comm();
      init_for(host, 41);
      AdamW optimizer(host.layout, optim_config());
      auto read = backend_or_skip(host, optimizer, false, 7, c.fp32_logits, second_stream, false, 2, c.bf16_residual);
      SKIP_WITHOUT_DEVICE(read);
      auto queued = backend_or_skip(host, optimizer, false, 7, c.fp32_logits, second_stream, false, 2, c.bf16_residual);
      const bool can = !host.dims.vocab_parallel();
      EXPECT_EQ(queued->can_queue_steps(), can);
      if (!can) continue;
      ++queued_cases;
      const Batch first = make_batch(c, host.dims, 43), second = make_batch(c, host.dims, 47);
      // the synchronous steps: loss sum, norm, finite per step
      std::vector<double> want;
      read->upload(host, optimizer);
      for (int step = 0; step < 4; ++step) {
        read->zero_grads();
        double loss_sum = read->forward_backward(first, 0.03f, false, dropout_of(c));
        loss_sum += read->forward_backward(second, 0.03f, true, dropout_of(c));
        const double norm = read->grad_norm();
        const bool finite = std::isfinite(loss_sum / weights[step]) && std::isfinite(norm);
        if (finite) read->adamw_step(lr, clip_coefficient(norm, max_norm));
        want.insert(want.end(), {loss_sum, norm, finite ? 1.0 : 0.0});
      }
      EXPECT_EQ(want[5], 0.0) << "the second step should not be finite";
      // the queued steps
      std::vector<double> got;
      const auto read_step = [&] {
        const DeviceBackend::QueuedStep s = queued->read_queued_step();
        got.insert(got.end(), {s.loss_sum, s.grad_norm, s.finite ? 1.0 : 0.0});
        EXPECT_GE(s.device_ms, 0.0);
        EXPECT_EQ(s.queued_behind, got.size() > 3) << "only the first step was queued with none unread";
      };
      queued->upload(host, optimizer);
      for (int step = 0; step < 4; ++step) {
        queued->zero_grads();
        queued->forward_backward_queued(first, 0.03f, false, dropout_of(c));
        queued->forward_backward_queued(second, 0.03f, true, dropout_of(c));
        if (step > 0) read_step();
        queued->queue_update(lr, max_norm, weights[step]);
      }
      EXPECT_THROW(queued->queue_update(lr, max_norm, 1.0), InternalError);  // (no micro-batch queued)
      Model unread(host.dims, 1);
      EXPECT_THROW(queued->download(unread, nullptr), InternalError);  // (step 4 unread)
      read_step();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(std::memcmp(&got[i], &want[i], sizeof(double)), 0)
            << "step " << i / 3 + 1 << (i % 3 == 0 ? " loss sum " : i % 3 == 1 ? " norm " : " finite ") << got[i]
            << " against " << want[i];
      }
      std::vector<float> state[2];
      for (int r = 0; r < 2; ++r) {
        DeviceBackend& device = r == 0 ? *read : *queued;
        Model out(host.dims, 1);
        AdamW moments(host.layout, optim_config());
        device.download(out, &moments);
        EXPECT_EQ(moments.steps_taken(), 3) << "the skipped step counts";
        state[r].assign(out.param_data(), out.param_data() + host.layout.total_floats());
        state[r].insert(state[r].end(), moments.first_moment(), moments.first_moment() + moments.moment_floats());
        state[r].insert(state[r].end(), moments.second_moment(), moments.second_moment() + moments.moment_floats());
      }
      EXPECT_EQ(bits_differ(state[0], state[1]), 0) << "weights or moments differ";
      const double val[2] = {read->forward_loss(first), queued->forward_loss(first)};
      EXPECT_EQ(std::memcmp(&val[0], &val[1], sizeof(double)), 0);
    }
  }
  EXPECT_GT(queued_cases, 2);
}

// The LM head in chunks of 7 rows (several chunks and a partial one; the trainer's chunks are
// thousands of rows) against one chunk, with bf16 and with fp32 logits: the same loss and
// gradients up to fp32 rounding (a GEMM over fewer rows may round its sums differently, which a
// bf16 logit may carry to its next value; the head's weight gradient is summed chunk by chunk).
TEST(DeviceBackend, ChunkedLmHeadMatchesOneChunk) {
  for (const auto& [c, fp32_logits] : {std::pair{cases()[0], false}, std::pair{cases()[1], false},
                                       std::pair{cases()[0], true}, std::pair{cases()[1], true}}) {
    SCOPED_TRACE(c.name + (fp32_logits ? ", fp32 logits" : ", bf16 logits"));
    const ModelDims d = test::tiny_model_dims(c.shape);
    Model host(d, kMaxTokens);
    init_weights(host, 19, 0.08f);
    AdamW optimizer(host.layout, optim_config());
    auto whole = backend_or_skip(host, optimizer, false, 0, fp32_logits);
    SKIP_WITHOUT_DEVICE(whole);
    auto chunked = backend_or_skip(host, optimizer, false, 7, fp32_logits);
    const Batch batch = make_batch(c, d, 23);
    int64_t rows = 0;
    for (float w : batch.loss_weights) rows += w != 0.0f;
    ASSERT_GT(rows, 3 * 7) << "the batch should need several chunks";
    const DeviceStep one = run_step(*whole, host, optimizer, batch), many = run_step(*chunked, host, optimizer, batch);
    EXPECT_NEAR(chunked->forward_loss(batch), many.loss, 1e-12 * std::abs(many.loss));
    EXPECT_NEAR(many.loss, one.loss, 1e-6 * std::abs(one.loss));
    std::printf("%s, %s logits: chunked loss within %.1e of one chunk's\n", c.name.c_str(),
                fp32_logits ? "fp32" : "bf16", std::abs(many.loss - one.loss) / std::abs(one.loss));
    for (const ParamEntry& e : host.layout.entries()) {
      double diff = 0, ref = 0;
      for (int64_t i = e.offset; i < e.offset + e.numel; ++i) {
        diff += std::pow(static_cast<double>(many.grads[i]) - one.grads[i], 2);
        ref += std::pow(static_cast<double>(one.grads[i]), 2);
      }
      EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(ref)) << e.name;  // NaN fails too
    }
  }
}

// runtime.fp32_logits against the default bf16 logits on the same weights and micro-batch: the
// fp32 head plans no less memory than the bf16 one (its chunk holds fp32 logits beside the bf16
// dlogits), the two give different losses (the logits' rounding is the only difference, so this
// shows the option reaches the head), and both are within bf16 accuracy of the CPU's fp32 loss.
TEST(DeviceBackend, Fp32LogitsOptionKeepsTheLogitsInFp32) {
  for (const Case& c : {cases()[0], cases()[1]}) {
    SCOPED_TRACE(c.name);
    const ModelDims d = dims_of(c);
    Model host(d, kMaxTokens);
    init_for(host, 29);
    AdamW optimizer(host.layout, optim_config());
    auto bf16 = backend_or_skip(host, optimizer);
    SKIP_WITHOUT_DEVICE(bf16);
    auto fp32 = backend_or_skip(host, optimizer, false, 0, /*fp32_logits=*/true);
    EXPECT_GT(fp32->info().planned_bytes, bf16->info().planned_bytes);
    const Batch batch = make_batch(c, d, 31);
    const DeviceStep a = run_step(*bf16, host, optimizer, batch), b = run_step(*fp32, host, optimizer, batch);
    zero_grads(host);
    const double cpu = forward_backward(host, batch, 0.03f);
    EXPECT_NE(a.loss, b.loss) << "the logits' precision changed nothing";
    EXPECT_NEAR(a.loss, cpu, 2e-3 * std::abs(cpu)) << "bf16 logits";
    EXPECT_NEAR(b.loss, cpu, 2e-3 * std::abs(cpu)) << "fp32 logits";
    EXPECT_EQ(bf16->forward_loss(batch), a.loss);
    EXPECT_EQ(fp32->forward_loss(batch), b.loss);
    std::printf("%s: loss cpu %.7f, device bf16 logits %.7f (%.1e), fp32 logits %.7f (%.1e)\n", c.name.c_str(), cpu,
                a.loss, std::abs(a.loss - cpu) / std::abs(cpu), b.loss, std::abs(b.loss - cpu) / std::abs(cpu));
  }
}

// runtime.bf16_residual against the fp32 stream on the same weights and micro-batch: the plan is
// smaller by the stream's saved arrays' halves (2 bytes a value of each layer's residual and
// residual_mid and of residual_out, less the bf16 gradient array it adds for dropout), the
// gradients differ in their bits (the stream's rounding reaches them: the option is in effect)
// and stay within bf16 accuracy of the fp32 stream's, and so do the losses.
TEST(DeviceBackend, Bf16ResidualOptionKeepsTheStreamInBf16) {
  for (const Case& c : {cases()[0], cases()[5]}) {
    SCOPED_TRACE(c.name);
    Case bf16_case = c;
    bf16_case.bf16_residual = true;
    Uploaded fp32(c, 53);  // (the same weights)
    SKIP_WITHOUT_DEVICE(fp32.device);
    Uploaded bf16(bf16_case, 53);
    const ModelDims& d = fp32.host.dims;
    const int64_t stream_bytes = kMaxTokens * d.d_model * 2;  // half an fp32 array of the stream
    const int64_t alignment = 256 * (2 * d.n_layers + 2);     // (the plan's pieces start at 256 bytes)
    EXPECT_GE(fp32.device->info().planned_bytes - bf16.device->info().planned_bytes,
              2 * d.n_layers * stream_bytes - alignment);
    const Batch batch = make_batch(c, d, 59);
    const DeviceStep a = run_step(*fp32.device, fp32.host, fp32.optimizer, batch, dropout_of(c));
    const DeviceStep b = run_step(*bf16.device, bf16.host, bf16.optimizer, batch, dropout_of(c));
    EXPECT_NEAR(b.loss, a.loss, 2e-3 * std::abs(a.loss));
    int64_t differ = 0;
    for (size_t i = 0; i < a.grads.size(); ++i) differ += std::memcmp(&a.grads[i], &b.grads[i], sizeof(float)) != 0;
    EXPECT_GT(differ, 0) << "the stream's precision changed no gradient";
    double worst = 0;
    for (const ParamEntry& e : fp32.host.layout.entries()) {
      std::vector<float> diff(e.numel);
      for (int64_t i = 0; i < e.numel; ++i) diff[i] = b.grads[e.offset + i] - a.grads[e.offset + i];
      const double rel = norm_of(diff.data(), e.numel) / norm_of(a.grads.data() + e.offset, e.numel);
      EXPECT_LT(rel, 3e-2) << e.name << " (‖bf16 stream − fp32 stream‖ / ‖fp32 stream‖)";  // NaN fails too
      worst = std::max(worst, rel);
    }
    std::printf("%s: loss fp32 stream %.7f, bf16 stream %.7f; %lld gradient values differ, worst tensor %.2e\n",
                c.name.c_str(), a.loss, b.loss, static_cast<long long>(differ), worst);
  }
}

// [1] untied: embedding and head decay differently from matrices; [5] LoRA: the norm and the
// update cover the trainable values only (adapters, new embedding rows); [0] tied. The norm of
// [0] and [1] is summed stage by stage during the last micro-batch's backward
// (DeviceModel::StageNorms); step 1 accumulates two micro-batches.
TEST(DeviceBackend, AdamWAndNormEqualCpuOnDeviceGradients) {
  for (const Case& c : {cases()[1], cases()[5], cases()[0]}) {
    SCOPED_TRACE(c.name);
    Uploaded u(c, 3);
    SKIP_WITHOUT_DEVICE(u.device);
    Model& host = u.host;
    AdamW& host_optimizer = u.optimizer;
    DeviceBackend* device = u.device.get();
    const ModelDims& d = host.dims;
    for (int step = 0; step < 3; ++step) {
      device->zero_grads();
      if (step == 1) device->forward_backward(make_batch(c, d, 30), 0.02f, false);
      device->forward_backward(make_batch(c, d, 20 + step), 0.02f, true);
      device->download_gradients(host);  // the host steps on the device's gradients
      const double norm = device->grad_norm();
      EXPECT_NEAR(norm, AdamW::grad_norm(host), 1e-12 * norm) << "step " << step;
      const float clip = clip_coefficient(norm, 0.5f);
      device->adamw_step(1e-2f, clip);
      host_optimizer.step(host, 1e-2f, clip);
    }
    Model got(d, 1);
    AdamW got_optimizer(got.layout, optim_config());
    device->download(got, &got_optimizer);
    EXPECT_EQ(got_optimizer.steps_taken(), 3);
    // Each array against the CPU's, in units of its largest value's ulp (2^-23·max|x|): the
    // kernel fuses multiply-adds where g++ may not, a few ulp of the value or of its inputs.
    const int64_t n = host.layout.total_floats();
    const auto worst_ulps = [n](const float* got, const float* want) {
      double scale = 0, worst = 0;
      for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(static_cast<double>(want[i])));
      for (int64_t i = 0; i < n; ++i) {
        const double d = std::abs(static_cast<double>(got[i]) - want[i]) / (scale * 0x1p-23);
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
      }
      return worst;
    };
    const double w = worst_ulps(got.param_data(), host.param_data());
    const double m = worst_ulps(got_optimizer.first_moment(), host_optimizer.first_moment());
    const double v = worst_ulps(got_optimizer.second_moment(), host_optimizer.second_moment());
    std::printf("device AdamW vs CPU on the same gradients, worst |difference| in ulps of the array's "
                "largest value: weights %.2f, m %.2f, v %.2f\n", w, m, v);
    EXPECT_LE(w, 4.0);
    EXPECT_LE(m, 4.0);
    EXPECT_LE(v, 4.0);
  }
}

// ZeRO-1 on one rank: the exchange is the identity (a reduce-scatter and an all-gather of one
// block; on GPUs through NCCL), so an optimizer sharded over the whole canonical range trains
// bitwise like the plain one, its moments the plain ones in canonical order; the norms differ
// only in summation order. Also under LoRA (frozen values are never exchanged).
TEST(DeviceBackend, Zero1OnOneRankTrainsLikePlainAdamW) {
  for (const Case& c : {cases()[1], cases()[5]}) {
    SCOPED_TRACE(c.name);
    const ModelDims d = dims_of(c);
    Model host(d, kMaxTokens);
    host.comm = &local_comm();
    init_for(host, 29);
    const CanonicalRange everything = zero1_shard_range(host.layout, 0, 1);
    AdamW plain_optimizer(host.layout, optim_config()), sharded_optimizer(host.layout, optim_config(), everything);
    auto plain = backend_or_skip(host, plain_optimizer);
    SKIP_WITHOUT_DEVICE(plain);
    auto sharded = backend_or_skip(host, sharded_optimizer);
    plain->upload(host, plain_optimizer);
    sharded->upload(host, sharded_optimizer);
    for (int step = 0; step < 3; ++step) {
      const Batch batch = make_batch(c, d, 40 + step);
      std::vector<double> norms;
      for (DeviceBackend* device : {plain.get(), sharded.get()}) {
        device->zero_grads();
        device->forward_backward(batch, 0.02f, true);
        device->all_reduce_gradients(&local_comm());
        norms.push_back(device->grad_norm());
        device->adamw_step(1e-2f, 1.0f);  // no clipping: the norms' last bits do not matter
      }
      EXPECT_NEAR(norms[1], norms[0], 1e-12 * norms[0]) << "step " << step;
    }
    Model a(d, 1), b(d, 1);
    AdamW a_optimizer(a.layout, optim_config()), b_optimizer(b.layout, optim_config(), everything);
    plain->download(a, &a_optimizer);
    sharded->download(b, &b_optimizer);
    EXPECT_EQ(std::memcmp(a.param_data(), b.param_data(), a.layout.total_floats() * sizeof(float)), 0);
    int64_t canonical = 0;
    for (const ParamEntry& e : a.layout.entries()) {
      for (const auto& [plain_m, sharded_m] : {std::pair{a_optimizer.first_moment(), b_optimizer.first_moment()},
                                              std::pair{a_optimizer.second_moment(), b_optimizer.second_moment()}}) {
        EXPECT_EQ(std::memcmp(plain_m + e.offset, sharded_m + canonical, e.numel * sizeof(float)), 0) << e.name;
      }
      canonical += e.numel;
    }
  }
}

TEST(DeviceBackend, UploadDownloadRoundTripIsExact) {
  const Case c = cases()[0];
  const ModelDims d = test::tiny_model_dims(c.shape);
  Model host(d, kMaxTokens);
  init_weights(host, 5, 0.08f);
  AdamW optimizer(host.layout, optim_config());
  std::mt19937 gen(9);
  std::normal_distribution<float> normal;
  const int64_t n = host.layout.total_floats();
  for (int64_t i = 0; i < n; ++i) optimizer.first_moment()[i] = normal(gen), optimizer.second_moment()[i] = std::abs(normal(gen));
  optimizer.set_steps_taken(41);
  auto device = backend_or_skip(host, optimizer);
  SKIP_WITHOUT_DEVICE(device);
  device->upload(host, optimizer);
  Model got(d, 1);
  AdamW got_optimizer(got.layout, optim_config());
  device->download(got, &got_optimizer);
  EXPECT_EQ(std::memcmp(got.param_data(), host.param_data(), n * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(got_optimizer.first_moment(), optimizer.first_moment(), n * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(got_optimizer.second_moment(), optimizer.second_moment(), n * sizeof(float)), 0);
  EXPECT_EQ(got_optimizer.steps_taken(), 41);
}

}  // namespace
}  // namespace reclm
