// Committing a checkpoint directory atomically (DESIGN.md §7).
//
// Layout under a checkpoint root:
//   root/step_00001000/          one committed checkpoint per step (contents are the caller's)
//   root/latest                  text file: the name of the newest committed directory + '\n'
//   root/.step_00001000.tmp-XXX  a commit in progress (or left behind by a crash)
//
// A commit fills a fresh temporary directory, fsyncs it, renames it to its final name and only
// then points `latest` at it. A crash or an error at any point leaves `latest` and every
// committed checkpoint as they were; at worst a stray tmp dir remains, which readers ignore and
// apply_retention removes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace reclm {

// "step_00001000": the step zero-padded to 8 digits (more when the step needs them).
std::string checkpoint_dir_name(int64_t step);

// Creates `root` if missing, calls write(tmp_dir) to fill a fresh temporary directory, makes it
// durable, renames it to root/checkpoint_dir_name(step) (replacing an existing one of that name)
// and updates root/latest. Returns the committed directory. On any error (from `write` or the
// file system) the tmp dir is removed, `latest` and existing checkpoints are untouched, and the
// error is rethrown; file-system failures are UserErrors naming the path and the OS error.
std::filesystem::path commit_checkpoint(
    const std::filesystem::path& root, int64_t step,
    const std::function<void(const std::filesystem::path& dir)>& write);

// The halves of commit_checkpoint, for a commit whose files are written elsewhere (by several
// ranks, on a background thread). begin: creates `root` if missing and a fresh temporary
// directory, which it returns. finish: makes it durable, renames it to
// root/checkpoint_dir_name(step) and updates root/latest, as commit_checkpoint does. When
// writing or finish fails, abandon removes the temporary directory (it never throws).
std::filesystem::path begin_checkpoint_commit(const std::filesystem::path& root, int64_t step);
std::filesystem::path finish_checkpoint_commit(const std::filesystem::path& root, int64_t step,
                                               const std::filesystem::path& tmp);
void abandon_checkpoint_commit(const std::filesystem::path& tmp);

// The directory root/latest points to; nullopt when root or root/latest does not exist.
// UserError naming root/latest when its content is not a step directory name or the directory
// it names does not exist.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& root);

// Steps of the committed step_* directories under root, ascending (tmp dirs are not counted).
// Empty when root does not exist.
std::vector<int64_t> committed_steps(const std::filesystem::path& root);

// Deletes old checkpoints: keeps the newest `keep_last` (0 = keep all), every step that is a
// multiple of `keep_every` (0 = none extra) and always the one `latest` points to; also removes
// stray tmp dirs left by a crashed commit. Deletion failures are logged, not fatal.
void apply_retention(const std::filesystem::path& root, int keep_last, int keep_every);

}  // namespace reclm
