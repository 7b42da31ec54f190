// Attention over packed variable-length segments (DESIGN.md §1, §4), FlashAttention-2 on the CPU.
//
// Segment s, query head h, kv head g = h / (n_heads / n_kv_heads), local query i, local key j:
//   visible(i, j) = j <= i  ||  j < prefix_s            (causal with a bidirectional Part A)
//   S_ij = scale · q_i·k_j,   lse_i = log Σ_visible exp(S_ij),   P_ij = exp(S_ij − lse_i)
//   out_i = Σ_j P_ij · v_j
// Forward: a work item is (segment, query tile of kQ rows, head). It walks the key tiles of kK
// keys that hold a visible key (tiles past max(query end, prefix) are skipped), keeping each
// query's running max m and sum l of an online softmax: a tile that raises m to m' rescales l
// and the query's output accumulator by exp(m − m'). Only one kQ×kK score tile is live per
// thread, so memory is O(T · head_dim).
// Backward, with D_i = dout_i·out_i (= Σ_j P_ij dP_ij) and P recomputed from the saved lse:
//   dP = dout·vᵀ,  dS = P ∘ (dP − D),  dq = scale·dS·k,  dk = scale·dSᵀ·q,  dv = Pᵀ·dout
// FLOPs per head per visible (i, j): forward 4·head_dim (Q·Kᵀ, P·V); backward 10·head_dim
// (Q·Kᵀ, dout·Vᵀ, Pᵀ·dout, dSᵀ·Q, dS·K), 14·head_dim on the split path (Q·Kᵀ, dout·Vᵀ twice).
// Tiles crossing the diagonal are computed whole and masked, so a causal segment of L tokens
// costs about L²/2 + L·kK/2 pairs rather than L(L+1)/2.
//
// Determinism: each output element is written by one work item, adding its terms in a fixed
// order, so results do not depend on scheduling. Backward has two decompositions:
//   fused — one item per (segment, kv head). For each key tile dk/dv accumulate privately over
//           the group's query heads and query tiles; dq rows belong to the same item, so they
//           accumulate in place. 5 GEMMs per tile pair, but only n_segments·n_kv_heads items.
//   split — when those items are too few or too uneven for the threads (one long segment, one
//           kv head): dq by (segment, head, query tile) items, then dk/dv by (segment, kv head,
//           key tile) items. 7 GEMMs per tile pair, fully parallel.
// The choice depends on the thread count: reproducible for a fixed thread count.
//
// Layout: query-centric passes (forward, split dq) keep scores key-major, s[j, i], and
// key-centric passes (dk/dv) query-major, s[i, j], so each pass transposes only the tile it holds
// fixed, once, and every GEMM streams contiguous rows.
// Numerics: fp32 tiles through a register-blocked GEMM micro-kernel; exponentials in base 2
// (log2 e folded into the scale) by a polynomial that vectorises; D_i summed in double.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm::ops {
namespace {

using cpu::exp2_nonpositive;

// Tile shape. kQ and kK are each the M of one tile GEMM and the N of another, so both are
// multiples of the micro-kernel's 6 rows and 16 columns. 48×48 beat 32, 64 and 96 on 256-token
// segments: small enough to waste little on the diagonal, big enough to amortise the softmax.
struct AttentionTiles {
  static constexpr int64_t kQ = 48;  // query rows per tile
  static constexpr int64_t kK = 48;  // keys per tile
};
constexpr int64_t kQ = AttentionTiles::kQ;
constexpr int64_t kK = AttentionTiles::kK;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- tile GEMM: C[M, N] (+)= A[M, K] · B[K, N], B rows contiguous -----------------------------
// A is read as A[m·lda + k] or, with kTransA, as A[k·lda + m] (Pᵀ and dSᵀ need no transpose).
// The micro-kernel holds an R×16 block of C in 2R vector registers and streams K. With R = 6
// that is 12 accumulators + 2 for B + 1 for A: the 16 registers of AVX2, and enough independent
// FMA chains to cover their latency. GCC vector types give the register blocking that the
// auto-vectoriser does not find on its own; they compile to FMAs under -march=native.
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));  // aligned(4): unaligned loads
constexpr int kLanes = 8;
constexpr int kMicroRows = 6;

template <bool kTransA, int R, int NV>
inline void gemm_micro(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict B,
                       int64_t ldb, float* __restrict C, int64_t ldc, bool accumulate) {
  Vec8 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? *reinterpret_cast<const Vec8*>(C + r * ldc + v * kLanes) : Vec8{};
  for (int64_t k = 0; k < K; ++k) {
    Vec8 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = *reinterpret_cast<const Vec8*>(B + k * ldb + v * kLanes);
    for (int r = 0; r < R; ++r) {
      const float a = kTransA ? A[k * lda + r] : A[r * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<Vec8*>(C + r * ldc + v * kLanes) = acc[r][v];
}

// One strip of R rows: 16-column blocks, an 8-column block, then scalar columns (odd head dims,
// ragged key tiles).
template <bool kTransA, int R>
void gemm_strip(int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                float* C, int64_t ldc, bool accumulate) {
  int64_t n = 0;
  for (; n + 2 * kLanes <= N; n += 2 * kLanes)
    gemm_micro<kTransA, R, 2>(K, A, lda, B + n, ldb, C + n, ldc, accumulate);
  if (n + kLanes <= N) {
    gemm_micro<kTransA, R, 1>(K, A, lda, B + n, ldb, C + n, ldc, accumulate);
    n += kLanes;
  }
  for (int r = 0; r < R; ++r)
    for (int64_t c = n; c < N; ++c) {
      float sum = accumulate ? C[r * ldc + c] : 0.0f;
      for (int64_t k = 0; k < K; ++k)
        sum += (kTransA ? A[k * lda + r] : A[r * lda + k]) * B[k * ldb + c];
      C[r * ldc + c] = sum;
    }
}

// The M % 6 rows left after the full strips, dispatched to their instantiation.
template <bool kTransA, int R>
void gemm_last_strip(int64_t rows, int64_t N, int64_t K, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if constexpr (R > 0) {
    if (rows == R) return gemm_strip<kTransA, R>(N, K, A, lda, B, ldb, C, ldc, accumulate);
    gemm_last_strip<kTransA, R - 1>(rows, N, K, A, lda, B, ldb, C, ldc, accumulate);
  }
}

template <bool kTransA>
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate) {
  const int64_t a_step = kTransA ? 1 : lda;  // distance between consecutive rows m of A
  int64_t m = 0;
  for (; m + kMicroRows <= M; m += kMicroRows)
    gemm_strip<kTransA, kMicroRows>(N, K, A + m * a_step, lda, B, ldb, C + m * ldc, ldc,
                                    accumulate);
  gemm_last_strip<kTransA, kMicroRows - 1>(M - m, N, K, A + m * a_step, lda, B, ldb, C + m * ldc,
                                           ldc, accumulate);
}

// ---- problem description -------------------------------------------------------------------
struct Segment {
  int64_t begin, len, prefix;  // 0 <= prefix <= len
};

struct Problem {
  int64_t T, n_heads, n_kv_heads, head_dim, group;  // group = query heads per kv head
  int64_t q_stride, kv_stride;                      // floats between consecutive tokens
  float scale, scale_log2;                          // scale, scale · log2 e
};

Problem make_problem(const AttentionShape& shape) {
  RECLM_CHECK(
      shape.n_tokens >= 0 && shape.n_heads > 0 && shape.n_kv_heads > 0 && shape.head_dim > 0,
      "attention: bad shape T={} heads={} kv_heads={} head_dim={}", shape.n_tokens, shape.n_heads,
      shape.n_kv_heads, shape.head_dim);
  RECLM_CHECK(shape.n_heads % shape.n_kv_heads == 0, "attention: n_heads {} % n_kv_heads {} != 0",
              shape.n_heads, shape.n_kv_heads);
  RECLM_CHECK(shape.scale > 0.0f, "attention: scale {} must be positive", shape.scale);
  const int64_t H = shape.n_heads, KV = shape.n_kv_heads, D = shape.head_dim;
  return {shape.n_tokens, H, KV, D, H / KV, H * D, KV * D, shape.scale, shape.scale * kLog2e};
}

std::vector<Segment> make_segments(const int32_t* cu_seqlens, const int32_t* prefix_lens,
                                   int64_t n_segments, int64_t T) {
  RECLM_CHECK(n_segments >= 0 && cu_seqlens != nullptr, "attention: no cu_seqlens");
  RECLM_CHECK(cu_seqlens[0] == 0 && cu_seqlens[n_segments] == T,
              "attention: cu_seqlens must run from 0 to n_tokens {} (got {}..{})", T, cu_seqlens[0],
              cu_seqlens[n_segments]);
  std::vector<Segment> segments(static_cast<size_t>(n_segments));
  for (int64_t s = 0; s < n_segments; ++s) {
    const int64_t len = cu_seqlens[s + 1] - cu_seqlens[s];
    const int64_t prefix = prefix_lens != nullptr ? prefix_lens[s] : 0;
    RECLM_CHECK(len >= 0 && prefix >= 0 && prefix <= len,
                "attention: segment {} has length {}, prefix {}", s, len, prefix);
    segments[s] = {cu_seqlens[s], len, prefix};
  }
  return segments;
}

// Keys [0, key_end) hold every key visible to the queries before i_end: the causal part and the
// prefix. Queries from query_begin on (a query-tile boundary) see some key of the tile at j0.
int64_t key_end(const Segment& seg, int64_t i_end) {
  return std::min(seg.len, std::max(i_end, seg.prefix));
}
int64_t query_begin(const Segment& seg, int64_t j0) { return j0 < seg.prefix ? 0 : j0 / kQ * kQ; }

// Masks scores of queries i0.. against keys j0.. with −inf where j > i and j >= prefix, in either
// tile layout: query-major s[i, j] [nq, kK] or key-major s[j, i] [nk, kQ].
bool tile_fully_visible(const Segment& seg, int64_t i0, int64_t j0, int64_t nk) {
  return j0 + nk - 1 <= i0 || j0 + nk <= seg.prefix;
}
void mask_query_major(float* s, const Segment& seg, int64_t i0, int64_t nq, int64_t j0,
                      int64_t nk) {
  if (tile_fully_visible(seg, i0, j0, nk)) return;
  for (int64_t r = 0; r < nq; ++r) {
    const int64_t first_hidden = std::max(i0 + r + 1, seg.prefix) - j0;
    for (int64_t c = std::max<int64_t>(first_hidden, 0); c < nk; ++c) s[r * kK + c] = kNegInf;
  }
}
void mask_key_major(float* s, const Segment& seg, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
  if (tile_fully_visible(seg, i0, j0, nk)) return;
  for (int64_t r = std::max<int64_t>(seg.prefix - j0, 0); r < nk; ++r) {
    const int64_t n_hidden = std::min(nq, j0 + r - i0);  // queries i < j
    for (int64_t c = 0; c < n_hidden; ++c) s[r * kQ + c] = kNegInf;
  }
}

// dst [head_dim, ld_dst] = src [n, head_dim]ᵀ (src rows ld_src apart), so that a score GEMM
// streams the other operand's rows contiguously.
void transpose_tile(float* dst, const float* src, int64_t n, int64_t head_dim, int64_t ld_src,
                    int64_t ld_dst) {
  for (int64_t c = 0; c < n; ++c)
    for (int64_t d = 0; d < head_dim; ++d) dst[d * ld_dst + c] = src[c * ld_src + d];
}

// Work items, biggest first so dynamic scheduling ends balanced (results do not depend on it).
struct WorkItem {
  int64_t seg, tile, cost;  // tile: first local query or key of the tile, 0 for whole segments
};
enum class Split { kQueryTiles, kKeyTiles, kSegments };
std::vector<WorkItem> work_items(const std::vector<Segment>& segments, Split split) {
  std::vector<WorkItem> items;
  for (int64_t s = 0; s < static_cast<int64_t>(segments.size()); ++s) {
    const Segment& seg = segments[s];
    if (split == Split::kSegments) {
      if (seg.len > 0) items.push_back({s, 0, seg.len * seg.len});
      continue;
    }
    const int64_t tile = split == Split::kQueryTiles ? kQ : kK;
    for (int64_t t0 = 0; t0 < seg.len; t0 += tile) {
      const int64_t n = std::min(tile, seg.len - t0);
      const int64_t other =
          split == Split::kQueryTiles ? key_end(seg, t0 + n) : seg.len - query_begin(seg, t0);
      items.push_back({s, t0, n * other});
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const WorkItem& a, const WorkItem& b) { return a.cost > b.cost; });
  return items;
}

// Calls fn(item, index, scratch) for index in [0, n_per_item) of every item (a head or kv head),
// dynamically scheduled; each thread owns one scratch buffer of scratch_size floats.
template <typename Fn>
void parallel_for_items(const std::vector<WorkItem>& items, int64_t n_per_item,
                        int64_t scratch_size, Fn fn) {
  const int64_t n_work = static_cast<int64_t>(items.size()) * n_per_item;
#pragma omp parallel
  {
    std::vector<float> scratch(static_cast<size_t>(scratch_size));
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < n_work; ++w) fn(items[w / n_per_item], w % n_per_item, scratch.data());
  }
}

// ---- forward -----------------------------------------------------------------------------------
// Queries i0.. (one tile) of head h. Scores are key-major, st[j, i] = k_j · q_i: the query tile is
// transposed once and no key tile ever is, and the online softmax runs across queries in
// contiguous vector loops. scratch: st [kK, kQ] (scores, then P), qt [head_dim, kQ],
// acc [kQ, head_dim], and per query m (running max, base-2 units), l (running sum), alpha.
// m starts at the lowest finite float, not −inf, so a query whose keys so far were all masked
// needs no special case: exp2(−inf − m) = 0 and its alpha is 1.
void forward_tile(float* out, float* lse, const float* q, const float* k, const float* v,
                  const Problem& p, const Segment& seg, int64_t h, int64_t i0, float* scratch) {
  const int64_t D = p.head_dim;
  const int64_t nq = std::min(kQ, seg.len - i0);
  float* __restrict st = scratch;
  float* __restrict qt = st + kK * kQ;
  float* __restrict acc = qt + D * kQ;
  float* __restrict m = acc + kQ * D;
  float* __restrict l = m + kQ;
  float* __restrict alpha = l + kQ;
  const int64_t t0 = seg.begin + i0;
  const int64_t kv_head = h / p.group;
  transpose_tile(qt, q + (t0 * p.n_heads + h) * D, nq, D, p.q_stride, kQ);
  std::fill(acc, acc + nq * D, 0.0f);
  std::fill(m, m + nq, std::numeric_limits<float>::lowest());
  std::fill(l, l + nq, 0.0f);
  const int64_t j_end = key_end(seg, i0 + nq);
  for (int64_t j0 = 0; j0 < j_end; j0 += kK) {
    const int64_t nk = std::min(kK, j_end - j0);
    const int64_t kv_offset = ((seg.begin + j0) * p.n_kv_heads + kv_head) * D;
    gemm<false>(nk, nq, D, k + kv_offset, p.kv_stride, qt, kQ, st, kQ, false);
    mask_key_major(st, seg, i0, nq, j0, nk);
    std::copy(m, m + nq, alpha);  // alpha holds the new running max first
    for (int64_t r = 0; r < nk; ++r)
#pragma omp simd
      for (int64_t c = 0; c < nq; ++c) alpha[c] = std::max(alpha[c], st[r * kQ + c] * p.scale_log2);
#pragma omp simd
    for (int64_t c = 0; c < nq; ++c) {
      const float m_new = alpha[c];
      alpha[c] = exp2_nonpositive(m[c] - m_new);
      l[c] *= alpha[c];
      m[c] = m_new;
    }
    for (int64_t r = 0; r < nk; ++r)
#pragma omp simd
      for (int64_t c = 0; c < nq; ++c) {
        const float prob = exp2_nonpositive(st[r * kQ + c] * p.scale_log2 - m[c]);
        st[r * kQ + c] = prob;
        l[c] += prob;
      }
    for (int64_t c = 0; c < nq; ++c) {
      if (alpha[c] == 1.0f) continue;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) acc[c * D + d] *= alpha[c];
    }
    gemm<true>(nq, D, nk, st, kQ, v + kv_offset, p.kv_stride, acc, D, true);
  }
  for (int64_t c = 0; c < nq; ++c) {  // l > 0: every query sees at least itself
    const float inv_l = 1.0f / l[c];
    float* __restrict o = out + ((t0 + c) * p.n_heads + h) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] = acc[c * D + d] * inv_l;
    lse[h * p.T + t0 + c] = (m[c] + std::log2(l[c])) * kLn2;
  }
}

// ---- backward ----------------------------------------------------------------------------------
struct BackwardArgs {
  float* dq;
  const float *dout, *q, *k, *v, *lse, *delta;  // delta [n_heads, T]: D_i
};

// Tile (queries i0.., keys j0..j0+nk) of head h; kt, vt [head_dim, kK] hold the key tile's k and
// v transposed. Adds into dq (if with_dq) and into dk_acc/dv_acc [nk, head_dim] (if not null).
// s, dp [kQ, kK] are scratch: s becomes P, dp becomes scale · dS.
void backward_tile(const BackwardArgs& a, const Problem& p, const Segment& seg, int64_t h,
                   int64_t i0, int64_t j0, int64_t nk, const float* kt, const float* vt, float* s,
                   float* dp, bool with_dq, float* dk_acc, float* dv_acc) {
  const int64_t D = p.head_dim;
  const int64_t nq = std::min(kQ, seg.len - i0);
  const int64_t t0 = seg.begin + i0;
  const int64_t q_offset = (t0 * p.n_heads + h) * D;  // q, dout, dq tiles [nq, D]
  gemm<false>(nq, nk, D, a.q + q_offset, p.q_stride, kt, kK, s, kK, false);
  mask_query_major(s, seg, i0, nq, j0, nk);
  gemm<false>(nq, nk, D, a.dout + q_offset, p.q_stride, vt, kK, dp, kK, false);
  for (int64_t r = 0; r < nq; ++r) {
    const float lse2 = a.lse[h * p.T + t0 + r] * kLog2e;
    const float delta = a.delta[h * p.T + t0 + r];
    float* __restrict sr = s + r * kK;
    float* __restrict dpr = dp + r * kK;
#pragma omp simd
    for (int64_t c = 0; c < nk; ++c) {
      sr[c] = exp2_nonpositive(sr[c] * p.scale_log2 - lse2);
      dpr[c] = sr[c] * (dpr[c] - delta) * p.scale;
    }
  }
  if (dv_acc != nullptr)
    gemm<true>(nk, D, nq, s, kK, a.dout + q_offset, p.q_stride, dv_acc, D, true);
  if (dk_acc != nullptr) gemm<true>(nk, D, nq, dp, kK, a.q + q_offset, p.q_stride, dk_acc, D, true);
  if (with_dq) {
    const float* k_tile = a.k + ((seg.begin + j0) * p.n_kv_heads + h / p.group) * D;
    gemm<false>(nq, D, nk, dp, kK, k_tile, p.kv_stride, a.dq + q_offset, p.q_stride, true);
  }
}

// Key tile j0 of kv head g against every query head of its group and every query tile that
// sees it: writes dk, dv for those keys and, if with_dq, adds into dq.
// scratch: s, dp [kQ, kK], kt, vt [head_dim, kK], dk_acc, dv_acc [kK, head_dim].
void backward_key_tile(float* dk, float* dv, const BackwardArgs& a, const Problem& p,
                       const Segment& seg, int64_t g, int64_t j0, bool with_dq, float* scratch) {
  const int64_t D = p.head_dim;
  const int64_t nk = std::min(kK, seg.len - j0);
  float *s = scratch, *dp = s + kQ * kK, *kt = dp + kQ * kK, *vt = kt + D * kK;
  float *dk_acc = vt + D * kK, *dv_acc = dk_acc + kK * D;
  const int64_t kv_offset = ((seg.begin + j0) * p.n_kv_heads + g) * D;
  transpose_tile(kt, a.k + kv_offset, nk, D, p.kv_stride, kK);
  transpose_tile(vt, a.v + kv_offset, nk, D, p.kv_stride, kK);
  std::fill(dk_acc, dk_acc + nk * D, 0.0f);
  std::fill(dv_acc, dv_acc + nk * D, 0.0f);
  for (int64_t h = g * p.group; h < (g + 1) * p.group; ++h)
    for (int64_t i0 = query_begin(seg, j0); i0 < seg.len; i0 += kQ)
      backward_tile(a, p, seg, h, i0, j0, nk, kt, vt, s, dp, with_dq, dk_acc, dv_acc);
  for (int64_t c = 0; c < nk; ++c) {
    std::copy(dk_acc + c * D, dk_acc + (c + 1) * D, dk + kv_offset + c * p.kv_stride);
    std::copy(dv_acc + c * D, dv_acc + (c + 1) * D, dv + kv_offset + c * p.kv_stride);
  }
}

// dq for query tile i0 of head h (split path). Key-major like the forward, so the q and dout
// tiles are transposed once. scratch: st, dpt [kK, kQ] (P, scale · dS), qt, dot [head_dim, kQ],
// lse2, delta [kQ].
void backward_query_tile(const BackwardArgs& a, const Problem& p, const Segment& seg, int64_t h,
                         int64_t i0, float* scratch) {
  const int64_t D = p.head_dim;
  const int64_t nq = std::min(kQ, seg.len - i0);
  const int64_t t0 = seg.begin + i0;
  const int64_t q_offset = (t0 * p.n_heads + h) * D;
  float *st = scratch, *dpt = st + kK * kQ, *qt = dpt + kK * kQ, *dot = qt + D * kQ;
  float *lse2 = dot + D * kQ, *delta = lse2 + kQ;
  transpose_tile(qt, a.q + q_offset, nq, D, p.q_stride, kQ);
  transpose_tile(dot, a.dout + q_offset, nq, D, p.q_stride, kQ);
  for (int64_t c = 0; c < nq; ++c) {
    lse2[c] = a.lse[h * p.T + t0 + c] * kLog2e;
    delta[c] = a.delta[h * p.T + t0 + c];
  }
  const int64_t j_end = key_end(seg, i0 + nq);
  for (int64_t j0 = 0; j0 < j_end; j0 += kK) {
    const int64_t nk = std::min(kK, j_end - j0);
    const int64_t kv_offset = ((seg.begin + j0) * p.n_kv_heads + h / p.group) * D;
    gemm<false>(nk, nq, D, a.k + kv_offset, p.kv_stride, qt, kQ, st, kQ, false);
    mask_key_major(st, seg, i0, nq, j0, nk);
    gemm<false>(nk, nq, D, a.v + kv_offset, p.kv_stride, dot, kQ, dpt, kQ, false);
    for (int64_t r = 0; r < nk; ++r)
#pragma omp simd
      for (int64_t c = 0; c < nq; ++c) {
        const float prob = exp2_nonpositive(st[r * kQ + c] * p.scale_log2 - lse2[c]);
        dpt[r * kQ + c] = prob * (dpt[r * kQ + c] - delta[c]) * p.scale;
      }
    gemm<true>(nq, D, nk, dpt, kQ, a.k + kv_offset, p.kv_stride, a.dq + q_offset, p.q_stride, true);
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const int32_t* cu_seqlens, const int32_t* prefix_lens, int64_t n_segments,
                       const AttentionShape& shape) {
  const Problem p = make_problem(shape);
  const std::vector<Segment> segments = make_segments(cu_seqlens, prefix_lens, n_segments, p.T);
  parallel_for_items(
      work_items(segments, Split::kQueryTiles), p.n_heads, kK * kQ + 2 * p.head_dim * kQ + 3 * kQ,
      [&](const WorkItem& item, int64_t h, float* scratch) {
        forward_tile(out, lse, q, k, v, p, segments[item.seg], h, item.tile, scratch);
      });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                        const float* k, const float* v, const float* out, const float* lse,
                        const int32_t* cu_seqlens, const int32_t* prefix_lens, int64_t n_segments,
                        const AttentionShape& shape) {
  const Problem p = make_problem(shape);
  const std::vector<Segment> segments = make_segments(cu_seqlens, prefix_lens, n_segments, p.T);
  const int64_t D = p.head_dim;
  // delta [n_heads, T] = rowsum(dout ∘ out), in double: dP − D cancels, so D must be accurate.
  std::vector<float> delta(static_cast<size_t>(p.n_heads * p.T));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < p.T; ++t)
    for (int64_t h = 0; h < p.n_heads; ++h) {
      const int64_t offset = (t * p.n_heads + h) * D;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t d = 0; d < D; ++d)
        sum += static_cast<double>(dout[offset + d]) * out[offset + d];
      delta[h * p.T + t] = static_cast<float>(sum);
      std::fill(dq + offset, dq + offset + D, 0.0f);  // dq accumulates over key tiles
    }
  const BackwardArgs a{dq, dout, q, k, v, lse, delta.data()};

  // Fused when the (segment, kv head) items can keep every thread busy: the largest item is at
  // most ~1.25× a thread's fair share of the total (cost ∝ len²).
  int64_t total = 0, largest = 0;
  for (const Segment& seg : segments) {
    total += seg.len * seg.len * p.n_kv_heads;
    largest = std::max(largest, seg.len * seg.len);
  }
  const bool fused = 4 * largest * omp_get_max_threads() <= 5 * total;
  // Fits backward_key_tile (2·kQ·kK + 4·D·kK) and backward_query_tile (2·kK·kQ + 2·D·kQ + 2·kQ).
  const int64_t scratch_size = 2 * kQ * kK + 4 * D * std::max(kQ, kK) + 2 * kQ;
  if (fused) {
    parallel_for_items(work_items(segments, Split::kSegments), p.n_kv_heads, scratch_size,
                       [&](const WorkItem& item, int64_t g, float* scratch) {
                         const Segment& seg = segments[item.seg];
                         for (int64_t j0 = 0; j0 < seg.len; j0 += kK)
                           backward_key_tile(dk, dv, a, p, seg, g, j0, true, scratch);
                       });
    return;
  }
  parallel_for_items(work_items(segments, Split::kQueryTiles), p.n_heads, scratch_size,
                     [&](const WorkItem& item, int64_t h, float* scratch) {
                       backward_query_tile(a, p, segments[item.seg], h, item.tile, scratch);
                     });
  parallel_for_items(work_items(segments, Split::kKeyTiles), p.n_kv_heads, scratch_size,
                     [&](const WorkItem& item, int64_t g, float* scratch) {
                       backward_key_tile(dk, dv, a, p, segments[item.seg], g, item.tile, false,
                                         scratch);
                     });
}

}  // namespace reclm::ops
