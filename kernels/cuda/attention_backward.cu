// FlashAttention-2 backward on tensor cores (bf16 mma.sync m16n8k16, fp32 accumulation), over
// packed variable-length segments with the causal / prefix mask and grouped-query heads.
//
// With S = scale·Q·Kᵀ (visible pairs only), P = exp(S − lse) recomputed from the forward's lse,
// and D_i = rowsum(dO_i ∘ O_i) (= Σ_j P_ij dP_ij):
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − D),  dK = scale·dSᵀ·Q,  dQ = scale·dS·K
// Kernels, in stream order:
//   1. delta: 4–16 lanes per (token, head) row, one 16-byte chunk each, compute D (fp32, workspace
//      [n_heads, T]) and, in the fast mode, zero that row of the fp32 dQ accumulator.
//   2. dkdv: a block per (key tile of a segment, kv head); each warp owns 16 keys. The block loops
//      over the query heads of its group and the query tiles that see a key of its tile (tiles
//      before the diagonal are skipped unless the key tile touches the prefix; within a step, a
//      warp whose keys no query of the tile sees skips its products), computes Sᵀ = K·Qᵀ and
//      dPᵀ = V·dOᵀ (key-major, so the fp32 C fragments become the A operands of dV += Pᵀ·dO and
//      dK += dSᵀ·Q without a trip through shared memory), and keeps dK, dV in registers: no
//      atomics for them. Three modes (DqMode):
//      - deterministic, whole segment: for the segments of up to 128 tokens, one block of 8 warps
//        holds all 128 keys, so dQ of each query tile = dS·K over the block's keys alone: dS goes
//        to shared memory (bf16, query-major) and the block stores dQ itself. Packed
//        recommendation histories are mostly this short: one block per (segment, kv head) does
//        all of the segment's backward, at 10 FLOPs per pair instead of 14, with no dq pass.
//        At head_dim <= 64 a caller may send the segments of 129 to 256 tokens to blocks of 16
//        warps holding 256 keys the same way (segment_block_max_len up to 256);
//      - deterministic, longer segments: 64-key tiles, dQ left to 3.;
//      - fast: 64-key tiles, dQ += dS·K float-atomicAdded into the workspace, then 4. converts it.
//   3. dq (deterministic mode, segments past the one-block path): a block per (query tile of 64, head)
//      loops over the key tiles in order, recomputing S and dP (two more GEMMs) — each dq element
//      is written once by one block, so the result is bitwise reproducible.
// Work per visible (query, key) pair and head: 10·head_dim FLOPs (5 GEMMs; 14 with the
// deterministic dq kernel, for segments past 128 tokens). Minimum traffic: read q, k, v, out,
// dout, lse, write dq, dk, dv: 2·T·head_dim·(4·n_heads + 4·n_kv_heads) bytes + 4·T·n_heads;
// K/V tiles are read once per block, Q/dO tiles once per (key tile, head), so the traffic grows
// as T²/64 — the kernel is compute-bound for segments beyond a few hundred tokens.
// Staging: cp.async copies global -> shared; the next Q/dO tile (dkdv) or K/V tile (dq) is in
// flight while the current one is computed (two buffers, one barrier per step).
// Numerics: P and dS are rounded to bf16 as mma operands (relative 2^-8), all sums in fp32.
// Layout (AttentionQkvRows): q, k, v may be the heads of fused QKV rows and dq, dk, dv are then
// written into such rows; with a RoPE table dq and dk are rotated back as they are stored (fp32,
// then the one rounding): every kernel that stores them holds both values of each rotary pair in
// one lane (C fragments give a lane columns 2t, 2t + 1 of every 8-column group, and RoPE pairs
// whole groups, rope_pairs.h), so the rotation needs no exchange; the whole-segment kernel's dQ
// product hands each warp column groups in rotary pairs (mma_ab_pairs), and fast mode's convert
// pass rotates the fp32 accumulator.
#include <algorithm>
#include <cstring>

#include "kernels/cuda/attention_backward.h"
#include "kernels/cuda/attention_head_dims.h"
#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/cuda/rope_pairs.h"
#include "kernels/simt/async_copy.h"
#include "kernels/simt/launch.h"
#include "kernels/simt/tensor_core.h"

namespace reclm::cuda {
namespace {

using bf16 = __nv_bfloat16;
using simt::ldmatrix_x4;

using simt::ldmatrix_x4_trans;
using simt::mma_m16n8k16_bf16_f32;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kKeyTile = 64;      // keys per dkdv block: 16 per warp
constexpr int kSegmentKeys = kAttentionSegmentBlockMaxLen;  // the whole-segment kernel's keys: 8 warps
constexpr int kLongSegmentKeys = kAttentionLongSegmentBlockMaxLen;  // and its 16-warp form's (head_dim <= 64)
constexpr int kDqTile = 64;   // queries per dq block (16 per warp) and keys per dq step
constexpr int kPad = 8;       // bf16 row padding: rows 16 bytes off their bank, ldmatrix conflict-free
constexpr float kLog2e = 1.4426950408889634f;
// dkdv query tile: 64 for head_dim 32 and 64, 32 for 96 and 128, so Sᵀ/dPᵀ plus the dK/dV
// accumulators fit registers (head_dim 32 keeps head_dim 64's tile: its accumulators are only
// smaller). A multiple of 16 (one warp's rows). The whole-segment blocks (kKeys 128, 8 warps) take
// 32 at every head_dim: with it ptxas fits head_dim 64 in 128 registers (20 bytes spilled), two
// blocks, 16 warps per SM; with 64 it needed 211 (one block, 8 warps). So do the 256-key blocks (16
// warps, one per SM).
template <int D, int kKeys>
constexpr int kDkdvQueryTile = D <= 64 && kKeys == kKeyTile ? 64 : 32;

struct SegmentInfo {
  int begin, len, prefix;
};
__device__ inline SegmentInfo segment_info(const int32_t* cu_seqlens, const int32_t* prefix_lens, int s) {
  const int begin = cu_seqlens[s];
  return {begin, cu_seqlens[s + 1] - begin, prefix_lens != nullptr ? prefix_lens[s] : 0};
}
__device__ inline bool visible(const SegmentInfo& seg, int i, int j) {
  return i < seg.len && j < seg.len && (j <= i || j < seg.prefix);
}

__device__ inline uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &pair, sizeof(bits));
  return bits;
}

// dst[0..1] = (lo, hi) rounded to bf16; dst 4-byte aligned.
__device__ inline void store_bf16x2(bf16* dst, float lo, float hi) {
  *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(lo, hi);
}

// shared [n_rows][D + kPad] = global rows (row r at src + r·row_stride), zero past `valid` rows,
// by cp.async: visible after the caller's cp_async_commit, cp_async_wait and a barrier.
// kBlockThreads: the block's thread count (the loop's stride).
template <int D, int kBlockThreads = kThreads>
__device__ void copy_rows_async(bf16* dst, const bf16* src, int64_t row_stride, int n_rows, int valid) {
  constexpr int kChunks = D / 8;  // 16-byte vectors per row
  for (int c = threadIdx.x; c < n_rows * kChunks; c += kBlockThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool in_range = r < valid;
    simt::cp_async_16_zfill(dst + r * (D + kPad) + col, in_range ? src + r * row_stride + col : src, in_range ? 16 : 0);
  }
}

// acc [16, N] += A [16, K] · Bᵀ, A and B [N, K] row-major in shared memory (a "X·Yᵀ" product).
template <int K, int N>
__device__ void mma_abt(float (&acc)[N / 8][4], const bf16* a, int lda, const bf16* b, int ldb) {
  const int lane = threadIdx.x % 32;
  for (int kk = 0; kk < K; kk += 16) {
    uint32_t af[4];
    ldmatrix_x4(af, a + (lane % 16) * lda + kk + 8 * (lane / 16));
    for (int n = 0; n < N; n += 16) {
      uint32_t bf[4];  // n-tiles n and n + 8, k halves kk and kk + 8
      ldmatrix_x4(bf, b + (n + lane % 8 + 8 * (lane / 16)) * ldb + kk + 8 * ((lane / 8) % 2));
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mma_m16n8k16_bf16_f32(acc[n / 8], af, b0, acc[n / 8]);
      mma_m16n8k16_bf16_f32(acc[n / 8 + 1], af, b1, acc[n / 8 + 1]);
    }
  }
}

// acc [16, N] += A [16, K] · B [K, N] (row-major in shared memory), A given as fp32 C fragments
// of a 16 x K tile (p[K / 8][4]), rounded to bf16: the C layout of two n-tiles is the A layout.
template <int K, int N>
__device__ void mma_pb(float (&acc)[N / 8][4], const float (&p)[K / 8][4], const bf16* b, int ldb) {
  const int lane = threadIdx.x % 32;
  for (int kc = 0; kc < K / 16; ++kc) {
    const uint32_t af[4] = {pack_bf16x2(p[2 * kc][0], p[2 * kc][1]), pack_bf16x2(p[2 * kc][2], p[2 * kc][3]),
                            pack_bf16x2(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                            pack_bf16x2(p[2 * kc + 1][2], p[2 * kc + 1][3])};
    for (int n = 0; n < N; n += 16) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, b + (kc * 16 + lane % 16) * ldb + n + 8 * (lane / 16));
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mma_m16n8k16_bf16_f32(acc[n / 8], af, b0, acc[n / 8]);
      mma_m16n8k16_bf16_f32(acc[n / 8 + 1], af, b1, acc[n / 8 + 1]);
    }
  }
}

// acc [16, 16·kPairs] += A [16, K] · B [K, columns], both row-major in shared memory, over the
// column groups of RoPE group pairs pair0 .. pair0 + kPairs − 1 of a head of D columns
// (rope_pairs.h): acc[2s] holds group first, acc[2s + 1] group second of pair pair0 + s, so a
// lane has every value of its rows that a rotation pairs (store_rope_pair). The order of the sums
// does not depend on the grouping.
template <int D, int K, int kPairs>
__device__ void mma_ab_pairs(float (&acc)[2 * kPairs][4], const bf16* a, int lda, const bf16* b, int ldb, int pair0,
                             bool two_d) {
  const int lane = threadIdx.x % 32;
  for (int kk = 0; kk < K; kk += 16) {
    uint32_t af[4];
    ldmatrix_x4(af, a + (lane % 16) * lda + kk + 8 * (lane / 16));
    for (int s = 0; s < kPairs; ++s) {
      const RopeGroupPair groups = rope_group_pair(D, pair0 + s, two_d);
      uint32_t bf[4];  // lanes 0-15 address group first's 8 columns, lanes 16-31 group second's
      ldmatrix_x4_trans(bf, b + (kk + lane % 16) * ldb + 8 * (lane < 16 ? groups.first : groups.second));
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mma_m16n8k16_bf16_f32(acc[2 * s], af, b0, acc[2 * s]);
      mma_m16n8k16_bf16_f32(acc[2 * s + 1], af, b1, acc[2 * s + 1]);
    }
  }
}

// One row's values of a RoPE group pair, x1 (group first, columns 2·tq and 2·tq + 1 of it) and x2
// (group second, the same), stored as bf16 into the head's row `row`; when `rotate`, first rotated
// back by RoPE (rotate_pair with −sin: the backward) with the pair's (c, s) of load_lane_rope.
__device__ __forceinline__ void store_rope_pair(bf16* row, float x1_lo, float x1_hi, float x2_lo, float x2_hi,
                                                RopeGroupPair groups, bool rotate, float2 c, float2 s, int tq) {
  if (rotate) {
    const Rotated lo = rotate_pair(x1_lo, x2_lo, c.x, -s.x), hi = rotate_pair(x1_hi, x2_hi, c.y, -s.y);
    x1_lo = lo.lo, x2_lo = lo.hi, x1_hi = hi.lo, x2_hi = hi.hi;
  }
  store_bf16x2(row + 8 * groups.first + 2 * tq, x1_lo, x1_hi);
  store_bf16x2(row + 8 * groups.second + 2 * tq, x2_lo, x2_hi);
}

// Row gq + 8·half of a warp's C fragments acc [16, D] (acc[n]: columns 8n .. 8n + 7) times scale
// into `row`, through store_rope_pair: rotated back with `rope` (the row's load_rows_rope) when
// `rotate`. The groups of both pairings are compile-time indices (no local-memory array), chosen
// by two_d.
template <int D>
__device__ __forceinline__ void store_row_rotated(bf16* row, const float (&acc)[D / 8][4], int half, float scale,
                                                  bool rotate, const LaneRope<D / 16>& rope, bool two_d, int tq) {
  RECLM_UNROLL
  for (int p = 0; p < D / 16; ++p) {
    constexpr bool kOneD = false, kTwoD = true;
    const RopeGroupPair one = rope_group_pair(D, p, kOneD), two = rope_group_pair(D, p, kTwoD);
    const int e0 = 2 * half, e1 = 2 * half + 1;
    const float x1_lo = two_d ? acc[two.first][e0] : acc[one.first][e0];
    const float x1_hi = two_d ? acc[two.first][e1] : acc[one.first][e1];
    const float x2_lo = two_d ? acc[two.second][e0] : acc[one.second][e0];
    const float x2_hi = two_d ? acc[two.second][e1] : acc[one.second][e1];
    const RopeGroupPair groups{two_d ? two.first : one.first, two_d ? two.second : one.second,
                               two_d ? two.pair_index : one.pair_index};
    store_rope_pair(row, x1_lo * scale, x1_hi * scale, x2_lo * scale, x2_hi * scale, groups, rotate, rope.c[p],
                    rope.s[p], tq);
  }
}

// A lane's RoPE values (load_lane_rope: group pairs pair0 .. pair0 + kPairs − 1) for both rows it
// holds in a warp's 16-row fragment, tokens token0 + row0 + gq + 8·half, all loaded before the
// first is used. A row past last_row reads last_row's (valid memory; such rows are not stored).
// Nothing is loaded when the gradients are not rotated (rows.rope_table null).
template <int D, int kPairs>
__device__ __forceinline__ void load_rows_rope(LaneRope<kPairs> (&rope)[2], const AttentionQkvRows& rows,
                                               int64_t token0, int row0, int last_row, int pair0, int gq, int tq) {
  if (rows.rope_table == nullptr) return;
  RECLM_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int r = min(row0 + gq + 8 * half, last_row);
    rope[half] = load_lane_rope<D, kPairs>(rows.rope_table + (token0 + r) * D, pair0, tq);
  }
}

// delta [H, T] = rowsum(dout ∘ out) per (token, head) row. kDeltaLanes lanes per row (the power
// of two >= head_dim / 8, at least 4), each one 16-byte chunk of 8 values (lanes past
// head_dim / 8 add 0), so a warp reads 32 / kLanes whole rows, contiguous, in 16-byte loads (one
// warp a row in 2-byte loads left most of a warp's accesses small). Zeroes the dq_acc rows when
// it is not null. No barriers; every lane takes part in the shuffles.
template <int D>
constexpr int kDeltaLanes = D / 8 <= 4 ? 4 : (D / 8 <= 8 ? 8 : 16);
template <int D>
__global__ void attention_backward_delta_kernel(float* delta, float* dq_acc, const bf16* dout, const bf16* out,
                                                int64_t T, int H) {
  constexpr int kChunks = D / 8, kLanes = kDeltaLanes<D>;
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = thread / kLanes;  // t·H + h
  const int chunk = static_cast<int>(thread % kLanes);
  const bool in_rows = row < T * H;
  float sum = 0.0f;
  if (in_rows && chunk < kChunks) {
    const int64_t at = row * D + chunk * 8;
    const uint4 a = *reinterpret_cast<const uint4*>(dout + at);
    const uint4 b = *reinterpret_cast<const uint4*>(out + at);
    const unsigned wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
    for (int i = 0; i < 4; ++i) sum += bf16_lo(wa[i]) * bf16_lo(wb[i]) + bf16_hi(wa[i]) * bf16_hi(wb[i]);
    if (dq_acc != nullptr) {
      reinterpret_cast<float4*>(dq_acc + at)[0] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      reinterpret_cast<float4*>(dq_acc + at)[1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
  for (int offset = kLanes / 2; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (in_rows && chunk == 0) delta[(row % H) * T + row / H] = sum;
}

// How a dK/dV block treats dQ.
enum class DqMode {
  kSeparate,  // not at all: the dq kernel computes it (deterministic mode, segments past short_len)
  kAtomic,    // dQ += scale·dS·K by float atomics into the fp32 workspace (fast mode)
  kDirect,    // the block's key tile is the whole segment, so its dS·K is all of dQ: stored as bf16
};

// Rows of the dK/dV kernel's lse and D buffers (kQ queries a step): a whole-segment block's every
// step up to 4 query heads per kv head (4·kKeys queries), else two steps' (double-buffered).
template <int D, int kKeys, DqMode kMode>
constexpr int kLseRows = kMode == DqMode::kDirect ? 4 * kKeys : 2 * kDkdvQueryTile<D, kKeys>;

// The dQ product's split over a block's warps: kRowGroups groups of 16 query rows times kColBlocks
// blocks of kCols columns, kCols a multiple of 16 (mma_ab's step); the warps past
// kRowGroups · kColBlocks sit it out (head_dim 96 over 8 warps: 2 x 3 blocks of 32).
template <int D, int kQ, int kBlockWarps>
struct DqSplit {
  static constexpr int kRowGroups = kQ / 16;
  static constexpr int col_blocks() {
    for (int c = kBlockWarps / kRowGroups; c > 1; --c)
      if (D % c == 0 && (D / c) % 16 == 0) return c;
    return 1;
  }
  static constexpr int kColBlocks = col_blocks();
  static constexpr int kCols = D / kColBlocks;
  static_assert(kCols % 16 == 0 && kRowGroups * kColBlocks <= kBlockWarps, "dQ split");
};

// dK, dV of one key tile of kKeys keys of one kv head, 16 keys per warp; dQ as kMode says.
// Grid: x = kv_head · n_key_tiles + key tile, y = segment (kDirect: n_key_tiles 1, and only the
// segments of direct_lo + 1 to short_len <= kKeys tokens; the other modes skip the segments of up
// to short_len tokens, which kDirect launches did). Dynamic shared memory: see dkdv_shared_bytes.
// (Whole-segment blocks of 128 keys at head_dim <= 64: two per SM, see kDkdvQueryTile.)
template <int D, int kKeys, DqMode kMode>
__global__ void __launch_bounds__(2 * kKeys, kKeys == kSegmentKeys && D <= 64 ? 2 : 1)
    attention_backward_dkdv_kernel(bf16* dk, bf16* dv, float* dq_acc, bf16* dq, const bf16* dout, const bf16* q,
                                   const bf16* k, const bf16* v, const float* lse, const float* delta,
                                   const int32_t* cu_seqlens, const int32_t* prefix_lens, int n_key_tiles,
                                   int direct_lo, int short_len, int T, int H, int KV, int64_t q_stride,
                                   int64_t kv_stride, AttentionQkvRows rope, float scale) {
  constexpr int kBlockWarps = kKeys / 16, kBlockThreads = 32 * kBlockWarps;
  constexpr int kQ = kDkdvQueryTile<D, kKeys>, kLd = D + kPad, kDsLd = kKeys + kPad;
  RECLM_DYNAMIC_SHARED(bf16, smem);
  bf16* ks = smem;                                               // [kKeys][kLd]
  bf16* vs = ks + kKeys * kLd;                                   // [kKeys][kLd]
  bf16* qs_buf = vs + kKeys * kLd;                               // [2][kQ][kLd]: double-buffered Q tiles
  bf16* dos_buf = qs_buf + 2 * kQ * kLd;                         // [2][kQ][kLd]: and dO tiles
  bf16* dss = dos_buf + 2 * kQ * kLd;                            // [kQ][kDsLd] dS, query-major (dQ modes)
  constexpr int kLseBufRows = kLseRows<D, kKeys, kMode>;
  float* lse2_buf = reinterpret_cast<float*>(dss + kQ * kDsLd);  // [kLseBufRows] lse · log2 e, by step and query
  float* delta_buf = lse2_buf + kLseBufRows;                     // [kLseBufRows]
  const int g = blockIdx.x / n_key_tiles, j0 = (blockIdx.x % n_key_tiles) * kKeys;
  const SegmentInfo seg = segment_info(cu_seqlens, prefix_lens, blockIdx.y);
  // block-uniform, before any barrier: the whole block leaves
  if (j0 >= seg.len ||
      (kMode == DqMode::kDirect ? seg.len <= direct_lo || seg.len > short_len : seg.len <= short_len))
    return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  const int n_keys = min(kKeys, seg.len - j0), key_row0 = warp * 16;
  const int64_t o_stride = static_cast<int64_t>(H) * D;  // dout's rows
  const bool two_d = rope.rope_table != nullptr && rope.rope_two_d;
  copy_rows_async<D, kBlockThreads>(ks, k + static_cast<int64_t>(seg.begin + j0) * kv_stride + g * D, kv_stride,
                                    kKeys, n_keys);
  copy_rows_async<D, kBlockThreads>(vs, v + static_cast<int64_t>(seg.begin + j0) * kv_stride + g * D, kv_stride,
                                    kKeys, n_keys);
  float dk_acc[D / 8][4] = {}, dv_acc[D / 8][4] = {};
  const float scale_log2 = scale * kLog2e;
  const int group = H / KV;
  const int i_begin = j0 < seg.prefix ? 0 : j0 / kQ * kQ;  // earlier queries see no key of the tile
  // Steps: (query head of the group, query tile from i_begin); step `it` + 1 is fetched while
  // step `it` computes.
  const int n_query_tiles = (seg.len - i_begin + kQ - 1) / kQ, n_steps = group * n_query_tiles;
  // lse and D of step `it`'s query r into row `row` of lse2_buf / delta_buf (0 past the segment).
  auto load_lse_delta = [&](int it, int r, int row) {
    const int h = g * group + it / n_query_tiles, i0 = i_begin + (it % n_query_tiles) * kQ;
    const bool valid = i0 + r < seg.len;
    const int64_t at = static_cast<int64_t>(h) * T + seg.begin + i0 + r;
    lse2_buf[row] = valid ? lse[at] * kLog2e : 0.0f;
    delta_buf[row] = valid ? delta[at] : 0.0f;
  };
  // Whole-segment blocks take every step's lse and D at the start when they fit (all of them up to
  // 4 query heads per kv head), so no step waits for these loads: a thread's shared-memory store
  // waits for its load, and loaded per step they held up the loading warp, and at the next barrier
  // the block, once a step. Otherwise they come with each step's tiles, double-buffered.
  const bool preloaded = kMode == DqMode::kDirect && n_steps * kQ <= kLseBufRows;
  auto fetch = [&](int it) {
    const int h = g * group + it / n_query_tiles, i0 = i_begin + (it % n_query_tiles) * kQ;
    const int n_queries = min(kQ, seg.len - i0), buffer = it % 2;
    const int64_t token0 = seg.begin + i0;
    copy_rows_async<D, kBlockThreads>(qs_buf + buffer * kQ * kLd, q + token0 * q_stride + h * D, q_stride, kQ,
                                      n_queries);
    copy_rows_async<D, kBlockThreads>(dos_buf + buffer * kQ * kLd, dout + (token0 * H + h) * D, o_stride, kQ,
                                      n_queries);
    if (!preloaded)
      for (int r = threadIdx.x; r < kQ; r += kBlockThreads) load_lse_delta(it, r, buffer * kQ + r);
    simt::cp_async_commit();
  };
  fetch(0);  // n_steps >= 1: j0 < len, so the tile holding query j0 is a step
  if (preloaded)  // (behind the first tiles' copies; the loop's first barrier publishes them)
    for (int row = threadIdx.x; row < n_steps * kQ; row += kBlockThreads) load_lse_delta(row / kQ, row % kQ, row);
  for (int it = 0; it < n_steps; ++it) {
    const int h = g * group + it / n_query_tiles, i0 = i_begin + (it % n_query_tiles) * kQ;
    const int n_queries = min(kQ, seg.len - i0);
    const int64_t token0 = seg.begin + i0;
    const bf16* qs = qs_buf + (it % 2) * kQ * kLd;
    const bf16* dos = dos_buf + (it % 2) * kQ * kLd;
    const int lse_slot = preloaded ? it : it % 2;
    const float* lse2_s = lse2_buf + lse_slot * kQ;
    const float* delta_s = delta_buf + lse_slot * kQ;
    simt::cp_async_wait<0>();
    __syncthreads();  // step it's tiles are visible; every warp is done with step it − 1's buffers and dS
    if (it + 1 < n_steps) fetch(it + 1);
    // A warp whose 16 keys all lie past the segment, or all after the step's last query (and
    // outside the prefix), has P = dS = 0: it skips the products (a warp-uniform test) and only
    // writes its zero dS for the dQ product.
    const int warp_key0 = j0 + key_row0;
    const bool warp_sees = warp_key0 < seg.len && (warp_key0 <= i0 + n_queries - 1 || warp_key0 < seg.prefix);
    float s[kQ / 8][4] = {}, dp[kQ / 8][4] = {};  // Sᵀ, dPᵀ [16 keys, kQ queries]
    if (warp_sees) {
      mma_abt<D, kQ>(s, ks + key_row0 * kLd, kLd, qs, kLd);
      mma_abt<D, kQ>(dp, vs + key_row0 * kLd, kLd, dos, kLd);
      for (int nt = 0; nt < kQ / 8; ++nt)
        for (int e = 0; e < 4; ++e) {
          const int key = key_row0 + gq + 8 * (e / 2), query = nt * 8 + 2 * tq + e % 2;
          const float p =
              visible(seg, i0 + query, j0 + key) ? exp2f(s[nt][e] * scale_log2 - lse2_s[query]) : 0.0f;
          s[nt][e] = p;                                  // Pᵀ
          dp[nt][e] = p * (dp[nt][e] - delta_s[query]);  // dSᵀ
        }
      mma_pb<kQ, D>(dv_acc, s, dos, kLd);
      mma_pb<kQ, D>(dk_acc, dp, qs, kLd);
    }
    if constexpr (kMode != DqMode::kSeparate) {
      for (int nt = 0; nt < kQ / 8; ++nt)
        for (int e = 0; e < 4; ++e)
          dss[(nt * 8 + 2 * tq + e % 2) * kDsLd + key_row0 + gq + 8 * (e / 2)] = __float2bfloat16(dp[nt][e]);
      __syncthreads();
      // dQ tile [kQ, D] = dS [kQ, kKeys] · K [kKeys, D]: warp = (16-row group, column block); a
      // column block is kPairs RoPE group pairs, so each lane holds both values of a rotary pair.
      using Split = DqSplit<D, kQ, kBlockWarps>;
      constexpr int kPairs = Split::kCols / 16;
      if (warp < Split::kRowGroups * Split::kColBlocks) {
        const int row0 = (warp % Split::kRowGroups) * 16, pair0 = (warp / Split::kRowGroups) * kPairs;
        float dq_part[2 * kPairs][4] = {};
        mma_ab_pairs<D, kKeys, kPairs>(dq_part, dss + row0 * kDsLd, kDsLd, ks, kLd, pair0, two_d);
        LaneRope<kPairs> row_rope[2] = {};
        if constexpr (kMode == DqMode::kDirect)
          load_rows_rope<D, kPairs>(row_rope, rope, token0, row0, n_queries - 1, pair0, gq, tq);
        RECLM_UNROLL
        for (int half = 0; half < 2; ++half) {
          const int r = row0 + gq + 8 * half;
          if (r >= n_queries) continue;
          RECLM_UNROLL
          for (int sp = 0; sp < kPairs; ++sp) {
            const RopeGroupPair groups = rope_group_pair(D, pair0 + sp, two_d);
            const float x1_lo = dq_part[2 * sp][2 * half] * scale, x1_hi = dq_part[2 * sp][2 * half + 1] * scale;
            const float x2_lo = dq_part[2 * sp + 1][2 * half] * scale,
                        x2_hi = dq_part[2 * sp + 1][2 * half + 1] * scale;
            if constexpr (kMode == DqMode::kDirect) {
              store_rope_pair(dq + (token0 + r) * q_stride + h * D, x1_lo, x1_hi, x2_lo, x2_hi, groups,
                              rope.rope_table != nullptr, row_rope[half].c[sp], row_rope[half].s[sp], tq);
            } else {  // the fp32 accumulator is [T, H, D]; the convert kernel rotates and stores it
              float* acc_row = dq_acc + ((token0 + r) * H + h) * D;
              atomicAdd(&acc_row[8 * groups.first + 2 * tq], x1_lo);
              atomicAdd(&acc_row[8 * groups.first + 2 * tq + 1], x1_hi);
              atomicAdd(&acc_row[8 * groups.second + 2 * tq], x2_lo);
              atomicAdd(&acc_row[8 * groups.second + 2 * tq + 1], x2_hi);
            }
          }
        }
      }
    }
  }
  LaneRope<D / 16> key_rope[2] = {};
  load_rows_rope<D, D / 16>(key_rope, rope, seg.begin + j0, key_row0, n_keys - 1, 0, gq, tq);
  RECLM_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int r = key_row0 + gq + 8 * half;
    if (r >= n_keys) continue;
    const int64_t token = seg.begin + j0 + r;
    store_row_rotated<D>(dk + token * kv_stride + g * D, dk_acc, half, scale, rope.rope_table != nullptr,
                         key_rope[half], two_d, tq);
    bf16* const dv_row = dv + token * kv_stride + g * D;
    RECLM_UNROLL
    for (int nd = 0; nd < D / 8; ++nd)
      store_bf16x2(dv_row + nd * 8 + 2 * tq, dv_acc[nd][2 * half], dv_acc[nd][2 * half + 1]);
  }
}

// Deterministic dQ: one block per (query tile of kDqTile, head), key tiles in order; the segments
// of up to short_len tokens are left out (the whole-segment kernel did them).
// Grid: x = head · n_query_tiles + query tile, y = segment. Dynamic shared memory: 6 tiles [64][D + kPad].
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                                 const float* lse, const float* delta, const int32_t* cu_seqlens,
                                 const int32_t* prefix_lens, int n_query_tiles, int short_len, int T, int H, int KV,
                                 int64_t q_stride, int64_t kv_stride, AttentionQkvRows rope, float scale) {
  constexpr int kLd = D + kPad;
  RECLM_DYNAMIC_SHARED(bf16, smem);
  bf16* qs = smem;                            // [kDqTile][kLd]
  bf16* dos = qs + kDqTile * kLd;             // [kDqTile][kLd]
  bf16* ks_buf = dos + kDqTile * kLd;         // [2][kDqTile][kLd]: double-buffered K tiles
  bf16* vs_buf = ks_buf + 2 * kDqTile * kLd;  // [2][kDqTile][kLd]: and V tiles
  const int h = blockIdx.x / n_query_tiles, i0 = (blockIdx.x % n_query_tiles) * kDqTile;
  const SegmentInfo seg = segment_info(cu_seqlens, prefix_lens, blockIdx.y);
  if (i0 >= seg.len || seg.len <= short_len) return;  // block-uniform, before any barrier
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  const int g = h / (H / KV), n_queries = min(kDqTile, seg.len - i0);
  const int64_t token0 = seg.begin + i0;
  copy_rows_async<D>(qs, q + token0 * q_stride + h * D, q_stride, kDqTile, n_queries);
  copy_rows_async<D>(dos, dout + (token0 * H + h) * D, static_cast<int64_t>(H) * D, kDqTile, n_queries);
  auto fetch = [&](int j0) {  // key tile j0 into buffer (j0 / kDqTile) % 2
    const int n_keys = min(kDqTile, seg.len - j0), buffer = (j0 / kDqTile) % 2;
    const int64_t row0 = static_cast<int64_t>(seg.begin + j0) * kv_stride + g * D;
    copy_rows_async<D>(ks_buf + buffer * kDqTile * kLd, k + row0, kv_stride, kDqTile, n_keys);
    copy_rows_async<D>(vs_buf + buffer * kDqTile * kLd, v + row0, kv_stride, kDqTile, n_keys);
    simt::cp_async_commit();
  };
  fetch(0);                     // with the Q, dO tiles: one group
  float lse2[2], row_delta[2];  // this thread's rows warp·16 + gq and + 8
  for (int half = 0; half < 2; ++half) {
    const int r = warp * 16 + gq + 8 * half;
    lse2[half] = r < n_queries ? lse[static_cast<int64_t>(h) * T + token0 + r] * kLog2e : 0.0f;
    row_delta[half] = r < n_queries ? delta[static_cast<int64_t>(h) * T + token0 + r] : 0.0f;
  }
  const float scale_log2 = scale * kLog2e;
  const int j_end = min(seg.len, max(i0 + n_queries, seg.prefix));  // keys past it are hidden
  float dq_acc[D / 8][4] = {};
  for (int j0 = 0; j0 < j_end; j0 += kDqTile) {
    simt::cp_async_wait<0>();
    __syncthreads();  // tile j0 is visible; every warp is done with the previous tile's buffer
    if (j0 + kDqTile < j_end) fetch(j0 + kDqTile);
    const bf16* ks = ks_buf + (j0 / kDqTile) % 2 * kDqTile * kLd;
    const bf16* vs = vs_buf + (j0 / kDqTile) % 2 * kDqTile * kLd;
    float s[kDqTile / 8][4] = {}, dp[kDqTile / 8][4] = {};  // S, dP [16 queries, 64 keys]
    mma_abt<D, kDqTile>(s, qs + warp * 16 * kLd, kLd, ks, kLd);
    mma_abt<D, kDqTile>(dp, dos + warp * 16 * kLd, kLd, vs, kLd);
    for (int nt = 0; nt < kDqTile / 8; ++nt)
      for (int e = 0; e < 4; ++e) {
        const int query = i0 + warp * 16 + gq + 8 * (e / 2), key = j0 + nt * 8 + 2 * tq + e % 2;
        const float p = visible(seg, query, key) ? exp2f(s[nt][e] * scale_log2 - lse2[e / 2]) : 0.0f;
        s[nt][e] = p * (dp[nt][e] - row_delta[e / 2]);  // dS
      }
    mma_pb<kDqTile, D>(dq_acc, s, ks, kLd);
  }
  const bool two_d = rope.rope_table != nullptr && rope.rope_two_d;
  LaneRope<D / 16> row_rope[2] = {};
  load_rows_rope<D, D / 16>(row_rope, rope, token0, warp * 16, n_queries - 1, 0, gq, tq);
  RECLM_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int r = warp * 16 + gq + 8 * half;
    if (r >= n_queries) continue;
    store_row_rotated<D>(dq + (token0 + r) * q_stride + h * D, dq_acc, half, scale, rope.rope_table != nullptr,
                         row_rope[half], two_d, tq);
  }
}

// Fast mode's dq: the fp32 accumulator [T, H, D] as bf16 rows q_stride apart, each rotary pair
// rotated back when rope.rope_table is set. One thread per pair (j of D/2 per (token, head) row).
__global__ void attention_backward_dq_convert_kernel(bf16* dq, const float* dq_acc, int64_t T, int H, int D,
                                                     int64_t q_stride, AttentionQkvRows rope) {
  const int block_dim = rope.rope_table != nullptr && rope.rope_two_d ? D / 2 : D, half = block_dim / 2;
  const int64_t n = T * H * (D / 2), stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t row = i / (D / 2), token = row / H;
    const int j = static_cast<int>(i % (D / 2)), col = j / half * block_dim + j % half;
    float x1 = dq_acc[row * D + col], x2 = dq_acc[row * D + col + half];
    if (rope.rope_table != nullptr) {
      const float* table_row = rope.rope_table + token * D;
      const Rotated r = rotate_pair(x1, x2, table_row[j], -table_row[D / 2 + j]);
      x1 = r.lo, x2 = r.hi;
    }
    bf16* const out = dq + token * q_stride + (row % H) * D + col;
    out[0] = __float2bfloat16(x1);
    out[half] = __float2bfloat16(x2);
  }
}

template <int D, int kKeys, DqMode kMode>
constexpr size_t dkdv_shared_bytes() {
  constexpr int kQ = kDkdvQueryTile<D, kKeys>;
  return sizeof(bf16) * ((2 * kKeys + 4 * kQ) * (D + kPad) + kQ * (kKeys + kPad)) +
         2 * sizeof(float) * kLseRows<D, kKeys, kMode>;
}
template <int D>
constexpr size_t dq_shared_bytes() {
  return sizeof(bf16) * 6 * kDqTile * (D + kPad);
}

constexpr size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }
size_t delta_bytes(const ops::AttentionShape& shape) {
  return align_up(sizeof(float) * static_cast<size_t>(shape.n_heads * shape.n_tokens));
}

struct Launch {
  bf16 *dq, *dk, *dv;
  const bf16 *dout, *out, *q, *k, *v;
  const float* lse;
  float* delta;
  float* dq_acc;
  const int32_t *cu_seqlens, *prefix_lens;
  int n_segments, max_seqlen, T, H, KV;
  float scale;
  int segment_block_max_len;
  int64_t q_stride, kv_stride;  // of q, dq and of k, v, dk, dv
  AttentionQkvRows rope;
};

// One launch of the dK/dV kernel in a mode over key tiles of kKeys (direct_lo: kDirect's).
template <int D, int kKeys, DqMode kMode>
cudaError_t launch_dkdv(const Launch& a, int n_key_tiles, int direct_lo, int short_len, cudaStream_t stream) {
  constexpr int kShared = static_cast<int>(dkdv_shared_bytes<D, kKeys, kMode>());
  const auto kernel = attention_backward_dkdv_kernel<D, kKeys, kMode>;
  const cudaError_t err = simt::set_max_dynamic_shared_bytes(kernel, kShared);
  if (err != cudaSuccess) return err;
  return simt::launch(kernel, dim3(static_cast<unsigned>(n_key_tiles * a.KV), static_cast<unsigned>(a.n_segments)),
                      dim3(2 * kKeys), kShared, stream, a.dk, a.dv, a.dq_acc, a.dq, a.dout, a.q, a.k, a.v, a.lse,
                      a.delta, a.cu_seqlens, a.prefix_lens, n_key_tiles, direct_lo, short_len, a.T, a.H, a.KV,
                      a.q_stride, a.kv_stride, a.rope, a.scale);
}

// Deterministic mode: the segments of up to a.segment_block_max_len tokens (a recommendation
// batch's short histories, most of its segments) in one block per (segment, kv head) that
// computes dK, dV and, holding all the segment's keys, dQ (128-key blocks, and past 128 tokens
// 256-key ones); the longer ones by key tiles plus the dq kernel.
template <int D>
cudaError_t launch_gradients(const Launch& a, bool deterministic, cudaStream_t stream) {
  constexpr int kDeltaThreads = 256;
  const int64_t delta_threads = static_cast<int64_t>(a.T) * a.H * kDeltaLanes<D>;
  const cudaError_t delta_err =
      simt::launch(attention_backward_delta_kernel<D>,
                   dim3(static_cast<unsigned>((delta_threads + kDeltaThreads - 1) / kDeltaThreads)),
                   dim3(kDeltaThreads), 0, stream, a.delta, a.dq_acc, a.dout, a.out, static_cast<int64_t>(a.T), a.H);
  if (delta_err != cudaSuccess) return delta_err;
  const int n_key_tiles = (a.max_seqlen + kKeyTile - 1) / kKeyTile;
  if (deterministic) {
    const int short_len = a.segment_block_max_len;
    cudaError_t err = cudaSuccess;
    if (short_len > 0)
      err = launch_dkdv<D, kSegmentKeys, DqMode::kDirect>(a, 1, 0, std::min(short_len, kSegmentKeys), stream);
    if constexpr (D <= 64) {  // (attention_backward admits short_len past kSegmentKeys only here)
      if (err == cudaSuccess && short_len > kSegmentKeys && a.max_seqlen > kSegmentKeys)
        err = launch_dkdv<D, kLongSegmentKeys, DqMode::kDirect>(a, 1, kSegmentKeys, short_len, stream);
    }
    if (err != cudaSuccess || a.max_seqlen <= short_len) return err;
    err = launch_dkdv<D, kKeyTile, DqMode::kSeparate>(a, n_key_tiles, 0, short_len, stream);
    if (err != cudaSuccess) return err;
    const int n_query_tiles = (a.max_seqlen + kDqTile - 1) / kDqTile;
    constexpr int kDqShared = static_cast<int>(dq_shared_bytes<D>());
    err = simt::set_max_dynamic_shared_bytes(attention_backward_dq_kernel<D>, kDqShared);
    if (err != cudaSuccess) return err;
    return simt::launch(attention_backward_dq_kernel<D>,
                        dim3(static_cast<unsigned>(n_query_tiles * a.H), static_cast<unsigned>(a.n_segments)),
                        dim3(kThreads), kDqShared, stream, a.dq, a.dout, a.q, a.k, a.v, a.lse, a.delta, a.cu_seqlens,
                        a.prefix_lens, n_query_tiles, short_len, a.T, a.H, a.KV, a.q_stride, a.kv_stride, a.rope,
                        a.scale);
  }
  cudaError_t err = launch_dkdv<D, kKeyTile, DqMode::kAtomic>(a, n_key_tiles, 0, 0, stream);
  if (err != cudaSuccess) return err;
  const int64_t pairs = static_cast<int64_t>(a.T) * a.H * (D / 2);
  constexpr int kConvertThreads = 256;
  return simt::launch(attention_backward_dq_convert_kernel, dim3(grid_stride_blocks(pairs, kConvertThreads)),
                      dim3(kConvertThreads), 0, stream, a.dq, a.dq_acc, static_cast<int64_t>(a.T), a.H, D,
                      a.q_stride, a.rope);
}

}  // namespace

size_t attention_backward_workspace_bytes(const ops::AttentionShape& shape, int64_t n_segments, int64_t max_seqlen,
                                          bool deterministic) {
  (void)n_segments;
  (void)max_seqlen;
  const size_t dq_acc =
      deterministic ? 0 : sizeof(float) * static_cast<size_t>(shape.n_tokens * shape.n_heads * shape.head_dim);
  return delta_bytes(shape) + align_up(dq_acc);
}

cudaError_t attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                               const bf16* v, const bf16* out, const float* lse, const int32_t* cu_seqlens,
                               const int32_t* prefix_lens, int64_t n_segments, int64_t max_seqlen,
                               const ops::AttentionShape& shape, bool deterministic, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream, int64_t segment_block_max_len,
                               const AttentionQkvRows& rows) {
  const int64_t D = shape.head_dim;
  if (!attention_supports_head_dim(D) || shape.n_heads <= 0 || shape.n_kv_heads <= 0 ||
      shape.n_heads % shape.n_kv_heads != 0 ||
      !attention_qkv_row_stride_ok(rows.row_stride, shape.n_heads, shape.n_kv_heads, D) ||
      shape.n_tokens < 0 || n_segments < 0 || n_segments > 65535 || max_seqlen < 0 || max_seqlen > (1 << 30) ||
      shape.n_tokens * shape.n_heads > (int64_t{1} << 31) ||
      workspace_bytes < attention_backward_workspace_bytes(shape, n_segments, max_seqlen, deterministic) ||
      segment_block_max_len < 0 ||
      segment_block_max_len > (D <= 64 ? kAttentionLongSegmentBlockMaxLen : kAttentionSegmentBlockMaxLen))
    return cudaErrorInvalidValue;
  if (shape.n_tokens == 0 || n_segments == 0 || max_seqlen == 0) return cudaSuccess;
  float* delta = static_cast<float*>(workspace);
  float* dq_acc =
      deterministic ? nullptr : reinterpret_cast<float*>(static_cast<char*>(workspace) + delta_bytes(shape));
  const Launch a{dq,
                 dk,
                 dv,
                 dout,
                 out,
                 q,
                 k,
                 v,
                 lse,
                 delta,
                 dq_acc,
                 cu_seqlens,
                 prefix_lens,
                 static_cast<int>(n_segments),
                 static_cast<int>(max_seqlen),
                 static_cast<int>(shape.n_tokens),
                 static_cast<int>(shape.n_heads),
                 static_cast<int>(shape.n_kv_heads),
                 shape.scale,
                 static_cast<int>(segment_block_max_len),
                 rows.row_stride != 0 ? rows.row_stride : shape.n_heads * D,
                 rows.row_stride != 0 ? rows.row_stride : shape.n_kv_heads * D,
                 rows};
  switch (D) {  // (attention_head_dims.h)
    case 32: return launch_gradients<32>(a, deterministic, stream);
    case 64: return launch_gradients<64>(a, deterministic, stream);
    case 96: return launch_gradients<96>(a, deterministic, stream);
    default: return launch_gradients<128>(a, deterministic, stream);
  }
}

}  // namespace reclm::cuda

#undef RECLM_UNROLL
