#include "checkpoint/checkpoint_saver.h"

#include <fmt/format.h>

#include <exception>
#include <vector>

#include "checkpoint/checkpoint_dir.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "runtime/timer.h"

namespace reclm {

namespace fs = std::filesystem;

fs::path checkpoint_root(const Config& config) {
  const std::string& dir = config.checkpoint().dir();
  return dir.empty() ? fs::path(config.train().run_dir()) / "checkpoints" : fs::path(dir);
}

CheckpointSaver::CheckpointSaver(const Config& config, std::string data_source, int world_size,
                                 Communicator* comm)
    : config_(config),
      data_source_(std::move(data_source)),
      world_size_(world_size),
      comm_(comm),
      root_(checkpoint_root(config)) {
  if (const auto latest = latest_checkpoint(root_)) {
    last_good_step_ = read_manifest(*latest).step();
  }
}

CheckpointSaver::~CheckpointSaver() {
  if (!worker_.joinable()) return;
  worker_.join();
  if (!error_.empty()) log_warn("checkpoint at step {} failed: {}", pending_step_, error_);
}

void CheckpointSaver::save(const CheckpointSnapshot& snapshot) {
  Stopwatch clock;
  try {
    commit_checkpoint(root_, snapshot.progress.step,
                      [&](const fs::path& dir) { write_checkpoint_files(dir, snapshot); });
    apply_retention(root_, config_.checkpoint().keep_last(), config_.checkpoint().keep_every());
    error_.clear();
  } catch (const std::exception& e) {
    error_ = e.what();
  }
  seconds_ = clock.seconds();
}

namespace {

// `text` from rank `root` to every rank (the others pass anything; the result is root's text).
std::string broadcast_string(Communicator& comm, const std::string& text, int root) {
  int64_t size = static_cast<int64_t>(text.size());
  comm.broadcast(&size, sizeof(size), root);
  std::string out = comm.rank() == root ? text : std::string(static_cast<size_t>(size), '\0');
  if (size > 0) comm.broadcast(out.data(), size, root);
  return out;
}

// What a rank sends rank 0 after writing its shard: "S" + the serialized shard record, or
// "E" + why it failed.
std::string shard_reply(const fs::path& dir, const CheckpointSnapshot& snapshot, int rank, int world) {
  std::string reply;
  try {
    const std::string record = write_optimizer_shard(dir, snapshot, rank, world).SerializeAsString();
    reply.reserve(record.size() + 1);
    reply.push_back('S');
    reply.append(record);
  } catch (const std::exception& e) {
    reply = "E";
    reply.append(e.what());
  }
  return reply;
}

}  // namespace

// Every rank runs the same sequence of collectives whatever fails where, so a failed save never
// leaves a rank waiting: dir (from 0; empty = no directory) → each rank's reply in rank order →
// outcome (from 0; empty = committed).
void CheckpointSaver::save_cooperatively(const CheckpointSnapshot& snapshot) {
  Communicator& comm = *comm_;
  const int rank = comm.rank(), world = comm.size();
  Stopwatch clock;
  std::string outcome;
  if (rank == 0) {
    bool dir_sent = false;
    try {
      commit_checkpoint(root_, snapshot.progress.step, [&](const fs::path& dir) {
        broadcast_string(comm, dir.string(), 0);
        dir_sent = true;
        std::vector<std::string> replies{shard_reply(dir, snapshot, 0, world)};
        for (int r = 1; r < world; ++r) replies.push_back(broadcast_string(comm, "", r));
        std::vector<checkpoint::OptimizerShard> shards(world);
        for (int r = 0; r < world; ++r) {
          RECLM_USER_CHECK(!replies[r].empty() && replies[r][0] == 'S',
                           "rank {} could not write its optimizer shard: {}", r,
                           replies[r].empty() ? std::string("no reply") : replies[r].substr(1));
          RECLM_CHECK(shards[r].ParseFromString(replies[r].substr(1)),
                      "rank {}'s shard record does not parse", r);
        }
        write_weights_and_manifest(dir, snapshot, shards);
      });
      apply_retention(root_, config_.checkpoint().keep_last(), config_.checkpoint().keep_every());
    } catch (const std::exception& e) {
      outcome = e.what();
      if (outcome.empty()) outcome = "unknown error";
    }
    if (!dir_sent) broadcast_string(comm, "", 0);
    broadcast_string(comm, outcome, 0);
  } else {
    const std::string dir = broadcast_string(comm, "", 0);
    if (!dir.empty()) {
      const std::string reply = shard_reply(dir, snapshot, rank, world);
      for (int r = 1; r < world; ++r) broadcast_string(comm, r == rank ? reply : "", r);
    }
    outcome = broadcast_string(comm, "", 0);
  }
  error_ = outcome;
  seconds_ = clock.seconds();
}

void CheckpointSaver::report(int64_t step) {
  if (error_.empty()) {
    ++committed_;
    last_good_step_ = step;
    log_info("checkpoint {} saved in {:.2f} s", (root_ / checkpoint_dir_name(step)).string(),
             seconds_);
    return;
  }
  ++failed_;
  const std::string intact =
      last_good_step_ >= 0
          ? fmt::format("the last good checkpoint is {}",
                        (root_ / checkpoint_dir_name(last_good_step_)).string())
          : std::string("no earlier checkpoint exists");
  const std::string message =
      fmt::format("checkpoint at step {} failed: {} ({})", step, error_, intact);
  error_.clear();
  if (config_.checkpoint().on_failure() == config::CheckpointConfig::STOP) {
    throw UserError(message + "; stopping (checkpoint.on_failure: STOP)");
  }
  log_warn("{}; training goes on (checkpoint.on_failure: CONTINUE)", message);
}

void CheckpointSaver::wait_and_report() {
  if (!worker_.joinable()) return;
  worker_.join();
  report(pending_step_);
}

void CheckpointSaver::after_step(const Model& model, const AdamW& optimizer,
                                 const TrainProgress& progress, bool last) {
  if (worker_done_.load()) wait_and_report();  // surface a finished background save promptly
  const int every = config_.checkpoint().every();
  if (every <= 0 || (progress.step % every != 0 && !last)) return;
  wait_and_report();  // at most one save in flight
  if (optimizer.sharded() && comm_ != nullptr && comm_->size() > 1) {
    if (config_.checkpoint().async() && committed_ + failed_ == 0) {
      log_info("checkpoint.async: ZeRO-1 saves are synchronous (every rank writes its shard)");
    }
    pending_step_ = progress.step;
    save_cooperatively(take_snapshot(config_, model, optimizer, progress, data_source_,
                                     world_size_, /*with_weights=*/comm_->rank() == 0));
    if (comm_->rank() == 0) {
      report(pending_step_);  // rank 0 speaks for the job; a STOP there ends every rank
    } else if (error_.empty()) {
      ++committed_;
      last_good_step_ = pending_step_;
    } else {
      ++failed_;
      error_.clear();
    }
    return;
  }
  CheckpointSnapshot snapshot =
      take_snapshot(config_, model, optimizer, progress, data_source_, world_size_);
  pending_step_ = progress.step;
  if (!config_.checkpoint().async()) {
    save(snapshot);
    report(pending_step_);
    return;
  }
  worker_done_ = false;
  worker_ = std::thread([this, snapshot = std::move(snapshot)] {
    save(snapshot);
    worker_done_ = true;
  });
}

void CheckpointSaver::finish() { wait_and_report(); }

}  // namespace reclm
