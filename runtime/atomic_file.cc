#include "runtime/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/errors.h"

namespace reclm {
namespace {

void sync_file(const std::filesystem::path& file, const std::string& display_name) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  const int saved_errno = errno;
  if (fd >= 0) ::close(fd);
  RECLM_USER_CHECK(ok, "{}: cannot sync {} to disk: {}", display_name, file.string(),
                   std::strerror(saved_errno));
}

// Makes the rename itself durable; best effort (some file systems refuse fsync on directories).
void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

void replace_file_atomically(const std::filesystem::path& path,
                             const std::function<void(const std::filesystem::path& tmp)>& write_tmp) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const std::filesystem::path dir = path.parent_path();
  RECLM_USER_CHECK(dir.empty() || std::filesystem::is_directory(dir),
                   "{}: cannot write: directory {} does not exist", path.string(), dir.string());
  try {
    write_tmp(tmp);
    sync_file(tmp, path.string());  // the data must be on disk before the new name is
    std::error_code error;
    std::filesystem::rename(tmp, path, error);
    RECLM_USER_CHECK(!error, "{}: cannot rename {} over it: {}", path.string(), tmp.string(),
                     error.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  sync_directory(dir);
}

}  // namespace reclm
