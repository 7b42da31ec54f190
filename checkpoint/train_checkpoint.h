// A training checkpoint's contents (checkpoint/manifest.proto, DESIGN.md §7): taking a host
// snapshot of a run, writing it into a directory, and restoring a run from one with every check
// a resume needs. checkpoint_dir.h makes the directory appear atomically; checkpoint_saver.h
// schedules saves during training.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "manifest.pb.h"
#include "runtime/config.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"
#include "trainer/train_loop.h"

namespace reclm {

inline constexpr int kCheckpointFormatVersion = 1;

// Everything a checkpoint holds, copied out of the live run so it can be written while training
// goes on (3 × the parameter buffer of host memory while a save is pending; a ZeRO-1 rank copies
// only its shard of the moments).
struct CheckpointSnapshot {
  Config config;
  ModelDims dims;
  std::vector<float> params;  // [layout.total_floats()] layout-shaped copy; empty: not taken
  // The moments of canonical values [moments_begin, moments_begin + m.size()), canonical order:
  // the whole range for a replicated optimizer, the rank's shard for a ZeRO-1 one.
  int64_t moments_begin = 0;
  std::vector<float> m, v;
  TrainProgress progress;
  int64_t optimizer_steps = 0;
  int32_t micro_batches_per_step = 1;  // per rank (train.grad_accum)
  int32_t world_size = 1;              // ranks that trained the run
  std::string data_source;
  int64_t unix_time = 0;
};
// `with_weights` false skips the parameter copy (a ZeRO-1 rank other than 0 writes no weights).
CheckpointSnapshot take_snapshot(const Config& config, const Model& model, const AdamW& optimizer,
                                 const TrainProgress& progress, const std::string& data_source,
                                 int world_size = 1, bool with_weights = true);

// Writes manifest.pb, manifest.pbtxt, model.h5 and `optimizer_shards` optimizer shard files into
// `dir` (normally commit_checkpoint's temporary directory). More than one shard is what a
// multi-rank run writes; a single process can write any count (tests of resharding use that).
// The snapshot must hold the whole moments and the weights.
void write_checkpoint_files(const std::filesystem::path& dir, const CheckpointSnapshot& snapshot,
                            int optimizer_shards = 1);

// The two halves of write_checkpoint_files, for cooperative saves (ZeRO-1: every rank writes its
// own shard, rank 0 the rest). write_optimizer_shard writes shard `rank` of `world` — canonical
// range shard_range(N, rank, world), which the snapshot's moments must cover — and returns its
// manifest record; write_weights_and_manifest writes model.h5 and the manifest listing `shards`
// (which must tile the canonical order; the manifest is written last).
checkpoint::OptimizerShard write_optimizer_shard(const std::filesystem::path& dir,
                                                 const CheckpointSnapshot& snapshot, int rank,
                                                 int world);
void write_weights_and_manifest(const std::filesystem::path& dir, const CheckpointSnapshot& snapshot,
                                const std::vector<checkpoint::OptimizerShard>& shards);

// manifest.pb of a checkpoint directory, checked: envelope checksum, parse, format version.
// UserError naming the file otherwise.
checkpoint::Manifest read_manifest(const std::filesystem::path& dir);

// Every field in which two messages of the same type differ, one line each:
// "model.d_model: 64 in the checkpoint, 128 in the config" (`prefix` starts each path).
std::vector<std::string> config_differences(const google::protobuf::Message& saved,
                                            const google::protobuf::Message& current,
                                            const std::string& prefix);

// Restores weights, optimizer state and progress from checkpoint `dir` into a model and optimizer
// built from `config`. Refuses (UserError, exit 2, nothing half-loaded reported as success):
// another format version; any difference in the model architecture (all listed); a missing,
// truncated or mis-shaped tensor; a checksum mismatch (naming the tensor and file). Differences
// outside `model` (e.g. more train.steps) are allowed and logged as warnings. The optimizer reads
// only the canonical range it holds (AdamW::shard(): all of it, or its ZeRO-1 shard) from
// whatever shards the checkpoint has, so any number of ranks, with or without ZeRO-1, can resume
// a checkpoint written by any other.
void restore_checkpoint(const std::filesystem::path& dir, const Config& config, Model& model,
                        AdamW& optimizer, TrainProgress& progress);

// Reads every tensor a checkpoint lists (model.h5 and the optimizer shards) and checks its
// checksum, without building a model: `reclm info --verify`. UserError naming the first bad tensor.
// Returns the number of values checked.
int64_t verify_checkpoint_files(const std::filesystem::path& dir);

// XXH64 (seed 0) of n floats' bytes: the per-tensor checksum of the manifest.
uint64_t tensor_checksum(const float* values, int64_t n);

}  // namespace reclm
