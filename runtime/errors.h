// Error types and check macros.
//
// Two kinds of failure, two exit codes (DESIGN.md §3):
//   UserError     — bad input: config, data file, checkpoint, CLI argument. Exit code 2, and the
//                   message must name the file/line/field so the user can fix it.
//   InternalError — a broken invariant inside reclm (a bug). Exit code 1.
// Never a stack dump for a user mistake: launch/main.cc catches both and prints the message.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace reclm {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

class InternalError : public std::runtime_error {
 public:
  explicit InternalError(const std::string& message) : std::runtime_error(message) {}
};

constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitUserError = 2;

template <typename... Args>
[[noreturn]] void throw_user_error(fmt::format_string<Args...> format, Args&&... args) {
  throw UserError(fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] void throw_internal_error(const char* file, int line, const char* condition,
                                       const std::string& message);

}  // namespace reclm

// Bad input: `RECLM_USER_CHECK(n > 0, "{}: field model.n_layers must be > 0", path)`.
#define RECLM_USER_CHECK(cond, ...)                                    \
  do {                                                                 \
    if (!(cond)) ::reclm::throw_user_error(__VA_ARGS__);               \
  } while (0)

// Invariant: `RECLM_CHECK(ptr != nullptr, "arena exhausted: {} bytes", n)`.
#define RECLM_CHECK(cond, ...)                                                         \
  do {                                                                                 \
    if (!(cond))                                                                       \
      ::reclm::throw_internal_error(__FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__)); \
  } while (0)
