// The linear-layer GEMMs of the GPU backend (DESIGN.md §5: bf16 weights and activations, fp32
// accumulation, fp32 weight gradients). Row-major like kernels/ops.h's linear ops; all pointers
// are device memory.
//   nvcc:     cublasLtMatmul (CUBLAS_COMPUTE_32F, bf16 A/B), the bias through the BIAS epilogue,
//             the bias gradient through a small reduction kernel of our own.
//   emulator: device memory is host memory, so the GEMM is the CPU BLAS (cblas_sgemm on the
//             bf16 inputs widened to fp32) with the outputs rounded as the GPU rounds them; the
//             bias-gradient kernel runs on the SIMT emulator.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// What a GEMM needs per device and stream: on nvcc a cublasLt handle, a device workspace and
// the algorithm chosen by cublasLtMatmulAlgoGetHeuristic per shape (cached; per bucket of token
// counts, gemm_token_bucket); on the emulator nothing. Use one context per stream (the workspace
// is shared by its GEMMs). Not thread-safe.
class GemmContext {
 public:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // 32 MiB of cuBLASLt workspace

  GemmContext();  // throws std::runtime_error (with the cuBLAS / CUDA status) on failure
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  // Which algorithm of cuBLASLt's heuristic's ranking the GEMMs take: 0, its first (the default,
  // or the environment's RECLM_GEMM_ALGORITHM_RANK, 0 to kMaxHeuristicRank, else the constructor
  // throws UserError); k, its (k + 1)-th, or its last when it offers fewer. For measuring
  // whether the first choice is the fastest (bench/gpu/gemm_cases.cu; bench/gpu/train.sh
  // VARIANTS for a whole step): the algorithms' sums round differently, so results differ in the
  // last bits. Empties the algorithm cache. The emulator has one GEMM (the CPU BLAS): no effect
  // there.
  static constexpr int kMaxHeuristicRank = 15;
  void set_heuristic_rank(int rank);  // throws std::invalid_argument outside 0 .. kMaxHeuristicRank

  // How many SMs the GEMMs are planned for (cuBLASLt's SM_COUNT_TARGET): 0, all of the device's
  // (the default); n, as if the device had n: cuBLASLt chooses and sizes its kernels for n SMs, so
  // that a context whose GEMMs run beside another stream's kernels (the trainer's side stream,
  // RECLM_SIDE_GEMM_SMS) may leave the other SMs to them. The results are those of
  // another algorithm, so they may differ in the last bits. Empties the algorithm cache. The
  // emulator: no effect. Throws std::invalid_argument below 0.
  void set_sm_count_target(int sms);

  // Timed choice (runtime.gemm_autotune): each new shape (per bucket of token counts, as the
  // heuristic's choice) runs up to kAutotuneCandidates of the heuristic's ranking, each once to
  // load it and then kAutotuneRuns times between two events, on the call's own operands, and keeps
  // the fastest (the heuristic rank is then not used). It waits for the stream once per shape.
  // A GEMM that only writes its output (beta = 0, or an addend other than the output) is timed in
  // place: the call itself rewrites the output afterwards. One that adds onto its output (+=) is
  // timed writing to `scratch` instead (device memory, scratch_bytes; C = the output, read only;
  // D = the scratch): an output larger than the scratch keeps the heuristic's first choice, as
  // does a shape no candidate could be timed for. Nothing reads the scratch, so contexts on
  // different streams may share one. Which algorithm wins depends on the timings, so two runs may
  // differ in the last bits (each algorithm is deterministic). Empties the algorithm cache. The
  // emulator has one GEMM: no effect there.
  static constexpr int kAutotuneCandidates = 8;
  static constexpr int kAutotuneRuns = 3;
  void set_autotune(bool on, void* scratch = nullptr, size_t scratch_bytes = 0);

  // What the timed choice found, summed over its shapes: for the benchmark's report.
  struct AutotuneStats {
    int64_t timed = 0;          // shapes timed
    int64_t first_fastest = 0;  // ... where the heuristic's first choice was the fastest
    int64_t untimed = 0;        // shapes left to the heuristic (output over the scratch, no candidate ran)
    double first_ms = 0.0;      // the first choices' time over kAutotuneRuns runs (where it ran)
    double chosen_ms = 0.0;     // the chosen algorithms' time over the same shapes
  };
  AutotuneStats autotune_stats() const;

  // For the tests: the algorithms cached now for GEMMs with a bf16 output, how many of them split
  // K, and how many add the split's partial sums in bf16 (cuBLASLt's INPLACE or OUTPUT_TYPE
  // reduction, which rounds each partial: the heuristic is asked for none, gemm.cu). Throws
  // std::runtime_error when cuBLASLt cannot read an algorithm's configuration. The emulator: all 0.
  struct Bf16OutputAlgorithms {
    int64_t cached = 0, split_k = 0, bf16_partial_sums = 0;
  };
  Bf16OutputAlgorithms bf16_output_algorithms() const;

  struct State;  // the nvcc-side handle, workspace and algorithm cache (gemm.cu)
  State* state() { return state_.get(); }

 private:
  std::unique_ptr<State> state_;
};

// out[T, OC] = alpha · inp[T, C] · weight[OC, C]ᵀ (+ bias[OC] on every row) with fp32
// accumulation. out_fp32: out is float[T, OC], else bf16[T, OC]: one round to nearest even of the
// fp32 sum, the bias included but itself first rounded to bf16 (cuBLASLt's BIAS epilogue takes
// the bias in the output's type). accumulate: out += instead of out = (a bf16 out is widened,
// added in fp32 and rounded once; LoRA's adapters add onto the fused q/k/v rows this way).
// cudaErrorInvalidValue: a size < 1, an addend with accumulate.
// cudaErrorNotSupported: no cuBLASLt algorithm for the shape / alignment (not expected: see gemm.cu).
// ld_out: elements from one row of out to the next (0 = OC; >= OC): rows of an odd OC padded to a
// multiple of 8 keep cuBLASLt on its 16-byte (fast) kernels; the padding columns are not written.
// addend (of out's type, fp32 or bf16; not with accumulate; rows ld_out apart like out, may be
// out itself): out = addend + inp · weightᵀ (+ bias) in one pass (cuBLASLt's C ≠ D: beta = 1 on
// C = addend), the sum an fp32 add after the product (a bf16 addend widened), rounded once to
// out's type; the GPU trainer's o/down projections add their output to the residual stream this
// way (an fp32 stream, or a bf16 one with runtime.bf16_residual).
cudaError_t linear_forward_bf16(GemmContext& ctx, void* out, bool out_fp32, const __nv_bfloat16* inp,
                                const __nv_bfloat16* weight, const float* bias, int64_t T, int64_t C,
                                int64_t OC, bool accumulate, cudaStream_t stream, int64_t ld_out = 0,
                                const void* addend = nullptr, float alpha = 1.0f);

// dinp[T, C] = alpha · dout[T, OC] · weight[OC, C] in fp32, stored bf16; with accumulate_dinp the
// old dinp is added in fp32 before the single rounding (dinp = bf16(float(dinp) + alpha·dout·W): on
// the GPU a beta = 1 bf16 C matrix). dweight[OC, C] += alpha · doutᵀ · inp (fp32), or with
// accumulate_dweight false dweight = alpha · doutᵀ · inp (beta = 0: the old values are not read,
// NaN included; the GPU trainer's first micro-batch after AdamW writes the layers' gradients so
// instead of adding onto zeros it would have to write first).
// dbias[OC] += Σ_t dout[t, :] (fp32). Any of dinp, dweight, dbias may be null (skipped). Errors as
// linear_forward_bf16. ld_dout: elements from one row of dout to the next (0 = OC; >= OC), as
// ld_out above. dbias takes neither ld_dout nor alpha (cudaErrorInvalidValue).
cudaError_t linear_backward_bf16(GemmContext& ctx, __nv_bfloat16* dinp, bool accumulate_dinp, float* dweight,
                                 float* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                                 const __nv_bfloat16* weight, int64_t T, int64_t C, int64_t OC,
                                 cudaStream_t stream, int64_t ld_dout = 0, float alpha = 1.0f,
                                 bool accumulate_dweight = true);

// dbias[OC] += Σ_t dout[t, oc] (fp32 sums of bf16 values in a fixed order: deterministic).
// Part of linear_backward_bf16; exposed for the tests. scratch: device floats, at least
// bias_grad_scratch_floats(T, OC) of them, for the partial sums of row splits; null = one pass
// over all rows per column block (fewer blocks).
int64_t bias_grad_scratch_floats(int64_t T, int64_t OC);
cudaError_t bias_grad_bf16(float* dbias, const __nv_bfloat16* dout, int64_t T, int64_t OC, float* scratch,
                           cudaStream_t stream);

// Where GemmContext's timed choice (set_autotune) runs a GEMM's candidates; exposed for the tests.
// In place when the call rewrites all of its output afterwards anyway: beta = 0, or C an addend
// other than the output D. Else (the call adds onto D: beta != 0 with C = D, or C null) into the
// scratch when D's output_bytes fit its scratch_bytes, else not at all (the heuristic's choice):
// timing runs in place there would add the product several times.
enum class AutotuneTarget { kInPlace, kScratch, kUntimed };
AutotuneTarget autotune_target(float beta, const void* c, const void* d, size_t output_bytes, size_t scratch_bytes);

// The token count at which cuBLASLt's algorithm is chosen for GEMMs over `tokens` tokens (nvcc:
// the heuristic runs once per bucket, gemm.cu): tokens rounded up to a multiple of
// 2^(floor(log2 tokens) − 3), so at most 1/8 above and 8 buckets per power of two (16,209 →
// 16,384); up to 64, tokens itself.
int64_t gemm_token_bucket(int64_t tokens);

}  // namespace reclm::cuda
