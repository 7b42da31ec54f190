// Saving checkpoints while a run trains (config group `checkpoint`, docs/checkpoints.md):
// every `every` steps and after the last one, each save a snapshot committed atomically
// (checkpoint_dir.h) followed by retention. With `async`, the snapshot is copied to host memory on
// the training thread and written on a background thread; at most one save is in flight (a new
// one first waits for the previous). A failed save (full disk, permissions) is reported with the
// step of the checkpoint that stays valid; with on_failure STOP the run then ends (UserError,
// exit 2), with CONTINUE it trains on. No failure ever leaves a half checkpoint marked complete.
//
// Replicated data parallelism: rank 0 alone has a saver (every rank holds the same state).
// ZeRO-1 (a sharded AdamW): every rank has one and saves cooperatively — rank 0 opens the
// temporary directory and sends its path, every rank writes its own optimizer shard into it and
// sends the shard's manifest record (checksums) to rank 0, rank 0 writes model.h5 and the
// manifest listing all shards, commits (rename, `latest`) and tells every rank the outcome.
// With checkpoint.async (the default) only the first step is on the training thread (rank 0
// opens the temporary directory and broadcasts it); the shard writes, model.h5, the manifest and
// the commit run on background threads, which never use the communicator: each rank leaves its
// shard's record in the directory (.reply_RRRRR) and rank 0's thread collects them, waiting at
// most runtime.comm_timeout_s. Rank 0 reports the outcome for the job. The checkpoint root must
// be one directory that every rank can write (a shared file system across nodes).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include "checkpoint/train_checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/config.h"

namespace reclm {

// checkpoint.dir, or RUN_DIR/checkpoints when it is empty.
std::filesystem::path checkpoint_root(const Config& config);

class CheckpointSaver {
 public:
  // `data_source` (BatchSource::describe()) and `world_size` (the ranks training) are recorded in
  // each manifest. `comm` (the job's ranks) is needed for cooperative ZeRO-1 saves; then every
  // rank constructs a saver and calls after_step at the same steps.
  CheckpointSaver(const Config& config, std::string data_source, int world_size = 1,
                  Communicator* comm = nullptr);
  ~CheckpointSaver();  // waits for a pending save (errors are logged, never thrown from here)
  CheckpointSaver(const CheckpointSaver&) = delete;
  CheckpointSaver& operator=(const CheckpointSaver&) = delete;

  // The train loop's after_step: saves when progress.step is a multiple of checkpoint.every or
  // `last`; also reports a background save that has finished since the last call.
  void after_step(const Model& model, const AdamW& optimizer, const TrainProgress& progress,
                  bool last);
  // Waits for the pending save and reports it (the train loop's finish).
  void finish();

  int64_t saves_committed() const { return committed_; }
  int64_t saves_failed() const { return failed_; }

 private:
  void save(const CheckpointSnapshot& snapshot);  // commit + retention; records the outcome
  // A ZeRO-1 save with every rank (see the top of this file); records the outcome on every rank.
  void save_cooperatively(const CheckpointSnapshot& snapshot);
  // The same with checkpoint.async: begins on the training thread, writes in the background.
  void start_cooperative_save(CheckpointSnapshot snapshot);
  void finish_cooperative_save(const std::filesystem::path& dir, const CheckpointSnapshot& snapshot);
  void wait_and_report();                         // joins the worker; may throw (STOP)
  void report(int64_t step);

  Config config_;
  std::string data_source_;
  int world_size_ = 1;
  Communicator* comm_ = nullptr;
  std::filesystem::path root_;
  std::thread worker_;
  std::atomic<bool> worker_done_{true};
  // Outcome of the last save, written by the worker before worker_done_ is set.
  std::string error_;
  double seconds_ = 0.0;
  int64_t pending_step_ = -1;
  int64_t last_good_step_ = -1;
  int64_t committed_ = 0;
  int64_t failed_ = 0;
};

}  // namespace reclm
