// Errors for kernels that misuse the device API where a GPU would hang, fault or compute
// garbage: a barrier not reached by every thread, a bad warp mask, a launch out of range, ...
// They throw reclm::InternalError (the kernel is a bug in reclm) with a message that names the
// block and thread, without the file:line and condition text of RECLM_CHECK, which would point
// into the emulator instead of the kernel.
#pragma once

#include <fmt/format.h>

#include <string>

#include "runtime/errors.h"

namespace reclm::simt {

[[noreturn]] inline void throw_usage_error(const std::string& message) { throw InternalError("simt: " + message); }

}  // namespace reclm::simt

// Formats the message only when `cond` fails (the checks sit on the emulator's hot paths).
#define RECLM_SIMT_CHECK(cond, ...)                                                    \
  do {                                                                                 \
    if (!(cond)) ::reclm::simt::throw_usage_error(fmt::format(__VA_ARGS__));          \
  } while (0)
