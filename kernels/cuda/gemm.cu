// Linear-layer GEMMs in bf16 with fp32 accumulation (kernels/cuda/gemm.h).
//
// nvcc: cublasLtMatmul, CUBLAS_COMPUTE_32F with fp32 alpha/beta, bf16 A/B.
//   cuBLASLt is column-major; a row-major X[R, K] (leading dimension K) is, read column-major,
//   Xᵀ stored [K, R] with ld K. So every row-major product is computed transposed:
//   forward   outᵀ[OC, T] = W[OC, C] · inpᵀ[C, T]:   A = weight read [C, OC] ld C, op T;
//             B = inp read [C, T] ld C, op N; m = OC, n = T, k = C; D [OC, T] ld OC.
//             bias[OC] runs along D's rows (m): CUBLASLT_EPILOGUE_BIAS, whose vector has D's
//             type, so for a bf16 out the fp32 bias is first rounded to bf16 (a small
//             conversion into the context's scratch; the sum and the single output rounding
//             stay fp32 → bf16). accumulate: beta = 1 with C = D = out (for a bf16 out, cuBLASLt
//             widens it, adds, and rounds once). alpha: cuBLASLt's alpha on the product.
//   dinp      dinpᵀ[C, T] = Wᵀ[C, OC] · doutᵀ[OC, T]:  A = weight read [C, OC] ld C, op N;
//             B = dout read [OC, T] ld OC, op N; m = C, n = T, k = OC; D bf16 [C, T] ld C.
//             accumulate_dinp: beta = 1 with the bf16 C = D = dinp, which cuBLASLt widens to
//             fp32, adds, and rounds once.
//   dweight   dweightᵀ[C, OC] += inpᵀ[C, T] · dout[T, OC]:  A = inp read [C, T] ld C, op N;
//             B = dout read [OC, T] ld OC, op T; m = C, n = OC, k = T; D fp32 [C, OC] ld C,
//             beta = 1.
//   The algorithm comes from cublasLtMatmulAlgoGetHeuristic (its first choice; another of its
//   ranking with GemmContext::set_heuristic_rank or RECLM_GEMM_ALGORITHM_RANK, for measuring
//   whether the first is the fastest; with set_autotune the fastest of its first 8, timed on the
//   first call's own operands), once per (shape, layouts, types,
//   epilogue, pointer alignments), cached in the GemmContext (at most kMaxCachedAlgorithms). The
//   alignment preferences are set to the pointers' real alignment (up to 256 B), so odd leading
//   dimensions (C = 7) and unaligned pointers only exclude the algorithms that need more; if none
//   is left the call returns cudaErrorNotSupported. For a bf16 D the ranking holds only algorithms
//   that add split-K partial sums in fp32 (or do not split K), so every choice rounds D once.
//   The token count T (n of the forward and of dinp, k of dweight; always a column count, so no
//   leading dimension depends on it) changes with nearly every packed micro-batch. Choosing per
//   exact T would bring a new algorithm into many steps, and with CUDA's lazy module loading the
//   first load of its kernel in the middle of a step. So the heuristic is asked once per bucket of
//   token counts, at the bucket's top (gemm_token_bucket: 8 buckets per power of two), and that
//   algorithm serves each T in the bucket once cublasLtMatmulAlgoCheck accepts it for the exact
//   shape (else the shape gets its own). Environment RECLM_GEMM_ALGORITHM_BUCKETS=0: per exact T.
//   set_sm_count_target sets CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET on every GEMM of the context.
//   forward with an addend: beta = 1 on C = addend (≠ D), laid out as D.
// emulator (g++): the bf16 inputs are widened into host scratch and multiplied by cblas_sgemm
//   (OpenBLAS: the "CPU GEMM" of the emulated device); the outputs are then written with the
//   GPU path's rounding: fp32 sums, bias rounded to bf16 for a bf16 out, one round to nearest
//   even per output.
// Both: dbias += Σ_t dout[t, :] is our own kernels (the BGRADB epilogue overwrites, we
//   accumulate; no float atomics, deterministic). bias_grad_rows_kernel: a block owns kBiasCols
//   columns and one split of the rows; its kBiasRowGroups warps sum interleaved rows (a warp
//   reads kBiasCols consecutive values of one row: coalesced), then one shared-memory pass adds
//   the row groups in a fixed order. With few column blocks (OC = 1024 gives 32) the rows are
//   split so that ~kBiasTargetBlocks blocks run; the splits' partial sums go to scratch (on the
//   GPU the context's workspace) and bias_grad_finish_kernel adds them in split order.
#include "kernels/cuda/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/simt/launch.h"
#include "runtime/errors.h"

#if defined(__CUDACC__)
#include <cublasLt.h>

#include <array>
#include <map>
#else
#include <cblas.h>

#include "runtime/dtype.h"
#endif

namespace reclm::cuda {

namespace {

constexpr int kBiasCols = 32;        // columns per block of the bias-gradient kernels (one per lane)
constexpr int kBiasRowGroups = 8;    // warps per block, each summing every 8th row of its split
constexpr int64_t kBiasTargetBlocks = 528;  // 4 blocks per SM on a 132-SM H100
[[maybe_unused]] constexpr size_t kMaxCachedAlgorithms = 4096;  // cuBLASLt algorithms per GemmContext
constexpr int64_t kBiasMinRows = 64;        // rows per split at the least (amortizes the 2nd pass)

// Sums rows [split·rows_per_split, +rows_per_split) of kBiasCols columns (split = blockIdx.y).
// add_to_dst: dst[col] += sum (the single-split case), else dst[split·OC + col] = sum (partials).
__global__ void __launch_bounds__(kBiasCols * kBiasRowGroups)
    bias_grad_rows_kernel(float* dst, bool add_to_dst, const __nv_bfloat16* dout, int64_t T, int64_t OC,
                          int64_t rows_per_split) {
  RECLM_SHARED(float, partial, [kBiasRowGroups][kBiasCols + 1]);
  const int lane = threadIdx.x;
  const int group = threadIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kBiasCols + lane;
  const bool active = col < OC;  // no early return: every thread reaches the barrier
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * rows_per_split;
  const int64_t end = begin + rows_per_split < T ? begin + rows_per_split : T;
  float sum = 0.0f;
  if (active) {
    for (int64_t t = begin + group; t < end; t += kBiasRowGroups) sum += __bfloat162float(dout[t * OC + col]);
  }
  partial[group][lane] = sum;
  __syncthreads();
  if (group == 0 && active) {
    float total = 0.0f;
    for (int g = 0; g < kBiasRowGroups; ++g) total += partial[g][lane];
    if (add_to_dst) {
      dst[col] += total;
    } else {
      dst[static_cast<int64_t>(blockIdx.y) * OC + col] = total;
    }
  }
}

// dbias[oc] += Σ_s partials[s·OC + oc], splits in order (deterministic).
__global__ void bias_grad_finish_kernel(float* dbias, const float* partials, int64_t splits, int64_t OC) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= OC) return;
  float total = 0.0f;
  for (int64_t s = 0; s < splits; ++s) total += partials[s * OC + col];
  dbias[col] += total;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Row splits: enough blocks to fill the GPU when OC alone gives few, kBiasMinRows rows each.
int64_t bias_grad_splits(int64_t T, int64_t OC) {
  const int64_t by_blocks = ceil_div(kBiasTargetBlocks, ceil_div(OC, kBiasCols));
  const int64_t by_rows = ceil_div(T, kBiasMinRows);
  return by_blocks < by_rows ? by_blocks : by_rows;
}

bool valid_sizes(int64_t T, int64_t C, int64_t OC) { return T >= 1 && C >= 1 && OC >= 1; }

}  // namespace

AutotuneTarget autotune_target(float beta, const void* c, const void* d, size_t output_bytes, size_t scratch_bytes) {
  if (beta == 0.0f || (c != nullptr && c != d)) return AutotuneTarget::kInPlace;
  return output_bytes <= scratch_bytes ? AutotuneTarget::kScratch : AutotuneTarget::kUntimed;
}

int64_t gemm_token_bucket(int64_t tokens) {
  if (tokens <= 64) return tokens;
  int64_t step = 1;  // 2^(floor(log2 tokens) − 3)
  while (step * 16 <= tokens) step *= 2;
  return (tokens + step - 1) / step * step;
}

int64_t bias_grad_scratch_floats(int64_t T, int64_t OC) {
  const int64_t splits = bias_grad_splits(T, OC);
  return splits > 1 ? splits * OC : 0;
}

cudaError_t bias_grad_bf16(float* dbias, const __nv_bfloat16* dout, int64_t T, int64_t OC, float* scratch,
                           cudaStream_t stream) {
  if (T < 1 || OC < 1) return cudaErrorInvalidValue;
  const int64_t col_blocks = ceil_div(OC, kBiasCols);
  const int64_t splits = scratch ? bias_grad_splits(T, OC) : 1;
  const dim3 block(kBiasCols, kBiasRowGroups);
  if (splits <= 1)
    return simt::launch(bias_grad_rows_kernel, dim3(static_cast<unsigned>(col_blocks)), block, 0, stream, dbias, true,
                        dout, T, OC, T);
  const cudaError_t e =
      simt::launch(bias_grad_rows_kernel, dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(splits)),
                   block, 0, stream, scratch, false, dout, T, OC, ceil_div(T, splits));
  if (e != cudaSuccess) return e;
  constexpr int kThreads = 256;
  return simt::launch(bias_grad_finish_kernel, dim3(static_cast<unsigned>(ceil_div(OC, kThreads))), dim3(kThreads),
                      0, stream, dbias, static_cast<const float*>(scratch), splits, OC);
}

namespace {

// GemmContext::set_sm_count_target's check.
int checked_sm_count_target(int sms) {
  if (sms < 0)
    throw std::invalid_argument("GemmContext::set_sm_count_target: a number of SMs, or 0 for all; got " +
                                std::to_string(sms));
  return sms;
}

// GemmContext::set_heuristic_rank's range check.
int checked_heuristic_rank(int rank) {
  if (rank < 0 || rank > GemmContext::kMaxHeuristicRank)
    throw std::invalid_argument("GemmContext::set_heuristic_rank: the heuristic's rank must be 0 to " +
                                std::to_string(GemmContext::kMaxHeuristicRank) + ", got " + std::to_string(rank));
  return rank;
}

// RECLM_GEMM_ALGORITHM_RANK (unset: 0), checked: a bad value is the user's (exit code 2).
int heuristic_rank_from_environment() {
  const char* env = std::getenv("RECLM_GEMM_ALGORITHM_RANK");
  if (env == nullptr || *env == '\0') return 0;
  char* end = nullptr;
  const long rank = std::strtol(env, &end, 10);
  if (*end != '\0' || rank < 0 || rank > GemmContext::kMaxHeuristicRank)
    throw UserError(std::string("environment RECLM_GEMM_ALGORITHM_RANK=") + env + ": expected 0 to " +
                    std::to_string(GemmContext::kMaxHeuristicRank) + " (cuBLASLt's heuristic's choice to use)");
  return static_cast<int>(rank);
}

}  // namespace

#if defined(__CUDACC__)
// ---- nvcc: cuBLASLt --------------------------------------------------------------------------

namespace {

// The bf16 copy of the forward bias (the BIAS epilogue wants D's type).
__global__ void round_bias_kernel(__nv_bfloat16* out, const float* bias, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(bias[i]);
}

void throw_on(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("GemmContext: ") + what + ": " + cublasLtGetStatusString(status) +
                             " (" + std::to_string(static_cast<int>(status)) + ")");
}

cudaError_t to_cuda_error(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return cudaSuccess;
    case CUBLAS_STATUS_INVALID_VALUE: return cudaErrorInvalidValue;
    case CUBLAS_STATUS_NOT_SUPPORTED: return cudaErrorNotSupported;
    case CUBLAS_STATUS_ALLOC_FAILED: return cudaErrorMemoryAllocation;
    default: return cudaErrorUnknown;
  }
}

int64_t alignment(const void* p) {  // the largest power of two (<= 256) dividing the address
  const auto address = reinterpret_cast<uintptr_t>(p);
  int64_t a = 256;
  while (a > 1 && address % static_cast<uintptr_t>(a) != 0) a /= 2;
  return a;
}

// One column-major GEMM: D[m, n] = alpha · op(A)[m, k] · op(B)[k, n] (+ beta · C, C = D) (+ bias[m]).
struct Matmul {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* d = nullptr;
  int64_t ldd = 0;
  const void* c = nullptr;  // beta · C, C laid out as D; null: C = D
  cudaDataType_t d_type = CUDA_R_32F;
  float alpha = 1.0f;
  float beta = 0.0f;
  const void* bias = nullptr;  // of d_type, or null
  char tokens_axis = 0;        // 'n' or 'k': the token count (its algorithm is chosen per bucket), or 0
};

using AlgorithmKey = std::array<int64_t, 15>;
constexpr int kKeyN = 3, kKeyK = 4, kKeyOutType = 8;  // where n, k and D's type sit in an AlgorithmKey

}  // namespace

struct GemmContext::State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  __nv_bfloat16* bias_bf16 = nullptr;  // scratch for the rounded forward bias
  int64_t bias_capacity = 0;
  std::map<AlgorithmKey, cublasLtMatmulAlgo_t> algorithms;
  bool bucket_tokens = [] {  // RECLM_GEMM_ALGORITHM_BUCKETS=0: an algorithm per exact token count
    const char* env = std::getenv("RECLM_GEMM_ALGORITHM_BUCKETS");
    return env == nullptr || std::string(env) != "0";
  }();
  int heuristic_rank = 0;  // set_heuristic_rank
  int32_t sm_count_target = 0;  // set_sm_count_target (0: the device's)
  // set_autotune: the timed choice, its scratch output (the caller's) and its two events
  bool autotune = false;
  void* autotune_scratch = nullptr;
  size_t autotune_scratch_bytes = 0;
  std::array<cudaEvent_t, 2> timer = {nullptr, nullptr};
  GemmContext::AutotuneStats stats;
};

GemmContext::GemmContext() : state_(std::make_unique<State>()) {
  state_->heuristic_rank = heuristic_rank_from_environment();
  throw_on(cublasLtCreate(&state_->handle), "cublasLtCreate");
  const cudaError_t status = cudaMalloc(&state_->workspace, kWorkspaceBytes);
  if (status != cudaSuccess) {
    cublasLtDestroy(state_->handle);
    throw std::runtime_error(std::string("GemmContext: workspace cudaMalloc: ") + cudaGetErrorString(status));
  }
}

GemmContext::~GemmContext() {
  for (cudaEvent_t e : state_->timer)
    if (e) cudaEventDestroy(e);
  cudaFree(state_->bias_bf16);
  cudaFree(state_->workspace);
  cublasLtDestroy(state_->handle);
}

void GemmContext::set_heuristic_rank(int rank) {
  state_->heuristic_rank = checked_heuristic_rank(rank);
  state_->algorithms.clear();
}

void GemmContext::set_sm_count_target(int sms) {
  state_->sm_count_target = checked_sm_count_target(sms);
  state_->algorithms.clear();
}

void GemmContext::set_autotune(bool on, void* scratch, size_t scratch_bytes) {
  state_->autotune = on;
  state_->autotune_scratch = scratch;
  state_->autotune_scratch_bytes = scratch ? scratch_bytes : 0;
  state_->algorithms.clear();
}

GemmContext::AutotuneStats GemmContext::autotune_stats() const { return state_->stats; }

GemmContext::Bf16OutputAlgorithms GemmContext::bf16_output_algorithms() const {
  Bf16OutputAlgorithms counts;
  for (const auto& [key, algo] : state_->algorithms) {
    if (static_cast<cudaDataType_t>(key[kKeyOutType]) == CUDA_R_32F) continue;
    int32_t splits = 1;
    uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
    size_t written = 0;
    throw_on(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits),
                                                  &written),
             "cublasLtMatmulAlgoConfigGetAttribute(SPLITK_NUM)");
    throw_on(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                                  sizeof(scheme), &written),
             "cublasLtMatmulAlgoConfigGetAttribute(REDUCTION_SCHEME)");
    ++counts.cached;
    if (splits > 1) {
      ++counts.split_k;
      if (scheme == CUBLASLT_REDUCTION_SCHEME_INPLACE || scheme == CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE)
        ++counts.bf16_partial_sums;
    }
  }
  return counts;
}

namespace {

// The layouts of g's operands, with n and k given (the token count may be a bucket's top).
struct Layouts {
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  Layouts(const Matmul& g, int64_t n, int64_t k) {
    // Stored shapes: op N means A is [m, k], op T means it is [k, m] (column-major, ld = rows).
    status = cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, g.trans_a ? k : g.m, g.trans_a ? g.m : k, g.lda);
    if (status == CUBLAS_STATUS_SUCCESS)
      status = cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, g.trans_b ? n : k, g.trans_b ? k : n, g.ldb);
    if (status == CUBLAS_STATUS_SUCCESS) status = cublasLtMatrixLayoutCreate(&d, g.d_type, g.m, n, g.ldd);
  }
  ~Layouts() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
  }
  Layouts(const Layouts&) = delete;
  Layouts& operator=(const Layouts&) = delete;
};

// The first `count` algorithms (or fewer) of the heuristic's ranking for the layouts, with the
// alignments of the key's pointers; none is CUBLAS_STATUS_NOT_SUPPORTED.
cublasStatus_t heuristic_ranking(GemmContext::State& s, cublasLtMatmulDesc_t desc, const Layouts& l,
                                 const AlgorithmKey& key, int count, std::vector<cublasLtMatmulAlgo_t>* ranking) {
  cublasLtMatmulPreference_t pref = nullptr;
  cublasStatus_t st = cublasLtMatmulPreferenceCreate(&pref);
  const uint64_t workspace = GemmContext::kWorkspaceBytes;
  const uint32_t align_a = static_cast<uint32_t>(key[10]), align_b = static_cast<uint32_t>(key[11]),
                 align_d = static_cast<uint32_t>(key[12]), align_c = static_cast<uint32_t>(key[14]);
  auto pset = [&](cublasLtMatmulPreferenceAttributes_t attr, const void* v, size_t bytes) {
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceSetAttribute(pref, attr, v, bytes);
  };
  pset(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace));
  pset(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a));
  pset(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b));
  pset(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c));
  pset(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d));
  // A split-K whose partial sums are added in the output type (INPLACE, OUTPUT_TYPE) rounds each
  // partial to bf16 for a bf16 output. A timed choice was 1.01x the fp32 bound of
  // CudaGemm.BackwardMatchesFloat64AndCpuOp for dinp at 257³ on the H100 (2026-11-27), about 11
  // bf16 ulps off: the size such rounding gives (which algorithm ran was not recorded). Partials
  // added in fp32 (COMPUTE_TYPE) or no split stay allowed.
  if (static_cast<cudaDataType_t>(key[kKeyOutType]) != CUDA_R_32F) {
    const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    pset(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes));
  }
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(s.handle, desc, l.a, l.b, l.d, l.d, pref, count, results.data(), &found);
  if (st == CUBLAS_STATUS_SUCCESS && found == 0) st = CUBLAS_STATUS_NOT_SUPPORTED;
  ranking->clear();
  for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < found; ++i)
    ranking->push_back(results[static_cast<size_t>(i)].algo);
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  return st;
}

// How many of the ranking to ask for, and which to take without timing: the rank set by
// set_heuristic_rank (its last when it offers fewer); under autotune its first.
int ranking_length(const GemmContext::State& s) {
  return s.autotune ? GemmContext::kAutotuneCandidates : s.heuristic_rank + 1;
}
const cublasLtMatmulAlgo_t& untimed_choice(const GemmContext::State& s,
                                           const std::vector<cublasLtMatmulAlgo_t>& ranking) {
  const int last = static_cast<int>(ranking.size()) - 1;
  return ranking[static_cast<size_t>(s.autotune ? 0 : std::min(s.heuristic_rank, last))];
}

// Whether cuBLASLt takes algo for the layouts l (an algorithm chosen for another token count).
bool takes(GemmContext::State& s, cublasLtMatmulDesc_t desc, const Layouts& l, const cublasLtMatmulAlgo_t& algo) {
  cublasLtMatmulHeuristicResult_t fits = {};
  return cublasLtMatmulAlgoCheck(s.handle, desc, l.a, l.b, l.d, l.d, &algo, &fits) == CUBLAS_STATUS_SUCCESS &&
         fits.workspaceSize <= GemmContext::kWorkspaceBytes;
}

// One run of g (layouts l) with the algorithm, reading C from c and writing D to d.
cublasStatus_t matmul_with(GemmContext::State& s, const Matmul& g, cublasLtMatmulDesc_t desc, const Layouts& l,
                           const cublasLtMatmulAlgo_t& algo, const void* c, void* d, cudaStream_t stream) {
  return cublasLtMatmul(s.handle, desc, &g.alpha, g.a, l.a, g.b, l.b, &g.beta, c, l.d, d, l.d, &algo, s.workspace,
                        GemmContext::kWorkspaceBytes, stream);
}

// Where the timed choice may write g's output (autotune_target): g.d, the scratch, or null (not timed).
void* autotune_output(const GemmContext::State& s, const Matmul& g) {
  const size_t bytes = static_cast<size_t>(g.ldd) * static_cast<size_t>(g.n) * (g.d_type == CUDA_R_32F ? 4 : 2);
  switch (autotune_target(g.beta, g.c, g.d, bytes, s.autotune_scratch_bytes)) {
    case AutotuneTarget::kInPlace: return g.d;
    case AutotuneTarget::kScratch: return s.autotune_scratch;
    case AutotuneTarget::kUntimed: break;
  }
  return nullptr;
}

// The index of the fastest of `candidates` (each taken by cuBLASLt for l) on g's own operands, or
// -1 when none could be timed; waits for the stream. Counted in s.stats.
int fastest_candidate(GemmContext::State& s, const Matmul& g, cublasLtMatmulDesc_t desc, const Layouts& l,
                      const std::vector<cublasLtMatmulAlgo_t>& candidates, cudaStream_t stream) {
  void* d = candidates.empty() ? nullptr : autotune_output(s, g);
  for (cudaEvent_t& e : s.timer)
    if (d && !e && cudaEventCreate(&e) != cudaSuccess) e = nullptr, d = nullptr;
  if (d == nullptr) {
    ++s.stats.untimed;
    return -1;
  }
  const void* c = d != g.d ? g.d : g.c ? g.c : g.d;  // (into the scratch: C is the real output)
  // The candidates run alone: the device finishes the work queued so far on every stream first
  // (the trainer's side stream runs weight-gradient GEMMs and AdamW beside the compute stream),
  // so their times are the algorithms' own, not a share of a busy GPU. Once per shape bucket.
  if (cudaDeviceSynchronize() != cudaSuccess) {
    ++s.stats.untimed;
    return -1;
  }
  int best = -1;
  float best_ms = 0.0f, first_ms = -1.0f;
  for (size_t i = 0; i < candidates.size(); ++i) {
    // the first run loads the algorithm's kernel (lazy module loading), untimed
    if (matmul_with(s, g, desc, l, candidates[i], c, d, stream) != CUBLAS_STATUS_SUCCESS) continue;
    bool ran = cudaEventRecord(s.timer[0], stream) == cudaSuccess;
    for (int r = 0; ran && r < GemmContext::kAutotuneRuns; ++r)
      ran = matmul_with(s, g, desc, l, candidates[i], c, d, stream) == CUBLAS_STATUS_SUCCESS;
    float ms = 0.0f;
    ran = ran && cudaEventRecord(s.timer[1], stream) == cudaSuccess &&
          cudaEventSynchronize(s.timer[1]) == cudaSuccess &&
          cudaEventElapsedTime(&ms, s.timer[0], s.timer[1]) == cudaSuccess;
    if (!ran) continue;
    if (i == 0) first_ms = ms;
    if (best < 0 || ms < best_ms) best = static_cast<int>(i), best_ms = ms;
  }
  if (best < 0) {
    ++s.stats.untimed;
    return -1;
  }
  ++s.stats.timed;
  if (best == 0) ++s.stats.first_fastest;
  if (first_ms >= 0.0f) {
    s.stats.first_ms += first_ms;
    s.stats.chosen_ms += best_ms;
  }
  return best;
}

// Caches an algorithm. The trainer's packed micro-batches give a new token count nearly every
// step, so the cache is bounded: emptied when full, then refilled by the shapes in use.
void remember(GemmContext::State& s, const AlgorithmKey& key, const cublasLtMatmulAlgo_t& algo) {
  if (s.algorithms.size() >= kMaxCachedAlgorithms) s.algorithms.clear();
  s.algorithms[key] = algo;
}

// The algorithm of g's exact shape `key` (layouts l): cached; else its bucket's when the exact
// shape takes it (gemm_token_bucket); else chosen from the heuristic's ranking for the exact
// shape. Chosen from a ranking: under autotune the fastest of those the exact shape takes, timed
// on g's operands on the stream; else the set rank.
cublasStatus_t choose_algorithm(GemmContext::State& s, const Matmul& g, cublasLtMatmulDesc_t desc, const Layouts& l,
                                const AlgorithmKey& key, cudaStream_t stream, cublasLtMatmulAlgo_t* algo) {
  if (const auto found = s.algorithms.find(key); found != s.algorithms.end()) {
    *algo = found->second;
    return CUBLAS_STATUS_SUCCESS;
  }
  std::vector<cublasLtMatmulAlgo_t> ranking;
  bool timed = false;  // (timing tried for the bucket: not again for the exact shape)
  const int axis = g.tokens_axis == 'n' ? kKeyN : g.tokens_axis == 'k' ? kKeyK : -1;
  if (s.bucket_tokens && axis >= 0 && gemm_token_bucket(key[axis]) != key[axis]) {
    AlgorithmKey bucket = key;
    bucket[axis] = gemm_token_bucket(key[axis]);
    cublasLtMatmulAlgo_t shared = {};
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (const auto found = s.algorithms.find(bucket); found != s.algorithms.end()) {
      shared = found->second;
    } else {
      const Layouts top(g, bucket[kKeyN], bucket[kKeyK]);
      st = top.status;
      if (st == CUBLAS_STATUS_SUCCESS) st = heuristic_ranking(s, desc, top, bucket, ranking_length(s), &ranking);
      std::vector<cublasLtMatmulAlgo_t> candidates;  // (autotune: timed at this exact shape, for the bucket)
      int fastest = -1;
      if (st == CUBLAS_STATUS_SUCCESS && s.autotune) {
        for (const cublasLtMatmulAlgo_t& a : ranking)
          if (takes(s, desc, l, a)) candidates.push_back(a);
        timed = true;
        fastest = fastest_candidate(s, g, desc, l, candidates, stream);
      }
      if (st == CUBLAS_STATUS_SUCCESS) {
        shared = fastest >= 0 ? candidates[static_cast<size_t>(fastest)] : untimed_choice(s, ranking);
        remember(s, bucket, shared);
      }
    }
    if (st == CUBLAS_STATUS_SUCCESS && takes(s, desc, l, shared)) {
      remember(s, key, shared);
      *algo = shared;
      return CUBLAS_STATUS_SUCCESS;
    }
  }
  const cublasStatus_t st = heuristic_ranking(s, desc, l, key, ranking_length(s), &ranking);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  const int i = s.autotune && !timed ? fastest_candidate(s, g, desc, l, ranking, stream) : -1;
  *algo = i >= 0 ? ranking[static_cast<size_t>(i)] : untimed_choice(s, ranking);
  remember(s, key, *algo);
  return CUBLAS_STATUS_SUCCESS;
}

// Runs the GEMM g on the stream; descriptors are cheap host objects, made per call.
cublasStatus_t run_matmul(GemmContext::State& s, const Matmul& g, cudaStream_t stream) {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasStatus_t st = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  auto set = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t bytes) {
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(desc, attr, v, bytes);
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a));
  set(CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b));
  set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue));
  if (g.bias) set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias));
  if (s.sm_count_target > 0)
    set(CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, &s.sm_count_target, sizeof(s.sm_count_target));
  const Layouts l(g, g.n, g.k);
  if (st == CUBLAS_STATUS_SUCCESS) st = l.status;

  const void* c = g.c ? g.c : g.d;
  const AlgorithmKey key = {g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldd,
                            static_cast<int64_t>(g.d_type), g.bias != nullptr, alignment(g.a),
                            alignment(g.b), alignment(g.d), g.bias ? alignment(g.bias) : 0,
                            alignment(c)};
  static_assert(kKeyN == 3 && kKeyK == 4 && kKeyOutType == 8, "n, k, D's type: the key's 4th, 5th, 9th values");
  cublasLtMatmulAlgo_t algo = {};
  if (st == CUBLAS_STATUS_SUCCESS) st = choose_algorithm(s, g, desc, l, key, stream, &algo);
  if (st == CUBLAS_STATUS_SUCCESS) st = matmul_with(s, g, desc, l, algo, c, g.d, stream);
  if (desc) cublasLtMatmulDescDestroy(desc);
  return st;
}

}  // namespace

cudaError_t linear_forward_bf16(GemmContext& ctx, void* out, bool out_fp32, const __nv_bfloat16* inp,
                                const __nv_bfloat16* weight, const float* bias, int64_t T, int64_t C,
                                int64_t OC, bool accumulate, cudaStream_t stream, int64_t ld_out,
                                const void* addend, float alpha) {
  if (ld_out == 0) ld_out = OC;
  if (!valid_sizes(T, C, OC) || ld_out < OC || (addend && accumulate)) return cudaErrorInvalidValue;
  GemmContext::State& s = *ctx.state();
  Matmul g;
  g.trans_a = true;
  g.m = OC, g.n = T, g.k = C;
  g.tokens_axis = 'n';
  g.a = weight, g.lda = C;
  g.b = inp, g.ldb = C;
  g.d = out, g.ldd = ld_out;
  g.d_type = out_fp32 ? CUDA_R_32F : CUDA_R_16BF;
  g.alpha = alpha;
  g.beta = accumulate || addend ? 1.0f : 0.0f;
  g.c = addend;
  g.bias = bias;
  if (bias && !out_fp32) {
    if (s.bias_capacity < OC) {
      cudaFree(s.bias_bf16);  // synchronizes with work still using the old scratch
      s.bias_capacity = 0;
      if (const cudaError_t e = cudaMalloc(&s.bias_bf16, OC * sizeof(__nv_bfloat16)); e != cudaSuccess) return e;
      s.bias_capacity = OC;
    }
    constexpr int kThreads = 256;
    const cudaError_t e = simt::launch(round_bias_kernel, dim3(static_cast<unsigned>((OC + kThreads - 1) / kThreads)),
                                       dim3(kThreads), 0, stream, s.bias_bf16, bias, OC);
    if (e != cudaSuccess) return e;
    g.bias = s.bias_bf16;
  }
  return to_cuda_error(run_matmul(s, g, stream));
}

cudaError_t linear_backward_bf16(GemmContext& ctx, __nv_bfloat16* dinp, bool accumulate_dinp, float* dweight,
                                 float* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                                 const __nv_bfloat16* weight, int64_t T, int64_t C, int64_t OC,
                                 cudaStream_t stream, int64_t ld_dout, float alpha, bool accumulate_dweight) {
  if (ld_dout == 0) ld_dout = OC;
  if (!valid_sizes(T, C, OC) || ld_dout < OC || (dbias && (ld_dout != OC || alpha != 1.0f)))
    return cudaErrorInvalidValue;
  GemmContext::State& s = *ctx.state();
  if (dinp) {
    Matmul g;
    g.m = C, g.n = T, g.k = OC;
    g.tokens_axis = 'n';
    g.a = weight, g.lda = C;
    g.b = dout, g.ldb = ld_dout;
    g.d = dinp, g.ldd = C;
    g.d_type = CUDA_R_16BF;
    g.alpha = alpha;
    g.beta = accumulate_dinp ? 1.0f : 0.0f;
    if (const cudaError_t e = to_cuda_error(run_matmul(s, g, stream)); e != cudaSuccess) return e;
  }
  if (dweight) {
    Matmul g;
    g.trans_b = true;
    g.m = C, g.n = OC, g.k = T;
    g.tokens_axis = 'k';
    g.a = inp, g.lda = C;
    g.b = dout, g.ldb = ld_dout;
    g.d = dweight, g.ldd = C;
    g.d_type = CUDA_R_32F;
    g.alpha = alpha;
    g.beta = accumulate_dweight ? 1.0f : 0.0f;
    if (const cudaError_t e = to_cuda_error(run_matmul(s, g, stream)); e != cudaSuccess) return e;
  }
  if (!dbias) return cudaSuccess;
  // The partial sums go to the cuBLASLt workspace: this context's GEMMs run on the same stream,
  // before and after, so the uses do not overlap. Too large for it: one pass, no scratch.
  const bool fits = bias_grad_scratch_floats(T, OC) * int64_t{sizeof(float)} <=
                    static_cast<int64_t>(GemmContext::kWorkspaceBytes);
  return bias_grad_bf16(dbias, dout, T, OC, fits ? static_cast<float*>(s.workspace) : nullptr, stream);
}

#else
// ---- g++ emulator: the CPU BLAS on host memory -----------------------------------------------

struct GemmContext::State {};
GemmContext::GemmContext() { heuristic_rank_from_environment(); }  // (checked, as on the GPU)
GemmContext::~GemmContext() = default;
void GemmContext::set_heuristic_rank(int rank) { checked_heuristic_rank(rank); }
void GemmContext::set_sm_count_target(int sms) { checked_sm_count_target(sms); }
void GemmContext::set_autotune(bool, void*, size_t) {}
GemmContext::AutotuneStats GemmContext::autotune_stats() const { return {}; }
GemmContext::Bf16OutputAlgorithms GemmContext::bf16_output_algorithms() const { return {}; }

namespace {

// rows × cols bf16 values, rows ld apart, as compact fp32.
std::vector<float> widen(const __nv_bfloat16* x, int64_t rows, int64_t cols, int64_t ld) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[static_cast<size_t>(r * cols + c)] = bf16_to_f32(static_cast<__nv_bfloat16_raw>(x[r * ld + c]).x);
  return out;
}
std::vector<float> widen(const __nv_bfloat16* x, int64_t n) { return widen(x, 1, n, n); }

void store_bf16(__nv_bfloat16* dst, float value) {
  __nv_bfloat16_raw raw;
  raw.x = f32_to_bf16(value);
  *dst = raw;
}

float round_to_bf16(float value) { return bf16_to_f32(f32_to_bf16(value)); }

}  // namespace

cudaError_t linear_forward_bf16(GemmContext&, void* out, bool out_fp32, const __nv_bfloat16* inp,
                                const __nv_bfloat16* weight, const float* bias, int64_t T, int64_t C,
                                int64_t OC, bool accumulate, cudaStream_t, int64_t ld_out, const void* addend,
                                float alpha) {
  if (ld_out == 0) ld_out = OC;
  if (!valid_sizes(T, C, OC) || ld_out < OC || (addend && accumulate)) return cudaErrorInvalidValue;
  const std::vector<float> x = widen(inp, T * C), w = widen(weight, OC * C);
  if (out_fp32) {  // as beta = 1 on C = D = out (or C = addend), then the fp32 bias epilogue
    auto* y = static_cast<float*>(out);
    if (addend != nullptr && addend != y) {  // C = addend: start from it (ld_out rows, like out)
      const auto* c = static_cast<const float*>(addend);
      for (int64_t t = 0; t < T; ++t) std::copy_n(c + t * ld_out, OC, y + t * ld_out);
    }
    accumulate = accumulate || addend != nullptr;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(OC),
                static_cast<int>(C), alpha, x.data(), static_cast<int>(C), w.data(), static_cast<int>(C),
                accumulate ? 1.0f : 0.0f, y, static_cast<int>(ld_out));
    if (bias)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < OC; ++o) y[t * ld_out + o] += bias[o];
    return cudaSuccess;
  }
  auto* dst = static_cast<__nv_bfloat16*>(out);
  // accumulate: the old bf16 out widened (beta = 1 on C = D), or the bf16 addend (C ≠ D); the sum
  // rounded once
  const auto* c = addend != nullptr ? static_cast<const __nv_bfloat16*>(addend) : dst;
  const bool add_c = accumulate || addend != nullptr;
  std::vector<float> y = add_c ? widen(c, T, OC, ld_out) : std::vector<float>(static_cast<size_t>(T * OC));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(OC),
              static_cast<int>(C), alpha, x.data(), static_cast<int>(C), w.data(), static_cast<int>(C),
              add_c ? 1.0f : 0.0f, y.data(), static_cast<int>(OC));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < OC; ++o) {  // the bf16 bias epilogue: bias rounded, one output rounding
      const float b = bias ? round_to_bf16(bias[o]) : 0.0f;
      store_bf16(dst + t * ld_out + o, y[static_cast<size_t>(t * OC + o)] + b);
    }
  return cudaSuccess;
}

cudaError_t linear_backward_bf16(GemmContext&, __nv_bfloat16* dinp, bool accumulate_dinp, float* dweight,
                                 float* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                                 const __nv_bfloat16* weight, int64_t T, int64_t C, int64_t OC,
                                 cudaStream_t stream, int64_t ld_dout, float alpha, bool accumulate_dweight) {
  if (ld_dout == 0) ld_dout = OC;
  if (!valid_sizes(T, C, OC) || ld_dout < OC || (dbias && (ld_dout != OC || alpha != 1.0f)))
    return cudaErrorInvalidValue;
  const std::vector<float> dy = widen(dout, T, OC, ld_dout);
  if (dinp) {  // fp32 product, + the widened old dinp (beta = 1), one rounding
    const std::vector<float> w = widen(weight, OC * C);
    std::vector<float> dx = accumulate_dinp ? widen(dinp, T * C) : std::vector<float>(static_cast<size_t>(T * C));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(T), static_cast<int>(C),
                static_cast<int>(OC), alpha, dy.data(), static_cast<int>(OC), w.data(), static_cast<int>(C),
                accumulate_dinp ? 1.0f : 0.0f, dx.data(), static_cast<int>(C));
    for (int64_t i = 0; i < T * C; ++i) store_bf16(dinp + i, dx[static_cast<size_t>(i)]);
  }
  if (dweight) {
    const std::vector<float> x = widen(inp, T * C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(OC), static_cast<int>(C),
                static_cast<int>(T), alpha, dy.data(), static_cast<int>(OC), x.data(), static_cast<int>(C),
                accumulate_dweight ? 1.0f : 0.0f, dweight, static_cast<int>(C));
  }
  if (!dbias) return cudaSuccess;
  std::vector<float> scratch(static_cast<size_t>(bias_grad_scratch_floats(T, OC)));  // host = device memory
  return bias_grad_bf16(dbias, dout, T, OC, scratch.empty() ? nullptr : scratch.data(), stream);
}

#endif

}  // namespace reclm::cuda
