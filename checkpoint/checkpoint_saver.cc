#include "checkpoint/checkpoint_saver.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <exception>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint_dir.h"
#include "trainer/train_loop.h"
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


// The shard records of every rank's reply (rank order); UserError naming a rank that failed.
std::vector<checkpoint::OptimizerShard> shards_from_replies(const std::vector<std::string>& replies) {
  std::vector<checkpoint::OptimizerShard> shards(replies.size());
  for (size_t r = 0; r < replies.size(); ++r) {
    RECLM_USER_CHECK(!replies[r].empty() && replies[r][0] == 'S',
                     "rank {} could not write its optimizer shard: {}", r,
                     replies[r].empty() ? std::string("no reply") : replies[r].substr(1));
    RECLM_CHECK(shards[r].ParseFromString(replies[r].substr(1)),
                "rank {}'s shard record does not parse", r);
  }
  return shards;
}

// Asynchronous cooperative saves pass the replies through the shared checkpoint directory (the
// background threads may not use the communicator): rank r writes DIR/.reply_RRRRR atomically.
fs::path reply_path(const fs::path& dir, int rank) {
  return dir / fmt::format(".reply_{:05d}", rank);
}

void write_reply(const fs::path& dir, int rank, const std::string& reply) {
  const fs::path path = reply_path(dir, rank);
  const fs::path tmp = path.string() + ".tmp";
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  bool ok = file != nullptr && std::fwrite(reply.data(), 1, reply.size(), file) == reply.size();
  if (file != nullptr) ok = std::fclose(file) == 0 && ok;
  std::error_code error;
  if (ok) fs::rename(tmp, path, error);
  if (!ok || error) log_warn("rank {}: cannot hand its checkpoint shard record to rank 0 ({})", rank, path.string());
}

// Rank 0: every other rank's reply, polling the directory for up to timeout_s seconds; a rank
// that never answered gets "" (reported as "no reply").
std::vector<std::string> collect_replies(const fs::path& dir, int world, double timeout_s,
                                         std::string own) {
  std::vector<std::string> replies(world);
  replies[0] = std::move(own);
  Stopwatch waited;
  for (int r = 1; r < world; ++r) {
    const fs::path path = reply_path(dir, r);
    std::error_code error;
    while (!fs::exists(path, error) && waited.seconds() < timeout_s) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    replies[r].assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    in.close();
    fs::remove(path, error);
  }
  return replies;
}

}  // namespace

// Rank 0's background thread of an asynchronous cooperative save: its own shard, the other
// ranks' replies, model.h5 and the manifest, then the commit and retention.
void CheckpointSaver::finish_cooperative_save(const fs::path& dir, const CheckpointSnapshot& snapshot) {
  Stopwatch clock;
  try {
    const int world = comm_->size();
    const std::vector<std::string> replies =
        collect_replies(dir, world, config_.runtime().comm_timeout_s(), shard_reply(dir, snapshot, 0, world));
    write_weights_and_manifest(dir, snapshot, shards_from_replies(replies));
    finish_checkpoint_commit(root_, snapshot.progress.step, dir);
    apply_retention(root_, config_.checkpoint().keep_last(), config_.checkpoint().keep_every());
    error_.clear();
  } catch (const std::exception& e) {
    error_ = e.what();
    if (error_.empty()) error_ = "unknown error";
    abandon_checkpoint_commit(dir);
  }
  seconds_ = clock.seconds();
}

// At a save step of an asynchronous ZeRO-1 run, on the training thread of every rank: rank 0
// opens the temporary directory and broadcasts it (the one collective), then each rank's
// background thread writes its shard; rank 0's also gathers the replies and commits.
void CheckpointSaver::start_cooperative_save(CheckpointSnapshot snapshot) {
  Communicator& comm = *comm_;
  const int rank = comm.rank(), world = comm.size();
  std::string dir;
  if (rank == 0) {
    try {
      dir = begin_checkpoint_commit(root_, snapshot.progress.step).string();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }
  dir = broadcast_string(comm, dir, 0);
  if (dir.empty()) {  // rank 0 could not begin: it reports, the others have nothing to write
    if (rank == 0) report(pending_step_);
    return;
  }
  worker_done_ = false;
  worker_ = std::thread([this, snapshot = std::move(snapshot), dir = fs::path(dir), rank, world] {
    if (rank == 0) {
      finish_cooperative_save(dir, snapshot);
    } else {
      write_reply(dir, rank, shard_reply(dir, snapshot, rank, world));
    }
    worker_done_ = true;
  });
}

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
        write_weights_and_manifest(dir, snapshot, shards_from_replies(replies));
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
  // In a cooperative save rank 0 speaks for the job; another rank's thread only wrote its shard.
  if (comm_ == nullptr || comm_->rank() == 0) report(pending_step_);
}

void CheckpointSaver::after_step(const Model& model, const AdamW& optimizer,
                                 const TrainProgress& progress, bool last) {
  if (worker_done_.load()) wait_and_report();  // surface a finished background save promptly
  if (!checkpoint_due(config_, progress.step, last)) return;
  wait_and_report();  // at most one save in flight
  if (optimizer.sharded() && comm_ != nullptr && comm_->size() > 1) {
    pending_step_ = progress.step;
    if (config_.checkpoint().async()) {
      start_cooperative_save(take_snapshot(config_, model, optimizer, progress, data_source_,
                                           world_size_, /*with_weights=*/comm_->rank() == 0));
      return;
    }
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
