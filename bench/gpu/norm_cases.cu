// RMSNorm (with and without the residual add), RoPE, SwiGLU, dropout and the fp32 <-> bf16
// conversions (kernels/cuda/{rmsnorm,rope,swiglu,dropout,convert}.cu). Shapes of a 7B-class layer
// over 16384 tokens; `bytes` counts each array the kernel must read or write once (fp32 = 4 bytes).
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {
namespace {

std::shared_ptr<Bf16s> device_bf16(int64_t n) { return std::make_shared<Bf16s>(static_cast<size_t>(n)); }

// A bf16 copy of random fp32 values (not the NaN a new buffer is poisoned with).
std::shared_ptr<Bf16s> device_bf16_values(const std::shared_ptr<Floats>& values, int64_t n) {
  auto out = device_bf16(n);
  if (cuda::convert_f32_to_bf16(bf16_ptr(out), values->data(), n, nullptr) != cudaSuccess)
    throw std::runtime_error("convert_f32_to_bf16 failed");
  return out;
}

void add_rmsnorm_cases(std::vector<KernelCase>& cases, int64_t rows, int64_t dim) {
  const int64_t n = rows * dim;
  const std::string shape = std::to_string(rows) + " x " + std::to_string(dim);
  auto a = device_values(n, 1), b = device_values(n, 2), w = device_values(dim, 3, 0.5f, 1.5f);
  auto y = std::make_shared<Floats>(static_cast<size_t>(n)),
       res = std::make_shared<Floats>(static_cast<size_t>(n));
  auto rstd = std::make_shared<Floats>(static_cast<size_t>(rows));
  // Reads a, b; writes the residual and y.
  cases.push_back(make_case("rmsnorm_forward+residual " + shape, 16 * n + 4 * (dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_forward(y->data(), rstd->data(), res->data(), a->data(),
                                                           b->data(), w->data(), rows, dim, 1e-5f, s);
                            },
                            {a, b, w, y, res, rstd}));
  cases.push_back(make_case("rmsnorm_forward " + shape, 8 * n + 4 * (dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_forward(y->data(), rstd->data(), nullptr, a->data(),
                                                           nullptr, w->data(), rows, dim, 1e-5f, s);
                            },
                            {a, w, y, rstd}));
  // Reads dy, x, dx; writes dx (accumulating, so repeated runs are harmless). Here a is dy,
  // b is x, y is dx (filled by the forward above: ordinary values).
  const int64_t ws_floats = cuda::rmsnorm_backward_workspace_floats(rows, dim);
  auto ws = std::make_shared<Floats>(static_cast<size_t>(ws_floats));
  auto dw = device_values(dim, 4);
  auto r = std::make_shared<Floats>(host_values(rows, 5, 0.5f, 1.5f));
  auto dx = device_values(n, 6);
  cases.push_back(make_case("rmsnorm_backward " + shape, 16 * n + 4 * (3 * dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_backward(dx->data(), dw->data(), ws->data(), a->data(),
                                                            b->data(), w->data(), r->data(), rows, dim, s);
                            },
                            {a, b, w, ws, dw, r, dx}));
  // The GPU trainer's forms: bf16 y (reads a, b; writes the residual and y in bf16), and
  // backward from a bf16 dy that also writes dx's bf16 copy (2 + 4 + 4 read, 4 + 2 written).
  auto y16 = device_bf16(n), dx16 = device_bf16(n);
  auto dy16 = device_bf16_values(a, n);
  cases.push_back(make_case("rmsnorm_forward_bf16+residual " + shape, 14 * n + 4 * (dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_forward_bf16(bf16_ptr(y16), rstd->data(), res->data(), a->data(),
                                                                b->data(), w->data(), rows, dim, 1e-5f, s);
                            },
                            {a, b, w, y16, res, rstd}));
  cases.push_back(make_case("rmsnorm_backward_bf16+dx copy " + shape, 16 * n + 4 * (3 * dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_backward_bf16(dx->data(), dw->data(), ws->data(), bf16_ptr(dy16),
                                                                 b->data(), w->data(), r->data(), rows, dim, s,
                                                                 bf16_ptr(dx16));
                            },
                            {a, b, w, ws, dw, r, dx, dy16, dx16}));
  // runtime.bf16_residual's forms: the stream x in bf16 (x, y: 2 + 2 bytes a value), and backward
  // updating the stream's bf16 gradient in place (dy, x, dx read, dx written: 8 bytes).
  auto x16 = device_bf16_values(b, n);
  cases.push_back(make_case("rmsnorm_forward_bf16, bf16 stream " + shape, 4 * n + 4 * (dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_forward_bf16(bf16_ptr(y16), rstd->data(), bf16_ptr(x16),
                                                                w->data(), rows, dim, 1e-5f, s);
                            },
                            {b, w, y16, rstd, x16}));
  auto dstream16 = device_bf16_values(dx, n);
  cases.push_back(make_case("rmsnorm_backward_bf16, bf16 stream " + shape, 8 * n + 4 * (3 * dim + rows),
                            [=](cudaStream_t s) {
                              return cuda::rmsnorm_backward_bf16(bf16_ptr(dstream16), bf16_ptr(dstream16),
                                                                 dw->data(), ws->data(), bf16_ptr(dy16),
                                                                 bf16_ptr(x16), w->data(), r->data(), rows, dim, s);
                            },
                            {w, ws, dw, r, dy16, x16, dstream16}));
}

std::vector<KernelCase> norm_cases() {
  std::vector<KernelCase> cases;
  add_rmsnorm_cases(cases, 16384, 4096);  // block-per-row kernels
  add_rmsnorm_cases(cases, 65536, 1024);  // warp-per-row kernels

  // RoPE on q [16384 tokens, 32 heads, 128]: reads and writes every value once.
  {
    const int64_t tokens = 16384, heads = 32, head_dim = 128, n = tokens * heads * head_dim;
    std::vector<int32_t> pos(static_cast<size_t>(tokens)), pos2(static_cast<size_t>(tokens));
    for (int64_t t = 0; t < tokens; ++t) {
      pos[static_cast<size_t>(t)] = static_cast<int32_t>(t % 4096);
      pos2[static_cast<size_t>(t)] = static_cast<int32_t>(t % 97);
    }
    auto inter = std::make_shared<simt::DeviceBuffer<int32_t>>(pos);
    auto intra = std::make_shared<simt::DeviceBuffer<int32_t>>(pos2);
    auto q = device_values(n, 7);
    auto out = std::make_shared<Floats>(static_cast<size_t>(n));
    const std::string shape =
        std::to_string(tokens) + " x " + std::to_string(heads) + " x " + std::to_string(head_dim);
    cases.push_back(make_case("rope_forward 1D " + shape, 8 * n + 4 * tokens,
                              [=](cudaStream_t s) {
                                return cuda::rope_forward(out->data(), q->data(), inter->data(), nullptr,
                                                          tokens, heads, head_dim, 10000.0f, s);
                              },
                              {inter, q, out}));
    cases.push_back(make_case("rope_forward 2D " + shape, 8 * n + 8 * tokens,
                              [=](cudaStream_t s) {
                                return cuda::rope_forward(out->data(), q->data(), inter->data(),
                                                          intra->data(), tokens, heads, head_dim, 10000.0f,
                                                          s);
                              },
                              {inter, intra, q, out}));
    cases.push_back(make_case("rope_backward 1D in place " + shape, 8 * n + 4 * tokens,
                              [=](cudaStream_t s) {
                                return cuda::rope_backward(q->data(), q->data(), inter->data(), nullptr,
                                                           tokens, heads, head_dim, 10000.0f, s);
                              },
                              {inter, q}));
    // The GPU trainer's form at gpu_350m's shape: one layer's fused QKV rows [tokens, (16 + 2·8) heads x 64],
    // bf16, q and k rotated in place (v left as it is), reading the (cos, sin) from rope_table (made once
    // per micro-batch, not timed: every layer's rotations share it). Bytes: every q and k value read and
    // written once (2 + 2), and the table read once. (The backward's rotation is in attention_backward.)
    {
      const cuda::QkvHeads qkv_heads{16, 8, 64, false};
      const int64_t row = (16 + 2 * 8) * 64, values = tokens * row, rotated = tokens * (16 + 8) * 64;
      auto rows = device_bf16_values(device_values(values, 12), values);
      auto table = std::make_shared<Floats>(static_cast<size_t>(tokens * 64));
      if (cuda::rope_table(table->data(), inter->data(), nullptr, tokens, 64, 10000.0f, nullptr) != cudaSuccess)
        return cases;
      const std::string qkv_shape = std::to_string(tokens) + " x (16+8+8) x 64";
      cases.push_back(make_case("rope_qk_forward_bf16 in place " + qkv_shape, 4 * rotated + 4 * tokens * 64,
                                [=](cudaStream_t s) {
                                  return cuda::rope_qk_forward_bf16(bf16_ptr(rows), table->data(), tokens,
                                                                    qkv_heads, s);
                                },
                                {inter, rows, table}));
      // the trainer's since the attention forward rotates q: k alone (a quarter of each row)
      cases.push_back(make_case("rope_qk_forward_bf16 k only " + qkv_shape, 4 * tokens * 8 * 64 + 4 * tokens * 64,
                                [=](cudaStream_t s) {
                                  return cuda::rope_qk_forward_bf16(bf16_ptr(rows), table->data(), tokens,
                                                                    qkv_heads, s, /*rotate_q=*/false);
                                },
                                {inter, rows, table}));
      cases.push_back(make_case("rope_table 1D " + std::to_string(tokens) + " x 64", 4 * tokens * 64 + 4 * tokens,
                                [=](cudaStream_t s) {
                                  return cuda::rope_table(table->data(), inter->data(), nullptr, tokens, 64,
                                                          10000.0f, s);
                                },
                                {inter, table}));
    }
  }

  // SwiGLU over [16384 tokens, 4096] (n = 64M).
  {
    const int64_t n = int64_t{16384} * 4096;
    auto gate = device_values(n, 8, -6.0f, 6.0f), up = device_values(n, 9), dout = device_values(n, 10);
    auto out = std::make_shared<Floats>(static_cast<size_t>(n)),
         dup = std::make_shared<Floats>(static_cast<size_t>(n));
    cases.push_back(make_case(
        "swiglu_forward 64M", 12 * n,
        [=](cudaStream_t s) { return cuda::swiglu_forward(out->data(), gate->data(), up->data(), n, s); },
        {gate, up, out}));
    cases.push_back(make_case("swiglu_backward 64M", 20 * n,
                              [=](cudaStream_t s) {
                                return cuda::swiglu_backward(out->data(), dup->data(), dout->data(),
                                                             gate->data(), up->data(), n, s);
                              },
                              {gate, up, dout, out, dup}));
    // the GPU trainer's form: bf16 gate_up [16384, 2 · 4096] (one GEMM's output) in, bf16 act
    // out (2 + 2 read, 2 written); backward: bf16 dout and gate_up in, bf16 dgate_up out
    // (2 + 2 + 2 read, 2 + 2 written)
    auto gate_up = device_bf16_values(device_values(2 * n, 11, -6.0f, 6.0f), 2 * n);
    auto dgate_up = device_bf16(2 * n), act = device_bf16(n);
    auto dact = device_bf16_values(dout, n);
    const int64_t rows = 16384, cols = 4096;
    cases.push_back(make_case("swiglu_forward_bf16 paired 64M", 6 * n,
                              [=](cudaStream_t s) {
                                return cuda::swiglu_forward_bf16(bf16_ptr(act), bf16_ptr(gate_up), rows, cols, s);
                              },
                              {gate_up, act}));
    cases.push_back(make_case("swiglu_backward_bf16 paired 64M", 10 * n,
                              [=](cudaStream_t s) {
                                return cuda::swiglu_backward_bf16(bf16_ptr(dgate_up), bf16_ptr(dact), bf16_ptr(gate_up),
                                                                  rows, cols, s);
                              },
                              {gate_up, dact, dgate_up}));
  }

  // Dropout over [16384 tokens, 4096] (the GPU trainer's: a branch added to the stream, 4 + 4
  // read and 4 written; the masked gradient in bf16, 4 read and 2 written), rate 0.1.
  {
    const int64_t n = int64_t{16384} * 4096;
    auto branch = device_values(n, 13), skip = device_values(n, 14);
    auto out = std::make_shared<Floats>(static_cast<size_t>(n));
    auto out16 = device_bf16(n);
    const cuda::DropoutKey key{0.1f, 1234, 5, 7};
    cases.push_back(make_case("dropout_add 64M", 12 * n,
                              [=](cudaStream_t s) {
                                return cuda::dropout_add(out->data(), skip->data(), branch->data(), n, key, s);
                              },
                              {branch, skip, out}));
    cases.push_back(make_case(
        "dropout_bf16 64M", 6 * n,
        [=](cudaStream_t s) { return cuda::dropout_bf16(bf16_ptr(out16), branch->data(), n, key, s); },
        {branch, out16}));
  }

  // fp32 <-> bf16 over 128M values: 4 + 2 bytes each.
  {
    const int64_t n = int64_t{1} << 27;
    auto f32 = device_values(n, 11);
    auto bf16 = device_bf16(n);
    auto* values = bf16_ptr(bf16);
    cases.push_back(make_case(
        "convert_f32_to_bf16 128M", 6 * n,
        [=](cudaStream_t s) { return cuda::convert_f32_to_bf16(values, f32->data(), n, s); }, {f32, bf16}));
    cases.push_back(make_case(
        "convert_bf16_to_f32 128M", 6 * n,
        [=](cudaStream_t s) { return cuda::convert_bf16_to_f32(f32->data(), values, n, s); }, {f32, bf16}));
  }
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("norm", &norm_cases);

}  // namespace
}  // namespace reclm::bench
