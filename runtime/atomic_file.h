// Replacing a file atomically: write PATH.tmp, fsync it, rename it over PATH, fsync the
// directory. A crash or an error at any point leaves the old PATH intact (or no PATH), never a
// half-written one under the final name; on an error the .tmp is removed and the error rethrown.
#pragma once

#include <filesystem>
#include <functional>

namespace reclm {

// `write_tmp` writes the whole content to the path it is given (PATH.tmp) and closes it.
// A missing parent directory is a UserError naming PATH.
void replace_file_atomically(const std::filesystem::path& path,
                             const std::function<void(const std::filesystem::path& tmp)>& write_tmp);

}  // namespace reclm
