#include "kernels/simt/emulator_options.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/errors.h"

namespace reclm::simt {
namespace {

std::uint64_t parse_env(const char* name, std::uint64_t fallback, std::uint64_t min_value) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 0);
  RECLM_USER_CHECK(*end == '\0' && value >= min_value, "{}={}: expected an integer >= {}", name, text,
                   min_value);
  return value;
}

EmulatorOptions options_from_environment() {
  EmulatorOptions options;
  options.seed = parse_env("RECLM_SIMT_SEED", 1, 0);
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  options.worker_threads = static_cast<int>(parse_env("RECLM_SIMT_THREADS", std::min(hardware, 8u), 1));
  return options;
}

std::mutex options_mutex;
EmulatorOptions& current_options() {
  static EmulatorOptions options = options_from_environment();
  return options;
}

}  // namespace

EmulatorOptions emulator_options() {
  std::lock_guard<std::mutex> lock(options_mutex);
  return current_options();
}

void set_emulator_options(const EmulatorOptions& options) {
  RECLM_CHECK(options.worker_threads >= 1, "simt: worker_threads must be >= 1, got {}", options.worker_threads);
  std::lock_guard<std::mutex> lock(options_mutex);
  current_options() = options;
}

}  // namespace reclm::simt
