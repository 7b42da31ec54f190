// Rank-aware logging with fmt. In a multi-rank job every line is prefixed with the rank and,
// unless asked otherwise, only rank 0 prints info lines (warnings and errors print on every rank).
#pragma once

#include <fmt/format.h>

#include <string>

namespace reclm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Set once at start-up (after the communicator knows the rank). Defaults: rank 0 of 1.
void set_log_rank(int rank, int world_size);
// Minimum level printed; RECLM_LOG_LEVEL=debug|info|warn|error overrides at start-up.
void set_log_level(LogLevel level);
void log_line(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(fmt::format_string<Args...> format, Args&&... args) {
  log_line(LogLevel::kInfo, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> format, Args&&... args) {
  log_line(LogLevel::kWarn, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> format, Args&&... args) {
  log_line(LogLevel::kDebug, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace reclm
