#include "runtime/errors.h"

namespace reclm {

void throw_internal_error(const char* file, int line, const char* condition,
                          const std::string& message) {
  throw InternalError(fmt::format("internal error at {}:{}: check `{}` failed: {}", file, line,
                                  condition, message));
}

}  // namespace reclm
