#include "runtime/logging.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace reclm {

namespace {
int g_rank = 0;
int g_world = 1;
LogLevel g_level = [] {
  const char* env = std::getenv("RECLM_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}();
std::mutex g_mutex;
}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world = world_size;
}

void set_log_level(LogLevel level) { g_level = level; }

void log_line(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  if (level < LogLevel::kWarn && g_rank != 0) return;
  const char* tag = level == LogLevel::kWarn ? "warning: " : level == LogLevel::kError ? "error: " : "";
  std::lock_guard<std::mutex> lock(g_mutex);
  // Info goes to stdout (the run's story); warnings and errors to stderr.
  FILE* stream = level >= LogLevel::kWarn ? stderr : stdout;
  if (g_world > 1) {
    std::fprintf(stream, "[rank %d] %s%s\n", g_rank, tag, message.c_str());
  } else {
    std::fprintf(stream, "%s%s\n", tag, message.c_str());
  }
  std::fflush(stream);
}

}  // namespace reclm
