// Training checkpoints (checkpoint/train_checkpoint.h, checkpoint_saver.h): save/restore round
// trip, bitwise resume through the train loop, corruption and mismatch detection, resharded
// optimizer state, and saves that fail on a real write error (a file-size limit: EFBIG).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/canonical_order.h"
#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/train_checkpoint.h"
#include "runtime/errors.h"
#include "runtime/rng.h"
#include "scratch_dir.h"
#include "text_lm_fixture.h"
#include "thrown_message.h"
#include "trainer/weights_file.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

// The tiny preset for 12 steps without validation, into run_dir; these fixed fields win over
// `overrides`.
Config tiny_config(const fs::path& run_dir, std::vector<std::string> overrides = {}) {
  overrides.push_back("train.steps=12");
  overrides.push_back("model.dropout=0.1");  // resume must also restore the dropout stream
  overrides.push_back("eval.val_every=0");
  return test::tiny_preset_config(run_dir, std::move(overrides));
}

void fill_random(float* p, int64_t n, uint64_t seed) {
  CounterRng rng(seed, RngPurpose::kInit, 0, 0, 0);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(rng.normal());
}

// A model and optimizer with random (never zero) weights and moments, as mid-training.
struct RunState {
  Config config;
  Model model;
  AdamW optimizer;
  TrainProgress progress{7, 12345, 1, 2.5e-3};
  explicit RunState(const Config& c)
      : config(c), model(model_dims(c.model()), 64), optimizer(model.layout, c.optim()) {
    const int64_t n = model.layout.total_floats();
    fill_random(model.param_data(), n, 1);
    fill_random(optimizer.first_moment(), n, 2);
    fill_random(optimizer.second_moment(), n, 3);
    optimizer.set_steps_taken(6);
  }
};

fs::path save(const RunState& s, const fs::path& root, int shards = 1) {
  const CheckpointSnapshot snapshot =
      take_snapshot(s.config, s.model, s.optimizer, s.progress, "test source");
  return commit_checkpoint(root, s.progress.step,
                           [&](const fs::path& dir) { write_checkpoint_files(dir, snapshot, shards); });
}

bool buffers_equal(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

void flip_byte_at(const fs::path& file, int64_t pos) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(pos);
  char c;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(pos);
  f.write(&c, 1);
}

void flip_byte(const fs::path& file, int64_t from_end) {
  flip_byte_at(file, static_cast<int64_t>(fs::file_size(file)) - from_end);
}

// Flips a byte inside the stored values of `values` (found by content: the file layout is HDF5's).
void flip_byte_in_data(const fs::path& file, const float* values, int64_t n) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string needle(reinterpret_cast<const char*>(values), std::min<int64_t>(n, 16) * 4);
  const size_t pos = bytes.find(needle);
  ASSERT_NE(pos, std::string::npos) << "tensor data not found in " << file;
  flip_byte_at(file, static_cast<int64_t>(pos) + 5);
}

TEST(TrainCheckpoint, RoundTripRestoresWeightsMomentsAndProgressBitwise) {
  const fs::path root = cleared_test_path("ckpt_test_roundtrip");
  const RunState saved(tiny_config(root));
  const fs::path dir = save(saved, root);
  EXPECT_EQ(dir.filename(), "step_00000007");
  for (const char* file : {"manifest.pb", "manifest.pbtxt", "model.h5", "optim_shard_00000_of_00001.h5"})
    EXPECT_TRUE(fs::exists(dir / file)) << file;

  RunState loaded(tiny_config(root));
  fill_random(loaded.model.param_data(), loaded.model.layout.total_floats(), 99);
  TrainProgress progress;
  restore_checkpoint(dir, loaded.config, loaded.model, loaded.optimizer, progress);
  const int64_t n = saved.model.layout.total_floats();
  EXPECT_TRUE(buffers_equal(saved.model.param_data(), loaded.model.param_data(), n));
  // Padding between tensors is not state; compare the canonical values of the moments.
  const int64_t total = canonical_size(saved.model.layout);
  std::vector<float> a(total), b(total);
  for (auto moment : {&AdamW::first_moment, &AdamW::second_moment}) {
    gather_canonical(saved.model.layout, (saved.optimizer.*moment)(), {0, total}, a.data());
    gather_canonical(saved.model.layout, (loaded.optimizer.*moment)(), {0, total}, b.data());
    EXPECT_TRUE(buffers_equal(a.data(), b.data(), total));
  }
  EXPECT_EQ(loaded.optimizer.steps_taken(), 6);
  EXPECT_EQ(progress.step, 7);
  EXPECT_EQ(progress.tokens_seen, 12345);
  EXPECT_EQ(progress.skipped_steps, 1);
  EXPECT_DOUBLE_EQ(progress.last_lr, 2.5e-3);

  const checkpoint::Manifest manifest = read_manifest(dir);
  EXPECT_EQ(manifest.format_version(), kCheckpointFormatVersion);
  EXPECT_EQ(manifest.tensors_size(), static_cast<int>(saved.model.layout.entries().size()));
  EXPECT_EQ(manifest.config().model().d_model(), 32);
  EXPECT_EQ(manifest.rng_next_dropout_stream(), 7 * 2);  // grad_accum 2
}

TEST(TrainCheckpoint, OptimizerStateSavedInShardsResumesOnAnyShardCount) {
  const fs::path root = cleared_test_path("ckpt_test_shards");
  RunState saved(tiny_config(root));
  const fs::path one = save(saved, root / "one", 1);
  const fs::path three = save(saved, root / "three", 3);
  EXPECT_TRUE(fs::exists(three / "optim_shard_00002_of_00003.h5"));
  const checkpoint::Manifest manifest = read_manifest(three);
  ASSERT_EQ(manifest.optimizer_shards_size(), 3);
  EXPECT_EQ(manifest.optimizer_shards(2).end(), canonical_size(saved.model.layout));

  RunState from_one(tiny_config(root)), from_three(tiny_config(root));
  TrainProgress p1, p3;
  restore_checkpoint(one, from_one.config, from_one.model, from_one.optimizer, p1);
  restore_checkpoint(three, from_three.config, from_three.model, from_three.optimizer, p3);
  const int64_t total = canonical_size(saved.model.layout);
  std::vector<float> a(total), b(total);
  gather_canonical(saved.model.layout, from_one.optimizer.second_moment(), {0, total}, a.data());
  gather_canonical(saved.model.layout, from_three.optimizer.second_moment(), {0, total}, b.data());
  EXPECT_TRUE(buffers_equal(a.data(), b.data(), total));
}

// ZeRO-1 (trainer/zero1.h): three ranks, each with a sharded AdamW, write their own shards and
// rank 0 the weights and manifest (what the cooperative saver does); the checkpoint then
// restores into one unsharded optimizer and into two sharded ones with the same moments.
TEST(TrainCheckpoint, CooperativeZero1ShardsResumeOnOtherRankCounts) {
  const fs::path root = cleared_test_path("ckpt_test_zero1");
  const RunState full(tiny_config(root));  // the moments the three shards hold together
  const ParamLayout& layout = full.model.layout;
  const int64_t total = canonical_size(layout);
  std::vector<float> m(total), v(total);
  gather_canonical(layout, full.optimizer.first_moment(), {0, total}, m.data());
  gather_canonical(layout, full.optimizer.second_moment(), {0, total}, v.data());
  const fs::path dir = commit_checkpoint(root, full.progress.step, [&](const fs::path& tmp) {
    std::vector<checkpoint::OptimizerShard> shards;
    for (int rank = 0; rank < 3; ++rank) {
      const CanonicalRange shard = zero1_shard_range(layout, rank, 3);
      const FlatRange expected = shard_range(total, rank, 3);  // ZeRO shards are checkpoint shards
      ASSERT_EQ(shard.begin, expected.begin);
      ASSERT_EQ(shard.end, expected.end);
      AdamW sharded(layout, full.config.optim(), shard);
      ASSERT_TRUE(sharded.sharded());
      ASSERT_EQ(sharded.moment_floats(), shard.size());
      std::copy(m.begin() + shard.begin, m.begin() + shard.end, sharded.first_moment());
      std::copy(v.begin() + shard.begin, v.begin() + shard.end, sharded.second_moment());
      sharded.set_steps_taken(6);
      const CheckpointSnapshot snapshot = take_snapshot(full.config, full.model, sharded,
                                                        full.progress, "test", 3, rank == 0);
      EXPECT_EQ(snapshot.m.size(), static_cast<size_t>(shard.size()));
      EXPECT_EQ(snapshot.params.empty(), rank != 0);
      shards.push_back(write_optimizer_shard(tmp, snapshot, rank, 3));
      if (rank == 2) {  // rank 0's snapshot holds the weights; any rank's the progress
        const CheckpointSnapshot lead = take_snapshot(full.config, full.model, full.optimizer,
                                                      full.progress, "test", 3);
        write_weights_and_manifest(tmp, lead, shards);
      }
    }
  });
  const checkpoint::Manifest manifest = read_manifest(dir);
  EXPECT_EQ(manifest.optimizer_shards_size(), 3);
  EXPECT_EQ(manifest.world_size(), 3);
  EXPECT_EQ(verify_checkpoint_files(dir), total + 2 * total);

  RunState one(tiny_config(root));
  TrainProgress progress;
  restore_checkpoint(dir, one.config, one.model, one.optimizer, progress);
  std::vector<float> got(total);
  gather_canonical(layout, one.optimizer.second_moment(), {0, total}, got.data());
  EXPECT_TRUE(buffers_equal(got.data(), v.data(), total));
  EXPECT_TRUE(buffers_equal(one.model.param_data(), full.model.param_data(), layout.total_floats()));
  for (int rank = 0; rank < 2; ++rank) {
    RunState state(tiny_config(root));
    const CanonicalRange shard = zero1_shard_range(layout, rank, 2);
    AdamW sharded(layout, state.config.optim(), shard);
    restore_checkpoint(dir, state.config, state.model, sharded, progress);
    EXPECT_TRUE(buffers_equal(sharded.first_moment(), m.data() + shard.begin, shard.size()));
    EXPECT_TRUE(buffers_equal(sharded.second_moment(), v.data() + shard.begin, shard.size()));
    EXPECT_EQ(sharded.steps_taken(), 6);
  }
}

TEST(CanonicalOrder, ShardsTileTheRangeAndScatterInvertsGather) {
  const RunState s(tiny_config(cleared_test_path("ckpt_test_canon")));
  const ParamLayout& layout = s.model.layout;
  const int64_t total = canonical_size(layout);
  EXPECT_EQ(total, layout.num_parameters());
  std::vector<float> padded(layout.total_floats(), -1.0f);
  for (int world : {1, 2, 3, 7}) {
    int64_t covered = 0;
    for (int rank = 0; rank < world; ++rank) {
      const FlatRange r = shard_range(total, rank, world);
      EXPECT_EQ(r.begin, covered);
      covered = r.end;
      std::vector<float> part(r.size());
      gather_canonical(layout, s.model.param_data(), r, part.data());
      scatter_canonical(layout, part.data(), r, padded.data());
    }
    EXPECT_EQ(covered, total);
  }
  for (const ParamEntry& e : layout.entries())
    EXPECT_TRUE(buffers_equal(padded.data() + e.offset, s.model.param_data() + e.offset, e.numel)) << e.name;
}

TEST(TrainCheckpoint, CorruptedOrTruncatedFilesAreRefusedNamingWhat) {
  const fs::path root = cleared_test_path("ckpt_test_corrupt");
  const RunState saved(tiny_config(root));
  const auto attempt = [&](const fs::path& dir) {
    RunState s(tiny_config(root));
    TrainProgress progress;
    return thrown_message<UserError>(
        [&] { restore_checkpoint(dir, s.config, s.model, s.optimizer, progress); });
  };
  // A flipped byte inside the weights' data: the last tensor stored is named.
  fs::path dir = save(saved, root / "a");
  const ParamEntry& up = saved.model.layout.find("model.layers.1.mlp.up_proj.weight");
  flip_byte_in_data(dir / "model.h5", saved.model.param_data() + up.offset, up.numel);
  std::string message = attempt(dir);
  EXPECT_NE(message.find("model.h5: tensor model.layers.1.mlp.up_proj.weight: checksum mismatch"),
            std::string::npos) << message;

  dir = save(saved, root / "b");
  std::vector<float> v(canonical_size(saved.model.layout));
  gather_canonical(saved.model.layout, saved.optimizer.second_moment(), {0, 64}, v.data());
  flip_byte_in_data(dir / "optim_shard_00000_of_00001.h5", v.data(), 64);
  message = attempt(dir);
  EXPECT_NE(message.find("optim_shard_00000_of_00001.h5: tensor v: checksum mismatch"),
            std::string::npos) << message;

  dir = save(saved, root / "c");
  flip_byte(dir / "manifest.pb", 40);
  message = attempt(dir);
  EXPECT_NE(message.find("manifest.pb"), std::string::npos) << message;

  dir = save(saved, root / "d");
  fs::resize_file(dir / "model.h5", fs::file_size(dir / "model.h5") / 2);
  message = attempt(dir);
  EXPECT_NE(message.find("model.h5"), std::string::npos) << message;

  dir = save(saved, root / "e");
  fs::resize_file(dir / "manifest.pb", 10);
  message = attempt(dir);
  EXPECT_NE(message.find("manifest.pb: not a reclm checkpoint manifest"), std::string::npos) << message;
}

TEST(TrainCheckpoint, ArchitectureMismatchListsEveryField) {
  const fs::path root = cleared_test_path("ckpt_test_mismatch");
  const fs::path dir = save(RunState(tiny_config(root)), root);
  RunState other(tiny_config(root, {"model.d_model=48", "model.n_heads=2", "model.n_kv_heads=1"}));
  TrainProgress progress;
  const std::string message = thrown_message<UserError>(
      [&] { restore_checkpoint(dir, other.config, other.model, other.optimizer, progress); });
  EXPECT_NE(message.find("the checkpoint's model differs from the config (3 fields)"),
            std::string::npos) << message;
  EXPECT_NE(message.find("model.d_model: 32 in the checkpoint, 48 in the config"), std::string::npos);
  EXPECT_NE(message.find("model.n_heads: 4 in the checkpoint, 2 in the config"), std::string::npos);
  EXPECT_NE(message.find("model.n_kv_heads: 2 in the checkpoint, 1 in the config"), std::string::npos);
}

// A child process killed with SIGKILL in the middle of a save (files partly or fully written, not
// yet committed): the previous checkpoint stays `latest`, loads, and retention clears the debris.
TEST(TrainCheckpoint, AProcessKilledDuringSaveLeavesThePreviousCheckpointResumable) {
  for (const bool all_files_written : {false, true}) {
    SCOPED_TRACE(all_files_written ? "killed after writing every file" : "killed after model.h5");
    const fs::path root =
        cleared_test_path(all_files_written ? "ckpt_test_kill_late" : "ckpt_test_kill_early");
    RunState s(tiny_config(root));
    save(s, root);  // step 7
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      s.progress.step = 8;
      const CheckpointSnapshot snapshot = take_snapshot(s.config, s.model, s.optimizer, s.progress, "");
      commit_checkpoint(root, 8, [&](const fs::path& dir) {
        if (all_files_written) {
          write_checkpoint_files(dir, snapshot);
        } else {
          save_weights(dir / "model.h5", snapshot.dims, ParamLayout(snapshot.dims),
                       snapshot.params.data(), "");
        }
        const char byte = 1;
        if (::write(ready[1], &byte, 1) != 1) ::_exit(3);
        ::pause();  // killed here, mid-save
      });
      ::_exit(0);
    }
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    ASSERT_TRUE(WIFSIGNALED(status));

    int debris = 0;
    for (const auto& entry : fs::directory_iterator(root))
      debris += entry.path().filename().string().rfind(".step_00000008.tmp-", 0) == 0;
    EXPECT_EQ(debris, 1);
    EXPECT_EQ(committed_steps(root), (std::vector<int64_t>{7}));
    const auto latest = latest_checkpoint(root);
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->filename(), "step_00000007");
    RunState loaded(s.config);
    TrainProgress progress;
    restore_checkpoint(*latest, loaded.config, loaded.model, loaded.optimizer, progress);
    EXPECT_EQ(progress.step, 7);
    apply_retention(root, 3, 0);
    EXPECT_EQ(std::distance(fs::directory_iterator(root), fs::directory_iterator()), 2);  // step_7, latest
  }
}

// The loop run in one go vs. the same run "crashed" after step 8 and resumed from its checkpoint.
TEST(TrainCheckpoint, ResumeContinuesTheLossSequenceBitwise) {
  for (const char* async : {"false", "true"}) {
    SCOPED_TRACE(async);
    const fs::path base = cleared_test_path(std::string("ckpt_test_resume_") + async);
    const std::vector<std::string> overrides = {"checkpoint.every=4",
                                                std::string("checkpoint.async=") + async};
    const Config full_config = tiny_config(base / "full", overrides);
    const TextLmSource full_source = test::text_lm_source_for(full_config);
    CheckpointSaver full_saver(full_config, full_source.describe());
    TrainHooks full_hooks;
    full_hooks.after_step = [&](const Model& m, const AdamW& o, const TrainProgress& p, bool last) {
      full_saver.after_step(m, o, p, last);
    };
    full_hooks.finish = [&] { full_saver.finish(); };
    const TrainResult full = train(full_config, full_source, full_hooks);
    ASSERT_EQ(full.losses.size(), 12u);

    const Config config = tiny_config(base / "part", overrides);
    const TextLmSource source = test::text_lm_source_for(config);
    struct Crash {};
    {
      CheckpointSaver saver(config, source.describe());
      TrainHooks hooks;
      hooks.after_step = [&](const Model& m, const AdamW& o, const TrainProgress& p, bool last) {
        saver.after_step(m, o, p, last);
        if (p.step == 8) {
          saver.finish();
          throw Crash{};
        }
      };
      EXPECT_THROW(train(config, source, hooks), Crash);
      EXPECT_EQ(saver.saves_committed(), 2);
    }
    const auto latest = latest_checkpoint(checkpoint_root(config));
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->filename(), "step_00000008");
    TrainHooks hooks;
    hooks.restore = [&](Model& m, AdamW& o, TrainProgress& p) {
      restore_checkpoint(*latest, config, m, o, p);
    };
    const TrainResult resumed = train(config, source, hooks);
    EXPECT_EQ(resumed.first_step, 8);
    EXPECT_EQ(resumed.steps, 12);
    ASSERT_EQ(resumed.losses.size(), 4u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(resumed.losses[i], full.losses[8 + i]) << "step " << 9 + i;
    // Retention: keep_last 3 of 4, 8, 12 (from the full run's root).
    EXPECT_EQ(committed_steps(checkpoint_root(full_config)), (std::vector<int64_t>{4, 8, 12}));
  }
}

// Writes beyond RLIMIT_FSIZE fail with EFBIG (SIGXFSZ ignored): a real write error, like a full disk.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

TEST(CheckpointSaver, FailedSaveKeepsThePreviousCheckpointAndFollowsOnFailure) {
  for (const char* policy : {"CONTINUE", "STOP"}) {
    for (const char* async : {"false", "true"}) {
      SCOPED_TRACE(std::string(policy) + " async " + async);
      const fs::path root = cleared_test_path(std::string("ckpt_test_fail_") + policy + async);
      RunState s(tiny_config(root, {"checkpoint.every=1", std::string("checkpoint.async=") + async,
                                    std::string("checkpoint.on_failure=") + policy}));
      CheckpointSaver saver(s.config, "test");
      s.progress.step = 1;
      saver.after_step(s.model, s.optimizer, s.progress, false);
      saver.finish();
      ASSERT_EQ(saver.saves_committed(), 1);
      s.progress.step = 2;
      {
        FileSizeLimit limit(4096);  // model.h5 is far larger
        if (std::string(policy) == "STOP") {
          // A synchronous save reports at once, an asynchronous one when it is waited for.
          const std::string message = thrown_message<UserError>([&] {
            saver.after_step(s.model, s.optimizer, s.progress, false);
            saver.finish();
          });
          EXPECT_NE(message.find("checkpoint at step 2 failed"), std::string::npos) << message;
          EXPECT_NE(message.find("step_00000001"), std::string::npos) << message;
        } else {
          saver.after_step(s.model, s.optimizer, s.progress, false);
          saver.finish();  // reported, not thrown
        }
      }
      EXPECT_EQ(saver.saves_failed(), 1);
      const fs::path ckpt_root = checkpoint_root(s.config);
      EXPECT_EQ(committed_steps(ckpt_root), (std::vector<int64_t>{1}));
      EXPECT_EQ(latest_checkpoint(ckpt_root)->filename(), "step_00000001");
      RunState loaded(s.config);
      TrainProgress progress;
      restore_checkpoint(*latest_checkpoint(ckpt_root), loaded.config, loaded.model,
                         loaded.optimizer, progress);
      EXPECT_EQ(progress.step, 1);
    }
  }
}

}  // namespace
}  // namespace reclm
