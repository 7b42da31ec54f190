// ZeRO-1 on the CUDA backend (optim.zero1 with runtime.device "cuda"): the host form's
// collectives (trainer/zero1.h) over the device's buffers. The AdamW moments on the device are
// this rank's shard only ([shard size] floats each, canonical order: exactly the host AdamW's
// sharded moments, so upload, download and checkpoints need no conversion); the fp32 master
// weights and the gradients stay whole, as on the host.
// One step: reduce_scatter_gradients → grad_norm → AdamW on shard_segments() →
// all_gather_parameters. The staging blocks [world · P] and the received block [P] are
// DeviceModel::exchange, which overlays the activations: they are used only between steps.
// Collectives run on `comm`, which reads device memory: NCCL on GPUs, whose blocking calls
// return once its stream has drained (so later work on the compute stream may reuse the
// buffers), or the host communicator on the emulator, whose device memory is host memory.
#pragma once

#include <cmath>
#include <vector>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/grad_norm.h"
#include "runtime/comm/communicator.h"
#include "trainer/device/device_model.h"
#include "trainer/device/device_runtime.h"
#include "trainer/zero1.h"

namespace reclm::device {

class DeviceZero1 {
 public:
  DeviceZero1(const ParamLayout& layout, int rank, int world)
      : rank_(rank), world_(world), blocks_(zero1_blocks(layout, world)) {}

  // What the plan must hold for exchange(): world staging blocks and the received one.
  int64_t exchange_floats() const { return (world_ + 1) * blocks_.block; }
  // This rank's trainable values: parameter offsets, and moment offsets into the shard's moments.
  const std::vector<UpdateSegment>& shard_segments() const { return blocks_.segments[rank_]; }

  // dm.grads at this rank's shard ← the gradients summed over the ranks (the rest stays unreduced).
  void reduce_scatter_gradients(DeviceModel& dm, Communicator& comm) const {
    fill_zero(staging(dm), exchange_floats() * sizeof(float), dm.stream);  // padding past each block: 0
    for (int r = 0; r < world_; ++r) pack(dm, blocks_.segments[r], dm.grads, staging(dm) + r * blocks_.block);
    comm.reduce_scatter(staging(dm), received(dm), blocks_.block, ReduceOp::kSum);
    unpack(dm, shard_segments(), received(dm), dm.grads);
  }

  // L2 norm of the summed gradient over every trainable value (after reduce_scatter_gradients): this
  // rank's block (its padding zero), summed over the ranks by `host` in double.
  double grad_norm(DeviceModel& dm, Communicator& host) const {
    check(cuda::sum_of_squares(dm.norm_result, received(dm), blocks_.block, dm.norm_ws, dm.stream), "sum_of_squares");
    double sum = 0.0;
    copy_to_host(&sum, dm.norm_result, sizeof(double));
    host.all_reduce(&sum, 1, ReduceOp::kSum);
    return std::sqrt(sum);
  }

  // Every rank's parameters ← the values each shard's owner updated, and their bf16 copy.
  void all_gather_parameters(DeviceModel& dm, Communicator& comm) const {
    float* mine = staging(dm) + rank_ * blocks_.block;  // (its padding is never read)
    pack(dm, shard_segments(), dm.params, mine);
    comm.all_gather(mine, staging(dm), blocks_.block);  // in place: `mine` is this rank's block
    for (int r = 0; r < world_; ++r) {
      if (r == rank_) continue;  // (the optimizer wrote this rank's bf16 values already)
      unpack(dm, blocks_.segments[r], staging(dm) + r * blocks_.block, dm.params);
      for (const UpdateSegment& s : blocks_.segments[r]) {
        check(cuda::convert_f32_to_bf16(dm.weight_bf16(dm.params + s.param_offset), dm.params + s.param_offset,
                                        s.count, dm.stream),
              "convert_f32_to_bf16");
      }
    }
  }

 private:
  float* staging(const DeviceModel& dm) const { return dm.exchange; }                          // [world · P]
  float* received(const DeviceModel& dm) const { return dm.exchange + world_ * blocks_.block; }  // [P]

  // packed ← the segments' values of a layout buffer, in order; unpack: the other way.
  static void pack(const DeviceModel& dm, const std::vector<UpdateSegment>& segments, const float* padded,
                   float* packed) {
    for (const UpdateSegment& s : segments) {
      copy_async(packed, padded + s.param_offset, s.count * sizeof(float), dm.stream);
      packed += s.count;
    }
  }
  static void unpack(const DeviceModel& dm, const std::vector<UpdateSegment>& segments, const float* packed,
                     float* padded) {
    for (const UpdateSegment& s : segments) {
      copy_async(padded + s.param_offset, packed, s.count * sizeof(float), dm.stream);
      packed += s.count;
    }
  }

  int rank_;
  int world_;
  Zero1Blocks blocks_;
};

}  // namespace reclm::device
