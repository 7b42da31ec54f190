// Times ops::linear_forward / linear_backward (OpenBLAS sgemm underneath) on the GEMM shapes
// of the bench/cpu_vs_pytorch model, one JSON object per line: {"shape", "pass", "ms", "gflops"}.
// Usage: bench_linear TOKENS THREADS [C:OC ...]   (run.sh runs PyTorch on the same shapes).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/blas_kernels.h"
#include "kernels/ops.h"

namespace {

template <typename F>
double best_ms(F&& f) {
  for (int i = 0; i < 3; ++i) f();  // warm caches and thread pools
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) f();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 10;
    best = ms < best ? ms : best;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  reclm::ops::restart_with_fitting_blas_kernels(argv);  // (as reclm does: the same GEMM kernels)
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_linear TOKENS THREADS [C:OC ...]\n");
    return 2;
  }
  const int64_t T = std::atoll(argv[1]);
  reclm::ops::set_cpu_threads(std::atoi(argv[2]));
  std::vector<std::string> shapes(argv + 3, argv + argc);
  if (shapes.empty()) shapes = {"384:384", "384:1024", "1024:384", "384:320"};
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const std::string& s : shapes) {
    const int64_t C = std::atoll(s.c_str()), OC = std::atoll(s.c_str() + s.find(':') + 1);
    std::vector<float> x(T * C), w(OC * C), dy(T * OC), y(T * OC), dx(T * C), dw(OC * C);
    for (auto* v : {&x, &w, &dy}) for (float& e : *v) e = dist(gen);
    const double flops = 2.0 * T * C * OC;
    const double fwd = best_ms([&] { reclm::ops::linear_forward(y.data(), x.data(), w.data(), T, C, OC); });
    const double bwd_in = best_ms([&] {
      reclm::ops::linear_backward(dx.data(), nullptr, dy.data(), x.data(), w.data(), T, C, OC, false);
    });
    const double bwd_w = best_ms([&] {
      reclm::ops::linear_backward(nullptr, dw.data(), dy.data(), x.data(), w.data(), T, C, OC, false);
    });
    for (auto [pass, ms] : {std::pair{"forward", fwd}, {"dinput", bwd_in}, {"dweight", bwd_w}}) {
      std::printf("{\"shape\": \"%s\", \"pass\": \"%s\", \"ms\": %.3f, \"gflops\": %.1f}\n", s.c_str(),
                  pass, ms, flops / ms / 1e6);
    }
  }
  return 0;
}
