// Flash-attention forward (FlashAttention-2 style) over packed variable-length segments, bf16
// tensor cores with fp32 accumulation. Semantics: kernels/cuda/attention_forward.h, ops.h.
//
// Work: one block per (segment, query tile of 64 rows, group of kHeads query heads that share a
// kv head: 2 when the grouped-query ratio is even, else 1), 4 warps per head; each warp owns 16
// query rows of one head. The K and V tiles in shared memory serve all the block's heads, so
// the short segments of recommendation batches (a query tile or two each, where a block's time
// is mostly its loads' latency) do twice the work per load and per block. Each warp loads its
// Q rows from global memory straight into registers as mma A fragments, at the same time as the
// first K and V tiles (no shared-memory staging of Q that the first V tile would wait for). The
// block then walks the key tiles of 64 keys of its segment that hold a visible key — tiles past
// max(query tile end, prefix) are skipped — and for each tile:
//   S = Q·Kᵀ            mma.m16n8k16 (K rows via ldmatrix, non-transposed = the "col" operand)
//   S *= scale·log2(e); masked (j >= segment length, or j > i and j >= prefix) → −inf
//   online softmax per row: m' = max(m, rowmax S); O *= 2^(m − m'), l *= 2^(m − m');
//   P = 2^(S − m'), l += rowsum P
//   O += P·V            P converted to bf16 in registers (the S accumulator layout is the A
//                       fragment layout), V via ldmatrix .trans
// and finally writes out = O / l (bf16) and lse = ln 2 · (m + log2 l) (fp32, natural log).
// On the diagonal tile each warp skips the 8-key n-tiles (and 16-key P·V steps) past its own
// last visible key. Staging: K and V tiles each have one shared buffer filled by cp.async in
// separate groups (FlashAttention-2's sm80 order), so the next K tile loads while P·V runs and
// the next V tile loads while Q·Kᵀ and the softmax run. K/V rows past the segment end are
// zero-filled and Q rows past it are zeros (all masked), so no token of another segment or past
// T is read.
// RoPE (AttentionQkvRows::rope_table): each warp rotates its Q fragments in registers as they
// arrive (a lane holds both values of every rotary pair of its rows, rope_pairs.h) and writes
// them to q_rotated for the backward: the layer's q is read once and written once, instead of
// a RoPE pass reading and writing it before the attention reads it again.
//
// FLOPs per query head and visible (i, j) pair: 4·head_dim (2 for Q·Kᵀ, 2 for P·V); tiles on
// the diagonal are computed in 16 x 8 pieces, so a causal segment costs about L²/2 + L·16 pairs.
// Bytes from DRAM (minimum): q and out 2·head_dim each per token and query head, k and v
// 2·head_dim each per token and kv head, lse 4 per token and query head. K/V tiles are re-read
// from L2 by every query tile and block of kHeads query heads: 4·head_dim bytes per visible key
// per 64 queries and kHeads heads.
#include "kernels/cuda/attention_forward.h"

#include <cstring>

#include "kernels/cuda/attention_head_dims.h"
#include "kernels/cuda/bf16_round.h"
#include "kernels/cuda/rope_pairs.h"
#include "kernels/simt/async_copy.h"
#include "kernels/simt/launch.h"
#include "kernels/simt/tensor_core.h"

namespace reclm::cuda {
namespace {

using simt::cp_async_16_zfill;
using simt::cp_async_commit;
using simt::cp_async_wait;
using simt::ldmatrix_x4;
using simt::ldmatrix_x4_trans;
using simt::mma_m16n8k16_bf16_f32;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Tile shapes for one head dim and kHeads query heads per block.
template <int kHeadDim, int kHeadsPerBlock>
struct ForwardTiles {
  static constexpr int kD = kHeadDim;
  static constexpr int kHeads = kHeadsPerBlock;
  static constexpr int kWarpsPerHead = 4;
  static constexpr int kWarps = kWarpsPerHead * kHeads;
  static constexpr int kThreads = 32 * kWarps;
  // Blocks per SM the registers must allow: two for the 256-thread blocks of D <= 64 (at most 128
  // registers: 16 warps per SM; without the bound the RoPE prologue took ptxas to 130, one block;
  // with it ptxas spills 20 bytes, to measure), else no bound: ptxas gives ~206 registers for
  // D 128 (2 blocks/SM) and ~160 for the 128-thread D 64 blocks (3), spill-free; capping D 128 at
  // 168 (3 blocks/SM) spilled.
  static constexpr int kMinBlocks = kHeads == 2 && kD <= 64 ? 2 : 1;
  static constexpr int kBlockQ = 16 * kWarpsPerHead;  // query rows per block and head (16 per warp)
  static constexpr int kBlockK = 64;           // keys per tile
  // Shared row stride in elements: +16 bytes moves each row 4 banks, so the 8 row addresses of
  // an ldmatrix 8x8 matrix hit all 32 banks once.
  static constexpr int kLd = kD + 8;
  static constexpr int kChunksPerRow = kD / 8;    // 16-byte cp.async chunks per row
  static constexpr int kDSteps = kD / 16;         // k-steps of Q·Kᵀ
  static constexpr int kDTiles = kD / 8;          // 8-column n-tiles of O
  static constexpr int kKeyTiles = kBlockK / 8;   // 8-key n-tiles of S
  static constexpr int kKeySteps = kBlockK / 16;  // k-steps of P·V
  static_assert(kDSteps % 2 == 0, "K fragments are loaded two k-steps at a time");
};

// Two floats as a bf16x2 register (lo in the low half), the mma A/B element order.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &pair, sizeof(bits));
  return bits;
}

// Queues cp.async copies of tile rows [0, 64) = tokens first_row + [0, 64) of one head of a
// [tokens, heads, D] tensor (src points at token 0 of the segment, this head; rows row_stride
// elements apart). Rows >= valid_rows are zero-filled without reading global memory.
template <class Tiles>
__device__ __forceinline__ void load_tile_async(__nv_bfloat16* tile, const __nv_bfloat16* src, int64_t row_stride,
                                                int first_row, int valid_rows) {
  for (int c = static_cast<int>(threadIdx.x); c < Tiles::kBlockK * Tiles::kChunksPerRow; c += Tiles::kThreads) {
    const int row = c / Tiles::kChunksPerRow, col = (c % Tiles::kChunksPerRow) * 8;
    const bool valid = row < valid_rows;
    const __nv_bfloat16* from = valid ? src + static_cast<int64_t>(first_row + row) * row_stride + col : src;
    cp_async_16_zfill(tile + row * Tiles::kLd + col, from, valid ? 16 : 0);
  }
}

// RoPE on a warp's Q fragments (q_frag[ds]: rows g (words 0, 2) and g + 8 (words 1, 3), columns
// 16·ds + 2t, +1 (words 0, 1) and 8 more (words 2, 3)): an 8-column group G is word 2·(G % 2) + r
// of q_frag[G / 2], so both groups of a rotary pair are in the lane (rope_pairs.h). rope[r]: the
// lane's (cos, sin) of row g + 8·r's token. The rotation is rope_qk_forward_bf16's: widened
// exactly, rotate_pair, rounded to nearest even.
template <int D, bool kTwoD>
__device__ __forceinline__ void rotate_q_fragments(uint32_t (&q_frag)[D / 16][4], const LaneRope<D / 16> (&rope)[2]) {
  RECLM_UNROLL
  for (int p = 0; p < D / 16; ++p) {
    const RopeGroupPair groups = rope_group_pair(D, p, kTwoD);
    RECLM_UNROLL
    for (int r = 0; r < 2; ++r) {
      uint32_t& x1 = q_frag[groups.first / 2][2 * (groups.first % 2) + r];
      uint32_t& x2 = q_frag[groups.second / 2][2 * (groups.second % 2) + r];
      const float2 c = rope[r].c[p], s = rope[r].s[p];
      const Rotated lo = rotate_pair(bf16_lo(x1), bf16_lo(x2), c.x, s.x);
      const Rotated hi = rotate_pair(bf16_hi(x1), bf16_hi(x2), c.y, s.y);
      x1 = pack2_bf16(lo.lo, hi.lo);
      x2 = pack2_bf16(lo.hi, hi.hi);
    }
  }
}

// grid (n_heads / kHeads) · n_segments · n_q_tiles blocks of Tiles::kThreads threads.
// scale_log2 = scale · log2(e).
template <int kHeadDim, int kHeads>
__global__ void __launch_bounds__(ForwardTiles<kHeadDim, kHeads>::kThreads,
                                  ForwardTiles<kHeadDim, kHeads>::kMinBlocks)
    attention_forward_kernel(__nv_bfloat16* __restrict__ out, float* __restrict__ lse, const __nv_bfloat16* q,
                             const __nv_bfloat16* k, const __nv_bfloat16* v, const int32_t* cu_seqlens,
                             const int32_t* prefix_lens, int n_segments, int n_q_tiles, int n_heads, int n_kv_heads,
                             int64_t n_tokens, int64_t q_stride, int64_t kv_stride, const float* rope_table,
                             bool rope_two_d, __nv_bfloat16* q_rotated, float scale_log2) {
  using Tiles = ForwardTiles<kHeadDim, kHeads>;
  constexpr int D = Tiles::kD;
  RECLM_SHARED(__nv_bfloat16, k_tile, [Tiles::kBlockK * Tiles::kLd]);
  RECLM_SHARED(__nv_bfloat16, v_tile, [Tiles::kBlockK * Tiles::kLd]);

  // Block order: head group fastest (the groups of a kv group read the same K/V tiles from L2 at
  // about the same time), then segment, then query tile from the highest: under a causal mask
  // those have the most key tiles, and the short ones fill the tail of the grid.
  const int n_head_groups = n_heads / kHeads;
  const int seg = static_cast<int>(blockIdx.x) / n_head_groups % n_segments;
  const int q_tile = n_q_tiles - 1 - static_cast<int>(blockIdx.x) / n_head_groups / n_segments;
  const int seg_begin = cu_seqlens[seg];
  const int seg_len = cu_seqlens[seg + 1] - seg_begin;
  const int q0 = q_tile * Tiles::kBlockQ;
  if (q0 >= seg_len) return;  // the whole block leaves together, before any barrier
  const int prefix = prefix_lens != nullptr ? min(prefix_lens[seg], seg_len) : 0;
  const int key_end = min(seg_len, max(q0 + Tiles::kBlockQ, prefix));  // keys past it are invisible
  const int n_key_tiles = (key_end + Tiles::kBlockK - 1) / Tiles::kBlockK;

  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32 % Tiles::kWarpsPerHead;  // its 16 rows in the tile
  const int head_group = static_cast<int>(blockIdx.x) % n_head_groups;
  const int head = head_group * kHeads + static_cast<int>(threadIdx.x) / 32 / Tiles::kWarpsPerHead;  // the warp's
  const int g = lane / 4, t = lane % 4;  // mma fragment row group and column pair
  const int kv_head = head / (n_heads / n_kv_heads);  // the same for all the block's heads
  const __nv_bfloat16* q_seg = q + seg_begin * q_stride + head * D;
  const __nv_bfloat16* k_seg = k + seg_begin * kv_stride + kv_head * D;
  const __nv_bfloat16* v_seg = v + seg_begin * kv_stride + kv_head * D;

  // Groups in commit order: K0, V0, then per tile K(next), V(next); every thread commits the same
  // number of groups (empty ones at the end), so wait<1> always means "all but the latest group".
  load_tile_async<Tiles>(k_tile, k_seg, kv_stride, 0, seg_len);
  cp_async_commit();
  load_tile_async<Tiles>(v_tile, v_seg, kv_stride, 0, seg_len);
  cp_async_commit();
  // The warp's 16 Q rows as A fragments, straight from global memory while K0 and V0 load:
  // a[0] row g, columns 2t, 2t + 1 of the k-step; a[1] row g + 8; a[2], a[3] the same 8 columns
  // on. Rows past the segment are zeros (masked, never written).
  uint32_t q_frag[Tiles::kDSteps][4];
  {
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    const __nv_bfloat16* q0_row = q_seg + static_cast<int64_t>(r0) * q_stride + 2 * t;
    const __nv_bfloat16* q1_row = q_seg + static_cast<int64_t>(r1) * q_stride + 2 * t;
    RECLM_UNROLL
    for (int ds = 0; ds < Tiles::kDSteps; ++ds) {
      q_frag[ds][0] = r0 < seg_len ? *reinterpret_cast<const uint32_t*>(q0_row + ds * 16) : 0u;
      q_frag[ds][1] = r1 < seg_len ? *reinterpret_cast<const uint32_t*>(q1_row + ds * 16) : 0u;
      q_frag[ds][2] = r0 < seg_len ? *reinterpret_cast<const uint32_t*>(q0_row + ds * 16 + 8) : 0u;
      q_frag[ds][3] = r1 < seg_len ? *reinterpret_cast<const uint32_t*>(q1_row + ds * 16 + 8) : 0u;
    }
    // RoPE (rope_table): the (cos, sin) of both rows, all loaded right after the Q rows so that
    // their latencies overlap (written before the Q loads, they made ptxas spill more in the main
    // loop). A row past the segment reads the segment's last table row (valid memory); its zeros
    // are rotated to zeros and never stored.
    LaneRope<D / 16> rope[2] = {};
    if (rope_table != nullptr) {
      RECLM_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int row = min(r == 0 ? r0 : r1, seg_len - 1);
        rope[r] = load_lane_rope<D, D / 16>(rope_table + (seg_begin + row) * int64_t{D}, 0, t);
      }
    }
    // RoPE: rotated here, then written to q_rotated for the backward
    if (rope_table != nullptr) {
      if (rope_two_d) {
        rotate_q_fragments<D, true>(q_frag, rope);
      } else {
        rotate_q_fragments<D, false>(q_frag, rope);
      }
      RECLM_UNROLL
      for (int r = 0; r < 2; ++r) {
        if ((r == 0 ? r0 : r1) >= seg_len) continue;
        __nv_bfloat16* const row = q_rotated + (seg_begin + (r == 0 ? r0 : r1)) * q_stride + head * D + 2 * t;
        RECLM_UNROLL
        for (int ds = 0; ds < Tiles::kDSteps; ++ds) {
          *reinterpret_cast<uint32_t*>(row + ds * 16) = q_frag[ds][r];
          *reinterpret_cast<uint32_t*>(row + ds * 16 + 8) = q_frag[ds][2 + r];
        }
      }
    }
  }

  float o[Tiles::kDTiles][4];
  RECLM_UNROLL
  for (int dt = 0; dt < Tiles::kDTiles; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  // Rows g and g + 8 of the warp: running max (log2 units), and this lane's part of the sum.
  const float kNegInf = -INFINITY;
  float m[2] = {kNegInf, kNegInf}, l[2] = {0.0f, 0.0f};
  const int row_of[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};  // segment-local query

  for (int kt = 0; kt < n_key_tiles; ++kt) {
    const int j0 = kt * Tiles::kBlockK;
    cp_async_wait<1>();  // K tile kt landed (V tile kt may still be in flight)
    __syncthreads();

    // S[16 x 64] = Q · Kᵀ. ldmatrix_x4 (not transposed) of key rows nt*8.. at columns
    // ds*16 + [0, 32) gives the B fragments of k-steps ds and ds + 1.
    // On the diagonal tile, keys past warp_key_last (tile-local) are invisible to all 16 rows of
    // this warp: their n-tiles of S and k-steps of P·V are skipped (a warp-uniform branch). A warp
    // whose rows all lie past the segment (the last query tile of a short history: 28 of 64 rows
    // hold tokens in a 92-token one) computes nothing: its rows are never written.
    const int warp_key_last = q0 + warp * 16 >= seg_len ? -1 : max(q0 + warp * 16 + 15, prefix - 1) - j0;
    float s[Tiles::kKeyTiles][4];
    RECLM_UNROLL
    for (int nt = 0; nt < Tiles::kKeyTiles; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
    RECLM_UNROLL
    for (int ds = 0; ds < Tiles::kDSteps; ds += 2) {
      RECLM_UNROLL
      for (int nt = 0; nt < Tiles::kKeyTiles; ++nt) {
        if (nt * 8 > warp_key_last) continue;
        uint32_t kf[4];
        ldmatrix_x4(kf, &k_tile[(nt * 8 + lane % 8) * Tiles::kLd + ds * 16 + 8 * (lane / 8)]);
        const uint32_t b0[2] = {kf[0], kf[1]}, b1[2] = {kf[2], kf[3]};
        mma_m16n8k16_bf16_f32(s[nt], q_frag[ds], b0, s[nt]);
        mma_m16n8k16_bf16_f32(s[nt], q_frag[ds + 1], b1, s[nt]);
      }
    }

    // Scale, mask, and the online softmax. Element e of s[nt] is row g + 8·(e / 2), key
    // j0 + nt*8 + 2t + e % 2.
    // A tile inside the segment and wholly below the block's diagonal or inside the prefix
    // needs no mask (block-uniform test).
    const int j_last = j0 + Tiles::kBlockK - 1;
    const bool all_visible = j_last < seg_len && (j_last <= q0 || j_last < prefix);
    float tile_max[2] = {kNegInf, kNegInf};
    RECLM_UNROLL
    for (int nt = 0; nt < Tiles::kKeyTiles; ++nt) {
      RECLM_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + nt * 8 + 2 * t + e % 2, i = row_of[e / 2];
        const bool visible = all_visible || (j < seg_len && (j <= i || j < prefix));
        s[nt][e] = visible ? s[nt][e] * scale_log2 : kNegInf;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
      }
    }
    float m_ref[2];
    RECLM_UNROLL
    for (int r = 0; r < 2; ++r) {
      // The four lanes of a quad hold one row.
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float m_new = fmaxf(m[r], tile_max[r]);
      // A row that has seen no visible key yet keeps m = −inf; exponents relative to 0 then
      // give 2^−inf = 0 instead of NaN.
      m_ref[r] = m_new == kNegInf ? 0.0f : m_new;
      const float correction = exp2f(m[r] - m_ref[r]);
      m[r] = m_new;
      l[r] *= correction;
      RECLM_UNROLL
      for (int dt = 0; dt < Tiles::kDTiles; ++dt) {
        o[dt][2 * r] *= correction;
        o[dt][2 * r + 1] *= correction;
      }
    }
    RECLM_UNROLL
    for (int nt = 0; nt < Tiles::kKeyTiles; ++nt) {
      RECLM_UNROLL
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - m_ref[e / 2]);
        l[e / 2] += s[nt][e];
      }
    }

    __syncthreads();  // every warp is done with k_tile
    if (kt + 1 < n_key_tiles) load_tile_async<Tiles>(k_tile, k_seg, kv_stride, j0 + Tiles::kBlockK,
                                                     seg_len - j0 - Tiles::kBlockK);
    cp_async_commit();   // possibly empty: keeps the group count uniform
    cp_async_wait<1>();  // V tile kt landed
    __syncthreads();

    // O[16 x D] += P[16 x 64] · V[64 x D]. The S accumulators of key n-tiles 2kk, 2kk + 1 are
    // exactly the A fragment of k-step kk; ldmatrix_x4_trans of key rows kk*16 + [0, 16) at
    // columns dt*8 + [0, 16) gives the B fragments of n-tiles dt and dt + 1.
    RECLM_UNROLL
    for (int kk = 0; kk < Tiles::kKeySteps; ++kk) {
      if (kk * 16 > warp_key_last) continue;  // P is 0 there
      const uint32_t a[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const int row = kk * 16 + lane % 8 + 8 * ((lane / 8) % 2);
      RECLM_UNROLL
      for (int dt = 0; dt < Tiles::kDTiles; dt += 2) {
        uint32_t vf[4];
        ldmatrix_x4_trans(vf, &v_tile[row * Tiles::kLd + dt * 8 + 8 * (lane / 16)]);
        const uint32_t b0[2] = {vf[0], vf[1]}, b1[2] = {vf[2], vf[3]};
        mma_m16n8k16_bf16_f32(o[dt], a, b0, o[dt]);
        mma_m16n8k16_bf16_f32(o[dt + 1], a, b1, o[dt + 1]);
      }
    }

    __syncthreads();  // every warp is done with v_tile
    if (kt + 1 < n_key_tiles) load_tile_async<Tiles>(v_tile, v_seg, kv_stride, j0 + Tiles::kBlockK,
                                                     seg_len - j0 - Tiles::kBlockK);
    cp_async_commit();
  }

  // out = O / l, lse = ln 2 · (m + log2 l). Every row has key 0 visible, so l >= 1.
  RECLM_UNROLL
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  RECLM_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int i = row_of[r];
    if (i >= seg_len) continue;
    const float inv_l = 1.0f / l[r];
    __nv_bfloat16* out_row = out + (static_cast<int64_t>(seg_begin + i) * n_heads + head) * D;
    RECLM_UNROLL
    for (int dt = 0; dt < Tiles::kDTiles; ++dt) {
      *reinterpret_cast<__nv_bfloat162*>(out_row + dt * 8 + 2 * t) =
          __floats2bfloat162_rn(o[dt][2 * r] * inv_l, o[dt][2 * r + 1] * inv_l);
    }
    if (t == 0) lse[head * n_tokens + seg_begin + i] = kLn2 * (m[r] + log2f(l[r]));
  }
}

template <int kHeadDim, int kHeads>
cudaError_t launch_forward_heads(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                 const __nv_bfloat16* v, const int32_t* cu_seqlens, const int32_t* prefix_lens,
                                 int64_t n_segments, int64_t max_seqlen, const ops::AttentionShape& shape,
                                 const AttentionQkvRows& rows, cudaStream_t stream) {
  using Tiles = ForwardTiles<kHeadDim, kHeads>;
  const int64_t q_stride = rows.row_stride != 0 ? rows.row_stride : shape.n_heads * kHeadDim;
  const int64_t kv_stride = rows.row_stride != 0 ? rows.row_stride : shape.n_kv_heads * kHeadDim;
  const int64_t n_q_tiles = (max_seqlen + Tiles::kBlockQ - 1) / Tiles::kBlockQ;
  const int64_t n_blocks = n_q_tiles * n_segments * (shape.n_heads / kHeads);
  if (n_blocks > 0x7fffffff) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(n_blocks));
  return simt::launch(attention_forward_kernel<kHeadDim, kHeads>, grid, dim3(Tiles::kThreads), 0, stream, out, lse,
                      q, k, v, cu_seqlens, prefix_lens, static_cast<int>(n_segments), static_cast<int>(n_q_tiles),
                      static_cast<int>(shape.n_heads), static_cast<int>(shape.n_kv_heads), shape.n_tokens, q_stride,
                      kv_stride, rows.rope_table, rows.rope_two_d, static_cast<__nv_bfloat16*>(rows.q_rotated),
                      shape.scale * kLog2e);
}

// heads_per_block 1 or 2 (attention_forward has checked it).
template <int kHeadDim>
cudaError_t launch_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                           const __nv_bfloat16* v, const int32_t* cu_seqlens, const int32_t* prefix_lens,
                           int64_t n_segments, int64_t max_seqlen, const ops::AttentionShape& shape,
                           const AttentionQkvRows& rows, cudaStream_t stream, int heads_per_block) {
  return (heads_per_block == 2 ? launch_forward_heads<kHeadDim, 2> : launch_forward_heads<kHeadDim, 1>)(
      out, lse, q, k, v, cu_seqlens, prefix_lens, n_segments, max_seqlen, shape, rows, stream);
}

}  // namespace

cudaError_t attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const int32_t* cu_seqlens, const int32_t* prefix_lens,
                              int64_t n_segments, int64_t max_seqlen, const ops::AttentionShape& shape,
                              cudaStream_t stream, int heads_per_block, const AttentionQkvRows& rows) {
  if (shape.n_heads <= 0 || shape.n_kv_heads <= 0 || shape.n_heads % shape.n_kv_heads != 0 ||
      !attention_qkv_row_stride_ok(rows.row_stride, shape.n_heads, shape.n_kv_heads, shape.head_dim) ||
      (rows.rope_table != nullptr && rows.q_rotated == nullptr)) {
    return cudaErrorInvalidValue;
  }
  // Two heads per block when each kv head serves an even number of query heads, else one.
  const bool even_groups = (shape.n_heads / shape.n_kv_heads) % 2 == 0;
  if (heads_per_block == 0) heads_per_block = even_groups ? 2 : 1;
  if (heads_per_block != 1 && !(heads_per_block == 2 && even_groups)) return cudaErrorInvalidValue;
  if (n_segments <= 0 || max_seqlen <= 0 || shape.n_tokens <= 0) return cudaSuccess;
  const auto launch = [&](auto launch_d) {
    return launch_d(out, lse, q, k, v, cu_seqlens, prefix_lens, n_segments, max_seqlen, shape, rows, stream,
                    heads_per_block);
  };
  switch (shape.head_dim) {  // (attention_head_dims.h)
    case 32: return launch(launch_forward<32>);
    case 64: return launch(launch_forward<64>);
    case 96: return launch(launch_forward<96>);
    case 128: return launch(launch_forward<128>);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace reclm::cuda

#undef RECLM_UNROLL
