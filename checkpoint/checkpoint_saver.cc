#include "checkpoint/checkpoint_saver.h"

#include <fmt/format.h>

#include <exception>

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

CheckpointSaver::CheckpointSaver(const Config& config, std::string data_source, int world_size)
    : config_(config),
      data_source_(std::move(data_source)),
      world_size_(world_size),
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
