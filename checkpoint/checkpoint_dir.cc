#include "checkpoint/checkpoint_dir.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE (glibc, _GNU_SOURCE)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/atomic_file.h"
#include "runtime/errors.h"
#include "runtime/logging.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLatestFile = "latest";
constexpr const char* kStepPrefix = "step_";

// Step of a canonical "step_00001000" name; nullopt for anything else (including tmp dirs).
std::optional<int64_t> parse_dir_name(const std::string& name) {
  const std::string prefix = kStepPrefix;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return {};
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return {};
  const int64_t step = std::stoll(digits);
  if (checkpoint_dir_name(step) != name) return {};  // only the canonical spelling counts
  return step;
}

// ".step_00001000.tmp-..." — a commit in progress, or debris from a crashed one.
bool is_tmp_dir_name(const std::string& name) {
  return name.rfind(std::string(".") + kStepPrefix, 0) == 0 && name.find(".tmp-") != std::string::npos;
}

void sync_path(const fs::path& path, bool is_directory) {
  const int fd = ::open(path.c_str(), is_directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  RECLM_USER_CHECK(fd >= 0, "{}: cannot open to sync it to disk: {}", path.string(),
                   std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved_errno = errno;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the data files are what matter.
  RECLM_USER_CHECK(rc == 0 || (is_directory && saved_errno == EINVAL),
                   "{}: cannot sync to disk: {}", path.string(), std::strerror(saved_errno));
}

// fsyncs every regular file and directory below `dir`, then `dir` itself.
void sync_tree(const fs::path& dir) {
  std::error_code error;
  for (fs::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    const fs::file_status status = it->symlink_status();
    if (fs::is_regular_file(status)) sync_path(it->path(), false);
    else if (fs::is_directory(status)) sync_path(it->path(), true);
  }
  RECLM_USER_CHECK(!error, "{}: cannot list checkpoint files: {}", dir.string(), error.message());
  sync_path(dir, true);
}

// A fresh, empty root/".step_XXXXXXXX.<tag>-<pid>-<n>" directory.
fs::path make_unique_dir(const fs::path& root, const std::string& name, const std::string& tag) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const fs::path dir = root / fmt::format(".{}.{}-{}-{}", name, tag, ::getpid(), counter++);
    std::error_code error;
    if (fs::create_directory(dir, error)) return dir;
    RECLM_USER_CHECK(!error, "{}: cannot create checkpoint directory: {}", dir.string(),
                     error.message());
  }
  throw_user_error("{}: cannot find a free temporary directory name for {}", root.string(), name);
}

// Renames a "slot" path out of the way to a fresh tmp-style name (so a crash leaves debris that
// apply_retention recognises); returns the new name.
fs::path move_aside(const fs::path& root, const std::string& name, const fs::path& path) {
  const fs::path aside = make_unique_dir(root, name, "tmp-old");
  std::error_code error;
  fs::remove(aside, error);  // only the unique name was wanted; rename needs it free
  fs::rename(path, aside, error);
  RECLM_USER_CHECK(!error, "{}: cannot move the existing checkpoint aside to {}: {}",
                   path.string(), aside.string(), error.message());
  return aside;
}

void remove_tree_or_warn(const fs::path& dir) {
  std::error_code error;
  fs::remove_all(dir, error);
  if (error) log_warn("{}: cannot delete old checkpoint directory: {}", dir.string(), error.message());
}

// Moves the filled tmp dir to `final_dir`. Returns the directory that held the previous
// checkpoint of the same step (now under a tmp name, to be deleted), or an empty path.
fs::path install(const fs::path& root, const std::string& name, const fs::path& tmp,
                 const fs::path& final_dir) {
  std::error_code error;
  if (!fs::exists(fs::symlink_status(final_dir, error))) {
    fs::rename(tmp, final_dir, error);
    RECLM_USER_CHECK(!error, "{}: cannot rename {} to it: {}", final_dir.string(), tmp.string(),
                     error.message());
    return {};
  }
  // A rerun of the same step: swap atomically where the kernel can, so final_dir never vanishes.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0)
    return tmp;  // tmp now holds the old checkpoint
  const fs::path aside = move_aside(root, name, final_dir);
  fs::rename(tmp, final_dir, error);
  if (error) {
    std::error_code ignored;
    fs::rename(aside, final_dir, ignored);  // put the old one back
    throw_user_error("{}: cannot rename {} to it: {}", final_dir.string(), tmp.string(),
                     error.message());
  }
  return aside;
}

void write_latest(const fs::path& root, const std::string& name) {
  const fs::path latest = root / kLatestFile;
  replace_file_atomically(latest, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << name << '\n';
    out.close();
    RECLM_USER_CHECK(out.good(), "{}: cannot write {}: {}", latest.string(), tmp.string(),
                     std::strerror(errno));
  });
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  RECLM_CHECK(step >= 0, "checkpoint step must be >= 0, got {}", step);
  return fmt::format("{}{:08d}", kStepPrefix, step);
}

fs::path begin_checkpoint_commit(const fs::path& root, int64_t step) {
  std::error_code error;
  fs::create_directories(root, error);
  RECLM_USER_CHECK(!error, "{}: cannot create checkpoint root: {}", root.string(), error.message());
  return make_unique_dir(root, checkpoint_dir_name(step), "tmp");
}

fs::path finish_checkpoint_commit(const fs::path& root, int64_t step, const fs::path& tmp) {
  const std::string name = checkpoint_dir_name(step);
  const fs::path final_dir = root / name;
  sync_tree(tmp);
  const fs::path old_copy = install(root, name, tmp, final_dir);
  // From here final_dir is in place: the rename must be durable before `latest` names it.
  sync_path(root, true);
  write_latest(root, name);
  if (!old_copy.empty()) remove_tree_or_warn(old_copy);
  return final_dir;
}

void abandon_checkpoint_commit(const fs::path& tmp) {
  std::error_code ignored;
  fs::remove_all(tmp, ignored);
}

fs::path commit_checkpoint(const fs::path& root, int64_t step,
                           const std::function<void(const fs::path& dir)>& write) {
  const fs::path tmp = begin_checkpoint_commit(root, step);
  try {
    try {
      write(tmp);
    } catch (const fs::filesystem_error& e) {
      throw_user_error("{}: cannot write checkpoint files: {}",
                       e.path1().empty() ? tmp.string() : e.path1().string(), e.what());
    }
    return finish_checkpoint_commit(root, step, tmp);
  } catch (...) {
    abandon_checkpoint_commit(tmp);
    throw;
  }
}

std::optional<fs::path> latest_checkpoint(const fs::path& root) {
  const fs::path latest = root / kLatestFile;
  std::error_code error;
  if (!fs::exists(latest, error)) return std::nullopt;
  std::ifstream in(latest, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "{}: cannot open: {}", latest.string(), std::strerror(errno));
  std::stringstream content;
  content << in.rdbuf();
  std::string name = content.str();
  if (!name.empty() && name.back() == '\n') name.pop_back();
  RECLM_USER_CHECK(parse_dir_name(name).has_value(),
                   "{}: expected a checkpoint directory name like step_00001000, found '{}'",
                   latest.string(), name.substr(0, 64));
  const fs::path dir = root / name;
  RECLM_USER_CHECK(fs::is_directory(dir, error), "{}: names {}, which does not exist",
                   latest.string(), dir.string());
  return dir;
}

std::vector<int64_t> committed_steps(const fs::path& root) {
  std::vector<int64_t> steps;
  std::error_code error;
  if (!fs::is_directory(root, error)) return steps;
  for (fs::directory_iterator it(root, error), end; !error && it != end; it.increment(error)) {
    if (!it->is_directory()) continue;
    if (const auto step = parse_dir_name(it->path().filename().string())) steps.push_back(*step);
  }
  RECLM_USER_CHECK(!error, "{}: cannot list checkpoints: {}", root.string(), error.message());
  std::sort(steps.begin(), steps.end());
  return steps;
}

void apply_retention(const fs::path& root, int keep_last, int keep_every) {
  RECLM_CHECK(keep_last >= 0 && keep_every >= 0, "retention: keep_last={} keep_every={}",
              keep_last, keep_every);
  std::error_code error;
  if (!fs::is_directory(root, error)) return;

  // Debris first: tmp dirs of crashed commits and old copies of replaced checkpoints.
  std::vector<fs::path> stray;
  for (fs::directory_iterator it(root, error), end; !error && it != end; it.increment(error))
    if (it->is_directory() && is_tmp_dir_name(it->path().filename().string()))
      stray.push_back(it->path());
  if (error) log_warn("{}: cannot list checkpoints: {}", root.string(), error.message());
  for (const fs::path& dir : stray) remove_tree_or_warn(dir);

  std::optional<fs::path> latest;
  try {
    latest = latest_checkpoint(root);
  } catch (const UserError& e) {
    log_warn("not deleting old checkpoints, the latest one is unknown: {}", e.what());
    return;
  }
  const std::vector<int64_t> steps = committed_steps(root);
  std::set<int64_t> keep;
  const size_t first_kept = keep_last == 0 || steps.size() <= static_cast<size_t>(keep_last)
                                ? 0
                                : steps.size() - static_cast<size_t>(keep_last);
  for (size_t i = first_kept; i < steps.size(); ++i) keep.insert(steps[i]);
  for (int64_t step : steps)
    if (keep_every > 0 && step % keep_every == 0) keep.insert(step);
  if (latest) keep.insert(*parse_dir_name(latest->filename().string()));
  for (int64_t step : steps)
    if (!keep.count(step)) remove_tree_or_warn(root / checkpoint_dir_name(step));
}

}  // namespace reclm
