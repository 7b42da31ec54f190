// Loss and optimizer kernels (kernels/cuda/{cross_entropy,adamw,grad_norm}.cu). `bytes` counts
// each array the kernel must read or write once (fp32 = 4 bytes, bf16 = 2):
//   cross-entropy [8192 x 50257] in place: read logits + write dlogits (the kernel reads the
//     row twice; the second read should mostly hit L2) — forward only: read logits; the GPU
//     trainer's LM head at gpu_350m's classes: bf16 logits in place (read 2 + write 2 bytes per
//     logit; the rows held in registers and read once, or read twice), or fp32 logits into bf16
//     dlogits (runtime.fp32_logits: read 4 + write 2);
//   AdamW over 256M params: read p, g, m, v + write p, m, v (+ the bf16 copy);
//   sum of squares over 1G floats: read x.
#include <cstdint>
#include <vector>

#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {
namespace {

// The GPU trainer's LM-head cross-entropy, both forms, on the same 4096 rows of gpu_350m's 64553
// classes, 64576 apart (the head's GEMMs run over a multiple of 64): with bf16 logits (the
// default) the dlogits overwrite the logits; with fp32 logits they go to a bf16 buffer.
void add_lm_head_cases(std::vector<KernelCase>& cases, const std::shared_ptr<simt::DeviceBuffer<int32_t>>& targets,
                       const std::shared_ptr<Floats>& weights, const std::shared_ptr<Floats>& losses,
                       const std::shared_ptr<simt::DeviceBuffer<double>>& row_loss,
                       const std::shared_ptr<simt::DeviceBuffer<double>>& loss_sum) {
  const int64_t R = 4096, V = 64553, Vp = 64576;  // targets: the first R of the 8192, all < V
  const std::string shape = std::to_string(R) + " x " + std::to_string(V) + " (stride " + std::to_string(Vp) + ")";
  auto logits16 = random_bf16(R * Vp, 8, -8.0f, 8.0f);
  auto logits32 = device_values(R * Vp, 9, -8.0f, 8.0f);
  auto dlogits = std::make_shared<Bf16s>(static_cast<size_t>(R * Vp));
  const std::vector<std::shared_ptr<void>> keep = {logits16, logits32, dlogits, targets, weights, losses, row_loss,
                                                   loss_sum};
  cases.push_back(make_case("LM head cross-entropy, bf16 logits in place " + shape, 4 * R * V + 24 * R,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_forward_backward_bf16(
                                  bf16_ptr(logits16), losses->data(), loss_sum->data(), row_loss->data(),
                                  bf16_ptr(logits16), targets->data(), weights->data(), R, V, 0, 1.0f / R, s, Vp);
                            },
                            keep));
  // the same, one row per block (the register kernel before the next row was loaded beside one)
  cases.push_back(make_case("LM head cross-entropy, bf16 logits in place, one row per block " + shape,
                            4 * R * V + 24 * R,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_forward_backward_bf16_one_row_per_block(
                                  bf16_ptr(logits16), losses->data(), loss_sum->data(), row_loss->data(),
                                  bf16_ptr(logits16), targets->data(), weights->data(), R, V, 0, 1.0f / R, s, Vp);
                            },
                            keep));
  // the same with every row read twice (the kernel before rows were held in registers)
  cases.push_back(make_case("LM head cross-entropy, bf16 logits in place, read twice " + shape, 4 * R * V + 24 * R,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_forward_backward_bf16_two_pass(
                                  bf16_ptr(logits16), losses->data(), loss_sum->data(), row_loss->data(),
                                  bf16_ptr(logits16), targets->data(), weights->data(), R, V, 0, 1.0f / R, s, Vp);
                            },
                            keep));
  cases.push_back(make_case("LM head cross-entropy, fp32 logits " + shape, 6 * R * V + 24 * R,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_forward_backward_bf16(
                                  bf16_ptr(dlogits), losses->data(), loss_sum->data(), row_loss->data(),
                                  logits32->data(), targets->data(), weights->data(), R, V, 0, 1.0f / R, s, Vp);
                            },
                            keep));
}

void add_cross_entropy_cases(std::vector<KernelCase>& cases) {
  const int64_t T = 8192, V = 50257;
  const std::string shape = std::to_string(T) + " x " + std::to_string(V);
  auto logits = device_values(T * V, 1, -8.0f, 8.0f);
  std::vector<int32_t> host_targets(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) host_targets[t] = static_cast<int32_t>((t * 7919) % V);
  auto targets = std::make_shared<simt::DeviceBuffer<int32_t>>(host_targets);
  auto weights = device_values(T, 2, 0.5f, 1.5f);
  auto losses = std::make_shared<Floats>(static_cast<size_t>(T));
  auto row_loss = std::make_shared<simt::DeviceBuffer<double>>(static_cast<size_t>(T));
  auto loss_sum = std::make_shared<simt::DeviceBuffer<double>>(1);
  const std::vector<std::shared_ptr<void>> keep = {logits, targets, weights, losses, row_loss, loss_sum};
  // In place, as the trainer runs it: later runs see earlier runs' dlogits as logits (still
  // ordinary numbers; the work is the same).
  cases.push_back(make_case("cross_entropy_forward_backward in place " + shape, 8 * T * V + 24 * T,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_forward_backward(
                                  logits->data(), losses->data(), loss_sum->data(), row_loss->data(),
                                  logits->data(), targets->data(), weights->data(), T, V, 0, 1.0f / T, s);
                            },
                            keep));
  // vocabulary parallelism's pieces, over rows padded to a multiple of 64 classes as the trainer's
  const int64_t Vp = (V + 63) / 64 * 64;
  auto row_max = std::make_shared<Floats>(static_cast<size_t>(T));
  auto row_sum = std::make_shared<simt::DeviceBuffer<double>>(static_cast<size_t>(T));
  auto target_logit = std::make_shared<simt::DeviceBuffer<double>>(static_cast<size_t>(T));
  auto dlogits = std::make_shared<simt::DeviceBuffer<uint16_t>>(static_cast<size_t>(T * Vp));
  const std::vector<std::shared_ptr<void>> keep_vp = {logits, targets, weights, row_max, row_sum, target_logit,
                                                      dlogits};
  const int64_t rows = T * V / Vp;  // the rows of the same logits buffer at the padded stride
  const std::string vp_shape = std::to_string(rows) + " x " + std::to_string(V) + " (stride " + std::to_string(Vp) +
                               ")";
  cases.push_back(make_case("cross_entropy_partial_stats " + vp_shape, 4 * rows * V + 24 * rows,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_partial_stats(row_max->data(), row_sum->data(),
                                                                       target_logit->data(), logits->data(),
                                                                       targets->data(), weights->data(), rows, V, 0,
                                                                       s, Vp);
                            },
                            keep_vp));
  cases.push_back(make_case("cross_entropy_backward_from_stats_bf16 " + vp_shape, 6 * rows * V + 24 * rows,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_backward_from_stats_bf16(
                                  reinterpret_cast<__nv_bfloat16*>(dlogits->data()), logits->data(),
                                  targets->data(), weights->data(), row_max->data(), row_sum->data(), rows, V, 0,
                                  1.0f / rows, s, Vp);
                            },
                            keep_vp));
  cases.push_back(make_case("cross_entropy_forward " + shape, 4 * T * V + 24 * T,
                            [=](cudaStream_t s) {
                              return cuda::cross_entropy_forward(losses->data(), loss_sum->data(),
                                                                 row_loss->data(), logits->data(),
                                                                 targets->data(), weights->data(), T, V, 0, s);
                            },
                            keep));
  add_lm_head_cases(cases, targets, weights, losses, row_loss, loss_sum);
}

void add_adamw_cases(std::vector<KernelCase>& cases) {
  const int64_t n = int64_t{1} << 28;  // 256M params: 1 GiB per fp32 array
  auto p = device_values(n, 3), g = device_values(n, 4), m = device_values(n, 5, -0.1f, 0.1f),
       v = device_values(n, 6, 0.0f, 0.01f);
  auto bf16 = std::make_shared<simt::DeviceBuffer<uint16_t>>(static_cast<size_t>(n));
  ops::AdamWHyper h;
  h.lr = 1e-4f;
  h.beta1 = 0.9f;
  h.beta2 = 0.95f;
  h.eps = 1e-8f;
  h.weight_decay = 0.1f;
  h.step = 100;
  h.grad_scale = 0.5f;
  const std::vector<std::shared_ptr<void>> keep = {p, g, m, v, bf16};
  cases.push_back(make_case("adamw_update 256M params", 28 * n,
                            [=](cudaStream_t s) {
                              return cuda::adamw_update(p->data(), g->data(), m->data(), v->data(), n, h, s);
                            },
                            keep));
  cases.push_back(make_case("adamw_update_bf16 nearest-even 256M params", 30 * n,
                            [=](cudaStream_t s) {
                              return cuda::adamw_update_bf16(p->data(), g->data(), m->data(), v->data(), n, h,
                                                             bf16->data(), ops::Bf16Rounding::kNearestEven, 0, 0,
                                                             s);
                            },
                            keep));
  cases.push_back(make_case("adamw_update_bf16 stochastic 256M params", 30 * n,
                            [=](cudaStream_t s) {
                              return cuda::adamw_update_bf16(p->data(), g->data(), m->data(), v->data(), n, h,
                                                             bf16->data(), ops::Bf16Rounding::kStochastic, 42, 0,
                                                             s);
                            },
                            keep));
}

void add_grad_norm_cases(std::vector<KernelCase>& cases) {
  const int64_t n = int64_t{1} << 30;  // 1G floats, 4 GiB
  auto x = device_values(n, 7);
  auto workspace =
      std::make_shared<simt::DeviceBuffer<double>>(static_cast<size_t>(cuda::sum_of_squares_workspace_doubles(n)));
  auto result = std::make_shared<simt::DeviceBuffer<double>>(1);
  cases.push_back(make_case("sum_of_squares 1G floats", 4 * n,
                            [=](cudaStream_t s) {
                              return cuda::sum_of_squares(result->data(), x->data(), n, workspace->data(), s);
                            },
                            {x, workspace, result}));
  // A gpu_350m layer's gradients, the trainer's stage of the norm (docs/gpu.md): nine tensors
  // summed as one group (two launches), against each tensor alone (two launches each: the 18 of
  // the 19 launches before 2026-11-28 that summed them). Their gaps, not bytes, set these times.
  const std::vector<int64_t> sizes = {1024, 1024 * 1024, 512 * 1024, 512 * 1024, 1024 * 1024,
                                      1024, 2816 * 1024, 2816 * 1024, 1024 * 2816};
  std::vector<const float*> tensors;
  int64_t at = 0, layer = 0;
  for (const int64_t size : sizes) {
    tensors.push_back(x->data() + at);
    at += (size + 63) / 64 * 64;  // (the layout's alignment)
    layer += size;
  }
  auto layer_ws = std::make_shared<simt::DeviceBuffer<double>>(static_cast<size_t>(
      cuda::sum_of_squares_segments_workspace_doubles(sizes.data(), static_cast<int>(sizes.size()))));
  cases.push_back(make_case("sum_of_squares_segments a gpu_350m layer's 9 tensors, one group", 4 * layer,
                            [=](cudaStream_t s) {
                              return cuda::sum_of_squares_segments(result->data(), tensors.data(), sizes.data(),
                                                                   static_cast<int>(sizes.size()),
                                                                   layer_ws->data(), s);
                            },
                            {x, layer_ws, result}));
  cases.push_back(make_case("sum_of_squares a gpu_350m layer's 9 tensors, each alone", 4 * layer,
                            [=](cudaStream_t s) {
                              for (size_t k = 0; k < sizes.size(); ++k) {
                                const cudaError_t err = cuda::sum_of_squares(result->data(), tensors[k], sizes[k],
                                                                             layer_ws->data(), s);
                                if (err != cudaSuccess) return err;
                              }
                              return cudaSuccess;
                            },
                            {x, layer_ws, result}));
}

std::vector<KernelCase> optim_cases() {
  std::vector<KernelCase> cases;
  add_cross_entropy_cases(cases);
  add_adamw_cases(cases);
  add_grad_norm_cases(cases);
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("optim", &optim_cases);

}  // namespace
}  // namespace reclm::bench
