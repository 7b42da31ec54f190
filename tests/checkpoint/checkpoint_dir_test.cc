#include "checkpoint/checkpoint_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/errors.h"
#include "scratch_dir.h"
#include "thrown_message.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Names of all entries directly under `dir`, sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A write callback that stores one file `weights.bin` holding `text`.
std::function<void(const fs::path&)> writes(const std::string& text) {
  return [text](const fs::path& dir) { write_text(dir / "weights.bin", text); };
}

class CheckpointDirTest : public ScratchDirTest {
 protected:
  void SetUp() override {
    ScratchDirTest::SetUp();
    root_ = dir_ / "ckpt";
  }
  // Tests take write permission away; give it back so the directory can be removed.
  void TearDown() override {
    std::error_code ignored;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ignored);
    if (fs::exists(root_)) fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(dir_, ignored);
  }
  fs::path root_;
};

TEST(CheckpointDirName, PadsToEightDigitsAndGrowsBeyond) {
  EXPECT_EQ(checkpoint_dir_name(0), "step_00000000");
  EXPECT_EQ(checkpoint_dir_name(1000), "step_00001000");
  EXPECT_EQ(checkpoint_dir_name(123456789), "step_123456789");
}

TEST_F(CheckpointDirTest, CommitWritesFilesAndLatest) {
  const fs::path dir = commit_checkpoint(root_, 1000, writes("v1"));
  EXPECT_EQ(dir, root_ / "step_00001000");
  EXPECT_EQ(read_text(dir / "weights.bin"), "v1");
  EXPECT_EQ(read_text(root_ / "latest"), "step_00001000\n");
  EXPECT_EQ(latest_checkpoint(root_), dir);
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"latest", "step_00001000"}));
}

TEST_F(CheckpointDirTest, WriteSeesEmptyTmpDirAndNestedFilesAreCommitted) {
  commit_checkpoint(root_, 5, [&](const fs::path& dir) {
    EXPECT_NE(dir, root_ / "step_00000005");
    EXPECT_TRUE(fs::is_empty(dir));
    fs::create_directories(dir / "optim");
    write_text(dir / "optim" / "rank0.bin", "shard");
  });
  EXPECT_EQ(read_text(root_ / "step_00000005" / "optim" / "rank0.bin"), "shard");
}

TEST_F(CheckpointDirTest, SecondCommitUpdatesLatestAndKeepsFirst) {
  commit_checkpoint(root_, 1, writes("v1"));
  commit_checkpoint(root_, 2, writes("v2"));
  EXPECT_EQ(read_text(root_ / "latest"), "step_00000002\n");
  EXPECT_EQ(latest_checkpoint(root_), root_ / "step_00000002");
  EXPECT_EQ(read_text(root_ / "step_00000001" / "weights.bin"), "v1");
  EXPECT_EQ(committed_steps(root_), (std::vector<int64_t>{1, 2}));
}

TEST_F(CheckpointDirTest, ThrowingWriteLeavesEverythingAsItWas) {
  commit_checkpoint(root_, 1, writes("v1"));
  EXPECT_THROW(commit_checkpoint(root_, 2,
                                 [](const fs::path& dir) {
                                   write_text(dir / "weights.bin", "half");
                                   throw std::runtime_error("disk on fire");
                                 }),
               std::runtime_error);
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"latest", "step_00000001"}));
  EXPECT_EQ(read_text(root_ / "latest"), "step_00000001\n");
  EXPECT_EQ(read_text(root_ / "step_00000001" / "weights.bin"), "v1");
}

TEST_F(CheckpointDirTest, ThrowingRecommitOfSameStepKeepsOldContent) {
  commit_checkpoint(root_, 3, writes("old"));
  EXPECT_THROW(commit_checkpoint(root_, 3, [](const fs::path&) { throw std::runtime_error("x"); }),
               std::runtime_error);
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"latest", "step_00000003"}));
  EXPECT_EQ(read_text(root_ / "step_00000003" / "weights.bin"), "old");
}

TEST_F(CheckpointDirTest, FileSystemErrorInWriteBecomesUserError) {
  const std::string message = thrown_message<UserError>([&] {
    commit_checkpoint(root_, 1, [](const fs::path& dir) {
      fs::copy_file(dir / "missing_source.bin", dir / "copy.bin");
    });
  });
  EXPECT_NE(message.find("missing_source.bin"), std::string::npos) << message;
  EXPECT_EQ(entries(root_), std::vector<std::string>{});
}

TEST_F(CheckpointDirTest, RecommittingSameStepReplacesIt) {
  commit_checkpoint(root_, 7, [](const fs::path& dir) {
    write_text(dir / "weights.bin", "first");
    write_text(dir / "only_in_first.txt", "x");
  });
  commit_checkpoint(root_, 7, writes("second"));
  const fs::path dir = root_ / "step_00000007";
  EXPECT_EQ(read_text(dir / "weights.bin"), "second");
  EXPECT_FALSE(fs::exists(dir / "only_in_first.txt"));
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"latest", "step_00000007"}));
  EXPECT_EQ(latest_checkpoint(root_), dir);
}

TEST_F(CheckpointDirTest, LatestOfMissingOrEmptyRootIsNullopt) {
  EXPECT_EQ(latest_checkpoint(root_), std::nullopt);
  EXPECT_TRUE(committed_steps(root_).empty());
  fs::create_directories(root_);
  EXPECT_EQ(latest_checkpoint(root_), std::nullopt);
}

TEST_F(CheckpointDirTest, CorruptedLatestIsUserErrorNamingIt) {
  commit_checkpoint(root_, 1, writes("v1"));
  write_text(root_ / "latest", "garbage\n");
  std::string message = thrown_message<UserError>([&] { latest_checkpoint(root_); });
  EXPECT_NE(message.find((root_ / "latest").string()), std::string::npos) << message;
  EXPECT_NE(message.find("garbage"), std::string::npos) << message;

  write_text(root_ / "latest", "step_00000009\n");  // well-formed but no such directory
  message = thrown_message<UserError>([&] { latest_checkpoint(root_); });
  EXPECT_NE(message.find((root_ / "latest").string()), std::string::npos) << message;
  EXPECT_NE(message.find("step_00000009"), std::string::npos) << message;
}

TEST_F(CheckpointDirTest, RetentionKeepsLastTwoAndMultiplesOfThree) {
  for (int64_t step = 1; step <= 7; ++step) commit_checkpoint(root_, step, writes("w"));
  apply_retention(root_, /*keep_last=*/2, /*keep_every=*/3);
  // newest two {6, 7} + multiples of 3 {3, 6} + latest (7)
  EXPECT_EQ(committed_steps(root_), (std::vector<int64_t>{3, 6, 7}));
  EXPECT_EQ(latest_checkpoint(root_), root_ / "step_00000007");
}

TEST_F(CheckpointDirTest, RetentionNeverDeletesLatestAndZeroMeansKeepAll) {
  for (int64_t step = 1; step <= 5; ++step) commit_checkpoint(root_, step, writes("w"));
  apply_retention(root_, 0, 0);
  EXPECT_EQ(committed_steps(root_), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  write_text(root_ / "latest", "step_00000002\n");  // e.g. rolled back by hand
  apply_retention(root_, 1, 0);
  EXPECT_EQ(committed_steps(root_), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(latest_checkpoint(root_), root_ / "step_00000002");
}

TEST_F(CheckpointDirTest, StrayTmpDirsAreIgnoredThenRemovedByRetention) {
  commit_checkpoint(root_, 1, writes("v1"));
  // A crash mid-commit leaves a half-filled tmp dir behind.
  const fs::path stray = root_ / ".step_00000002.tmp-99999-0";
  fs::create_directories(stray);
  write_text(stray / "weights.bin", "half");
  EXPECT_EQ(latest_checkpoint(root_), root_ / "step_00000001");
  EXPECT_EQ(committed_steps(root_), (std::vector<int64_t>{1}));
  // A new commit of the same step still works next to the debris.
  commit_checkpoint(root_, 2, writes("v2"));
  EXPECT_EQ(latest_checkpoint(root_), root_ / "step_00000002");
  apply_retention(root_, 0, 0);
  EXPECT_FALSE(fs::exists(stray));
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"latest", "step_00000001", "step_00000002"}));
}

TEST_F(CheckpointDirTest, UnwritableRootIsUserErrorAndTouchesNothing) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  commit_checkpoint(root_, 1, writes("v1"));
  fs::permissions(root_, fs::perms::owner_read | fs::perms::owner_exec);  // 0500
  const std::string message =
      thrown_message<UserError>([&] { commit_checkpoint(root_, 2, writes("v2")); });
  fs::permissions(root_, fs::perms::owner_all);
  EXPECT_NE(message.find(root_.string()), std::string::npos) << message;
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"latest", "step_00000001"}));
  EXPECT_EQ(read_text(root_ / "latest"), "step_00000001\n");
}

TEST_F(CheckpointDirTest, UncreatableRootIsUserError) {
  write_text(dir_ / "file", "not a directory");
  const std::string message = thrown_message<UserError>(
      [&] { commit_checkpoint(dir_ / "file" / "ckpt", 1, writes("v1")); });
  EXPECT_NE(message.find("ckpt"), std::string::npos) << message;
}

}  // namespace
}  // namespace reclm
